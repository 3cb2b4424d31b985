//! Pure parsing of inbound bounces, complaints and auto-replies: one raw message → a
//! [`Report`] with one [`Finding`] per failed (or complaining) recipient.
//!
//! Handled: RFC 3464 DSNs (`message/delivery-status`, also RFC 6533 `global-delivery-status`,
//! also field blocks quoted in text), RFC 5965 ARF complaints (plus Microsoft JMRP and Apple's
//! unsubscribe mail), Amazon SES JSON notifications, RFC 3834 auto-replies, and the
//! human-readable reports of servers that send no DSN (`human`). Never panics; the work is
//! bounded by [`mime::MAX_INPUT`] and the caps in each scanner.

mod arf;
mod autoreply;
mod context;
mod decode;
mod delivery;
mod dsn;
mod human;
pub(crate) mod mime;
mod ses;
pub(crate) mod text;

use serde::Serialize;

/// What a finding means for the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The address itself is bad.
    Hard,
    /// A failure that says nothing definite about the address.
    Soft,
    /// A feedback (ARF) report.
    Complaint,
    /// An automatic reply; not a failure at all.
    AutoReply,
    Unknown,
}

/// What kind of message was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A delivery failure report, standard (RFC 3464) or not.
    Dsn,
    /// A complaint (RFC 5965 or a provider's equivalent).
    Arf,
    AutoReply,
    NotBounce,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Lower-cased address.
    pub recipient: Option<String>,
    /// Enhanced status, e.g. `5.1.1`.
    pub status: Option<String>,
    /// DSN `Action` (failed, delayed, …).
    pub action: Option<String>,
    /// Remote reply or diagnostic text: one line, trimmed, bounded.
    pub diagnostic: Option<String>,
    pub class: Class,
    /// Short reason name: `user-unknown`, `mailbox-full`, `spam-block`, `complaint`, `vacation` …
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kind: Kind,
    /// One per failed or complaining recipient.
    pub findings: Vec<Finding>,
    /// ARF `Feedback-Type`.
    pub feedback_type: Option<String>,
    /// Message-ID of the original message, when the report returns its headers.
    pub original_message_id: Option<String>,
    /// Tokens of VERP addresses `b+TOKEN@…` seen in the report's envelope headers and the
    /// returned message's headers (lower-cased, without `b+` and domain).
    pub verp_tokens: Vec<String>,
}

/// Longest diagnostic kept, in bytes.
pub const MAX_DIAGNOSTIC: usize = 500;

/// Parses one raw message (any line ends). Never panics.
pub fn parse(raw: &[u8]) -> Report {
    parse_message(&mime::normalise(raw), 1)
}

/// Parses a normalised message; `nesting` more levels of attached messages may be tried when
/// the message itself is no report (a bounce forwarded as an attachment).
fn parse_message(data: &[u8], nesting: usize) -> Report {
    let msg = mime::read(data);
    let ctx = context::Context::new(&msg);
    let strict = arf::report(&msg, &ctx)
        .or_else(|| ses::report(&msg))
        .or_else(|| delivery::report(&msg, &ctx, false));
    if strict.as_ref().is_none_or(|f| f.1.is_empty()) && nesting > 0 {
        let attached = msg
            .leaves
            .iter()
            .filter(|l| matches!(l.ctype.mime.as_str(), "message/rfc822" | "message/global"))
            .take(2);
        for leaf in attached {
            let inner = parse_message(leaf.text.as_bytes(), nesting - 1);
            if matches!(inner.kind, Kind::Dsn | Kind::Arf) && !inner.findings.is_empty() {
                return inner;
            }
        }
    }
    let result = strict
        .filter(|f| !f.1.is_empty())
        .or_else(|| delivery::report(&msg, &ctx, true))
        .or_else(|| autoreply::report(&msg, &ctx))
        .unwrap_or((Kind::NotBounce, Vec::new(), None));
    let (kind, findings, feedback_type) = result;
    Report {
        kind,
        findings,
        feedback_type,
        original_message_id: ctx.original_message_id.clone(),
        verp_tokens: ctx.verp_tokens.clone(),
    }
}

/// What a sub-parser found: kind, findings, feedback type.
type Found = (Kind, Vec<Finding>, Option<String>);

/// A finding for a failure, classified from its status, diagnostic and `context` (more of the
/// report's text about this recipient, e.g. the SMTP command that was refused).
fn failure(
    recipient: Option<String>,
    status: Option<String>,
    action: Option<String>,
    diagnostic: &str,
    context: &str,
) -> Finding {
    let delayed = action.as_deref() == Some("delayed");
    let text = if context.is_empty() || diagnostic.contains(context) {
        diagnostic.to_string()
    } else {
        format!("{diagnostic} {context}")
    };
    let (mut class, mut reason) = crate::bounce::classify::classify(status.as_deref(), &text);
    if delayed && class == Class::Hard {
        class = Class::Soft;
        reason = "delayed";
    }
    let diagnostic = text::one_line(diagnostic, MAX_DIAGNOSTIC);
    Finding {
        recipient,
        status,
        action,
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        class,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;
