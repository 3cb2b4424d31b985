//! A full disk, for real: `data_dir` is a 64 MiB tmpfs, filled by a file while three clients
//! submit. New mail must get `452 4.3.1` (never a `250` for a message that is then lost),
//! `/healthz` must answer 503, and once the file is deleted submissions must succeed again
//! within 10 s without a restart; every acknowledged message must still be queued, also after
//! a restart. Mounting needs root (the CI runs as root); without it the test skips, and with
//! `HERALD_REQUIRE_TOOLS=1` fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::config::{base_config, hold};
use common::http::Http;
use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted (and its mount point removed) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = command("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                tools::missing(
                    "a tmpfs mount",
                    &format!("mount -t tmpfs failed (needs root): {}", text(&o)),
                );
                None
            }
            Err(e) => {
                tools::missing("mount", &format!("cannot run mount (util-linux): {e}"));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = command("umount").arg("-l").arg(&self.0).output();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What the clients saw: every queue id acknowledged, and every other final reply.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<String>,
    refused: Vec<String>,
    /// When a `250` last came.
    last_ack: Option<Instant>,
}

/// A body of `kb` KiB (over 16 KiB goes to the body spool, under stays in sled).
fn body(n: usize, kb: usize) -> String {
    let mut b = message(
        "alice@example.org",
        "held@remote.test",
        &format!("fill {n}"),
    );
    for line in 0..kb * 1024 / 80 {
        b.push_str(&format!("{line:04} {}\r\n", "f".repeat(74)));
    }
    b
}

/// Three clients submitting in a loop until `stop`.
fn clients(
    d: &Daemon,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..3)
        .map(|c| {
            let (addr, cert) = (d.submission, d.cert_pem.clone());
            let (stop, seen) = (stop.clone(), seen.clone());
            tokio::spawn(async move {
                let mut client = alice_at(addr, &cert).await;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let kb = if c == 0 { 40 } else { 2 };
                    let r = client
                        .send_mail(
                            "alice@example.org",
                            &["held@remote.test"],
                            &body(n * 10 + c, kb),
                        )
                        .await;
                    let refused = {
                        let mut s = seen.lock().unwrap();
                        if r.code == 250 {
                            s.acked.insert(queued_id(&r));
                            s.last_ack = Some(Instant::now());
                            false
                        } else {
                            s.refused
                                .push(format!("{} {} {}", r.code, r.status(), r.text()));
                            true
                        }
                    };
                    if refused {
                        // Not a busy loop against a full disk.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

async fn alice_at(addr: std::net::SocketAddr, cert: &str) -> client::Client {
    let mut c = client::Client::connect(addr).await;
    c.ehlo().await;
    c.starttls(cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_plain(ALICE, ALICE_PASSWORD).await.code, 235);
    c
}

async fn healthz(d: &Daemon) -> (u16, String) {
    Http::connect(d.http)
        .await
        .request("GET", "/healthz", None, b"")
        .await
}

/// Writes `path` in 256 KiB pieces until the file system is full (ENOSPC); its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 256 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    written
}

fn libc_enospc() -> i32 {
    28
}

fn queued(d: &Daemon) -> BTreeSet<String> {
    d.queue()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(d: &Daemon) -> String {
    let (status, body) = Http::connect(d.http)
        .await
        .request("GET", "/metrics", None, b"")
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_refuses_with_452_keeps_what_was_acknowledged_and_recovers_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("data"), "64m") else {
        return;
    };
    let (cert, key) = make_cert();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let config = dir.path().join("herald.toml");
    let extra = format!("{}\n[limits]\nmin_free_space = \"8MiB\"\n", hold());
    std::fs::write(&config, base_config(dir.path(), &extra)).unwrap();
    let mut d = Daemon::start_with(dir, config, cert);
    assert_eq!(healthz(&d).await.0, 200);

    let (stop, seen) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Seen::default())),
    );
    let tasks = clients(&d, &stop, &seen);
    poll::until("a few acknowledged", Duration::from_secs(20), || {
        seen.lock().unwrap().acked.len() >= 10
    })
    .await;

    // Fill the disk completely while the clients go on: faster than the monitor's second,
    // so writes hit ENOSPC past the floor, not only the floor.
    let filler = d.dir.path().join("data/filler");
    let filled = fill(&filler);
    let full_at = Instant::now();
    eprintln!("filler: {} MiB", filled >> 20);
    let (status, reason) = poll::poll("/healthz 503", Duration::from_secs(10), || {
        let h = futures_block(healthz(&d));
        if h.0 == 503 { Ok(h) } else { Err(h) }
    })
    .await;
    assert!(reason.contains("insufficient storage"), "{status} {reason}");
    poll::until("452 4.3.1 replies", Duration::from_secs(10), || {
        seen.lock().unwrap().refused.len() >= 6
    })
    .await;
    let m = scrape(&d).await;
    assert_eq!(metric(&m, "herald_storage_ok"), Some(0.0), "{m}");
    // Hold the disk full a little longer while the clients keep trying.
    poll::until("two more seconds full", Duration::from_secs(5), || {
        full_at.elapsed() > Duration::from_secs(2)
    })
    .await;
    let acked_while_full = seen.lock().unwrap().acked.len();

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    poll::until(
        "a 250 after the space came back",
        Duration::from_secs(10),
        || seen.lock().unwrap().last_ack.is_some_and(|t| t > freed),
    )
    .await;
    let recovered_in = freed.elapsed();
    eprintln!("recovered in {recovered_in:?}");
    poll::until("/healthz ok again", Duration::from_secs(10), || {
        futures_block(healthz(&d)).0 == 200
    })
    .await;
    poll::until("more acknowledged after", Duration::from_secs(10), || {
        seen.lock().unwrap().acked.len() >= acked_while_full + 5
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let m = scrape(&d).await;
    assert_eq!(metric(&m, "herald_storage_ok"), Some(1.0), "{m}");
    eprintln!("reopens: {:?}", metric(&m, "herald_storage_reopens_total"));

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!(
        "acknowledged {}, refused {}",
        seen.acked.len(),
        seen.refused.len()
    );
    for r in &seen.refused {
        assert!(
            r.starts_with("452 4.3.1"),
            "every refusal is 452 4.3.1: {r}"
        );
    }
    let lines = d.stderr();
    assert_eq!(
        lines.matches("refusing new mail: storage").count(),
        1,
        "one warning per transition: {lines}"
    );
    assert!(
        lines.contains("storage recovered: accepting new mail"),
        "{lines}"
    );
    assert!(!lines.contains("panicked"), "{lines}");

    let queue = queued(&d);
    let lost: Vec<_> = seen.acked.difference(&queue).collect();
    assert!(lost.is_empty(), "acknowledged but not queued: {lost:?}");
    d.restart();
    let queue = queued(&d);
    let lost: Vec<_> = seen.acked.difference(&queue).collect();
    assert!(
        lost.is_empty(),
        "acknowledged, lost across a restart: {lost:?}"
    );
    let mut c = d.alice().await;
    let r = c
        .send_mail("alice@example.org", &["held@remote.test"], &body(1, 2))
        .await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// Runs a future to completion from inside a poll's closure (the test's runtime has worker
/// threads to spare).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
