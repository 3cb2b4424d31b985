//! Pure retry policy: the back-off schedule (`delivery.retry`, last step repeating) and expiry.

use std::time::Duration;

/// Delay before the next attempt after `attempts` failed ones (1-based).
pub fn delay(schedule: &[Duration], attempts: u32) -> Duration {
    let i = (attempts.max(1) - 1) as usize;
    schedule
        .get(i)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(300))
}

/// Whether a message created at `created` (Unix seconds) has outlived `expire` at `now`.
pub fn expired(created: u64, now: u64, expire: Duration) -> bool {
    now.saturating_sub(created) >= expire.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_last_step() {
        let s = [
            Duration::from_secs(300),
            Duration::from_secs(600),
            Duration::from_secs(1800),
        ];
        let got: Vec<u64> = (1..=5).map(|n| delay(&s, n).as_secs()).collect();
        assert_eq!(got, vec![300, 600, 1800, 1800, 1800]);
        assert_eq!(delay(&[], 1).as_secs(), 300);
    }

    #[test]
    fn expiry() {
        assert!(!expired(1000, 1000 + 99, Duration::from_secs(100)));
        assert!(expired(1000, 1000 + 100, Duration::from_secs(100)));
        assert!(
            !expired(2000, 1000, Duration::from_secs(100)),
            "clock went back"
        );
    }
}
