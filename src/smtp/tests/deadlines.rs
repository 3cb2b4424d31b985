//! Whole units of work have deadlines however slowly the bytes come (a command line from its
//! first byte, a message from its start scaled to its size, the count of commands that do
//! nothing), and the connection budgets act on sessions over the pipe: eviction answers
//! `421 4.7.0` inside TLS, the submission reserve opens when a session authenticates, and a
//! listener under stress shortens unauthenticated deadlines.
//!
//! Under paused time where no store write is involved (the clock jumps when every task waits).

use super::{Client, Env, HOST, PASSWORD, message};
use crate::config::{ByteRate, HumanDuration};
use crate::smtp::Role;
use crate::smtp::conns::Refusal;
use base64::Engine;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

fn secs(s: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(s))
}

fn from(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 40000))
}

async fn greeted(env: &Env, role: Role) -> Client {
    let mut c = env.connect(role, false);
    c.deadline = Duration::from_secs(3600);
    c.expect_reply("220", "greeting").await;
    c.expect("EHLO client.test", 250, "").await;
    c
}

/// Sends `bytes` one at a time, `gap` apart, until a reply comes; the reply and how long after
/// the first byte it came.
async fn trickle(c: &mut Client, bytes: &[u8], gap: Duration) -> (super::Reply, Duration) {
    let first = Instant::now();
    for b in bytes.iter().cycle().take(1000) {
        c.send([*b]).await;
        if let Ok(r) = tokio::time::timeout(gap, c.reply()).await {
            return (r, first.elapsed());
        }
    }
    panic!("no reply after 1000 bytes, {:?} apart", gap)
}

#[tokio::test(start_paused = true)]
async fn a_command_line_sent_a_byte_at_a_time_ends_by_the_timeout_from_its_first_byte() {
    let env = Env::with(|c| c.limits.command_timeout = secs(10));
    let mut c = greeted(&env, Role::Inbound).await;
    // Waiting for a command is bounded too, but the line's clock starts at its first byte.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (r, took) = trickle(&mut c, b"NOOP and on and on", Duration::from_secs(2)).await;
    assert_eq!(r.short(), "421 4.4.2", "{r:?}");
    assert!(took >= Duration::from_secs(10), "not before: {took:?}");
    assert!(
        took < Duration::from_secs(12),
        "within a gap of it: {took:?}"
    );
    assert!(c.closed().await);
    c.ended().await;
    assert_eq!(rejected(&env, "timeout"), Some(1));
}

/// The `herald_rejected_total` count of `reason`.
fn rejected(env: &Env, reason: &str) -> Option<u64> {
    let m = env
        .ctx
        .metrics
        .snapshot(Default::default(), &Default::default());
    m.rejected.get(reason).copied()
}

