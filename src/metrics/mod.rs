//! Aggregate counters and their two faces: the Prometheus text of `/metrics` and the JSON of
//! `herald stats`. One [`Metrics`] per daemon, shared by the SMTP sessions, the delivery side,
//! the HTTP listener and the admin socket. Labels are fixed words and configured domain names;
//! no label ever carries an address. Counters start at zero when the daemon starts. Rendering
//! is pure ([`Snapshot`] in, text out) and table-tested.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod text;

pub use text::prometheus;

/// Why a command or message was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Content policy (`policy.*`).
    Policy,
    /// A recipient this host does not relay for.
    Relay,
    /// A sender the user may not use.
    Sender,
    /// Over `limits.max_message_size`.
    Size,
    /// Bare LF or CR in the content (smuggling).
    BareNewline,
    /// A failed AUTH.
    Auth,
    /// Someone who may not post to a list.
    ListPost,
    /// NUL bytes in the content.
    Nul,
    /// Connections refused at the door (a budget or the per-address cap), and sessions ended
    /// to make room for a client from a lighter address.
    Connections,
    Evicted,
    /// Sessions ended at a deadline (a command line, a message at `limits.data_min_rate`).
    Timeout,
    /// Sessions ended past `limits.max_idle_commands`.
    IdleCommands,
}

impl Rejection {
    const ALL: [Rejection; 12] = [
        Rejection::Policy,
        Rejection::Relay,
        Rejection::Sender,
        Rejection::Size,
        Rejection::BareNewline,
        Rejection::Auth,
        Rejection::ListPost,
        Rejection::Nul,
        Rejection::Connections,
        Rejection::Evicted,
        Rejection::Timeout,
        Rejection::IdleCommands,
    ];
    fn label(self) -> &'static str {
        match self {
            Rejection::Policy => "policy",
            Rejection::Relay => "relay",
            Rejection::Sender => "sender",
            Rejection::Size => "size",
            Rejection::BareNewline => "bare_newline",
            Rejection::Auth => "auth",
            Rejection::ListPost => "list_post",
            Rejection::Nul => "nul",
            Rejection::Connections => "connections",
            Rejection::Evicted => "evicted",
            Rejection::Timeout => "timeout",
            Rejection::IdleCommands => "idle_commands",
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Deferred,
    Failed,
}

/// The counters. Cheap to bump from any task.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    accepted: [AtomicU64; 2],
    rejected: [AtomicU64; 12],
    attempts: [AtomicU64; 3],
    bounces: [AtomicU64; 2],
    complaints: AtomicU64,
    unsubscribes: [AtomicU64; 2],
    /// Adaptive back-off of domains with a configured rate (halvings of their rate).
    slowdown: Mutex<BTreeMap<String, u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            accepted: Default::default(),
            rejected: Default::default(),
            attempts: Default::default(),
            bounces: Default::default(),
            complaints: AtomicU64::new(0),
            unsubscribes: Default::default(),
            slowdown: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A number that moves whenever a message is accepted or a delivery attempted.
    pub fn activity(&self) -> u64 {
        let sum = |cs: &[AtomicU64]| cs.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
        sum(&self.accepted) + sum(&self.attempts)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn read<const N: usize>(c: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| c[i].load(Ordering::Relaxed))
}

impl Metrics {
    /// A message queued from a submission listener, or (`inbound`) from port 25.
    pub fn accepted(&self, inbound: bool) {
        bump(&self.accepted[usize::from(inbound)]);
    }
    pub fn rejected(&self, why: Rejection) {
        bump(&self.rejected[why as usize]);
    }
    pub fn attempt(&self, result: Attempt) {
        bump(&self.attempts[result as usize]);
    }
    /// A hard (`true`) or soft bounce, synchronous or returned.
    pub fn bounce(&self, hard: bool) {
        bump(&self.bounces[usize::from(!hard)]);
    }
    pub fn complaint(&self) {
        bump(&self.complaints);
    }
    /// A member left a list: over HTTP (one-click or the page's button), or `by_mail`.
    pub fn unsubscribe(&self, by_mail: bool) {
        bump(&self.unsubscribes[usize::from(by_mail)]);
    }
    /// Records a configured domain's back-off (0 = full speed).
    pub fn set_slowdown(&self, domain: &str, halvings: u32) {
        let mut map = self.slowdown.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(domain.to_string(), halvings);
    }

