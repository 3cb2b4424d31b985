//! The expander: turns a stored list post into one delivery per member that may receive it,
//! in batches, after the poster already has the `250`. It resumes unfinished expansions at
//! start-up (the cursor is in the store) and is woken for each new post. A store error
//! aborts the batch it happened in (nothing of it is written) and the expansion is tried again
//! shortly: a member whose suppression cannot be read is never guessed at.

use crate::config::{Category, Settings};
use crate::store::{MemberRecord, MemberStatus, QueueId, Scope, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Members read (and copies added) per store transaction.
const BATCH: usize = 500;
/// An expansion that failed on a store error is tried again after this long.
const RETRY: Duration = Duration::from_secs(30);

/// Wakes the expander; cheap to clone.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Whether a member of a list with this category gets a post (`service`: an announcement
/// members cannot opt out of). Global suppression always wins; marketing suppression stops
/// marketing posts only.
pub fn receives(
    status: MemberStatus,
    suppression: Option<Scope>,
    category: Category,
    service: bool,
) -> bool {
    let status_ok = matches!(
        (status, service),
        (MemberStatus::Confirmed, _) | (MemberStatus::Unsubscribed, true)
    );
    let suppressed = match suppression {
        Some(Scope::Global) => true,
        Some(Scope::Marketing) => !service && category == Category::Marketing,
        None => false,
    };
    status_ok && !suppressed
}

/// Runs until `stop`; `added` is called after every batch that queued copies.
pub async fn run(
    store: Store,
    settings: watch::Receiver<Arc<Settings>>,
    wake: Wake,
    added: impl Fn(),
    stop: CancellationToken,
) {
    loop {
        let failed = expand_pending(&store, &settings, &added, &stop).await;
        tokio::select! {
            _ = wake.0.notified() => {}
            _ = tokio::time::sleep(RETRY), if failed => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Works through every unfinished expansion; `true` when one of them (or the listing) failed
/// and should be tried again.
async fn expand_pending(
    store: &Store,
    settings: &watch::Receiver<Arc<Settings>>,
    added: &impl Fn(),
    stop: &CancellationToken,
) -> bool {
    let pending = match store.pending_expansions() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "reading pending list expansions failed; retrying");
            return true;
        }
    };
    let mut failed = false;
    for id in pending {
        if stop.is_cancelled() {
            break;
        }
        let settings = settings.borrow().clone();
        if let Err(e) = expand(store, &settings, id, added, stop).await {
            tracing::error!(queue_id = %id, error = %e, "list expansion failed; retrying");
            failed = true;
        }
    }
    failed
}

pub(super) async fn expand(
    store: &Store,
    settings: &Settings,
    id: QueueId,
    added: &impl Fn(),
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let Some(msg) = store.message(id)? else {
        return Ok(());
    };
    let Some(post) = msg.list else {
        return store.expand_batch(id, &[], None, true).map(|_| ());
    };
    // A list removed from the config meanwhile gets no copies.
    let category = settings
        .config
        .lists
        .iter()
        .find(|l| l.id == post.list)
        .map(|l| l.category);
    let mut total = 0;
    while let Some(after) = store.expansion_after(id)? {
        if stop.is_cancelled() {
            return Ok(());
        }
        let (page, next) = match category {
            Some(_) => store.members_page(&post.list, after.as_deref(), BATCH)?,
            None => (Vec::new(), None),
        };
        let mut copies = Vec::with_capacity(page.len());
        for m in &page {
            if wanted(store, m, category, post.service)? {
                copies.push((m.address.clone(), m.id));
            }
        }
        let last = next.is_none();
        let done = store.expand_batch(id, &copies, next.as_deref(), last)?;
        total += done.added;
        if done.added > 0 {
            added();
        }
        if last {
            tracing::info!(queue_id = %id, list = %post.list, copies = total, "list post expanded");
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Whether member `m` gets a copy; a suppression lookup that fails is an error, not a "no".
fn wanted(
    store: &Store,
    m: &MemberRecord,
    category: Option<Category>,
    service: bool,
) -> Result<bool, StoreError> {
    let Some(category) = category else {
        return Ok(false);
    };
    let suppression = store.suppressed(&m.address)?.map(|s| s.scope);
    Ok(receives(m.status, suppression, category, service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;
    use MemberStatus::*;

    #[test]
    fn who_receives_what() {
        let g = Some(Scope::Global);
        let mk = Some(Scope::Marketing);
        let cases = [
            (Confirmed, None, Marketing, false, true),
            (Pending, None, Marketing, false, false),
            (Unsubscribed, None, Marketing, false, false),
            (Bounced, None, Marketing, false, false),
            (Complained, None, Marketing, false, false),
            (Confirmed, g, Marketing, false, false),
            (Confirmed, mk, Marketing, false, false),
            (Confirmed, mk, Transactional, false, true),
            (Unsubscribed, None, Marketing, true, true),
            (Confirmed, mk, Marketing, true, true),
            (Unsubscribed, g, Marketing, true, false),
            (Pending, None, Marketing, true, false),
        ];
        for (status, supp, cat, service, want) in cases {
            assert_eq!(
                receives(status, supp, cat, service),
                want,
                "{status:?} {supp:?} {cat:?} service={service}"
            );
        }
    }
}
