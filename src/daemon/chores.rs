//! The daemon's periodic chores that belong to no listener: the spool compactor, the space
//! monitor and the systemd watchdog. Each runs on the auxiliary tracker until its stop token.

use super::notify;
use crate::config::Settings;
use crate::store::Store;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every half minute, moves the bodies out of sparse spool segments (`store/spool.rs`), so
/// that a few long-deferred messages do not keep whole segments on disk.
pub fn spawn_compactor(tracker: &TaskTracker, stop: CancellationToken, store: Store) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.compact_spool()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(moved)) => {
                    tracing::info!(bodies = moved, "compacted the body spool");
                    if let Err(e) = store.durable().await {
                        tracing::error!(error = %e, "flushing after compacting the body spool");
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "compacting the body spool"),
                Err(e) => tracing::error!(error = %e, "compacting the body spool"),
            }
        }
    });
}

/// Every second, compares the free space on the database's file system with
/// `limits.min_free_space` and, after a failed write, brings the store back once space is
/// back (`store/recover.rs`, which logs each change). Runs on a blocking thread: `statvfs`,
/// and a reopen can take seconds.
pub fn spawn_space_monitor(
    tracker: &TaskTracker,
    stop: CancellationToken,
    store: Store,
    settings: watch::Receiver<Arc<Settings>>,
) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let floor = settings.borrow().config.limits.min_free_space.0;
            let s = store.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || s.check_storage(floor)).await {
                tracing::error!(error = %e, "checking free space");
            }
        }
    });
}

pub fn spawn_watchdog(tracker: &TaskTracker, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => notify(&[NotifyState::Watchdog]),
            }
        }
    });
}
