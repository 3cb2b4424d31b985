//! A submission user's `senders` bind the From field as well as the envelope (DESIGN §3): a
//! message whose From names an address the user may not use is refused, even with an allowed
//! envelope sender, and wherever the From stands in the header section; allowed addresses,
//! display names and quoted commas pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::Sink;
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
