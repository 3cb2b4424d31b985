//! Storage health at the store's edge: noting failed writes, the space monitor's check, and
//! reopening the database in place once space is back (`health.rs` has the state).
//!
//! Why reopen: sled 0.34 keeps the first I/O error of a log write (its "global error") and
//! fails every later write and flush with it until the database is opened again, so freeing
//! space alone does not bring a poisoned database back. A reopen swaps the `Inner` every
//! `Store` clone reads through: the old one is taken out (callers meanwhile get
//! `StoreError::Reopening`, a 4xx), the monitor waits until the last user of it has let go
//! (sled's file lock goes with it), and opens the directory again: sled recovers its log up to
//! the last complete flush — everything acknowledged — and the spool keeps every segment a
//! reference points into.

use super::{Inner, Store, StoreError, health};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a reopen waits for the old database's last users, and for its file lock.
const LET_GO: Duration = Duration::from_secs(5);

/// Key of the probe write in `meta`.
const PROBE: &str = "storage_probe";

impl Store {
    /// The storage's state: free space, floor, failed write.
    pub fn storage(&self) -> health::Storage {
        self.shared.health.get()
    }

    /// Why new mail (and any other new write from outside, like a sign-up) is refused now,
    /// or `None`. Checked before a transaction starts and again before the message is stored.
    pub fn refusal(&self) -> Option<String> {
        self.storage().reason()
    }

    /// Passes `result` through, noting an I/O error (ENOSPC, EIO) as a failed write: the store
    /// refuses new mail from then until `check_storage` has seen it recover.
    pub(super) fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result
            && e.is_io()
            && !matches!(e, StoreError::Reopening)
        {
            let error = e.to_string();
            if let Some(t) = self.shared.health.update(|s| s.failed = Some(error)) {
                log(&t);
            }
        }
        result
    }

    /// The space monitor's tick (blocking: `statvfs`, and when recovering a probe write, a
    /// flush and perhaps a reopen). `floor` is `limits.min_free_space`. Logs one line when
    /// the store starts or stops refusing new mail, and returns that change.
    pub fn check_storage(&self, floor: u64) -> Option<health::Transition> {
        let free = health::free_space(&self.shared.dir);
        if let Err(e) = &free {
            tracing::warn!(error = %e, dir = %self.shared.dir.display(), "cannot read free space");
        }
        let mut changed = self.shared.health.update(|s| {
            s.floor = floor;
            if let Ok(f) = free {
                s.free = Some(f);
            }
        });
        let st = self.storage();
        if st.failed.is_some() && !st.low() {
            let recovered = match self.probe() {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(error = %e, "the database fails writes; reopening it in place");
                    self.reopen()
                }
            };
            if recovered {
                changed = self.shared.health.update(|s| s.failed = None).or(changed);
            }
        }
        if let Some(t) = &changed {
            log(t);
        }
        changed
    }

    /// One small write made durable, through the same flush as every other write.
    fn probe(&self) -> Result<(), StoreError> {
        let inner = self.inner()?;
        inner
            .meta
            .insert(PROBE, &super::now_micros().to_be_bytes())?;
        super::flush::flush_now(&inner.commit).map_err(StoreError::from)
    }

    /// Reopens the database in place; true once it is open and takes writes again.
    fn reopen(&self) -> bool {
        let old = {
            let mut current = self
                .shared
                .current
                .write()
                .unwrap_or_else(|p| p.into_inner());
            current.take()
        };
        if let Some(old) = old {
            let weak = Arc::downgrade(&old);
            drop(old);
            if !wait(LET_GO, || weak.strong_count() == 0) {
                // Someone still holds it (a long read); put it back and try on the next tick.
                if let Some(old) = weak.upgrade() {
                    self.put(old);
                }
                tracing::warn!("the database is still in use; reopening it on the next check");
                return false;
            }
        }
        let started = Instant::now();
        loop {
            match super::open_inner(&self.shared.dir) {
                Ok((inner, last_id)) => {
                    self.shared
                        .last_id
                        .fetch_max(last_id, std::sync::atomic::Ordering::AcqRel);
                    let inner = Arc::new(inner);
                    let probed = self.put_probed(inner);
                    if probed {
                        self.shared.health.update(|s| s.reopened += 1);
                        tracing::info!("reopened the database in place");
                    }
                    return probed;
                }
                // sled's lock can outlive the last handle for a moment (deferred frees).
                Err(e) if started.elapsed() < LET_GO => {
                    tracing::debug!(error = %e, "reopening the database");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the database; trying again");
                    return false;
                }
            }
        }
    }

    /// Installs a freshly opened database and checks it takes a durable write.
    fn put_probed(&self, inner: Arc<Inner>) -> bool {
        self.put(inner);
        match self.probe() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the reopened database fails writes");
                false
            }
        }
    }

    fn put(&self, inner: Arc<Inner>) {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *current = Some(inner);
    }
}

fn log(t: &health::Transition) {
    match t {
        health::Transition::Refusing(reason) => {
            tracing::warn!(%reason, "refusing new mail: storage")
        }
        health::Transition::Accepting => tracing::warn!("storage recovered: accepting new mail"),
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` has passed.
fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
