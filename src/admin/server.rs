//! Serves admin requests on the unix socket until shutdown.

use super::{Request, Response};
use crate::store::{QueueEntry, QueueId, Store};
use crate::timefmt::rfc3339;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MAX_REQUEST: u64 = 64 * 1024;

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    store: Store,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            c = listener.accept() => c,
        };
        match conn {
            Ok((stream, _)) => {
                let store = store.clone();
                tracker.spawn(async move {
                    if let Err(e) = handle(stream, store).await {
                        tracing::debug!(error = %e, "admin connection failed");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "admin accept failed"),
        }
    }
}

async fn handle(stream: UnixStream, store: Store) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => answer(req, &store).await,
        Err(e) => Response::err(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

async fn answer(req: Request, store: &Store) -> Response {
    match req {
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
                    v["body"] = json!(String::from_utf8_lossy(&body.unwrap_or_default()));
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

fn parse_id(id: &str) -> Result<QueueId, Response> {
    id.parse::<QueueId>().map_err(Response::err)
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
