//! What every sub-parser needs to know about a report besides its parts: the returned original
//! message's headers, the addresses that are not failed recipients (the report's own sender and
//! addressee, the original sender), whether the message looks like a bounce at all, the original
//! Message-ID and VERP tokens.

use super::mime::{self, Headers, Leaf, Message};
use super::text::{address_in, addresses_in, lower};

/// Addresses taken from each header for the exclusion list.
const MAX_EXCLUDED: usize = 20;

pub struct Context {
    /// Headers of the returned original message, if any.
    pub original: Option<Headers>,
    /// Addresses never reported as failed recipients.
    pub exclude: Vec<String>,
    /// Decoded, lower-cased subject.
    pub subject: String,
    /// The report's `From` address.
    pub from: Option<String>,
    pub original_message_id: Option<String>,
    pub verp_tokens: Vec<String>,
}

/// `message/*` types that carry the returned message or its headers.
pub fn is_returned(leaf: &Leaf) -> bool {
    matches!(
        leaf.ctype.mime.as_str(),
        "message/rfc822"
            | "message/global"
            | "text/rfc822-headers"
            | "message/rfc822-headers"
            | "message/global-headers"
    ) || is_inline_original(leaf)
}

/// A body part whose header block is a message's (some servers append the original as a bare
/// part, without `message/rfc822`).
fn is_inline_original(leaf: &Leaf) -> bool {
    let h = &leaf.headers;
    leaf.depth > 0
        && (h.get("received").is_some()
            || h.get("message-id").is_some()
            || h.get("from").is_some() && h.get("subject").is_some())
}

impl Context {
    pub fn new(msg: &Message) -> Context {
        let original = original_headers(msg);
        let top = &msg.headers;
        let mut exclude = Vec::new();
        for name in ["from", "to", "cc", "reply-to", "return-path", "sender"] {
            exclude.extend(top.all(name).flat_map(addresses_in).take(MAX_EXCLUDED));
        }
        if let Some(o) = &original {
            for name in ["from", "return-path", "sender", "reply-to"] {
                exclude.extend(o.all(name).flat_map(addresses_in).take(MAX_EXCLUDED));
            }
        }
        exclude.sort();
        exclude.dedup();
        let original_message_id = original
            .as_ref()
            .and_then(|o| o.get("message-id"))
            .or_else(|| top.get("in-reply-to"))
            .and_then(message_id);
        let verp_tokens = verp_tokens(top, original.as_ref());
        Context {
            exclude,
            subject: lower(&super::decode::decode_words(
                top.get("subject").unwrap_or_default(),
            )),
            from: top.get("from").and_then(address_in),
            original,
            original_message_id,
            verp_tokens,
        }
    }

    /// Whether the report's sender or subject says "delivery failure".
    pub fn looks_like_bounce(&self, msg: &Message) -> bool {
        let from = lower(msg.headers.get("from").unwrap_or_default());
        const SENDERS: &[&str] = &[
            "mailer-daemon",
            "mailer_daemon",
            "postmaster",
            "mail delivery",
            "mail administrator",
            "mdaemon",
            "mail-daemon",
            "mailerdaemon",
            "no-reply@sns.amazonaws.com",
        ];
        const SUBJECTS: &[&str] = &[
            "undeliver",
            "undelivered",
            "delivery",
            "failure",
            "failed",
            "returned mail",
            "returned to sender",
            "bounce",
            "not delivered",
            "rejected",
            "error",
            "non remis",
            "unzustellbar",
            "nicht zugestellt",
            "could not send",
            "mail system",
            "problem",
            "warning",
            "notification",
        ];
        SENDERS.iter().any(|s| from.contains(s))
            || SUBJECTS.iter().any(|s| self.subject.contains(s))
            || msg.headers.get("x-failed-recipients").is_some()
            || msg.ctype.param("report-type").is_some()
    }
}

/// The returned message's header block: an attached message or headers part, else headers
/// that follow a "copy of the message" line in the text.
fn original_headers(msg: &Message) -> Option<Headers> {
    if let Some(leaf) = msg.leaves.iter().find(|l| is_returned(l)) {
        if is_inline_original(leaf)
            && !leaf.ctype.mime.starts_with("message/")
            && !leaf.ctype.mime.starts_with("text/rfc822")
        {
            return Some(leaf.headers.clone());
        }
        let (h, _) = mime::parse_headers(leaf.text.trim_start().as_bytes());
        return Some(h);
    }
    let texts = msg
        .leaves
        .iter()
        .filter(|l| l.ctype.mime.starts_with("text/"));
    texts.filter_map(|l| inline_headers(&l.text)).next()
}

/// Headers quoted after a "copy of the message follows" line in a text part.
fn inline_headers(text: &str) -> Option<Headers> {
    const MARKERS: &[&str] = &[
        "original message",
        "copy of",
        "below this line",
        "message follows",
        "headers follow",
        "returned message",
        "unsent message",
    ];
    let mut offset = 0;
    let mut cut = false;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if !cut {
            let l = lower(line);
            cut = l.len() < 100 && MARKERS.iter().any(|m| l.contains(m));
            continue;
        }
        let name = line.split(':').next().unwrap_or_default();
        let field_name = !name.is_empty()
            && name.len() < line.len()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if field_name {
            let (h, _) = mime::parse_headers(text.get(start..).unwrap_or_default().as_bytes());
            return (!h.0.is_empty()).then_some(h);
        }
    }
    None
}

/// `<id@host>` from a Message-ID-like value.
fn message_id(v: &str) -> Option<String> {
    let v = v.trim();
    let id = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v.get(a + 1..b)?,
        _ => v.split_whitespace().next()?,
    };
    (!id.is_empty() && id.len() < 256).then(|| format!("<{id}>"))
}

/// Tokens of `b+TOKEN@` addresses in the envelope-ish headers of the report and the original.
fn verp_tokens(top: &Headers, original: Option<&Headers>) -> Vec<String> {
    let mut values: Vec<&str> = Vec::new();
    for name in [
        "to",
        "cc",
        "x-original-to",
        "delivered-to",
        "envelope-to",
        "x-envelope-to",
        "original-recipient",
    ] {
        values.extend(top.all(name));
    }
    if let Some(o) = original {
        for name in [
            "return-path",
            "sender",
            "errors-to",
            "x-original-to",
            "to",
            "original-recipient",
        ] {
            values.extend(o.all(name));
        }
    }
    let mut out: Vec<String> = Vec::new();
    for addr in values.into_iter().flat_map(addresses_in) {
        let local = crate::mail::split(&addr).map_or(addr.as_str(), |(l, _)| l);
        if let Some(token) = local.strip_prefix("b+")
            && !token.is_empty()
            && token.len() <= 64
            && token.bytes().all(|b| b.is_ascii_alphanumeric())
            && !out.iter().any(|t| t == token)
        {
            out.push(token.to_string());
            if out.len() >= 16 {
                break;
            }
        }
    }
    out
}
