//! BDAT/CHUNKING (RFC 3030) over the pipe: chunks are read by size, never as commands, and a
//! refused chunk is still read to its end before the refusal.

use super::{Client, Env, HOST, message};
use crate::config::ByteSize;
use crate::smtp::Role;

/// A connection on port 25 that said EHLO.
async fn greeted(env: &Env) -> Client {
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c
}

fn chunk(bytes: &[u8], last: bool) -> Vec<u8> {
    let mut out = format!(
        "BDAT {}{}\r\n",
        bytes.len(),
        if last { " LAST" } else { "" }
    );
    out.push_str(&String::from_utf8_lossy(bytes));
    out.into_bytes()
}

#[tokio::test]
async fn chunks_and_last_make_one_message() {
    let env = Env::new();
    let mut c = greeted(&env).await;
    let content = message("chunked");
    let (head, tail) = content.as_bytes().split_at(20);
    // The first chunk pipelined with MAIL and RCPT; it holds what looks like commands.
    let mut batch =
        format!("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<postmaster@{HOST}>\r\n").into_bytes();
    batch.extend(chunk(b"QUIT\r\n.\r\n", false));
    c.send(&batch).await;
    c.expect_reply("250 2.1.0", "MAIL").await;
    c.expect_reply("250 2.1.5", "RCPT").await;
    let ack = c.expect_reply("250 2.0.0", "first chunk").await;
    assert_eq!(ack.lines, ["9 octets received"]);
    assert_eq!(
        c.writes().last().map(Vec::len),
        Some(3),
        "MAIL, RCPT and the chunk answered in one write"
    );
    c.send(chunk(head, false)).await;
    c.expect_reply("250 2.0.0", "second chunk").await;
    c.send(chunk(tail, false)).await;
    c.expect_reply("250 2.0.0", "third chunk").await;
    c.send(chunk(b"", true)).await;
    let done = c.expect_reply("250 2.0.0", "BDAT 0 LAST").await;
    assert!(done.lines[0].starts_with("Ok: queued as "), "{done:?}");
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;

    let (_, body) = env.only_message();
    let want = format!("QUIT\r\n.\r\n{content}");
    assert!(
        body.ends_with(want.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn a_chunk_over_the_size_limit_is_read_then_refused() {
    let env = Env::with(|c| c.limits.max_message_size = ByteSize(100));
    let mut c = greeted(&env).await;
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    let sixty = "QUIT\r\n".repeat(10);
    c.send(chunk(sixty.as_bytes(), false)).await;
    c.expect_reply("250 2.0.0", "60 of 100").await;
    c.send(chunk(sixty.as_bytes(), false)).await;
    c.expect_reply("552 5.3.4", "120 of 100").await;
    // Still inside the transaction: the chunk's QUITs were data.
    c.send(chunk(b"more", true)).await;
    c.expect_reply("552 5.3.4", "LAST").await;
    c.expect("NOOP", 250, "2.0.0").await;
    // A chunk that could never fit is refused the same way (its bytes read first).
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c.send(chunk(&[b'x'; 101], true)).await;
    c.expect_reply("552 5.3.4", "101 of 100").await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    env.nothing_queued();
    let rejected = env
        .ctx
        .metrics
        .snapshot(Default::default(), &Default::default());
    assert_eq!(
        rejected.rejected.get("size"),
        Some(&2),
        "counted once per message"
    );
}

#[tokio::test]
async fn a_refused_bdat_still_consumes_its_chunk() {
    let env = Env::new();
    let mut c = greeted(&env).await;
    // No transaction: refused, and the QUIT inside is not run.
    c.send(chunk(b"QUIT\r\n", false)).await;
    c.expect_reply("503 5.5.1", "BDAT without MAIL").await;
    c.send(chunk(b"QUIT\r\n", true)).await;
    c.expect_reply("503 5.5.1", "BDAT LAST without MAIL").await;
    // No recipients: the same, at LAST.
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.send(chunk(b"QUIT\r\n", true)).await;
    c.expect_reply("554 5.5.1", "BDAT without RCPT").await;
    c.expect("NOOP", 250, "2.0.0").await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn bdat_rules_within_a_transaction() {
    let env = Env::new();
    let mut c = greeted(&env).await;
    for bad in [
        "BDAT",
        "BDAT ten",
        "BDAT -1",
        "BDAT 5 FIRST",
        "BDAT 5 LAST now",
    ] {
        c.expect(bad, 501, "5.5.4").await;
    }
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c.send(chunk(b"Subject: x\r\n", false)).await;
    c.expect_reply("250 2.0.0", "chunk").await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 503, "5.5.1")
        .await;
    c.expect("DATA", 503, "5.5.1").await;
    // A bare LF in a chunk: refused at LAST (smuggling), like DATA's.
    c.send(chunk(b"\r\nhi\n", true)).await;
    c.expect_reply("550 5.6.0", "bare LF").await;
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    env.nothing_queued();
}
