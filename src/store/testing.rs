//! Test-only hooks into the real trees. Damaged records, so that the code above the store can
//! be shown to treat a store error as a fault (defer, log) and never as an answer ("not
//! suppressed", "not a member"): no mock, the real decode path fails. And back-dated records,
//! for housekeeping that acts on age.

use super::Store;
use super::lists::member_key;

/// Bytes that no record decodes from.
const GARBAGE: &[u8] = b"\xff not a record";

impl Store {
    /// The open database (a test that damages records has not reopened it).
    fn live(&self) -> std::sync::Arc<super::Inner> {
        match self.inner() {
            Ok(i) => i,
            Err(e) => panic!("the store is not open: {e}"),
        }
    }

    /// Makes `address`'s suppression entry undecodable: `suppressed(address)` fails.
    pub(crate) fn damage_suppression(&self, address: &str) {
        let key = address.trim().to_lowercase().into_bytes();
        let _gate = self.writing();
        if let Err(e) = self.live().suppression.insert(key, GARBAGE) {
            panic!("damaging a suppression entry: {e}");
        }
    }

    /// Makes a list member's record undecodable: `member`, `member_by_id` and `members_page`
    /// fail for it.
    pub(crate) fn damage_member(&self, list: &str, address: &str) {
        let _gate = self.writing();
        if let Err(e) = self
            .live()
            .members
            .insert(member_key(list, address), GARBAGE)
        {
            panic!("damaging a member record: {e}");
        }
    }
}

impl Store {
    /// Cuts message `id`'s body reference in `spooled` short, so it no longer decodes.
    pub(crate) fn damage_body_ref(&self, id: super::QueueId) {
        let _gate = self.writing();
        if let Err(e) = self
            .live()
            .spooled
            .insert(id.0.to_be_bytes(), &GARBAGE[..5])
        {
            panic!("damaging a body reference: {e}");
        }
    }
}

impl Store {
    /// Moves a member's last status change (`since`) `secs` into the past.
    pub(crate) fn backdate_member(&self, list: &str, address: &str, secs: u64) {
        let key = member_key(list, address);
        let raw = match self.live().members.get(&key) {
            Ok(Some(raw)) => raw,
            other => panic!("no member {address} in {list}: {other:?}"),
        };
        let mut m: super::MemberRecord =
            super::queue::decode("members", &raw).unwrap_or_else(|e| panic!("{e}"));
        m.since = m.since.saturating_sub(secs);
        let _gate = self.writing();
        if let Err(e) = self.live().members.insert(key, super::queue::encode(&m)) {
            panic!("back-dating a member: {e}");
        }
    }
}

impl Store {
    /// Makes message `id`'s envelope undecodable: `message` and `get_message` fail for it.
    pub(crate) fn damage_message(&self, id: super::QueueId) {
        let _gate = self.writing();
        if let Err(e) = self.live().messages.insert(id.0.to_be_bytes(), GARBAGE) {
            panic!("damaging a message record: {e}");
        }
    }
}
