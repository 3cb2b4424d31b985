//! Whole-message tests of [`super::parse`]: one per kind of report, Herald's own DSNs, and
//! hostile input that must stay fast and must not panic.

use std::time::{Duration, Instant};

use super::{Class, Kind, parse};

/// (recipient, status, class) of each finding.
type Brief = (Option<String>, Option<String>, Class);

fn one(raw: &str) -> (Kind, Vec<Brief>) {
    let r = parse(raw.as_bytes());
    (
        r.kind,
        r.findings
            .into_iter()
            .map(|f| (f.recipient, f.status, f.class))
            .collect(),
    )
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn rfc3464_report() {
    let raw = "From: MAILER-DAEMON@mx.example.org\r\nTo: b+abc234@bounce.example.com\r\nSubject: Undelivered Mail\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nI could not deliver.\r\n--XX\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; Kiji@Example.NET\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <kiji@example.net>: Recipient address rejected: User unknown\r\n\r\n--XX\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig@example.com>\r\nReturn-Path: <b+abc234@bounce.example.com>\r\nTo: kiji@example.net\r\n\r\n--XX--\r\n";
    let r = parse(raw.as_bytes());
    assert_eq!(r.kind, Kind::Dsn);
    assert_eq!(r.findings.len(), 1);
    let f = &r.findings[0];
    assert_eq!(f.recipient, some("kiji@example.net"));
    assert_eq!(f.status, some("5.1.1"));
    assert_eq!(f.action, some("failed"));
    assert_eq!(f.class, Class::Hard);
    assert_eq!(f.reason, "user-unknown");
    assert_eq!(r.original_message_id, some("<orig@example.com>"));
    assert_eq!(r.verp_tokens, vec!["abc234".to_string()]);
}

#[test]
fn delayed_is_soft() {
    let raw = "From: MAILER-DAEMON@mx.example.org\nSubject: Delayed Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.net\nAction: delayed\nStatus: 4.4.7\n\n--b--\n";
    let (kind, f) = one(raw);
    assert_eq!(kind, Kind::Dsn);
    assert_eq!(f, vec![(some("a@example.net"), some("4.4.7"), Class::Soft)]);
}

#[test]
fn spam_block_is_soft() {
    let raw = "From: Mail Delivery System <Mailer-Daemon@e.example.org>\nTo: sender@example.jp\nSubject: Mail delivery failed: returning message to sender\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  kiji@example.net\n    SMTP error from remote mail server after end of data:\n    host mx [192.0.2.1]: 550 5.7.1 Message rejected as spam\n\n------ This is a copy of the message, including all the headers. ------\n\nFrom: sender@example.jp\nTo: kiji@example.net\n";
    let (kind, f) = one(raw);
    assert_eq!(kind, Kind::Dsn);
    assert_eq!(
        f,
        vec![(some("kiji@example.net"), some("5.7.1"), Class::Soft)]
    );
}

#[test]
fn qmail_text() {
    let raw = "From: MAILER-DAEMON@mx.example.jp\nTo: sender@example.jp\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.jp.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<nyaan@example.org>:\nSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n\n--- Below this line is a copy of the message.\n\nMessage-ID: <x@example.jp>\nFrom: sender@example.jp\n";
    let r = parse(raw.as_bytes());
    assert_eq!(r.kind, Kind::Dsn);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].recipient, some("nyaan@example.org"));
    assert_eq!(r.findings[0].status, some("5.4.4"));
    assert_eq!(r.findings[0].class, Class::Hard);
    assert_eq!(r.original_message_id, some("<x@example.jp>"));
}

#[test]
fn arf_complaint() {
    let raw = "From: feedback@isp.example\nTo: abuse@example.org\nSubject: FW: spam\nContent-Type: multipart/report; report-type=feedback-report; boundary=b\n\n--b\nContent-Type: text/plain\n\nA complaint.\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nOriginal-Rcpt-To: <Member@Example.net>\n\n--b\nContent-Type: message/rfc822\n\nFrom: list@example.org\nTo: member@example.net\nMessage-ID: <m1@example.org>\n\nhello\n--b--\n";
    let r = parse(raw.as_bytes());
    assert_eq!(r.kind, Kind::Arf);
    assert_eq!(r.feedback_type, some("abuse"));
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].recipient, some("member@example.net"));
    assert_eq!(r.findings[0].class, Class::Complaint);
    assert_eq!(r.original_message_id, some("<m1@example.org>"));
}

