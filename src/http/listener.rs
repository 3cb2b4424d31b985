//! The web listener's accept loop, bounded like the SMTP listeners (DESIGN §16): at most
//! `http.max_connections` at once over every `listen.http` address (past it, a new connection
//! is closed at once); a request's head must arrive within `http.header_timeout` of when the
//! server starts waiting for it, and its body within that again; a connection on which no byte
//! moves for `http.idle_timeout` is closed. On drain, connections finish the request they are
//! in and close; when the grace period ends they are closed where they stand.

use super::{BODY_LIMIT, Web};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The read buffer, which bounds a request head too.
const MAX_BUF: usize = 32 * 1024;

/// When the listener stops: `draining` lets connections finish their request, `stop_now`
/// closes them.
pub struct Stop {
    pub draining: CancellationToken,
    pub stop_now: CancellationToken,
}

/// Open web connections over every listener; a slot frees itself when dropped.
#[derive(Default)]
pub struct Connections(Arc<AtomicUsize>);

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    fn admit(&self, max: usize) -> Option<Slot> {
        let n = self.0.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.0.clone());
        (n < max).then_some(slot)
    }
}

/// Serves `listener` until `stop.draining`; connection tasks go on `tracker`.
pub async fn serve(listener: TcpListener, web: Arc<Web>, stop: Arc<Stop>, tracker: TaskTracker) {
    let app = super::router(web.clone());
    loop {
        let accepted = tokio::select! {
            _ = stop.draining.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = web.settings().config.http.max_connections;
        let Some(slot) = web.connections.admit(max) else {
            tracing::debug!(%peer, "http connection refused: too many open");
            continue;
        };
        let (app, web, stop) = (app.clone(), web.clone(), stop.clone());
        tracker.spawn(async move {
            let _slot = slot;
            connection(tcp, peer, app, &web, &stop).await;
        });
    }
}

async fn connection(tcp: TcpStream, peer: SocketAddr, app: Router, web: &Web, stop: &Stop) {
    let http = web.settings().config.http.clone();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout.0)
        .max_buf_size(MAX_BUF);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = http.idle_timeout.0;
    let mut draining = false;
    loop {
        let quiet = activity.quiet();
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "http connection ended");
                }
                return;
            }
            _ = tokio::time::sleep(idle.saturating_sub(quiet)) => {
                if activity.quiet() >= idle {
                    tracing::debug!(%peer, "http connection idle: closed");
                    return;
                }
            }
            _ = stop.draining.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stop.stop_now.cancelled() => return,
        }
    }
}

/// Middleware: the request's body must arrive within `http.header_timeout` (the head already
/// did); a slow body gets `408` and the connection is closed.
pub async fn body_deadline(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let limit = web.settings().config.http.header_timeout.0;
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "request body too large or unreadable\n",
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "request body too slow\n",
        )
            .into_response(),
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
    /// How long nothing has moved.
    fn quiet(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream that notes every byte moved in [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
