//! A delivery worker: holds at most one connection to one destination (a domain, or the
//! relay), takes one job at a time from the scheduler, records each recipient's outcome in the
//! store, queues DSNs, and reports back. It leaves after an idle spell, handing back nothing:
//! jobs already sent to it are always finished first.

use super::DeliveryContext;
use super::listcopy;
use super::outcome::{Report, apply};
use crate::config::Settings;
use crate::delivery::Outcome;
use crate::delivery::client::{Connection, Connector};
use crate::delivery::mx::{Lookup, Route};
use crate::lists::token;
use crate::logging::{redact, redact_in};
use crate::store::{DeliveryRecord, MessageRecord, QueueId, Scope, StoreError};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
    if let Some(relay) = &settings.config.delivery.relay {
        let addrs =
            tokio::net::lookup_host(relay.as_str())
                .await
                .map_err(|e| Outcome::Transient {
                    reply: format!("451 4.4.3 relay {relay}: {e}"),
                    throttle: false,
                })?;
        let host = relay
            .rsplit_once(':')
            .map_or(relay.as_str(), |(h, _)| h)
            .to_string();
        return Ok(addrs.map(|a| (host.clone(), a)).collect());
    }
    match ctx.resolver.route(domain).await {
        Route::Hosts(hosts) => Ok(hosts),
        Route::NullMx => Err(Outcome::Permanent {
            reply: format!("556 5.1.10 {domain} accepts no mail (null MX)"),
        }),
        Route::NoSuchDomain => Err(Outcome::Permanent {
            reply: format!("550 5.1.2 domain {domain} does not exist"),
        }),
        Route::TempFail(e) => Err(Outcome::Transient {
            reply: format!("451 4.4.3 DNS lookup for {domain} failed: {e}"),
            throttle: false,
        }),
    }
}

