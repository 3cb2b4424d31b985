//! Table tests of RCPT TO as a call on a `SessionState`, `Settings` and a real store (list
//! membership): (state, line) → (code, enhanced code, recipients and list after).

use super::{Fixture, Given, settings, state};
use crate::smtp::Role::{Inbound, Submission, Submissions};
use crate::smtp::body::ChunkReceiver;
use crate::smtp::command::{self, Command};
use crate::smtp::rcpt;
use crate::smtp::state::SessionState;
use crate::store::{Consent, MemberStatus, NewMember, Store};

fn bdat_started(mut st: SessionState) -> SessionState {
    if let Some(tx) = st.tx.as_mut() {
        tx.chunks = Some(ChunkReceiver::new(1000));
    }
    st
}

fn posting_to(mut st: SessionState, list: &str) -> SessionState {
    if let Some(tx) = st.tx.as_mut() {
        tx.list = Some(list.into());
    }
    st
}

/// A store whose discussion list `talk` has carol (confirmed) and dave (pending).
async fn store(dir: &std::path::Path) -> Store {
    let store = Store::open(&dir.join("db")).expect("store");
    let member = |address: &str, status| NewMember {
        address: address.into(),
        name: None,
        status,
        consent: Consent {
            source: "test".into(),
            at: 0,
            ip: None,
        },
    };
    let members = vec![
        member("carol@remote.test", MemberStatus::Confirmed),
        member("dave@remote.test", MemberStatus::Pending),
    ];
    store.add_members("talk", members).await.expect("members");
    store
}

fn alice() -> SessionState {
    state(Submissions)
        .ehlo()
        .user("alice")
        .mail("alice@example.org")
}

type RcptRow = (
    &'static str,
    Fixture,
    &'static str,
    u16,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
);

