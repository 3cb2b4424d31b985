//! Backup and restore end to end: `herald backup` taken from a daemon while clients keep
//! submitting, restored with `herald restore` into a fresh data_dir, started, compared with
//! what the original held (queue, lists and members, suppression, generated TLS pair and DKIM
//! key), and delivered to a working sink; and the refusals (non-empty directories, no
//! manifest, newer schema, no daemon).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::{Rule, Sink};
use common::*;

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(60);
const SUBMITTERS: usize = 3;
/// Connections, messages each, bytes per message of the bulk queued before the backup.
const BULK: (usize, usize, usize) = (4, 10, 256 * 1024);

/// The base config (data_dir `dir/data`) without its `[tls]` table, so the daemon generates a
/// pair in data_dir; trusting loopback clients, relaying to `relay`.
fn config(dir: &Path, relay: SocketAddr) -> String {
    let news = announce_list("news", "Example News", &["alice@example.org"]);
    let delivery = format!("[delivery]\nrelay = \"{relay}\"\nrate.default = \"6000/min\"\n{news}");
    base_config_top(dir, "trusted_networks = [\"127.0.0.0/8\"]", &delivery)
        .lines()
        .filter(|l| !(l.starts_with("[tls]") || l.starts_with("cert =") || l.starts_with("key =")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn start(dir: tempfile::TempDir, relay: SocketAddr) -> Daemon {
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, config(dir.path(), relay)).unwrap();
    Daemon::start_with(dir, path, String::new())
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(&d.cli(&all))).unwrap()
}

fn refused(out: &std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "wanted {needle:?} in {}", text(out));
}

fn body(subject: &str) -> String {
    format!(
        "From: <alice@example.org>\r\nTo: <list@remote.test>\r\nSubject: {subject}\r\n\r\nBackup test.\r\n"
    )
}

async fn submit(addr: SocketAddr, to: &[&str], subject: &str) -> String {
    let mut c = Client::connect(addr).await;
    c.ehlo().await;
    queued_id(&c.send_mail("alice@example.org", to, &body(subject)).await)
}

/// Runs a CLI command line (split at spaces) against `d` and requires success.
fn run(d: &Daemon, line: &str) -> String {
    ok(&d.cli(&line.split(' ').collect::<Vec<_>>()))
}

/// Members in every status, suppression in both scopes, direct mail and a list post.
async fn populate(d: &Daemon) {
    run(
        d,
        "list add news m1@a.test m2@a.test m3@a.test --consent fair",
    );
    run(d, "list remove news m3@a.test");
    run(d, "list invite news p1@a.test");
    run(d, "suppression add s1@a.test");
    run(d, "dkim keygen example.org");
    run(
        d,
        "suppression add s2@a.test --scope marketing --reason asked",
    );
    for i in 0..5 {
        let to = [format!("r{i}@b.test"), format!("q{i}@c.test")];
        submit(d.submission, &[&to[0], &to[1]], &format!("pre {i}")).await;
    }
    submit(d.submission, &["news@example.org"], "list post").await;
    // Bulk, so the snapshot's copy takes long enough for submissions to meet it.
    let mut bulk = Vec::new();
    for w in 0..BULK.0 {
        let addr = d.submission;
        bulk.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.ehlo().await;
            let mut text = body(&format!("bulk {w}"));
            for i in 0..BULK.2 / 80 {
                text.push_str(&format!("{i:06} {}\r\n", "y".repeat(72)));
            }
            for i in 0..BULK.1 {
                let to = format!("bulk{w}x{i}@f.test");
                queued_id(&c.send_mail("alice@example.org", &[&to], &text).await);
            }
        }));
    }
    for b in bulk {
        b.await.unwrap();
    }
}

/// Every queued delivery has been tried once (and deferred for minutes): the queue is still.
fn settled(d: &Daemon, messages: usize) -> bool {
    let q = d.queue();
    q.len() == messages
        && q.iter().all(|m| {
            let r = m["recipients"].as_array().unwrap();
            !r.is_empty() && r.iter().all(|d| d["attempts"].as_u64() >= Some(1))
        })
}

