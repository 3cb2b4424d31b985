//! `herald serve`: [`Daemon::build`] opens everything and binds every socket; [`Daemon::run`]
//! starts the tasks, says READY, waits for its shutdown future (signals, in `serve`), then
//! drains. Reloads (SIGHUP) and the periodic chores live in `signals` and `chores`.
//!
//! Order: data dir → store → TLS → listeners and admin socket bound → tasks → READY. On
//! shutdown: STOPPING, stop accepting, idle sessions get `421 4.3.2`, open transactions and web
//! requests may finish within `limits.shutdown_grace` (then they are closed), the admin socket
//! gets [`ADMIN_GRACE`] to answer what it is answering, a final flush, exit 0.

mod bind;
mod chores;
mod signals;

use bind::bind_all;

use crate::config::{Config, Settings};
use crate::delivery::dkim::Signers;
use crate::delivery::mx::Resolver;
use crate::metrics::Metrics;
use crate::queue::{self, Arrivals, DeliveryContext};
use crate::smtp::{self, Role};
use crate::store::Store;
use crate::{admin, devuser, http, lists, tls};
use anyhow::Context as _;
use sd_notify::NotifyState;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After the sessions' drain, how long admin requests being answered may take.
pub const ADMIN_GRACE: Duration = Duration::from_secs(5);

/// Prints a line for operators and tests on stdout (logs go to stderr).
fn announce(line: &str) {
    println!("herald: {line}");
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(file: Option<PathBuf>, config: Config) -> anyhow::Result<()> {
    let signals = signals::Signals::register()?;
    let (daemon, reloader) = Daemon::build(file, config)?;
    daemon.run(signals.wait(reloader)).await
}

/// A daemon with its store open and its sockets bound, not yet serving.
pub struct Daemon {
    store: Store,
    smtp: Arc<smtp::Context>,
    delivery: Arc<DeliveryContext>,
    arrivals: Arrivals,
    /// Taken by `start`.
    arrivals_rx: Option<tokio::sync::mpsc::Receiver<crate::store::QueueId>>,
    expand_wake: lists::expand::Wake,
    web: Arc<http::Web>,
    admin: Arc<admin::AdminContext>,
    smtp_listeners: Vec<(Role, TcpListener)>,
    http_listeners: Vec<TcpListener>,
    /// Taken by `start`.
    admin_listener: Option<UnixListener>,
    admin_path: PathBuf,
    metrics: Arc<Metrics>,
}

impl Daemon {
    /// Opens the store, builds TLS and the shared contexts, binds every listener and the admin
    /// socket. Starts no task.
    pub fn build(
        file: Option<PathBuf>,
        config: Config,
    ) -> anyhow::Result<(Daemon, signals::Reloader)> {
        prepare_data_dir(&config)?;
        let store = Store::open(&config.data_dir.join("db")).context("opening the store")?;
        store.check_storage(config.limits.min_free_space.0);
        let dev_user = dev_user(&config)?;
        let (cert, key) = tls::cert_paths(&config)?;
        let acceptor = tls::acceptor(&cert, &key)?;
        let (settings_tx, settings) =
            watch::channel(Arc::new(Settings::new(config.clone(), dev_user.clone())?));
        let list_key = store.secret("lists")?;
        let verp_key = store.secret("verp")?;
        let metrics = Arc::new(Metrics::default());
        let dns: Vec<SocketAddr> = config
            .delivery
            .dns_servers
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let delivery = DeliveryContext::new(
            store.clone(),
            settings.clone(),
            Resolver::new(&dns, config.delivery.smtp_port)?,
            Signers::load(&config)?,
            queue::Keys {
                verp: verp_key,
                list: list_key,
            },
            metrics.clone(),
            CancellationToken::new(),
        );
        let (arrivals, arrivals_rx) = delivery.arrivals();
        let expand_wake = lists::expand::Wake::default();
        let shared = Shared {
            store: &store,
            settings: &settings,
            arrivals: &arrivals,
            metrics: &metrics,
            list_key,
        };
        let smtp = shared.smtp(acceptor, verp_key, &expand_wake);
        let web = shared.web();
        let admin = shared.admin(&config);
        let (smtp_listeners, http_listeners) = bind_all(&config)?;
        let admin_path = admin::socket_path(&config.data_dir);
        let admin_listener = admin::bind(&admin_path)
            .with_context(|| format!("cannot bind admin socket {}", admin_path.display()))?;
        let reloader = signals::Reloader {
            file,
            dev_user,
            settings: settings_tx,
            delivery: delivery.clone(),
        };
        let daemon = Daemon {
            store,
            smtp,
            delivery,
            arrivals,
            arrivals_rx: Some(arrivals_rx),
            expand_wake,
            web,
            admin,
            smtp_listeners,
            http_listeners,
            admin_listener: Some(admin_listener),
            admin_path,
            metrics,
        };
        Ok((daemon, reloader))
    }

    /// Serves until `shutdown` completes, then drains and flushes.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let tasks = self.start();
        notify(&[NotifyState::Ready]);
        announce(&format!(
            "ready (queue: {} messages)",
            self.store.queue_len()
        ));
        tracing::info!(hostname = %self.smtp.settings().config.hostname, "herald started");
        let ended = shutdown.await;
        notify(&[NotifyState::Stopping]);
        tasks.drain(&self.smtp).await;
        self.store.durable().await?;
        let _ = std::fs::remove_file(&self.admin_path);
        tracing::info!("herald stopped");
        ended
    }
}

