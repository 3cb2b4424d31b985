//! The scheduler's decisions, apart from the store and from spawning: which destination gets
//! a job now, and on which worker (an idle one, or a new one under the per-destination and
//! total caps); when a destination that is not ready is to be looked at again; which idle
//! workers make room for a starved destination; and what a worker's report changes (a free
//! slot, the destination's pace). Nothing here awaits or spawns; time is tokio's, so the
//! decisions are tested under a paused clock (`tests.rs`).

use super::super::worker::Job;
use crate::delivery::limiter::{Check, Limiters};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// How many connections may be open: to one destination, and in all.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub per_destination: usize,
    pub total: usize,
}

/// A job to hand to a worker; `new`: the worker is to be started first.
#[derive(Debug)]
pub struct Assignment {
    pub destination: String,
    pub worker: u64,
    pub new: bool,
    pub job: Job,
}

/// What one round of [`Plan::dispatch`] decided.
#[derive(Debug, Default)]
pub struct Dispatch {
    pub assignments: Vec<Assignment>,
    /// Idle workers let go (their channel is to be closed) to make room.
    pub retired: Vec<u64>,
}

struct Slot {
    id: u64,
    busy: bool,
}

#[derive(Default)]
struct Destination {
    pending: VecDeque<Job>,
    workers: Vec<Slot>,
    not_before: Option<Instant>,
}

pub struct Plan {
    destinations: HashMap<String, Destination>,
    limiters: Limiters,
    /// Worker tasks alive (a retired worker counts until it is gone).
    workers: usize,
    next_worker: u64,
}

impl Plan {
    pub fn new(limiters: Limiters) -> Self {
        Plan {
            destinations: HashMap::new(),
            limiters,
            workers: 0,
            next_worker: 0,
        }
    }

    pub fn limiters(&mut self) -> &mut Limiters {
        &mut self.limiters
    }

    /// Worker tasks alive.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs waiting for a worker or for their destination's pace.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.destinations.values().map(|d| d.pending.len()).sum()
    }

    pub fn push(&mut self, destination: String, job: Job) {
        self.destinations
            .entry(destination)
            .or_default()
            .pending
            .push_back(job);
    }

    /// Hands out every job that may go now.
    pub fn dispatch(&mut self, caps: Caps) -> Dispatch {
        let now = Instant::now();
        let mut out = Dispatch {
            retired: self.retire_idle(caps.total),
            ..Dispatch::default()
        };
        for (name, dest) in self.destinations.iter_mut() {
            while !dest.pending.is_empty() {
                if dest.not_before.is_some_and(|t| t > now) {
                    break;
                }
                let idle = dest.workers.iter().position(|w| !w.busy);
                let room = dest.workers.len() < caps.per_destination && self.workers < caps.total;
                if idle.is_none() && !room {
                    break;
                }
                if let Check::NotBefore(wait) = self.limiters.check(name) {
                    dest.not_before = Some(now + wait);
                    break;
                }
                dest.not_before = None;
                let (worker, new) = match idle {
                    Some(i) => (dest.workers[i].id, false),
                    None => {
                        let id = self.next_worker;
                        self.next_worker += 1;
                        self.workers += 1;
                        dest.workers.push(Slot { id, busy: false });
                        (id, true)
                    }
                };
                let Some(job) = dest.pending.pop_front() else {
                    break;
                };
                if let Some(w) = dest.workers.iter_mut().find(|w| w.id == worker) {
                    w.busy = true;
                }
                out.assignments.push(Assignment {
                    destination: name.clone(),
                    worker,
                    new,
                    job,
                });
            }
        }
        self.destinations
            .retain(|_, d| !d.pending.is_empty() || !d.workers.is_empty());
        out
    }

    /// The worker could not take the job (it was leaving): the job goes back to the front and
    /// the slot is forgotten.
    pub fn returned(&mut self, a: Assignment) {
        let dest = self.destinations.entry(a.destination).or_default();
        dest.workers.retain(|w| w.id != a.worker);
        dest.pending.push_front(a.job);
    }

    /// With every worker slot taken while a destination waits for one, idle workers of
    /// destinations with nothing pending are let go, so the waiting destination gets their
    /// place instead of waiting out their idle time.
    fn retire_idle(&mut self, total: usize) -> Vec<u64> {
        if self.workers < total {
            return Vec::new();
        }
        let starved = self
            .destinations
            .values()
            .any(|d| !d.pending.is_empty() && d.workers.iter().all(|w| w.busy));
        let mut retired = Vec::new();
        if starved {
            for d in self.destinations.values_mut() {
                if d.pending.is_empty() {
                    retired.extend(d.workers.iter().filter(|w| !w.busy).map(|w| w.id));
                    d.workers.retain(|w| w.busy);
                }
            }
        }
        retired
    }

    /// A worker finished a job: its slot is free again, and the destination's pace follows
    /// what happened. Returns the destination's slowdown when it has a configured rate (for
    /// the metrics).
    pub fn done(
        &mut self,
        destination: &str,
        worker: u64,
        throttle: bool,
        delivered: bool,
    ) -> Option<u32> {
        if let Some(w) = self
            .destinations
            .get_mut(destination)
            .and_then(|d| d.workers.iter_mut().find(|w| w.id == worker))
        {
            w.busy = false;
        }
        if throttle {
            self.limiters.throttled(destination);
        } else if delivered {
            self.limiters.succeeded(destination);
        }
        self.limiters
            .configured(destination)
            .then(|| self.limiters.slowdown(destination))
    }

    /// A worker task ended.
    pub fn gone(&mut self, destination: &str, worker: u64) {
        self.workers = self.workers.saturating_sub(1);
        if let Some(d) = self.destinations.get_mut(destination) {
            d.workers.retain(|w| w.id != worker);
        }
    }

    /// Forgets every destination (the drain): their workers' channels are to be closed.
    pub fn clear(&mut self) -> Vec<u64> {
        let ids = self
            .destinations
            .values()
            .flat_map(|d| d.workers.iter().map(|w| w.id))
            .collect();
        self.destinations.clear();
        ids
    }

    /// When the first paced destination with pending jobs may go again, if any.
    pub fn next_ready(&self) -> Option<Duration> {
        let now = Instant::now();
        self.destinations
            .values()
            .filter(|d| !d.pending.is_empty())
            .filter_map(|d| d.not_before)
            .map(|t| t.saturating_duration_since(now))
            .min()
    }
}
