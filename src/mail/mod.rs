//! Mail-format values and helpers every layer may use: where a message's header section ends
//! and what its fields say (`header`, RFC 5322), the address with its local part and domain
//! (`address`), and an SMTP reply with its enhanced status code (`reply`, RFC 5321/3463). Pure functions over bytes and strings; depends on nothing in the crate, so
//! `smtp`, `queue`, `lists`, `bounce`, `http`, `admin` and `config` share one rule for each
//! instead of their own copies.

pub mod address;
pub mod header;
pub mod reply;

pub use address::{Address, AddressError, mailboxes, split, valid_domain};
pub use reply::{Reply, Status};
