//! Accept loop for one listening socket: connection budgets (`conns.rs`), implicit TLS for
//! 465, and one session task per connection, all tracked for shutdown.

use super::conns::{Budget, Refusal, Slot};
use super::session::Session;
use super::state::SessionState;
use super::{Context, Role};
use crate::metrics::Rejection;
use crate::net::{Conn, SessionStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// At most this many refusals are being written at once; past it, excess connections are dropped.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;

/// Accepts until draining starts.
pub async fn serve(ctx: Arc<Context>, role: Role, listener: TcpListener, tracker: TaskTracker) {
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = ctx.draining.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let settings = ctx.settings();
        // Like Postfix's smtpd_client_event_limit_exceptions: trusted networks are exempt from
        // the per-address cap (they are the local applications); the budgets still hold.
        let trusted = settings
            .config
            .trusted_networks
            .iter()
            .any(|n| n.contains(&peer.ip()));
        let budget = Budget::of(&settings.config.limits);
        match ctx.conns.admit(role, peer.ip(), trusted, budget) {
            Ok(admitted) => {
                if admitted.evicted {
                    tracing::info!(%peer, listener = role.name(), "evicted a session of a heavier address");
                }
                let ctx = ctx.clone();
                tracker.spawn(handle(ctx, role, tcp, peer, trusted, admitted.slot));
            }
            Err(why) => {
                ctx.metrics.rejected(Rejection::Connections);
                // On 465 a plain-text 421 would be garbage inside TLS: just close.
                if role == Role::Submissions
                    || refusing.load(Ordering::Relaxed) >= MAX_REFUSALS_IN_FLIGHT
                {
                    continue;
                }
                refusing.fetch_add(1, Ordering::Relaxed);
                let refusing = refusing.clone();
                tracker.spawn(async move {
                    refuse(tcp, why).await;
                    refusing.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
}

async fn refuse(mut tcp: TcpStream, why: Refusal) {
    let text: &[u8] = match why {
        Refusal::Total | Refusal::Listener => {
            b"421 4.7.0 Too many connections, try again later\r\n"
        }
        Refusal::PerAddress => {
            b"421 4.7.0 Too many connections from your address, try again later\r\n"
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tcp.write_all(text).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// Runs one session on an accepted stream in its `slot`: on 465 the TLS handshake comes first
/// (a failed, slow or evicted one ends the connection unanswered). The daemon passes TCP
/// streams; the in-process tests pass `tokio::io::duplex` pipes through the same path.
pub(super) async fn handle<S: SessionStream>(
    ctx: Arc<Context>,
    role: Role,
    stream: S,
    peer: SocketAddr,
    trusted: bool,
    slot: Slot,
) {
    let settings = ctx.settings();
    let trusted = trusted && role.is_submission();
    let mut conn = Conn::Plain(stream);
    if role == Role::Submissions {
        let limit = settings.config.limits.tls_handshake_timeout.0;
        let evicted = slot.evicted().clone();
        let shaken = tokio::select! {
            ok = conn.accept_tls(&ctx.tls, limit) => ok,
            _ = evicted.cancelled() => false,
        };
        if !shaken {
            return;
        }
    }
    let state = SessionState::new(role, peer, conn.is_tls(), trusted);
    Session::new(ctx, conn, state, slot).run().await;
}
