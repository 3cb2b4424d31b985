//! RCPT TO: relay control (inbound accepts only this host's own addresses; submission relays
//! only for authenticated or trusted clients), recipient limits, and NOTIFY/ORCPT.

use super::Role;
use super::address::{Mailbox, decode_xtext};
use super::listpost;
use super::reply::{Reply, common};
use super::state::SessionState;
use crate::config::{List, Settings};
use crate::metrics::Rejection;
use crate::store::{NewRecipient, Store};

type Params = Vec<(String, Option<String>)>;

pub fn rcpt(
    st: &mut SessionState,
    settings: &Settings,
    store: &Store,
    to: Mailbox,
    params: Params,
) -> Reply {
    let Some(tx) = st.tx.as_mut() else {
        return common::bad_sequence("Need MAIL command first");
    };
    if tx.chunks.is_some() {
        return common::bad_sequence("RCPT not allowed after BDAT");
    }
    if tx.recipients.len() >= settings.config.limits.max_recipients {
        return Reply::new(452, "4.5.3", "Too many recipients");
    }
    let allowed = match st.role {
        Role::Inbound => {
            !to.routed
                && !to.quoted
                && !to.literal
                && settings.is_own_address(&to.local, &to.domain)
        }
        Role::Submission | Role::Submissions => {
            (st.user.is_some() || st.trusted) && !to.domain.is_empty() && !to.routed
        }
    };
    if !allowed {
        return Reply::new(550, "5.7.1", "Relaying denied").counted(Rejection::Relay);
    }
    // A list address: on submission any list, on inbound the discussion lists (the only list
    // addresses that are this host's own).
    if let Some(list) = listpost::list_for(settings, &to.address()) {
        return list_rcpt(st, store, list);
    }
    let Some(tx) = st.tx.as_mut() else {
        return common::bad_sequence("Need MAIL command first");
    };
    let mut rcpt = NewRecipient {
        address: to.address(),
        notify: None,
        orcpt: None,
    };
    for (key, value) in &params {
        match (key.as_str(), value.as_deref()) {
            ("NOTIFY", Some(v)) if valid_notify(v) => rcpt.notify = Some(v.to_ascii_uppercase()),
            ("ORCPT", Some(v)) => match v
                .split_once(';')
                .and_then(|(t, a)| Some((t, decode_xtext(a)?)))
            {
                Some((kind, addr)) if !kind.is_empty() && addr.len() <= 500 => {
                    rcpt.orcpt = Some(format!("{kind};{addr}"));
                }
                _ => return Reply::new(501, "5.5.4", "Bad ORCPT value"),
            },
            _ => return Reply::new(555, "5.5.4", format!("Unsupported RCPT parameter {key}")),
        }
    }
    tx.recipients.push(rcpt);
    Reply::new(250, "2.1.5", "Recipient OK")
}

/// `NEVER`, or a comma list of SUCCESS, FAILURE, DELAY without repeats (RFC 3461 §4.1).
/// A list address as recipient: the post is stored once and expanded later (one list per
/// message, so each copy's headers name exactly one list).
fn list_rcpt(st: &mut SessionState, store: &Store, list: &List) -> Reply {
    let sender = st.tx.as_ref().map(|t| t.sender.clone()).unwrap_or_default();
    if let Err(r) = listpost::may_post(st, store, list, &sender) {
        return r;
    }
    let Some(tx) = st.tx.as_mut() else {
        return common::bad_sequence("Need MAIL command first");
    };
    match &tx.list {
        Some(id) if *id != list.id => Reply::new(
            452,
            "4.5.3",
            "One list per message; send to the other list separately",
        ),
        _ => {
            tx.list = Some(list.id.clone());
            Reply::new(250, "2.1.5", "List recipient OK")
        }
    }
}

fn valid_notify(v: &str) -> bool {
    if v.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    let mut seen = Vec::new();
    v.split(',').all(|item| {
        let item = item.to_ascii_uppercase();
        let ok = matches!(item.as_str(), "SUCCESS" | "FAILURE" | "DELAY") && !seen.contains(&item);
        seen.push(item);
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::valid_notify;

    #[test]
    fn notify_values() {
        for (v, want) in [
            ("NEVER", true),
            ("success,failure", true),
            ("DELAY", true),
            ("NEVER,SUCCESS", false),
            ("FAILURE,FAILURE", false),
            ("", false),
        ] {
            assert_eq!(valid_notify(v), want, "{v}");
        }
    }
}
