//! Password guessing from many addresses (issue 13): failures count per client and per account
//! name, so one account guessed at from 40 loopback addresses is throttled after
//! `limits.max_auth_failures_per_account`, with replies that are the same whether the account
//! exists or not; after `limits.auth_failure_window` the right password works again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A 465 session from `source`, EHLO'd.
async fn from(d: &Daemon, source: IpAddr) -> Client {
    let mut c = Client::connect_tls_from(d.submissions, source, &d.cert_pem).await;
    c.ehlo().await;
    c
}

/// `addresses` clients, from 127.0.0.`first` on, each trying `tries` wrong passwords for
/// `account`: every reply, in order.
async fn guess(d: &Daemon, account: &str, first: u8, addresses: u8, tries: usize) -> Vec<String> {
    let mut replies = Vec::new();
    for n in first..first + addresses {
        let mut c = from(d, loopback(n)).await;
        for i in 0..tries {
            let r = c.auth_plain(account, &format!("wrong-{n}-{i}")).await;
            replies.push(format!("{} {}", r.code, r.status()));
        }
        c.cmd("QUIT").await;
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_guessed_from_40_addresses_is_throttled() {
    let d = Daemon::start(
        "[limits]\nmax_auth_failures = 5\nmax_auth_failures_per_account = 10\n\
         auth_failure_window = \"15m\"\n",
    );
    let known = guess(&d, ALICE, 10, 40, 6).await;
    let unknown = guess(&d, "nobody", 60, 40, 6).await;
    // Per address: five failures, then the client limit; per account: ten failures in all,
    // then every attempt from anywhere is 454 without a password check.
    let mut want = Vec::new();
    for _ in 0..2 {
        want.extend(std::iter::repeat_n("535 5.7.8".to_string(), 5));
        want.push("454 4.7.0".to_string());
    }
    want.extend(std::iter::repeat_n("454 4.7.0".to_string(), 38 * 6));
    assert_eq!(known, want, "alice");
    assert_eq!(unknown, known, "an unknown account is answered alike");
    // The right password from an address that never failed: the account is throttled.
    let mut c = from(&d, loopback(200)).await;
    let r = c.auth_plain(ALICE, ALICE_PASSWORD).await;
    assert!(r.has(454, "4.7.0"), "{r:?}");
    // Another account from a fresh address is not.
    let mut c = from(&d, loopback(201)).await;
    let r = c.auth_plain("someone-else", "wrong").await;
    assert!(r.has(535, "5.7.8"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_works_again_after_the_cool_down() {
    let window = Duration::from_secs(2);
    let d = Daemon::start(
        "[limits]\nmax_auth_failures = 5\nmax_auth_failures_per_account = 3\n\
         auth_failure_window = \"2s\"\n",
    );
    let started = Instant::now();
    let replies = guess(&d, ALICE, 10, 3, 1).await;
    assert_eq!(replies, ["535 5.7.8"; 3]);
    let mut c = from(&d, loopback(20)).await;
    let r = c.auth_plain(ALICE, ALICE_PASSWORD).await;
    // The window opened at the first failure, after `started`: while it cannot have ended,
    // the account must be throttled.
    if started.elapsed() < window {
        assert!(r.has(454, "4.7.0"), "inside the window: {r:?}");
    }
    // Poll with a deadline, each look from an address that never failed (127.0.1.x on).
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 256u32.. {
        let source = IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + n));
        let mut c = from(&d, source).await;
        let r = c.auth_plain(ALICE, ALICE_PASSWORD).await;
        if r.has(235, "2.7.0") {
            break;
        }
        assert!(r.has(454, "4.7.0"), "{r:?}");
        assert!(Instant::now() < deadline, "still throttled after 30 s");
        tokio::time::sleep(poll::EVERY).await;
    }
    assert!(started.elapsed() >= window, "not before the window ended");
}
