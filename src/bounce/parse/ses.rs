//! Amazon SES notifications delivered by mail (SNS email subscriptions): a JSON body with
//! `notificationType` Bounce, Complaint or Delivery.

use serde_json::Value;

use super::mime::{Message, truncate};
use super::text::address_in;
use super::{Class, Finding, Found, Kind, failure};

/// Largest JSON body parsed.
const MAX_JSON: usize = 512 << 10;
/// Recipients reported from one notification.
const MAX_RECIPIENTS: usize = 100;

pub fn report(msg: &Message) -> Option<Found> {
    let leaf = msg
        .leaves
        .iter()
        .find(|l| l.ctype.mime.starts_with("text/") && l.text.contains("\"notificationType\""))?;
    let start = leaf.text.find('{')?;
    let end = leaf.text.rfind('}')?;
    let json = leaf.text.get(start..=end)?;
    if json.len() > MAX_JSON {
        return None;
    }
    // SNS folds long lines as `!` + line end + space.
    let json = json.replace("!\n ", "");
    let v: Value = serde_json::from_str(&json).ok()?;
    match v.get("notificationType")?.as_str()? {
        "Bounce" => Some(bounce(v.get("bounce")?)),
        "Complaint" => Some(complaint(v.get("complaint")?)),
        _ => Some((Kind::NotBounce, Vec::new(), None)),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn bounce(b: &Value) -> Found {
    let transient = str_of(b, "bounceType") == Some("Transient");
    let findings = b
        .get("bouncedRecipients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .take(MAX_RECIPIENTS)
                .map(|r| {
                    let diag = str_of(r, "diagnosticCode").unwrap_or_default();
                    let diag = diag
                        .split_once(';')
                        .filter(|(t, _)| t.len() < 16)
                        .map_or(diag, |(_, d)| d.trim());
                    let mut f = failure(
                        str_of(r, "emailAddress").and_then(address_in),
                        str_of(r, "status").and_then(super::text::enhanced_status),
                        str_of(r, "action").map(|a| truncate(a, 32).to_ascii_lowercase()),
                        diag,
                        "",
                    );
                    if transient && f.class == Class::Hard {
                        f.class = Class::Soft;
                    }
                    f
                })
                .collect()
        })
        .unwrap_or_default();
    (Kind::Dsn, findings, None)
}

fn complaint(c: &Value) -> Found {
    let feedback_type = str_of(c, "complaintFeedbackType")
        .map(|t| truncate(t, 64).to_ascii_lowercase())
        .unwrap_or_else(|| "abuse".into());
    let findings = c
        .get("complainedRecipients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .take(MAX_RECIPIENTS)
                .map(|r| Finding {
                    recipient: str_of(r, "emailAddress").and_then(address_in),
                    status: None,
                    action: None,
                    diagnostic: None,
                    class: Class::Complaint,
                    reason: "complaint".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    (Kind::Arf, findings, Some(feedback_type))
}
