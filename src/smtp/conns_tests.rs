//! Unit tests of the connection budgets: pure calls on a [`ConnLimiter`].

use super::*;

const B: Budget = Budget {
    total: 100,
    per_listener: 10,
    reserve: 2,
    per_address: 6,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn fill(l: &ConnLimiter, role: Role, from: &str, n: usize, b: Budget) -> Vec<Slot> {
    (0..n)
        .map(|i| match l.admit(role, ip(from), false, b) {
            Ok(a) => a.slot,
            Err(e) => panic!("{from} #{i} on {role:?}: {e:?}"),
        })
        .collect()
}

#[test]
fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_by_the_address() {
    assert_eq!(
        addr_key(ip("2001:db8:1:2::1")),
        addr_key(ip("2001:db8:1:2:ffff::9"))
    );
    assert_ne!(
        addr_key(ip("2001:db8:1:2::1")),
        addr_key(ip("2001:db8:1:3::1"))
    );
    assert_eq!(addr_key(ip("::ffff:192.0.2.1")), addr_key(ip("192.0.2.1")));
    assert_ne!(addr_key(ip("192.0.2.1")), addr_key(ip("192.0.2.2")));
    // One /64 shares one per-address budget.
    let l = ConnLimiter::default();
    let b = Budget {
        per_address: 2,
        ..B
    };
    let _held = [
        l.admit(Role::Inbound, ip("2001:db8::1"), false, b),
        l.admit(Role::Inbound, ip("2001:db8::2"), false, b),
    ];
    let third = l.admit(Role::Inbound, ip("2001:db8::3"), false, b);
    assert_eq!(third.err(), Some(Refusal::PerAddress));
    assert!(
        l.admit(Role::Inbound, ip("2001:db8:0:1::3"), false, b)
            .is_ok()
    );
}

#[test]
fn each_listener_has_its_own_budget_and_the_address_cap_spans_them() {
    let l = ConnLimiter::default();
    let b = Budget {
        per_address: 100,
        ..B
    };
    let _inbound = fill(&l, Role::Inbound, "192.0.2.1", 10, b);
    let full = l.admit(Role::Inbound, ip("192.0.2.1"), false, b);
    assert_eq!(full.err(), Some(Refusal::Listener));
    // The submission listeners are untouched by a full port 25.
    let _sub = fill(&l, Role::Submission, "192.0.2.1", 8, b);
    let _subs = fill(&l, Role::Submissions, "192.0.2.1", 8, b);
    assert_eq!(l.open(), 26);
    // The per-address cap counts over all listeners.
    let l = ConnLimiter::default();
    let _a = fill(&l, Role::Inbound, "192.0.2.1", 3, B);
    let _b = fill(&l, Role::Submission, "192.0.2.1", 3, B);
    let over = l.admit(Role::Submissions, ip("192.0.2.1"), false, B);
    assert_eq!(over.err(), Some(Refusal::PerAddress));
    // Trusted networks are exempt from it.
    assert!(l.admit(Role::Submissions, ip("192.0.2.1"), true, B).is_ok());
}

#[test]
fn the_process_cap_holds_over_all_listeners_and_slots_come_back() {
    let l = ConnLimiter::default();
    let b = Budget {
        total: 5,
        per_address: 100,
        ..B
    };
    let held = fill(&l, Role::Inbound, "192.0.2.1", 3, b);
    let _more = fill(&l, Role::Submission, "192.0.2.1", 2, b);
    let over = l.admit(Role::Submissions, ip("192.0.2.1"), false, b);
    assert_eq!(over.err(), Some(Refusal::Total));
    drop(held);
    assert_eq!(l.open(), 2);
    assert!(
        l.admit(Role::Submissions, ip("192.0.2.1"), false, b)
            .is_ok()
    );
}

#[test]
fn the_submission_reserve_is_for_authenticated_and_trusted_sessions() {
    let l = ConnLimiter::default();
    let b = Budget {
        per_address: 100,
        ..B
    };
    // 10 slots, 2 reserved: 8 unauthenticated sessions fill the pool.
    let pool = fill(&l, Role::Submission, "192.0.2.1", 8, b);
    let ninth = l.admit(Role::Submission, ip("192.0.2.1"), false, b);
    assert_eq!(ninth.err(), Some(Refusal::Listener));
    // A trusted client may use the reserve.
    let trusted = l.admit(Role::Submission, ip("127.0.0.1"), true, b);
    assert!(trusted.is_ok());
    // A session that authenticates moves to the reserve and frees its pool slot.
    pool[0].authenticated();
    pool[0].authenticated();
    let again = l.admit(Role::Submission, ip("192.0.2.1"), false, b);
    assert!(
        again.is_ok(),
        "the authenticated session's pool slot is free"
    );
    // Port 25 has no reserve.
    let _mx = fill(&l, Role::Inbound, "192.0.2.1", 10, b);
}

#[test]
fn a_lighter_address_evicts_the_heaviest_holders_oldest_unauthenticated_session() {
    let l = ConnLimiter::default();
    let b = Budget { reserve: 0, ..B };
    let heavy = fill(&l, Role::Inbound, "192.0.2.1", 6, b);
    let light = fill(&l, Role::Inbound, "192.0.2.2", 4, b);
    heavy[0].authenticated();
    let newcomer = l.admit(Role::Inbound, ip("192.0.2.3"), false, b);
    let newcomer = newcomer.expect("a third address gets in");
    assert!(newcomer.evicted);
    // The heaviest holder's oldest session that is not authenticated went.
    assert!(!heavy[0].evicted().is_cancelled(), "authenticated: kept");
    assert!(heavy[1].evicted().is_cancelled(), "oldest evictable one");
    assert!(heavy[2..].iter().all(|s| !s.evicted().is_cancelled()));
    assert!(light.iter().all(|s| !s.evicted().is_cancelled()));
    assert_eq!(l.open(), 10, "its place was handed over");
    drop(heavy);
    assert_eq!(l.open(), 5, "an evicted slot is not given back twice");
}

#[test]
fn eviction_only_evens_out_never_churns_between_equals() {
    let l = ConnLimiter::default();
    let b = Budget { reserve: 0, ..B };
    let a_held = fill(&l, Role::Inbound, "192.0.2.1", 5, b);
    let b_held = fill(&l, Role::Inbound, "192.0.2.2", 4, b);
    let _c = fill(&l, Role::Inbound, "192.0.2.3", 1, b);
    // .2 holds 4 and the heaviest 5: after admission it would hold as many, so no.
    let refused = l.admit(Role::Inbound, ip("192.0.2.2"), false, b);
    assert_eq!(refused.err(), Some(Refusal::Listener));
    // .3 holds 1: it takes one of .1's, then (.1 and .2 at 4, the lower address first) another.
    let _c2 = l
        .admit(Role::Inbound, ip("192.0.2.3"), false, b)
        .expect("second");
    let _c3 = l
        .admit(Role::Inbound, ip("192.0.2.3"), false, b)
        .expect("third");
    // .1 3, .2 4, .3 3: a fourth for .3 would not leave it below .2.
    let refused = l.admit(Role::Inbound, ip("192.0.2.3"), false, b);
    assert_eq!(refused.err(), Some(Refusal::Listener));
    let gone = |v: &[Slot]| v.iter().filter(|s| s.evicted().is_cancelled()).count();
    assert_eq!((gone(&a_held), gone(&b_held)), (2, 0));
    assert_eq!(l.open(), 10);
}

#[test]
fn authenticated_and_trusted_sessions_are_never_evicted() {
    let l = ConnLimiter::default();
    let b = Budget {
        reserve: 0,
        per_address: 100,
        ..B
    };
    let held = fill(&l, Role::Submission, "192.0.2.1", 9, b);
    let _trusted = l.admit(Role::Submission, ip("127.0.0.1"), true, b);
    for s in &held {
        s.authenticated();
    }
    let refused = l.admit(Role::Submission, ip("192.0.2.9"), false, b);
    assert_eq!(refused.err(), Some(Refusal::Listener));
    assert!(held.iter().all(|s| !s.evicted().is_cancelled()));
}

#[test]
fn stress_starts_at_three_quarters_of_a_budget() {
    let l = ConnLimiter::default();
    let b = Budget {
        reserve: 0,
        per_address: 100,
        ..B
    };
    let first = fill(&l, Role::Inbound, "192.0.2.1", 7, b);
    assert!(!first[0].stressed());
    let _eighth = fill(&l, Role::Inbound, "192.0.2.1", 1, b);
    assert!(first[0].stressed());
    let other = fill(&l, Role::Submission, "192.0.2.1", 1, b);
    assert!(!other[0].stressed(), "another listener's load is its own");
}
