//! The expander: turns a stored list post into one delivery per member that may receive it,
//! in batches, after the poster already has the `250`. It resumes unfinished expansions at
//! start-up (the cursor is in the store) and is woken for each new post. Once an hour it
//! also forgets sign-ups left unconfirmed for 7 days.

use crate::config::{Category, Settings};
use crate::store::{MemberRecord, MemberStatus, QueueId, Scope, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Members read (and copies added) per store transaction.
const BATCH: usize = 500;
/// VERP deliveries are remembered at least this long (microseconds: 30 days).
const RETURNS_MIN: u64 = 30 * 24 * 3600 * 1_000_000;
/// How often unconfirmed sign-ups past their 7 days are removed (and old VERP records).
const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

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
        let pending = store.pending_expansions().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading pending list expansions failed");
            Vec::new()
        });
        for id in pending {
            if stop.is_cancelled() {
                return;
            }
            let settings = settings.borrow().clone();
            if let Err(e) = expand(&store, &settings, id, &added, &stop).await {
                tracing::error!(queue_id = %id, error = %e, "list expansion failed");
            }
        }
        tokio::select! {
            _ = wake.0.notified() => {}
            _ = tokio::time::sleep(EXPIRE_EVERY) => {
                // Where VERP deliveries went is kept as long as bounces may still come back.
                let keep = settings.borrow().config.bounce.soft_window.0.as_micros() as u64;
                let before = QueueId(crate::store::now_micros().saturating_sub(keep.max(RETURNS_MIN)));
                if let Err(e) = store.prune_returns(before) {
                    tracing::error!(error = %e, "pruning remembered VERP deliveries failed");
                }
                let cutoff = crate::store::now_secs().saturating_sub(super::consent::PENDING_MAX_AGE);
                match store.expire_pending(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(members = n, "expired unconfirmed sign-ups"),
                    Err(e) => tracing::error!(error = %e, "expiring unconfirmed sign-ups failed"),
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

async fn expand(
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
        let copies = page
            .iter()
            .filter(|m| wanted(store, m, category, post.service))
            .map(|m| (m.address.clone(), m.id))
            .collect::<Vec<_>>();
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

fn wanted(store: &Store, m: &MemberRecord, category: Option<Category>, service: bool) -> bool {
    let suppression = store.suppressed(&m.address).ok().flatten().map(|s| s.scope);
    category.is_some_and(|c| receives(m.status, suppression, c, service))
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
