//! The Prometheus text exposition format (version 0.0.4) of a [`Snapshot`]: one HELP and
//! TYPE line per family, then its samples; label values escaped.

use super::Snapshot;
use std::fmt::Write;

/// One metric family: its HELP and TYPE lines, then its samples (`labels`, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn label(name: &str, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{{{name}=\"{escaped}\"}}")
}

fn one(v: u64) -> Vec<(String, f64)> {
    vec![(String::new(), v as f64)]
}

/// Name, type, help and samples of one metric family.
type Family = (&'static str, &'static str, &'static str, Vec<(String, f64)>);

/// The Prometheus text exposition format (version 0.0.4).
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let by = |name: &str, pairs: &[(&str, u64)]| -> Vec<(String, f64)> {
        pairs
            .iter()
            .map(|(v, n)| (label(name, v), *n as f64))
            .collect()
    };
    // No sample at all when the queue could not be read: unknown is not zero.
    let queue =
        |f: fn(&super::QueueGauges) -> u64| s.queue.as_ref().map(f).map(one).unwrap_or_default();
    #[rustfmt::skip]
    let families: Vec<Family> = vec![
        ("herald_accepted_total", "counter", "Messages accepted and queued, by listener role.",
            by("role", &[("submission", s.accepted.submission), ("inbound", s.accepted.inbound)])),
        ("herald_rejected_total", "counter", "Commands or messages refused, by reason.",
            s.rejected.iter().map(|(r, n)| (label("reason", r), *n as f64)).collect()),
        ("herald_deliveries_total", "counter", "Delivery attempts, by result.",
            by("result", &[("delivered", s.delivered), ("deferred", s.deferred), ("failed", s.failed)])),
        ("herald_bounces_total", "counter", "Bounces (synchronous refusals and returned DSNs), by class.",
            by("class", &[("hard", s.bounced.hard), ("soft", s.bounced.soft)])),
        ("herald_complaints_total", "counter", "Feedback (ARF) complaints applied.", one(s.complaints)),
        ("herald_unsubscribes_total", "counter", "List members unsubscribed by their own request, by channel.",
            by("channel", &[("http", s.unsubscribes.http), ("mail", s.unsubscribes.mail)])),
        ("herald_queue_messages", "gauge", "Messages in the queue.", queue(|q| q.messages)),
        ("herald_queue_deliveries", "gauge", "Deliveries (message, recipient) waiting in the queue.",
            queue(|q| q.deliveries)),
        ("herald_queue_oldest_seconds", "gauge", "Age of the oldest queued message.",
            queue(|q| q.oldest_seconds)),
        ("herald_domain_rate_per_minute", "gauge", "Current rate limit of domains with a configured rate.",
            s.domains.iter().map(|d| (label("domain", &d.domain), d.rate_per_minute)).collect()),
        ("herald_domain_slowdown", "gauge", "Adaptive back-off of domains with a configured rate (halvings).",
            s.domains.iter().map(|d| (label("domain", &d.domain), f64::from(d.slowdown))).collect()),
        ("herald_storage_ok", "gauge", "1 while new mail is accepted.", one(u64::from(s.storage.ok()))),
        ("herald_storage_free_bytes", "gauge", "Free bytes on data_dir's file system.", one(s.storage.free.unwrap_or(0))),
        ("herald_storage_min_free_bytes", "gauge", "The floor, limits.min_free_space.", one(s.storage.floor)),
        ("herald_storage_reopens_total", "counter", "Reopens of the database after failed writes.", one(s.storage.reopened)),
        ("herald_uptime_seconds", "gauge", "Seconds since the daemon started.", one(s.uptime_seconds)),
    ];
    for (name, kind, help, samples) in &families {
        family(&mut out, name, kind, help, samples);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue that could not be read is left out, never shown as an empty one.
    #[test]
    fn an_unknown_queue_has_no_samples() {
        let m = super::super::Metrics::default();
        let unknown = prometheus(&m.snapshot(None, &Default::default()));
        assert!(unknown.contains("# TYPE herald_queue_messages gauge"));
        assert!(
            !unknown.lines().any(|l| l.starts_with("herald_queue_")),
            "{unknown}"
        );
        let known = prometheus(&m.snapshot(Some(Default::default()), &Default::default()));
        assert!(
            known.lines().any(|l| l == "herald_queue_messages 0"),
            "{known}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("d", "a\"b\\c\nd"), "{d=\"a\\\"b\\\\c\\nd\"}");
    }
}
