//! Soft-bounce counters: tree `soft_bounces` (lower-cased address → the times of its recent
//! soft bounces, newest last, at most a bounded number); and where finished VERP deliveries
//! went: tree `returns` (queue id ++ index → address), pruned after the bounce window.

use super::queue::{decode, delivery_key, encode};
use super::{QueueId, Store, StoreError};

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
        let mut times: Vec<u64> = match self.inner()?.soft_bounces.get(&k)? {
            Some(v) => decode("soft_bounces", &v)?,
            None => Vec::new(),
        };
        times.retain(|&t| t >= cutoff);
        times.push(now);
        let excess = times.len().saturating_sub(keep.max(1));
        times.drain(..excess);
        {
            let _gate = self.writing();
            self.inner()?.soft_bounces.insert(k, encode(&times))?;
        }
        self.durable().await?;
        Ok(times.len())
    }

    /// Forgets an address's soft bounces (it was suppressed, or removed from suppression).
    pub fn clear_soft_bounces(&self, address: &str) -> Result<(), StoreError> {
        let _gate = self.writing();
        self.inner()?.soft_bounces.remove(key(address))?;
        Ok(())
    }
}

impl Store {
    /// Remembers where a VERP delivery went, so a bounce that arrives after the delivery left
    /// the queue still finds the address (tree `returns`: queue id ++ index → address).
    pub fn remember_return(
        &self,
        id: QueueId,
        index: u32,
        address: &str,
    ) -> Result<(), StoreError> {
        let _gate = self.writing();
        self.inner()?.returns.insert(
            delivery_key(id, index),
            address.trim().to_lowercase().as_bytes(),
        )?;
        Ok(())
    }

    /// The address a finished VERP delivery went to.
    pub fn returned_address(&self, id: QueueId, index: u32) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner()?
            .returns
            .get(delivery_key(id, index))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Forgets deliveries of messages queued before `before` (queue ids are times); returns
    /// how many.
    pub fn prune_returns(&self, before: QueueId) -> Result<usize, StoreError> {
        let end = before.0.to_be_bytes();
        let mut n = 0;
        let _gate = self.writing();
        for k in self.inner()?.returns.range(..end.as_slice()).keys() {
            self.inner()?.returns.remove(k?)?;
            n += 1;
        }
        Ok(n)
    }
}
