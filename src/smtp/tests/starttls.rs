//! STARTTLS and implicit TLS with real rustls over the pipe: what is pipelined behind STARTTLS
//! is thrown away (CVE-2011-0411 class), AUTH waits for TLS, and 465 speaks TLS first.

use super::{Env, HOST, PASSWORD, message};
use crate::smtp::Role;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

fn plain(user: &str, password: &str) -> String {
    B64.encode(format!("\0{user}\0{password}"))
}

fn advertises(ehlo: &super::Reply, keyword: &str) -> bool {
    ehlo.lines.iter().any(|l| l == keyword)
}

/// No write after the `220` to STARTTLS carried a plaintext reply (only TLS records).
fn no_plaintext_after_starttls(writes: &[Vec<u8>]) {
    let at = writes
        .iter()
        .position(|w| w.starts_with(b"220 2.0.0"))
        .expect("the 220 to STARTTLS");
    for w in &writes[at + 1..] {
        assert!(
            !w.first().is_some_and(u8::is_ascii_digit),
            "a plaintext reply after STARTTLS: {:?}",
            String::from_utf8_lossy(w)
        );
    }
}

#[tokio::test]
async fn commands_pipelined_behind_starttls_are_discarded() {
    let env = Env::new();
    // A trusted client: were the injected MAIL and RCPT run, they would succeed.
    let mut c = env.connect(Role::Submission, true);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.send(concat!(
        "STARTTLS\r\n",
        "EHLO evil.test\r\n",
        "MAIL FROM:<evil@remote.test>\r\n",
        "RCPT TO:<victim@remote.test>\r\n",
    ))
    .await;
    c.expect_reply("220 2.0.0", "STARTTLS").await;
    let writes = c.writes();
    assert_eq!(
        writes.last().map(Vec::len),
        Some(1),
        "the 220 went out alone"
    );
    c.handshake(&env.cert_pem).await.expect("handshake");
    // The first reply inside TLS answers this RCPT: no transaction, no injected EHLO reply.
    c.expect("RCPT TO:<victim@remote.test>", 503, "5.5.1").await;
    let ehlo = c.expect("EHLO client.test", 250, "").await;
    assert_eq!(ehlo.lines.first().map(String::as_str), Some(HOST));
    assert!(!advertises(&ehlo, "STARTTLS"), "{ehlo:?}");
    assert!(advertises(&ehlo, "AUTH PLAIN LOGIN"), "{ehlo:?}");
    c.expect("STARTTLS", 503, "5.5.1").await;
    c.expect("QUIT", 221, "2.0.0").await;
    no_plaintext_after_starttls(&c.raw_writes());
    assert!(c.closed().await, "closed after QUIT");
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn plaintext_sent_after_the_starttls_reply_fails_the_handshake() {
    let env = Env::new();
    let mut c = env.connect(Role::Submission, true);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.expect("STARTTLS", 220, "2.0.0").await;
    // Too late to be discarded with the buffer: the handshake reads it, and fails.
    c.send("MAIL FROM:<evil@remote.test>\r\n").await;
    assert!(
        c.handshake(&env.cert_pem).await.is_err(),
        "handshake failed"
    );
    no_plaintext_after_starttls(&c.raw_writes());
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn auth_is_refused_before_tls_and_works_inside_it() {
    let env = Env::new();
    let mut c = env.connect(Role::Submission, false);
    c.expect_reply("220", "greeting").await;
    let ehlo = c.expect("EHLO client.test", 250, "").await;
    assert!(advertises(&ehlo, "STARTTLS") && !advertises(&ehlo, "AUTH PLAIN LOGIN"));
    let auth = format!("AUTH PLAIN {}", plain("alice", PASSWORD));
    c.expect(&auth, 530, "5.7.0").await;
    c.expect("MAIL FROM:<alice@example.org>", 530, "5.7.0")
        .await;
    c.expect("STARTTLS", 220, "2.0.0").await;
    c.handshake(&env.cert_pem).await.expect("handshake");
    c.expect("EHLO client.test", 250, "").await;
    c.expect("MAIL FROM:<alice@example.org>", 530, "5.7.0")
        .await;
    let wrong = format!("AUTH PLAIN {}", plain("alice", "wrong"));
    c.expect(&wrong, 535, "5.7.8").await;
    let user = c.expect("AUTH LOGIN", 334, "").await;
    assert_eq!(user.lines, [B64.encode("Username:")]);
    c.expect(&B64.encode("alice"), 334, "").await;
    c.expect(&B64.encode(PASSWORD), 235, "2.7.0").await;
    let ehlo = c.expect("EHLO client.test", 250, "").await;
    assert!(
        !advertises(&ehlo, "AUTH PLAIN LOGIN"),
        "authenticated: {ehlo:?}"
    );
    c.expect(&auth, 503, "5.5.1").await;
    c.expect("MAIL FROM:<alice@example.org>", 250, "2.1.0")
        .await;
    c.expect("RCPT TO:<bob@remote.test>", 250, "2.1.5").await;
    c.expect("DATA", 354, "").await;
    c.expect(&format!("{}.", message("inside TLS")), 250, "2.0.0")
        .await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;

    let (entry, body) = env.only_message();
    assert_eq!(
        entry.message.origin,
        crate::store::Origin::Submission {
            user: "alice".into()
        }
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("Received: from client.test\r\n"),
        "no client IP: {text}"
    );
    assert!(text.contains("with ESMTPSA id"), "{text}");
    assert!(text.contains("\r\nMessage-ID: <"), "repaired: {text}");
}

#[tokio::test]
async fn repeated_auth_failures_are_throttled() {
    let env = Env::with(|c| c.limits.max_auth_failures = 2);
    let mut c = env.connect(Role::Submissions, false);
    c.handshake(&env.cert_pem).await.expect("handshake");
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let wrong = format!("AUTH PLAIN {}", plain("alice", "wrong"));
    c.expect(&wrong, 535, "5.7.8").await;
    c.expect(&wrong, 535, "5.7.8").await;
    // Even the right password is not checked now.
    let right = format!("AUTH PLAIN {}", plain("alice", PASSWORD));
    c.expect(&right, 454, "4.7.0").await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
}

#[tokio::test]
async fn implicit_tls_greets_inside_tls() {
    let env = Env::new();
    let mut c = env.connect(Role::Submissions, false);
    c.handshake(&env.cert_pem).await.expect("handshake");
    let greeting = c.expect_reply("220", "greeting").await;
    assert_eq!(greeting.lines, [format!("{HOST} ESMTP Herald")]);
    let ehlo = c.expect("EHLO client.test", 250, "").await;
    assert!(!advertises(&ehlo, "STARTTLS") && advertises(&ehlo, "AUTH PLAIN LOGIN"));
    c.expect("STARTTLS", 503, "5.5.1").await;
    let auth = format!("AUTH PLAIN {}", plain("alice", PASSWORD));
    c.expect(&auth, 235, "2.7.0").await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
}

#[tokio::test]
async fn plaintext_on_the_implicit_tls_port_gets_no_reply() {
    let env = Env::new();
    let mut c = env.connect(Role::Submissions, false);
    c.send("EHLO client.test\r\n").await;
    let rest = c.rest().await;
    assert!(
        !rest.first().is_some_and(u8::is_ascii_digit),
        "an SMTP reply without TLS: {:?}",
        String::from_utf8_lossy(&rest)
    );
    c.ended().await;
}
