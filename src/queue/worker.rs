//! A delivery worker: holds at most one connection to one destination (a domain, or the
//! relay), takes one job at a time from the scheduler, records each recipient's outcome in the
//! store, queues DSNs, and reports back. It leaves after an idle spell, handing back nothing:
//! jobs already sent to it are always finished first.

use super::DeliveryContext;
use super::listcopy;
use super::outcome::{Report, apply};
use crate::config::Settings;
use crate::delivery::client::Connection;
use crate::delivery::mx::{Lookup, Route};
use crate::delivery::{Origin, Outcome, Reply, Status};
use crate::lists::token;
use crate::logging::{redact, redact_in};
use crate::store::{DeliveryRecord, MessageRecord, QueueId, Scope, StoreError};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Seconds until deliveries of a message whose envelope cannot be read are looked at again.
const UNREADABLE_RETRY: u64 = 60;
/// A connection unused this long is closed.
const IDLE: Duration = Duration::from_secs(5);

/// One SMTP transaction's worth: a message and the recipients that go to this destination.
#[derive(Debug)]
pub struct Job {
    pub id: QueueId,
    pub recipients: Vec<DeliveryRecord>,
}

/// What a worker tells the scheduler.
pub enum Event {
    Done {
        domain: String,
        worker: u64,
        id: QueueId,
        indexes: Vec<u32>,
        /// The destination signalled throttling or could not be reached.
        throttle: bool,
        delivered: bool,
        /// Earliest retry time (Unix seconds) of any recipient deferred.
        retry_at: Option<u64>,
    },
    Gone {
        domain: String,
        worker: u64,
    },
}

pub async fn run(
    ctx: Arc<DeliveryContext>,
    domain: String,
    worker: u64,
    mut jobs: mpsc::Receiver<Job>,
    events: mpsc::Sender<Event>,
) {
    let mut conn: Option<Connection> = None;
    loop {
        let job = tokio::select! {
            j = tokio::time::timeout(IDLE, jobs.recv()) => match j {
                Ok(Some(job)) => job,
                _ => break,
            },
            _ = ctx.stop.cancelled() => break,
        };
        let event = deliver(&ctx, &domain, worker, &mut conn, job).await;
        if events.send(event).await.is_err() {
            break;
        }
    }
    // Anything sent to us while we were deciding to leave is still ours to finish.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let event = deliver(&ctx, &domain, worker, &mut conn, job).await;
        let _ = events.send(event).await;
    }
    if let Some(c) = conn {
        c.quit().await;
    }
    let _ = events.send(Event::Gone { domain, worker }).await;
}

async fn route(
    ctx: &DeliveryContext,
    settings: &Settings,
    domain: &str,
) -> Result<Vec<(String, SocketAddr)>, Outcome> {
    let remote = |code, status, text| Outcome::Permanent {
        reply: Reply::new(code, status, text),
        origin: Origin::Remote,
    };
    let temp =
        |text| Outcome::transient(Origin::Remote, Reply::new(451, Status::new(4, 4, 3), text));
    if let Some(relay) = &settings.config.delivery.relay {
        let addrs = tokio::net::lookup_host(relay.as_str())
            .await
            .map_err(|e| temp(format!("relay {relay}: {e}")))?;
        let host = relay
            .rsplit_once(':')
            .map_or(relay.as_str(), |(h, _)| h)
            .to_string();
        return Ok(addrs.map(|a| (host.clone(), a)).collect());
    }
    match ctx.resolver.route(domain).await {
        Route::Hosts(hosts) => Ok(hosts),
        Route::NullMx => Err(remote(
            556,
            Status::new(5, 1, 10),
            format!("{domain} accepts no mail (null MX)"),
        )),
        Route::NoSuchDomain => Err(remote(
            550,
            Status::new(5, 1, 2),
            format!("domain {domain} does not exist"),
        )),
        Route::TempFail(e) => Err(temp(format!("DNS lookup for {domain} failed: {e}"))),
    }
}

/// A job's envelope sender, decided once per job.
struct Envelope {
    sender: String,
    /// The sender is a VERP address naming this delivery (not a list member): a delivered
    /// recipient is remembered, so that a later return can be matched to it.
    remember: bool,
}

