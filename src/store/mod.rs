//! The store: the only module that imports sled. It owns the on-disk layout (trees, keys,
//! encodings, schema version) and durability (group commit). Everything else sees plain records.

mod backup;
mod bounces;
mod delivery;
mod expand;
mod flush;
mod forget;
mod health;
mod lists;
mod queue;
mod records;
mod recover;
mod spool;
mod suppression;
#[cfg(test)]
mod testing;

pub use backup::TreeCounts;
pub use delivery::{AttemptResult, DueDelivery, Recorded};
pub use expand::Expanded;
pub use flush::FlushError;
pub use forget::Forgotten;
pub use health::{Storage, Transition};
pub use lists::{Added, NewMember};
pub use queue::{Body, QueueEntry};
pub use records::*;
pub use spool::SpoolError;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped when the on-disk layout changes; a database from a newer Herald is refused.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    #[error("database transaction failed: {0}")]
    Transaction(String),
    #[error(transparent)]
    Flush(#[from] FlushError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("corrupt record in tree {tree}: {reason}")]
    Corrupt { tree: &'static str, reason: String },
    #[error("database schema version {found} is newer than this Herald supports ({supported})")]
    Schema { found: u32, supported: u32 },
    #[error("cannot open database in {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("the database is being reopened after a failed write; try again shortly")]
    Reopening,
}

impl StoreError {
    /// Stored data is damaged (a record that does not decode, a body that fails its checksum),
    /// as opposed to an error that may go away (I/O).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. } | StoreError::Spool(SpoolError::Checksum { .. })
        )
    }

    /// A failed write to the disk (ENOSPC, EIO, …): the store refuses new mail until it has
    /// recovered (`health.rs`).
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Db(sled::Error::Io(_))
                | StoreError::Flush(_)
                | StoreError::Spool(SpoolError::Io { .. })
                | StoreError::Reopening
        )
    }
}

/// A handle to the database; cheap to clone. Every clone sees the same database, also after
/// it has been reopened in place (`recover.rs`).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// What outlives a reopen of the database.
struct Shared {
    /// The open database; `None` only while it is being reopened (or a reopen failed).
    current: std::sync::RwLock<Option<Arc<Inner>>>,
    /// Where the database lives.
    dir: std::path::PathBuf,
    health: health::Health,
    last_id: AtomicU64,
    /// Every write holds this shared while it changes sled; a snapshot holds it exclusively
    /// (`backup.rs`), so it sees no write half done. Taken per write, never nested.
    gate: backup::Gate,
}

struct Inner {
    db: sled::Db,
    messages: sled::Tree,
    /// id → body, for bodies up to 16 KiB (and every body copied by a backup or a rewrite,
    /// or written before the spool existed).
    bodies: sled::Tree,
    /// id → where the body is in the spool.
    spooled: sled::Tree,
    spool: Arc<spool::Spool>,
    deliveries: sled::Tree,
    due: sled::Tree,
    suppression: sled::Tree,
    meta: sled::Tree,
    members: sled::Tree,
    member_ids: sled::Tree,
    expansions: sled::Tree,
    soft_bounces: sled::Tree,
    returns: sled::Tree,
    /// The key of forgotten addresses' hashes, read once.
    forget_key: std::sync::OnceLock<[u8; 32]>,
    /// Where the database lives (a forget leaves a marker beside it).
    dir: std::path::PathBuf,
    commit: flush::GroupCommit,
}

/// The trees a queued message lives in, in the order the queue's transactions take them.
type QueueTrees<'a> = (
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
    &'a sled::Tree,
);

