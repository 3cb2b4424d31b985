//! RFC 5322 message-format helpers every layer may use: where a message's header section ends
//! and what its fields say (`header`), and the address with its local part and domain
//! (`address`). Pure functions over bytes and strings; depends on nothing in the crate, so
//! `smtp`, `queue`, `lists`, `bounce`, `http`, `admin` and `config` share one rule for each
//! instead of their own copies.

pub mod address;
pub mod header;

pub use address::{Address, AddressError, mailboxes, split, valid_domain};
