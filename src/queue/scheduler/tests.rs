//! The scheduler's decisions under tokio's paused clock: pacing by rate, the connection caps,
//! idle workers making room, a worker that left, throttling and recovery. No store, no task:
//! `Plan` only decides.

use super::domain_of;
use super::plan::{Caps, Dispatch, Plan};
use super::worker::Job;
use crate::config::Rate;
use crate::delivery::limiter::Limiters;
use crate::store::QueueId;
use std::collections::BTreeMap;
use std::time::Duration;

fn per_minute(n: u32) -> Rate {
    Rate {
        count: n,
        per: Duration::from_secs(60),
    }
}

/// Default 600/min; `slow.test` 60/min; bursts of `burst`; a two-minute cool-down.
fn plan(burst: u32) -> Plan {
    let rates = BTreeMap::from([
        ("default".to_string(), per_minute(600)),
        ("slow.test".to_string(), per_minute(60)),
    ]);
    Plan::new(Limiters::new(&rates, burst, Duration::from_secs(120)))
}

fn job(n: u64) -> Job {
    Job {
        id: QueueId(n),
        recipients: Vec::new(),
    }
}

fn push(p: &mut Plan, dest: &str, ids: std::ops::Range<u64>) {
    for n in ids {
        p.push(dest.to_string(), job(n));
    }
}

/// (destination, worker, new, job id) of each assignment, sorted.
fn handed(d: &Dispatch) -> Vec<(String, u64, bool, u64)> {
    let mut v: Vec<_> = d
        .assignments
        .iter()
        .map(|a| (a.destination.clone(), a.worker, a.new, a.job.id.0))
        .collect();
    v.sort();
    v
}

const WIDE: Caps = Caps {
    per_destination: 10,
    total: 100,
};

#[test]
fn destinations() {
    assert_eq!(domain_of("a@Example.ORG"), "example.org");
    assert_eq!(domain_of("postmaster"), "");
}

/// A destination's rate decides when its next job goes, never a worker waiting: the job
/// that may not go yet stays pending, the plan says when to look again, and then it goes on
/// the worker already open.
#[tokio::test(start_paused = true)]
async fn a_destination_is_paced_by_its_rate() {
    let mut p = plan(1);
    push(&mut p, "slow.test", 1..4);
    let first = p.dispatch(WIDE);
    assert_eq!(handed(&first), [("slow.test".into(), 0, true, 1)]);
    p.done("slow.test", 0, false, true);
    let held = p.dispatch(WIDE);
    assert!(held.assignments.is_empty(), "{:?}", handed(&held));
    let wait = p.next_ready().expect("a time to look again");
    assert!(
        wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    tokio::time::advance(wait).await;
    let next = p.dispatch(WIDE);
    assert_eq!(handed(&next), [("slow.test".into(), 0, false, 2)]);
    assert_eq!(p.pending(), 1);
    assert_eq!(p.workers(), 1);
}

/// At most `per_destination` connections to one destination and `total` in all; a worker
/// that finishes takes the next job of its destination.
#[tokio::test(start_paused = true)]
async fn connections_are_capped_per_destination_and_in_total() {
    let mut p = plan(10);
    let caps = Caps {
        per_destination: 2,
        total: 3,
    };
    push(&mut p, "a.test", 1..6);
    push(&mut p, "b.test", 10..12);
    let d = p.dispatch(caps);
    let per = |dest: &str| {
        d.assignments
            .iter()
            .filter(|a| a.destination == dest)
            .count()
    };
    assert_eq!(d.assignments.len(), 3, "{:?}", handed(&d));
    assert!(per("a.test") <= 2 && per("b.test") <= 2, "{:?}", handed(&d));
    assert!(d.assignments.iter().all(|a| a.new));
    assert_eq!((p.workers(), p.pending()), (3, 4));
    assert!(
        p.dispatch(caps).assignments.is_empty(),
        "every slot is busy"
    );

    let a = d
        .assignments
        .iter()
        .find(|a| a.destination == "a.test")
        .unwrap();
    p.done("a.test", a.worker, false, true);
    let d2 = p.dispatch(caps);
    assert_eq!(d2.assignments.len(), 1);
    assert_eq!(d2.assignments[0].worker, a.worker);
    assert!(!d2.assignments[0].new);
    assert_eq!(d2.assignments[0].destination, "a.test");
}

/// With every slot taken and a destination waiting, an idle worker of a destination with
/// nothing pending is let go; once it is gone, the waiting destination gets a worker.
#[tokio::test(start_paused = true)]
async fn an_idle_worker_makes_room_for_a_starved_destination() {
    let mut p = plan(1);
    let caps = Caps {
        per_destination: 5,
        total: 1,
    };
    push(&mut p, "a.test", 1..2);
    assert_eq!(p.dispatch(caps).assignments.len(), 1);
    p.done("a.test", 0, false, true);
    push(&mut p, "b.test", 2..3);
    let d = p.dispatch(caps);
    assert!(d.assignments.is_empty());
    assert_eq!(d.retired, [0]);
    // Still counted until the task has ended.
    assert!(p.dispatch(caps).assignments.is_empty());
    p.gone("a.test", 0);
    let d = p.dispatch(caps);
    assert_eq!(handed(&d), [("b.test".into(), 1, true, 2)]);
}

/// A worker that was leaving when its job came gives the job back: it goes first, to a new
/// worker.
#[tokio::test(start_paused = true)]
async fn a_job_given_back_goes_first_to_another_worker() {
    let mut p = plan(10);
    push(&mut p, "a.test", 1..3);
    let mut d = p.dispatch(Caps {
        per_destination: 1,
        total: 10,
    });
    let a = d.assignments.remove(0);
    assert_eq!((a.worker, a.job.id.0), (0, 1));
    p.returned(a);
    p.gone("a.test", 0);
    let d = p.dispatch(WIDE);
    let got = handed(&d);
    assert_eq!(got[0].3, 1, "the given-back job goes first: {got:?}");
    assert!(got.iter().all(|(_, w, new, _)| *w != 0 && *new), "{got:?}");
}

/// A throttling signal halves the destination's pace; a delivery after the quiet cool-down
/// restores it. The slowdown is reported for a destination with a configured rate.
#[tokio::test(start_paused = true)]
async fn a_throttled_destination_slows_and_recovers() {
    let mut p = plan(1);
    push(&mut p, "slow.test", 1..4);
    assert_eq!(p.dispatch(WIDE).assignments.len(), 1);
    assert_eq!(p.done("slow.test", 0, true, false), Some(1));
    assert_eq!(p.done("other.test", 9, false, true), None, "not configured");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        p.dispatch(WIDE).assignments.len(),
        1,
        "the one cell of burst"
    );
    p.done("slow.test", 0, false, true);
    assert!(p.dispatch(WIDE).assignments.is_empty());
    let wait = p.next_ready().expect("paced");
    assert!(
        wait > Duration::from_millis(1900),
        "half the rate: {wait:?}"
    );

    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(p.done("slow.test", 0, false, true), Some(0), "recovered");
}
