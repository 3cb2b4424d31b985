//! List expansion state: tree `expansions` (queue id → cursor). A post to a list is stored once
//! with its cursor; the expander then adds member copies in batches. Each batch adds its
//! deliveries, moves the cursor and updates the message in one transaction, so a crash
//! resumes exactly where the last batch ended: no copy is lost or added twice.

use super::queue::{decode, delivery_key, due_key, encode, tx_error};
use super::{DeliveryRecord, DeliveryState, MessageRecord, QueueId, Store, StoreError, now_secs};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, UnabortableTransactionError};

/// Where an expansion stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Index of the next delivery to add.
    pub next_index: u32,
    /// The last member key handled (hex), or none before the first batch.
    pub after: Option<String>,
}

impl Cursor {
    pub(super) fn start(next_index: u32) -> Cursor {
        Cursor {
            next_index,
            after: None,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expanded {
    /// Copies added.
    pub added: usize,
    /// Nothing was left to deliver, so the message was removed.
    pub message_finished: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn corrupt(reason: &str) -> UnabortableTransactionError {
    UnabortableTransactionError::Storage(sled::Error::Unsupported(reason.to_string()))
}

impl Store {
    /// Messages whose expansion is not finished, oldest first.
    pub fn pending_expansions(&self) -> Result<Vec<QueueId>, StoreError> {
        self.inner()?
            .expansions
            .iter()
            .keys()
            .map(|k| super::queue::decode_id(&k?))
            .collect()
    }

    /// The member key the next batch starts after (`None`: from the start). `Err` if the message
    /// has no expansion pending.
    pub fn expansion_after(&self, id: QueueId) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let Some(v) = self.inner()?.expansions.get(id.0.to_be_bytes())? else {
            return Ok(None);
        };
        let cursor: Cursor = decode("expansions", &v)?;
        Ok(Some(cursor.after.as_deref().and_then(unhex)))
    }

    /// Adds one batch of copies (`(address, member id)`), moves the cursor to `after`, and, when
    /// `last`, ends the expansion (removing the message if every delivery is already done).
    pub fn expand_batch(
        &self,
        id: QueueId,
        copies: &[(String, u64)],
        after: Option<&[u8]>,
        last: bool,
    ) -> Result<Expanded, StoreError> {
        let key = id.0.to_be_bytes();
        let now = now_secs();
        let i = &self.inner()?;
        let gate = self.writing();
        let trees = i.queue_trees();
        let (expanded, removed) = trees
            .transaction(|(m, b, s, d, q, x)| {
                let (Some(mv), Some(xv)) = (m.get(key)?, x.get(key)?) else {
                    // Deleted meanwhile: nothing to add.
                    let expanded = Expanded {
                        added: 0,
                        message_finished: true,
                    };
                    return Ok((expanded, None));
                };
                let mut msg: MessageRecord =
                    serde_json::from_slice(&mv).map_err(|_| corrupt("message record"))?;
                let mut cursor: Cursor =
                    serde_json::from_slice(&xv).map_err(|_| corrupt("expansion cursor"))?;
                for (n, (address, member)) in copies.iter().enumerate() {
                    let index = cursor.next_index + n as u32;
                    let rec = DeliveryRecord {
                        index,
                        address: address.clone(),
                        state: DeliveryState::Queued,
                        attempts: 0,
                        next_attempt: now,
                        last_reply: None,
                        notify: None,
                        orcpt: None,
                        member: Some(*member),
                    };
                    d.insert(&delivery_key(id, index), encode(&rec))?;
                    q.insert(&due_key(now, id, index), &[])?;
                }
                cursor.next_index += copies.len() as u32;
                cursor.after = after.map(hex);
                msg.recipients += copies.len() as u32;
                let (mut finished, mut removed) = (false, None);
                if last {
                    x.remove(&key)?;
                    msg.expanding = false;
                    if msg.finished >= msg.recipients {
                        m.remove(&key)?;
                        b.remove(&key)?;
                        removed = s.remove(&key)?;
                        finished = true;
                    }
                } else {
                    x.insert(&key, encode(&cursor))?;
                }
                if !finished {
                    m.insert(&key, encode(&msg))?;
                }
                let expanded = Expanded {
                    added: copies.len(),
                    message_finished: finished,
                };
                Ok::<_, ConflictableTransactionError<()>>((expanded, removed))
            })
            .map_err(tx_error)?;
        drop(gate);
        self.released(removed);
        Ok(expanded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let k = b"news\0a@b.test".to_vec();
        assert_eq!(unhex(&hex(&k)), Some(k));
        assert_eq!(unhex("zz"), None);
    }
}
