//! Consent flows shared by the HTTP pages, the CLI and the inbound listener: sign-up and
//! invitation (member pending, one confirmation mail), confirmation, and unsubscribe (silent:
//! no mail is ever sent because of an unsubscribe). Every change is durable before these
//! return, so the page or reply that follows tells the truth.

use super::token::{self, Kind};
use crate::config::{List, Settings};
use crate::metrics::Metrics;
use crate::store::{
    Added, Consent, MemberRecord, MemberStatus, NewMember, NewMessage, NewRecipient, Origin,
    QueueId, Store, StoreError, now_secs,
};

/// Pending members are forgotten after this long (DESIGN §7).
pub const PENDING_MAX_AGE: u64 = 7 * 24 * 3600;

/// What a sign-up or invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signup {
    /// A confirmation mail was queued with this id.
    ConfirmationSent(QueueId),
    /// Already a confirmed member: nothing sent.
    AlreadyMember,
}

/// Looks a list up by id or address.
pub fn find_list<'a>(settings: &'a Settings, name: &str) -> Option<&'a List> {
    settings
        .config
        .lists
        .iter()
        .find(|l| l.id == name || l.address.eq_ignore_ascii_case(name))
}

/// Makes `address` a pending member of `list` (unless already confirmed) and queues the
/// confirmation mail. `source` is `web` or `invite`; `ip` the web client.
pub async fn sign_up(
    store: &Store,
    settings: &Settings,
    key: &[u8; 32],
    list: &List,
    address: &str,
    source: &str,
    ip: Option<String>,
) -> Result<Signup, StoreError> {
    let member = NewMember {
        address: address.to_string(),
        name: None,
        status: MemberStatus::Pending,
        consent: Consent {
            source: source.to_string(),
            at: now_secs(),
            ip,
        },
    };
    let added = store.add_members(&list.id, vec![member]).await?;
    let Some((record, how)) = added.into_iter().next() else {
        return Ok(Signup::AlreadyMember);
    };
    if record.status == MemberStatus::Confirmed && how == Added::Unchanged {
        return Ok(Signup::AlreadyMember);
    }
    let id = store.allocate_id();
    let msg = confirmation(settings, key, list, &record, id);
    store.insert_message(id, msg).await?;
    Ok(Signup::ConfirmationSent(id))
}

fn confirmation(
    settings: &Settings,
    key: &[u8; 32],
    list: &List,
    member: &MemberRecord,
    id: QueueId,
) -> NewMessage {
    let hostname = &settings.config.hostname;
    let base = settings.config.unsubscribe.base_url.trim_end_matches('/');
    let token = token::member_token(key, Kind::Confirm, member.id);
    let message_id = format!("<{id}.confirm@{hostname}>");
    let name = list.name.replace(['\r', '\n'], " ");
    let body = format!(
        "From: \"{name}\" <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: Please confirm your subscription to {name}\r\n\
         Date: {date}\r\n\
         Message-ID: {message_id}\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Someone, probably you, asked to subscribe this address to {name}.\r\n\
         \r\n\
         To confirm, open this link and press the button on the page:\r\n\
         \r\n\
         {base}/confirm/{token}\r\n\
         \r\n\
         If you did not ask for this, ignore this message: you will not be subscribed\r\n\
         and will not hear from this list again.\r\n",
        from = list.address,
        to = member.address,
        date = crate::timefmt::rfc5322(now_secs()),
    );
    NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient {
            address: member.address.clone(),
            notify: None,
            orcpt: None,
        }],
        message_id: Some(message_id),
        origin: Origin::Generated,
        client: "localhost".into(),
        dsn: Default::default(),
        body: body.into_bytes(),
        list: None,
    }
}

/// The member a confirmation token names, if it is genuine and known.
pub fn confirm_target(
    store: &Store,
    key: &[u8; 32],
    token: &str,
) -> Result<Option<MemberRecord>, StoreError> {
    match token::open_member_token(key, Kind::Confirm, token) {
        Some(id) => store.member_by_id(id),
        None => Ok(None),
    }
}

/// Confirms a pending member (idempotent for a confirmed one). `None`: unknown token.
pub async fn confirm(
    store: &Store,
    key: &[u8; 32],
    token: &str,
) -> Result<Option<MemberRecord>, StoreError> {
    let Some(member) = confirm_target(store, key, token)? else {
        return Ok(None);
    };
    match member.status {
        MemberStatus::Pending => {
            store
                .set_member_status(member.id, MemberStatus::Confirmed)
                .await
        }
        // Someone who unsubscribed, bounced or complained since needs a fresh sign-up.
        _ => Ok(Some(member)),
    }
}

/// The member an unsubscribe token names, if it is genuine and known.
pub fn unsubscribe_target(
    store: &Store,
    key: &[u8; 32],
    token: &str,
) -> Result<Option<MemberRecord>, StoreError> {
    match token::open_member_token(key, Kind::Unsubscribe, token) {
        Some(id) => store.member_by_id(id),
        None => Ok(None),
    }
}

/// Unsubscribes the member a token names; durable when it returns, idempotent, silent.
/// `None`: unknown or forged token (nothing changed). A change is counted in `metrics`,
/// as over HTTP or (`by_mail`) through `u+TOKEN@`.
pub async fn unsubscribe(
    store: &Store,
    key: &[u8; 32],
    token: &str,
    metrics: &Metrics,
    by_mail: bool,
) -> Result<Option<MemberRecord>, StoreError> {
    let Some(member) = unsubscribe_target(store, key, token)? else {
        return Ok(None);
    };
    match member.status {
        MemberStatus::Confirmed | MemberStatus::Pending => {
            let done = store
                .set_member_status(member.id, MemberStatus::Unsubscribed)
                .await?;
            metrics.unsubscribe(by_mail);
            Ok(done)
        }
        _ => Ok(Some(member)),
    }
}
