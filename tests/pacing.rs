//! Per-domain pacing: a domain's quota holds at the sink while other domains flow at full speed,
//! and a throttling sink makes Herald slow down for that domain, then recover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::{Rule, Sink};
use common::*;
use std::time::{Duration, Instant};

/// Submits `n` messages to `rcpt(i)` over one trusted plain connection.
async fn send_many(d: &Daemon, n: usize, rcpt: impl Fn(usize) -> String) {
    let mut c = Client::connect(d.submission).await;
    c.ehlo().await;
    for i in 0..n {
        let to = rcpt(i);
        let r = c
            .send_mail(
                "app@example.net",
                &[&to],
                &message("app@example.net", &to, &format!("m{i}")),
            )
            .await;
        assert!(r.has(250, "2.0.0"), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_domain_keeps_its_quota_while_others_flow() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &format!(
            "[delivery]\nrelay = \"{}\"\nburst = 1\n[delivery.rate]\ndefault = \"100000/min\"\n\"slow.test\" = \"120/min\"\n",
            sink.addr
        ),
    );
    let slow = 21;
    let fast = 100;
    let t0 = Instant::now();
    send_many(&d, slow, |i| format!("s{i}@slow.test")).await;
    send_many(&d, fast, |i| format!("f{i}@fast{}.test", i % 5)).await;
    let fast_submitted = Instant::now();
    let got = sink.wait_count(slow + fast, Duration::from_secs(60)).await;
    let mut slow_times: Vec<Instant> = got
        .iter()
        .filter(|m| m.rcpts[0].ends_with("@slow.test"))
        .map(|m| m.at)
        .collect();
    slow_times.sort();
    let fast_done = got
        .iter()
        .filter(|m| !m.rcpts[0].ends_with("@slow.test"))
        .map(|m| m.at)
        .max()
        .unwrap();
    let span = slow_times
        .last()
        .unwrap()
        .duration_since(slow_times[0])
        .as_secs_f64();
    let rate_per_min = (slow - 1) as f64 / span * 60.0;
    eprintln!(
        "slow.test: {slow} messages over {span:.2}s = {rate_per_min:.1}/min (quota 120/min); {fast} fast ones done after {:.2}s",
        fast_done.duration_since(t0).as_secs_f64()
    );
    assert!(
        (108.0..=132.0).contains(&rate_per_min),
        "within 10% of 120/min: {rate_per_min:.1}"
    );
    assert!(
        fast_done < *slow_times.last().unwrap(),
        "other domains finish long before the slow one"
    );
    let lag = fast_done
        .saturating_duration_since(fast_submitted)
        .as_secs_f64();
    assert!(
        lag < 2.0,
        "fast domains were not held back: last one delivered {lag:.2}s after submission"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_sink_slows_herald_down_then_it_recovers() {
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![Rule::RefuseAll {
        reply: "421 4.7.0 rate limited, slow down".into(),
    }]);
    let d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &format!(
            "[delivery]\nrelay = \"{}\"\nburst = 1\nretry = [\"1s\"]\nthrottle_cooldown = \"1s\"\n[delivery.rate]\ndefault = \"600/min\"\n",
            sink.addr
        ),
    );
    let n = 20;
    send_many(&d, n, |i| format!("r{i}@adapt.test")).await;
    // Without adapting, 10/min-per-second pacing and 1 s retries would make ~10 attempts a
    // second; with it, the rate halves on every 421 down to 1/64.
    let window = Instant::now();
    let mut last = 0;
    while window.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = sink.refused_mails();
    }
    eprintln!("attempts refused with 421 in 4 s: {last} (unadapted pacing would allow ~40)");
    assert!(last >= 1, "the sink was tried");
    assert!(last <= 12, "Herald slowed down: {last} attempts in 4 s");
    sink.set_rules(vec![]);
    let t = Instant::now();
    sink.wait_count(n, Duration::from_secs(90)).await;
    eprintln!(
        "recovered: all {n} delivered {:.1}s after the sink stopped throttling",
        t.elapsed().as_secs_f64()
    );
}
