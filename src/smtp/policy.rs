//! The content policy at submission, pure: message bytes and a [`CompiledPolicy`] in, a
//! [`Verdict`] out. Denied patterns in the decoded subject and text parts, denied attachment
//! types by file name or MIME type (nested messages included), and bulk mail that offers no
//! way to unsubscribe. Bounded (text scanned, nesting followed) and fuzzed.

use crate::config::CompiledPolicy;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::fmt;

/// Decoded text examined per message (subjects and text parts together), in bytes.
pub const MAX_SCANNED_TEXT: usize = 4 << 20;
/// How deep attached messages (`message/rfc822`) are followed.
pub const MAX_DEPTH: usize = 8;

/// What the policy says about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refuse with `550 5.7.1 <reason>`.
    Deny {
        rule: Rule,
        reason: String,
    },
}

/// Which rule refused a message (logged; the reason is what the client sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `policy.deny[index]` matched the subject or a text part.
    Pattern { index: usize },
    /// An attachment's file name ends in this denied extension.
    Extension(String),
    /// A part has this denied MIME type.
    MimeType(String),
    /// Marked as bulk or marketing but without a usable `List-Unsubscribe`.
    NoUnsubscribe,
}

impl Rule {
    /// A short, stable name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Pattern { .. } => "pattern",
            Rule::Extension(_) => "attachment_extension",
            Rule::MimeType(_) => "attachment_type",
            Rule::NoUnsubscribe => "no_unsubscribe",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Pattern { index } => write!(f, "policy.deny[{index}]"),
            Rule::Extension(e) => write!(f, "attachment .{e}"),
            Rule::MimeType(m) => write!(f, "attachment {m}"),
            Rule::NoUnsubscribe => f.write_str("bulk mail without List-Unsubscribe"),
        }
    }
}

/// Checks one submitted message. `list_post`: the message goes to a Herald list, which adds
/// its own `List-Unsubscribe` to every copy, so the unsubscribe rule does not apply.
pub fn check(message: &[u8], policy: &CompiledPolicy, list_post: bool) -> Verdict {
    if !policy.reads_content() && list_post {
        return Verdict::Accept;
    }
    // Without content rules only the header section (and the empty line after it) is read.
    let message = if policy.reads_content() {
        message
    } else {
        let body_start = crate::mail::header::section(message).body_start;
        message.get(..body_start).unwrap_or(message)
    };
    let parser = MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject);
    let Some(msg) = parser.parse(message) else {
        return Verdict::Accept;
    };
    let mut parts = Vec::new();
    let mut subjects = Vec::new();
    flatten(&msg, 0, &mut parts, &mut subjects);
    if let Some(v) = patterns(policy, &subjects, &parts) {
        return v;
    }
    if let Some(v) = attachments(policy, &parts) {
        return v;
    }
    if !list_post && is_bulk(&msg) && !has_unsubscribe(&msg) {
        return Verdict::Deny {
            rule: Rule::NoUnsubscribe,
            reason: "Bulk or marketing mail must have a List-Unsubscribe header".into(),
        };
    }
    Verdict::Accept
}

/// Every part of `msg` and of the messages attached to it (down to [`MAX_DEPTH`]), and their
/// subjects.
fn flatten<'m, 'x>(
    msg: &'m Message<'x>,
    depth: usize,
    parts: &mut Vec<&'m MessagePart<'x>>,
    subjects: &mut Vec<&'m str>,
) {
    subjects.extend(msg.subject());
    for part in &msg.parts {
        parts.push(part);
        if let PartType::Message(inner) = &part.body
            && depth < MAX_DEPTH
        {
            flatten(inner, depth + 1, parts, subjects);
        }
    }
}