/// (state, line) → (code, enhanced code, the transaction's recipients and list after).
#[tokio::test]
async fn rcpt_to_table() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(dir.path()).await;
    let settings = settings(|c| c.limits.max_recipients = 3);
    let inbound = || state(Inbound).ehlo().mail("sender@remote.test");
    #[rustfmt::skip]
    let rows: &[RcptRow] = &[
        ("no MAIL", || state(Inbound).ehlo(), "RCPT TO:<postmaster@mx.herald.test>", 503, "5.5.1", &[], None),
        ("after BDAT", || bdat_started(state(Inbound).ehlo().mail("s@remote.test")), "RCPT TO:<postmaster@mx.herald.test>", 503, "5.5.1", &[], None),
        ("full", || state(Inbound).ehlo().mail("s@r.test").rcpt("a@x").rcpt("b@x").rcpt("c@x"), "RCPT TO:<postmaster@mx.herald.test>", 452, "4.5.3", &["a@x", "b@x", "c@x"], None),
        ("25, postmaster@host", inbound, "RCPT TO:<postmaster@MX.herald.test>", 250, "2.1.5", &["postmaster@mx.herald.test"], None),
        ("25, bare postmaster", inbound, "RCPT TO:<Postmaster>", 250, "2.1.5", &["Postmaster"], None),
        ("25, postmaster@bounce domain", inbound, "RCPT TO:<postmaster@bounces.example.org>", 250, "2.1.5", &["postmaster@bounces.example.org"], None),
        ("25, fbl@", inbound, "RCPT TO:<fbl@bounces.example.org>", 250, "2.1.5", &["fbl@bounces.example.org"], None),
        ("25, VERP return", inbound, "RCPT TO:<b+abc123@bounces.example.org>", 250, "2.1.5", &["b+abc123@bounces.example.org"], None),
        ("25, unsubscribe", inbound, "RCPT TO:<u+abc123@bounces.example.org>", 250, "2.1.5", &["u+abc123@bounces.example.org"], None),
        ("25, token with a dot", inbound, "RCPT TO:<b+abc.123@bounces.example.org>", 550, "5.7.1", &[], None),
        ("25, a user's domain", inbound, "RCPT TO:<alice@example.org>", 550, "5.7.1", &[], None),
        ("25, other local part", inbound, "RCPT TO:<abuse@mx.herald.test>", 550, "5.7.1", &[], None),
        ("25, quoted", inbound, "RCPT TO:<\"postmaster\"@mx.herald.test>", 550, "5.7.1", &[], None),
        ("25, routed", inbound, "RCPT TO:<@relay.test:postmaster@mx.herald.test>", 550, "5.7.1", &[], None),
        ("25, literal", inbound, "RCPT TO:<postmaster@[192.0.2.1]>", 550, "5.7.1", &[], None),
        ("25, announce list", inbound, "RCPT TO:<news@lists.example.org>", 550, "5.7.1", &[], None),
        ("25, discussion, member", || state(Inbound).ehlo().mail("carol@remote.test"), "RCPT TO:<talk@lists.example.org>", 250, "2.1.5", &[], Some("talk")),
        ("25, discussion, pending", || state(Inbound).ehlo().mail("dave@remote.test"), "RCPT TO:<talk@lists.example.org>", 550, "5.7.1", &[], None),
        ("25, discussion, null sender", || state(Inbound).ehlo().mail(""), "RCPT TO:<talk@lists.example.org>", 550, "5.7.1", &[], None),
        ("587, neither AUTH nor trusted", || state(Submission).ehlo().tls().mail("a@remote.test"), "RCPT TO:<bob@remote.test>", 550, "5.7.1", &[], None),
        ("587, trusted", || state(Submission).ehlo().trusted().mail("a@remote.test"), "RCPT TO:<bob@Remote.Test>", 250, "2.1.5", &["bob@remote.test"], None),
        ("alice, anywhere", alice, "RCPT TO:<bob@remote.test>", 250, "2.1.5", &["bob@remote.test"], None),
        ("alice, no domain", alice, "RCPT TO:<postmaster>", 550, "5.7.1", &[], None),
        ("alice, routed", alice, "RCPT TO:<@relay.test:bob@remote.test>", 550, "5.7.1", &[], None),
        ("alice, her list", alice, "RCPT TO:<News@lists.example.org>", 250, "2.1.5", &[], Some("news")),
        ("bob, not a poster", || state(Submissions).ehlo().user("bob").mail("b@bob.test"), "RCPT TO:<news@lists.example.org>", 550, "5.7.1", &[], None),
        ("alice, a second list", || posting_to(alice(), "talk"), "RCPT TO:<news@lists.example.org>", 452, "4.5.3", &[], Some("talk")),
        ("trusted member, discussion", || state(Submission).ehlo().trusted().mail("carol@remote.test"), "RCPT TO:<talk@lists.example.org>", 250, "2.1.5", &[], Some("talk")),
        ("NOTIFY repeated", alice, "RCPT TO:<bob@remote.test> NOTIFY=FAILURE,FAILURE", 555, "5.5.4", &[], None),
        ("NOTIFY=NEVER,SUCCESS", alice, "RCPT TO:<bob@remote.test> NOTIFY=NEVER,SUCCESS", 555, "5.5.4", &[], None),
        ("ORCPT without type", alice, "RCPT TO:<bob@remote.test> ORCPT=bob@remote.test", 501, "5.5.4", &[], None),
        ("ORCPT empty type", alice, "RCPT TO:<bob@remote.test> ORCPT=;bob@remote.test", 501, "5.5.4", &[], None),
        ("unknown parameter", alice, "RCPT TO:<bob@remote.test> FOO=bar", 555, "5.5.4", &[], None),
    ];
    for (name, st, line, code, status, recipients, list) in rows {
        let mut st = st();
        let Ok(Command::Rcpt { to, params }) = command::parse(line.as_bytes()) else {
            panic!("{name}: not a RCPT command");
        };
        let reply = rcpt::rcpt(&mut st, &settings, &store, to, params);
        let (code, status) = (*code, *status);
        assert_eq!(
            (reply.code, reply.status),
            (code, status),
            "{name}: {reply:?}"
        );
        let tx = st.tx.as_ref();
        let after: Vec<&str> = tx
            .map(|t| t.recipients.iter().map(|r| r.address.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(after, *recipients, "{name}: recipients after");
        assert_eq!(
            tx.and_then(|t| t.list.as_deref()),
            *list,
            "{name}: list after"
        );
    }
}

/// NOTIFY and ORCPT are kept with the recipient (RFC 3461), ORCPT's address decoded.
#[tokio::test]
async fn rcpt_to_keeps_dsn_parameters() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(dir.path()).await;
    let settings = settings(|_| {});
    #[rustfmt::skip]
    let rows = [
        ("RCPT TO:<bob@remote.test>", None, None),
        ("RCPT TO:<bob@remote.test> NOTIFY=success,delay", Some("SUCCESS,DELAY"), None),
        ("RCPT TO:<bob@remote.test> NOTIFY=NEVER", Some("NEVER"), None),
        ("RCPT TO:<bob@remote.test> ORCPT=rfc822;bob+2B1@remote.test", None, Some("rfc822;bob+1@remote.test")),
    ];
    for (line, notify, orcpt) in rows {
        let mut st = state(Submissions)
            .ehlo()
            .user("alice")
            .mail("alice@example.org");
        let Ok(Command::Rcpt { to, params }) = command::parse(line.as_bytes()) else {
            panic!("not a RCPT command: {line}");
        };
        let reply = rcpt::rcpt(&mut st, &settings, &store, to, params);
        assert_eq!((reply.code, reply.status), (250, "2.1.5"), "{line}");
        let tx = st.tx.as_ref().expect("transaction");
        let r = tx.recipients.last().expect("recipient");
        assert_eq!(r.notify.as_deref(), notify, "{line}");
        assert_eq!(r.orcpt.as_deref(), orcpt, "{line}");
    }
}
