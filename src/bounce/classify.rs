//! Pure classification of one failed delivery: enhanced status code plus the remote reply or
//! diagnostic text → [`Class`] and a short reason name. Used for inbound bounces (text, which
//! [`classify`] parses) and for the synchronous replies Herald gets while delivering (typed,
//! [`classify_reply`], nothing parsed back).
//!
//! Hard means the address itself is bad (user or domain unknown, moved, domain accepts no
//! mail) and only for permanent failures. Everything else that failed is soft — in particular
//! spam, blocklist and policy rejections, which say nothing about the address.

mod hard;
mod soft;

use crate::bounce::parse::Class;
use crate::bounce::parse::text::{lower, reply_code};
use crate::mail::{Reply, Status};

/// Classifies a failure from its enhanced status (`5.1.1`, optional) and diagnostic text, as a
/// returned DSN gives them; the reply code is the first one found in the text.
///
/// A remote "user unknown" reply is hard when it answered RCPT (the text says so: `in reply to
/// RCPT TO command`, `after RCPT TO`, `>>> RCPT To:` …) or carries an address status
/// (`X.1.*`). Without either it may come from a content filter after DATA — several providers
/// word refusals so — and counts as soft (`filtered`).
pub fn classify(status: Option<&str>, diagnostic: &str) -> (Class, &'static str) {
    let d = squeeze(diagnostic);
    let code = reply_code(&d);
    decide(status.and_then(Status::parse), code, &d)
}

/// Classifies a reply Herald got (or made) while delivering, with `status` the enhanced status
/// that counts (the reply's own, or `4.4.7` for an expiry). The daemon notes `(in reply to
/// RCPT TO command)` on its RCPT replies, which the rules above rely on.
pub fn classify_reply(status: Option<Status>, reply: &Reply) -> (Class, &'static str) {
    decide(status, Some(reply.code), &squeeze(&reply.text))
}

fn decide(status: Option<Status>, code: Option<u16>, d: &str) -> (Class, &'static str) {
    // X.4.7, delivery time expired (RFC 3463), is the verdict: the text beside it is only the
    // last attempt's reply ("try again later" would read as a rate limit).
    if status.is_some_and(|s| (s.subject, s.detail) == (4, 7)) {
        return (Class::Soft, "expired");
    }
    let permanent = match &status {
        Some(s) => s.class == 5,
        None => code.is_none_or(|c| c / 100 == 5),
    };
    if permanent && let Some(reason) = find(hard::HARD_FIRST, d) {
        return (Class::Hard, reason);
    }
    if let Some(reason) = find(soft::SOFT_FIRST, d) {
        return (Class::Soft, reason);
    }
    if code == Some(525) {
        return (Class::Soft, "suspended");
    }
    if permanent {
        if refused_as_unknown(d) {
            return (Class::Soft, "filtered");
        }
        let about_address = status.as_ref().is_some_and(about_address);
        if let Some(reason) = find(hard::HARD, d) {
            if reason != "user-unknown" || about_address || trusted(d) {
                return (Class::Hard, reason);
            }
            return (Class::Soft, "filtered");
        }
        if about_address {
            return status
                .as_ref()
                .and_then(specific)
                .unwrap_or((Class::Hard, "bad-address"));
        }
        if code == Some(556) {
            return (Class::Hard, "no-mail-accepted");
        }
    }
    if let Some(found) = status.as_ref().and_then(specific)
        && found.0 == Class::Soft
    {
        return found;
    }
    if let Some(reason) = find(soft::SOFT_LATE, d) {
        return (Class::Soft, reason);
    }
    match status {
        Some(s) => (Class::Soft, generic(&s)),
        None if !permanent => (Class::Soft, "temporary"),
        None => (Class::Soft, "failed"),
    }
}

/// Whether "user unknown" wording is to be believed (see [`classify`]): the reporting server's
/// own verdict, or a refusal of RCPT (the last SMTP command named in the text is RCPT, not DATA).
fn trusted(d: &str) -> bool {
    const RCPT: &[&str] = &[
        "rcpt to",
        "rcpt command",
        "rcpt_to",
        "rcpt response",
        ":rcpt",
        "after rcpt",
        "does not like recipient",
    ];
    const DATA: &[&str] = &[
        "end of data",
        ">>> data",
        "after data",
        "data command",
        "final data",
        "after i sent the message",
        "message body",
    ];
    let last = |markers: &[&str]| markers.iter().filter_map(|m| d.rfind(m)).max();
    hard::VERDICTS.iter().any(|v| d.contains(v))
        || match (last(RCPT), last(DATA)) {
            (Some(r), Some(x)) => r > x,
            (r, _) => r.is_some(),
        }
}

/// "550 : User unknown" with an empty address: some providers' wording for "the recipient
/// refuses your mail" (a filter), not for a missing mailbox.
fn refused_as_unknown(d: &str) -> bool {
    d.contains(" : user unknown")
        || d.contains("<>: user unknown")
        || d.contains(": : user unknown")
}

/// The first reason whose table has a phrase found in `d`.
fn find(tables: &[(&'static str, &[&str])], d: &str) -> Option<&'static str> {
    tables
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| contains(d, p)))
        .map(|(reason, _)| *reason)
}

/// Substring test; a `*` in the pattern stands for one word.
fn contains(d: &str, pattern: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return d.contains(pattern);
    };
    d.match_indices(head).any(|(i, _)| {
        let rest = d.get(i + head.len()..).unwrap_or_default();
        let word = rest.find(' ').unwrap_or(rest.len());
        word > 0 && rest.get(word..).is_some_and(|r| r.starts_with(tail))
    })
}

/// Lower-cased, whitespace collapsed, at most 2 KiB of input.
fn squeeze(s: &str) -> String {
    let s = crate::bounce::parse::mime::truncate(s, 2048);
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    for w in s.split_whitespace() {
        out.push_str(&lower(w));
        out.push(' ');
    }
    out
}

/// `X.1.*` about the recipient's address (not `X.1.7`/`X.1.8`, the sender's).
fn about_address(s: &Status) -> bool {
    s.subject == 1 && !matches!(s.detail, 7 | 8)
}

/// Classes that a specific code decides on its own.
fn specific(s: &Status) -> Option<(Class, &'static str)> {
    let hard = s.class == 5;
    let found = match (s.subject, s.detail) {
        (1, 1) | (1, 3) if hard => (Class::Hard, "user-unknown"),
        (1, 2) if hard => (Class::Hard, "host-unknown"),
        (1, 6) if hard => (Class::Hard, "has-moved"),
        (1, 10) if hard => (Class::Hard, "no-mail-accepted"),
        (2, 1) => (Class::Soft, "suspended"),
        (2, 2) => (Class::Soft, "mailbox-full"),
        (2, 3) | (3, 4) => (Class::Soft, "message-too-big"),
        (3, 1) => (Class::Soft, "system-full"),
        (4, 7) => (Class::Soft, "expired"),
        (7, 1) => (Class::Soft, "policy"),
        (7, 25) => (Class::Soft, "ptr-required"),
        (7, 23..=27) => (Class::Soft, "auth-failure"),
        _ => return None,
    };
    Some(found)
}

/// A reason for any code, from its subject (RFC 3463 §3).
fn generic(s: &Status) -> &'static str {
    match s.subject {
        1 => "bad-address",
        2 => "mailbox",
        3 => "system-error",
        4 => "network-error",
        5 => "protocol-error",
        6 => "content-error",
        7 => "policy",
        _ if s.class == 4 => "temporary",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests;
