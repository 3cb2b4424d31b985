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
        for kv in self.inner()?.due.iter() {
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
            match self.inner()?.deliveries.get(delivery_key(id, index))? {
                Some(raw) => out.push(DueDelivery {
                    id,
                    index,
                    record: decode("deliveries", &raw)?,
                }),
                // A stale index entry (its delivery is gone): drop it.
                None => {
                    let _gate = self.writing();
                    self.inner()?.due.remove(&key)?;
                }
            }
        }
        Ok((out, None))
    }

    /// One delivery, while it is still queued.
    pub fn delivery(&self, id: QueueId, index: u32) -> Result<Option<DeliveryRecord>, StoreError> {
        self.inner()?
            .deliveries
            .get(delivery_key(id, index))?
            .map(|v| decode("deliveries", &v))
            .transpose()
    }

    /// When the earliest delivery is due (Unix seconds).
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .inner()?
            .due
            .first()?
            .and_then(|(k, _)| parse_due(&k))
            .map(|(at, _, _)| at))
    }

    /// The envelope of a queued message.
    pub fn message(&self, id: QueueId) -> Result<Option<MessageRecord>, StoreError> {
        self.inner()?
            .messages
            .get(id.0.to_be_bytes())?
            .map(|v| decode("messages", &v))
            .transpose()
    }

    /// Moves a delivery's next attempt to `at` without counting an attempt.
    pub fn reschedule(&self, id: QueueId, index: u32, at: u64) -> Result<(), StoreError> {
        let dkey = delivery_key(id, index);
        let i = &self.inner()?;
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
        self.record_attempts(id, &[(index, result.clone())])?
            .pop()
            .ok_or_else(|| StoreError::Transaction(format!("no deliveries record {id}/{index}")))
    }

    /// Records the results of one job's attempts (deliveries of message `id`) in one
    /// transaction, each as [`Store::record_attempt`] would: a deferred delivery moves in the
    /// `due` index, a delivered or failed one is removed, and the message (with its body) goes
    /// when its last delivery is done. A delivery no longer queued (forgotten meanwhile) is
    /// left out of the answer; the others come back in order.
    pub fn record_attempts(
        &self,
        id: QueueId,
        results: &[(u32, AttemptResult)],
    ) -> Result<Vec<Recorded>, StoreError> {
        let mkey = id.0.to_be_bytes();
        let i = &self.inner()?;
        let gate = self.writing();
        let written = (&i.messages, &i.bodies, &i.spooled, &i.deliveries, &i.due)
            .transaction(|(m, b, s, d, q)| {
                let mut msg: MessageRecord = get_json(m, &mkey, "messages")?;
                let mut records = Vec::with_capacity(results.len());
                let mut finished = false;
                for (index, result) in results {
                    let dkey = delivery_key(id, *index);
                    let Some(raw) = d.get(dkey)? else {
                        continue;
                    };
                    let mut rec: DeliveryRecord =
                        decode("deliveries", &raw).map_err(|e| Abort::Abort(e.to_string()))?;
                    q.remove(&due_key(rec.next_attempt, id, *index))?;
                    rec.attempts += 1;
                    let (state, reply) = match result {
                        AttemptResult::Deferred {
                            reply,
                            next_attempt,
                        } => {
                            rec.next_attempt = *next_attempt;
                            q.insert(&due_key(*next_attempt, id, *index), &[])?;
                            (DeliveryState::Deferred, reply)
                        }
                        AttemptResult::Delivered { reply } => (DeliveryState::Delivered, reply),
                        AttemptResult::Failed { reply } => (DeliveryState::Failed, reply),
                    };
                    rec.state = state;
                    rec.last_reply = Some(reply.clone());
                    if state == DeliveryState::Deferred {
                        d.insert(&dkey, encode(&rec))?;
                    } else {
                        d.remove(&dkey)?;
                        msg.finished += 1;
                        finished = true;
                    }
                    records.push(rec);
                }
                let done = finished && msg.finished >= msg.recipients && !msg.expanding;
                let mut removed = None;
                if done {
                    m.remove(&mkey)?;
                    b.remove(&mkey)?;
                    removed = s.remove(&mkey)?;
                } else if finished {
                    m.insert(&mkey, encode(&msg))?;
                }
                let recorded: Vec<Recorded> = records
                    .into_iter()
                    .map(|delivery| Recorded {
                        message: msg.clone(),
                        delivery,
                        message_finished: done,
                    })
                    .collect();
                Ok((recorded, removed))
            })
            .map_err(tx_error);
        drop(gate);
        let (recorded, removed) = self.noted(written)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// One batch for a job of three: one delivered, one deferred, one failed; then the last
    /// one delivered in a second batch removes the message, and a delivery gone meanwhile is
    /// left out rather than failing the batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_is_recorded_in_one_batch() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = ok(Store::open(dir.path()));
        let id = store.allocate_id();
        let msg = crate::store::tests::message(&["a@y.org", "b@y.org", "c@y.org"]);
        ok(store.insert_message(id, msg).await);
        let reply = |r: &str| r.to_string();
        let later = crate::store::now_secs() + 3600;
        let recorded = ok(store.record_attempts(
            id,
            &[
                (
                    0,
                    AttemptResult::Delivered {
                        reply: reply("250 ok"),
                    },
                ),
                (
                    1,
                    AttemptResult::Deferred {
                        reply: reply("451 4.3.0 later"),
                        next_attempt: later,
                    },
                ),
                (
                    2,
                    AttemptResult::Failed {
                        reply: reply("550 5.1.1 no"),
                    },
                ),
            ],
        ));
        let states: Vec<_> = recorded
            .iter()
            .map(|r| (r.delivery.index, r.delivery.state, r.delivery.attempts))
            .collect();
        assert_eq!(
            states,
            [
                (0, DeliveryState::Delivered, 1),
                (1, DeliveryState::Deferred, 1),
                (2, DeliveryState::Failed, 1)
            ]
        );
        assert!(recorded.iter().all(|r| !r.message_finished));
        let left = ok(store.deliveries_of(id));
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].last_reply.as_deref(), Some("451 4.3.0 later"));
        assert_eq!(ok(store.message(id)).map(|m| m.finished), Some(2));
        let (due, next) = ok(store.due(later - 1, 10, |_, _| false));
        assert!(due.is_empty() && next == Some(later), "{due:?} {next:?}");

        let delivered = AttemptResult::Delivered {
            reply: reply("250 ok"),
        };
        let recorded = ok(store.record_attempts(id, &[(0, delivered.clone()), (1, delivered)]));
        assert_eq!(recorded.len(), 1, "delivery 0 is gone and left out");
        assert!(recorded[0].message_finished);
        assert!(ok(store.message(id)).is_none());
        assert!(ok(store.get_body(id)).is_none());
    }
}
