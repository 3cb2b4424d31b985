//! Serves admin requests on the unix socket until shutdown: one JSON request line per
//! connection, one answer. Bounded like every listener: connections open at once, the
//! request's size and the time it may take to arrive, the time the answer may take to go.

use super::{Request, Response, lists};
use crate::config::Settings;
use crate::queue::Arrivals;
use crate::store::{QueueEntry, QueueId, Scope, Store, Suppression};
use crate::timefmt::rfc3339;
use serde_json::{Value, json};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Large enough for one chunk of a `list import` (the CLI sends 1,000 members at a time).
const MAX_REQUEST: u64 = 1024 * 1024;
/// A request line must arrive within this of the connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The client must read the whole answer within this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin connections open at once; the CLI opens one per command.
const MAX_CONNECTIONS: usize = 16;

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What admin requests may touch.
pub struct AdminContext {
    pub store: Store,
    pub arrivals: Arrivals,
    pub settings: watch::Receiver<Arc<Settings>>,
    /// HMAC key of list member tokens (invitations).
    pub list_key: [u8; 32],
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The data directory the daemon started with (backups copy its files).
    pub data_dir: std::path::PathBuf,
}

impl AdminContext {
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }
}

pub async fn serve(
    listener: UnixListener,
    ctx: Arc<AdminContext>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            c = listener.accept() => c,
        };
        match conn {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!("admin connection refused: {MAX_CONNECTIONS} already open");
                    continue;
                };
                let (ctx, stop) = (ctx.clone(), stop.clone());
                tracker.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = handle(stream, &ctx, &stop).await {
                        tracing::debug!(error = %e, "admin connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One request: its line must arrive within [`READ_TIMEOUT`] (and before shutdown), and the
/// client must take the answer within [`WRITE_TIMEOUT`].
async fn handle(
    stream: UnixStream,
    ctx: &AdminContext,
    stop: &CancellationToken,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::select! {
        r = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)) => {
            r.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
        }
        _ = stop.cancelled() => return Ok(()),
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => answer(req, ctx).await,
        Err(e) => Response::err(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(&out).await?;
        write.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "answer not taken in time"))?
}

async fn answer(req: Request, ctx: &AdminContext) -> Response {
    let store = &ctx.store;
    if req.adds_data()
        && let Some(reason) = store.refusal()
    {
        return Response::err(format!(
            "refused: {reason} (limits.min_free_space); free space on data_dir's file system, \
             or delete queued mail with `herald queue delete`"
        ));
    }
    match req {
        Request::ListLs => lists::ls(ctx),
        Request::Stats => {
            match crate::metrics::current(ctx.metrics.clone(), store.clone(), ctx.settings()).await
            {
                Ok(s) => Response::ok(json!(s)),
                Err(e) => Response::err(e),
            }
        }
        Request::ListMembers { list, status } => lists::members(ctx, &list, status.as_deref()),
        Request::ListAdd {
            list,
            members,
            consent,
            source,
        } => lists::add(ctx, &list, members, &consent, &source).await,
        Request::ListInvite { list, addresses } => lists::invite(ctx, &list, addresses).await,
        Request::ListRemove { list, addresses } => lists::remove(ctx, &list, addresses).await,
        Request::Backup { dir } => super::backup::create(ctx, dir).await,
        Request::Forget { address } if !address.contains('@') => {
            Response::err(format!("{address:?} is not an email address"))
        }
        Request::Forget { address } => match store.forget(&address).await {
            Ok(done) => Response::ok(json!(done)),
            Err(e) => Response::err(e.to_string()),
        },
        Request::QueueRetry { id } => queue_retry(ctx, id.as_deref()),
        Request::SuppressionList => match store.suppressions() {
            Ok(list) => Response::ok(json!(list.iter().map(suppression_json).collect::<Vec<_>>())),
            Err(e) => Response::err(e.to_string()),
        },
        Request::SuppressionAdd {
            address,
            scope,
            reason,
        } => suppression_add(store, address, &scope, reason).await,
        Request::SuppressionRemove { address } => match store.unsuppress(&address).await {
            Ok(true) => Response::ok(json!({ "removed": address })),
            Ok(false) => Response::err(format!("{address} is not suppressed")),
            Err(e) => Response::err(e.to_string()),
        },
        Request::Ping => Response::ok(json!("pong")),
        Request::QueueList => match store.list_queue() {
            Ok(entries) => Response::ok(Value::Array(entries.iter().map(entry_json).collect())),
            Err(e) => Response::err(e.to_string()),
        },
        Request::QueueShow { id } => match parse_id(&id) {
            Err(r) => r,
            Ok(id) => match (store.get_message(id), store.get_body(id)) {
                (Ok(Some(entry)), Ok(body)) => {
                    let mut v = entry_json(&entry);
                    v["body"] = json!(String::from_utf8_lossy(body.as_deref().unwrap_or_default()));
                    Response::ok(v)
                }
                (Ok(None), _) => Response::err(format!("no message {id} in the queue")),
                (Err(e), _) | (_, Err(e)) => Response::err(e.to_string()),
            },
        },
        Request::QueueDelete { id } => match parse_id(&id) {
            Err(r) => r,
            Ok(id) => match store.delete_message(id).await {
                Ok(true) => {
                    tracing::info!(queue_id = %id, "deleted by administrator");
                    Response::ok(json!({ "deleted": id.to_string() }))
                }
                Ok(false) => Response::err(format!("no message {id} in the queue")),
                Err(e) => Response::err(e.to_string()),
            },
        },
    }
}

