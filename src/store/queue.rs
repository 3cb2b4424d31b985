//! Queue layout: `messages` (id → envelope), `bodies` (id → raw message, for bodies up to
//! 16 KiB) or `spooled` (id → where a larger body is in the spool, `spool.rs`), `deliveries`
//! (id ++ index → delivery state) and `due` (next attempt ++ id ++ index → ()). A large body is
//! appended to the spool first; then the message is written in one transaction across the
//! trees (with `expansions` for a list post), so a crash leaves all of it or none.

use super::spool::BodyRef;
use super::{DeliveryRecord, DeliveryState, MessageRecord, NewMessage, QueueId, Store, StoreError};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// A message with its deliveries, as listed by `queue ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueEntry {
    pub message: MessageRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

pub(super) fn decode_id(key: &[u8]) -> Result<QueueId, StoreError> {
    let bytes: [u8; 8] =
        key.get(..8)
            .and_then(|k| k.try_into().ok())
            .ok_or(StoreError::Corrupt {
                tree: "messages",
                reason: "short key".into(),
            })?;
    Ok(QueueId(u64::from_be_bytes(bytes)))
}

pub(super) fn delivery_key(id: QueueId, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.0.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(super) fn due_key(at: u64, id: QueueId, index: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&at.to_be_bytes());
    k[8..].copy_from_slice(&delivery_key(id, index));
    k
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

pub(super) fn tx_error<E: std::fmt::Debug>(e: TransactionError<E>) -> StoreError {
    match e {
        TransactionError::Storage(e) => StoreError::Db(e),
        TransactionError::Abort(why) => StoreError::Transaction(format!("{why:?}")),
    }
}

impl Store {
    /// Writes a message and its deliveries, then waits for the flush that makes them durable.
    /// Only after this returns may the session answer `250`.
    pub async fn insert_message(&self, id: QueueId, msg: NewMessage) -> Result<(), StoreError> {
        let now = super::now_secs();
        let record = MessageRecord {
            id,
            sender: msg.sender,
            message_id: msg.message_id,
            size: msg.body.len() as u64,
            created: now,
            origin: msg.origin,
            client: msg.client,
            dsn: msg.dsn,
            recipients: msg.recipients.len() as u32,
            finished: 0,
            expanding: msg.list.is_some(),
            list: msg.list,
        };
        let deliveries: Vec<DeliveryRecord> = msg
            .recipients
            .into_iter()
            .enumerate()
            .map(|(index, r)| DeliveryRecord {
                index: index as u32,
                address: r.address,
                state: DeliveryState::Queued,
                attempts: 0,
                next_attempt: now,
                last_reply: None,
                notify: r.notify,
                orcpt: r.orcpt,
                member: None,
            })
            .collect();
        let key = id.0.to_be_bytes();
        let envelope = encode(&record);
        let expansion = record
            .expanding
            .then(|| encode(&super::expand::Cursor::start(record.recipients)));
        let i = self.inner()?;
        let spooled = (msg.body.len() > INLINE_MAX)
            .then(|| i.spool.append(&msg.body))
            .transpose()
            .map_err(StoreError::from);
        let spooled = self.noted(spooled)?;
        let gate = self.writing();
        let trees = i.queue_trees();
        let written = trees
            .transaction(|(m, b, s, d, q, x)| {
                if let Some(cursor) = &expansion {
                    x.insert(&key, cursor.as_slice())?;
                }
                match &spooled {
                    Some(r) => s.insert(&key, &r.encode())?,
                    None => b.insert(&key, msg.body.as_slice())?,
                };
                for del in &deliveries {
                    d.insert(&delivery_key(id, del.index), encode(del))?;
                    q.insert(&due_key(now, id, del.index), &[])?;
                }
                m.insert(&key, envelope.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error);
        drop(gate);
        if let (Err(_), Some(r)) = (&written, spooled) {
            i.spool.release(r);
        }
        self.noted(written)?;
        drop(i);
        self.durable().await
    }

    pub(super) fn deliveries_of(&self, id: QueueId) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner()?
            .deliveries
            .scan_prefix(id.0.to_be_bytes())
            .map(|kv| {
                let (_, v) = kv?;
                decode("deliveries", &v)
            })
            .collect()
    }

    /// Every queued message with its deliveries, oldest first.
    pub fn list_queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner()?.messages.iter() {
            let (_, v) = kv?;
            let message: MessageRecord = decode("messages", &v)?;
            let deliveries = self.deliveries_of(message.id)?;
            out.push(QueueEntry {
                message,
                deliveries,
            });
        }
        Ok(out)
    }

    /// Number of messages in the queue.
    pub fn queue_len(&self) -> usize {
        self.inner().map_or(0, |i| i.messages.len())
    }

    /// Messages, deliveries, and the creation time of the oldest message (for metrics; each
    /// count walks its tree).
    pub fn queue_gauges(&self) -> Result<(u64, u64, Option<u64>), StoreError> {
        let oldest = match self.inner()?.messages.first()? {
            Some((_, v)) => Some(decode::<MessageRecord>("messages", &v)?.created),
            None => None,
        };
        Ok((
            self.inner()?.messages.len() as u64,
            self.inner()?.deliveries.len() as u64,
            oldest,
        ))
    }

    /// One message with its deliveries.
    pub fn get_message(&self, id: QueueId) -> Result<Option<QueueEntry>, StoreError> {
        let Some(v) = self.inner()?.messages.get(id.0.to_be_bytes())? else {
            return Ok(None);
        };
        let message: MessageRecord = decode("messages", &v)?;
        let deliveries = self.deliveries_of(id)?;
        Ok(Some(QueueEntry {
            message,
            deliveries,
        }))
    }

    /// The raw stored message: read from the spool, or (an older one) shared with the
    /// store's cache.
    pub fn get_body(&self, id: QueueId) -> Result<Option<Body>, StoreError> {
        let key = id.0.to_be_bytes();
        if let Some(v) = self.inner()?.spooled.get(key)? {
            let r = decode_ref(&v)?;
            return Ok(Some(Body(Bytes::Read(self.inner()?.spool.read(r)?))));
        }
        Ok(self
            .inner()?
            .bodies
            .get(key)?
            .map(|v| Body(Bytes::Cached(v))))
    }

    /// Moves the bodies of sparse spool segments to its end, so the segments can be deleted
    /// (after the next flush). Returns how many bodies moved. Blocking: run it off the runtime.
    pub fn compact_spool(&self) -> Result<usize, StoreError> {
        let i = &self.inner()?;
        let sparse = i.spool.sparse();
        if sparse.is_empty() {
            return Ok(0);
        }
        let mut moved = 0;
        for kv in i.spooled.iter() {
            let (key, v) = kv?;
            let old = decode_ref(&v)?;
            if !sparse.contains(&old.segment) {
                continue;
            }
            let body = match i.spool.read(old) {
                Ok(body) => body,
                Err(e) => {
                    // Left where it is; delivering it reports the same error.
                    tracing::error!(error = %e, "compacting the body spool");
                    continue;
                }
            };
            let new = i.spool.append(&body)?;
            let swapped = {
                let _gate = self.writing();
                i.spooled
                    .compare_and_swap(&key, Some(&v), Some(&new.encode()[..]))?
            };
            // Removed (delivered) or moved meanwhile: the copy is not needed.
            match swapped {
                Ok(()) => {
                    i.spool.release(old);
                    moved += 1;
                }
                Err(_) => i.spool.release(new),
            }
        }
        Ok(moved)
    }

    /// After a transaction that removed a body reference has committed.
    pub(super) fn released(&self, removed: Option<sled::IVec>) {
        if let Some(r) = removed.and_then(|v| BodyRef::decode(&v))
            && let Ok(i) = self.inner()
        {
            i.spool.release(r);
        }
    }

    /// Removes a message and all its deliveries; durable when it returns. `false` if unknown.
    pub async fn delete_message(&self, id: QueueId) -> Result<bool, StoreError> {
        let Some(entry) = self.get_message(id)? else {
            return Ok(false);
        };
        let key = id.0.to_be_bytes();
        let i = &self.inner()?;
        let gate = self.writing();
        let trees = i.queue_trees();
        let removed = trees
            .transaction(|(m, b, s, d, q, x)| {
                m.remove(&key)?;
                b.remove(&key)?;
                x.remove(&key)?;
                for del in &entry.deliveries {
                    d.remove(&delivery_key(id, del.index))?;
                    q.remove(&due_key(del.next_attempt, id, del.index))?;
                }
                Ok::<_, ConflictableTransactionError<()>>(s.remove(&key)?)
            })
            .map_err(tx_error)?;
        drop(gate);
        self.released(removed);
        self.durable().await?;
        Ok(true)
    }
}

/// Bodies up to this size are stored inline, in sled's `bodies` tree: a group commit of small
/// messages then has no spool segment to sync. Larger ones go to the spool (`spool.rs`).
const INLINE_MAX: usize = 16 << 10;

pub(super) fn decode_ref(v: &[u8]) -> Result<BodyRef, StoreError> {
    BodyRef::decode(v).ok_or(StoreError::Corrupt {
        tree: "spooled",
        reason: "a body reference is not 20 bytes".into(),
    })
}

/// A stored message's bytes, as read from the store: read through `Deref`.
#[derive(Clone, Debug)]
pub struct Body(Bytes);

#[derive(Clone, Debug)]
enum Bytes {
    /// Read from the spool.
    Read(Vec<u8>),
    /// Shared with sled's cache (a body stored inline).
    Cached(sled::IVec),
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Read(v) => v,
            Bytes::Cached(v) => v,
        }
    }
}
