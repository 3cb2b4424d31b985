//! A submission user's `senders` bind the From field as well as the envelope (DESIGN §3): a
//! message whose From names an address the user may not use is refused, even with an allowed
//! envelope sender, and wherever the From stands in the header section; allowed addresses,
//! display names and quoted commas pass. Issue 13: every From and the Sender field count, two
//! From fields are refused, NUL bytes are refused at the door, and a UTF-8 envelope goes only
//! to a server that offers SMTPUTF8 (else `5.6.7` and a DSN).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::{Rule, Sink};
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_header_must_be_one_of_the_users_senders() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!("[delivery]\nrelay = \"{}\"\n", sink.addr));
    let mut c = d.alice().await;
    let envelope = "alice@example.org";
    let to = "bob@remote.test";
    let with_from = |from: &str, subject: &str| {
        format!("From: {from}\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello.\r\n")
    };
    for (from, subject) in [
        ("Mallory <ceo@bank.example>", "spoofed"),
        ("alice@example.org, ceo@bank.example", "one of two spoofed"),
        (
            "\"alice@example.org\" <ceo@bank.example>",
            "spoofed behind a name",
        ),
    ] {
        let r = c
            .send_mail(envelope, &[to], &with_from(from, subject))
            .await;
        assert!(r.has(550, "5.7.1"), "{subject}: {r:?}");
        assert!(r.text().contains("ceo@bank.example"), "{r:?}");
    }
    // The From field counts wherever it stands in the header section: after a line that is no
    // field, or written with a blank before the colon (the scan used to stop at both).
    for (head, subject) in [
        (
            "Subject: spoofed after a broken line\r\nbroken line\r\nFrom: ceo@bank.example",
            "broken",
        ),
        (
            "Subject: spoofed, obsolete syntax\r\nFrom : ceo@bank.example",
            "obsolete",
        ),
    ] {
        let msg = format!("{head}\r\nTo: <{to}>\r\n\r\nHello.\r\n");
        let r = c.send_mail(envelope, &[to], &msg).await;
        assert!(r.has(550, "5.7.1"), "{subject}: {r:?}");
    }
    for (from, subject) in [
        (
            "\"Smith, Alice\" <Alice@Example.org>",
            "display name with a comma",
        ),
        ("news@alice.example", "another allowed address"),
    ] {
        let r = c
            .send_mail(envelope, &[to], &with_from(from, subject))
            .await;
        assert!(r.has(250, "2.0.0"), "{subject}: {r:?}");
    }
    let got = sink
        .wait_for(Duration::from_secs(30), "the allowed two", |r| r.len() == 2)
        .await;
    assert!(got.iter().all(|m| !m.data.contains("spoofed")));
}

