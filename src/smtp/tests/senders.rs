//! Issue 13 over the pipe: every From and Sender mailbox is held to the user's `senders`, a
//! message with two From fields is refused, NUL bytes are refused at the door (DATA and
//! BDAT), and mail to `postmaster@` is rate- and size-limited per client.

use super::{Client, Env, HOST, PASSWORD};
use crate::smtp::Role;
use crate::store::{Consent, MemberStatus, NewMember};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// A session on 465 authenticated as `user`.
async fn logged_in(env: &Env, user: &str) -> Client {
    let mut c = env.connect(Role::Submissions, false);
    c.handshake(&env.cert_pem).await.expect("handshake");
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let auth = format!("AUTH PLAIN {}", B64.encode(format!("\0{user}\0{PASSWORD}")));
    c.expect(&auth, 235, "2.7.0").await;
    c
}

/// Makes carol@remote.test a confirmed member of the discussion list `talk`.
async fn carol_in_talk(env: &Env) {
    let carol = NewMember {
        address: "carol@remote.test".into(),
        name: None,
        status: MemberStatus::Confirmed,
        consent: Consent {
            source: "test".into(),
            at: 0,
            ip: None,
        },
    };
    let added = env.ctx.store.add_members("talk", vec![carol]).await;
    added.expect("member");
}

/// Sends one message with `head` as its header section; the final reply.
async fn submit(c: &mut Client, sender: &str, head: &str) -> super::Reply {
    c.expect(&format!("MAIL FROM:<{sender}>"), 250, "2.1.0")
        .await;
    c.expect("RCPT TO:<rcpt@remote.test>", 250, "2.1.5").await;
    c.expect("DATA", 354, "").await;
    c.cmd(&format!("{head}Subject: s\r\n\r\nHello.\r\n.")).await
}

/// Fixed (issue 13): `From: bob` then `From: alice` was delivered for bob (only the first
/// From was checked), and so was a message with no From but `Sender: alice`.
#[tokio::test]
async fn every_from_and_sender_mailbox_is_held_to_the_senders() {
    let env = Env::new();
    let mut c = logged_in(&env, "bob").await;
    #[rustfmt::skip]
    let rows: [(&str, &str); 5] = [
        ("From: <me@bob.test>\r\nFrom: <alice@example.org>\r\n", "550 5.7.1"),
        ("Sender: <alice@example.org>\r\n", "550 5.7.1"),
        ("From: <me@bob.test>\r\nSender: Alice <alice@example.org>\r\n", "550 5.7.1"),
        ("From: Team: me@bob.test, alice@example.org;\r\n", "550 5.7.1"),
        ("From: <me@bob.test>, <alice@example.org>\r\n", "550 5.7.1"),
    ];
    for (head, want) in rows {
        let r = submit(&mut c, "me@bob.test", head).await;
        assert_eq!(r.short(), want, "{head:?}: {r:?}");
        assert!(r.lines[0].contains("alice@example.org"), "{r:?}");
    }
    env.nothing_queued();
    let r = submit(
        &mut c,
        "me@bob.test",
        "From: <me@bob.test>\r\nSender: <other@bob.test>\r\n",
    )
    .await;
    assert_eq!(r.short(), "250 2.0.0", "all the user's own: {r:?}");
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    env.only_message();
}

