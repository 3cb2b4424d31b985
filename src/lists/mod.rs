//! Mailing lists. For now: the HMAC-protected tokens that name a delivery (VERP) or a list
//! member (unsubscribe) in addresses and URLs.

pub mod token;