#[test]
fn auto_reply() {
    let raw = "From: Kiji <Kiji@example.net>\nTo: b+tok@bounce.example.com\nSubject: Automatic reply: hello\nAuto-Submitted: auto-replied\nIn-Reply-To: <m2@example.org>\n\nI am away until Monday.\n";
    let r = parse(raw.as_bytes());
    assert_eq!(r.kind, Kind::AutoReply);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].recipient, some("kiji@example.net"));
    assert_eq!(r.findings[0].class, Class::AutoReply);
    assert_eq!(r.findings[0].reason, "vacation");
    assert_eq!(r.original_message_id, some("<m2@example.org>"));
    assert_eq!(r.verp_tokens, vec!["tok".to_string()]);
}

#[test]
fn ordinary_mail_is_not_a_bounce() {
    let raw = "From: a@example.org\nTo: b@example.net\nSubject: lunch?\n\nShall we meet at noon? Write to c@example.com too.\n";
    let r = parse(raw.as_bytes());
    assert_eq!(r.kind, Kind::NotBounce);
    assert!(r.findings.is_empty());
}

#[test]
fn herald_own_dsn() {
    use crate::bounce::notify::{Dsn, Failed};
    use crate::mail::{Reply, Status};
    let reply = Reply::from_wire(550, [5, 1, 1], "no such user");
    let dsn = Dsn {
        hostname: "mx.example.org",
        sender: "b+tok7@bounce.example.org",
        envid: None,
        full: false,
        arrival: 1_700_000_000,
        now: 1_700_000_100,
        message_id: "<dsn1@mx.example.org>",
        failed: vec![Failed {
            address: "gone@example.net",
            orcpt: None,
            status: Status::new(5, 1, 1),
            diagnostic: &reply,
            remote: true,
        }],
        original: b"Message-ID: <orig7@example.org>\r\nFrom: b+tok7@bounce.example.org\r\nTo: gone@example.net\r\n\r\nbody\r\n",
        nonce: 0x5eed,
    };
    let raw = crate::bounce::notify::build(&dsn);
    let r = parse(&raw);
    assert_eq!(r.kind, Kind::Dsn);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].recipient, some("gone@example.net"));
    assert_eq!(r.findings[0].class, Class::Hard);
    assert_eq!(r.original_message_id, some("<orig7@example.org>"));
}

/// Herald's own expiry DSN: `Status: 4.4.7`, beside the last attempt's reply (a 4.3.0 here).
/// The parser took the reply's code and called the expiry a rate limit; Sisimai reads 4.4.7.
#[test]
fn herald_own_expiry_dsn_reads_as_expired() {
    use crate::bounce::notify::{Dsn, Failed};
    use crate::mail::{Reply, Status};
    let reply = Reply::from_wire(421, [4, 3, 0], "Try again later")
        .noted("gave up: message expired after 5d");
    let dsn = Dsn {
        hostname: "mx.example.org",
        sender: "app@example.org",
        envid: None,
        full: false,
        arrival: 1_700_000_000,
        now: 1_700_432_000,
        message_id: "<dsn2@mx.example.org>",
        failed: vec![Failed {
            address: "slow@example.net",
            orcpt: None,
            status: Status::new(4, 4, 7),
            diagnostic: &reply,
            remote: true,
        }],
        original: b"Message-ID: <orig8@example.org>\r\n\r\nbody\r\n",
        nonce: 1,
    };
    let r = parse(&crate::bounce::notify::build(&dsn));
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(r.findings[0].status, some("4.4.7"), "{r:?}");
    assert_eq!(r.findings[0].class, Class::Soft);
    assert_ne!(r.findings[0].reason, "rate-limited", "{r:?}");
}

