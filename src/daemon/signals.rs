//! Signals of a running daemon: SIGHUP reloads the configuration (and DKIM keys), SIGTERM
//! and SIGINT end [`wait`], which starts the drain.

use super::announce;
use crate::config::{self, Settings};
use crate::delivery::dkim::Signers;
use crate::queue::DeliveryContext;
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

/// What a reload needs: where the config came from and what it swaps.
pub struct Reloader {
    pub file: Option<PathBuf>,
    pub dev_user: Option<config::User>,
    pub settings: watch::Sender<Arc<Settings>>,
    pub delivery: Arc<DeliveryContext>,
}

/// The daemon's signal handlers, registered before anything is announced: a SIGTERM that
/// comes right after READY must start the drain, not kill the process (the default action).
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Handles SIGHUP (reload) until SIGTERM or SIGINT arrives.
    pub async fn wait(mut self, reloader: Reloader) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Ok(()),
                _ = self.int.recv() => return Ok(()),
                _ = self.hup.recv() => reloader.reload(),
            }
        }
    }
}

impl Reloader {
    fn reload(&self) {
        let mut states = vec![NotifyState::Reloading];
        states.extend(NotifyState::monotonic_usec_now().ok());
        super::notify(&states);
        let loaded = config::load(self.file.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                let signers = Signers::load(&loaded.config).map_err(|e| e.to_string())?;
                let dev_user = if loaded.config.users.is_empty() {
                    self.dev_user.clone()
                } else {
                    None
                };
                let new = Settings::new(loaded.config, dev_user).map_err(|e| e.to_string())?;
                Ok((new, signers))
            });
        match loaded {
            Ok((new, signers)) => {
                self.delivery.set_signers(signers);
                let old = self.settings.borrow().config.listen.clone();
                if serde_json::to_string(&old).ok()
                    != serde_json::to_string(&new.config.listen).ok()
                {
                    tracing::warn!("listen addresses changed: they take effect after a restart");
                }
                self.settings.send_replace(Arc::new(new));
                tracing::info!("configuration reloaded");
                announce("reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused: keeping the previous configuration");
                announce(&format!("reload refused: {e}"));
            }
        }
        super::notify(&[NotifyState::Ready]);
    }
}
