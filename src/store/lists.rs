//! List members: tree `members` (list id ++ 0 ++ lower-cased address → member record) and tree
//! `member_ids` (member id → members key), so a token that carries only the member id finds
//! the member. Every change is durable before the call returns.

use super::queue::{decode, encode};
use super::{Consent, MemberRecord, MemberStatus, Store, StoreError, now_secs};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use std::collections::BTreeMap;

pub(super) fn member_key(list: &str, address: &str) -> Vec<u8> {
    let mut k = list.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(address.trim().to_lowercase().as_bytes());
    k
}

fn list_prefix(list: &str) -> Vec<u8> {
    let mut k = list.as_bytes().to_vec();
    k.push(0);
    k
}

/// One member to add, as the CLI, an import or a web sign-up gives it.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub address: String,
    pub name: Option<String>,
    pub status: MemberStatus,
    pub consent: Consent,
}

/// What adding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    Changed,
    Unchanged,
}

/// Key in `meta` of the last member id handed out. Kept in a tree (not sled's own id
/// generator, which lives outside the trees) so that a copied database — a backup, the
/// rewrite after a forget — never hands out an id again.
const LAST_MEMBER_ID: &str = "last_member_id";

fn be_u64(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// At open: seeds the member id counter of a database made before it existed, above every id
/// sled's generator issued and every id in use.
pub(super) fn init_member_ids(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    if meta.get(LAST_MEMBER_ID)?.is_some() {
        return Ok(());
    }
    let in_use = db
        .open_tree("member_ids")?
        .last()?
        .map_or(0, |(k, _)| be_u64(Some(&k)));
    let last = in_use.max(db.generate_id()?);
    meta.insert(LAST_MEMBER_ID, &last.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

impl Store {
    /// The next member id: 1, 2, … (0 is kept free so a zeroed token never names a member).
    fn next_member_id(&self) -> Result<u64, StoreError> {
        let _gate = self.writing();
        let new = self.inner()?.meta.update_and_fetch(LAST_MEMBER_ID, |old| {
            Some((be_u64(old) + 1).to_be_bytes().to_vec())
        })?;
        Ok(be_u64(new.as_deref()))
    }

    /// Adds members or changes their status (an import, `list add`, a sign-up); one durable
    /// write for the whole batch. A member whose status is already `status` is left alone;
    /// a web sign-up (pending) never downgrades a confirmed member.
    pub async fn add_members(
        &self,
        list: &str,
        members: Vec<NewMember>,
    ) -> Result<Vec<(MemberRecord, Added)>, StoreError> {
        let now = now_secs();
        let mut out = Vec::with_capacity(members.len());
        let mut batch = sled::Batch::default();
        let mut ids = sled::Batch::default();
        let mut seen = BTreeMap::new();
        for m in members {
            let key = member_key(list, &m.address);
            let old = match seen.get(&key) {
                Some(r) => Some(MemberRecord::clone(r)),
                None => self.member_at(&key)?,
            };
            let (record, added) = match old {
                Some(old) if old.status == m.status => (old, Added::Unchanged),
                Some(old)
                    if m.status == MemberStatus::Pending
                        && old.status == MemberStatus::Confirmed =>
                {
                    (old, Added::Unchanged)
                }
                Some(old) => (
                    MemberRecord {
                        status: m.status,
                        consent: m.consent,
                        since: now,
                        name: m.name.or(old.name.clone()),
                        ..old
                    },
                    Added::Changed,
                ),
                None => {
                    let id = self.next_member_id()?;
                    ids.insert(&id.to_be_bytes(), key.clone());
                    let record = MemberRecord {
                        id,
                        list: list.to_string(),
                        address: m.address.trim().to_lowercase(),
                        name: m.name,
                        status: m.status,
                        consent: m.consent,
                        since: now,
                    };
                    (record, Added::New)
                }
            };
            if added != Added::Unchanged {
                batch.insert(key.clone(), encode(&record));
                seen.insert(key, record.clone());
            }
            out.push((record, added));
        }
        let i = &self.inner()?;
        let gate = self.writing();
        (&i.members, &i.member_ids)
            .transaction(|(m, ids_tree)| {
                m.apply_batch(&batch)?;
                ids_tree.apply_batch(&ids)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(super::queue::tx_error)?;
        drop(gate);
        self.durable().await?;
        Ok(out)
    }

    fn member_at(&self, key: &[u8]) -> Result<Option<MemberRecord>, StoreError> {
        self.inner()?
            .members
            .get(key)?
            .map(|v| decode("members", &v))
            .transpose()
    }

    pub fn member(&self, list: &str, address: &str) -> Result<Option<MemberRecord>, StoreError> {
        self.member_at(&member_key(list, address))
    }

    /// The member a token's id names.
    pub fn member_by_id(&self, id: u64) -> Result<Option<MemberRecord>, StoreError> {
        match self.inner()?.member_ids.get(id.to_be_bytes())? {
            Some(key) => self.member_at(&key),
            None => Ok(None),
        }
    }

    /// Sets a member's status; durable when it returns. `None` when the member is unknown.
    pub async fn set_member_status(
        &self,
        id: u64,
        status: MemberStatus,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let Some(key) = self.inner()?.member_ids.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        let Some(old) = self.member_at(&key)? else {
            return Ok(None);
        };
        if old.status == status {
            return Ok(Some(old));
        }
        let record = MemberRecord {
            status,
            since: now_secs(),
            ..old
        };
        {
            let _gate = self.writing();
            self.inner()?.members.insert(key, encode(&record))?;
        }
        self.durable().await?;
        Ok(Some(record))
    }

    /// Members of a list in address order, starting after `after` (a members key), at most
    /// `limit`. Returns the records and the key to continue from.
    pub fn members_page(
        &self,
        list: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<MemberRecord>, Option<Vec<u8>>), StoreError> {
        let prefix = list_prefix(list);
        let start = match after {
            Some(k) => {
                let mut k = k.to_vec();
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let mut last = None;
        for kv in self.inner()?.members.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) || out.len() == limit {
                break;
            }
            out.push(decode("members", &v)?);
            last = Some(k.to_vec());
        }
        let more = out.len() == limit;
        Ok((out, if more { last } else { None }))
    }

    /// Every member of a list.
    pub fn members(&self, list: &str) -> Result<Vec<MemberRecord>, StoreError> {
        self.inner()?
            .members
            .scan_prefix(list_prefix(list))
            .map(|kv| decode("members", &kv?.1))
            .collect()
    }

    /// Removes pending members whose sign-up is older than `cutoff` (Unix seconds); returns
    /// how many.
    pub async fn expire_pending(&self, cutoff: u64) -> Result<usize, StoreError> {
        let mut gone = 0;
        for kv in self.inner()?.members.iter() {
            let (k, v) = kv?;
            let m: MemberRecord = decode("members", &v)?;
            if m.status == MemberStatus::Pending && m.since < cutoff {
                let _gate = self.writing();
                self.inner()?.members.remove(&k)?;
                self.inner()?.member_ids.remove(m.id.to_be_bytes())?;
                gone += 1;
            }
        }
        if gone > 0 {
            self.durable().await?;
        }
        Ok(gone)
    }
}