/// The envelope sender on the wire: VERP for list copies and for domains with a bounce
/// domain (the scheduler gives each such recipient a job of its own).
fn envelope(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    first: Option<&DeliveryRecord>,
) -> Envelope {
    let plain = Envelope {
        sender: msg.sender.clone(),
        remember: false,
    };
    let Some(rcpt) = first else {
        return plain;
    };
    if let Some(sender) = listcopy::sender(ctx, settings, msg, rcpt) {
        return Envelope {
            sender,
            remember: false,
        };
    }
    let domain = crate::mail::split(&msg.sender).map(|(_, d)| d.to_ascii_lowercase());
    let bounce_domain = domain.and_then(|d| {
        settings
            .config
            .domains
            .get(&d)
            .and_then(|c| c.bounce_domain.clone())
    });
    match bounce_domain {
        Some(bd) if !msg.sender.is_empty() => Envelope {
            sender: format!(
                "b+{}@{bd}",
                token::bounce_token(&ctx.verp_key, msg.id.0, rcpt.index)
            ),
            remember: true,
        },
        _ => plain,
    }
}

fn sign<'a>(ctx: &DeliveryContext, body: Cow<'a, [u8]>) -> Cow<'a, [u8]> {
    let signers = ctx.signers();
    if signers.is_empty() {
        return body;
    }
    let Some(domain) = crate::mail::header::from_domain(&body) else {
        return body;
    };
    match signers.sign(&domain, &body) {
        Some(Ok(header)) => {
            let mut signed = header.into_bytes();
            signed.extend_from_slice(&body);
            Cow::Owned(signed)
        }
        Some(Err(e)) => {
            tracing::warn!(domain = %domain, error = %e, "DKIM signing failed; sending unsigned");
            body
        }
        None => body,
    }
}

/// The queued body cannot be read. If it is damaged (its checksum fails) it never will be:
/// every recipient fails now, and the sender gets a DSN. Any other error (I/O) defers them,
/// like a temporary failure, so the message is retried on the schedule and not in a loop.
/// Either way the fault is Herald's own: it counts against no recipient.
async fn unreadable(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    recipients: &[DeliveryRecord],
    error: &StoreError,
    report: &mut Report,
) {
    tracing::error!(queue_id = %msg.id, error = %error, "reading a queued message failed");
    let outcome = if error.is_damage() {
        let text = format!("the queued message is damaged: {error}");
        Outcome::permanent(Origin::Local, Reply::new(554, Status::new(5, 3, 0), text))
    } else {
        let text = format!("the queued message cannot be read: {error}");
        Outcome::transient(Origin::Local, Reply::new(451, Status::new(4, 3, 0), text))
    };
    let outcomes = recipients.iter().map(|r| (r, outcome.clone())).collect();
    apply(ctx, settings, msg, b"", outcomes, report).await;
}

/// A store lookup failed: the recipient is deferred (never sent, never failed), and it is
/// logged.
fn store_fault(msg: &MessageRecord, lookup: &'static str, error: &StoreError) -> Outcome {
    tracing::error!(queue_id = %msg.id, lookup, error = %error, "a store lookup failed; deferring the delivery");
    let text = format!("{lookup} lookup failed: {error}");
    Outcome::transient(Origin::Local, Reply::new(451, Status::new(4, 3, 0), text))
}

/// Whether a recipient is held back before anything is sent: suppressed, or (a list copy)
/// unsubscribed since the post was expanded, ends the delivery silently (no DSN); a store
/// error on the way defers it.
fn held_back(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
) -> Option<Outcome> {
    let refused = |text: String| {
        let reply = Reply::new(550, Status::new(5, 7, 1), text);
        Some(Outcome::permanent(Origin::Policy, reply))
    };
    let suppression = match ctx.store.suppressed(&rcpt.address) {
        Ok(s) => s,
        Err(e) => return Some(store_fault(msg, "suppression", &e)),
    };
    if let Some(s) = suppression.as_ref().filter(|s| s.scope == Scope::Global) {
        return refused(format!("recipient is suppressed ({})", s.reason));
    }
    match listcopy::still_wanted(ctx, settings, msg, rcpt, suppression.map(|s| s.scope)) {
        Ok(true) => None,
        Ok(false) => refused("not sent: no longer a receiving list member".into()),
        Err(e) => Some(store_fault(msg, "list member", &e)),
    }
}

