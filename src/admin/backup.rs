//! The `backup` request: a consistent snapshot written by the daemon itself (the CLI cannot
//! open sled while the daemon runs), off the async threads. Its log line says how long it took
//! and how many writes waited on the store's write gate meanwhile.

use super::{AdminContext, Response};
use std::path::PathBuf;

pub async fn create(ctx: &AdminContext, dir: String) -> Response {
    let (store, data_dir) = (ctx.store.clone(), ctx.data_dir.clone());
    let dest = PathBuf::from(dir);
    let started = std::time::Instant::now();
    let waits_before = ctx.store.gate_waits();
    let done =
        tokio::task::spawn_blocking(move || crate::backup::create(&store, &data_dir, &dest)).await;
    match done {
        Ok(Ok(manifest)) => {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                writers_waited = ctx.store.gate_waits().saturating_sub(waits_before),
                "backup written"
            );
            Response::ok(serde_json::json!(manifest))
        }
        Ok(Err(e)) => Response::err(e.to_string()),
        Err(e) => Response::err(format!("backup task failed: {e}")),
    }
}
