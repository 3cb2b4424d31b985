//! `herald serve`: binds every listener, then runs until SIGTERM, reloading on SIGHUP.
//!
//! Order: data dir → store → TLS → listeners and admin socket bound → READY. On SIGTERM:
//! STOPPING, stop accepting, idle sessions get `421 4.3.2`, open transactions may finish
//! within `limits.shutdown_grace`, a final flush, exit 0.

use crate::config::{self, Config, Settings};
use crate::delivery::dkim::Signers;
use crate::delivery::mx::Resolver;
use crate::metrics::Metrics;
use crate::queue::{self, DeliveryContext};
use crate::smtp::{self, AuthThrottle, ConnLimiter, Role};
use crate::store::Store;
use crate::{admin, devuser, http, lists, tls};
use anyhow::Context as _;
use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Prints a line for operators and tests on stdout (logs go to stderr).
fn announce(line: &str) {
    println!("herald: {line}");
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub async fn serve(file: Option<PathBuf>, config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let store = Store::open(&config.data_dir.join("db")).context("opening the store")?;
    let dev = devuser::ensure(&config).context("creating the development user")?;
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
    let dev_user = dev.map(|d| d.user);
    let (cert, key) = tls::cert_paths(&config)?;
    let acceptor = tls::acceptor(&cert, &key)?;
    let (settings_tx, settings_rx) =
        watch::channel(Arc::new(Settings::new(config.clone(), dev_user.clone())?));
    let signers = Signers::load(&config)?;
    let dns: Vec<SocketAddr> = config
        .delivery
        .dns_servers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let resolver = Resolver::new(&dns, config.delivery.smtp_port)?;
    let delivery_stop = CancellationToken::new();
    let list_key = store.secret("lists")?;
    let verp_key = store.secret("verp")?;
    let metrics = Arc::new(Metrics::default());
    let delivery = DeliveryContext::new(
        store.clone(),
        settings_rx.clone(),
        resolver,
        signers,
        queue::Keys {
            verp: verp_key,
            list: list_key,
        },
        metrics.clone(),
        delivery_stop.clone(),
    );
    let (arrivals, arrivals_rx) = delivery.arrivals();
    let delivery_tasks = TaskTracker::new();
    delivery_tasks.spawn(queue::run(
        delivery.clone(),
        arrivals_rx,
        delivery_tasks.clone(),
    ));

    let expand_wake = lists::expand::Wake::default();
    delivery_tasks.spawn(lists::expand::run(
        store.clone(),
        settings_rx.clone(),
        expand_wake.clone(),
        {
            let arrivals = arrivals.clone();
            move || arrivals.rescan()
        },
        delivery_stop.clone(),
    ));
    delivery_tasks.spawn(lists::housekeeping::run(
        store.clone(),
        settings_rx.clone(),
        delivery_stop.clone(),
    ));

    let ctx = Arc::new(smtp::Context {
        settings: settings_rx,
        store: store.clone(),
        on_queued: Box::new({
            let arrivals = arrivals.clone();
            let expand = expand_wake.clone();
            move |id| {
                arrivals.notify(id);
                expand.notify();
            }
        }),
        list_key,
        verp_key,
        tls: acceptor,
        auth_throttle: AuthThrottle::default(),
        auth_slots: Semaphore::new(2),
        conns: ConnLimiter::default(),
        draining: CancellationToken::new(),
        stop_now: CancellationToken::new(),
        metrics: metrics.clone(),
    });
    let tracker = TaskTracker::new();
    let l = &config.listen;
    for (role, addrs) in [
        (Role::Submission, &l.submission),
        (Role::Submissions, &l.submissions),
        (Role::Inbound, &l.inbound),
    ] {
        for addr in addrs {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("listen.{}: bad address {addr}", role.name()))?;
            let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
            announce(&format!(
                "listening {} {}",
                role.name(),
                listener.local_addr()?
            ));
            tracker.spawn(smtp::serve(ctx.clone(), role, listener, tracker.clone()));
        }
    }
    let web = http::Web::new(
        store.clone(),
        ctx.settings.clone(),
        list_key,
        metrics.clone(),
        Box::new({
            let arrivals = arrivals.clone();
            move |id| arrivals.notify(id)
        }),
    );
    for addr in &l.http {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("listen.http: bad address {addr}"))?;
        let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        announce(&format!("listening http {}", listener.local_addr()?));
        tracker.spawn(http::serve(listener, web.clone(), ctx.draining.clone()));
    }
    let admin_path = admin::socket_path(&config.data_dir);
    let admin_listener = admin::bind(&admin_path)
        .with_context(|| format!("cannot bind admin socket {}", admin_path.display()))?;
    // Admin and watchdog outlive the sessions' drain, so they have their own tracker.
    let aux = TaskTracker::new();
    let admin_stop = CancellationToken::new();
    let admin_ctx = Arc::new(admin::AdminContext {
        store: store.clone(),
        arrivals: arrivals.clone(),
        settings: ctx.settings.clone(),
        list_key,
        metrics: metrics.clone(),
        data_dir: config.data_dir.clone(),
    });
    aux.spawn(admin::serve(
        admin_listener,
        admin_ctx,
        admin_stop.clone(),
        aux.clone(),
    ));
    spawn_watchdog(&aux, admin_stop.clone());
    let counters = metrics.clone();
    crate::memory::spawn_trimmer(&aux, admin_stop.clone(), move || counters.activity());
    spawn_compactor(&aux, admin_stop.clone(), store.clone());

    notify(&[NotifyState::Ready]);
    announce(&format!("ready (queue: {} messages)", store.queue_len()));
    tracing::info!(hostname = %config.hostname, "herald started");

    wait_for_signals(file, dev_user, &settings_tx, &delivery).await?;

    notify(&[NotifyState::Stopping]);
    tracing::info!("draining: no new connections, open transactions may finish");
    ctx.draining.cancel();
    delivery_stop.cancel();
    tracker.close();
    delivery_tasks.close();
    let grace = ctx.settings().config.limits.shutdown_grace.0;
    let both = async { tokio::join!(tracker.wait(), delivery_tasks.wait()) };
    if tokio::time::timeout(grace, both).await.is_err() {
        tracing::warn!("grace period over: closing remaining sessions");
        ctx.stop_now.cancel();
    }
    tracker.wait().await;
    admin_stop.cancel();
    aux.close();
    aux.wait().await;
    store.durable().await?;
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("herald stopped");
    Ok(())
}

