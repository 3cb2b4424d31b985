//! Keeping the daemon's memory near what it uses (`herald serve` only).
//!
//! glibc keeps freed memory in its heap arenas, and raises its mmap threshold each time a large
//! block is freed. So after a burst of large messages (sled's consolidated leaves of 64 KiB
//! bodies reach 1 MiB) the daemon stayed at its peak: in a 64 KiB benchmark, PSS grew from
//! about 50 to 105 MB over 20,000 messages and stayed there. Two remedies (BENCHMARKS.md):
//! - the mmap threshold is fixed at 512 KiB, so sled's big pages get their own mappings. This
//!   holds the peak under a 64 KiB load to 55–80 MB instead of 80–105, and costs about 9% of
//!   that load's accept rate in page faults;
//! - once the daemon has been idle for a moment (no message accepted and no delivery attempted
//!   for [`IDLE`]), free arena pages are returned with `malloc_trim`, once per idle spell: about
//!   20–30 MB afterwards. Trimming under load cost a few percent more, so it waits.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long nothing must have happened before memory is returned.
const IDLE: Duration = Duration::from_secs(2);

/// Blocks at least this large (sled's consolidated leaves of large bodies) get their own
/// mappings, returned to the system when freed, instead of growing the arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 512 * 1024;

/// Fixes the mmap threshold, before the runtime starts its threads; an operator's
/// `MALLOC_MMAP_THRESHOLD_` wins.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread exists, with a documented parameter and value.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if ok != 1 {
            eprintln!("herald: could not set the allocator's mmap threshold (mallopt failed)");
        }
    }
}

/// Trims free heap pages once after each busy spell; `activity` is any counter that moves
/// while the daemon works (accepted messages plus delivery attempts).
pub fn spawn_trimmer(
    tracker: &TaskTracker,
    stop: CancellationToken,
    activity: impl Fn() -> u64 + Send + 'static,
) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(IDLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = activity();
        let mut trimmed = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = activity();
            if now != seen {
                (seen, trimmed) = (now, false);
            } else if !trimmed {
                trimmed = true;
                // SAFETY: malloc_trim takes the allocator's own locks; any thread may call it.
                let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
            }
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (tracker, stop, activity);
}
