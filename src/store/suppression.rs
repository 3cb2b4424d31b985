//! The suppression list (tree `suppression`, key = lower-cased address) and named secrets
//! (tree `meta`, key `secret/NAME`), e.g. the HMAC key for VERP and unsubscribe tokens.

use super::queue::{decode, encode};
use super::{Scope, Store, StoreError, Suppression};

fn key(address: &str) -> Vec<u8> {
    address.trim().to_lowercase().into_bytes()
}

impl Store {
    /// Adds or replaces an entry; durable when it returns. A global entry is never narrowed to
    /// marketing by a later, weaker event.
    pub async fn suppress(&self, entry: Suppression) -> Result<Suppression, StoreError> {
        let k = key(&entry.address);
        let stored = match self.suppressed(&entry.address)? {
            Some(old) if old.scope == Scope::Global && entry.scope == Scope::Marketing => old,
            _ => {
                let entry = Suppression {
                    address: entry.address.trim().to_lowercase(),
                    ..entry
                };
                let _gate = self.writing();
                self.inner()?.suppression.insert(k, encode(&entry))?;
                entry
            }
        };
        self.durable().await?;
        Ok(stored)
    }

    /// Removes an entry; durable when it returns. `false` if there was none.
    pub async fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        let existed = {
            let _gate = self.writing();
            self.inner()?.suppression.remove(key(address))?.is_some()
        };
        self.durable().await?;
        Ok(existed)
    }

    pub fn suppressed(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        match self.inner()?.suppression.get(key(address))? {
            Some(v) => decode("suppression", &v).map(Some),
            None => self.suppressed_forgotten(address),
        }
    }

    pub fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        self.inner()?
            .suppression
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("suppression", &v)
            })
            .collect()
    }

    /// A 32-byte secret kept in the database, generated on first use.
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let k = format!("secret/{name}");
        let fresh: [u8; 32] = rand::random();
        // compare_and_swap keeps the first value if two callers race.
        let gate = self.writing();
        let _ = self
            .inner()?
            .meta
            .compare_and_swap(&k, None as Option<&[u8]>, Some(&fresh[..]))?;
        drop(gate);
        let v = self.inner()?.meta.get(&k)?.ok_or(StoreError::Corrupt {
            tree: "meta",
            reason: "secret vanished".into(),
        })?;
        let secret: [u8; 32] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            tree: "meta",
            reason: format!("secret {name} is not 32 bytes"),
        })?;
        self.inner()?.db.flush()?;
        Ok(secret)
    }
}
