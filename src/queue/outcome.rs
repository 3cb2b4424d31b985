//! What a job's attempts leave behind: each recipient's state in the store (delivered,
//! deferred on the retry schedule, or failed once expired or refused), recorded for the whole
//! job in one transaction; for remote failures the bounce classifier and policy; a DSN to the
//! sender for permanent failures (remote or local) when one is wanted; and the summary the
//! worker reports to the scheduler. Policy refusals stay silent.

use super::DeliveryContext;
use super::retry;
use super::worker::Event;
use crate::bounce::notify::{self, Dsn, Failed};
use crate::bounce::{classify, policy};
use crate::config::Settings;
use crate::delivery::{Origin, Outcome, Reply, Status};
use crate::logging::{redact, redact_in};
use crate::metrics::Attempt;
use crate::store::{
    AttemptResult, DeliveryRecord, MessageRecord, NewMessage, NewRecipient, QueueId,
};

#[derive(Default)]
pub struct Report {
    throttle: bool,
    delivered: bool,
    pub(super) retry_at: Option<u64>,
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

/// A delivery that ended for good without a 250: what its DSN and the classifier are told.
struct Failure {
    /// `4.4.7` for an expiry, else the reply's own (or its code's generic one).
    status: Status,
    reply: Reply,
    origin: Origin,
}

/// What the store records for one outcome, and the failure it amounts to, if any.
fn result_of(
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
    outcome: Outcome,
    now: u64,
    report: &mut Report,
) -> (AttemptResult, Option<Failure>) {
    let d = &settings.config.delivery;
    match outcome {
        Outcome::Delivered { reply } => {
            report.delivered = true;
            let reply = reply.to_string();
            (AttemptResult::Delivered { reply }, None)
        }
        Outcome::Transient {
            reply,
            origin,
            throttle,
        } => {
            report.throttle |= throttle;
            if retry::expired(msg.created, now, d.expire.0) {
                let reply = reply.noted(&format!("gave up: message expired after {}", d.expire));
                let result = AttemptResult::Failed {
                    reply: reply.to_string(),
                };
                let status = Status::new(4, 4, 7);
                return (
                    result,
                    Some(Failure {
                        status,
                        reply,
                        origin,
                    }),
                );
            }
            let delays: Vec<_> = d.retry.iter().map(|r| r.0).collect();
            let next_attempt = now + retry::delay(&delays, rcpt.attempts + 1).as_secs();
            report.retry_at = Some(
                report
                    .retry_at
                    .map_or(next_attempt, |t| t.min(next_attempt)),
            );
            let reply = reply.to_string();
            (
                AttemptResult::Deferred {
                    reply,
                    next_attempt,
                },
                None,
            )
        }
        Outcome::Permanent { reply, origin } => {
            let result = AttemptResult::Failed {
                reply: reply.to_string(),
            };
            let status = reply.status_or_generic();
            (
                result,
                Some(Failure {
                    status,
                    reply,
                    origin,
                }),
            )
        }
    }
}

/// Records a job's outcomes in one store transaction, then, recipient by recipient, counts
/// them, applies the bounce policy to remote failures and queues DSNs where one is wanted.
pub async fn apply(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    body: &[u8],
    outcomes: Vec<(&DeliveryRecord, Outcome)>,
    report: &mut Report,
) {
    if outcomes.is_empty() {
        return;
    }
    let now = crate::store::now_secs();
    let mut results = Vec::with_capacity(outcomes.len());
    let mut failures = Vec::with_capacity(outcomes.len());
    for (rcpt, outcome) in outcomes {
        let (result, failure) = result_of(settings, msg, rcpt, outcome, now, report);
        results.push((rcpt.index, result));
        failures.push((rcpt, failure));
    }
    let recorded = match ctx.store.record_attempts(msg.id, &results) {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::error!(queue_id = %msg.id, error = %e, "could not record delivery attempts");
            return;
        }
    };
    for ((_, result), (rcpt, failure)) in results.iter().zip(failures) {
        // A delivery gone meanwhile (forgotten) is recorded by nobody and followed by nothing.
        if !recorded.iter().any(|r| r.delivery.index == rcpt.index) {
            continue;
        }
        ctx.metrics.attempt(match result {
            AttemptResult::Delivered { .. } => Attempt::Delivered,
            AttemptResult::Deferred { .. } => Attempt::Deferred,
            AttemptResult::Failed { .. } => Attempt::Failed,
        });
        if let Some(failure) = failure {
            failed(ctx, settings, msg, body, rcpt, failure).await;
        }
    }
}

/// A delivery failed for good: a remote failure goes through the bounce classifier and policy
/// like a returned DSN; a remote or local one tells the sender; a policy refusal nobody.
async fn failed(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    body: &[u8],
    rcpt: &DeliveryRecord,
    failure: Failure,
) {
    match failure.origin {
        Origin::Policy => return,
        Origin::Local => {}
        Origin::Remote => bounced(ctx, settings, msg, rcpt, &failure).await,
    }
    // List copies bounce to the list (VERP), never to the poster.
    if rcpt.member.is_none()
        && msg.origin != crate::store::Origin::Generated
        && notify::wanted(&msg.sender, rcpt.notify.as_deref())
    {
        queue_dsn(ctx, settings, msg, body, rcpt, &failure).await;
    }
}

/// A remote refusal or expiry, classified and given to the bounce policy.
async fn bounced(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
    failure: &Failure,
) {
    let (class, reason) = classify::classify_reply(Some(failure.status), &failure.reply);
    crate::bounce::count(&ctx.metrics, class);
    let detail = format!("{} {reason}", failure.status);
    let applied = policy::apply(
        &ctx.store,
        settings,
        &rcpt.address,
        class,
        "delivery",
        &detail,
    )
    .await;
    match applied {
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
}

async fn queue_dsn(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    body: &[u8],
    rcpt: &DeliveryRecord,
    failure: &Failure,
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
            status: failure.status,
            diagnostic: &failure.reply,
            remote: failure.origin == Origin::Remote,
        }],
        original: body,
        nonce: rand::random(),
    };
    let new = NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient {
            address: msg.sender.clone(),
            notify: None,
            orcpt: None,
        }],
        message_id: Some(message_id.clone()),
        origin: crate::store::Origin::Generated,
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