/// Binds a listening socket with a deep accept backlog, so a burst of connections waits in the
/// kernel for the accept loop (which answers past the limits with `421`) instead of being dropped.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Handles SIGHUP (reload) until SIGTERM or SIGINT arrives.
async fn wait_for_signals(
    file: Option<PathBuf>,
    dev_user: Option<config::User>,
    settings: &watch::Sender<Arc<Settings>>,
    delivery: &DeliveryContext,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => reload(file.as_deref(), dev_user.clone(), settings, delivery),
        }
    }
}

fn reload(
    file: Option<&std::path::Path>,
    dev_user: Option<config::User>,
    settings: &watch::Sender<Arc<Settings>>,
    delivery: &DeliveryContext,
) {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    notify(&states);
    let loaded = config::load(file)
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            let signers = Signers::load(&loaded.config).map_err(|e| e.to_string())?;
            let dev_user = if loaded.config.users.is_empty() {
                dev_user
            } else {
                None
            };
            let new = Settings::new(loaded.config, dev_user).map_err(|e| e.to_string())?;
            Ok((new, signers))
        });
    match loaded {
        Ok((new, signers)) => {
            delivery.set_signers(signers);
            let old = settings.borrow().config.listen.clone();
            if serde_json::to_string(&old).ok() != serde_json::to_string(&new.config.listen).ok() {
                tracing::warn!("listen addresses changed: they take effect after a restart");
            }
            settings.send_replace(Arc::new(new));
            tracing::info!("configuration reloaded");
            announce("reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "reload refused: keeping the previous configuration");
            announce(&format!("reload refused: {e}"));
        }
    }
    notify(&[NotifyState::Ready]);
}

/// Every half minute, moves the bodies out of sparse spool segments (`store/spool.rs`), so
/// that a few long-deferred messages do not keep whole segments on disk.
fn spawn_compactor(tracker: &TaskTracker, stop: CancellationToken, store: Store) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.compact_spool()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(moved)) => {
                    tracing::info!(bodies = moved, "compacted the body spool");
                    if let Err(e) = store.durable().await {
                        tracing::error!(error = %e, "flushing after compacting the body spool");
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "compacting the body spool"),
                Err(e) => tracing::error!(error = %e, "compacting the body spool"),
            }
        }
    });
}

fn spawn_watchdog(tracker: &TaskTracker, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => notify(&[NotifyState::Watchdog]),
            }
        }
    });
}
