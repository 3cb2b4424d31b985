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
    /// A post to a list: member copies are added afterwards by the expander.
    pub list: Option<ListPost>,
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
    /// Deliveries finished (delivered or failed); the message goes when this reaches `recipients`
    /// and no list expansion is pending.
    #[serde(default)]
    pub finished: u32,
    /// A post to a list: the copies for its members are added by the expander.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub list: Option<ListPost>,
    /// The expander has not yet added every member's copy.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub expanding: bool,
}

/// What the store remembers about a post to a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPost {
    /// The list id.
    pub list: String,
    /// A service announcement (`Herald-Category: service`): goes to unsubscribed members too.
    #[serde(default)]
    pub service: bool,
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
    /// For a list copy: the member it goes to (its headers and token are made per member).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub member: Option<u64>,
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

/// Where a list member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Signed up or invited, not yet confirmed.
    Pending,
    Confirmed,
    Unsubscribed,
    Bounced,
    Complained,
}

impl MemberStatus {
    pub const ALL: [MemberStatus; 5] = [
        MemberStatus::Pending,
        MemberStatus::Confirmed,
        MemberStatus::Unsubscribed,
        MemberStatus::Bounced,
        MemberStatus::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Confirmed => "confirmed",
            MemberStatus::Unsubscribed => "unsubscribed",
            MemberStatus::Bounced => "bounced",
            MemberStatus::Complained => "complained",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemberStatus::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?} (pending, confirmed, unsubscribed, bounced or complained)"
                )
            })
    }
}

/// Where a member's consent came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// `web`, `invite`, `import: TEXT`, `admin: TEXT` …
    pub source: String,
    /// Unix seconds.
    pub at: u64,
    /// The client address of a web sign-up or confirmation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip: Option<String>,
}

/// A list member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Unique across lists; what tokens carry.
    pub id: u64,
    pub list: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub status: MemberStatus,
    pub consent: Consent,
    /// Unix seconds of the last status change.
    pub since: u64,
}
