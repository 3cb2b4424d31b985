//! PIPELINING (RFC 2920): commands sent in one write are answered in order, and their replies
//! leave in one write once the input runs dry (or DATA asks for content).

use super::{Env, HOST, message};
use crate::smtp::Role;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_pipelined_transaction_is_answered_in_order_in_one_write() {
    let env = Env::new();
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.send(concat!(
        "MAIL FROM:<sender@remote.test>\r\n",
        "RCPT TO:<postmaster@mx.herald.test>\r\n",
        "RCPT TO:<someone@elsewhere.test>\r\n",
        "RCPT TO:<PostMaster@MX.Herald.Test>\r\n",
        "DATA\r\n",
    ))
    .await;
    let batch = ["250 2.1.0", "250 2.1.5", "550 5.7.1", "250 2.1.5", "354"];
    for want in batch {
        c.expect_reply(want, "pipelined batch").await;
    }
    // The content, its end and QUIT in one write: two replies, again together.
    c.send(format!("{}.\r\nQUIT\r\n", message("pipelined")))
        .await;
    let queued = c.expect_reply("250 2.0.0", "end of data").await;
    c.expect_reply("221 2.0.0", "QUIT").await;
    assert!(c.closed().await, "closed after QUIT");
    assert_eq!(
        c.writes(),
        vec![
            strings(&["220"]),
            strings(&["250"]),
            strings(&batch),
            strings(&["250 2.0.0", "221 2.0.0"]),
        ],
        "one write per batch"
    );
    c.ended().await;

    let (entry, body) = env.only_message();
    let to: Vec<&str> = entry
        .deliveries
        .iter()
        .map(|d| d.address.as_str())
        .collect();
    assert_eq!(
        to,
        ["postmaster@mx.herald.test", "PostMaster@mx.herald.test"],
        "the refused recipient is not among them"
    );
    assert_eq!(entry.message.sender, "sender@remote.test");
    let id = entry.message.id.to_string();
    assert_eq!(queued.lines, [format!("Ok: queued as {id}")]);
    assert!(
        body.starts_with(b"Received: from client.test ([192.0.2.10])"),
        "trace on top"
    );
    assert!(
        body.ends_with(message("pipelined").as_bytes()),
        "content kept"
    );
    assert!(
        String::from_utf8_lossy(&body).contains(&format!("by {HOST} (Herald) with ESMTP id {id};")),
        "Received names the queue id"
    );
}

#[tokio::test]
async fn each_pipelined_command_sees_the_state_the_one_before_left() {
    let env = Env::new();
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.send(concat!(
        "MAIL FROM:<a@remote.test>\r\n",
        "MAIL FROM:<b@remote.test>\r\n",
        "RSET\r\n",
        "RCPT TO:<postmaster@mx.herald.test>\r\n",
        "BOGUS\r\n",
        "NOOP\r\n",
    ))
    .await;
    let batch = [
        "250 2.1.0", // MAIL
        "503 5.5.1", // nested MAIL
        "250 2.0.0", // RSET ends the transaction
        "503 5.5.1", // so RCPT has none
        "500 5.5.1", // unknown command
        "250 2.0.0", // NOOP
    ];
    for want in batch {
        c.expect_reply(want, "pipelined batch").await;
    }
    assert_eq!(c.writes().last(), Some(&strings(&batch)), "one write");
    c.expect("QUIT", 221, "2.0.0").await;
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn a_command_split_across_writes_is_one_command() {
    let env = Env::new();
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c.send("MAIL FROM:<sender@re").await;
    c.send("mote.test>\r\nRCPT TO:<postmaster@").await;
    c.send(format!("{HOST}>\r\n")).await;
    c.expect_reply("250 2.1.0", "MAIL").await;
    c.expect_reply("250 2.1.5", "RCPT").await;
    c.expect("QUIT", 221, "2.0.0").await;
    assert!(c.closed().await);
    c.ended().await;
}
