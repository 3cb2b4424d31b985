//! Automatic replies (RFC 3834 `Auto-Submitted: auto-replied`, `X-Autoreply`, `Precedence:
//! auto_reply`, vacation subjects …). They are not failures: the finding names the replying
//! address (the reply's `From`) with class `AutoReply`, which must not lead to suppression.

use super::context::Context;
use super::mime::Message;
use super::text::lower;
use super::{Class, Finding, Found, Kind};

/// Subject starts or phrases of out-of-office replies.
const VACATION: &[&str] = &[
    "out of office",
    "out of the office",
    "away from",
    "away until",
    "on vacation",
    "vacation",
    "on leave",
    "abwesen",
    "absence",
    "congé",
    "自動応答",
    "不在",
];
const AUTO_SUBJECTS: &[&str] = &[
    "auto:",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "automatische antwort",
    "réponse automatique",
    "reponse automatique",
    "risposta automatica",
    "respuesta automática",
    "auto response",
    "autoresponse",
    "auto-response",
];

pub fn report(msg: &Message, ctx: &Context) -> Option<Found> {
    let h = &msg.headers;
    let header = |name: &str| h.get(name).map(|v| lower(v.trim()));
    let flagged = header("auto-submitted").is_some_and(|v| v.starts_with("auto-replied"))
        || h.get("x-autoreply").is_some()
        || h.get("x-autorespond").is_some()
        || header("x-auto-response").is_some()
        || header("precedence")
            .is_some_and(|v| v.contains("auto_reply") || v.contains("auto-reply"))
        || header("x-apple-action").is_some_and(|v| v.contains("vacation"))
        || header("x-ms-exchange-inbox-rules-loop").is_some() && ctx.subject.contains("reply");
    let subject = ctx.subject.trim();
    let auto_subject = AUTO_SUBJECTS.iter().any(|s| subject.contains(s));
    let vacation = VACATION.iter().any(|s| subject.contains(s))
        || header("x-apple-action").is_some_and(|v| v.contains("vacation"));
    if !(flagged || auto_subject || vacation && h.get("in-reply-to").is_some()) {
        return None;
    }
    // Bounces often carry `Auto-Submitted: auto-replied` too.
    if !(auto_subject || vacation) && ctx.looks_like_bounce(msg) {
        return None;
    }
    let reason = if vacation || auto_subject {
        "vacation"
    } else {
        "auto-reply"
    };
    let finding = Finding {
        recipient: ctx.from.clone(),
        status: None,
        action: None,
        diagnostic: (!subject.is_empty())
            .then(|| super::text::one_line(subject, super::MAX_DIAGNOSTIC)),
        class: Class::AutoReply,
        reason: reason.into(),
    };
    Some((Kind::AutoReply, vec![finding], None))
}
