//! Keeping the long-running daemon's memory from ratcheting up (`herald serve` only).
//!
//! glibc raises its mmap threshold each time a large block is freed, up to 32 MiB. After that,
//! sled's big pages (consolidated leaves of 64 KiB bodies reach 1 MiB) come from the heap
//! arenas, which rarely shrink: in a 64 KiB benchmark the daemon's PSS grew from about 50 to
//! 105 MB over 20,000 messages and stayed there. Two remedies, measured in BENCHMARKS.md:
//! - the threshold is fixed at glibc's own default (128 KiB), so blocks that large keep their
//!   own mappings and go back to the system when freed (an operator's `MALLOC_MMAP_THRESHOLD_`
//!   wins);
//! - every few seconds free pages inside the arenas are handed back (`malloc_trim`), so memory
//!   used by a burst is returned once it is over (about 20 MB idle, instead of 50–70).

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often free arena pages are returned; a trim takes well under a millisecond.
const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Applies the threshold, before the runtime starts its threads.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread exists, with a documented parameter and glibc's own default value.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        if ok != 1 {
            eprintln!("herald: could not set the allocator's mmap threshold (mallopt failed)");
        }
    }
}

/// Returns free heap pages to the system every [`TRIM_EVERY`] until `stop`.
pub fn spawn_trimmer(tracker: &TaskTracker, stop: CancellationToken) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    // SAFETY: malloc_trim takes the allocator's own locks; any thread may call it.
                    let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
                }
            }
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (tracker, stop);
}
