//! SMTP steps whose every reply is checked for an RFC 3463 enhanced status code (RFC 2034 §3),
//! for tests that hold the daemon to that (tests/security.rs): commands, the STARTTLS and AUTH
//! steps, and the MAIL/RCPT/DATA sequence with each step's reply asserted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::{ALICE, ALICE_PASSWORD, Client, Daemon, Reply, message, queued_id};

/// Asserts that every line of `r` starts with an RFC 3463 enhanced status code whose class
/// matches the reply code. RFC 2034 §3 requires it on 2xx, 4xx and 5xx replies other than the
/// greeting and the EHLO/HELO reply (callers do not pass those here); 3xx intermediate replies
/// are outside its scope, and a 334 SASL challenge must be bare base64 (RFC 4954 §4), so 3xx
/// replies are exempt.
pub fn esc(r: &Reply) {
    if (300..400).contains(&r.code) {
        return;
    }
    let class = (r.code / 100).to_string();
    for line in &r.lines {
        let token = line.split(' ').next().unwrap_or("");
        let parts: Vec<&str> = token.split('.').collect();
        let ok = parts.len() == 3
            && parts[0] == class
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        assert!(ok, "reply line without an enhanced status code: {r:?}");
    }
}

/// Sends one command line and reads its reply (checked for an enhanced status code).
pub async fn cmd(c: &mut Client, line: &str) -> Reply {
    let r = c.cmd(line).await;
    esc(&r);
    r
}

/// Reads one reply (checked for an enhanced status code).
pub async fn read(c: &mut Client) -> Reply {
    let r = c.read_reply().await;
    esc(&r);
    r
}

#[track_caller]
pub fn expect(r: &Reply, code: u16, status: &str, what: &str) {
    assert!(
        r.has(code, status),
        "{what}: expected {code} {status}, got {r:?}"
    );
}

/// Sends `line`; its reply must be `code status` (with the line named if it is not).
pub async fn step(c: &mut Client, line: &str, code: u16, status: &str) -> Reply {
    let r = cmd(c, line).await;
    expect(&r, code, status, line);
    r
}

/// QUIT, answered `221 2.0.0`.
pub async fn quit(c: &mut Client) {
    expect(&cmd(c, "QUIT").await, 221, "2.0.0", "QUIT");
}

/// Whether an EHLO reply advertises `keyword` (alone or with parameters).
pub fn advertises(r: &Reply, keyword: &str) -> bool {
    r.lines.iter().skip(1).any(|l| {
        l.split(' ')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
    })
}

/// STARTTLS (reply checked) and the handshake.
pub async fn starttls(c: &mut Client, d: &Daemon) {
    let r = cmd(c, "STARTTLS").await;
    expect(&r, 220, "2.0.0", "STARTTLS");
    c.tls_handshake(&d.cert_pem).await;
}

pub async fn auth(c: &mut Client, user: &str, password: &str) -> Reply {
    let r = c.auth_plain(user, password).await;
    esc(&r);
    r
}

/// EHLO, STARTTLS, EHLO again on a fresh submission connection.
pub async fn ehlo_tls(c: &mut Client, d: &Daemon) {
    c.ehlo().await;
    starttls(c, d).await;
    c.ehlo().await;
}

/// Submission over STARTTLS, authenticated as alice, every reply checked.
pub async fn login(d: &Daemon) -> Client {
    let mut c = Client::connect(d.submission).await;
    ehlo_tls(&mut c, d).await;
    let r = auth(&mut c, ALICE, ALICE_PASSWORD).await;
    expect(&r, 235, "2.7.0", "AUTH PLAIN alice");
    c
}

/// MAIL and RCPTs, each of which must be accepted.
pub async fn envelope(c: &mut Client, from: &str, to: &[&str]) {
    let r = cmd(c, &format!("MAIL FROM:<{from}>")).await;
    expect(&r, 250, "2.1.0", "MAIL");
    for rcpt in to {
        let r = cmd(c, &format!("RCPT TO:<{rcpt}>")).await;
        expect(&r, 250, "2.1.5", "RCPT");
    }
}

/// MAIL, RCPTs (each must be accepted), DATA, `body`, and the final reply.
pub async fn send_mail(c: &mut Client, from: &str, to: &[&str], body: &str) -> Reply {
    envelope(c, from, to).await;
    let r = cmd(c, "DATA").await;
    assert_eq!(r.code, 354, "DATA: {r:?}");
    c.send_raw(body.as_bytes()).await;
    cmd(c, ".").await
}

/// `BDAT n LAST` with all of `body` in one chunk, and its reply.
pub async fn bdat_last(c: &mut Client, body: &str) -> Reply {
    c.send_raw(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes())
        .await;
    read(c).await
}

/// A small message from `from` to `to` sent with `send_mail`; it must be queued. Its queue id.
pub async fn submit(c: &mut Client, from: &str, to: &str, subject: &str) -> String {
    queued_id(&send_mail(c, from, &[to], &message(from, to, subject)).await)
}
