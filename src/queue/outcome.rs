//! What a delivery attempt leaves behind: the recipient's state in the store (delivered,
//! deferred on the retry schedule, or failed once expired or refused), a DSN to the sender when
//! one is wanted, and the summary the worker reports to the scheduler.

use super::DeliveryContext;
use super::retry;
use super::worker::Event;
use crate::bounce::notify::{self, Dsn, Failed};
use crate::bounce::{classify, policy};
use crate::config::Settings;
use crate::delivery::Outcome;
use crate::logging::{redact, redact_in};
use crate::metrics::Attempt;
use crate::store::{
    AttemptResult, DeliveryRecord, MessageRecord, NewMessage, NewRecipient, Origin, QueueId,
};

#[derive(Default)]
pub struct Report {
    throttle: bool,
    delivered: bool,
    retry_at: Option<u64>,
}

impl Report {
    pub fn event(self, domain: &str, worker: u64, id: QueueId, indexes: Vec<u32>) -> Event {
        Event::Done {
            domain: domain.to_string(),
            worker,
            id,
            indexes,
            throttle: self.throttle,
            delivered: self.delivered,
            retry_at: self.retry_at,
        }
    }
}

/// Records one recipient's outcome; queues a DSN for permanent failures when one is wanted.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    body: &[u8],
    rcpt: &DeliveryRecord,
    outcome: Outcome,
    remote: bool,
    report: &mut Report,
) {
    let now = crate::store::now_secs();
    let d = &settings.config.delivery;
    let (result, failure) = match outcome {
        Outcome::Delivered { reply } => {
            report.delivered = true;
            (AttemptResult::Delivered { reply }, None)
        }
        Outcome::Transient { reply, throttle } => {
            report.throttle |= throttle;
            if retry::expired(msg.created, now, d.expire.0) {
                let reply = format!("{reply} (gave up: message expired after {})", d.expire);
                (
                    AttemptResult::Failed {
                        reply: reply.clone(),
                    },
                    Some(("4.4.7".to_string(), reply)),
                )
            } else {
                let next_attempt = now
                    + retry::delay(
                        &d.retry.iter().map(|r| r.0).collect::<Vec<_>>(),
                        rcpt.attempts + 1,
                    )
                    .as_secs();
                report.retry_at = Some(
                    report
                        .retry_at
                        .map_or(next_attempt, |t| t.min(next_attempt)),
                );
                (
                    AttemptResult::Deferred {
                        reply,
                        next_attempt,
                    },
                    None,
                )
            }
        }
        Outcome::Permanent { reply } => {
            let status = notify::status_of(&reply);
            (
                AttemptResult::Failed {
                    reply: reply.clone(),
                },
                Some((status, reply)),
            )
        }
    };
    if let Err(e) = ctx.store.record_attempt(msg.id, rcpt.index, &result) {
        tracing::error!(queue_id = %msg.id, error = %e, "could not record delivery attempt");
        return;
    }
    ctx.metrics.attempt(match result {
        AttemptResult::Delivered { .. } => Attempt::Delivered,
        AttemptResult::Deferred { .. } => Attempt::Deferred,
        AttemptResult::Failed { .. } => Attempt::Failed,
    });
    let Some((status, reply)) = failure.filter(|_| remote) else {
        return;
    };
    // A remote refusal or expiry goes through the bounce classifier like a returned DSN.
    let (class, reason) = classify::classify(Some(&status), &reply);
    crate::bounce::count(&ctx.metrics, class);
    let detail = format!("{status} {reason}");
    match policy::apply(
        &ctx.store,
        settings,
        &rcpt.address,
        class,
        "delivery",
        &detail,
    )
    .await
    {
        Ok(policy::Applied::Ignored) | Ok(policy::Applied::Counted(_)) => {}
        Ok(policy::Applied::Suppressed(scope)) => {
            let show = settings.config.privacy.log_addresses;
            tracing::info!(
                queue_id = %msg.id, to = %redact(&rcpt.address, show), ?scope,
                detail = %redact_in(&detail, &rcpt.address, show), "address suppressed"
            )
        }
        Err(e) => {
            tracing::error!(queue_id = %msg.id, error = %e, "applying the bounce policy failed")
        }
    }
    // List copies bounce to the list (VERP), never to the poster.
    if rcpt.member.is_none()
        && msg.origin != Origin::Generated
        && notify::wanted(&msg.sender, rcpt.notify.as_deref())
    {
        queue_dsn(ctx, settings, msg, body, rcpt, status, &reply).await;
    }
}

async fn queue_dsn(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    body: &[u8],
    rcpt: &DeliveryRecord,
    status: String,
    reply: &str,
) {
    let hostname = &settings.config.hostname;
    let id = ctx.store.allocate_id();
    let message_id = format!("<{id}.dsn@{hostname}>");
    let dsn = Dsn {
        hostname,
        sender: &msg.sender,
        envid: msg.dsn.envid.as_deref(),
        full: msg.dsn.ret.as_deref() == Some("FULL") && body.len() < (1 << 20),
        arrival: msg.created,
        now: crate::store::now_secs(),
        message_id: &message_id,
        failed: vec![Failed {
            address: &rcpt.address,
            orcpt: rcpt.orcpt.as_deref(),
            status,
            diagnostic: reply,
            remote: true,
        }],
        original: body,
    };
    let new = NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient {
            address: msg.sender.clone(),
            notify: None,
            orcpt: None,
        }],
        message_id: Some(message_id.clone()),
        origin: Origin::Generated,
        client: "localhost".into(),
        dsn: Default::default(),
        body: notify::build(&dsn),
        list: None,
    };
    match ctx.store.insert_message(id, new).await {
        Ok(()) => {
            tracing::info!(queue_id = %id, original = %msg.id, "queued delivery status notification");
            ctx.rescan.store(true, std::sync::atomic::Ordering::Release);
        }
        Err(e) => tracing::error!(original = %msg.id, error = %e, "could not queue DSN"),
    }
}
