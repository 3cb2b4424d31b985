//! Group commit: many writers share one `db.flush()`.
//!
//! sled's `flush_async()` deadlocks with 7+ concurrent callers (DESIGN §9), so writers never call
//! it. Instead a writer records its insert, then calls [`GroupCommit::durable`]: the first writer
//! that finds no flush running starts one on a blocking thread (in a detached task, so a cancelled
//! writer cannot wedge the state); every writer waits for a flush that *began after* its insert.
//! A flush syncs the body spool, then runs sled's `flush()`, then a `syncfs` of the database's
//! file system, because sled's own flush is not enough against a power cut (see
//! [`flush_and_sync`]).

use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct State {
    /// Number of flushes started so far.
    started: u64,
    /// Highest flush number that completed successfully.
    completed: u64,
    /// Highest flush number that failed, and why.
    failed: u64,
    error: String,
    running: bool,
}

#[derive(Clone)]
pub struct GroupCommit {
    db: sled::Db,
    spool: Arc<super::spool::Spool>,
    /// The database directory, opened once: its file system is synced after each flush.
    dir: Arc<std::fs::File>,
    state: Arc<Mutex<State>>,
    done: Arc<watch::Sender<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("flushing the database failed: {0}")]
    Io(String),
}

impl GroupCommit {
    pub fn new(
        db: sled::Db,
        dir: &std::path::Path,
        spool: Arc<super::spool::Spool>,
    ) -> std::io::Result<Self> {
        let (tx, _rx) = watch::channel(0);
        Ok(GroupCommit {
            db,
            spool,
            dir: Arc::new(std::fs::File::open(dir)?),
            state: Arc::default(),
            done: Arc::new(tx),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Returns once every write made before this call is on disk.
    pub async fn durable(&self) -> Result<(), FlushError> {
        // A flush numbered `started + 1` is taken only after this point, so it covers our write.
        let target = self.lock().started + 1;
        let mut rx = self.done.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let mut st = self.lock();
                if st.completed >= target {
                    return Ok(());
                }
                if st.failed >= target {
                    return Err(FlushError::Io(st.error.clone()));
                }
                if !st.running {
                    st.running = true;
                    self.start_flush();
                }
            }
            if rx.changed().await.is_err() {
                return Err(FlushError::Io("flusher went away".into()));
            }
        }
    }

    /// Runs one flush in a detached task (a cancelled writer cannot leave `running` set).
    ///
    /// The task yields once before it takes its number: writers that the runtime has already
    /// woken insert in the meantime and ride along. At 50 concurrent 64 KiB submissions this cut
    /// flushes from ~1.8 to ~7 messages each and raised the accept rate by about a tenth
    /// (BENCHMARKS.md); an idle daemon loses nothing, the yield returns at once.
    fn start_flush(&self) {
        // The task holds the database only while it flushes: once a writer sees its flush
        // done, dropping the last `Store` closes the database (a reopen in the same process
        // finds it unlocked).
        let (state, done) = (self.state.clone(), self.done.clone());
        let (db, dir, spool) = (self.db.clone(), self.dir.clone(), self.spool.clone());
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let n = {
                let mut st = lock(&state);
                st.started += 1;
                st.started
            };
            let flush = move || flush_and_sync(&db, &dir, &spool);
            let result = match tokio::task::spawn_blocking(flush).await {
                Ok(result) => result,
                Err(e) => Err(e.to_string()),
            };
            {
                let mut st = lock(&state);
                st.running = false;
                match result {
                    Ok(()) => st.completed = st.completed.max(n),
                    Err(e) => {
                        st.failed = st.failed.max(n);
                        st.error = e;
                    }
                }
            }
            done.send_modify(|v| *v = n);
        });
    }
}

/// One flush run now on the calling (blocking) thread, outside the group: the space monitor's
/// probe after a failed write.
pub(super) fn flush_now(commit: &GroupCommit) -> Result<(), FlushError> {
    flush_and_sync(&commit.db, &commit.dir, &commit.spool).map_err(FlushError::Io)
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The body spool is synced first, so no reference on disk points at a body that is not.
/// sled's `flush()` makes its log stable with `sync_file_range`, which neither commits file
/// metadata nor flushes the disk's cache, and it never syncs blob files (pages over 128 KiB).
/// Syncing the database's file system afterwards covers all three. Spool segments that were
/// spent before the flush began are deleted once it is done.
fn flush_and_sync(
    db: &sled::Db,
    dir: &std::fs::File,
    spool: &super::spool::Spool,
) -> Result<(), String> {
    let spent = spool.sync().map_err(|e| e.to_string())?;
    let flushed = db.flush().map_err(|e| e.to_string()).and_then(|_| {
        sync_file_system(dir).map_err(|e| format!("syncing the database's file system: {e}"))
    });
    match &flushed {
        Ok(()) => spool.delete(&spent),
        Err(_) => spool.spend_later(&spent),
    }
    flushed
}

#[cfg(target_os = "linux")]
fn sync_file_system(dir: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs takes a file descriptor that `dir` keeps open for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(dir: &std::fs::File) -> std::io::Result<()> {
    dir.sync_all()
}
