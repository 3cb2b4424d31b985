//! The SMTP server: listeners, the per-connection session state machine, and one file per verb.
//!
//! Parsers (`command`, `address`, `body`, `repair`) are pure. Verb handlers take the session
//! state and return a [`reply::Reply`] (plus what the session must do next); only
//! `session` reads from and writes to a session's connection. `tests` runs sessions in process
//! over `tokio::io::duplex` and table-tests the handlers.

pub mod address;
mod auth;
mod auth_throttle;
pub mod body;
pub mod command;
mod conns;
mod data;
mod ehlo;
mod listener;
mod listpost;
mod mail;
pub mod policy;
mod postmaster;
mod rcpt;
pub mod repair;
pub mod reply;
mod returns;
mod session;
mod starttls;
mod state;
#[cfg(test)]
mod tests;

pub use auth_throttle::AuthThrottle;
pub use conns::ConnLimiter;
pub use listener::serve;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// Which listener a session came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 587: STARTTLS, AUTH required (or a trusted network).
    Submission,
    /// 465: implicit TLS, AUTH required (or a trusted network).
    Submissions,
    /// 25: mail for this host's own addresses only; no AUTH.
    Inbound,
}

impl Role {
    pub fn is_submission(self) -> bool {
        matches!(self, Role::Submission | Role::Submissions)
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Submission => "submission",
            Role::Submissions => "submissions",
            Role::Inbound => "inbound",
        }
    }
}

/// What every session shares: current settings, the store, TLS, limits and shutdown signals.
pub struct Context {
    pub settings: watch::Receiver<Arc<Settings>>,
    pub store: Store,
    /// Told about every message once it is durable (the delivery scheduler listens).
    pub on_queued: Box<dyn Fn(crate::store::QueueId) + Send + Sync>,
    /// HMAC key of list member tokens (`u+TOKEN@` unsubscribe mail).
    pub list_key: [u8; 32],
    /// HMAC key of VERP tokens (`b+TOKEN@` returned mail).
    pub verp_key: [u8; 32],
    pub tls: tokio_rustls::TlsAcceptor,
    pub auth_throttle: AuthThrottle,
    /// Inbound mail to `postmaster@` per client address (`limits.postmaster_rate`).
    pub postmaster: postmaster::PostmasterLimiter,
    /// Bounds concurrent argon2 verifications (CPU and memory heavy) off the async workers.
    pub auth_slots: Semaphore,
    pub conns: ConnLimiter,
    /// Cancelled on SIGTERM: stop accepting, refuse new transactions.
    pub draining: CancellationToken,
    /// Cancelled when the grace period is over: close everything.
    pub stop_now: CancellationToken,
    /// The daemon's aggregate counters (`/metrics`, `herald stats`).
    pub metrics: Arc<Metrics>,
}

/// What a [`Context`] is made of; the rest (limits, throttles, shutdown tokens) starts fresh.
pub struct Parts {
    pub settings: watch::Receiver<Arc<Settings>>,
    pub store: Store,
    pub on_queued: Box<dyn Fn(crate::store::QueueId) + Send + Sync>,
    pub list_key: [u8; 32],
    pub verp_key: [u8; 32],
    pub tls: tokio_rustls::TlsAcceptor,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(p: Parts) -> Context {
        Context {
            settings: p.settings,
            store: p.store,
            on_queued: p.on_queued,
            list_key: p.list_key,
            verp_key: p.verp_key,
            tls: p.tls,
            auth_throttle: AuthThrottle::default(),
            postmaster: postmaster::PostmasterLimiter::default(),
            auth_slots: Semaphore::new(2),
            conns: ConnLimiter::default(),
            draining: CancellationToken::new(),
            stop_now: CancellationToken::new(),
            metrics: p.metrics,
        }
    }

    /// The settings in force right now (a SIGHUP may have replaced them).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }
}

#[cfg(test)]
impl Context {
    /// A context for the in-process tests: the settings derived from `config` (as a reload
    /// would derive them), a store the test opened in a temp dir with its real keys, a real
    /// TLS acceptor, and `on_queued` told of every durable message. Nothing runs beside it.
    pub(crate) fn for_test(
        config: crate::config::Config,
        store: Store,
        tls: tokio_rustls::TlsAcceptor,
        on_queued: Box<dyn Fn(crate::store::QueueId) + Send + Sync>,
    ) -> Context {
        let settings = Settings::new(config, None).expect("test config");
        // The sender may go: a receiver keeps the last value.
        let (_, settings) = watch::channel(Arc::new(settings));
        Context::new(Parts {
            settings,
            list_key: store.secret("lists").expect("list key"),
            verp_key: store.secret("verp").expect("verp key"),
            store,
            on_queued,
            tls,
            metrics: Arc::new(Metrics::default()),
        })
    }
}