impl Inner {
    /// `messages`, `bodies`, `spooled`, `deliveries`, `due`, `expansions`.
    fn queue_trees(&self) -> QueueTrees<'_> {
        (
            &self.messages,
            &self.bodies,
            &self.spooled,
            &self.deliveries,
            &self.due,
            &self.expansions,
        )
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`. The storage state starts unprobed (ok) with
    /// the default floor; the daemon's `check_storage` sets the configured one.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let (inner, last_id) = open_inner(dir)?;
        Ok(Store {
            shared: Arc::new(Shared {
                current: std::sync::RwLock::new(Some(Arc::new(inner))),
                dir: dir.to_path_buf(),
                health: health::Health::new(1 << 30),
                last_id: AtomicU64::new(last_id),
                gate: backup::Gate::default(),
            }),
        })
    }

    /// The open database, or `Reopening` while it is being reopened.
    fn inner(&self) -> Result<Arc<Inner>, StoreError> {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner());
        current.clone().ok_or(StoreError::Reopening)
    }

    /// Waits until every write made so far is on disk (shared flush).
    pub async fn durable(&self) -> Result<(), StoreError> {
        let commit = self.inner()?.commit.clone();
        let flushed = commit.durable().await.map_err(StoreError::from);
        self.noted(flushed)
    }

    /// The shared side of the write gate: taken around every change to sled, never while
    /// already held (a waiting snapshot would deadlock a nested reader).
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.shared.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh, unique, time-ordered queue id.
    pub fn allocate_id(&self) -> QueueId {
        let now = now_micros();
        let mut last = self.shared.last_id.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.shared.last_id.compare_exchange_weak(
                last,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return QueueId(next),
                Err(actual) => last = actual,
            }
        }
    }

    /// Approximate bytes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner()?.db.size_on_disk()?)
    }
}

/// How long an open waits for sled's file lock to be let go: the last flush of a handle just
/// dropped (its group commit thread) can hold it for a moment after the drop.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn open_sled(dir: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(256 << 20)
            .flush_every_ms(Some(1000))
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Opens the database and the spool in `dir`; also the id of the newest message.
fn open_inner(dir: &Path) -> Result<(Inner, u64), StoreError> {
    forget::rewrite_if_pending(dir)?;
    let db = open_sled(dir).map_err(|e| StoreError::Open {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    check_schema(&db)?;
    lists::init_member_ids(&db)?;
    let messages = db.open_tree("messages")?;
    let last_id = match messages.last()? {
        Some((k, _)) => queue::decode_id(&k)?.0,
        None => 0,
    };
    let spooled = db.open_tree("spooled")?;
    // Start-up deletes the segments nothing points into, so every reference must be read:
    // one skipped would lose every body in its segment. A bad one stops the start instead.
    let refs = body_refs(&spooled)?;
    let spool = Arc::new(spool::Spool::open(&dir.join(spool::DIR), refs.into_iter())?);
    let commit =
        flush::GroupCommit::new(db.clone(), dir, spool.clone()).map_err(|e| StoreError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    let inner = Inner {
        messages,
        bodies: db.open_tree("bodies")?,
        spooled,
        spool,
        deliveries: db.open_tree("deliveries")?,
        due: db.open_tree("due")?,
        suppression: db.open_tree("suppression")?,
        meta: db.open_tree("meta")?,
        members: db.open_tree("members")?,
        member_ids: db.open_tree("member_ids")?,
        expansions: db.open_tree("expansions")?,
        soft_bounces: db.open_tree("soft_bounces")?,
        returns: db.open_tree("returns")?,
        forget_key: std::sync::OnceLock::new(),
        dir: dir.to_path_buf(),
        commit,
        db,
    };
    Ok((inner, last_id))
}

/// Every body reference in `spooled`, or the first one that cannot be read or decoded,
/// named by its queue id.
fn body_refs(spooled: &sled::Tree) -> Result<Vec<spool::BodyRef>, StoreError> {
    spooled
        .iter()
        .map(|kv| {
            let (k, v) = kv?;
            spool::BodyRef::decode(&v).ok_or_else(|| StoreError::Corrupt {
                tree: "spooled",
                reason: format!(
                    "the body reference of message {} is {} bytes, not 20; refusing to start, \
                     since start-up would delete the spool segment it points into and with it \
                     every body stored there",
                    queue::decode_id(&k).map_or_else(|_| format!("{k:?}"), |id| id.to_string()),
                    v.len()
                ),
            })
        })
        .collect()
}

fn check_schema(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    match meta.get("schema_version")? {
        None => {
            meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
            Ok(())
        }
        Some(v) => {
            let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                tree: "meta",
                reason: "schema_version is not 4 bytes".into(),
            })?;
            let found = u32::from_be_bytes(bytes);
            if found > SCHEMA_VERSION {
                return Err(StoreError::Schema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Ok(())
        }
    }
}

pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn now_secs() -> u64 {
    now_micros() / 1_000_000
}

#[cfg(test)]
mod tests;