/// RFC 5322 §3.6: one From field. Readers differ in which of two they show.
#[tokio::test]
async fn a_message_with_two_from_fields_is_refused() {
    let env = Env::new();
    let mut c = logged_in(&env, "alice").await;
    let two = "From: <alice@example.org>\r\nFrom: Alice <alice@example.org>\r\n";
    let r = submit(&mut c, "alice@example.org", two).await;
    assert_eq!(r.short(), "550 5.6.0", "{r:?}");
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    // A trusted network too.
    let mut c = env.connect(Role::Submission, true);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let r = submit(&mut c, "any@remote.test", two).await;
    assert_eq!(r.short(), "550 5.6.0", "{r:?}");
    // A post from outside to a discussion list would be passed on: refused as well.
    carol_in_talk(&env).await;
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.expect("MAIL FROM:<carol@remote.test>", 250, "2.1.0")
        .await;
    c.expect("RCPT TO:<talk@lists.example.org>", 250, "2.1.5")
        .await;
    c.expect("DATA", 354, "").await;
    let post = "From: <carol@remote.test>\r\nFrom: <y@remote.test>\r\n\r\nHi.\r\n.";
    assert_eq!(c.cmd(post).await.short(), "550 5.6.0");
    env.nothing_queued();
}

/// Fixed (issue 13): NUL bytes went into the store and on to other servers raw.
#[tokio::test]
async fn nul_bytes_are_refused_in_data_and_bdat() {
    let env = Env::new();
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let rcpt = format!("RCPT TO:<postmaster@{HOST}>");
    c.expect("MAIL FROM:<x@remote.test>", 250, "2.1.0").await;
    c.expect(&rcpt, 250, "2.1.5").await;
    c.expect("DATA", 354, "").await;
    let r = c.cmd("Subject: s\r\n\r\nnul \0 here\r\n.").await;
    assert_eq!(r.short(), "550 5.6.0", "{r:?}");
    assert_eq!(r.lines, ["Message contains NUL bytes"]);
    c.expect("MAIL FROM:<x@remote.test>", 250, "2.1.0").await;
    c.expect(&rcpt, 250, "2.1.5").await;
    c.send(b"BDAT 9\r\nSubject:\0BDAT 0 LAST\r\n").await;
    c.expect_reply("250 2.0.0", "the chunk").await;
    c.expect_reply("550 5.6.0", "BDAT LAST").await;
    env.nothing_queued();
    // The same message without the NUL goes in.
    c.expect("MAIL FROM:<x@remote.test>", 250, "2.1.0").await;
    c.expect(&rcpt, 250, "2.1.5").await;
    c.send(b"BDAT 12 LAST\r\nSubject: s\r\n").await;
    c.expect_reply("250 2.0.0", "clean BDAT").await;
    env.only_message();
}

/// Fixed (issue 13): mail to `postmaster@` had no bounds; now a rate per client and a size.
#[tokio::test]
async fn postmaster_mail_is_rate_and_size_limited_per_client() {
    let env = Env::with(|c| {
        c.limits.postmaster_rate = crate::config::parse_rate("2/hour").expect("rate");
        c.limits.postmaster_max_size = crate::config::ByteSize(1024);
    });
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    let rcpt = format!("RCPT TO:<postmaster@{HOST}>");
    let big = format!("Subject: s\r\n\r\n{}\r\n.", "x".repeat(2000));
    let small = "Subject: s\r\n\r\nHello.\r\n.";
    for (body, want) in [
        (big.as_str(), "552 5.3.4"),
        (small, "250 2.0.0"),
        (small, "450 4.7.1"),
    ] {
        c.expect("MAIL FROM:<x@remote.test>", 250, "2.1.0").await;
        c.expect(&rcpt, 250, "2.1.5").await;
        c.expect("DATA", 354, "").await;
        let r = c.cmd(body).await;
        assert_eq!(r.short(), want, "{r:?}");
    }
    // Other own addresses are not bounded by it (a discussion list post).
    carol_in_talk(&env).await;
    c.expect("MAIL FROM:<carol@remote.test>", 250, "2.1.0")
        .await;
    c.expect("RCPT TO:<talk@lists.example.org>", 250, "2.1.5")
        .await;
    c.expect("DATA", 354, "").await;
    let r = c.cmd("From: <carol@remote.test>\r\n\r\nHi.\r\n.").await;
    assert_eq!(r.short(), "250 2.0.0", "{r:?}");
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    assert_eq!(env.ctx.store.queue_len(), 2);
}
