//! Group commit: many writers share one `db.flush()`.
//!
//! sled's `flush_async()` deadlocks with 7+ concurrent callers (DESIGN §9), so writers never call
//! it. Instead a writer records its insert, then calls [`GroupCommit::durable`]: the first writer
//! that finds no flush running starts one on a blocking thread (in a detached task, so a cancelled
//! writer cannot wedge the state); the others wait for a flush that *began after* their insert.

use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct State {
    /// Number of flushes started so far.
    started: u64,
    /// Highest flush number that completed successfully.
    completed: u64,
    /// Highest flush number that failed.
    failed: u64,
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
        let target = self.lock().started + 1;
        let mut rx = self.done.subscribe();
        loop {
            rx.borrow_and_update();
            let lead = {
                let mut st = self.lock();
                if st.completed >= target {
                    return Ok(());
                }
                if st.failed >= target {
                    return Err(FlushError::Io("an earlier flush failed".into()));
                }
                if st.running {
                    None
                } else {
                    st.running = true;
                    st.started += 1;
                    Some(st.started)
                }
            };
            match lead {
                Some(n) => self.run_flush(n).await?,
                None => {
                    if rx.changed().await.is_err() {
                        return Err(FlushError::Io("flusher went away".into()));
                    }
                }
            }
        }
    }

    async fn run_flush(&self, n: u64) -> Result<(), FlushError> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let db = this.db.clone();
            let result = tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
            {
                let mut st = this.lock();
                st.running = false;
                match &result {
                    Ok(()) => st.completed = st.completed.max(n),
                    Err(_) => st.failed = st.failed.max(n),
                }
            }
            this.done.send_modify(|v| *v = n);
            result
        });
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(FlushError::Io(e)),
            Err(e) => Err(FlushError::Io(e.to_string())),
        }
    }
}
