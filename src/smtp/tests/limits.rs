//! The session's bounds over the pipe: line length, the command and data timeouts, errors per
//! session, what draining and the end of the grace period do to open sessions, and the storage
//! floor (`452 4.3.1` at MAIL and at the end of DATA).
//!
//! The timeouts are short and real (tokio's paused clock needs its `test-util` feature); each
//! test waits for the server's reply, never for a fixed time.

use super::{Client, Env, HOST, message};
use crate::config::HumanDuration;
use crate::smtp::Role;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(300);

async fn greeted(env: &Env) -> Client {
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c
}

/// MAIL and RCPT done: a transaction is open.
async fn in_transaction(env: &Env) -> Client {
    let mut c = greeted(env).await;
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c
}

#[tokio::test]
async fn line_length_is_capped_at_the_configured_bytes() {
    let env = Env::with(|c| c.limits.max_line_length = 64);
    let mut c = greeted(&env).await;
    // 64 bytes with CRLF is a line; 65 is one too many.
    let fits = format!("NOOP {}", "x".repeat(64 - 7));
    c.expect(&fits, 250, "2.0.0").await;
    c.expect(&format!("{fits}x"), 500, "5.5.2").await;
    // A line far longer than any buffer, pipelined between two commands: one 500, and the
    // commands around it run.
    let long = "A".repeat(200 << 10);
    c.send(format!("NOOP\r\n{long}\r\nNOOP\r\n")).await;
    for want in ["250 2.0.0", "500 5.5.2", "250 2.0.0"] {
        c.expect_reply(want, "around the long line").await;
    }
    c.expect("QUIT", 221, "2.0.0").await;
    assert!(c.closed().await);
    c.ended().await;
}

#[tokio::test]
async fn an_idle_client_gets_421_after_the_command_timeout() {
    let env = Env::with(|c| c.limits.command_timeout = HumanDuration(SHORT));
    let start = Instant::now();
    let mut c = env.connect(Role::Inbound, false);
    c.expect_reply("220", "greeting").await;
    c.expect_reply("421 4.4.2", "idle").await;
    assert!(start.elapsed() >= SHORT, "not before the timeout");
    assert!(c.closed().await);
    c.ended().await;
}

#[tokio::test]
async fn stalled_content_times_out_on_the_data_timeout() {
    // The command timeout is the default five minutes: only the data timeout can end these.
    let env = Env::with(|c| c.limits.data_timeout = HumanDuration(SHORT));
    let mut c = in_transaction(&env).await;
    c.expect("DATA", 354, "").await;
    c.send("Subject: half a message\r\n").await;
    c.expect_reply("421 4.4.2", "stalled DATA").await;
    assert!(c.closed().await);
    c.ended().await;

    let mut c = in_transaction(&env).await;
    c.send("BDAT 100 LAST\r\nonly ten..").await;
    c.expect_reply("421 4.4.2", "stalled BDAT").await;
    assert!(c.closed().await);
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let env = Env::with(|c| {
        c.limits.max_errors = 3;
        c.limits.max_recipients = 1;
    });
    let mut c = greeted(&env).await;
    c.expect("BOGUS", 500, "5.5.1").await;
    c.expect("MAIL FROM:<a@remote.test> SIZE=x", 501, "5.5.4")
        .await;
    c.expect("MAIL FROM:<a@remote.test>", 250, "2.1.0").await;
    let rcpt = format!("RCPT TO:<postmaster@{HOST}>");
    c.expect(&rcpt, 250, "2.1.5").await;
    // A 4xx is not counted.
    c.expect(&rcpt, 452, "4.5.3").await;
    c.expect("EXPN staff", 502, "5.5.1").await;
    c.expect_reply("421 4.7.0", "after the third error").await;
    assert!(c.closed().await);
    c.ended().await;
}

#[tokio::test]
async fn draining_ends_idle_sessions_and_lets_open_transactions_finish() {
    let env = Env::new();
    let mut idle = greeted(&env).await;
    let mut finishing = greeted(&env).await;
    finishing
        .expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    let mut other = greeted(&env).await;
    other
        .expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    let mut cut = in_transaction(&env).await;
    cut.expect("DATA", 354, "").await;

    env.ctx.draining.cancel();
    idle.expect_reply("421 4.3.2", "idle while draining").await;
    assert!(idle.closed().await);
    idle.ended().await;
    // Only what finishes a transaction is still served.
    other.expect("RSET", 421, "4.3.2").await;
    assert!(other.closed().await);
    other.ended().await;
    finishing
        .expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    finishing.expect("DATA", 354, "").await;
    finishing.send(format!("{}.\r\n", message("drained"))).await;
    finishing.expect_reply("250 2.0.0", "end of data").await;
    finishing
        .expect_reply("421 4.3.2", "no new transaction")
        .await;
    assert!(finishing.closed().await);
    finishing.ended().await;

    // The grace period ends: a transaction still open is cut off.
    env.ctx.stop_now.cancel();
    cut.expect_reply("421 4.3.2", "grace period over").await;
    assert!(cut.closed().await);
    cut.ended().await;
    let (_, body) = env.only_message();
    assert!(body.ends_with(message("drained").as_bytes()));
}

/// Below the storage floor a transaction does not start (`452 4.3.1` at MAIL); one that was
/// open when the floor was crossed is refused at the end of DATA, and nothing is stored. With
/// space back, mail is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_storage_floor_mail_and_the_end_of_data_answer_452() {
    let env = Env::new();
    let mut c = in_transaction(&env).await;
    let store = env.ctx.store.clone();
    let s = store.clone();
    let refusing = tokio::task::spawn_blocking(move || s.check_storage(u64::MAX))
        .await
        .expect("check");
    assert!(refusing.is_some(), "{refusing:?}");
    c.expect("DATA", 354, "").await;
    c.send(format!("{}.\r\n", message("late")).as_bytes()).await;
    c.expect_reply("452 4.3.1", "end of DATA").await;
    c.expect("MAIL FROM:<sender@remote.test>", 452, "4.3.1")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 503, "5.5.1")
        .await;
    env.nothing_queued();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.check_storage(0))
        .await
        .expect("check");
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
}
