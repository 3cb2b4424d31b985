//! Soft-bounce counters: tree `soft_bounces` (lower-cased address → the times of its recent
//! soft bounces, newest last, at most a bounded number).

use super::queue::{decode, encode};
use super::{Store, StoreError};

fn key(address: &str) -> Vec<u8> {
    address.trim().to_lowercase().into_bytes()
}

impl Store {
    /// Records a soft bounce at `now` and returns how many of the address's soft bounces fall
    /// within the last `window` seconds (this one included). Keeps at most `keep` times.
    pub async fn count_soft_bounce(
        &self,
        address: &str,
        now: u64,
        window: u64,
        keep: usize,
    ) -> Result<usize, StoreError> {
        let k = key(address);
        let cutoff = now.saturating_sub(window);
        let mut times: Vec<u64> = match self.inner.soft_bounces.get(&k)? {
            Some(v) => decode("soft_bounces", &v)?,
            None => Vec::new(),
        };
        times.retain(|&t| t >= cutoff);
        times.push(now);
        let excess = times.len().saturating_sub(keep.max(1));
        times.drain(..excess);
        self.inner.soft_bounces.insert(k, encode(&times))?;
        self.durable().await?;
        Ok(times.len())
    }

    /// Forgets an address's soft bounces (it was suppressed, or removed from suppression).
    pub fn clear_soft_bounces(&self, address: &str) -> Result<(), StoreError> {
        self.inner.soft_bounces.remove(key(address))?;
        Ok(())
    }
}
