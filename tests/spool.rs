//! The body spool through the daemon: a large message's body lives in `db/spool/`; if it is
//! damaged on disk while queued, the delivery fails at once with `5.3.0` and a DSN to the
//! sender, and the damaged content is never sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::{Rule, Sink};
use common::*;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A message of about 20 KB: over the 16 KiB up to which bodies stay in sled.
fn large(subject: &str) -> String {
    let mut body = message("alice@example.org", "damaged@remote.test", subject);
    for line in 0..250 {
        body.push_str(&format!("{line:04} {}\r\n", "z".repeat(75)));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spooled_body_fails_with_a_dsn_and_is_not_sent() {
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![Rule::RefuseAll {
        reply: "451 4.3.0 not yet".into(),
    }]);
    let d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &format!("[delivery]\nrelay = \"{}\"\nretry = [\"1h\"]\n", sink.addr),
    );
    let mut c = d.alice().await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["damaged@remote.test"],
            &large("spooled and damaged"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    // The first attempt is deferred (and the next one is an hour away). Wait for the deferral
    // to be recorded, not only for the sink's refusal: `queue retry` passes over a delivery
    // still in flight, which would then wait out its hour.
    d.wait_queue(WAIT, |q| {
        !q.is_empty()
            && q.iter()
                .all(|m| m["recipients"][0]["attempts"].as_u64() >= Some(1))
    })
    .await;
    assert!(sink.refused_mails() > 0);

    // Damage the body where it lies: the only spooled body, at the start of a segment.
    let spool = d.dir.path().join("data/db/spool");
    let segments: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .unwrap();
    file.write_all_at(b"#", 5000).unwrap();
    file.sync_all().unwrap();

    sink.set_rules(vec![]);
    let out = d.cli(&["queue", "retry", "--all"]);
    assert!(out.status.success(), "{out:?}");
    let (_, got) = sink.wait_dsn(WAIT, "5.3.0", "alice@example.org").await;
    assert!(
        got.iter()
            .all(|m| !m.rcpts.contains(&"damaged@remote.test".to_string())),
        "the damaged content was sent"
    );
    d.wait_queue_empty(WAIT).await;
    // The damage is Herald's own fault: it failed the recipient and counted no bounce.
    let out = d.cli(&["--json", "stats"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = [&s["failed"], &s["bounced"]["hard"], &s["bounced"]["soft"]];
    assert_eq!(
        counts.map(|c| c.as_u64()),
        [Some(1), Some(0), Some(0)],
        "{s}"
    );
    // A damaged body is reported, and the daemon goes on: a small message still flows.
    let r = c
        .send_mail(
            "alice@example.org",
            &["fine@remote.test"],
            &message("alice@example.org", "fine@remote.test", "after"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    sink.wait_for(WAIT, "the next message", |r| {
        r.iter().any(|m| m.rcpts == ["fine@remote.test"])
    })
    .await;
}
