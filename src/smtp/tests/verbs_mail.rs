//! Table tests of EHLO/HELO and MAIL FROM as pure calls: (state, line) → (code, enhanced
//! code, the state after).

use super::{Fixture, Given, HOST, settings, state};
use crate::smtp::Role::{Inbound, Submission, Submissions};
use crate::smtp::command::{self, Command};
use crate::smtp::state::SessionState;
use crate::smtp::{ehlo, mail};

/// What EHLO advertises: (state, offers STARTTLS, offers AUTH).
#[test]
fn ehlo_advertises_what_the_state_allows() {
    #[rustfmt::skip]
    let rows: [(&str, Fixture, bool, bool); 7] = [
        ("587 plain", || state(Submission), true, false),
        ("587 TLS", || state(Submission).tls(), false, true),
        ("587 TLS, trusted", || state(Submission).tls().trusted(), false, true),
        ("587 TLS, authenticated", || state(Submission).tls().user("alice"), false, false),
        ("465", || state(Submissions), false, true),
        ("25 plain", || state(Inbound), true, false),
        ("25 TLS", || state(Inbound).tls(), false, false),
    ];
    let settings = settings(|_| {});
    for (name, st, starttls, auth) in rows {
        let mut st = st().ehlo().mail("open@remote.test");
        let reply = ehlo::ehlo(&mut st, &settings, "client.example".into());
        let mut want = vec![
            HOST,
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "SIZE 26214400",
            "ENHANCEDSTATUSCODES",
        ];
        want.extend(starttls.then_some("STARTTLS"));
        want.extend(auth.then_some("AUTH PLAIN LOGIN"));
        want.extend(["DSN", "CHUNKING"]);
        assert_eq!((reply.code, reply.status), (250, ""), "{name}");
        assert_eq!(reply.lines, want, "{name}");
        assert!(st.tx.is_none(), "{name}: EHLO ends the transaction");
        assert_eq!(st.helo.as_deref(), Some("client.example"), "{name}");
        assert!(st.esmtp, "{name}");
    }
}

#[test]
fn helo_greets_without_extensions() {
    let settings = settings(|_| {});
    let mut st = state(Inbound).ehlo().mail("open@remote.test");
    let reply = ehlo::helo(&mut st, &settings, "old.example".into());
    assert_eq!((reply.code, reply.status), (250, ""));
    assert_eq!(reply.lines, [HOST]);
    assert!(st.tx.is_none() && !st.esmtp);
    assert_eq!(st.helo.as_deref(), Some("old.example"));
}

fn mail_line(st: &mut SessionState, line: &str) -> crate::smtp::reply::Reply {
    let settings = settings(|_| {});
    let Ok(Command::Mail { from, params }) = command::parse(line.as_bytes()) else {
        panic!("not a MAIL command: {line}");
    };
    mail::mail(st, &settings, from, params)
}

type MailRow = (
    &'static str,
    Fixture,
    &'static str,
    u16,
    &'static str,
    Option<&'static str>,
);

