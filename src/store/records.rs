//! The records the store keeps, as plain data (no sled types leak out of `store`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A queue id: microseconds since the epoch at acceptance, bumped to stay unique; shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl FromStr for QueueId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s.trim(), 16)
            .map(QueueId)
            .map_err(|_| format!("{s:?} is not a queue id (16 hex digits)"))
    }
}

/// How a message reached us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Origin {
    /// Authenticated submission by a configured user.
    Submission { user: String },
    /// Submission from a `trusted_networks` client without AUTH.
    Trusted,
    /// Inbound (port 25) mail for one of our own addresses.
    Inbound,
    /// Made by Herald itself (delivery status notifications).
    Generated,
}

/// RFC 3461 parameters given with MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnEnvelope {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub envid: Option<String>,
}

/// A recipient as accepted at RCPT, with its RFC 3461 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecipient {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notify: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub orcpt: Option<String>,
}

/// Everything a session hands the store when a message is accepted.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    pub message_id: Option<String>,
    pub origin: Origin,
    pub client: String,
    pub dsn: DsnEnvelope,
    pub body: Vec<u8>,
}

/// The stored envelope of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: QueueId,
    pub sender: String,
    pub message_id: Option<String>,
    pub size: u64,
    /// Unix seconds.
    pub created: u64,
    pub origin: Origin,
    pub client: String,
    pub dsn: DsnEnvelope,
    pub recipients: u32,
    /// Deliveries finished (delivered or failed); the message goes when this reaches `recipients`.
    #[serde(default)]
    pub finished: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Queued,
    Deferred,
    Delivered,
    Failed,
}

/// One delivery: a (message, recipient) pair with its own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Position among the message's recipients (part of the key).
    #[serde(default)]
    pub index: u32,
    pub address: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// Unix seconds.
    pub next_attempt: u64,
    pub last_reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notify: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub orcpt: Option<String>,
}

/// Suppression scope (DESIGN §6): `global` stops everything, `marketing` stops list mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    Marketing,
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "global" => Ok(Scope::Global),
            "marketing" => Ok(Scope::Marketing),
            other => Err(format!("unknown scope {other:?} (global or marketing)")),
        }
    }
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub address: String,
    pub scope: Scope,
    pub reason: String,
    /// Where it came from: `admin`, `bounce`, `complaint`, `unsubscribe` …
    pub source: String,
    /// Unix seconds.
    pub created: u64,
}