/// Fixed (issue 13): only the first From was checked (`From: alice` then `From: ceo` went out
/// for alice), and a message with no From but a Sender not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_from_and_sender_counts_and_two_from_fields_are_refused() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!("[delivery]\nrelay = \"{}\"\n", sink.addr));
    let mut c = d.alice().await;
    let envelope = "alice@example.org";
    let to = "bob@remote.test";
    #[rustfmt::skip]
    let rows: [(&str, u16, &str, &str); 4] = [
        ("From: <alice@example.org>\r\nFrom: <ceo@bank.example>", 550, "5.7.1", "second From"),
        ("Sender: <ceo@bank.example>", 550, "5.7.1", "Sender, no From"),
        ("From: <alice@example.org>\r\nSender: CEO <ceo@bank.example>", 550, "5.7.1", "Sender"),
        ("From: <alice@example.org>\r\nFrom: <alice@example.org>", 550, "5.6.0", "two From fields"),
    ];
    for (head, code, status, what) in rows {
        let msg = format!("{head}\r\nTo: <{to}>\r\nSubject: spoofed {what}\r\n\r\nHi.\r\n");
        let r = c.send_mail(envelope, &[to], &msg).await;
        assert!(r.has(code, status), "{what}: {r:?}");
    }
    // NUL bytes: refused in DATA and in BDAT, over the real socket.
    let msg = format!("From: <{envelope}>\r\nSubject: spoofed nul\r\n\r\nnul\0byte\r\n");
    let r = c.send_mail(envelope, &[to], &msg).await;
    assert!(r.has(550, "5.6.0") && r.text().contains("NUL"), "{r:?}");
    assert!(
        c.cmd(&format!("MAIL FROM:<{envelope}>"))
            .await
            .has(250, "2.1.0")
    );
    assert!(c.cmd(&format!("RCPT TO:<{to}>")).await.has(250, "2.1.5"));
    let chunk = format!("From: <{envelope}>\r\nSubject: spoofed\r\n\r\n\0\r\n");
    c.send_raw(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes())
        .await;
    let r = c.read_reply().await;
    assert!(r.has(550, "5.6.0"), "BDAT: {r:?}");
    let msg = format!(
        "From: <{envelope}>\r\nSender: <news@alice.example>\r\nSubject: fine\r\n\r\nHi.\r\n"
    );
    let r = c.send_mail(envelope, &[to], &msg).await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let got = sink
        .wait_for(Duration::from_secs(30), "the allowed one", |r| {
            !r.is_empty()
        })
        .await;
    assert_eq!(got.len(), 1);
    assert!(!got[0].data.contains("spoofed") && !got[0].data.contains('\0'));
}

/// Submits a message to `to` (a UTF-8 recipient first) with the SMTPUTF8 parameter as alice.
async fn submit_utf8(d: &Daemon, rcpts: &[&str]) {
    let mut c = d.alice().await;
    let r = c.cmd("MAIL FROM:<alice@example.org> SMTPUTF8").await;
    assert!(r.has(250, "2.1.0"), "{r:?}");
    for rcpt in rcpts {
        assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).await.has(250, "2.1.5"));
    }
    let to = rcpts[0];
    assert_eq!(c.cmd("DATA").await.code, 354);
    let msg = format!("From: <alice@example.org>\r\nTo: <{to}>\r\nSubject: utf8\r\n\r\nHi.\r\n");
    c.send_raw(msg.as_bytes()).await;
    assert!(c.cmd(".").await.has(250, "2.0.0"));
}

/// Fixed (issue 13): UTF-8 envelope addresses went to servers that do not offer SMTPUTF8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_utf8_envelope_goes_only_where_smtputf8_is_offered() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&relay_to(sink.addr));
    let to = "jos\u{e9}@remote.test";
    // Beside it an ASCII recipient, who gets the message (without the parameter).
    submit_utf8(&d, &[to, "bob@remote.test"]).await;
    let (dsn, got) = sink
        .wait_dsn(Duration::from_secs(30), "5.6.7", "alice@example.org")
        .await;
    assert!(dsn.data.contains("SMTPUTF8"), "{}", dsn.data);
    assert!(
        got.iter().all(|m| !m.rcpts.iter().any(|r| r == to)),
        "never sent"
    );
    let got = sink
        .wait_for(Duration::from_secs(30), "bob's copy", |r| {
            r.iter().any(|m| m.rcpts == ["bob@remote.test"])
        })
        .await;
    let bob = got.iter().find(|m| m.rcpts == ["bob@remote.test"]).unwrap();
    assert!(!bob.smtputf8);
    d.wait_queue_empty(Duration::from_secs(30)).await;

    // A server that offers it gets the message, with the parameter.
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![Rule::SmtpUtf8]);
    let d = Daemon::start(&relay_to(sink.addr));
    submit_utf8(&d, &[to]).await;
    let got = sink
        .wait_for(Duration::from_secs(30), "the UTF-8 delivery", |r| {
            r.iter().any(|m| m.rcpts.iter().any(|r| r == to))
        })
        .await;
    let m = got
        .iter()
        .find(|m| m.rcpts.iter().any(|r| r == to))
        .unwrap();
    assert!(m.smtputf8, "MAIL FROM carried SMTPUTF8");
}
