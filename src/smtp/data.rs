//! DATA and BDAT: when content may start, and what happens to it at the end — smuggling and
//! size checks, the content policy on submission, trace and RFC 6409 repairs, and the durable
//! store insert before `250`.

use super::body::{ChunkReceiver, Received};
use super::policy::{self, Verdict};
use super::repair::{self, HeaderFacts, Trace};
use super::reply::{Reply, common};
use super::state::{Next, SessionState, Step};
use super::{Context, Role, listpost, postmaster, returns};
use crate::config::{Settings, sender_allowed};
use crate::logging::redact;
use crate::metrics::Rejection;
use crate::store::{NewMessage, NewRecipient, Origin, QueueId};
use std::sync::Arc;

pub fn data(st: &SessionState) -> Step {
    match &st.tx {
        None => common::bad_sequence("Need MAIL command first").into(),
        Some(tx) if tx.chunks.is_some() => {
            common::bad_sequence("DATA not allowed after BDAT").into()
        }
        Some(tx) if tx.recipients.is_empty() && tx.list.is_none() => {
            Reply::new(554, "5.5.1", "No valid recipients").into()
        }
        Some(_) => Step::then(
            Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"),
            Next::ReadData,
        ),
    }
}

/// Starts reading a BDAT chunk. Even when the command is refused the chunk's bytes must be
/// read (RFC 3030 §2), so any refusal is remembered and given after the chunk; the session
/// answers only then (see [`chunk_ack`] and [`finish`]), so the reply here is never sent.
pub fn bdat(st: &mut SessionState, settings: &Settings, size: u64, last: bool) -> Step {
    let max = settings.config.limits.max_message_size.0;
    let next = Next::ReadChunk { size, last };
    let Some(tx) = st.tx.as_mut() else {
        return Step::then(common::bad_sequence("Need MAIL command first"), next);
    };
    if tx.recipients.is_empty() && tx.list.is_none() {
        tx.chunk_error
            .get_or_insert(Reply::new(554, "5.5.1", "No valid recipients"));
    }
    let chunks = tx
        .chunks
        .get_or_insert_with(|| ChunkReceiver::new(max as usize));
    if chunks.size().saturating_add(size) > max {
        tx.chunk_error.get_or_insert(size_error());
    }
    Step::then(Reply::new(250, "2.0.0", "Chunk pending"), next)
}

/// Received fields past which a message is taken to be looping (Postfix's `hopcount_limit`).
const MAX_HOPS: usize = 50;

fn size_error() -> Reply {
    Reply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    )
    .counted(Rejection::Size)
}

/// Reply for a non-final BDAT chunk that has been read.
pub fn chunk_ack(st: &SessionState, size: u64) -> Reply {
    match st.tx.as_ref().and_then(|t| t.chunk_error.clone()) {
        // Counted once, when the transaction ends.
        Some(err) => Reply {
            rejection: None,
            ..err
        },
        None if st.tx.is_none() => common::bad_sequence("Need MAIL command first"),
        None => Reply::new(250, "2.0.0", format!("{size} octets received")),
    }
}

/// Ends a transaction whose content has been read completely.
pub async fn finish(ctx: &Context, st: &mut SessionState, mut received: Received) -> Reply {
    let Some(tx) = st.tx.take() else {
        return common::bad_sequence("Need MAIL command first");
    };
    if let Some(err) = refusal(st, tx.chunk_error, &received) {
        return err;
    }
    let settings = ctx.settings();
    if let Some(err) = postmaster::refusal(ctx, st, &settings, &tx.recipients, received.size) {
        return err;
    }
    if st.role.is_submission() {
        let list_post = tx.list.is_some();
        let checked = content_policy(st, &settings, &tx.sender, received.body, list_post);
        received.body = match checked.await {
            Ok(body) => body,
            Err(reply) => return reply,
        };
    }
    let facts = repair::scan(&received.body);
    if let Some(refused) = foreign_from(st, &settings, &facts.from) {
        return refused;
    }
    if let Some(refused) = from_fields(st, &facts, tx.list.is_some()) {
        return refused;
    }
    if facts.received >= MAX_HOPS {
        tracing::info!(client = %st.peer.ip(), hops = facts.received, "refused looping message");
        return Reply::new(554, "5.4.6", "Too many hops: the message is looping");
    }
    let id = ctx.store.allocate_id();
    let (mut body, message_id) = stamp(st, &settings, id, facts, &received.body);
    let mut recipients = tx.recipients;
    if st.role == Role::Inbound {
        recipients = match own_addresses(ctx, &settings, recipients, &received.body).await {
            Ok(rest) => rest,
            Err(reply) => return reply,
        };
        if recipients.is_empty() && tx.list.is_none() {
            // Only unsubscribe, VERP and complaint addresses: done, and nothing is queued.
            return Reply::new(250, "2.0.0", "Ok: processed");
        }
    }
    let mut list = None;
    if let Some(l) = tx
        .list
        .as_deref()
        .and_then(|id| settings.config.lists.iter().find(|l| l.id == id))
    {
        match listpost::category(st, &settings, l, &body) {
            Ok((post, stripped)) => {
                body = stripped;
                list = Some(post);
            }
            Err(reply) => return reply,
        }
    }
    let msg = NewMessage {
        sender: tx.sender,
        recipients,
        message_id,
        origin: origin(st),
        client: st.peer.ip().to_string(),
        dsn: tx.dsn,
        body,
        list,
    };
    queue(ctx, st, &settings, id, msg).await
}

