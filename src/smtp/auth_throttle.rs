//! The AUTH failure throttle: failures are counted per client (an IPv4 address, an IPv6 /64)
//! and per account name (whether or not the account exists, so the replies tell nothing),
//! each within `limits.auth_failure_window`, in tables of bounded size that are never wiped.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries kept per table (clients, accounts) by default: a few MiB each when full.
pub const MAX_TRACKED: usize = 100_000;

/// The limits a check is made against (from `limits.*`).
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// `limits.max_auth_failures`: per client address (IPv6: per /64).
    pub per_client: u32,
    /// `limits.max_auth_failures_per_account`: per account name, from any address.
    pub per_account: u32,
    /// `limits.auth_failure_window`: counting starts at a key's first failure and ends
    /// this long after it (the cool-down of a throttled key).
    pub window: Duration,
}

/// Failures of one key since `since`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    since: Instant,
}

/// One bounded table of event counts per key, each in a window from its key's first event
/// (also the `postmaster@` rate).
pub(super) struct Counts<K> {
    map: HashMap<K, Entry>,
    cap: usize,
}

impl<K: Hash + Eq + Copy> Counts<K> {
    pub(super) fn new(cap: usize) -> Self {
        Counts {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Events of `key` in its current window.
    pub(super) fn count(&mut self, key: &K, window: Duration, now: Instant) -> u32 {
        match self.map.get(key) {
            Some(e) if now.saturating_duration_since(e.since) < window => e.count,
            Some(_) => {
                self.map.remove(key);
                0
            }
            None => 0,
        }
    }

    /// Records one event of `key`; its count in the current window. `max` is the limit, past
    /// which keys count as equals when room must be made.
    pub(super) fn record(&mut self, key: K, max: u32, window: Duration, now: Instant) -> u32 {
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            self.make_room(max, window, now);
        }
        let e = self.map.entry(key).or_insert(Entry {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(e.since) >= window {
            *e = Entry {
                count: 0,
                since: now,
            };
        }
        e.count = e.count.saturating_add(1);
        e.count
    }

    /// Drops expired entries; if that is not enough, an eighth of the table: the entries with
    /// the fewest failures first (a throttled key goes last), the oldest among equals. A flood
    /// of new keys so can neither grow memory nor free a throttled account.
    fn make_room(&mut self, max: u32, window: Duration, now: Instant) {
        self.map
            .retain(|_, e| now.saturating_duration_since(e.since) < window);
        if self.map.len() < self.cap {
            return;
        }
        let mut victims: Vec<(u32, Instant, K)> = self
            .map
            .iter()
            .map(|(k, e)| (e.count.min(max), e.since, *k))
            .collect();
        let n = (self.cap / 8).max(1).min(victims.len());
        victims.select_nth_unstable_by_key(n - 1, |&(count, since, _)| (count, since));
        for (_, _, k) in &victims[..n] {
            self.map.remove(k);
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The client key: IPv4 (also IPv4-mapped IPv6) as is, IPv6 cut to its /64, the block one
/// subscriber usually holds whole.
pub fn client_key(ip: IpAddr) -> IpAddr {
    crate::net::client_unit(ip)
}

/// Counts failed AUTH attempts per client and per account.
#[derive(Clone)]
pub struct AuthThrottle {
    clients: Arc<Mutex<Counts<IpAddr>>>,
    /// Keyed by a keyed hash of the lower-cased name: any name a client sends costs the
    /// same few bytes.
    accounts: Arc<Mutex<Counts<u64>>>,
    hasher: RandomState,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle::with_capacity(MAX_TRACKED)
    }
}

impl AuthThrottle {
    /// A throttle keeping at most `cap` clients and `cap` accounts.
    pub fn with_capacity(cap: usize) -> Self {
        AuthThrottle {
            clients: Arc::new(Mutex::new(Counts::new(cap))),
            accounts: Arc::new(Mutex::new(Counts::new(cap))),
            hasher: RandomState::new(),
        }
    }

    fn account_key(&self, account: &str) -> u64 {
        self.hasher.hash_one(account.to_lowercase())
    }

    /// True when the client or the account has reached its limit within the window.
    pub fn blocked(&self, ip: IpAddr, account: &str, l: &AuthLimits, now: Instant) -> bool {
        let client = lock(&self.clients).count(&client_key(ip), l.window, now);
        let key = self.account_key(account);
        let acct = lock(&self.accounts).count(&key, l.window, now);
        client >= l.per_client || acct >= l.per_account
    }

    /// Records one failure; returns the client's and the account's counts in their windows.
    pub fn record_failure(
        &self,
        ip: IpAddr,
        account: &str,
        l: &AuthLimits,
        now: Instant,
    ) -> (u32, u32) {
        let client = lock(&self.clients).record(client_key(ip), l.per_client, l.window, now);
        let key = self.account_key(account);
        let acct = lock(&self.accounts).record(key, l.per_account, l.window, now);
        (client, acct)
    }

    /// Keys held (clients, accounts).
    pub fn tracked(&self) -> (usize, usize) {
        (
            lock(&self.clients).map.len(),
            lock(&self.accounts).map.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: AuthLimits = AuthLimits {
        per_client: 2,
        per_account: 3,
        window: Duration::from_secs(60),
    };

    fn v4(last: u8) -> IpAddr {
        [10, 0, 0, last].into()
    }

    #[test]
    fn per_client() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        assert!(!t.blocked(v4(1), "a", &L, now));
        t.record_failure(v4(1), "a", &L, now);
        assert!(!t.blocked(v4(1), "b", &L, now));
        t.record_failure(v4(1), "b", &L, now);
        assert!(
            t.blocked(v4(1), "c", &L, now),
            "the client, for any account"
        );
        assert!(!t.blocked(v4(2), "c", &L, now), "not another client");
        assert!(
            !t.blocked(v4(1), "c", &L, now + L.window),
            "after the window"
        );
    }

    /// Fixed (issue 13): one account guessed at from many addresses was never slowed.
    #[test]
    fn per_account_from_many_addresses() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        for i in 1..=3 {
            assert!(!t.blocked(v4(i), "Alice", &L, now), "attempt {i}");
            t.record_failure(v4(i), "Alice", &L, now);
        }
        assert!(t.blocked(v4(9), "alice", &L, now), "any case, any address");
        assert!(t.blocked(v4(9), "ALICE", &L, now + Duration::from_secs(59)));
        assert!(!t.blocked(v4(9), "bob", &L, now));
        assert!(
            !t.blocked(v4(9), "alice", &L, now + L.window),
            "cool-down over"
        );
    }

    /// Fixed (issue 13): IPv6 was counted per single address, so one /64 had 2^64 tries.
    #[test]
    fn ipv6_counts_per_64() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        t.record_failure(a, "x", &L, now);
        t.record_failure(b, "y", &L, now);
        assert!(t.blocked(a, "z", &L, now) && t.blocked(b, "z", &L, now));
        assert!(!t.blocked(other, "z", &L, now));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(client_key(mapped), v4(1));
    }

    /// Fixed (issue 13): at 100,000 entries the table was cleared, throttled keys with it.
    #[test]
    fn a_full_table_is_trimmed_not_wiped() {
        let t = AuthThrottle::with_capacity(64);
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure(v4(1), "victim", &L, now);
        }
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000u32 + i));
            let later = now + Duration::from_millis(u64::from(i));
            t.record_failure(ip, &format!("random{i}"), &L, later);
            let (clients, accounts) = t.tracked();
            assert!(clients <= 64 && accounts <= 64, "{clients} {accounts}");
            assert!(
                clients > 1 && accounts > 1,
                "never wiped: {clients} {accounts}"
            );
        }
        let later = now + Duration::from_secs(10);
        assert!(
            t.blocked(v4(1), "victim", &L, later),
            "the throttled keys stay"
        );
        // Expired entries go first.
        let t = AuthThrottle::with_capacity(4);
        for i in 0..4 {
            t.record_failure(v4(i), &format!("a{i}"), &L, now);
        }
        t.record_failure(v4(9), "a9", &L, now + L.window);
        assert_eq!(t.tracked(), (1, 1));
    }
}
