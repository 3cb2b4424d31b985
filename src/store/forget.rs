//! Forgetting an address (`herald forget`): its memberships, soft-bounce counts and remembered
//! VERP deliveries are erased, queued deliveries to it end, and its suppression entry is kept
//! under a keyed hash only, so it still holds. sled keeps removed values in old log segments,
//! so a forget also leaves a marker file beside the database: at the next start every live
//! record is copied into a fresh database that replaces the old one, leaving no clear-text
//! trace. Without a marker, opening costs one existence check.

use super::queue::{decode, encode};
use super::{AttemptResult, DeliveryRecord, QueueId, Store, StoreError, Suppression};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};

/// What a forget erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    pub memberships: usize,
    pub deliveries: usize,
    pub suppression_kept: bool,
}

/// The suppression key an address has once forgotten.
pub(super) fn hashed_key(secret: &[u8; 32], address: &str) -> Vec<u8> {
    let mut out = b"#".to_vec();
    if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret) {
        m.update(address.trim().to_lowercase().as_bytes());
        for b in m.finalize().into_bytes() {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
    }
    out
}

impl Store {
    pub async fn forget(&self, address: &str) -> Result<Forgotten, StoreError> {
        let addr = address.trim().to_lowercase();
        let mut done = Forgotten::default();
        let i = &self.inner()?;
        let suffix = format!("\0{addr}").into_bytes();
        for kv in i.members.iter() {
            let (k, v) = kv?;
            if k.ends_with(&suffix) {
                let m: super::MemberRecord = decode("members", &v)?;
                let _gate = self.writing();
                i.members.remove(&k)?;
                i.member_ids.remove(m.id.to_be_bytes())?;
                done.memberships += 1;
            }
        }
        let key = hashed_key(&self.forget_key()?, &addr);
        {
            // The entry moves to its hashed key under one hold of the gate, so a snapshot
            // has it under one key or the other.
            let _gate = self.writing();
            if let Some(v) = i.suppression.remove(addr.as_bytes())? {
                let mut s: Suppression = decode("suppression", &v)?;
                s.address = String::from_utf8_lossy(&key).into_owned();
                i.suppression.insert(key, encode(&s))?;
                done.suppression_kept = true;
            }
            i.soft_bounces.remove(addr.as_bytes())?;
            for kv in i.returns.iter() {
                let (k, v) = kv?;
                if v.as_ref() == addr.as_bytes() {
                    i.returns.remove(k)?;
                }
            }
        }
        let mut queued: Vec<(QueueId, u32)> = Vec::new();
        for kv in i.deliveries.iter() {
            let (k, v) = kv?;
            let d: DeliveryRecord = decode("deliveries", &v)?;
            if d.address.eq_ignore_ascii_case(&addr) {
                queued.push((super::queue::decode_id(&k)?, d.index));
            }
        }
        let gone = AttemptResult::Failed {
            reply: "550 5.7.1 recipient forgotten".into(),
        };
        for (id, index) in queued {
            self.record_attempt(id, index, &gone)?;
            done.deliveries += 1;
        }
        self.durable().await?;
        let marker = sibling(&i.dir, ".rewrite-pending");
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&marker, e))?;
        Ok(done)
    }

    fn forget_key(&self) -> Result<[u8; 32], StoreError> {
        if let Some(k) = self.inner()?.forget_key.get() {
            return Ok(*k);
        }
        let k = self.secret("forget")?;
        Ok(*self.inner()?.forget_key.get_or_init(|| k))
    }

    /// Whether a forgotten address is suppressed (its entry is kept under a keyed hash).
    pub(super) fn suppressed_forgotten(
        &self,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        let key = hashed_key(&self.forget_key()?, address);
        self.inner()?
            .suppression
            .get(key)?
            .map(|v| decode("suppression", &v))
            .transpose()
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Before opening: finishes an interrupted swap, then, if a forget asked for it (a marker file
/// beside the database), copies every live record into a fresh database and swaps it in.
pub(super) fn rewrite_if_pending(dir: &Path) -> Result<(), StoreError> {
    let fresh = sibling(dir, ".rewrite");
    let old = sibling(dir, ".old");
    let marker = sibling(dir, ".rewrite-pending");
    if !dir.exists() && fresh.exists() {
        // Stopped between the two renames: the fresh copy is complete.
        std::fs::rename(&fresh, dir).map_err(|e| io(dir, e))?;
    }
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::remove_dir_all(&fresh);
    if !dir.exists() || !marker.exists() {
        return Ok(());
    }
    {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| io(dir, e))?;
        let new = sled::Config::new()
            .path(&fresh)
            .open()
            .map_err(|e| io(&fresh, e))?;
        super::backup::copy_trees(&db, &dir.join(super::spool::DIR), &new)?;
        new.flush()?;
    }
    std::fs::rename(dir, &old).map_err(|e| io(dir, e))?;
    std::fs::rename(&fresh, dir).map_err(|e| io(dir, e))?;
    std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    std::fs::remove_file(&marker).map_err(|e| io(&marker, e))?;
    Ok(())
}
