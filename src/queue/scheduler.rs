//! The scheduler: one actor that knows which deliveries are in flight, groups due deliveries
//! into jobs per destination, paces each destination with its limiter and connection cap, and
//! hands jobs to workers. It never waits on a worker: a destination that is not ready is
//! simply looked at again when it will be.

use super::DeliveryContext;
use super::worker::{self, Event, Job};
use crate::config::Settings;
use crate::delivery::limiter::{Check, Limiters};
use crate::store::{DeliveryRecord, MessageRecord, Origin, QueueId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Deliveries held in memory at most; the rest wait in the store.
const MAX_CLAIMED: usize = 20_000;
/// Local mail awaiting processing is looked at again after this long.
const HOLD: u64 = 3600;

struct Slot {
    id: u64,
    tx: mpsc::Sender<Job>,
    busy: bool,
}

#[derive(Default)]
struct Destination {
    pending: VecDeque<Job>,
    workers: Vec<Slot>,
    not_before: Option<Instant>,
}

struct State {
    claimed: HashSet<(QueueId, u32)>,
    destinations: HashMap<String, Destination>,
    limiters: Limiters,
    workers: usize,
    next_worker: u64,
    /// When the store next has something due that we have not claimed (Unix seconds).
    next_due: Option<u64>,
    settings: Arc<Settings>,
}

pub async fn run(
    ctx: Arc<DeliveryContext>,
    mut arrivals: mpsc::Receiver<QueueId>,
    tracker: TaskTracker,
) {
    let settings = ctx.settings();
    let d = &settings.config.delivery;
    let mut st = State {
        claimed: HashSet::new(),
        destinations: HashMap::new(),
        limiters: Limiters::new(&d.rate, d.burst, d.throttle_cooldown.0),
        workers: 0,
        next_worker: 0,
        next_due: None,
        settings: settings.clone(),
    };
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(1024);
    loop {
        st.refresh_settings(&ctx);
        if ctx.rescan.swap(false, Ordering::AcqRel)
            || st.next_due.is_some_and(|t| t <= crate::store::now_secs())
        {
            st.scan(&ctx);
        }
        st.dispatch(&ctx, &tracker, &ev_tx);
        let sleep = st.next_wake();
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            Some(ev) = ev_rx.recv() => {
                st.on_event(ev, &ctx.metrics);
                while let Ok(ev) = ev_rx.try_recv() {
                    st.on_event(ev, &ctx.metrics);
                }
            }
            Some(id) = arrivals.recv() => {
                st.arrived(&ctx, id);
                while let Ok(id) = arrivals.try_recv() {
                    st.arrived(&ctx, id);
                }
            }
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    // Dropping the job senders lets idle workers leave; busy ones finish their job first.
    st.destinations.clear();
    while st.workers > 0 {
        match ev_rx.recv().await {
            Some(Event::Gone { .. }) => st.workers -= 1,
            Some(_) => {}
            None => break,
        }
    }
}

/// The destination key: the recipient's domain (lower-cased).
fn domain_of(address: &str) -> String {
    crate::mail::split(address)
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl State {
    fn refresh_settings(&mut self, ctx: &DeliveryContext) {
        let current = ctx.settings();
        if !Arc::ptr_eq(&current, &self.settings) {
            let d = &current.config.delivery;
            self.limiters
                .reconfigure(&d.rate, d.burst, d.throttle_cooldown.0);
            self.settings = current;
        }
    }

    fn scan(&mut self, ctx: &DeliveryContext) {
        let now = crate::store::now_secs();
        let room = MAX_CLAIMED.saturating_sub(self.claimed.len());
        if room < MAX_CLAIMED / 2 {
            // Plenty in memory still: look again once half of it is done, rather than walking
            // past every claimed entry of the due index after each event.
            self.next_due = Some(now);
            return;
        }
        let claimed = &self.claimed;
        match ctx.store.due(now, room, |id, i| claimed.contains(&(id, i))) {
            Ok((due, next)) => {
                self.next_due = next;
                let mut by_message: HashMap<QueueId, Vec<DeliveryRecord>> = HashMap::new();
                for d in due {
                    by_message.entry(d.id).or_default().push(d.record);
                }
                for (id, records) in by_message {
                    match ctx.store.message(id) {
                        Ok(Some(msg)) => self.enqueue(ctx, id, &msg, records),
                        // Deleted since the scan: its deliveries went with it.
                        Ok(None) => {}
                        Err(e) => {
                            // Left unclaimed: the next scan, in 5 s, tries again.
                            tracing::error!(queue_id = %id, error = %e, "reading a due message failed; skipped for now");
                            self.next_due = Some(self.next_due.map_or(now + 5, |t| t.min(now + 5)));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scanning the queue failed");
                self.next_due = Some(now + 5);
            }
        }
    }

    /// A session queued a new message: take its deliveries straight from the store.
    fn arrived(&mut self, ctx: &DeliveryContext, id: QueueId) {
        if self.claimed.len() >= MAX_CLAIMED {
            ctx.rescan.store(true, Ordering::Release);
            return;
        }
        match ctx.store.get_message(id) {
            Ok(Some(entry)) => self.enqueue(ctx, id, &entry.message, entry.deliveries),
            Ok(None) => {}
            Err(e) => tracing::error!(queue_id = %id, error = %e, "reading a new message failed"),
        }
    }

    /// Groups one message's due deliveries into jobs per destination.
    fn enqueue(
        &mut self,
        ctx: &DeliveryContext,
        id: QueueId,
        msg: &MessageRecord,
        records: Vec<DeliveryRecord>,
    ) {
        let now = crate::store::now_secs();
        let settings = ctx.settings();
        // VERP and list copies give every recipient its own envelope or headers.
        let verp = self.uses_verp(msg) || msg.list.is_some();
        let mut jobs: HashMap<String, Vec<DeliveryRecord>> = HashMap::new();
        for rec in records {
            if self.claimed.contains(&(id, rec.index)) || rec.next_attempt > now {
                continue;
            }
            let own = || {
                let (local, domain) =
                    crate::mail::split(&rec.address).unwrap_or((&rec.address, ""));
                settings.is_own_address(local, domain)
            };
            if msg.origin == Origin::Inbound && msg.list.is_none() && own() {
                // Mail for our own addresses waits for local processing (bounces, unsubscribes);
                // postmaster mail forwarded elsewhere goes on.
                if let Err(e) = ctx.store.reschedule(id, rec.index, now + HOLD) {
                    tracing::error!(queue_id = %id, error = %e, "holding local mail failed");
                }
                continue;
            }
            self.claimed.insert((id, rec.index));
            let dest = domain_of(&rec.address);
            if verp {
                self.destinations
                    .entry(dest)
                    .or_default()
                    .pending
                    .push_back(Job {
                        id,
                        recipients: vec![rec],
                    });
            } else {
                jobs.entry(dest).or_default().push(rec);
            }
        }
        for (dest, recipients) in jobs {
            self.destinations
                .entry(dest)
                .or_default()
                .pending
                .push_back(Job { id, recipients });
        }
    }

    /// VERP gives every recipient its own envelope sender, so one transaction per recipient.
    fn uses_verp(&self, msg: &MessageRecord) -> bool {
        let domain = domain_of(&msg.sender);
        !msg.sender.is_empty()
            && self
                .settings
                .config
                .domains
                .get(&domain)
                .is_some_and(|d| d.bounce_domain.is_some())
    }

    fn dispatch(
        &mut self,
        ctx: &Arc<DeliveryContext>,
        tracker: &TaskTracker,
        events: &mpsc::Sender<Event>,
    ) {
        let now = Instant::now();
        let d = &self.settings.config.delivery;
        let (per_domain, total) = (d.max_connections_per_domain as usize, d.concurrency);
        self.retire_idle(total);
        for (name, dest) in self.destinations.iter_mut() {
            while !dest.pending.is_empty() {
                if dest.not_before.is_some_and(|t| t > now) {
                    break;
                }
                let slot = match dest.workers.iter().position(|w| !w.busy) {
                    Some(i) => i,
                    None if dest.workers.len() < per_domain && self.workers < total => {
                        let (tx, rx) = mpsc::channel(1);
                        let id = self.next_worker;
                        self.next_worker += 1;
                        self.workers += 1;
                        tracker.spawn(worker::run(
                            ctx.clone(),
                            name.clone(),
                            id,
                            rx,
                            events.clone(),
                        ));
                        dest.workers.push(Slot {
                            id,
                            tx,
                            busy: false,
                        });
                        dest.workers.len() - 1
                    }
                    None => break,
                };
                match self.limiters.check(name) {
                    Check::Ready => {
                        dest.not_before = None;
                        let Some(job) = dest.pending.pop_front() else {
                            break;
                        };
                        let w = &mut dest.workers[slot];
                        match w.tx.try_send(job) {
                            Ok(()) => w.busy = true,
                            Err(e) => {
                                // The worker is leaving; give the job back and forget the slot.
                                let job = match e {
                                    mpsc::error::TrySendError::Full(j)
                                    | mpsc::error::TrySendError::Closed(j) => j,
                                };
                                dest.pending.push_front(job);
                                dest.workers.remove(slot);
                            }
                        }
                    }
                    Check::NotBefore(wait) => {
                        dest.not_before = Some(now + wait);
                        break;
                    }
                }
            }
        }
        self.destinations
            .retain(|_, d| !d.pending.is_empty() || !d.workers.is_empty());
    }

    /// With every worker slot taken while a destination waits for one, idle workers of
    /// destinations with nothing pending are let go (their channel closes and they leave), so
    /// the waiting destination gets their place instead of waiting out their idle time.
    fn retire_idle(&mut self, total: usize) {
        if self.workers < total {
            return;
        }
        let starved = self
            .destinations
            .values()
            .any(|d| !d.pending.is_empty() && d.workers.iter().all(|w| w.busy));
        if starved {
            for d in self.destinations.values_mut() {
                if d.pending.is_empty() {
                    d.workers.retain(|w| w.busy);
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event, metrics: &crate::metrics::Metrics) {
        match ev {
            Event::Done {
                domain,
                worker,
                id,
                indexes,
                throttle,
                delivered,
                retry_at,
            } => {
                for i in indexes {
                    self.claimed.remove(&(id, i));
                }
                if let Some(w) = self
                    .destinations
                    .get_mut(&domain)
                    .and_then(|d| d.workers.iter_mut().find(|w| w.id == worker))
                {
                    w.busy = false;
                }
                if throttle {
                    self.limiters.throttled(&domain);
                } else if delivered {
                    self.limiters.succeeded(&domain);
                }
                if self.limiters.configured(&domain) {
                    let halvings = self.limiters.slowdown(&domain);
                    metrics.set_slowdown(&domain, halvings);
                }
                if let Some(at) = retry_at {
                    self.next_due = Some(self.next_due.map_or(at, |t| t.min(at)));
                }
            }
            Event::Gone { domain, worker } => {
                self.workers = self.workers.saturating_sub(1);
                if let Some(d) = self.destinations.get_mut(&domain) {
                    d.workers.retain(|w| w.id != worker);
                }
            }
        }
    }

    /// How long the actor may sleep when nothing else happens.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = Duration::from_secs(60);
        for d in self.destinations.values() {
            if let Some(t) = d.not_before.filter(|_| !d.pending.is_empty()) {
                wake = wake.min(t.saturating_duration_since(now));
            }
        }
        if let Some(at) = self.next_due {
            let secs = at.saturating_sub(crate::store::now_secs());
            wake = wake.min(Duration::from_secs(secs).max(Duration::from_millis(200)));
        }
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn destinations() {
        assert_eq!(domain_of("a@Example.ORG"), "example.org");
        assert_eq!(domain_of("postmaster"), "");
    }
}
