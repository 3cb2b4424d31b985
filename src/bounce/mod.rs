//! Bounces. For now: the RFC 3464 delivery status notifications Herald sends (`notify`).

pub mod notify;