/// The envelope sender on the wire: VERP for domains with a bounce domain.
fn wire_sender(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
) -> String {
    if let Some(sender) = listcopy::sender(ctx, settings, msg, rcpt) {
        return sender;
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
        Some(bd) if !msg.sender.is_empty() => format!(
            "b+{}@{bd}",
            token::bounce_token(&ctx.verp_key, msg.id.0, rcpt.index)
        ),
        _ => msg.sender.clone(),
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
async fn unreadable(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    recipients: &[DeliveryRecord],
    error: &StoreError,
    report: &mut Report,
) {
    tracing::error!(queue_id = %msg.id, error = %error, "reading a queued message failed");
    for rcpt in recipients {
        let outcome = if error.is_damage() {
            Outcome::Permanent {
                reply: format!("554 5.3.0 the queued message is damaged: {error}"),
            }
        } else {
            Outcome::Transient {
                reply: format!("451 4.3.0 the queued message cannot be read: {error}"),
                throttle: false,
            }
        };
        apply(ctx, settings, msg, b"", rcpt, outcome, true, report).await;
    }
}

async fn deliver(
    ctx: &DeliveryContext,
    domain: &str,
    worker: u64,
    conn: &mut Option<Connection>,
    job: Job,
) -> Event {
    let settings = ctx.settings();
    let indexes = job.recipients.iter().map(|r| r.index).collect();
    let mut report = Report::default();
    let loaded = (ctx.store.message(job.id), ctx.store.get_body(job.id));
    let (msg, body) = match loaded {
        (Ok(Some(msg)), Ok(Some(body))) => (msg, body),
        (Ok(Some(msg)), Err(e)) => {
            unreadable(ctx, &settings, &msg, &job.recipients, &e, &mut report).await;
            return report.event(domain, worker, job.id, indexes);
        }
        // Deleted meanwhile (queue delete): nothing to do here.
        _ => return report.event(domain, worker, job.id, indexes),
    };
    let mut to_send = Vec::new();
    for rcpt in job.recipients {
        // Suppressed, or (a list copy) unsubscribed since the post was expanded: the delivery
        // ends here, silently (no DSN).
        let suppression = ctx.store.suppressed(&rcpt.address).ok().flatten();
        let scope = suppression.as_ref().map(|s| s.scope);
        let refusal = match &suppression {
            Some(s) if s.scope == Scope::Global => {
                Some(format!("550 5.7.1 recipient is suppressed ({})", s.reason))
            }
            _ if listcopy::still_wanted(ctx, &settings, &msg, &rcpt, scope) == Some(false) => {
                Some("550 5.7.1 not sent: no longer a receiving list member".to_string())
            }
            _ => None,
        };
        match refusal {
            Some(reply) => {
                let outcome = Outcome::Permanent { reply };
                apply(
                    ctx,
                    &settings,
                    &msg,
                    &body,
                    &rcpt,
                    outcome,
                    false,
                    &mut report,
                )
                .await;
            }
            None => to_send.push(rcpt),
        }
    }
    if to_send.is_empty() {
        return report.event(domain, worker, job.id, indexes);
    }
    let content = match to_send.as_slice() {
        [one] => listcopy::copy_body(ctx, &settings, &msg, one, &body),
        _ => None,
    }
    .map_or(Cow::Borrowed(&body[..]), Cow::Owned);
    let outcomes = send(
        ctx,
        &settings,
        domain,
        conn,
        &msg,
        &to_send,
        &sign(ctx, content),
    )
    .await;
    let show = settings.config.privacy.log_addresses;
    for (rcpt, outcome) in to_send.iter().zip(outcomes) {
        tracing::info!(
            queue_id = %msg.id, domain, to = %redact(&rcpt.address, show), attempt = rcpt.attempts + 1,
            reply = %redact_in(outcome.reply(), &rcpt.address, show), "delivery attempt"
        );
        if matches!(outcome, Outcome::Delivered { .. })
            && rcpt.member.is_none()
            && wire_sender(ctx, &settings, &msg, rcpt).starts_with("b+")
            && let Err(e) = ctx.store.remember_return(msg.id, rcpt.index, &rcpt.address)
        {
            tracing::warn!(queue_id = %msg.id, error = %e, "could not remember a VERP delivery");
        }
        apply(
            ctx,
            &settings,
            &msg,
            &body,
            rcpt,
            outcome,
            true,
            &mut report,
        )
        .await;
    }
    report.event(domain, worker, job.id, indexes)
}

async fn send(
    ctx: &DeliveryContext,
    settings: &Settings,
    domain: &str,
    conn: &mut Option<Connection>,
    msg: &MessageRecord,
    rcpts: &[DeliveryRecord],
    body: &[u8],
) -> Vec<Outcome> {
    let sender = rcpts
        .first()
        .map(|r| wire_sender(ctx, settings, msg, r))
        .unwrap_or_default();
    let addresses: Vec<String> = rcpts.iter().map(|r| r.address.clone()).collect();
    // A reused connection the server has meanwhile closed fails at once; that says nothing
    // about the message, so it gets one more go on a fresh connection.
    let reused = conn.as_ref().is_some_and(Connection::usable);
    if let Some(c) = conn.as_mut().filter(|c| c.usable()) {
        let outcomes = c.send(&sender, &addresses, body).await;
        if c.usable() || !reused {
            return outcomes;
        }
    }
    *conn = None;
    match connect(ctx, settings, domain).await {
        Ok(mut c) => {
            let outcomes = c.send(&sender, &addresses, body).await;
            *conn = Some(c);
            outcomes
        }
        Err(o) => vec![o; rcpts.len()],
    }
}

async fn connect(
    ctx: &DeliveryContext,
    settings: &Settings,
    domain: &str,
) -> Result<Connection, Outcome> {
    let d = &settings.config.delivery;
    let connector = Connector::new(
        &settings.config.hostname,
        d.tls,
        d.connect_timeout.0,
        d.command_timeout.0,
    )
    .map_err(|e| Outcome::Transient {
        reply: format!("451 4.3.0 TLS setup failed: {e}"),
        throttle: false,
    })?;
    let hosts = route(ctx, settings, domain).await?;
    connector.connect(&hosts).await
}
