//! Complaints: RFC 5965 feedback reports (`message/feedback-report`), Microsoft's JMRP reports
//! (the returned message carries `X-HmXmrOriginalRecipient`) and Apple Mail's unsubscribe mail
//! (`X-Apple-Unsubscribe: true`). The complaining recipient comes from `Original-Rcpt-To` or
//! `Removal-Recipient`, else from the returned message's `To`.

use super::context::{Context, is_returned};
use super::mime::{self, Headers, Message};
use super::text::{address_in, addresses_in, lower};
use super::{Class, Finding, Found, Kind};

/// Recipients reported from one complaint.
const MAX_RECIPIENTS: usize = 50;

pub fn report(msg: &Message, ctx: &Context) -> Option<Found> {
    if let Some(fields) = feedback_fields(msg) {
        let feedback_type = fields
            .get("feedback-type")
            .map(|t| lower(t.trim()))
            .unwrap_or_else(|| "abuse".into());
        let mut rcpts: Vec<String> = fields
            .all("original-rcpt-to")
            .chain(fields.all("removal-recipient"))
            .filter_map(address_in)
            .collect();
        if rcpts.is_empty() {
            rcpts = returned_recipients(ctx);
        }
        return Some(found(rcpts, &feedback_type));
    }
    if let Some(rcpt) = jmrp_recipient(msg) {
        return Some(found(vec![rcpt], "abuse"));
    }
    let apple = msg
        .headers
        .get("x-apple-unsubscribe")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if apple {
        return Some(found(ctx.from.iter().cloned().collect(), "opt-out"));
    }
    None
}

/// The feedback-report fields, from a `message/feedback-report` part or, in a report of type
/// `feedback-report`, from any part that has a `Feedback-Type` field.
fn feedback_fields(msg: &Message) -> Option<Headers> {
    let is_arf = msg
        .ctype
        .param("report-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("feedback-report"));
    for leaf in &msg.leaves {
        let declared = leaf.ctype.mime == "message/feedback-report";
        if declared || (is_arf && lower(&leaf.text).contains("feedback-type:")) {
            let (h, _) = mime::parse_headers(leaf.text.trim_start().as_bytes());
            if declared || h.get("feedback-type").is_some() {
                return Some(h);
            }
        }
    }
    None
}

/// Microsoft JMRP: the returned message names its original recipient.
fn jmrp_recipient(msg: &Message) -> Option<String> {
    msg.leaves.iter().filter(|l| is_returned(l)).find_map(|l| {
        let (h, _) = mime::parse_headers(l.text.trim_start().as_bytes());
        h.get("x-hmxmroriginalrecipient").and_then(address_in)
    })
}

/// The `To` addresses of the returned message.
fn returned_recipients(ctx: &Context) -> Vec<String> {
    ctx.original
        .as_ref()
        .map(|o| o.all("to").flat_map(addresses_in).collect())
        .unwrap_or_default()
}

fn found(mut rcpts: Vec<String>, feedback_type: &str) -> Found {
    rcpts.dedup();
    rcpts.truncate(MAX_RECIPIENTS);
    let reason = match feedback_type {
        "opt-out" | "auth-failure" => feedback_type,
        _ => "complaint",
    };
    let finding = |recipient: Option<String>| Finding {
        recipient,
        status: None,
        action: None,
        diagnostic: None,
        class: Class::Complaint,
        reason: reason.to_string(),
    };
    let findings = if rcpts.is_empty() {
        vec![finding(None)]
    } else {
        rcpts.into_iter().map(|r| finding(Some(r))).collect()
    };
    let feedback_type = mime::truncate(feedback_type, 64).to_string();
    (Kind::Arf, findings, Some(feedback_type))
}
