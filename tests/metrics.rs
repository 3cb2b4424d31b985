//! `/metrics` and `herald stats` end to end: after real submissions, refusals, deliveries and a
//! bounce through a real sink, the Prometheus text parses with Python's prometheus_client, its
//! counters match what the test did, no label carries an address, and the daemon's logs name
//! no recipient in full (default `privacy.log_addresses = false`). Without a python3 that
//! imports prometheus_client it skips, or fails naming it under `HERALD_REQUIRE_TOOLS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::http::curl;
use common::sink::{Rule, Sink};
use common::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const FROM: &str = "alice@example.org";
const DELIVERED: [&str; 3] = ["rcpt1@remote.test", "rcpt2@remote.test", "rcpt3@other.test"];
const UNKNOWN: &str = "nobody@remote.test";

/// Parses Prometheus text with prometheus_client; `name{k="v",…}` (labels sorted) → value.
fn parse(python: &str, text: &str) -> BTreeMap<String, f64> {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for fam in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in fam.samples:\n\
        \x20       out.append([s.name, s.labels, s.value])\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics (is python3-prometheus-client installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|(name, labels, value)| {
            for v in labels.values() {
                assert!(!v.contains('@'), "an address in a label: {name} {labels:?}");
            }
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let key = if labels.is_empty() {
                name
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            (key, value)
        })
        .collect()
}

fn scrape(python: &str, d: &Daemon) -> BTreeMap<String, f64> {
    let (status, body) = curl(&[&format!("http://{}/metrics", d.http)]);
    assert_eq!(status, 200, "{body}");
    parse(python, &body)
}

/// Scrapes until `done` holds (the counters move right after the sink's 250), or fails.
async fn scrape_until(
    python: &str,
    d: &Daemon,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    poll(what, WAIT, || {
        let m = scrape(python, d);
        if done(&m) { Ok(m) } else { Err(m) }
    })
    .await
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {m:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_name_no_address() {
    let Some(python) = tools::python_with("prometheus_client", "python3-prometheus-client") else {
        return;
    };
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![Rule::RejectRcpt {
        needle: "nobody@".into(),
        reply: "550 5.1.1 <nobody@remote.test>: user unknown".into(),
    }]);
    let d = Daemon::start(&format!(
        "[delivery]\nrelay = \"{}\"\n[delivery.rate]\n\"slow.test\" = \"60/min\"\n\
         [[policy.deny]]\npattern = \"(?i)casino\"\nreason = \"No gambling\"\n",
        sink.addr
    ));
    let mut c = d.alice().await;
    for to in DELIVERED.iter().chain([&UNKNOWN]) {
        let r = c
            .send_mail(FROM, &[to], &message(FROM, to, "metrics"))
            .await;
        assert!(r.has(250, "2.0.0"), "{r:?}");
    }
    let r = c
        .send_mail(
            FROM,
            &[DELIVERED[0]],
            &message(FROM, DELIVERED[0], "Casino"),
        )
        .await;
    assert!(r.has(550, "5.7.1"), "{r:?}");
    let r = c.cmd("MAIL FROM:<mallory@evil.test>").await;
    assert!(r.has(553, "5.7.1"), "{r:?}");
    // Port 25 relays for nobody.
    let mut inbound = Client::connect(d.inbound).await;
    inbound.ehlo().await;
    inbound.cmd("MAIL FROM:<someone@remote.test>").await;
    let r = inbound.cmd(&format!("RCPT TO:<{}>", DELIVERED[1])).await;
    assert!(r.has(550, "5.7.1"), "{r:?}");
    // A wrong password.
    let mut wrong = Client::connect(d.submission).await;
    wrong.ehlo().await;
    wrong.starttls(&d.cert_pem).await;
    wrong.ehlo().await;
    assert_eq!(wrong.auth_plain(ALICE, "wrong").await.code, 535);

    // Three deliveries, and the DSN for the unknown user back to alice.
    let m = scrape_until(&python, &d, "deliveries recorded", |m| {
        m.get("herald_deliveries_total{result=\"delivered\"}") == Some(&4.0)
            && m.get("herald_queue_messages") == Some(&0.0)
    })
    .await;
    for (key, want) in [
        ("herald_accepted_total{role=\"submission\"}", 4.0),
        ("herald_accepted_total{role=\"inbound\"}", 0.0),
        ("herald_rejected_total{reason=\"policy\"}", 1.0),
        ("herald_rejected_total{reason=\"sender\"}", 1.0),
        ("herald_rejected_total{reason=\"relay\"}", 1.0),
        ("herald_rejected_total{reason=\"auth\"}", 1.0),
        ("herald_rejected_total{reason=\"size\"}", 0.0),
        ("herald_deliveries_total{result=\"failed\"}", 1.0),
        ("herald_deliveries_total{result=\"deferred\"}", 0.0),
        ("herald_bounces_total{class=\"hard\"}", 1.0),
        ("herald_bounces_total{class=\"soft\"}", 0.0),
        ("herald_complaints_total", 0.0),
        ("herald_unsubscribes_total{channel=\"http\"}", 0.0),
        ("herald_queue_deliveries", 0.0),
        ("herald_queue_oldest_seconds", 0.0),
        ("herald_domain_rate_per_minute{domain=\"slow.test\"}", 60.0),
        ("herald_domain_slowdown{domain=\"slow.test\"}", 0.0),
    ] {
        assert_eq!(get(&m, key), want, "{key}");
    }
    assert!(get(&m, "herald_uptime_seconds") >= 0.0);
    let dsn = sink
        .wait_for(WAIT, "the DSN", |r| {
            r.iter().any(|m| m.rcpts.iter().any(|t| t == FROM))
        })
        .await;
    assert_eq!(dsn.len(), 4);

    // herald stats: the same snapshot.
    let out = d.cli(&["--json", "stats"]);
    assert!(out.status.success(), "{}", text(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["accepted"]["submission"], 4);
    assert_eq!(s["delivered"], 4);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["bounced"]["hard"], 1);
    assert_eq!(s["rejected"]["policy"], 1);
    assert_eq!(s["queue"]["messages"], 0);
    assert_eq!(s["domains"][0]["domain"], "slow.test");
    let out = d.cli(&["stats"]);
    let human = text(&out);
    assert!(out.status.success(), "{human}");
    assert!(
        human.contains("accepted      4 submitted, 0 inbound"),
        "{human}"
    );
    assert!(
        human.contains("deliveries    4 delivered, 0 deferred, 1 failed"),
        "{human}"
    );

    // The logs, with default settings, name no recipient in full.
    let mut logs = d.stderr();
    logs.push_str(&d.stdout.lines().join("\n"));
    assert!(
        logs.contains("delivery attempt"),
        "the log has delivery lines"
    );
    for address in DELIVERED.iter().chain([&UNKNOWN]) {
        assert!(!logs.contains(address), "{address} in the log:\n{logs}");
    }
}
