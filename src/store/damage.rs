//! Test-only: damaged records written straight into the real trees, so that the code above
//! the store can be shown to treat a store error as a fault (defer, log) and never as an
//! answer ("not suppressed", "not a member"). No mock: the real decode path fails.

use super::Store;
use super::lists::member_key;

/// Bytes that no record decodes from.
const GARBAGE: &[u8] = b"\xff not a record";

impl Store {
    /// Makes `address`'s suppression entry undecodable: `suppressed(address)` fails.
    pub(crate) fn damage_suppression(&self, address: &str) {
        let key = address.trim().to_lowercase().into_bytes();
        let _gate = self.writing();
        if let Err(e) = self.inner.suppression.insert(key, GARBAGE) {
            panic!("damaging a suppression entry: {e}");
        }
    }

    /// Makes a list member's record undecodable: `member`, `member_by_id` and `members_page`
    /// fail for it.
    pub(crate) fn damage_member(&self, list: &str, address: &str) {
        let _gate = self.writing();
        if let Err(e) = self
            .inner
            .members
            .insert(member_key(list, address), GARBAGE)
        {
            panic!("damaging a member record: {e}");
        }
    }
}
