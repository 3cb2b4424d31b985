//! The outbound queue: one scheduler actor (`scheduler`) that decides what goes when, workers
//! (`worker`) that hold one connection to one destination each, what an attempt leaves behind
//! (`outcome`), and the pure retry policy (`retry`). The store holds the truth; the
//! scheduler's memory only says what is in flight.

mod listcopy;
mod outcome;
pub mod retry;
mod scheduler;
#[cfg(test)]
mod tests;
mod worker;

pub use scheduler::run;

use crate::config::Settings;
use crate::delivery::client::Connector;
use crate::delivery::dkim::Signers;
use crate::delivery::mx::Resolver;
use crate::metrics::Metrics;
use crate::store::{QueueId, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How many new-message notices may wait for the scheduler; past that it rescans the store.
const ARRIVALS: usize = 4096;

/// What the scheduler and its workers share.
pub struct DeliveryContext {
    pub store: Store,
    pub settings: watch::Receiver<Arc<Settings>>,
    pub resolver: Resolver,
    pub signers: RwLock<Signers>,
    /// HMAC key of VERP tokens.
    pub verp_key: [u8; 32],
    /// HMAC key of list member tokens (List-Unsubscribe).
    pub list_key: [u8; 32],
    /// The daemon's aggregate counters.
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    wake: Notify,
    rescan: AtomicBool,
    /// The outbound TLS connector and the settings generation it was built for.
    connector: Mutex<Option<(Arc<Settings>, Arc<Connector>)>>,
}

/// The HMAC keys the delivery side signs tokens with.
pub struct Keys {
    /// VERP envelope senders.
    pub verp: [u8; 32],
    /// List member tokens (List-Unsubscribe).
    pub list: [u8; 32],
}

/// The sessions' side: tell the scheduler about new mail without ever blocking.
#[derive(Clone)]
pub struct Arrivals {
    tx: mpsc::Sender<QueueId>,
    ctx: Arc<DeliveryContext>,
}

impl Arrivals {
    pub fn notify(&self, id: QueueId) {
        if self.tx.try_send(id).is_err() {
            self.ctx.rescan.store(true, Ordering::Release);
            self.ctx.wake.notify_one();
        }
    }

    /// Deliveries were made due by hand (`queue retry`): look at the store again.
    pub fn rescan(&self) {
        self.ctx.rescan.store(true, Ordering::Release);
        self.ctx.wake.notify_one();
    }
}

impl DeliveryContext {
    pub fn new(
        store: Store,
        settings: watch::Receiver<Arc<Settings>>,
        resolver: Resolver,
        signers: Signers,
        keys: Keys,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(DeliveryContext {
            store,
            settings,
            resolver,
            signers: RwLock::new(signers),
            verp_key: keys.verp,
            list_key: keys.list,
            metrics,
            stop,
            wake: Notify::new(),
            rescan: AtomicBool::new(true),
            connector: Mutex::new(None),
        })
    }

    /// The connector for `settings`: built once per settings generation (a SIGHUP makes a new
    /// one), not per connection.
    pub fn connector(&self, settings: &Arc<Settings>) -> Result<Arc<Connector>, rustls::Error> {
        let mut cached = self.connector.lock().ok();
        if let Some(Some((for_settings, connector))) = cached.as_deref()
            && Arc::ptr_eq(for_settings, settings)
        {
            return Ok(connector.clone());
        }
        let d = &settings.config.delivery;
        let connector = Arc::new(Connector::new(
            &settings.config.hostname,
            d.tls,
            d.connect_timeout.0,
            d.command_timeout.0,
        )?);
        if let Some(slot) = cached.as_deref_mut() {
            *slot = Some((settings.clone(), connector.clone()));
        }
        Ok(connector)
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }

    pub fn signers(&self) -> Signers {
        self.signers.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_signers(&self, signers: Signers) {
        if let Ok(mut s) = self.signers.write() {
            *s = signers;
        }
    }

    /// The channel sessions use; the receiver goes to [`run`].
    pub fn arrivals(self: &Arc<Self>) -> (Arrivals, mpsc::Receiver<QueueId>) {
        let (tx, rx) = mpsc::channel(ARRIVALS);
        (
            Arrivals {
                tx,
                ctx: self.clone(),
            },
            rx,
        )
    }
}
