//! Slow clients cannot lock anyone out (issue 13, defect 1), over real sockets at a reduced
//! scale: eight loopback addresses hold every unauthenticated slot of 587 and every slot of 25
//! with sessions that send one byte a second and never finish a line, reconnecting whenever
//! they are closed; throughout, an authenticated submission on 587 and a DSN to a VERP address
//! on 25 each get their `250` within 5 s, every slow session ends by its deadline, a DATA phase
//! sent a byte at a time ends, and on 465 a refused connection is closed without plain text.
//! `bench/slow-clients.sh` runs the full-size version against the default limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::Sink;
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PER_ADDRESS: usize = 10;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(6);
const DATA_TIMEOUT: Duration = Duration::from_secs(4);
/// How often a slow client sends its next byte.
const GAP: Duration = Duration::from_secs(1);
const ATTACK: Duration = Duration::from_secs(20);
const WITHIN: Duration = Duration::from_secs(5);

fn limits() -> String {
    format!(
        "[limits]\nconnections_per_listener = 40\nsubmission_reserve = 5\n\
         max_connections_per_ip = {PER_ADDRESS}\nmax_connections = 120\n\
         command_timeout = \"{}s\"\ndata_timeout = \"{}s\"\nstress_timeout = \"2s\"\n",
        COMMAND_TIMEOUT.as_secs(),
        DATA_TIMEOUT.as_secs()
    )
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Reads until the server closes or `limit` passes: what it sent.
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[derive(Default)]
struct Seen {
    /// Longest life of a session the server closed, in ms.
    longest_ms: AtomicU64,
    closed_by_server: AtomicU64,
    last_words: Mutex<Vec<String>>,
}

/// One slow client: connects, then sends a byte every [`GAP`] of a line that never ends, until
/// the server closes; then again, until `stop`.
async fn slow(from: IpAddr, to: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = connect_from(from, to).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let born = Instant::now();
        let mut greeting = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut greeting)).await;
        if !matches!(n, Ok(Ok(n)) if greeting[..n].starts_with(b"220")) {
            // Refused (421) or closed: try again a little later.
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let ended = loop {
            if stop.load(Ordering::Relaxed) {
                break None;
            }
            if tcp.write_all(b"N").await.is_err() {
                break Some(Vec::new());
            }
            if let Some(words) = read_to_close(&mut tcp, GAP).await {
                break Some(words);
            }
        };
        if let Some(words) = ended {
            let life = born.elapsed().as_millis() as u64;
            seen.longest_ms.fetch_max(life, Ordering::Relaxed);
            seen.closed_by_server.fetch_add(1, Ordering::Relaxed);
            let text = String::from_utf8_lossy(&words).trim().to_string();
            seen.last_words.lock().unwrap().push(text);
        }
    }
}

/// A DSN for `rcpt` as a remote MTA returns it (multipart/report, 5.1.1).
fn dsn(verp: &str, rcpt: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nTo: {verp}\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; \
         boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n\
         --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; remote.test\r\n\
         \r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n--b1--\r\n"
    )
}

async fn submission_took(d: &Daemon, n: usize) -> Duration {
    let started = Instant::now();
    let mut c = d.alice().await;
    let subject = format!("during the flood {n}");
    let body = message("alice@example.org", "bob@remote.test", &subject);
    let r = c
        .send_mail("alice@example.org", &["bob@remote.test"], &body)
        .await;
    assert!(r.has(250, "2.0.0"), "submission {n}: {r:?}");
    started.elapsed()
}

async fn dsn_took(d: &Daemon, verp: &str, n: usize) -> Duration {
    let started = Instant::now();
    let mut c = Client::connect(d.inbound).await;
    c.ehlo().await;
    let r = c.send_mail("", &[verp], &dsn(verp, "t@remote.test")).await;
    assert!(r.has(250, "2.0.0"), "DSN {n}: {r:?}");
    started.elapsed()
}

