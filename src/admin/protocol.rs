//! Request and response shapes on the admin socket.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    QueueList,
    QueueShow {
        id: String,
    },
    QueueDelete {
        id: String,
    },
    /// `id: None` retries every deferred delivery.
    QueueRetry {
        id: Option<String>,
    },
    SuppressionList,
    SuppressionAdd {
        address: String,
        scope: String,
        reason: String,
    },
    SuppressionRemove {
        address: String,
    },
    ListLs,
    ListMembers {
        list: String,
        status: Option<String>,
    },
    /// Confirmed members with where their consent came from (`list add`, `list import`).
    ListAdd {
        list: String,
        /// Address and optional name.
        members: Vec<(String, Option<String>)>,
        consent: String,
        /// `admin` or `import`.
        source: String,
    },
    ListInvite {
        list: String,
        addresses: Vec<String>,
    },
    ListRemove {
        list: String,
        addresses: Vec<String>,
    },
    Forget {
        address: String,
    },
    /// The aggregate counters (`herald stats`).
    Stats,
    /// A consistent backup into `dir` (absolute; empty or absent).
    Backup {
        dir: String,
    },
}

impl Request {
    /// Adds to what the store holds, so it is refused while the store refuses new mail (disk
    /// space below `limits.min_free_space`). Deleting from the queue stays allowed: it frees
    /// space.
    pub fn adds_data(&self) -> bool {
        matches!(
            self,
            Request::QueueRetry { .. }
                | Request::SuppressionAdd { .. }
                | Request::SuppressionRemove { .. }
                | Request::ListAdd { .. }
                | Request::ListInvite { .. }
                | Request::ListRemove { .. }
                | Request::Forget { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}
