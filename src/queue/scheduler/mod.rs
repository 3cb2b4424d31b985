//! The scheduler: one actor that knows which deliveries are in flight, groups due deliveries
//! into jobs per destination, paces each destination with its limiter and connection cap, and
//! hands jobs to workers. It never waits on a worker: a destination that is not ready is
//! simply looked at again when it will be.

mod plan;
#[cfg(test)]
mod tests;

use super::DeliveryContext;
use super::worker::{self, Event, Job};
use crate::config::Settings;
use crate::delivery::limiter::Limiters;
use crate::store::{DeliveryRecord, MessageRecord, Origin, QueueId};
use plan::{Assignment, Caps, Plan};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Deliveries held in memory at most; the rest wait in the store.
const MAX_CLAIMED: usize = 20_000;
/// Local mail awaiting processing is looked at again after this long.
const HOLD: u64 = 3600;

/// The actor's state: what is claimed from the store, the decisions ([`Plan`]), and the
/// channel to each live worker.
struct State {
    claimed: HashSet<(QueueId, u32)>,
    plan: Plan,
    senders: HashMap<u64, mpsc::Sender<Job>>,
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
        plan: Plan::new(Limiters::new(&d.rate, d.burst, d.throttle_cooldown.0)),
        senders: HashMap::new(),
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
    st.plan.clear();
    st.senders.clear();
    while st.plan.workers() > 0 {
        match ev_rx.recv().await {
            Some(Event::Gone { domain, worker }) => st.plan.gone(&domain, worker),
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
            self.plan
                .limiters()
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
                let job = Job {
                    id,
                    recipients: vec![rec],
                };
                self.plan.push(dest, job);
            } else {
                jobs.entry(dest).or_default().push(rec);
            }
        }
        for (dest, recipients) in jobs {
            self.plan.push(dest, Job { id, recipients });
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

    /// Hands out what the plan lets go now, starting workers as it says.
    fn dispatch(
        &mut self,
        ctx: &Arc<DeliveryContext>,
        tracker: &TaskTracker,
        events: &mpsc::Sender<Event>,
    ) {
        let d = &self.settings.config.delivery;
        let caps = Caps {
            per_destination: d.max_connections_per_domain as usize,
            total: d.concurrency,
        };
        let decided = self.plan.dispatch(caps);
        for id in decided.retired {
            self.senders.remove(&id);
        }
        for a in decided.assignments {
            if a.new {
                let (tx, rx) = mpsc::channel(1);
                self.senders.insert(a.worker, tx);
                let (ctx, name, events) = (ctx.clone(), a.destination.clone(), events.clone());
                tracker.spawn(worker::run(ctx, name, a.worker, rx, events));
            }
            self.hand_over(a);
        }
    }

    fn hand_over(&mut self, a: Assignment) {
        let Some(tx) = self.senders.get(&a.worker) else {
            return self.plan.returned(a);
        };
        if let Err(e) = tx.try_send(a.job) {
            // The worker is leaving; the job goes back and the slot is forgotten.
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            self.senders.remove(&a.worker);
            self.plan.returned(Assignment { job, ..a });
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
                if let Some(halvings) = self.plan.done(&domain, worker, throttle, delivered) {
                    metrics.set_slowdown(&domain, halvings);
                }
                if let Some(at) = retry_at {
                    self.next_due = Some(self.next_due.map_or(at, |t| t.min(at)));
                }
            }
            Event::Gone { domain, worker } => {
                self.senders.remove(&worker);
                self.plan.gone(&domain, worker);
            }
        }
    }

    /// How long the actor may sleep when nothing else happens.
    fn next_wake(&self) -> Duration {
        let mut wake = Duration::from_secs(60);
        if let Some(ready) = self.plan.next_ready() {
            wake = wake.min(ready);
        }
        if let Some(at) = self.next_due {
            let secs = at.saturating_sub(crate::store::now_secs());
            wake = wake.min(Duration::from_secs(secs).max(Duration::from_millis(200)));
        }
        wake
    }
}