fn patterns(policy: &CompiledPolicy, subjects: &[&str], parts: &[&MessagePart]) -> Option<Verdict> {
    let set = policy.patterns.as_ref()?;
    let texts = parts.iter().filter_map(|p| match &p.body {
        PartType::Text(t) | PartType::Html(t) => Some(t.as_ref()),
        _ => None,
    });
    let mut budget = MAX_SCANNED_TEXT;
    for text in subjects.iter().copied().chain(texts) {
        if budget == 0 {
            break;
        }
        let hay = &text[..text.floor_char_boundary(budget)];
        budget -= hay.len();
        if !set.is_match(hay) {
            continue;
        }
        // The lowest index is the first rule in file order.
        let first = set.matches(hay).iter().next();
        if let Some((index, reason)) = first.and_then(|i| Some((i, policy.reasons.get(i)?))) {
            return Some(Verdict::Deny {
                rule: Rule::Pattern { index },
                reason: reason.clone(),
            });
        }
    }
    None
}

fn attachments(policy: &CompiledPolicy, parts: &[&MessagePart]) -> Option<Verdict> {
    if policy.extensions.is_empty() && policy.mime_types.is_empty() {
        return None;
    }
    for part in parts {
        if let PartType::Multipart(_) = part.body {
            continue;
        }
        if let Some(name) = part.attachment_name() {
            // Windows ignores trailing dots and spaces: "setup.exe. " runs as setup.exe.
            let name = name.trim_end_matches(['.', ' ', '\t']).to_ascii_lowercase();
            let denied = policy.extensions.iter().find(|ext| {
                name.strip_suffix(ext.as_str())
                    .is_some_and(|stem| stem.ends_with('.'))
            });
            if let Some(ext) = denied {
                return Some(Verdict::Deny {
                    rule: Rule::Extension(ext.clone()),
                    reason: format!("Attachments of type .{ext} are not accepted"),
                });
            }
        }
        if let Some(ct) = part.content_type() {
            let mime = format!(
                "{}/{}",
                ct.c_type,
                ct.c_subtype.as_deref().unwrap_or_default()
            )
            .to_ascii_lowercase();
            if let Some(m) = policy.mime_types.iter().find(|m| **m == mime) {
                return Some(Verdict::Deny {
                    rule: Rule::MimeType(m.clone()),
                    reason: format!("Attachments of type {m} are not accepted"),
                });
            }
        }
    }
    None
}

/// The trimmed values of the top-level header `name`.
fn values<'m>(msg: &'m Message, name: &'static str) -> impl Iterator<Item = &'m str> {
    msg.headers_raw()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Whether the message says it is bulk or marketing mail (README "Content policy"):
/// `Herald-Category: marketing`, or a `List-Id`, or `Precedence: bulk`/`list` unless it is
/// also marked as an automatic message (`Auto-Submitted` other than `no`) or as
/// `Herald-Category: transactional` — notification systems use Precedence to silence
/// vacation replies.
fn is_bulk(msg: &Message) -> bool {
    let category = |c: &str| values(msg, "Herald-Category").any(|v| v.eq_ignore_ascii_case(c));
    if category("marketing") || values(msg, "List-Id").any(|v| !v.is_empty()) {
        return true;
    }
    let precedence = values(msg, "Precedence")
        .any(|v| v.eq_ignore_ascii_case("bulk") || v.eq_ignore_ascii_case("list"));
    let automatic = values(msg, "Auto-Submitted").any(|v| {
        let kind = v.split(';').next().unwrap_or_default().trim();
        !kind.is_empty() && !kind.eq_ignore_ascii_case("no")
    });
    precedence && !automatic && !category("transactional")
}

/// A `List-Unsubscribe` with at least one `<mailto:…>` or `<http(s)://…>` URI (RFC 2369).
fn has_unsubscribe(msg: &Message) -> bool {
    values(msg, "List-Unsubscribe").any(|v| {
        v.split('<').skip(1).any(|uri| {
            let uri = uri.split('>').next().unwrap_or_default().trim();
            let lower = uri.to_ascii_lowercase();
            ["mailto:", "https://", "http://"]
                .iter()
                .any(|s| lower.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
        })
    })
}

#[cfg(test)]
mod tests;
