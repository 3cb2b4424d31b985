//! Crash safety (DESIGN §4 invariant: `250` after DATA only once the message is on disk):
//! kill -9 the daemon while many clients submit concurrently, restart on the same data
//! directory, and require every acknowledged message — from every round so far — to be there,
//! with its recipient and content.
//!
//! Every seventh message is large enough for the body spool, the rest are stored inline.
//! Most rounds use `trusted_networks` (no TLS, no AUTH: volume); every fourth round
//! authenticates over STARTTLS and implicit TLS instead. `HERALD_TEST_SEED` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, watch};

const ROUNDS: usize = 24;
const SUBMITTERS: usize = 16;
/// Safety cap per connection and round; the kill always comes well before it.
const PER_CONNECTION_CAP: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Trusted,
    StartTls,
    ImplicitTls,
}

/// One acknowledged message: what we must find after the crash.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    recipient: String,
    subject: String,
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Replies that were neither success nor a dead connection.
    errors: Mutex<Vec<String>>,
}

fn body(subject: &str, recipient: &str, big: bool) -> String {
    let mut b = format!(
        "From: <alice@example.org>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n\r\nDurability test.\r\n"
    );
    if big {
        // About 20 KB: over the 16 KiB up to which bodies stay in sled, so these go through
        // the body spool.
        for i in 0..250 {
            b.push_str(&format!("{i:04} {}\r\n", "x".repeat(75)));
        }
    }
    b.push_str(".\r\n");
    b
}

/// One submitter: sets up its connection, waits at the barrier, then sends until the
/// connection dies (the kill) or the cap is reached. Never panics on a dead connection.
#[allow(clippy::too_many_arguments)]
async fn submitter(
    addr: SocketAddr,
    mode: Mode,
    cert: Arc<String>,
    round: usize,
    worker: usize,
    shared: Arc<Shared>,
    count: watch::Sender<usize>,
    barrier: Arc<Barrier>,
) {
    let mut c = match mode {
        Mode::ImplicitTls => Client::connect_tls(addr, &cert).await,
        _ => Client::connect(addr).await,
    };
    c.timeout = Duration::from_secs(10);
    c.ehlo().await;
    if mode == Mode::StartTls {
        c.starttls(&cert).await;
        c.ehlo().await;
    }
    if mode != Mode::Trusted {
        let r = c.auth_plain(ALICE, ALICE_PASSWORD).await;
        assert_eq!(r.code, 235, "{r:?}");
    }
    barrier.wait().await;

    for i in 0..PER_CONNECTION_CAP {
        let recipient = format!("r{round}w{worker}m{i}@d{worker}.remote.test");
        let subject = format!("durability r{round} w{worker} m{i}");
        let envelope =
            format!("MAIL FROM:<alice@example.org>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n");
        if !c.try_send_raw(envelope.as_bytes()).await {
            return;
        }
        for want in [250, 250, 354] {
            match c.try_read_reply().await {
                None => return,
                Some(r) if r.code == want => {}
                Some(r) => {
                    shared
                        .errors
                        .lock()
                        .unwrap()
                        .push(format!("{mode:?} w{worker} m{i}: {r:?}"));
                    return;
                }
            }
        }
        if !c
            .try_send_raw(body(&subject, &recipient, i % 7 == 3).as_bytes())
            .await
        {
            return;
        }
        match c.try_read_reply().await {
            None => return,
            Some(r) if r.has(250, "2.0.0") && r.text().contains("queued as ") => {
                let id = r.text().rsplit(' ').next().unwrap().to_string();
                shared.acks.lock().unwrap().push(Ack {
                    id,
                    recipient,
                    subject,
                });
                count.send_modify(|n| *n += 1);
            }
            Some(r) => {
                shared
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("{mode:?} w{worker} m{i} end of DATA: {r:?}"));
                return;
            }
        }
    }
}

