//! Waiting on what a test can only look at from outside (a CLI listing, a scrape, a process's
//! exit): poll with a deadline, failing with what was seen last. Never a bare sleep.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How long a poll waits between two looks.
pub const EVERY: Duration = Duration::from_millis(50);

/// Calls `probe` until it returns `Ok`, and returns that; fails after `timeout` with `what` and
/// the last `Err` it returned.
pub async fn poll<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last:?}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `cond` until it holds; fails after `timeout` naming `what`.
pub async fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    poll(
        what,
        timeout,
        || if cond() { Ok(()) } else { Err("not yet") },
    )
    .await
}

/// Waits (blocking, for threads outside a runtime) for `child` to exit; `None` after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