#[tokio::test(start_paused = true)]
async fn data_sent_slower_than_the_minimum_rate_ends_by_its_grace_plus_size() {
    let env = Env::with(|c| {
        c.limits.data_timeout = secs(20);
        c.limits.data_min_rate = ByteRate(10);
    });
    let mut c = greeted(&env, Role::Inbound).await;
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c.expect("DATA", 354, "").await;
    // One byte a second against 20 s + bytes / 10 B/s: the deadline is met at about 22.2 s.
    let (r, took) = trickle(&mut c, b"Subject: slow\r\n", Duration::from_secs(1)).await;
    assert_eq!(r.short(), "421 4.4.2", "{r:?}");
    assert!(took >= Duration::from_secs(22), "{took:?}");
    assert!(took < Duration::from_secs(24), "{took:?}");
    assert!(c.closed().await);
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn data_faster_than_the_minimum_rate_may_take_longer_than_the_grace() {
    let env = Env::with(|c| {
        c.limits.data_timeout = HumanDuration(Duration::from_millis(300));
        c.limits.data_min_rate = ByteRate(1024);
    });
    let mut c = greeted(&env, Role::Inbound).await;
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c.expect("DATA", 354, "").await;
    // 3 KiB at about 4 KiB/s: three quarters of a second, well past the 300 ms grace.
    let lines = format!("{}\r\n", "x".repeat(62)).repeat(48);
    let body = format!("{}{lines}.\r\n", message("steady"));
    let started = std::time::Instant::now();
    for part in body.as_bytes().chunks(256) {
        c.send(part).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    c.expect_reply("250 2.0.0", "end of data").await;
    assert!(
        started.elapsed() > Duration::from_millis(300),
        "slower than the grace"
    );
    env.only_message();
}

#[tokio::test(start_paused = true)]
async fn a_bdat_message_in_tiny_chunks_ends_by_the_deadline_of_the_whole_message() {
    let env = Env::with(|c| {
        c.limits.data_timeout = secs(5);
        c.limits.data_min_rate = ByteRate(1000);
    });
    let mut c = greeted(&env, Role::Inbound).await;
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    let start = Instant::now();
    let mut last = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.send("BDAT 1\r\nx").await;
        let r = c.reply().await;
        if r.code != 250 {
            last = Some(r);
            break;
        }
    }
    let last = last.expect("the message ended within 100 chunks");
    assert_eq!(last.short(), "421 4.4.2", "{last:?}");
    let took = start.elapsed();
    // The first chunk came at 1 s: it is over 5 s (and a few ms for its bytes) after that.
    assert!(
        (Duration::from_secs(6)..=Duration::from_secs(7)).contains(&took),
        "{took:?}"
    );
    assert!(c.closed().await);
    c.ended().await;
    env.nothing_queued();
}

#[tokio::test]
async fn commands_that_do_nothing_are_capped_per_message() {
    let env = Env::with(|c| c.limits.max_idle_commands = 3);
    let mut c = greeted(&env, Role::Inbound).await;
    c.expect("NOOP", 250, "2.0.0").await;
    c.expect("BOGUS", 500, "5.5.1").await;
    c.expect("RSET", 250, "2.0.0").await;
    // An accepted message starts the count again.
    c.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        .await;
    c.expect(&format!("RCPT TO:<postmaster@{HOST}>"), 250, "2.1.5")
        .await;
    c.expect("DATA", 354, "").await;
    c.send(format!("{}.\r\n", message("counted"))).await;
    c.expect_reply("250 2.0.0", "end of data").await;
    c.expect("HELP", 214, "2.0.0").await;
    c.expect("VRFY someone", 252, "2.5.0").await;
    c.expect("NOOP", 250, "2.0.0").await;
    c.expect("NOOP", 421, "4.7.0").await;
    assert!(c.closed().await);
    c.ended().await;
    assert_eq!(rejected(&env, "idle_commands"), Some(1));
}

#[tokio::test]
async fn a_lighter_address_evicts_a_session_which_says_421_inside_tls() {
    let env = Env::with(|c| {
        c.limits.connections_per_listener = 3;
        c.limits.submission_reserve = 0;
    });
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = env
            .connect_from(Role::Submissions, from(1), false)
            .expect("fits");
        c.handshake(&env.cert_pem).await.expect("handshake");
        c.expect_reply("220", "greeting").await;
        held.push(c);
    }
    let same = env.connect_from(Role::Submissions, from(1), false);
    assert_eq!(
        same.err(),
        Some(Refusal::Listener),
        "no eviction for the heaviest itself"
    );
    let mut newcomer = env
        .connect_from(Role::Submissions, from(2), false)
        .expect("evicts");
    let mut oldest = held.remove(0);
    oldest.expect_reply("421 4.7.0", "evicted, over TLS").await;
    assert!(oldest.closed().await);
    oldest.ended().await;
    newcomer.handshake(&env.cert_pem).await.expect("handshake");
    newcomer.expect_reply("220", "greeting").await;
    for c in &mut held {
        c.expect("NOOP", 250, "2.0.0").await;
    }
    assert_eq!(rejected(&env, "evicted"), Some(1));
}

#[tokio::test]
async fn the_submission_reserve_opens_to_a_session_once_it_authenticates() {
    let env = Env::with(|c| {
        c.limits.connections_per_listener = 3;
        c.limits.submission_reserve = 1;
    });
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{PASSWORD}"));
    let mut a = env
        .connect_from(Role::Submissions, from(1), false)
        .expect("pool");
    let _b = env
        .connect_from(Role::Submissions, from(1), false)
        .expect("pool");
    let full = env.connect_from(Role::Submissions, from(1), false);
    assert_eq!(
        full.err(),
        Some(Refusal::Listener),
        "the last slot is the reserve"
    );
    a.handshake(&env.cert_pem).await.expect("handshake");
    a.expect_reply("220", "greeting").await;
    a.expect("EHLO client.test", 250, "").await;
    a.expect(&format!("AUTH PLAIN {plain}"), 235, "2.7.0").await;
    // The slot moves when the session next reads.
    a.expect("NOOP", 250, "2.0.0").await;
    let third = env.connect_from(Role::Submissions, from(1), false);
    assert!(
        third.is_ok(),
        "a's pool slot is free: it holds the reserve now"
    );
}

#[tokio::test(start_paused = true)]
async fn a_listener_under_stress_gives_unauthenticated_sessions_the_short_timeout() {
    let env = Env::with(|c| {
        c.limits.connections_per_listener = 4;
        c.limits.stress_timeout = secs(10);
    });
    let mut calm = greeted(&env, Role::Inbound).await;
    let quiet = tokio::time::timeout(Duration::from_secs(60), calm.reply()).await;
    assert!(
        quiet.is_err(),
        "at 1 of 4 the command timeout (5 minutes) holds"
    );
    let _more = [
        greeted(&env, Role::Inbound).await,
        greeted(&env, Role::Inbound).await,
    ];
    // Three of four: stress. The deadline is taken anew on each wait.
    let start = Instant::now();
    calm.expect("NOOP", 250, "2.0.0").await;
    calm.expect_reply("421 4.4.2", "stressed").await;
    let took = start.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(11)).contains(&took),
        "{took:?}"
    );
}