#[test]
fn garbage_does_not_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\r\n\n".to_vec(),
        b"Content-Type: multipart/report; boundary=\"\"\n\n--\n--\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\n--a--".to_vec(),
        b"Content-Transfer-Encoding: base64\n\n====".to_vec(),
        b"Subject: =?utf-8?B?\xff\xfe?= =?x?Q?=ZZ?=\n\n\xff@\xff.\xff <@> \"@\" a@[ 5.5.5.5.5".to_vec(),
        "From: mailer-daemon@x.y\n\n<é@é.é>: 550 5.1.1 ü\nFinal-Recipient: rfc822;\nAction:\nStatus: 5.\n".as_bytes().to_vec(),
        (0u8..=255).cycle().take(100_000).collect(),
    ];
    for raw in inputs {
        let _ = parse(&raw);
    }
}

/// A bound that holds in release builds and, generously widened, in debug builds.
fn budget(release: Duration) -> Duration {
    if cfg!(debug_assertions) {
        release * 20
    } else {
        release
    }
}

fn timed(raw: &[u8]) -> Duration {
    let start = Instant::now();
    let _ = parse(raw);
    start.elapsed()
}

#[test]
fn hostile_messages_are_fast() {
    let mut nested = String::from("From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n");
    for i in 0..10_000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\n\n<a@example.org>: 550 5.1.1 user unknown\n");
    while nested.len() < 20 << 20 {
        nested.push_str("<x@example.org>: 550 5.1.1 a@b.c d@e.f 5.1.1 ======= @@@@ \"\"\"\n");
    }
    let mut header_line = String::from("From: MAILER-DAEMON@x.example\nX-Long: ");
    header_line.extend(std::iter::repeat_n('a', 10 << 20));
    header_line.push_str("\n\n<a@example.org>: 550 user unknown\n");
    let mut many = String::new();
    for i in 0..100_000 {
        many.push_str(&format!("X-H{i}: <a{i}@example.org> 550 5.1.1\n"));
    }
    many.push_str("\nbody\n");
    let mut combined = many.clone();
    combined.push_str(&header_line);
    combined.push_str(&nested);
    let ats: String = "a@".repeat(10 << 20);
    let dsn_flood = format!(
        "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n{}",
        "Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 user unknown spam full\n\n".repeat(200_000)
    );
    let mut crowded = String::from("From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n");
    for _ in 0..200 {
        crowded.push_str("Cc: ");
        crowded.push_str(&"b+tok@x.example, ".repeat(200));
        crowded.push('\n');
    }
    crowded.push('\n');
    crowded.push_str(
        &"<a@b.example>: 550 5.1.1 user unknown\nFinal-Recipient: rfc822; c@d.example\n"
            .repeat(60_000),
    );
    let fields = format!(
        "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n{}",
        "Final-Recipient: rfc822; a@b.example\nStatus: 5.1.1\n".repeat(200_000)
    );
    for (name, raw) in [
        ("crowded", crowded.as_bytes()),
        ("fields without blank lines", fields.as_bytes()),
        ("nested", nested.as_bytes()),
        ("header line", header_line.as_bytes()),
        ("many headers", many.as_bytes()),
        ("combined", combined.as_bytes()),
        ("at signs", ats.as_bytes()),
        ("dsn flood", dsn_flood.as_bytes()),
    ] {
        let took = timed(raw);
        eprintln!("{name}: {} bytes in {took:?}", raw.len());
        assert!(
            took < budget(Duration::from_secs(1)),
            "{name} took {took:?}"
        );
    }
}

/// `BOUNCE_FILE=path cargo test --lib bounce::parse::tests::dump -- --ignored --nocapture`
#[test]
#[ignore = "prints the report for BOUNCE_FILE"]
fn dump() {
    let Ok(path) = std::env::var("BOUNCE_FILE") else {
        return;
    };
    for p in path.split(',') {
        let raw = std::fs::read(p).unwrap_or_default();
        eprintln!("{p}: {:#?}", parse(&raw));
    }
}