/// What the front doors' contexts are made of.
struct Shared<'a> {
    store: &'a Store,
    settings: &'a watch::Receiver<Arc<Settings>>,
    arrivals: &'a Arrivals,
    metrics: &'a Arc<Metrics>,
    list_key: [u8; 32],
}

impl Shared<'_> {
    /// The SMTP sessions' context: new mail goes to the scheduler and wakes the expander.
    fn smtp(
        &self,
        tls: tokio_rustls::TlsAcceptor,
        verp_key: [u8; 32],
        expand: &lists::expand::Wake,
    ) -> Arc<smtp::Context> {
        let (arrivals, expand) = (self.arrivals.clone(), expand.clone());
        Arc::new(smtp::Context::new(smtp::Parts {
            settings: self.settings.clone(),
            store: self.store.clone(),
            on_queued: Box::new(move |id| {
                arrivals.notify(id);
                expand.notify();
            }),
            list_key: self.list_key,
            verp_key,
            tls,
            metrics: self.metrics.clone(),
        }))
    }

    /// The web listener's context: confirmation mail goes to the scheduler.
    fn web(&self) -> Arc<http::Web> {
        let arrivals = self.arrivals.clone();
        http::Web::new(
            self.store.clone(),
            self.settings.clone(),
            self.list_key,
            self.metrics.clone(),
            Box::new(move |id| arrivals.notify(id)),
        )
    }

    fn admin(&self, config: &Config) -> Arc<admin::AdminContext> {
        Arc::new(admin::AdminContext {
            store: self.store.clone(),
            arrivals: self.arrivals.clone(),
            settings: self.settings.clone(),
            list_key: self.list_key,
            metrics: self.metrics.clone(),
            data_dir: config.data_dir.clone(),
        })
    }
}

/// The daemon's trackers and the tokens that stop what they track.
struct Tasks {
    /// SMTP and web listeners and their connections: drained with `limits.shutdown_grace`.
    sessions: TaskTracker,
    /// The scheduler and its workers, the expander, housekeeping.
    delivery: TaskTracker,
    delivery_stop: CancellationToken,
    /// Admin socket, watchdog, memory trimmer, spool compactor: stopped after the drain.
    aux: TaskTracker,
    aux_stop: CancellationToken,
}