/// `queue retry ID|--all`: makes deferred deliveries due now.
fn queue_retry(ctx: &AdminContext, id: Option<&str>) -> Response {
    let store = &ctx.store;
    let only = match id.map(parse_id).transpose() {
        Ok(only) => only,
        Err(r) => return r,
    };
    if let Some(id) = only {
        match store.get_message(id) {
            Ok(Some(_)) => {}
            Ok(None) => return Response::err(format!("no message {id} in the queue")),
            Err(e) => return Response::err(e.to_string()),
        }
    }
    match store.retry_now(only, crate::store::now_secs()) {
        Ok(n) => {
            ctx.arrivals.rescan();
            Response::ok(json!({ "rescheduled": n }))
        }
        Err(e) => Response::err(e.to_string()),
    }
}

/// `suppression add ADDR --scope S --reason TEXT`.
async fn suppression_add(store: &Store, address: String, scope: &str, reason: String) -> Response {
    let scope: Scope = match scope.parse() {
        Ok(s) => s,
        Err(e) => return Response::err(e),
    };
    if !address.contains('@') {
        return Response::err(format!("{address:?} is not an email address"));
    }
    let entry = Suppression {
        address,
        scope,
        reason,
        source: "admin".into(),
        created: crate::store::now_secs(),
    };
    match store.suppress(entry).await {
        Ok(stored) => Response::ok(suppression_json(&stored)),
        Err(e) => Response::err(e.to_string()),
    }
}

fn parse_id(id: &str) -> Result<QueueId, Response> {
    id.parse::<QueueId>().map_err(Response::err)
}

/// The `suppression ls --json` shape of DESIGN §2.
fn suppression_json(s: &Suppression) -> Value {
    json!({
        "address": s.address,
        "scope": s.scope,
        "reason": s.reason,
        "source": s.source,
        "created": rfc3339(s.created),
    })
}

/// The `queue ls --json` shape of DESIGN §2.
fn entry_json(e: &QueueEntry) -> Value {
    let m = &e.message;
    json!({
        "id": m.id.to_string(),
        "sender": m.sender,
        "message_id": m.message_id,
        "size": m.size,
        "created": rfc3339(m.created),
        "origin": m.origin,
        "dsn": m.dsn,
        "recipients": e.deliveries.iter().map(|d| json!({
            "address": d.address,
            "state": d.state,
            "attempts": d.attempts,
            "next_attempt": rfc3339(d.next_attempt),
            "last_reply": d.last_reply,
            "notify": d.notify,
            "orcpt": d.orcpt,
        })).collect::<Vec<_>>(),
    })
}
