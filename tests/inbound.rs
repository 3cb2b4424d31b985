//! Port 25 for this host's own addresses: mail to `postmaster@` a bounce domain is forwarded to
//! the configured `postmaster` (DESIGN §3, §4), and a message that has made too many hops is
//! refused instead of looping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::Sink;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmaster_mail_is_forwarded_and_loops_are_refused() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start_top(
        "postmaster = \"hostmaster@remote.test\"",
        &format!("[delivery]\nrelay = \"{}\"\n", sink.addr),
    );
    let mut c = Client::connect(d.inbound).await;
    c.ehlo().await;
    let from = "someone@remote.test";
    let to = "Postmaster@bounces.example.org";
    let r = c
        .send_mail(from, &[to], &message(from, to, "to the postmaster"))
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let got = sink
        .wait_for(WAIT, "the forwarded mail", |r| !r.is_empty())
        .await;
    assert_eq!(got[0].rcpts, vec!["hostmaster@remote.test".to_string()]);
    assert!(got[0].data.contains("Subject: to the postmaster"));

    // 50 Received fields already: refused, nothing queued.
    let hops: String = (0..50)
        .map(|i| {
            format!(
                "Received: from hop{i}.test by hop{}.test; Thu, 26 Nov 2026 07:00:00 +0000\r\n",
                i + 1
            )
        })
        .collect();
    let looping = format!("{hops}{}", message(from, to, "looping"));
    let r = c.send_mail(from, &[to], &looping).await;
    assert!(r.has(554, "5.4.6"), "{r:?}");
    let fewer: String = hops.lines().skip(1).map(|l| format!("{l}\r\n")).collect();
    let r = c
        .send_mail(
            from,
            &[to],
            &format!("{fewer}{}", message(from, to, "49 hops")),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "49 hops are fine: {r:?}");
    sink.wait_for(WAIT, "the second forwarded mail", |r| r.len() == 2)
        .await;
}
