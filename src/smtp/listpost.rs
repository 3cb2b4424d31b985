//! The SMTP side of lists: who may post to a list address (RCPT), what a post's
//! `Herald-Category` header asks for (end of DATA), and `u+TOKEN@` unsubscribe mail on the
//! inbound listener, fulfilled before the `250` and never queued.

use super::Context;
use super::reply::Reply;
use super::state::SessionState;
use crate::config::{List, ListKind, Settings};
use crate::lists::{consent, headers};
use crate::metrics::Rejection;
use crate::store::{ListPost, MemberStatus, NewRecipient, Store};

/// The list whose address `address` is, if any.
pub fn list_for<'a>(settings: &'a Settings, address: &str) -> Option<&'a List> {
    settings
        .config
        .lists
        .iter()
        .find(|l| l.address.eq_ignore_ascii_case(address))
}

/// RCPT to a list address on submission: the poster must be one of the list's `posters` (a
/// user name or a sender address) or, on a discussion list, a confirmed member. A member
/// lookup that fails is a local error (`451 4.3.0`, try again), never a refusal for good.
pub fn may_post(st: &SessionState, store: &Store, list: &List, sender: &str) -> Result<(), Reply> {
    let named = list.posters.iter().any(|p| {
        st.user.as_deref() == Some(p.as_str())
            || (!sender.is_empty() && p.eq_ignore_ascii_case(sender))
    });
    if named {
        return Ok(());
    }
    let member = if list.kind == ListKind::Discussion && !sender.is_empty() {
        match store.member(&list.id, sender) {
            Ok(m) => m.is_some_and(|m| m.status == MemberStatus::Confirmed),
            Err(e) => {
                tracing::error!(list = %list.id, error = %e, "reading a list member failed");
                return Err(super::reply::common::local_error());
            }
        }
    } else {
        false
    };
    if member {
        Ok(())
    } else {
        Err(Reply::new(
            550,
            "5.7.1",
            format!("You may not post to {}", list.address),
        )
        .counted(Rejection::ListPost))
    }
}

/// At the end of DATA for a list post: reads and removes `Herald-Category`. A service post
/// needs a user with `may_send_service`; anything else is refused with a clear reason.
pub fn category(
    st: &SessionState,
    settings: &Settings,
    list: &List,
    body: &[u8],
) -> Result<(ListPost, Vec<u8>), Reply> {
    let value = crate::mail::header::value(body, headers::CATEGORY_HEADER);
    let service = match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("marketing") => false,
        Some("service") => {
            let allowed = st
                .user
                .as_deref()
                .and_then(|u| settings.user(u))
                .is_some_and(|u| u.may_send_service);
            if !allowed {
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    "Herald-Category: service is only for users with may_send_service",
                ));
            }
            true
        }
        Some(other) => {
            return Err(Reply::new(
                550,
                "5.7.1",
                format!("Unknown Herald-Category {other:?} (marketing or service)"),
            ));
        }
    };
    let post = ListPost {
        list: list.id.clone(),
        service,
    };
    Ok((post, headers::strip_list_headers(body)))
}

/// Inbound: unsubscribes every member named by a `u+TOKEN@` recipient (durably) and returns
/// the recipients left to queue. A token that names nobody changes nothing.
pub async fn unsubscribe_recipients(
    ctx: &Context,
    recipients: Vec<NewRecipient>,
) -> Result<Vec<NewRecipient>, Reply> {
    let mut rest = Vec::with_capacity(recipients.len());
    for r in recipients {
        let token = crate::mail::split(&r.address).and_then(|(local, _)| {
            local
                .to_ascii_lowercase()
                .strip_prefix("u+")
                .map(String::from)
        });
        let Some(token) = token else {
            rest.push(r);
            continue;
        };
        match consent::unsubscribe(&ctx.store, &ctx.list_key, &token, &ctx.metrics, true).await {
            Ok(Some(m)) => {
                tracing::info!(list = %m.list, member = m.id, via = "mailto", "unsubscribed")
            }
            Ok(None) => tracing::info!("unsubscribe mail with an unknown token ignored"),
            Err(e) => {
                tracing::error!(error = %e, "unsubscribe failed");
                return Err(super::reply::common::local_error());
            }
        }
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Category;

    fn discussion() -> List {
        List {
            id: "talk".into(),
            address: "talk@example.org".into(),
            name: "Talk".into(),
            kind: ListKind::Discussion,
            posters: vec!["alice".into()],
            category: Category::Marketing,
        }
    }

    /// Who may post, and what a store fault answers: a member record that cannot be read
    /// is `451 4.3.0` (try again), not `550` (you may not post).
    #[test]
    fn posters_members_and_a_store_fault() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let list = discussion();
        let peer = "127.0.0.1:2000".parse().unwrap();
        let nobody = SessionState::new(crate::smtp::Role::Submission, peer, true, false);
        let mut alice = SessionState::new(crate::smtp::Role::Submission, peer, true, false);
        alice.user = Some("alice".into());
        store.damage_member("talk", "m@x.test");
        let code = |st: &SessionState, sender: &str| {
            may_post(st, &store, &list, sender)
                .err()
                .map(|r| (r.code, r.status))
        };
        assert_eq!(
            code(&alice, "m@x.test"),
            None,
            "a named poster needs no lookup"
        );
        assert_eq!(code(&nobody, "other@x.test"), Some((550, "5.7.1")));
        assert_eq!(code(&nobody, "m@x.test"), Some((451, "4.3.0")));
    }
}