/// An acknowledged submission: its queue id, when its MAIL went out and when its `250` came.
#[derive(Clone)]
struct Ack {
    id: String,
    sent: Instant,
    acked: Instant,
}

type Acks = Mutex<Vec<Ack>>;

/// Submits two-recipient messages over one connection until `stop`; every one must be taken.
async fn submitter(
    addr: SocketAddr,
    n: usize,
    acks: Arc<Acks>,
    count: watch::Sender<usize>,
    stop: Arc<AtomicBool>,
) {
    let mut c = Client::connect(addr).await;
    c.ehlo().await;
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let to = [format!("w{n}m{i}@d.test"), format!("w{n}m{i}@e.test")];
        let text = body(&format!("load {n} {i}"));
        let sent = Instant::now();
        let r = c
            .send_mail("alice@example.org", &[&to[0], &to[1]], &text)
            .await;
        let (id, acked) = (queued_id(&r), Instant::now());
        acks.lock().unwrap().push(Ack { id, sent, acked });
        count.send_modify(|k| *k += 1);
    }
}

fn by_id(queue: &[Value]) -> HashMap<String, Value> {
    queue
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m.clone()))
        .collect()
}

/// The DKIM key files `herald dkim keygen` wrote into data_dir, by name.
fn dkim_keys(data: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut keys: Vec<_> = std::fs::read_dir(data.join("dkim"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
        .collect();
    keys.sort();
    keys
}

/// Runs `herald ARGS --config CONFIG`.
fn herald(args: &[&str], config: &Path) -> std::process::Output {
    herald_command()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// What the original held before the load began (its queue stands still: all deferred).
struct Before {
    queue: Vec<Value>,
    members: Value,
    suppressed: Value,
}

/// Acknowledged submissions, and when the `herald backup` that counts started and returned.
struct Load {
    acked: Vec<Ack>,
    t0: Instant,
    t1: Instant,
}

/// How many writes the daemon's `attempt`th (1-based) backup log line says waited on the
/// store's write gate while the snapshot held it.
fn writers_waited(d: &Daemon, attempt: usize) -> u64 {
    let log = d.stderr();
    let line = log
        .lines()
        .filter(|l| l.contains("backup written"))
        .nth(attempt - 1)
        .unwrap_or_else(|| panic!("no log line for backup {attempt}:\n{log}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("writers_waited="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no writers_waited in {line:?}"))
}

/// Submitters run before, during and after `herald backup`. A backup counts when its log line
/// says a write waited on the store's write gate, which is the observation that the load met
/// the snapshot; backups are taken into fresh directories under `dir` until one does (a busy
/// machine can starve the submitters through a whole backup). Returns that backup.
async fn backup_under_load(d: &Daemon, dir: &Path) -> (PathBuf, Load) {
    let (acks, stop) = (Arc::new(Acks::default()), Arc::new(AtomicBool::new(false)));
    let (count_tx, mut count) = watch::channel(0usize);
    let mut tasks = Vec::new();
    for n in 0..SUBMITTERS {
        let (acks, tx, stop) = (acks.clone(), count_tx.clone(), stop.clone());
        tasks.push(tokio::spawn(submitter(d.submission, n, acks, tx, stop)));
    }
    count.wait_for(|&k| k >= 30).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    let (backup, t0, t1, waited) = loop {
        attempt += 1;
        let backup = dir.join(format!("herald-backup-{attempt}"));
        let (arg, config) = (backup.display().to_string(), d.config_path.clone());
        let t0 = Instant::now();
        let out = tokio::task::spawn_blocking(move || herald(&["backup", &arg], &config))
            .await
            .unwrap();
        let t1 = Instant::now();
        assert!(ok(&out).contains("backup written to"), "{}", text(&out));
        let waited = writers_waited(d, attempt);
        if waited >= 1 {
            break (backup, t0, t1, waited);
        }
        eprintln!(
            "backup {attempt} took {:?} and held off no writer; again",
            t1 - t0
        );
        assert!(
            Instant::now() < deadline,
            "no write waited on the gate during any of {attempt} backups under load"
        );
    };
    let reached = *count.borrow();
    count.wait_for(|&k| k >= reached + 30).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acks.lock().unwrap().clone();
    let during = acked
        .iter()
        .filter(|a| a.acked > t0 && a.acked < t1)
        .count();
    eprintln!(
        "backup {attempt} took {:?} under load; {waited} writes waited on the gate; {} \
         messages acknowledged in all, {during} while it ran",
        t1 - t0,
        acked.len()
    );
    (backup, Load { acked, t0, t1 })
}

/// The restored daemon holds what the original held: the same lists and suppression, every
/// message queued before the load unchanged, every message acknowledged before the backup
/// began, none sent after it ended (a `250` can trail its write, so a late acknowledgement
/// alone says nothing), and each message whole (recipients and body).
fn check_restored(d: &Daemon, before: &Before, load: &Load) -> HashMap<String, Value> {
    assert_eq!(json(d, &["list", "members", "news"]), before.members);
    assert_eq!(json(d, &["suppression", "ls"]), before.suppressed);
    let queue = by_id(&d.queue());
    for m in &before.queue {
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            queue.get(id),
            Some(m),
            "message {id} as it was before the backup"
        );
    }
    let (mut before_t0, mut after_t1) = (0, 0);
    for Ack { id, sent, acked } in &load.acked {
        if *acked < load.t0 {
            before_t0 += 1;
            assert!(
                queue.contains_key(id),
                "{id} was acknowledged before the backup began"
            );
        } else if *sent > load.t1 {
            after_t1 += 1;
            assert!(
                !queue.contains_key(id),
                "{id} was sent after the backup ended"
            );
        }
    }
    assert!(
        before_t0 >= 1 && after_t1 >= 1,
        "{before_t0} before, {after_t1} after"
    );
    let acked: HashSet<&String> = load.acked.iter().map(|a| &a.id).collect();
    let old: HashSet<&str> = before
        .queue
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for (id, m) in &queue {
        assert!(
            acked.contains(id) || old.contains(id.as_str()),
            "unknown {id}"
        );
        let rcpts = m["recipients"].as_array().unwrap();
        assert!(!rcpts.is_empty(), "{m}");
        if acked.contains(id) {
            assert_eq!(rcpts.len(), 2, "{m}");
        }
        let show = json(d, &["queue", "show", id]);
        assert_eq!(
            show["recipients"].as_array().map(Vec::len),
            Some(rcpts.len())
        );
        assert!(
            show["body"].as_str().unwrap().contains("Subject: "),
            "{show}"
        );
    }
    queue
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_everything_and_delivers() {
    // The original: its relay defers every recipient, so mail stays queued.
    let held = Sink::start("127.0.0.1:0").await;
    held.set_rules(vec![Rule::DeferRcpt {
        needle: "@".into(),
        reply: "450 4.2.1 mailbox busy".into(),
        times: usize::MAX,
    }]);
    let original = start(tempfile::tempdir().unwrap(), held.addr);
    populate(&original).await;
    // 5 direct messages, the list post, the invitation, the bulk.
    let total = 7 + BULK.0 * BULK.1;
    until("the queue to settle", WAIT, || settled(&original, total)).await;
    let before = Before {
        queue: original.queue(),
        members: json(&original, &["list", "members", "news"]),
        suppressed: json(&original, &["suppression", "ls"]),
    };
    assert_eq!(before.members.as_array().unwrap().len(), 4);
    let dest = tempfile::tempdir().unwrap();
    let (backup, load) = backup_under_load(&original, dest.path()).await;
    let manifest = std::fs::read(backup.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["schema_version"], 1);
    let generated = std::fs::read(original.dir.path().join("data/tls-key.pem")).unwrap();
    let keys = dkim_keys(&original.dir.path().join("data"));
    assert_eq!(keys.len(), 1);
    drop(original);

    // Restore into a fresh data_dir; its daemon first relays nowhere, so nothing leaves yet.
    let dir2 = tempfile::tempdir().unwrap();
    let (data2, path2) = (dir2.path().join("data"), dir2.path().join("herald.toml"));
    std::fs::write(&path2, config(dir2.path(), closed_port())).unwrap();
    let b = backup.display().to_string();
    assert!(ok(&herald(&["restore", &b], &path2)).contains("restored"));
    refused(&herald(&["restore", &b], &path2), "is not empty");
    assert_eq!(std::fs::read(data2.join("tls-key.pem")).unwrap(), generated);
    assert_eq!(dkim_keys(&data2), keys);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data2.join("tls-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key stays private: {mode:o}");
    let mut restored = Daemon::start_with(dir2, path2.clone(), String::new());
    let queue = check_restored(&restored, &before, &load);

    // Then with a working relay: everything queued is delivered.
    let good = Sink::start("127.0.0.1:0").await;
    std::fs::write(&path2, config(restored.dir.path(), good.addr)).unwrap();
    restored.terminate(WAIT);
    restored.restart();
    ok(&restored.cli(&["queue", "retry", "--all"]));
    let expected: usize = queue
        .values()
        .map(|m| m["recipients"].as_array().unwrap().len())
        .sum();
    let got = good
        .wait_for(WAIT, "every restored delivery", |r| {
            r.iter().map(|m| m.rcpts.len()).sum::<usize>() >= expected
        })
        .await;
    let copies: Vec<_> = got
        .iter()
        .filter(|r| r.data.contains("Subject: list post"))
        .collect();
    assert_eq!(copies.len(), 2, "one copy per confirmed member");
    assert!(
        copies
            .iter()
            .all(|c| c.header("List-Unsubscribe").is_some())
    );
    restored.wait_queue_empty(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear() {
    let d = Daemon::start(&hold());
    let scratch = tempfile::tempdir().unwrap();
    let s = |p: &str| scratch.path().join(p).display().to_string();

    // Backup into a non-empty directory, or onto a file.
    std::fs::create_dir(s("full")).unwrap();
    std::fs::write(scratch.path().join("full/x"), "x").unwrap();
    refused(&d.cli(&["backup", &s("full")]), "is not empty");
    std::fs::write(s("file"), "x").unwrap();
    refused(&d.cli(&["backup", &s("file")]), "is not empty");

    // A good backup, then restores that must be refused.
    ok(&d.cli(&["backup", &s("good")]));
    refused(&d.cli(&["restore", &s("good")]), "is not empty");
    let other = format!("data_dir = \"{}\"\n", s("fresh"));
    std::fs::write(s("other.toml"), other).unwrap();
    let other = scratch.path().join("other.toml");
    let cli = |args: &[&str]| herald(args, &other);
    std::fs::create_dir(s("empty")).unwrap();
    refused(&cli(&["restore", &s("empty")]), "no manifest.json");
    refused(&cli(&["restore", &s("absent")]), "no manifest.json");
    let newer = scratch.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(scratch.path().join("good/manifest.json")).unwrap())
            .unwrap();
    manifest["schema_version"] = 99.into();
    std::fs::write(newer.join("manifest.json"), manifest.to_string()).unwrap();
    refused(&cli(&["restore", &s("newer")]), "schema 99");
    assert!(
        !scratch.path().join("fresh").exists(),
        "refused restores write nothing"
    );

    // No daemon on that data_dir.
    refused(&cli(&["backup", &s("nodaemon")]), "daemon is not running");
    ok(&cli(&["restore", &s("good")]));
}
