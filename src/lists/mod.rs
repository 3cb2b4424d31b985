//! Mailing lists: the HMAC-protected tokens that name a delivery (VERP) or a list member
//! (unsubscribe, confirm) in addresses and URLs (`token`), the per-copy headers (`headers`),
//! the expander that turns a stored post into member copies (`expand`), housekeeping on its
//! own hourly clock (`housekeeping`: expired sign-ups, old VERP records), and the consent
//! flows shared by the HTTP pages, the CLI and the inbound listener (`consent`).

pub mod consent;
pub mod expand;
pub mod headers;
pub mod housekeeping;
pub mod token;

#[cfg(test)]
mod tests;
