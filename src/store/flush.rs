//! Group commit: many writers share one `db.flush()`.
//!
//! sled's `flush_async()` deadlocks with 7+ concurrent callers (DESIGN §9), so writers never call
//! it. Instead a writer records its insert, then calls [`GroupCommit::durable`]: the first writer
//! that finds no flush running starts one on a blocking thread (in a detached task, so a cancelled
//! writer cannot wedge the state); every writer waits for a flush that *began after* its insert.

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
    state: Arc<Mutex<State>>,
    done: Arc<watch::Sender<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("flushing the database failed: {0}")]
    Io(String),
}

impl GroupCommit {
    pub fn new(db: sled::Db) -> Self {
        let (tx, _rx) = watch::channel(0);
        GroupCommit {
            db,
            state: Arc::default(),
            done: Arc::new(tx),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        let this = self.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let n = {
                let mut st = this.lock();
                st.started += 1;
                st.started
            };
            let db = this.db.clone();
            let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            {
                let mut st = this.lock();
                st.running = false;
                match result {
                    Ok(()) => st.completed = st.completed.max(n),
                    Err(e) => {
                        st.failed = st.failed.max(n);
                        st.error = e;
                    }
                }
            }
            this.done.send_modify(|v| *v = n);
        });
    }
}
