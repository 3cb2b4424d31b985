//! The AUTH failure throttle per client IP (connection budgets are `conns.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Upper bound on tracked IPs, so a flood of addresses cannot grow memory without limit.
const MAX_TRACKED: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts failed AUTH attempts per client IP within a window.
#[derive(Clone, Default)]
pub struct AuthThrottle {
    failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

impl AuthThrottle {
    /// True when `ip` has reached `max` failures within `window`.
    pub fn blocked(&self, ip: IpAddr, max: u32, window: Duration) -> bool {
        let mut f = lock(&self.failures);
        match f.get(&ip) {
            Some(&(n, since)) if since.elapsed() < window => n >= max,
            Some(_) => {
                f.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Records one failure; returns the count within the current window.
    pub fn record_failure(&self, ip: IpAddr, window: Duration) -> u32 {
        let mut f = lock(&self.failures);
        if f.len() >= MAX_TRACKED {
            f.retain(|_, (_, since)| since.elapsed() < window);
            if f.len() >= MAX_TRACKED {
                f.clear();
            }
        }
        let entry = f.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_throttle() {
        let t = AuthThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let w = Duration::from_secs(60);
        assert!(!t.blocked(ip, 2, w));
        t.record_failure(ip, w);
        assert!(!t.blocked(ip, 2, w));
        t.record_failure(ip, w);
        assert!(t.blocked(ip, 2, w));
        assert!(!t.blocked(ip, 2, Duration::ZERO));
    }
}