/// More than one From field (RFC 5322 §3.6 allows one): readers differ in which they show, so
/// such a message is refused on submission (users and trusted networks alike) and when posted
/// to a list from outside; other inbound mail (reports and returns from the world, read here
/// and never passed on) is taken as it comes.
fn from_fields(st: &SessionState, facts: &HeaderFacts, list_post: bool) -> Option<Reply> {
    if facts.from_fields <= 1 || !(st.role.is_submission() || list_post) {
        return None;
    }
    tracing::info!(client = %st.peer.ip(), fields = facts.from_fields, "refused message with more than one From field");
    let text = "Message has more than one From field";
    Some(Reply::new(550, "5.6.0", text).counted(Rejection::Sender))
}

/// A user's `senders` bind the From and Sender fields as well as the envelope (DESIGN §3): a
/// mailbox in any From or Sender field that the user may not use is refused.
fn foreign_from(st: &SessionState, settings: &Settings, from: &[String]) -> Option<Reply> {
    let user = settings.user(st.user.as_deref()?)?;
    let bad = from.iter().find(|a| !sender_allowed(user, a))?;
    tracing::info!(client = %st.peer.ip(), user = %user.name, "refused a From address the user may not use");
    let text = format!(
        "From or Sender address {bad} not allowed for user {}",
        user.name
    );
    Some(Reply::new(550, "5.7.1", text).counted(Rejection::Sender))
}

/// Why content that has been read completely cannot be taken: a refused BDAT chunk, bare
/// LF or CR (smuggling), NUL bytes (passed on raw they break receivers), or too much of it.
fn refusal(st: &SessionState, chunk_error: Option<Reply>, received: &Received) -> Option<Reply> {
    if chunk_error.is_some() {
        return chunk_error;
    }
    if received.bare_newline {
        tracing::info!(client = %st.peer.ip(), "refused message with bare LF or CR");
        let text = "Message contains bare LF or CR; lines must end with CRLF";
        return Some(Reply::new(550, "5.6.0", text).counted(Rejection::BareNewline));
    }
    if received.nul {
        tracing::info!(client = %st.peer.ip(), "refused message with NUL bytes");
        let text = "Message contains NUL bytes";
        return Some(Reply::new(550, "5.6.0", text).counted(Rejection::Nul));
    }
    received.oversize.then(size_error)
}

