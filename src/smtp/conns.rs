//! Connection budgets of the SMTP listeners (DESIGN §16): each listener's own budget, a reserve
//! on the submission listeners that only authenticated (or trusted) sessions may use, a cap per
//! client address over all listeners (IPv6 per /64, like one host), the process-wide cap, and
//! fair-share eviction so a few addresses filling a listener cannot keep another address out.
//!
//! Pure bookkeeping under one mutex, like Postfix's anvil; a [`Slot`] is one session's place,
//! given back when it drops. An evicted session is told through its slot's token and its place
//! is handed to the newcomer at once.

use super::Role;
use crate::config::Limits;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// The bounds admission applies, read from `limits.*` at each accept (a reload applies to the
/// next connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `limits.max_connections`: over every listener.
    pub total: usize,
    /// `limits.connections_per_listener`: each listener's own.
    pub per_listener: usize,
    /// `limits.submission_reserve`: on 587/465, slots unauthenticated sessions may not hold.
    pub reserve: usize,
    /// `limits.max_connections_per_ip`: per client address (IPv6 /64) over all listeners.
    pub per_address: usize,
}

impl Budget {
    pub fn of(l: &Limits) -> Budget {
        Budget {
            total: l.max_connections,
            per_listener: l.connections_per_listener,
            reserve: l.submission_reserve,
            per_address: l.max_connections_per_ip,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` over all listeners.
    Total,
    /// This listener's budget (or, unauthenticated on submission, its budget less the reserve).
    Listener,
    /// `limits.max_connections_per_ip` from this address.
    PerAddress,
}

/// The unit the per-address cap counts: an IPv4 address, or an IPv6 /64 (one site's subnet;
/// IPv4-mapped IPv6 counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey(IpAddr);

pub fn addr_key(ip: IpAddr) -> AddrKey {
    AddrKey(crate::net::client_unit(ip))
}

fn index(role: Role) -> usize {
    match role {
        Role::Submission => 0,
        Role::Submissions => 1,
        Role::Inbound => 2,
    }
}

struct Entry {
    listener: usize,
    key: AddrKey,
    cancel: CancellationToken,
    /// Not authenticated and not trusted: counts against the reserve and may be evicted.
    evictable: bool,
}

#[derive(Default)]
struct Books {
    next_id: u64,
    total: usize,
    open: [usize; 3],
    /// Evictable sessions per listener.
    unauth: [usize; 3],
    per_addr: HashMap<AddrKey, usize>,
    /// Evictable sessions per listener and address: who holds the most.
    held: HashMap<(usize, AddrKey), usize>,
    /// By id, so oldest first.
    sessions: BTreeMap<u64, Entry>,
}

fn dec<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K) {
    if let Some(n) = map.get_mut(&k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&k);
        }
    }
}

impl Books {
    /// Why a new session would not fit once `freed` evictable sessions of this listener went.
    fn misfit(
        &self,
        l: usize,
        role: Role,
        trusted: bool,
        b: Budget,
        freed: usize,
    ) -> Option<Refusal> {
        if self.total.saturating_sub(freed) >= b.total {
            return Some(Refusal::Total);
        }
        if self.open[l].saturating_sub(freed) >= b.per_listener {
            return Some(Refusal::Listener);
        }
        let pool = b.per_listener.saturating_sub(b.reserve);
        if role.is_submission() && !trusted && self.unauth[l].saturating_sub(freed) >= pool {
            return Some(Refusal::Listener);
        }
        None
    }

    /// The address holding the most evictable sessions on listener `l`, and how many.
    fn heaviest(&self, l: usize) -> Option<(AddrKey, usize)> {
        self.held
            .iter()
            .filter(|((li, _), _)| *li == l)
            .map(|((_, k), n)| (*k, *n))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.sessions.remove(&id)?;
        self.total = self.total.saturating_sub(1);
        self.open[e.listener] = self.open[e.listener].saturating_sub(1);
        dec(&mut self.per_addr, e.key);
        if e.evictable {
            self.unauth[e.listener] = self.unauth[e.listener].saturating_sub(1);
            dec(&mut self.held, (e.listener, e.key));
        }
        Some(e)
    }

    /// Ends the oldest evictable session of `key` on listener `l`; its place is free at once.
    fn evict(&mut self, l: usize, key: AddrKey) -> bool {
        let id = self
            .sessions
            .iter()
            .find(|(_, e)| e.listener == l && e.key == key && e.evictable)
            .map(|(id, _)| *id);
        match id.and_then(|id| self.remove(id)) {
            Some(e) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

fn lock(m: &Mutex<Books>) -> MutexGuard<'_, Books> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts open sessions; a [`Slot`] gives its place back on drop.
#[derive(Clone, Default)]
pub struct ConnLimiter {
    books: Arc<Mutex<Books>>,
}

/// A newcomer's place, and whether another session was evicted to make it.
pub struct Admitted {
    pub slot: Slot,
    pub evicted: bool,
}

impl ConnLimiter {
    /// Admits a connection from `ip` on `role`'s listener. `trusted` (in `trusted_networks`)
    /// is exempt from the per-address cap, may use the reserve and is never evicted. The
    /// per-address cap is checked first; when a budget is full, a newcomer whose address holds
    /// at least two fewer evictable sessions on this listener than the heaviest holder takes
    /// the place of that holder's oldest one.
    pub fn admit(
        &self,
        role: Role,
        ip: IpAddr,
        trusted: bool,
        b: Budget,
    ) -> Result<Admitted, Refusal> {
        let key = addr_key(ip);
        let l = index(role);
        let mut books = lock(&self.books);
        if !trusted && books.per_addr.get(&key).copied().unwrap_or(0) >= b.per_address {
            return Err(Refusal::PerAddress);
        }
        let mut evicted = false;
        if let Some(why) = books.misfit(l, role, trusted, b, 0) {
            let mine = if trusted {
                0
            } else {
                books.held.get(&(l, key)).copied().unwrap_or(0)
            };
            let victim = books.heaviest(l).filter(|(_, n)| mine + 1 < *n);
            match victim {
                Some((v, _)) if books.misfit(l, role, trusted, b, 1).is_none() => {
                    evicted = books.evict(l, v);
                }
                _ => return Err(why),
            }
        }
        let id = books.next_id;
        books.next_id += 1;
        let cancel = CancellationToken::new();
        books.total += 1;
        books.open[l] += 1;
        *books.per_addr.entry(key).or_insert(0) += 1;
        if !trusted {
            books.unauth[l] += 1;
            *books.held.entry((l, key)).or_insert(0) += 1;
        }
        let entry = Entry {
            listener: l,
            key,
            cancel: cancel.clone(),
            evictable: !trusted,
        };
        books.sessions.insert(id, entry);
        let slot = Slot {
            books: self.books.clone(),
            id,
            listener: l,
            cancel,
            budget: b,
            moved: Default::default(),
        };
        Ok(Admitted { slot, evicted })
    }

    /// Open sessions over all listeners.
    pub fn open(&self) -> usize {
        lock(&self.books).total
    }
}

/// One session's place in the books.
pub struct Slot {
    books: Arc<Mutex<Books>>,
    id: u64,
    listener: usize,
    cancel: CancellationToken,
    budget: Budget,
    /// Set by the first [`Slot::authenticated`]: the later calls (one per read) skip the lock.
    moved: std::sync::atomic::AtomicBool,
}

impl Slot {
    /// Cancelled when a newcomer from a lighter address took this session's place.
    pub fn evicted(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The session authenticated: it may use the reserve and is no longer evicted. Idempotent.
    pub fn authenticated(&self) {
        if self.moved.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut books = lock(&self.books);
        let b = &mut *books;
        if let Some(e) = b.sessions.get_mut(&self.id).filter(|e| e.evictable) {
            e.evictable = false;
            b.unauth[e.listener] = b.unauth[e.listener].saturating_sub(1);
            dec(&mut b.held, (e.listener, e.key));
        }
    }

    /// This listener (or the process) holds three quarters of its budget or more: the
    /// session's unauthenticated deadlines shrink to `limits.stress_timeout`.
    pub fn stressed(&self) -> bool {
        let books = lock(&self.books);
        let b = self.budget;
        books.open[self.listener] * 4 >= b.per_listener * 3 || books.total * 4 >= b.total * 3
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.books).remove(self.id);
    }
}

#[cfg(test)]
#[path = "conns_tests.rs"]
mod tests;
