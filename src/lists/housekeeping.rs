//! List housekeeping on its own clock: once an interval, sign-ups left unconfirmed past
//! their 7 days are forgotten and remembered VERP deliveries too old for a bounce to come
//! back are pruned. It runs on a real interval, whatever else wakes the daemon: tying it to
//! the expander's sleep let every accepted message postpone it, forever on a busy server.

use super::consent::PENDING_MAX_AGE;
use crate::config::Settings;
use crate::store::{QueueId, Store, now_micros, now_secs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often housekeeping runs.
pub const EVERY: Duration = Duration::from_secs(3600);
/// VERP deliveries are remembered at least this long (microseconds: 30 days).
const RETURNS_MIN: u64 = 30 * 24 * 3600 * 1_000_000;

/// Runs until `stop`: once at start, then every [`EVERY`].
pub async fn run(store: Store, settings: watch::Receiver<Arc<Settings>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let soft_window = settings.borrow().config.bounce.soft_window.0;
        once(&store, soft_window).await;
    }
}

/// One round. Failures are logged and tried again at the next round; nothing is decided
/// from them.
async fn once(store: &Store, soft_window: Duration) {
    // Where VERP deliveries went is kept as long as bounces may still come back.
    let keep = (soft_window.as_micros() as u64).max(RETURNS_MIN);
    match store.prune_returns(QueueId(now_micros().saturating_sub(keep))) {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "pruned remembered VERP deliveries"),
        Err(e) => tracing::error!(error = %e, "pruning remembered VERP deliveries failed"),
    }
    match store
        .expire_pending(now_secs().saturating_sub(PENDING_MAX_AGE))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(members = n, "expired unconfirmed sign-ups"),
        Err(e) => tracing::error!(error = %e, "expiring unconfirmed sign-ups failed"),
    }
}
