//! Consistent copies of the whole database: every tree copied into a fresh sled database
//! while the write gate is held exclusively (`herald backup`), and per-tree record counts to
//! check a copy against (`herald restore`). The rewrite after a forget uses the same copy.
//!
//! sled has no point-in-time snapshot across trees, and its iterators see writes made while
//! they run. Every write in the store holds the gate's shared side for the duration of its
//! sled call (a multi-tree transaction, or one insert/remove), so while a snapshot holds the
//! exclusive side no write is half done and none starts: the copy is the state between two
//! writes, which keeps every invariant a crash keeps (a message with its body, deliveries and
//! due entries, or none of them; a member with its id). Reads go on meanwhile; writers wait
//! for the copy, not for its flush. The gate counts the writes that had to wait for it, so a
//! backup can say how many writers it held off.

use super::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LockResult, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

/// The write gate: shared by every write, exclusive for a snapshot.
#[derive(Debug, Default)]
pub(super) struct Gate {
    lock: RwLock<()>,
    /// Writes that found the gate closed (a snapshot holding or waiting for it) and waited.
    waited: AtomicU64,
}

impl Gate {
    /// The shared side, counting the caller among the waiters when a snapshot has the gate.
    pub(super) fn read(&self) -> LockResult<RwLockReadGuard<'_, ()>> {
        match self.lock.try_read() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Err(p),
            Err(TryLockError::WouldBlock) => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                self.lock.read()
            }
        }
    }

    /// The exclusive side (a snapshot).
    fn write(&self) -> LockResult<RwLockWriteGuard<'_, ()>> {
        self.lock.write()
    }
}

/// Records per tree, by tree name.
pub type TreeCounts = BTreeMap<String, u64>;

/// Copies every tree of `from` (whose body spool is in `spool`) into `to` (which should be
/// empty); returns the counts. Spooled bodies are copied inline, into `bodies`: the copy is one
/// self-contained sled database.
pub(super) fn copy_trees(
    from: &sled::Db,
    spool: &Path,
    to: &sled::Db,
) -> Result<TreeCounts, StoreError> {
    let mut counts = TreeCounts::new();
    for name in from.tree_names() {
        if name.as_ref() == SPOOLED {
            continue;
        }
        let (source, dest) = (from.open_tree(&name)?, to.open_tree(&name)?);
        let mut n = 0u64;
        for kv in source.iter() {
            let (k, v) = kv?;
            dest.insert(k, v)?;
            n += 1;
        }
        counts.insert(String::from_utf8_lossy(&name).into_owned(), n);
    }
    let bodies = to.open_tree(BODIES)?;
    let mut n = 0u64;
    for kv in from.open_tree(SPOOLED)?.iter() {
        let (k, v) = kv?;
        let body = super::spool::read_from(spool, super::queue::decode_ref(&v)?)?;
        bodies.insert(k, body)?;
        n += 1;
    }
    *counts.entry("bodies".into()).or_default() += n;
    to.open_tree(SPOOLED)?;
    counts.insert("spooled".into(), 0);
    Ok(counts)
}

const SPOOLED: &[u8] = b"spooled";
const BODIES: &[u8] = b"bodies";

fn open_fresh(dir: &Path) -> Result<sled::Db, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: dir.display().to_string(),
        reason,
    };
    if dir.exists() {
        return Err(open_err("already exists".into()));
    }
    sled::Config::new()
        .path(dir)
        .create_new(true)
        .open()
        .map_err(|e| open_err(e.to_string()))
}

impl Store {
    /// Writes a consistent copy of the database into `dest` (which must not exist) and flushes
    /// it. Writers pause while the trees are copied; readers do not.
    pub fn snapshot(&self, dest: &Path) -> Result<TreeCounts, StoreError> {
        let copy = open_fresh(dest)?;
        let counts = {
            let _exclusive = self.shared.gate.write().unwrap_or_else(|p| p.into_inner());
            copy_trees(
                &self.inner()?.db,
                &self.inner()?.dir.join(super::spool::DIR),
                &copy,
            )?
        };
        copy.flush()?;
        Ok(counts)
    }

    /// How many writes so far have waited on the write gate for a snapshot (since the store
    /// was opened): the difference across a backup is the writers it held off.
    pub fn gate_waits(&self) -> u64 {
        self.shared.gate.waited.load(Ordering::Relaxed)
    }

    /// Records per tree, to check a restored copy against its manifest.
    pub fn counts(&self) -> Result<TreeCounts, StoreError> {
        let mut counts = TreeCounts::new();
        for name in self.inner()?.db.tree_names() {
            let n = self.inner()?.db.open_tree(&name)?.len() as u64;
            counts.insert(String::from_utf8_lossy(&name).into_owned(), n);
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::message;
    use super::super::{Consent, MemberStatus, NewMember};
    use super::*;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn member(address: &str) -> NewMember {
        NewMember {
            address: address.into(),
            name: None,
            status: MemberStatus::Confirmed,
            consent: Consent {
                source: "admin: test".into(),
                at: 0,
                ip: None,
            },
        }
    }

    /// A write that meets the gate held for a snapshot waits for it and is counted; a write
    /// with the gate open is not.
    #[test]
    fn a_write_held_off_by_the_gate_is_counted() {
        let dir = ok(tempfile::tempdir());
        let store = ok(Store::open(&dir.path().join("db")));
        ok(store.secret("open"));
        assert_eq!(store.gate_waits(), 0);
        let exclusive = ok(store.shared.gate.write());
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || store.secret("held").map(|_| ()))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.gate_waits() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never waited"
            );
            std::thread::yield_now();
        }
        assert!(!writer.is_finished(), "the write went past the closed gate");
        drop(exclusive);
        ok(ok(writer.join().map_err(|_| "writer panicked")));
        assert_eq!(store.gate_waits(), 1);
    }

    /// A snapshot taken while writers run holds whole messages only, opens as a store with
    /// the same secrets, and hands out member ids above every copied one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_under_writes_is_whole_and_keeps_ids() {
        let dir = ok(tempfile::tempdir());
        let store = ok(Store::open(&dir.path().join("db")));
        let secret = ok(store.secret("lists"));
        ok(store.add_members("news", vec![member("a@x.test")]).await);
        let mut writers = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let id = store.allocate_id();
                    ok(store
                        .insert_message(id, message(&["x@y.org", "z@y.org"]))
                        .await);
                }
            }));
        }
        let dest = dir.path().join("copy");
        let snap = {
            let (store, dest) = (store.clone(), dest.clone());
            ok(ok(tokio::task::spawn_blocking(move || {
                store.snapshot(&dest)
            })
            .await))
        };
        for w in writers {
            ok(w.await);
        }
        drop(store);
        let copy = ok(Store::open(&dest));
        assert_eq!(ok(copy.counts()), snap);
        let queue = ok(copy.list_queue());
        assert_eq!(snap.get("messages").copied(), Some(queue.len() as u64));
        assert_eq!(
            snap.get("deliveries").copied(),
            Some(2 * queue.len() as u64)
        );
        for entry in &queue {
            assert_eq!(entry.deliveries.len(), 2);
            assert!(ok(copy.get_body(entry.message.id)).is_some());
        }
        assert_eq!(ok(copy.secret("lists")), secret);
        let old = ok(copy.member("news", "a@x.test")).map(|m| m.id);
        let added = ok(copy.add_members("news", vec![member("b@x.test")]).await);
        assert!(Some(added[0].0.id) > old, "{added:?} after {old:?}");
        assert!(matches!(copy.snapshot(&dest), Err(StoreError::Open { .. })));
    }
}
