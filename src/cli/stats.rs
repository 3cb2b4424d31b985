//! `herald stats`: the daemon's aggregate counters (the same snapshot as `/metrics`), as a
//! short human summary or, with `--json`, the snapshot itself.

use crate::admin::{Request, client};
use crate::metrics::Snapshot;
use std::fmt::Write;
use std::path::Path;

pub async fn run(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let data = client::request(data_dir, &Request::Stats).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let snapshot: Snapshot = serde_json::from_value(data)?;
    print!("{}", render(&snapshot));
    Ok(())
}

/// The human form: one line per counter, then the queue and the configured domains.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let rejected: Vec<String> = s
        .rejected
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    let rejected = if rejected.is_empty() {
        "none".to_string()
    } else {
        rejected.join(", ")
    };
    let _ = writeln!(out, "since start ({} s ago):", s.uptime_seconds);
    let _ = writeln!(
        out,
        "  accepted      {} submitted, {} inbound",
        s.accepted.submission, s.accepted.inbound
    );
    let _ = writeln!(out, "  rejected      {rejected}");
    let _ = writeln!(
        out,
        "  deliveries    {} delivered, {} deferred, {} failed",
        s.delivered, s.deferred, s.failed
    );
    let _ = writeln!(
        out,
        "  bounces       {} hard, {} soft",
        s.bounced.hard, s.bounced.soft
    );
    let _ = writeln!(out, "  complaints    {}", s.complaints);
    let _ = writeln!(
        out,
        "  unsubscribes  {} by web, {} by mail",
        s.unsubscribes.http, s.unsubscribes.mail
    );
    let _ = match &s.queue {
        Some(q) => writeln!(
            out,
            "queue: {} messages, {} deliveries, oldest {} s",
            q.messages, q.deliveries, q.oldest_seconds
        ),
        None => writeln!(
            out,
            "queue: unknown (the store could not be read; see the log)"
        ),
    };
    let _ = writeln!(out, "storage: {}", s.storage.summary());
    for d in &s.domains {
        let _ = writeln!(
            out,
            "domain {}: {:.1}/min (slowed down {}×)",
            d.domain, d.rate_per_minute, d.slowdown
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, QueueGauges, Rejection};
    use std::collections::BTreeMap;

    #[test]
    fn renders_counters_queue_and_domains() {
        let m = Metrics::default();
        m.rejected(Rejection::Relay);
        m.accepted(false);
        let rates = BTreeMap::from([("gmail.com".to_string(), 120.0)]);
        let s = m.snapshot(Some(QueueGauges::default()), &rates);
        let text = render(&s);
        assert!(
            text.contains("accepted      1 submitted, 0 inbound"),
            "{text}"
        );
        assert!(text.contains("rejected      relay 1"), "{text}");
        assert!(text.contains("domain gmail.com: 120.0/min"), "{text}");
        assert!(text.contains("storage: ok"), "{text}");
        let mut s = s;
        s.storage.floor = 1 << 30;
        s.storage.free = Some(3 << 20);
        let text = render(&s);
        assert!(
            text.contains(
                "storage: REFUSING NEW MAIL: insufficient storage: 3 MiB free, floor 1 GiB"
            ),
            "{text}"
        );
    }
}