pub(super) async fn deliver(
    ctx: &DeliveryContext,
    domain: &str,
    worker: u64,
    conn: &mut Option<Connection>,
    job: Job,
) -> Event {
    let settings = ctx.settings();
    let indexes = job.recipients.iter().map(|r| r.index).collect();
    let mut report = Report::default();
    let msg = match ctx.store.message(job.id) {
        Ok(Some(msg)) => msg,
        // Deleted meanwhile (queue delete): nothing to do here.
        Ok(None) => return report.event(domain, worker, job.id, indexes),
        Err(e) => {
            // Without the envelope no attempt can be recorded; the deliveries are looked at
            // again in a minute instead of at once, in a loop.
            tracing::error!(queue_id = %job.id, error = %e, "reading a queued message failed; retrying in a minute");
            let at = crate::store::now_secs() + UNREADABLE_RETRY;
            for r in &job.recipients {
                if let Err(e) = ctx.store.reschedule(job.id, r.index, at) {
                    tracing::error!(queue_id = %job.id, error = %e, "rescheduling failed");
                }
            }
            report.retry_at = Some(at);
            return report.event(domain, worker, job.id, indexes);
        }
    };
    let body = match ctx.store.get_body(job.id) {
        Ok(Some(body)) => body,
        Ok(None) => return report.event(domain, worker, job.id, indexes),
        Err(e) => {
            unreadable(ctx, &settings, &msg, &job.recipients, &e, &mut report).await;
            return report.event(domain, worker, job.id, indexes);
        }
    };
    let envelope = envelope(ctx, &settings, &msg, job.recipients.first());
    let mut outcomes = Vec::with_capacity(job.recipients.len());
    let mut to_send = Vec::new();
    for rcpt in &job.recipients {
        match held_back(ctx, &settings, &msg, rcpt) {
            Some(outcome) => outcomes.push((rcpt, outcome)),
            None => to_send.push(rcpt),
        }
    }
    if !to_send.is_empty() {
        let content = match to_send.as_slice() {
            [one] => listcopy::copy_body(ctx, &settings, &msg, one, &body),
            _ => None,
        }
        .map_or(Cow::Borrowed(&body[..]), Cow::Owned);
        let content = sign(ctx, content);
        let sent = send(ctx, &settings, domain, conn, &envelope, &to_send, &content).await;
        let show = settings.config.privacy.log_addresses;
        for (rcpt, outcome) in to_send.into_iter().zip(sent) {
            let reply = outcome.reply().to_string();
            tracing::info!(
                queue_id = %msg.id, domain, to = %redact(&rcpt.address, show), attempt = rcpt.attempts + 1,
                reply = %redact_in(&reply, &rcpt.address, show), "delivery attempt"
            );
            if matches!(outcome, Outcome::Delivered { .. })
                && envelope.remember
                && let Err(e) = ctx.store.remember_return(msg.id, rcpt.index, &rcpt.address)
            {
                tracing::warn!(queue_id = %msg.id, error = %e, "could not remember a VERP delivery");
            }
            outcomes.push((rcpt, outcome));
        }
    }
    apply(ctx, &settings, &msg, &body, outcomes, &mut report).await;
    report.event(domain, worker, job.id, indexes)
}

async fn send(
    ctx: &DeliveryContext,
    settings: &Arc<Settings>,
    domain: &str,
    conn: &mut Option<Connection>,
    envelope: &Envelope,
    rcpts: &[&DeliveryRecord],
    body: &[u8],
) -> Vec<Outcome> {
    let sender = envelope.sender.as_str();
    let addresses: Vec<String> = rcpts.iter().map(|r| r.address.clone()).collect();
    // A reused connection the server has meanwhile closed fails at once; that says nothing
    // about the message, so it gets one more go on a fresh connection.
    let reused = conn.as_ref().is_some_and(Connection::usable);
    if let Some(c) = conn.as_mut().filter(|c| c.usable()) {
        let outcomes = c.send(sender, &addresses, body).await;
        if c.usable() || !reused {
            return outcomes;
        }
    }
    *conn = None;
    match connect(ctx, settings, domain).await {
        Ok(mut c) => {
            let outcomes = c.send(sender, &addresses, body).await;
            *conn = Some(c);
            outcomes
        }
        Err(o) => vec![o; rcpts.len()],
    }
}

async fn connect(
    ctx: &DeliveryContext,
    settings: &Arc<Settings>,
    domain: &str,
) -> Result<Connection, Outcome> {
    let connector = ctx.connector(settings).map_err(|e| {
        let reply = Reply::new(451, Status::new(4, 3, 0), format!("TLS setup failed: {e}"));
        Outcome::transient(Origin::Local, reply)
    })?;
    let hosts = route(ctx, settings, domain).await?;
    connector.connect(&hosts).await
}
