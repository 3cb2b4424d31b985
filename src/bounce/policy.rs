//! What a classified bounce or complaint does (DESIGN §6): hard → global suppression and the
//! address's memberships marked bounced; soft → counted, and suppressed once
//! `bounce.soft_limit` fall within `bounce.soft_window`; complaint → marketing suppression and
//! the memberships marked complained; auto-replies and unknowns change nothing.

use super::parse::Class;
use crate::config::Settings;
use crate::store::{MemberStatus, Scope, Store, StoreError, Suppression, now_secs};

/// What applying a finding did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Suppressed(Scope),
    /// A soft bounce, counted: this many within the window, below the limit.
    Counted(usize),
    Ignored,
}

/// Applies one classified finding for `address`. `source` says where it came from
/// (`bounce`, `delivery`, `complaint`); `detail` is the status and reason kept with the entry.
pub async fn apply(
    store: &Store,
    settings: &Settings,
    address: &str,
    class: Class,
    source: &str,
    detail: &str,
) -> Result<Applied, StoreError> {
    let cfg = &settings.config.bounce;
    match class {
        Class::Hard => {
            suppress(
                store,
                address,
                Scope::Global,
                source,
                &format!("hard bounce: {detail}"),
            )
            .await?;
            mark(store, settings, address, MemberStatus::Bounced).await?;
            Ok(Applied::Suppressed(Scope::Global))
        }
        Class::Soft => {
            let limit = cfg.soft_limit.max(1) as usize;
            let window = cfg.soft_window.0.as_secs();
            let n = store
                .count_soft_bounce(address, now_secs(), window, limit)
                .await?;
            if n < limit {
                return Ok(Applied::Counted(n));
            }
            let reason = format!("{n} soft bounces within {}: {detail}", cfg.soft_window);
            suppress(store, address, Scope::Global, source, &reason).await?;
            store.clear_soft_bounces(address)?;
            mark(store, settings, address, MemberStatus::Bounced).await?;
            Ok(Applied::Suppressed(Scope::Global))
        }
        Class::Complaint => {
            suppress(
                store,
                address,
                Scope::Marketing,
                source,
                &format!("complaint: {detail}"),
            )
            .await?;
            mark(store, settings, address, MemberStatus::Complained).await?;
            Ok(Applied::Suppressed(Scope::Marketing))
        }
        Class::AutoReply | Class::Unknown => Ok(Applied::Ignored),
    }
}

async fn suppress(
    store: &Store,
    address: &str,
    scope: Scope,
    source: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let entry = Suppression {
        address: address.to_string(),
        scope,
        reason: reason.chars().take(300).collect(),
        source: source.to_string(),
        created: now_secs(),
    };
    store.suppress(entry).await.map(|_| ())
}

/// Marks the address's membership on every configured list (a bad or complaining address is
/// so on all of them).
async fn mark(
    store: &Store,
    settings: &Settings,
    address: &str,
    status: MemberStatus,
) -> Result<(), StoreError> {
    for list in &settings.config.lists {
        if let Some(m) = store.member(&list.id, address)? {
            store.set_member_status(m.id, status).await?;
        }
    }
    Ok(())
}
