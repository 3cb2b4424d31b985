//! Pure classification of one failed delivery: enhanced status code plus the remote reply or
//! diagnostic text → [`Class`] and a short reason name. Used for inbound bounces and for the
//! synchronous 5xx replies Herald gets while delivering.
//!
//! Hard means the address itself is bad (user or domain unknown, moved, domain accepts no
//! mail) and only for permanent failures. Everything else that failed is soft — in particular
//! spam, blocklist and policy rejections, which say nothing about the address.

mod phrases;

use crate::bounce::parse::Class;
use crate::bounce::parse::text::{lower, reply_code};

/// Classifies a failure from its enhanced status (`5.1.1`, optional) and diagnostic text.
pub fn classify(status: Option<&str>, diagnostic: &str) -> (Class, &'static str) {
    let d = squeeze(diagnostic);
    let status = status.and_then(Status::parse);
    let code = reply_code(&d);
    let temporary = match &status {
        Some(s) => s.class == 4,
        None => code.is_some_and(|c| c / 100 == 4),
    };
    if let Some(reason) = find(phrases::SOFT_FIRST, &d) {
        return (Class::Soft, reason);
    }
    if code == Some(525) {
        return (Class::Soft, "suspended");
    }
    if !temporary {
        if let Some(reason) = find(phrases::HARD, &d) {
            return (Class::Hard, reason);
        }
    }
    if let Some(s) = &status {
        if let Some(found) = s.specific() {
            return found;
        }
    }
    if !temporary && code == Some(556) {
        return (Class::Hard, "no-mail-accepted");
    }
    if let Some(reason) = find(phrases::SOFT_LATE, &d) {
        return (Class::Soft, reason);
    }
    match status {
        Some(s) => (Class::Soft, s.generic()),
        None if temporary => (Class::Soft, "temporary"),
        None => (Class::Soft, "failed"),
    }
}

/// The first reason whose table has a phrase found in `d`.
fn find(tables: &[(&'static str, &[&str])], d: &str) -> Option<&'static str> {
    tables
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| d.contains(p)))
        .map(|(reason, _)| *reason)
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

/// An enhanced status code `class.subject.detail`.
struct Status {
    class: u16,
    subject: u16,
    detail: u16,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        let mut it = s.trim().split('.').map(|p| p.parse::<u16>().ok());
        let (class, subject, detail) = (it.next()??, it.next()??, it.next()??);
        (matches!(class, 2 | 4 | 5) && it.next().is_none()).then_some(Status {
            class,
            subject,
            detail,
        })
    }

    /// Classes that a specific code decides on its own.
    fn specific(&self) -> Option<(Class, &'static str)> {
        let hard = self.class == 5;
        let found = match (self.subject, self.detail) {
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
    fn generic(&self) -> &'static str {
        match self.subject {
            1 => "bad-address",
            2 => "mailbox",
            3 => "system-error",
            4 => "network-error",
            5 => "protocol-error",
            6 => "content-error",
            7 => "policy",
            _ if self.class == 4 => "temporary",
            _ => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use Class::{Hard, Soft};
        let cases: &[(Option<&str>, &str, Class, &str)] = &[
            (Some("5.1.1"), "550 5.1.1 <a@b.c>... User Unknown", Hard, "user-unknown"),
            (None, "550 Unknown user a@b.c", Hard, "user-unknown"),
            (Some("5.0.0"), "550 No such user here", Hard, "user-unknown"),
            (Some("5.1.1"), "", Hard, "user-unknown"),
            (Some("4.1.1"), "450 user unknown", Soft, "bad-address"),
            (Some("5.1.2"), "Host unknown", Hard, "host-unknown"),
            (None, "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", Hard, "host-unknown"),
            (Some("5.1.6"), "551 user has moved", Hard, "has-moved"),
            (Some("5.1.10"), "556 5.1.10 domain does not accept mail", Hard, "no-mail-accepted"),
            (Some("5.7.1"), "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", Soft, "spam-block"),
            (Some("5.7.1"), "550 5.7.1 Message rejected as spam; user unknown", Soft, "spam-block"),
            (Some("5.7.1"), "550 5.7.1 Delivery not authorized", Soft, "policy"),
            (Some("5.2.2"), "552 5.2.2 Mailbox full", Soft, "mailbox-full"),
            (None, "552 Requested mail action aborted: exceeded storage allocation; user unknown", Soft, "mailbox-full"),
            (Some("5.3.4"), "552 message size exceeds fixed limit", Soft, "message-too-big"),
            (Some("4.4.7"), "retry timeout exceeded", Soft, "expired"),
            (Some("5.7.26"), "550-5.7.26 Unauthenticated email is not accepted due to DMARC", Soft, "auth-failure"),
            (Some("5.7.1"), "554 5.7.1 <a@b.c>: Relay access denied", Soft, "relay-denied"),
            (None, "421 4.7.0 Try again later, closing connection", Soft, "rate-limited"),
            (Some("5.2.1"), "550 5.2.1 The email account that you tried to reach is disabled", Soft, "suspended"),
            (Some("5.0.0"), "550 rejected", Soft, "policy"),
            (None, "", Soft, "failed"),
            (Some("5.4.6"), "554 5.4.6 Hop count exceeded - possible mail loop", Soft, "network-error"),
            (None, "550 User some.name (a@b.c) not listed in Domino Directory", Hard, "user-unknown"),
            (Some("5.1.1"), "550 5.1.1 <a@b.c>: Sender address rejected: blacklisted", Soft, "spam-block"),
        ];
        for (status, diag, class, reason) in cases {
            assert_eq!(classify(*status, diag), (*class, *reason), "{status:?} {diag}");
        }
    }

    #[test]
    fn status_parse() {
        assert!(Status::parse("5.1.1").is_some());
        assert!(Status::parse("5.1.351").is_some());
        assert!(Status::parse("3.1.1").is_none());
        assert!(Status::parse("5.1").is_none());
        assert!(Status::parse("5.1.1.1").is_none());
    }
}
