//! Connection limits (total and per client IP). The AUTH throttle is `auth_throttle`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct ConnCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open sessions; a [`ConnGuard`] releases its slot on drop.
#[derive(Clone, Default)]
pub struct ConnLimiter {
    counts: Arc<Mutex<ConnCounts>>,
}

pub struct ConnGuard {
    counts: Arc<Mutex<ConnCounts>>,
    ip: IpAddr,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

impl ConnLimiter {
    pub fn admit(
        &self,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<ConnGuard, Refusal> {
        let mut c = lock(&self.counts);
        if c.total >= max_total {
            return Err(Refusal::Total);
        }
        let n = c.per_ip.get(&ip).copied().unwrap_or(0);
        if n >= max_per_ip {
            return Err(Refusal::PerIp);
        }
        c.total += 1;
        c.per_ip.insert(ip, n + 1);
        Ok(ConnGuard {
            counts: self.counts.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits() {
        let l = ConnLimiter::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let g1 = l.admit(a, 3, 2);
        let g2 = l.admit(a, 3, 2);
        assert!(g1.is_ok() && g2.is_ok());
        assert_eq!(l.admit(a, 3, 2).err(), Some(Refusal::PerIp));
        let g3 = l.admit(b, 3, 2);
        assert!(g3.is_ok());
        assert_eq!(l.admit(b, 3, 2).err(), Some(Refusal::Total));
        drop(g1);
        assert!(l.admit(a, 3, 2).is_ok());
        drop((g2, g3));
        assert_eq!(l.open(), 0);
    }
}
