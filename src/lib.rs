//! Herald: a self-hosted mail transfer and permission-based mailing-list daemon.
//!
//! Data flows from the SMTP listeners (`smtp`) through policy into the durable queue (`store`),
//! and is inspected through the admin socket (`admin`). `daemon` wires it all together for
//! `herald serve`; `cli` is the command line. See ARCHITECTURE.md for the map and invariants.

pub mod admin;
pub mod backup;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod devuser;
pub mod http;
pub mod lists;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod queue;
pub mod smtp;
pub mod store;
pub mod timefmt;
pub mod tls;
