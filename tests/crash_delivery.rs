//! Crash while delivering: kill -9 while 10,000 messages flow through Herald to the sink,
//! restart, and every message that got `250` reaches the sink at least once. Submitters keep
//! going across the restart; duplicates are counted and reported. Every tenth message is large
//! enough for the body spool, whose segments are deleted as their messages are delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::Sink;
use common::*;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const MESSAGES: usize = 10_000;
const CONNECTIONS: usize = 8;
const KILL_AT: usize = 4_000;

/// Sends one message on `c`; `true` once it got its 250.
async fn send_one(c: &mut Client, to: &str, i: usize) -> bool {
    let mut body = message("app@example.net", to, &format!("crash {i}"));
    if i.is_multiple_of(10) {
        // Every tenth is over 16 KiB, so it goes through the body spool.
        for line in 0..250 {
            body.push_str(&format!("{line:04} {}\r\n", "y".repeat(75)));
        }
    }
    let script = format!("MAIL FROM:<app@example.net>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
    if !c.try_send_raw(script.as_bytes()).await {
        return false;
    }
    for _ in 0..3 {
        if c.try_read_reply().await.is_none() {
            return false;
        }
    }
    c.try_send_raw(format!("{body}.\r\n").as_bytes()).await
        && c.try_read_reply().await.is_some_and(|r| r.code == 250)
}

async fn connect(addr: SocketAddr) -> Option<Client> {
    let mut c = Client::try_connect_raw(addr).await?;
    c.timeout = Duration::from_secs(10);
    c.try_read_reply().await.filter(|r| r.code == 220)?;
    c.try_send_raw(b"EHLO crash.test\r\n").await.then_some(())?;
    c.try_read_reply().await.filter(|r| r.code == 250)?;
    Some(c)
}

/// Submits its share, reconnecting to whatever address the daemon has after a restart.
async fn submitter(
    conn: usize,
    mut addr: watch::Receiver<Option<SocketAddr>>,
    acked: Arc<Mutex<HashSet<String>>>,
) {
    let mut i = conn;
    let mut client: Option<Client> = None;
    while i < MESSAGES {
        let to = format!("m{i}@d{}.crash.test", i % 50);
        if client.is_none() {
            let current = addr
                .wait_for(|a| a.is_some())
                .await
                .map(|a| a.unwrap())
                .unwrap();
            client = connect(current).await;
            if client.is_none() {
                // The daemon is going down: wait for the next address.
                let _ = addr.wait_for(|a| *a != Some(current)).await;
                continue;
            }
        }
        if send_one(client.as_mut().unwrap(), &to, i).await {
            acked.lock().unwrap().insert(to);
            i += CONNECTIONS;
        } else {
            client = None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_delivery_loses_nothing() {
    let sink = Sink::start("127.0.0.1:0").await;
    let mut d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &format!(
            "[delivery]\nrelay = \"{}\"\nretry = [\"1s\"]\n[delivery.rate]\ndefault = \"1000000/min\"\n",
            sink.addr
        ),
    );
    let (addr_tx, addr_rx) = watch::channel(Some(d.submission));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(submitter(c, addr_rx.clone(), acked.clone())))
        .collect();

    sink.wait_count(KILL_AT, Duration::from_secs(300)).await;
    addr_tx.send_replace(None);
    d.kill9();
    let acked_at_kill = acked.lock().unwrap().len();
    let delivered_at_kill = sink.received().len();
    d.restart();
    addr_tx.send_replace(Some(d.submission));
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), MESSAGES);
    let got = sink
        .wait_for(
            Duration::from_secs(300),
            "every acknowledged message",
            |r| {
                let seen: HashSet<&String> = r.iter().flat_map(|m| m.rcpts.iter()).collect();
                acked.iter().all(|a| seen.contains(a))
            },
        )
        .await;
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for m in &got {
        for r in &m.rcpts {
            *counts.entry(r).or_default() += 1;
        }
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: kill -9 with {acked_at_kill} acknowledged and {delivered_at_kill} delivered; \
         after restart all {} acknowledged arrived, {} deliveries in all, {duplicates} duplicates",
        acked.len(),
        got.len()
    );
}