    /// The counters now, with the queue's gauges (`None`: the queue could not be read) and the
    /// configured domains' rates (`domain → messages per minute at full speed`).
    pub fn snapshot(&self, queue: Option<QueueGauges>, rates: &BTreeMap<String, f64>) -> Snapshot {
        let slowdown = self.slowdown.lock().unwrap_or_else(|p| p.into_inner());
        let domains = rates
            .iter()
            .map(|(domain, full)| {
                let halvings = slowdown.get(domain).copied().unwrap_or(0);
                DomainState {
                    domain: domain.clone(),
                    rate_per_minute: full / f64::from(1u32 << halvings.min(31)),
                    slowdown: halvings,
                }
            })
            .collect();
        let [submission, inbound] = read(&self.accepted);
        let [delivered, deferred, failed] = read(&self.attempts);
        let [hard, soft] = read(&self.bounces);
        let [unsub_http, unsub_mail] = read(&self.unsubscribes);
        let rejected = read(&self.rejected);
        Snapshot {
            uptime_seconds: self.started.elapsed().as_secs(),
            accepted: ByRole {
                submission,
                inbound,
            },
            rejected: Rejection::ALL
                .iter()
                .map(|r| (r.label().to_string(), rejected[*r as usize]))
                .collect(),
            delivered,
            deferred,
            failed,
            bounced: Bounced { hard, soft },
            complaints: self.complaints.load(Ordering::Relaxed),
            unsubscribes: Unsubscribes {
                http: unsub_http,
                mail: unsub_mail,
            },
            queue,
            domains,
            storage: Default::default(),
        }
    }
}

/// The daemon's snapshot; the queue (counted on a blocking thread) is 0 if unreadable (full disk).
pub async fn current(
    metrics: Arc<Metrics>,
    store: crate::store::Store,
    settings: Arc<crate::config::Settings>,
) -> Result<Snapshot, String> {
    tokio::task::spawn_blocking(move || {
        // A store that cannot be read leaves the queue's gauges out: unknown, not zero.
        let now = crate::store::now_secs();
        let queue = match store.queue_gauges() {
            Ok((messages, deliveries, oldest)) => Some(QueueGauges {
                messages,
                deliveries,
                oldest_seconds: oldest.map_or(0, |t| now.saturating_sub(t)),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count the queue; its gauges are left out");
                None
            }
        };
        let rates = settings
            .config
            .delivery
            .rate
            .iter()
            .filter(|(domain, _)| domain.as_str() != "default")
            .map(|(domain, r)| {
                let per_minute = f64::from(r.count) * 60.0 / r.per.as_secs_f64().max(1e-6);
                (domain.clone(), per_minute)
            })
            .collect();
        let (storage, s) = (store.storage(), metrics.snapshot(queue, &rates));
        Ok(Snapshot { storage, ..s })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// What the store says about the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueGauges {
    pub messages: u64,
    pub deliveries: u64,
    /// Age of the oldest queued message.
    pub oldest_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByRole {
    pub submission: u64,
    pub inbound: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounced {
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribes {
    pub http: u64,
    pub mail: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainState {
    pub domain: String,
    pub rate_per_minute: f64,
    pub slowdown: u32,
}

/// Everything `/metrics` and `herald stats` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub uptime_seconds: u64,
    pub accepted: ByRole,
    pub rejected: BTreeMap<String, u64>,
    pub delivered: u64,
    pub deferred: u64,
    pub failed: u64,
    pub bounced: Bounced,
    pub complaints: u64,
    pub unsubscribes: Unsubscribes,
    /// `None` when the queue could not be read (the gauges are left out, not shown as 0).
    #[serde(default)]
    pub queue: Option<QueueGauges>,
    pub domains: Vec<DomainState>,
    #[serde(default)]
    pub storage: crate::store::Storage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        m.accepted(false);
        m.accepted(false);
        m.accepted(true);
        m.rejected(Rejection::Policy);
        m.rejected(Rejection::BareNewline);
        m.attempt(Attempt::Delivered);
        m.attempt(Attempt::Deferred);
        m.bounce(true);
        m.bounce(false);
        m.bounce(false);
        m.complaint();
        m.unsubscribe(true);
        m.set_slowdown("slow.example", 2);
        let rates = BTreeMap::from([
            ("slow.example".to_string(), 120.0),
            ("fast.example".to_string(), 600.0),
        ]);
        let queue = QueueGauges {
            messages: 3,
            deliveries: 4,
            oldest_seconds: 5,
        };
        let s = m.snapshot(Some(queue), &rates);
        assert_eq!(s.accepted.submission, 2);
        assert_eq!(s.rejected.get("bare_newline"), Some(&1));
        assert_eq!(s.rejected.get("relay"), Some(&0));
        assert_eq!((s.bounced.hard, s.bounced.soft), (1, 2));
        let text = prometheus(&s);
        for line in [
            "# TYPE herald_accepted_total counter",
            "herald_accepted_total{role=\"submission\"} 2",
            "herald_accepted_total{role=\"inbound\"} 1",
            "herald_rejected_total{reason=\"policy\"} 1",
            "herald_rejected_total{reason=\"list_post\"} 0",
            "herald_deliveries_total{result=\"delivered\"} 1",
            "herald_deliveries_total{result=\"deferred\"} 1",
            "herald_bounces_total{class=\"soft\"} 2",
            "herald_complaints_total 1",
            "herald_unsubscribes_total{channel=\"mail\"} 1",
            "herald_queue_messages 3",
            "herald_queue_deliveries 4",
            "herald_queue_oldest_seconds 5",
            "herald_domain_rate_per_minute{domain=\"slow.example\"} 30",
            "herald_domain_slowdown{domain=\"slow.example\"} 2",
            "herald_domain_rate_per_minute{domain=\"fast.example\"} 600",
            "# TYPE herald_uptime_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains('@'));
    }
}
