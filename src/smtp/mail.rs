//! MAIL FROM: who may start a transaction, sender binding, and the ESMTP parameters
//! (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH).

use super::address::{Mailbox, decode_xtext};
use super::reply::{Reply, common};
use super::state::{SessionState, Transaction};
use crate::config::{Settings, sender_allowed};
use crate::metrics::Rejection;
use crate::store::{DsnEnvelope, Store};

type Params = Vec<(String, Option<String>)>;

/// [`mail`], and then the store's storage: a transaction that would start is refused with
/// `452 4.3.1` while the store refuses new mail (free space below `limits.min_free_space`, or
/// a failed write not yet recovered from), so no client sends a body that cannot be kept.
pub fn mail_stored(
    st: &mut SessionState,
    settings: &Settings,
    store: &Store,
    from: Option<Mailbox>,
    params: Params,
) -> Reply {
    let reply = mail(st, settings, from, params);
    if !reply.is_error() && store.refusal().is_some() {
        st.tx = None;
        return common::insufficient_storage();
    }
    reply
}

pub fn mail(
    st: &mut SessionState,
    settings: &Settings,
    from: Option<Mailbox>,
    params: Params,
) -> Reply {
    if st.helo.is_none() {
        return common::bad_sequence("Send EHLO/HELO first");
    }
    if st.tx.is_some() {
        return common::bad_sequence("Nested MAIL command");
    }
    if st.role.is_submission() && st.user.is_none() && !st.trusted {
        return if st.tls {
            Reply::new(530, "5.7.0", "Authentication required")
        } else {
            Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
        };
    }
    let sender = from.as_ref().map(Mailbox::address).unwrap_or_default();
    if from
        .as_ref()
        .is_some_and(|m| m.domain.is_empty() || m.routed)
    {
        return Reply::new(
            553,
            "5.1.7",
            "Sender address must be a full address without a route",
        );
    }
    if let Some(name) = &st.user {
        let allowed = settings
            .user(name)
            .is_some_and(|u| sender_allowed(u, &sender));
        if sender.is_empty() || !allowed {
            return Reply::new(
                553,
                "5.7.1",
                format!("Sender address not allowed for user {name}"),
            )
            .counted(Rejection::Sender);
        }
    }
    let dsn = match check_params(st, settings, &params) {
        Ok(dsn) => dsn,
        Err(reply) => return reply,
    };
    st.tx = Some(Transaction {
        sender,
        dsn,
        recipients: Vec::new(),
        chunks: None,
        chunk_error: None,
        list: None,
    });
    Reply::new(250, "2.1.0", "Sender OK")
}

fn check_params(
    st: &SessionState,
    settings: &Settings,
    params: &Params,
) -> Result<DsnEnvelope, Reply> {
    let mut dsn = DsnEnvelope::default();
    for (key, value) in params {
        let value = value.as_deref();
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                let size: u64 = v
                    .parse()
                    .map_err(|_| Reply::new(501, "5.5.4", "Bad SIZE value"))?;
                if size > settings.config.limits.max_message_size.0 {
                    return Err(Reply::new(
                        552,
                        "5.3.4",
                        "Message size exceeds fixed maximum message size",
                    )
                    .counted(Rejection::Size));
                }
            }
            ("BODY", Some(v))
                if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
            ("SMTPUTF8", None) if st.esmtp => {}
            ("RET", Some(v))
                if v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS") =>
            {
                dsn.ret = Some(v.to_ascii_uppercase());
            }
            ("ENVID", Some(v)) => {
                let id = decode_xtext(v).filter(|id| id.len() <= 100);
                dsn.envid = Some(id.ok_or_else(|| Reply::new(501, "5.5.4", "Bad ENVID value"))?);
            }
            ("AUTH", Some(_)) => {}
            _ => {
                return Err(Reply::new(
                    555,
                    "5.5.4",
                    format!("Unsupported MAIL parameter {key}"),
                ));
            }
        }
    }
    Ok(dsn)
}
