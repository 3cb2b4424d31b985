//! Bounds on mail to `postmaster@` on the inbound listener (RFC 5321 §4.5.1 makes the address
//! always accepted, so it must not be a free channel): a rate per client address (IPv6: per
//! /64), `limits.postmaster_rate`, and a size cap, `limits.postmaster_max_size`.

use super::auth_throttle::{Counts, MAX_TRACKED, client_key, lock};
use super::reply::Reply;
use super::state::SessionState;
use super::{Context, Role};
use crate::config::Settings;
use crate::metrics::Rejection;
use crate::store::NewRecipient;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Messages to `postmaster@` per client key, in a bounded table.
#[derive(Clone)]
pub struct PostmasterLimiter {
    counts: Arc<Mutex<Counts<IpAddr>>>,
}

impl Default for PostmasterLimiter {
    fn default() -> Self {
        PostmasterLimiter {
            counts: Arc::new(Mutex::new(Counts::new(MAX_TRACKED))),
        }
    }
}

impl PostmasterLimiter {
    /// Counts one message from `ip`; false once it is past `rate` in the current window.
    pub fn admit(&self, ip: IpAddr, rate: crate::config::Rate, now: Instant) -> bool {
        let n = lock(&self.counts).record(client_key(ip), rate.count, rate.per, now);
        n <= rate.count
    }
}

/// `postmaster`, bare or at any domain (RCPT accepted it only at this host's own).
fn is_postmaster(r: &NewRecipient) -> bool {
    let local = crate::mail::split(&r.address).map_or(r.address.as_str(), |(l, _)| l);
    local.eq_ignore_ascii_case("postmaster")
}

/// The refusal of an inbound message to `postmaster@` past the client's rate (`450 4.7.1`)
/// or over the size cap (`552 5.3.4`); every such message counts towards the rate.
pub fn refusal(
    ctx: &Context,
    st: &SessionState,
    settings: &Settings,
    recipients: &[NewRecipient],
    size: u64,
) -> Option<Reply> {
    if st.role != Role::Inbound || !recipients.iter().any(is_postmaster) {
        return None;
    }
    let l = &settings.config.limits;
    let ip = st.peer.ip();
    if !ctx.postmaster.admit(ip, l.postmaster_rate, Instant::now()) {
        tracing::info!(client = %ip, "refused mail to postmaster: over limits.postmaster_rate");
        let text = "Too much mail to postmaster from your address; try again later";
        return Some(Reply::new(450, "4.7.1", text));
    }
    if size > l.postmaster_max_size.0 {
        tracing::info!(client = %ip, size, "refused mail to postmaster: over limits.postmaster_max_size");
        let text = format!(
            "Message to postmaster exceeds {} octets",
            l.postmaster_max_size.0
        );
        return Some(Reply::new(552, "5.3.4", text).counted(Rejection::Size));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;
    use std::time::Duration;

    #[test]
    fn rate_per_client() {
        let l = PostmasterLimiter::default();
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(3600),
        };
        let now = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!(l.admit(a, rate, now));
        assert!(l.admit(b, rate, now), "the same /64");
        assert!(!l.admit(a, rate, now));
        assert!(l.admit([192, 0, 2, 1].into(), rate, now), "another client");
        assert!(l.admit(b, rate, now + rate.per), "a new window");
    }
}