/// (state, line) → (code, enhanced code, the transaction's sender after).
#[test]
fn mail_from_table() {
    let inbound = || state(Inbound).ehlo();
    let alice = || state(Submissions).ehlo().user("alice");
    let bob = || state(Submissions).ehlo().user("bob");
    #[rustfmt::skip]
    let rows: &[MailRow] = &[
        ("before EHLO", || state(Inbound), "MAIL FROM:<a@remote.test>", 503, "5.5.1", None),
        ("nested", || state(Inbound).ehlo().mail("first@remote.test"), "MAIL FROM:<a@remote.test>", 503, "5.5.1", Some("first@remote.test")),
        ("587 plain, no AUTH", || state(Submission).ehlo(), "MAIL FROM:<alice@example.org>", 530, "5.7.0", None),
        ("587 TLS, no AUTH", || state(Submission).ehlo().tls(), "MAIL FROM:<alice@example.org>", 530, "5.7.0", None),
        ("587 trusted, no AUTH", || state(Submission).ehlo().trusted(), "MAIL FROM:<any@where.test>", 250, "2.1.0", Some("any@where.test")),
        ("alice, own address", alice, "MAIL FROM:<alice@example.org>", 250, "2.1.0", Some("alice@example.org")),
        ("alice, other case", alice, "MAIL FROM:<Alice@EXAMPLE.org>", 250, "2.1.0", Some("Alice@example.org")),
        ("alice, other address", alice, "MAIL FROM:<mallory@example.org>", 553, "5.7.1", None),
        ("alice, null sender", alice, "MAIL FROM:<>", 553, "5.7.1", None),
        ("bob, *@bob.test", bob, "MAIL FROM:<anything@bob.test>", 250, "2.1.0", Some("anything@bob.test")),
        ("bob, a sub-domain", bob, "MAIL FROM:<x@sub.bob.test>", 553, "5.7.1", None),
        ("25, null sender", inbound, "MAIL FROM:<>", 250, "2.1.0", Some("")),
        ("25, no domain", inbound, "MAIL FROM:<postmaster>", 553, "5.1.7", None),
        ("25, source route", inbound, "MAIL FROM:<@relay.test:a@remote.test>", 553, "5.1.7", None),
        ("SIZE at the limit", inbound, "MAIL FROM:<a@remote.test> SIZE=26214400", 250, "2.1.0", Some("a@remote.test")),
        ("SIZE over it", inbound, "MAIL FROM:<a@remote.test> SIZE=26214401", 552, "5.3.4", None),
        ("SIZE not a number", inbound, "MAIL FROM:<a@remote.test> SIZE=big", 501, "5.5.4", None),
        ("BODY=8BITMIME", inbound, "MAIL FROM:<a@remote.test> BODY=8bitmime", 250, "2.1.0", Some("a@remote.test")),
        ("BODY=BINARYMIME", inbound, "MAIL FROM:<a@remote.test> BODY=BINARYMIME", 555, "5.5.4", None),
        ("SMTPUTF8 after EHLO", inbound, "MAIL FROM:<a@remote.test> SMTPUTF8", 250, "2.1.0", Some("a@remote.test")),
        ("SMTPUTF8 after HELO", || state(Inbound).helo(), "MAIL FROM:<a@remote.test> SMTPUTF8", 555, "5.5.4", None),
        ("RET=NONE", inbound, "MAIL FROM:<a@remote.test> RET=NONE", 555, "5.5.4", None),
        ("ENVID not xtext", inbound, "MAIL FROM:<a@remote.test> ENVID=a+ZZ", 501, "5.5.4", None),
        ("AUTH=<>", inbound, "MAIL FROM:<a@remote.test> AUTH=<>", 250, "2.1.0", Some("a@remote.test")),
        ("unknown parameter", inbound, "MAIL FROM:<a@remote.test> XCLIENT=1", 555, "5.5.4", None),
    ];
    for (name, st, line, code, status, sender) in rows {
        let mut st = st();
        let reply = mail_line(&mut st, line);
        let (code, status) = (*code, *status);
        assert_eq!(
            (reply.code, reply.status),
            (code, status),
            "{name}: {reply:?}"
        );
        let after = st.tx.as_ref().map(|t| t.sender.as_str());
        assert_eq!(after, *sender, "{name}: transaction after");
    }
}

/// RET and ENVID are kept for the DSNs (RFC 3461), normalised and decoded.
#[test]
fn mail_from_keeps_dsn_parameters() {
    let long = format!("MAIL FROM:<a@remote.test> ENVID={}", "e".repeat(101));
    let rows: [(&str, Option<&str>, Option<&str>); 4] = [
        ("MAIL FROM:<a@remote.test> RET=hdrs", Some("HDRS"), None),
        (
            "MAIL FROM:<a@remote.test> RET=FULL ENVID=QQ+2B1",
            Some("FULL"),
            Some("QQ+1"),
        ),
        ("MAIL FROM:<a@remote.test> ENVID=abc", None, Some("abc")),
        (&long, None, None),
    ];
    for (line, ret, envid) in rows {
        let mut st = state(Inbound).ehlo();
        mail_line(&mut st, line);
        let dsn = st.tx.as_ref().map(|t| t.dsn.clone()).unwrap_or_default();
        assert_eq!(dsn.ret.as_deref(), ret, "{line}");
        assert_eq!(dsn.envid.as_deref(), envid, "{line}");
    }
}