/// A per-address refusal on 465 closes without a byte; on 587 it is a plain `421 4.7.0`.
async fn refusals_on_465_say_nothing(d: &Daemon) {
    let from = loopback(40);
    let mut held = Vec::new();
    for _ in 0..PER_ADDRESS {
        let mut tcp = connect_from(from, d.inbound).await.unwrap();
        let mut greeting = [0u8; 64];
        let n = tcp.read(&mut greeting).await.unwrap();
        assert!(greeting[..n].starts_with(b"220"));
        held.push(tcp);
    }
    let mut tls_port = connect_from(from, d.submissions).await.unwrap();
    let said = read_to_close(&mut tls_port, Duration::from_secs(10)).await;
    assert_eq!(said, Some(Vec::new()), "465: closed without a byte");
    let mut plain = connect_from(from, d.submission).await.unwrap();
    let said = read_to_close(&mut plain, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        said.starts_with(b"421 4.7.0"),
        "{:?}",
        String::from_utf8_lossy(&said)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_lock_nobody_out() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!("{}{}", relay_to(sink.addr), limits()));
    // A VERP address to return mail to: the envelope sender of a delivered message.
    let mut c = d.alice().await;
    let body = message("alice@example.org", "t@remote.test", "receipt");
    let r = c
        .send_mail("alice@example.org", &["t@remote.test"], &body)
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let verp = sink.wait_count(1, Duration::from_secs(30)).await[0]
        .mail_from
        .clone();
    assert!(verp.starts_with("b+"), "{verp}");
    drop(c);
    refusals_on_465_say_nothing(&d).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let to = if i < 4 { d.submission } else { d.inbound };
        for _ in 0..PER_ADDRESS {
            flood.spawn(slow(loopback(2 + i), to, stop.clone(), seen.clone()));
        }
    }
    // A DATA phase sent a byte at a time, among them.
    let mut data = connect_from(loopback(30), d.inbound).await.unwrap();
    data.write_all(
        b"EHLO slow.test\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster@bounces.example.org>\r\nDATA\r\n",
    )
    .await
    .unwrap();
    let mut said = Vec::new();
    while !said.windows(4).any(|w| w == b"354 ") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WITHIN, data.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before 354: {:?}",
            String::from_utf8_lossy(&said)
        );
        said.extend_from_slice(&buf[..n]);
    }

    let started = Instant::now();
    let (mut worst_sub, mut worst_dsn, mut n) = (Duration::ZERO, Duration::ZERO, 0);
    let mut data_end = None;
    while started.elapsed() < ATTACK {
        let sub = submission_took(&d, n).await;
        let dsn = dsn_took(&d, &verp, n).await;
        eprintln!(
            "t={:>4.1}s submission {sub:?} dsn {dsn:?}",
            started.elapsed().as_secs_f64()
        );
        (worst_sub, worst_dsn) = (worst_sub.max(sub), worst_dsn.max(dsn));
        n += 1;
        if data_end.is_none() {
            data.write_all(b"x").await.unwrap();
            if let Some(words) = read_to_close(&mut data, GAP).await {
                data_end = Some((
                    started.elapsed(),
                    String::from_utf8_lossy(&words).into_owned(),
                ));
            }
        }
        // Pacing, so the probes do not crowd the slow clients off the CPU.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}

    let longest = Duration::from_millis(seen.longest_ms.load(Ordering::Relaxed));
    let closed = seen.closed_by_server.load(Ordering::Relaxed);
    eprintln!(
        "{n} rounds; worst submission {worst_sub:?}, worst DSN {worst_dsn:?}; {closed} slow \
         sessions closed by the server, the longest after {longest:?}; DATA: {data_end:?}"
    );
    assert!(n >= 3, "rounds {n}");
    assert!(worst_sub < WITHIN, "submission took {worst_sub:?}");
    assert!(worst_dsn < WITHIN, "DSN took {worst_dsn:?}");
    assert!(closed >= 40, "the slow sessions were ended: {closed}");
    // The greeting, a byte within GAP, then the line's deadline from that byte.
    let bound = GAP + COMMAND_TIMEOUT + Duration::from_secs(2);
    assert!(longest <= bound, "a slow session lived {longest:?}");
    // Each was told why (a 421 of its deadline, or of its eviction), unless its next byte
    // crossed the close and the reset took the reply with it (no words at all).
    let words = seen.last_words.lock().unwrap();
    let told = |code: &str| words.iter().filter(|w| w.starts_with(code)).count();
    let (timeouts, evicted) = (told("421 4.4.2"), told("421 4.7.0"));
    let silent = words.iter().filter(|w| w.is_empty()).count();
    eprintln!("last words: {timeouts} timeouts, {evicted} evictions, {silent} resets");
    assert_eq!(timeouts + evicted + silent, words.len(), "{words:?}");
    assert!(
        timeouts > words.len() / 2,
        "most slow sessions met their deadline"
    );
    let (at, said) = data_end.expect("the DATA trickle ended");
    assert!(said.contains("421 4.4.2"), "{said:?}");
    // Its deadline, seen at the next round (a submission and a DSN, then a byte).
    assert!(at < DATA_TIMEOUT + WITHIN * 2 + GAP * 2, "{at:?}");
}
