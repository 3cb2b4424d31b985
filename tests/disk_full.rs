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
    kbs: [usize; 3],
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
                    let kb = kbs[c];
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

/// A daemon whose `data_dir` is a fresh 64 MiB tmpfs, with `limits.min_free_space = floor`,
/// holding all mail in the queue (its relay refuses connections); `None` when mounting is not
/// permitted (a skip, or a failure under `HERALD_REQUIRE_TOOLS=1`). The daemon goes first when
/// the pair is dropped, then the mount.
fn on_tmpfs(floor: &str, extra: &str) -> Option<(Tmpfs, Daemon)> {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("data"), "64m")?;
    let (cert, key) = make_cert();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let config = dir.path().join("herald.toml");
    let extra = format!(
        "{extra}{}\n[limits]\nmin_free_space = \"{floor}\"\n",
        hold()
    );
    std::fs::write(&config, base_config(dir.path(), &extra)).unwrap();
    Some((tmpfs, Daemon::start_with(dir, config, cert)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_refuses_with_452_keeps_what_was_acknowledged_and_recovers_in_place() {
    // One client's bodies go to the spool, the others' stay in sled.
    fill_while_submitting("8MiB", [40, 2, 2]).await;
}

/// With the floor off nothing refuses before the disk is full: every write that fails (sled's
/// log) trips the refusal, and sled, poisoned by its ENOSPC, must be reopened in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_filled_past_the_floor_fails_writes_with_452_and_is_reopened_in_place() {
    let reopens = fill_while_submitting("0", [2, 2, 2]).await;
    assert!(reopens.is_none_or(|n| n >= 1.0), "reopens: {reopens:?}");
}

/// Three clients submit; the disk is filled to ENOSPC; refusals must be `452 4.3.1` and
/// `/healthz` 503; the file is deleted; a `250` must come within 10 s; nothing acknowledged
/// may be missing from the queue, before or after a restart. The reopens counted, or `None`
/// when the test was skipped.
async fn fill_while_submitting(floor: &str, kbs: [usize; 3]) -> Option<f64> {
    let (_tmpfs, mut d) = on_tmpfs(floor, "")?;
    assert_eq!(healthz(&d).await.0, 200);

    let (stop, seen) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Seen::default())),
    );
    let tasks = clients(&d, kbs, &stop, &seen);
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
    let reopens = metric(&m, "herald_storage_reopens_total").unwrap();
    eprintln!("reopens: {reopens}");

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
    eprintln!(
        "log: {} lines, {} errors",
        lines.lines().count(),
        lines.matches("ERROR").count()
    );

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
    Some(reopens)
}

/// Runs a future to completion from inside a poll's closure (the test's runtime has worker
/// threads to spare).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Below the floor but not full: the floor alone refuses (nothing fails, nothing is
/// reopened), sign-ups get 503 and admin commands that add data an error naming the
/// condition; deleting the file brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn below_the_floor_new_mail_sign_ups_and_admin_writes_are_refused_until_space_returns() {
    let extra = format!("{}{}", config::news_list(), config::UNSUBSCRIBE_BASE);
    let Some((_tmpfs, d)) = on_tmpfs("24MiB", &extra) else {
        return;
    };
    let mut c = d.alice().await;
    let r = c
        .send_mail("alice@example.org", &["held@remote.test"], &body(1, 2))
        .await;
    let before = queued_id(&r);
    // 64 MiB less the database and this: about 10 MiB stay free, under the 24 MiB floor.
    let filler = d.dir.path().join("data/filler");
    std::fs::write(&filler, vec![0u8; 52 << 20]).unwrap();
    let (_, reason) = poll::poll("/healthz 503", Duration::from_secs(10), || {
        let h = futures_block(healthz(&d));
        if h.0 == 503 { Ok(h) } else { Err(h) }
    })
    .await;
    assert!(reason.contains("free, floor 24 MiB"), "{reason}");
    let r = c.cmd("MAIL FROM:<alice@example.org>").await;
    assert!(r.has(452, "4.3.1"), "{r:?}");
    assert!(r.text().contains("Insufficient system storage"), "{r:?}");
    let r = c.cmd("RCPT TO:<held@remote.test>").await;
    assert_eq!(r.code, 503, "no transaction was started: {r:?}");
    let (status, page) = Http::connect(d.http)
        .await
        .request(
            "POST",
            "/subscribe/news",
            Some("application/x-www-form-urlencoded"),
            b"email=new%40example.net",
        )
        .await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("disk space"), "{page}");
    let out = d.cli(&["suppression", "add", "someone@remote.test"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("min_free_space"), "{}", text(&out));
    let m = scrape(&d).await;
    assert_eq!(metric(&m, "herald_storage_ok"), Some(0.0), "{m}");
    assert_eq!(
        metric(&m, "herald_storage_min_free_bytes"),
        Some(f64::from(24u32 << 20))
    );
    assert!(metric(&m, "herald_storage_free_bytes").is_some_and(|f| f < f64::from(24u32 << 20)));

    std::fs::remove_file(&filler).unwrap();
    poll::until("/healthz ok again", Duration::from_secs(10), || {
        futures_block(healthz(&d)).0 == 200
    })
    .await;
    let r = c
        .send_mail("alice@example.org", &["held@remote.test"], &body(2, 2))
        .await;
    let after = queued_id(&r);
    let m = scrape(&d).await;
    assert_eq!(metric(&m, "herald_storage_reopens_total"), Some(0.0), "{m}");
    let queue = queued(&d);
    assert!(
        queue.contains(&before) && queue.contains(&after),
        "{queue:?}"
    );
    assert!(
        d.cli(&["suppression", "add", "someone@remote.test"])
            .status
            .success()
    );
}