impl Daemon {
    /// Spawns every task of a serving daemon: delivery (scheduler, expander, housekeeping),
    /// the SMTP and web accept loops, the admin socket and the chores.
    fn start(&mut self) -> Tasks {
        let tasks = Tasks {
            sessions: TaskTracker::new(),
            delivery: TaskTracker::new(),
            delivery_stop: self.delivery.stop.clone(),
            aux: TaskTracker::new(),
            aux_stop: CancellationToken::new(),
        };
        let (store, settings) = (&self.store, &self.admin.settings);
        if let Some(rx) = self.arrivals_rx.take() {
            let (ctx, tracker) = (self.delivery.clone(), tasks.delivery.clone());
            tasks.delivery.spawn(queue::run(ctx, rx, tracker));
        }
        let arrivals = self.arrivals.clone();
        tasks.delivery.spawn(lists::expand::run(
            store.clone(),
            settings.clone(),
            self.expand_wake.clone(),
            move || arrivals.rescan(),
            tasks.delivery_stop.clone(),
        ));
        tasks.delivery.spawn(lists::housekeeping::run(
            store.clone(),
            settings.clone(),
            tasks.delivery_stop.clone(),
        ));
        for (role, listener) in std::mem::take(&mut self.smtp_listeners) {
            let (ctx, tracker) = (self.smtp.clone(), tasks.sessions.clone());
            tasks
                .sessions
                .spawn(smtp::serve(ctx, role, listener, tracker));
        }
        let stop = Arc::new(http::Stop {
            draining: self.smtp.draining.clone(),
            stop_now: self.smtp.stop_now.clone(),
        });
        for listener in std::mem::take(&mut self.http_listeners) {
            let (web, tracker) = (self.web.clone(), tasks.sessions.clone());
            tasks
                .sessions
                .spawn(http::serve(listener, web, stop.clone(), tracker));
        }
        self.start_aux(&tasks);
        tasks
    }

    fn start_aux(&mut self, tasks: &Tasks) {
        let (aux, stop) = (&tasks.aux, &tasks.aux_stop);
        if let Some(listener) = self.admin_listener.take() {
            aux.spawn(admin::serve(
                listener,
                self.admin.clone(),
                stop.clone(),
                aux.clone(),
            ));
        }
        chores::spawn_watchdog(aux, stop.clone());
        let counters = self.metrics.clone();
        crate::memory::spawn_trimmer(aux, stop.clone(), move || counters.activity());
        chores::spawn_compactor(aux, stop.clone(), self.store.clone());
        let settings = self.smtp.settings.clone();
        chores::spawn_space_monitor(aux, stop.clone(), self.store.clone(), settings);
    }
}

impl Tasks {
    /// Stops accepting, lets sessions and web requests finish within the grace period, then
    /// closes them; then gives the admin socket [`ADMIN_GRACE`].
    async fn drain(self, smtp: &smtp::Context) {
        tracing::info!("draining: no new connections, open transactions may finish");
        smtp.draining.cancel();
        self.delivery_stop.cancel();
        self.sessions.close();
        self.delivery.close();
        let grace = smtp.settings().config.limits.shutdown_grace.0;
        let both = async { tokio::join!(self.sessions.wait(), self.delivery.wait()) };
        if tokio::time::timeout(grace, both).await.is_err() {
            tracing::warn!("grace period over: closing remaining sessions");
            smtp.stop_now.cancel();
        }
        self.sessions.wait().await;
        self.aux_stop.cancel();
        self.aux.close();
        if tokio::time::timeout(ADMIN_GRACE, self.aux.wait())
            .await
            .is_err()
        {
            tracing::warn!("admin requests still running after the drain: not waiting for them");
        }
    }
}

fn prepare_data_dir(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    Ok(())
}

/// The generated development user of a first run, announced once.
fn dev_user(config: &Config) -> anyhow::Result<Option<crate::config::User>> {
    let dev = devuser::ensure(config).context("creating the development user")?;
    if let Some(dev) = &dev {
        match &dev.new_password {
            Some(p) => announce(&format!(
                "created development user \"dev\" with password \"{p}\" (saved in {}; loopback only)",
                dev.password_file.display()
            )),
            None => announce(&format!(
                "development user \"dev\": password in {}",
                dev.password_file.display()
            )),
        }
    }
    Ok(dev.map(|d| d.user))
}