/// Checks that every acknowledged message is in the queue with its recipient.
fn verify(d: &Daemon, acked: &[Ack], rng: &mut StdRng, round: usize) -> usize {
    let q = d.queue();
    let mut by_id: HashMap<&str, &serde_json::Value> = HashMap::new();
    for m in &q {
        let id = m["id"].as_str().unwrap();
        assert!(by_id.insert(id, m).is_none(), "id {id} listed twice");
    }
    let mut missing = Vec::new();
    for a in acked {
        match by_id.get(a.id.as_str()) {
            None => missing.push(a.clone()),
            Some(m) => {
                let rcpts = m["recipients"].as_array().unwrap();
                assert!(
                    rcpts.len() == 1 && rcpts[0]["address"] == a.recipient.as_str(),
                    "after round {round}: message {} has the wrong deliveries {m} (want {})",
                    a.id,
                    a.recipient
                );
                assert_eq!(m["sender"], "alice@example.org", "{m}");
            }
        }
    }
    assert!(
        missing.is_empty(),
        "after round {round}: {} of {} acknowledged messages lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // The content, not just the envelope, survived: look at a few bodies.
    for _ in 0..2.min(acked.len()) {
        let a = &acked[rng.gen_range(0..acked.len())];
        let out = d.cli(&["queue", "show", &a.id]);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && shown.contains(&format!("Subject: {}\r\n", a.subject)),
            "after round {round}: body of {} ({}): {shown}",
            a.id,
            a.subject
        );
    }
    q.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_concurrent_submission_loses_no_acknowledged_message() {
    let started = Instant::now();
    let seed = std::env::var("HERALD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("durability: HERALD_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // Deliveries go to a closed port: they are deferred and the messages stay queued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = closed.local_addr().unwrap();
    drop(closed);
    let mut d = Daemon::start_top(
        r#"trusted_networks = ["127.0.0.0/8"]"#,
        &format!("[delivery]\nrelay = \"{relay}\"\n"),
    );
    let cert = Arc::new(d.cert_pem.clone());

    let mut acked: Vec<Ack> = Vec::new();
    let mut auth_acks = 0;
    let mut stored = 0;
    for round in 0..ROUNDS {
        let mut restart_time = Duration::ZERO;
        let mut verify_time = Duration::ZERO;
        if round > 0 {
            let t = Instant::now();
            d.restart();
            restart_time = t.elapsed();
            let t = Instant::now();
            stored = verify(&d, &acked, &mut rng, round - 1);
            verify_time = t.elapsed();
        }
        let authenticated = round % 4 == 1;
        let kill_after = if authenticated {
            rng.gen_range(1..=120)
        } else {
            rng.gen_range(1..=300)
        };

        let shared = Arc::new(Shared::default());
        let (count, mut seen) = watch::channel(0usize);
        let barrier = Arc::new(Barrier::new(SUBMITTERS + 1));
        let mut tasks = Vec::new();
        for worker in 0..SUBMITTERS {
            let (mode, addr) = match (authenticated, worker % 2) {
                (false, _) => (Mode::Trusted, d.submission),
                (true, 0) => (Mode::StartTls, d.submission),
                (true, _) => (Mode::ImplicitTls, d.submissions),
            };
            tasks.push(tokio::spawn(submitter(
                addr,
                mode,
                cert.clone(),
                round,
                worker,
                shared.clone(),
                count.clone(),
                barrier.clone(),
            )));
        }
        tokio::time::timeout(Duration::from_secs(60), barrier.wait())
            .await
            .expect("submitters set up");
        let go = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|n| *n >= kill_after))
            .await
            .expect("acknowledgements before the kill")
            .unwrap();
        d.kill9();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("submitter ends once the daemon is gone")
                .expect("submitter did not panic");
        }
        let errors = shared.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "round {round}: unexpected replies {errors:?}"
        );
        let new = std::mem::take(&mut *shared.acks.lock().unwrap());
        eprintln!(
            "round {round:2} {}: kill after {kill_after:3} acks, {:4} acknowledged in {:?} \
             (restart {restart_time:?}, verify {verify_time:?})",
            if authenticated {
                "AUTH/TLS"
            } else {
                "trusted "
            },
            new.len(),
            go.elapsed()
        );
        if authenticated {
            auth_acks += new.len();
        }
        acked.extend(new);
    }
    d.restart();
    let stored_at_end = verify(&d, &acked, &mut rng, ROUNDS - 1);
    assert!(stored_at_end >= stored);

    let ids: HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        acked.len(),
        "queue ids are unique across restarts"
    );
    eprintln!(
        "durability: {ROUNDS} kill -9 rounds, {} acknowledged ({auth_acks} over AUTH/TLS), \
         {stored_at_end} stored, none lost, in {:?}",
        acked.len(),
        started.elapsed()
    );
}
