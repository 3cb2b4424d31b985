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

/// Free space a failed store needs before it tries again, whatever the floor (which may be 0):
/// a database that failed on a full disk is not reopened into the same full disk.
const RECOVERY_ROOM: u64 = 4 << 20;

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
        let room = st.free.is_none_or(|f| f >= st.floor.max(RECOVERY_ROOM));
        if st.failed.is_some() && room {
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

#[cfg(test)]
mod tests {
    use super::super::tests::message;
    use super::super::{FlushError, Store, StoreError};

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reopen_in_place_is_seen_by_every_clone_and_keeps_what_was_flushed() {
        let dir = ok(tempfile::tempdir());
        let store = ok(Store::open(dir.path()));
        let clone = store.clone();
        let (a, big) = (store.allocate_id(), store.allocate_id());
        ok(store.insert_message(a, message(&["x@y.org"])).await);
        let mut large = message(&["x@y.org"]);
        large.body = vec![b'l'; 40 << 10];
        ok(store.insert_message(big, large).await);
        let s = store.clone();
        assert!(ok(tokio::task::spawn_blocking(move || s.reopen()).await));
        assert_eq!(store.storage().reopened, 1);
        assert!(
            ok(clone.message(a)).is_some(),
            "a clone reads the reopened database"
        );
        assert_eq!(ok(clone.get_body(big)).map(|b| b.len()), Some(40 << 10));
        let b = clone.allocate_id();
        assert!(b > big, "ids stay unique across a reopen");
        ok(clone.insert_message(b, message(&["x@y.org"])).await);
        drop((store, clone));
        let store = ok(Store::open(dir.path()));
        assert_eq!(store.queue_len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_refuses_until_a_probe_succeeds_above_the_floor() {
        let dir = ok(tempfile::tempdir());
        let store = ok(Store::open(dir.path()));
        assert_eq!(store.refusal(), None);
        let failed: Result<(), _> = Err(StoreError::Flush(FlushError::Io("No space left".into())));
        assert!(store.noted(failed).is_err());
        let reason = store.refusal().unwrap_or_default();
        assert!(reason.contains("No space left"), "{reason}");
        // Not an I/O error: no trip.
        let corrupt: Result<(), _> = Err(StoreError::Transaction("conflict".into()));
        let _ = store.noted(corrupt);
        // A floor above the free space: still refused, and for the floor now.
        let s = store.clone();
        let t = ok(tokio::task::spawn_blocking(move || s.check_storage(u64::MAX)).await);
        assert_eq!(t, None, "refusing already: no second transition");
        assert!(store.refusal().is_some_and(|r| r.contains("free, floor")));
        // Space back: the probe write succeeds, no reopen needed.
        let s = store.clone();
        let t = ok(tokio::task::spawn_blocking(move || s.check_storage(1 << 20)).await);
        assert_eq!(t, Some(super::health::Transition::Accepting));
        assert_eq!(store.refusal(), None);
        assert_eq!(store.storage().reopened, 0);
        assert!(store.storage().free.is_some_and(|f| f >= 1 << 20));
    }
}