/// The stored form of the content: our Received field on top (and, on submission, the Date
/// and Message-ID repairs of RFC 6409), with the Message-ID the message ends up with.
fn stamp(
    st: &SessionState,
    settings: &Settings,
    id: QueueId,
    facts: HeaderFacts,
    content: &[u8],
) -> (Vec<u8>, Option<String>) {
    let config = &settings.config;
    let date = crate::timefmt::rfc5322(crate::store::now_secs());
    let trace = Trace {
        helo: st.helo.as_deref().unwrap_or("unknown"),
        client_ip: st.user.is_none().then(|| st.peer.ip()),
        hostname: &config.hostname,
        protocol: st.protocol(),
        queue_id: &id.to_string(),
        date: &date,
    };
    let mut head = repair::received(&trace);
    let message_id = if st.role.is_submission() {
        let new_id = format!("<{id}.{:016x}@{}>", rand::random::<u64>(), config.hostname);
        let (add, mid) = repair::submission_repairs(&facts, &date, &new_id);
        head.push_str(&add);
        Some(mid)
    } else {
        facts.message_id
    };
    let mut body = Vec::with_capacity(head.len() + content.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(content);
    (body, message_id)
}

/// On port 25: unsubscribe mail (`u+TOKEN@`), returned mail (`b+TOKEN@`) and complaints
/// (`fbl@`) are handled here and now; the other recipients are returned, to be queued, with
/// `postmaster@` forwarded to the configured `postmaster` address (ORCPT keeps the original).
async fn own_addresses(
    ctx: &Context,
    settings: &Settings,
    recipients: Vec<NewRecipient>,
    content: &[u8],
) -> Result<Vec<NewRecipient>, Reply> {
    let rest = listpost::unsubscribe_recipients(ctx, recipients).await?;
    let mut rest = returns::handle(ctx, rest, content).await?;
    if let Some(forward) = &settings.config.postmaster {
        for r in &mut rest {
            let local = crate::mail::split(&r.address).map_or(r.address.as_str(), |(l, _)| l);
            if local.eq_ignore_ascii_case("postmaster") {
                r.orcpt
                    .get_or_insert_with(|| format!("rfc822;{}", r.address));
                r.address = forward.clone();
            }
        }
    }
    Ok(rest)
}

fn origin(st: &SessionState) -> Origin {
    match (&st.user, st.role.is_submission()) {
        (Some(user), _) => Origin::Submission { user: user.clone() },
        (None, true) => Origin::Trusted,
        (None, false) => Origin::Inbound,
    }
}

/// Stores the message (durably: `250` only after the flush) and tells the scheduler.
async fn queue(
    ctx: &Context,
    st: &SessionState,
    settings: &Settings,
    id: QueueId,
    msg: NewMessage,
) -> Reply {
    let recipients = msg.recipients.len();
    let size = msg.body.len();
    let from = redact(&msg.sender, settings.config.privacy.log_addresses);
    if ctx.store.refusal().is_some() {
        return common::insufficient_storage();
    }
    match ctx.store.insert_message(id, msg).await {
        Ok(()) => {
            (ctx.on_queued)(id);
            ctx.metrics.accepted(st.role == Role::Inbound);
            tracing::info!(
                queue_id = %id, role = st.role.name(), client = %st.peer.ip(),
                user = st.user.as_deref().unwrap_or("-"), %from, recipients, size, "accepted"
            );
            Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
        }
        Err(e) => {
            tracing::error!(queue_id = %id, error = %e, "could not store message");
            if e.is_io() {
                return common::insufficient_storage();
            }
            common::local_error()
        }
    }
}

/// The content policy on a submitted message (DESIGN §7), before anything is stored. With
/// patterns or attachment rules, parsing and matching run on a blocking thread (up to
/// `limits.max_message_size` of MIME); the body comes back unchanged when it may go on.
async fn content_policy(
    st: &SessionState,
    settings: &Arc<Settings>,
    sender: &str,
    body: Vec<u8>,
    list_post: bool,
) -> Result<Vec<u8>, Reply> {
    let (body, verdict) = if settings.policy.reads_content() {
        let s = Arc::clone(settings);
        let checked = tokio::task::spawn_blocking(move || {
            let verdict = policy::check(&body, &s.policy, list_post);
            (body, verdict)
        })
        .await;
        checked.map_err(|e| {
            tracing::error!(error = %e, "content policy check failed");
            common::local_error()
        })?
    } else {
        // Only the header section is read: cheap enough for the session's own thread.
        let verdict = policy::check(&body, &settings.policy, list_post);
        (body, verdict)
    };
    let Verdict::Deny { rule, reason } = verdict else {
        return Ok(body);
    };
    tracing::info!(
        role = st.role.name(), client = %st.peer.ip(), user = st.user.as_deref().unwrap_or("-"),
        from = %redact(sender, settings.config.privacy.log_addresses), rule = rule.kind(),
        detail = %rule, reason = %reason, "refused by content policy"
    );
    Err(Reply::new(550, "5.7.1", reason).counted(Rejection::Policy))
}
