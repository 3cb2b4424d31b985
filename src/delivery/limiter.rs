//! Per-destination-domain pacing with governor: one direct limiter per active domain (overrides
//! need their own quota anyway), plus adaptive back-off — a throttling signal halves that
//! domain's rate for a cool-down, then it recovers one step per quiet cool-down. Never sleeps:
//! `check` says "go" or "not before". Time is tokio's ([`TokioClock`]), so the scheduler's
//! pacing can be tested under a paused clock.

use crate::config::Rate;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// The rate is divided by 2^slowdown; this caps the slowdown at 1/64 of the configured rate.
const MAX_SLOWDOWN: u32 = 6;
/// Idle domains beyond this many are forgotten (their state is cheap to rebuild).
const MAX_DOMAINS: usize = 50_000;

/// governor on tokio's clock: the monotonic clock, or the paused one in tests (governor's own
/// default clock ignores `tokio::time::pause`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Instant>>;

fn limiter(q: Quota) -> Limiter {
    RateLimiter::direct_with_clock(q, TokioClock)
}

struct DomainLimit {
    limiter: Limiter,
    slowdown: u32,
    changed: Instant,
    used: Instant,
}

pub struct Limiters {
    default: Rate,
    overrides: HashMap<String, Rate>,
    burst: u32,
    cooldown: Duration,
    domains: HashMap<String, DomainLimit>,
    clock: TokioClock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ready,
    NotBefore(Duration),
}

fn quota(rate: Rate, slowdown: u32, burst: u32) -> Quota {
    let period = (rate.per / rate.count).max(Duration::from_micros(1)) * (1u32 << slowdown);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiters {
    pub fn new(
        rates: &std::collections::BTreeMap<String, Rate>,
        burst: u32,
        cooldown: Duration,
    ) -> Self {
        let default = rates.get("default").copied().unwrap_or(Rate {
            count: 600,
            per: Duration::from_secs(60),
        });
        let overrides = rates
            .iter()
            .filter(|(k, _)| k.as_str() != "default")
            .map(|(k, v)| (k.to_ascii_lowercase(), *v))
            .collect();
        Limiters {
            default,
            overrides,
            burst,
            cooldown,
            domains: HashMap::new(),
            clock: TokioClock,
        }
    }

    /// Takes new rates after a reload; existing domains restart at full configured speed.
    pub fn reconfigure(
        &mut self,
        rates: &std::collections::BTreeMap<String, Rate>,
        burst: u32,
        cooldown: Duration,
    ) {
        *self = Limiters::new(rates, burst, cooldown);
    }

    /// Whether `domain` has its own configured rate.
    pub fn configured(&self, domain: &str) -> bool {
        self.overrides.contains_key(domain)
    }

    pub fn rate_of(&self, domain: &str) -> Rate {
        self.overrides.get(domain).copied().unwrap_or(self.default)
    }

    fn entry(&mut self, domain: &str) -> &mut DomainLimit {
        let now = self.clock.now();
        if self.domains.len() >= MAX_DOMAINS && !self.domains.contains_key(domain) {
            let horizon = self.cooldown.max(Duration::from_secs(600));
            self.domains
                .retain(|_, d| now.saturating_duration_since(d.used) < horizon);
        }
        let q = quota(self.rate_of(domain), 0, self.burst);
        self.domains
            .entry(domain.to_string())
            .or_insert_with(|| DomainLimit {
                limiter: limiter(q),
                slowdown: 0,
                changed: now,
                used: now,
            })
    }

    /// May one more message go to `domain` now? Consumes a cell when it may.
    pub fn check(&mut self, domain: &str) -> Check {
        let now = self.clock.now();
        let d = self.entry(domain);
        d.used = now;
        match d.limiter.check() {
            Ok(()) => Check::Ready,
            Err(not_until) => Check::NotBefore(not_until.wait_time_from(now)),
        }
    }

    /// The domain signalled throttling (421/451 rate wording, connection failures): slow down.
    pub fn throttled(&mut self, domain: &str) {
        let (rate, burst, now) = (self.rate_of(domain), self.burst, self.clock.now());
        let d = self.entry(domain);
        if d.slowdown < MAX_SLOWDOWN {
            d.slowdown += 1;
            d.limiter = limiter(quota(rate, d.slowdown, burst));
        }
        d.changed = now;
    }

    /// A delivery went through: after a quiet cool-down, take one step back towards full speed.
    pub fn succeeded(&mut self, domain: &str) {
        let (rate, burst, cooldown) = (self.rate_of(domain), self.burst, self.cooldown);
        let now = self.clock.now();
        let d = self.entry(domain);
        if d.slowdown > 0 && now.saturating_duration_since(d.changed) >= cooldown {
            d.slowdown -= 1;
            d.limiter = limiter(quota(rate, d.slowdown, burst));
            d.changed = now;
        }
    }

    /// Current slowdown exponent (0 = full speed), for metrics and tests.
    pub fn slowdown(&self, domain: &str) -> u32 {
        self.domains.get(domain).map_or(0, |d| d.slowdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rates() -> BTreeMap<String, Rate> {
        BTreeMap::from([
            (
                "default".to_string(),
                Rate {
                    count: 600,
                    per: Duration::from_secs(60),
                },
            ),
            (
                "slow.test".to_string(),
                Rate {
                    count: 60,
                    per: Duration::from_secs(60),
                },
            ),
        ])
    }

    #[test]
    fn burst_then_wait() {
        let mut l = Limiters::new(&rates(), 2, Duration::from_secs(60));
        assert_eq!(l.check("slow.test"), Check::Ready);
        assert_eq!(l.check("slow.test"), Check::Ready);
        match l.check("slow.test") {
            Check::NotBefore(d) => assert!(
                d > Duration::from_millis(900) && d <= Duration::from_secs(1),
                "{d:?}"
            ),
            Check::Ready => panic!("third message must wait"),
        }
        // Another domain is not held back.
        assert_eq!(l.check("fast.test"), Check::Ready);
    }

    #[test]
    fn throttling_slows_and_recovers() {
        let mut l = Limiters::new(&rates(), 1, Duration::ZERO);
        l.throttled("slow.test");
        l.throttled("slow.test");
        assert_eq!(l.slowdown("slow.test"), 2);
        assert_eq!(l.check("slow.test"), Check::Ready);
        match l.check("slow.test") {
            Check::NotBefore(d) => {
                assert!(d > Duration::from_secs(3), "a quarter of the rate: {d:?}")
            }
            Check::Ready => panic!("must wait"),
        }
        l.succeeded("slow.test");
        assert_eq!(l.slowdown("slow.test"), 1);
        l.succeeded("slow.test");
        l.succeeded("slow.test");
        assert_eq!(l.slowdown("slow.test"), 0);
    }

    /// Pacing and recovery follow tokio's clock, so they can be driven under a paused one.
    #[tokio::test(start_paused = true)]
    async fn paced_and_recovered_on_the_tokio_clock() {
        let mut l = Limiters::new(&rates(), 1, Duration::from_secs(120));
        assert_eq!(l.check("slow.test"), Check::Ready);
        let Check::NotBefore(wait) = l.check("slow.test") else {
            panic!("the second message must wait");
        };
        tokio::time::advance(wait).await;
        assert_eq!(l.check("slow.test"), Check::Ready);
        l.throttled("slow.test");
        l.succeeded("slow.test");
        assert_eq!(
            l.slowdown("slow.test"),
            1,
            "no recovery before the cool-down"
        );
        tokio::time::advance(Duration::from_secs(120)).await;
        l.succeeded("slow.test");
        assert_eq!(l.slowdown("slow.test"), 0);
    }
}
