//! Delivery bookkeeping for the scheduler: what is due, rescheduling, and recording attempt
//! results. A finished delivery is removed; when the last one of a message finishes, the
//! message and its body go too. These writes are not flushed one by one: a crash may repeat a
//! delivery (sled's background flush follows within a second), never lose one.

use super::queue::{decode, delivery_key, due_key, encode, tx_error};
use super::{DeliveryRecord, DeliveryState, MessageRecord, QueueId, Store, StoreError};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError as Abort;

/// A delivery whose next attempt is due.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: QueueId,
    pub index: u32,
    pub record: DeliveryRecord,
}

/// What an attempt came to, as the store records it.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered { reply: String },
    Deferred { reply: String, next_attempt: u64 },
    Failed { reply: String },
}

/// The state after recording an attempt.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub message: MessageRecord,
    pub delivery: DeliveryRecord,
    /// The message has no deliveries left and was removed.
    pub message_finished: bool,
}

fn parse_due(key: &[u8]) -> Option<(u64, QueueId, u32)> {
    let at = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let id = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    let index = u32::from_be_bytes(key.get(16..20)?.try_into().ok()?);
    Some((at, QueueId(id), index))
}

type TxResult<T> = Result<T, Abort<String>>;

fn get_json<T: serde::de::DeserializeOwned>(
    tree: &sled::transaction::TransactionalTree,
    key: &[u8],
    name: &'static str,
) -> TxResult<T> {
    let raw = tree
        .get(key)?
        .ok_or_else(|| Abort::Abort(format!("no {name} record")))?;
    decode(name, &raw).map_err(|e| Abort::Abort(e.to_string()))
}

impl Store {
    /// Deliveries due at or before `now` (Unix seconds), oldest first, at most `limit`, leaving
    /// out those `skip` names (already in flight). Also returns when the next delivery not
    /// returned falls due (`Some(now)` when `limit` cut the list short).
    pub fn due(
        &self,
        now: u64,
        limit: usize,
        skip: impl Fn(QueueId, u32) -> bool,
    ) -> Result<(Vec<DueDelivery>, Option<u64>), StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.due.iter() {
            let (key, _) = kv?;
            let Some((at, id, index)) = parse_due(&key) else {
                continue;
            };
            if at > now {
                return Ok((out, Some(at)));
            }
            if skip(id, index) {
                continue;
            }
            if out.len() >= limit {
                return Ok((out, Some(now)));
            }
            match self.inner.deliveries.get(delivery_key(id, index))? {
                Some(raw) => out.push(DueDelivery {
                    id,
                    index,
                    record: decode("deliveries", &raw)?,
                }),
                // A stale index entry (its delivery is gone): drop it.
                None => {
                    let _gate = self.writing();
                    self.inner.due.remove(&key)?;
                }
            }
        }
        Ok((out, None))
    }

    /// One delivery, while it is still queued.
    pub fn delivery(&self, id: QueueId, index: u32) -> Result<Option<DeliveryRecord>, StoreError> {
        self.inner
            .deliveries
            .get(delivery_key(id, index))?
            .map(|v| decode("deliveries", &v))
            .transpose()
    }

    /// When the earliest delivery is due (Unix seconds).
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .inner
            .due
            .first()?
            .and_then(|(k, _)| parse_due(&k))
            .map(|(at, _, _)| at))
    }

    /// The envelope of a queued message.
    pub fn message(&self, id: QueueId) -> Result<Option<MessageRecord>, StoreError> {
        self.inner
            .messages
            .get(id.0.to_be_bytes())?
            .map(|v| decode("messages", &v))
            .transpose()
    }

    /// Moves a delivery's next attempt to `at` without counting an attempt.
    pub fn reschedule(&self, id: QueueId, index: u32, at: u64) -> Result<(), StoreError> {
        let dkey = delivery_key(id, index);
        let i = &self.inner;
        let _gate = self.writing();
        (&i.deliveries, &i.due)
            .transaction(|(d, q)| {
                let mut rec: DeliveryRecord = get_json(d, &dkey, "deliveries")?;
                q.remove(&due_key(rec.next_attempt, id, index))?;
                rec.next_attempt = at;
                d.insert(&dkey, encode(&rec))?;
                q.insert(&due_key(at, id, index), &[])?;
                Ok(())
            })
            .map_err(tx_error)
    }

    /// Records the result of one attempt for one delivery.
    pub fn record_attempt(
        &self,
        id: QueueId,
        index: u32,
        result: &AttemptResult,
    ) -> Result<Recorded, StoreError> {
        let dkey = delivery_key(id, index);
        let mkey = id.0.to_be_bytes();
        let i = &self.inner;
        let gate = self.writing();
        let (recorded, removed) = (&i.messages, &i.bodies, &i.spooled, &i.deliveries, &i.due)
            .transaction(|(m, b, s, d, q)| {
                let mut rec: DeliveryRecord = get_json(d, &dkey, "deliveries")?;
                let mut msg: MessageRecord = get_json(m, &mkey, "messages")?;
                q.remove(&due_key(rec.next_attempt, id, index))?;
                rec.attempts += 1;
                let finished = match result {
                    AttemptResult::Deferred {
                        reply,
                        next_attempt,
                    } => {
                        rec.state = DeliveryState::Deferred;
                        rec.next_attempt = *next_attempt;
                        rec.last_reply = Some(reply.clone());
                        d.insert(&dkey, encode(&rec))?;
                        q.insert(&due_key(*next_attempt, id, index), &[])?;
                        let recorded = Recorded {
                            message: msg,
                            delivery: rec,
                            message_finished: false,
                        };
                        return Ok((recorded, None));
                    }
                    AttemptResult::Delivered { reply } => (DeliveryState::Delivered, reply),
                    AttemptResult::Failed { reply } => (DeliveryState::Failed, reply),
                };
                rec.state = finished.0;
                rec.last_reply = Some(finished.1.clone());
                d.remove(&dkey)?;
                msg.finished += 1;
                let done = msg.finished >= msg.recipients && !msg.expanding;
                let mut removed = None;
                if done {
                    m.remove(&mkey)?;
                    b.remove(&mkey)?;
                    removed = s.remove(&mkey)?;
                } else {
                    m.insert(&mkey, encode(&msg))?;
                }
                let recorded = Recorded {
                    message: msg,
                    delivery: rec,
                    message_finished: done,
                };
                Ok((recorded, removed))
            })
            .map_err(tx_error)?;
        drop(gate);
        self.released(removed);
        Ok(recorded)
    }

    /// Makes deferred deliveries due now: of one message, or of all. Returns how many.
    pub fn retry_now(&self, only: Option<QueueId>, now: u64) -> Result<usize, StoreError> {
        let entries = match only {
            Some(id) => self.get_message(id)?.into_iter().collect(),
            None => self.list_queue()?,
        };
        let mut n = 0;
        for entry in entries {
            for rec in &entry.deliveries {
                if rec.next_attempt > now {
                    self.reschedule(entry.message.id, rec.index, now)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
