//! Table tests of AUTH's state steps (`auth::start`, `auth::step`) and of STARTTLS as pure
//! calls: (state, input) → (reply or credentials to verify, the SASL state after); and over
//! the pipe, the end of an exchange at an over-long line.

use super::{Fixture, Given, state};
use crate::smtp::Role::{Inbound, Submission, Submissions};
use crate::smtp::auth::{self, AuthStep, Flow};
use crate::smtp::starttls;
use crate::smtp::state::Next;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// What a row expects of a [`Flow`].
#[derive(Debug)]
enum Want {
    /// A reply with this code and enhanced code.
    Reply(u16, &'static str),
    /// A `334` challenge carrying this text, base64-encoded.
    Challenge(&'static str),
    /// Credentials handed to verification.
    Verify(&'static str, &'static str),
}

fn check(name: &str, flow: Flow, want: &Want) {
    match (flow, want) {
        (Flow::Reply(r), Want::Reply(code, status)) => {
            assert_eq!((r.code, r.status), (*code, *status), "{name}: {r:?}")
        }
        (Flow::Reply(r), Want::Challenge(text)) => {
            assert_eq!((r.code, r.status), (334, ""), "{name}: {r:?}");
            assert_eq!(r.lines, [B64.encode(text)], "{name}");
        }
        (Flow::Verify { user, password }, Want::Verify(u, p)) => {
            assert_eq!((user.as_str(), password.as_str()), (*u, *p), "{name}")
        }
        (Flow::Reply(r), want) => panic!("{name}: got {r:?}, want {want:?}"),
        (Flow::Verify { user, .. }, want) => panic!("{name}: got Verify({user}), want {want:?}"),
    }
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

type StartRow = (
    &'static str,
    Fixture,
    &'static str,
    Option<String>,
    Want,
    Option<AuthStep>,
);

/// `AUTH mechanism [initial]`: (state, mechanism, initial) → (flow, SASL state after).
#[test]
fn auth_start_table() {
    let tls = || state(Submission).ehlo().tls();
    let login_user = Some(AuthStep::LoginUser);
    #[rustfmt::skip]
    let rows: Vec<StartRow> = vec![
        ("port 25", || state(Inbound).ehlo().tls(), "PLAIN", None, Want::Reply(502, "5.5.1"), None),
        ("before TLS", || state(Submission).ehlo(), "PLAIN", None, Want::Reply(530, "5.7.0"), None),
        ("before TLS, trusted", || state(Submission).ehlo().trusted(), "PLAIN", None, Want::Reply(530, "5.7.0"), None),
        ("authenticated", || state(Submissions).ehlo().user("alice"), "PLAIN", None, Want::Reply(503, "5.5.1"), None),
        ("in a transaction", || state(Submissions).ehlo().mail("a@b.test"), "PLAIN", None, Want::Reply(503, "5.5.1"), None),
        ("PLAIN, no initial", tls, "PLAIN", None, Want::Reply(334, ""), Some(AuthStep::Plain)),
        ("PLAIN, initial", tls, "PLAIN", Some(b64("\0alice\0pw")), Want::Verify("alice", "pw"), None),
        ("PLAIN, authz = authc", tls, "PLAIN", Some(b64("alice\0alice\0pw")), Want::Verify("alice", "pw"), None),
        ("PLAIN, authz other", tls, "PLAIN", Some(b64("bob\0alice\0pw")), Want::Reply(535, "5.7.8"), None),
        ("PLAIN, two fields", tls, "PLAIN", Some(b64("alice\0pw")), Want::Reply(501, "5.5.2"), None),
        ("PLAIN, four fields", tls, "PLAIN", Some(b64("\0alice\0pw\0x")), Want::Reply(501, "5.5.2"), None),
        ("PLAIN, not base64", tls, "PLAIN", Some("!!".into()), Want::Reply(501, "5.5.2"), None),
        ("LOGIN, no initial", tls, "LOGIN", None, Want::Challenge("Username:"), login_user),
        ("LOGIN, initial user", tls, "LOGIN", Some(b64("alice")), Want::Challenge("Password:"), Some(AuthStep::LoginPassword { user: "alice".into() })),
        ("LOGIN, not base64", tls, "LOGIN", Some("!!".into()), Want::Reply(501, "5.5.2"), None),
        ("CRAM-MD5", tls, "CRAM-MD5", None, Want::Reply(504, "5.5.4"), None),
    ];
    for (name, st, mechanism, initial, want, after) in rows {
        let mut st = st();
        let flow = auth::start(&mut st, mechanism, initial);
        check(name, flow, &want);
        assert_eq!(st.auth, after, "{name}: SASL state after");
    }
}

type StepRow<'a> = (&'a str, Option<AuthStep>, &'a str, Want, Option<AuthStep>);

/// The client's answer to a `334`: (SASL state, line) → (flow, SASL state after).
#[test]
fn auth_step_table() {
    let password = || {
        Some(AuthStep::LoginPassword {
            user: "alice".into(),
        })
    };
    let alice = b64("alice");
    let pw = b64("pw");
    let plain = b64("\0alice\0pw");
    #[rustfmt::skip]
    let rows: Vec<StepRow> = vec![
        ("PLAIN answer", Some(AuthStep::Plain), &plain, Want::Verify("alice", "pw"), None),
        ("PLAIN cancelled", Some(AuthStep::Plain), "*", Want::Reply(501, "5.0.0"), None),
        ("PLAIN garbage", Some(AuthStep::Plain), "!!", Want::Reply(501, "5.5.2"), None),
        ("LOGIN user", Some(AuthStep::LoginUser), &alice, Want::Challenge("Password:"), password()),
        ("LOGIN user cancelled", Some(AuthStep::LoginUser), "*", Want::Reply(501, "5.0.0"), None),
        ("LOGIN password", password(), &pw, Want::Verify("alice", "pw"), None),
        ("LOGIN password garbage", password(), "!!", Want::Reply(501, "5.5.2"), None),
        ("no exchange", None, &pw, Want::Reply(501, "5.5.2"), None),
    ];
    for (name, before, line, want, after) in rows {
        let mut st = state(Submissions).ehlo();
        st.auth = before;
        let flow = auth::step(&mut st, format!("{line}\r\n").as_bytes());
        check(name, flow, &want);
        assert_eq!(st.auth, after, "{name}: SASL state after");
    }
}

#[test]
fn starttls_table() {
    #[rustfmt::skip]
    let rows: [(&str, Fixture, u16, &str, Next); 4] = [
        ("587 plain", || state(Submission).ehlo(), 220, "2.0.0", Next::StartTls),
        ("25 plain, before EHLO", || state(Inbound), 220, "2.0.0", Next::StartTls),
        ("587 TLS", || state(Submission).ehlo().tls(), 503, "5.5.1", Next::Continue),
        ("465", || state(Submissions), 503, "5.5.1", Next::Continue),
    ];
    for (name, st, code, status, next) in rows {
        let step = starttls::starttls(&st());
        assert_eq!(
            (step.reply.code, step.reply.status, step.next),
            (code, status, next),
            "{name}"
        );
    }
}

/// After the handshake the session knows nothing it learnt in plaintext (RFC 3207 §4.2).
#[test]
fn the_handshake_forgets_the_plaintext_session() {
    let mut st = state(Submission).ehlo().trusted().mail("a@remote.test");
    st.auth = Some(AuthStep::LoginUser);
    starttls::reset_after_handshake(&mut st);
    assert!(st.tls && st.trusted);
    assert!(st.helo.is_none() && !st.esmtp && st.tx.is_none() && st.auth.is_none());
}

/// Fixed (issue 13): after `500 line too long` inside AUTH LOGIN the exchange went on, so the
/// next command was read as a credential. Now it ends and the next line is a command.
#[tokio::test]
async fn an_over_long_line_ends_the_auth_exchange() {
    let env = super::Env::new();
    let mut c = env.connect(Submissions, false);
    c.handshake(&env.cert_pem).await.expect("handshake");
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let with_user = format!("AUTH LOGIN {}", b64("alice"));
    for step in ["AUTH LOGIN", with_user.as_str()] {
        c.expect(step, 334, "").await;
        c.expect(&"A".repeat(5000), 500, "5.5.2").await;
        // Read as a username, "NOOP" decodes to bytes that are no UTF-8: 501.
        c.expect("NOOP", 250, "2.0.0").await;
    }
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
}
