//! Session state shared by the verb handlers, and what a handler tells the session to do next.

use super::Role;
use super::auth::AuthStep;
use super::body::ChunkReceiver;
use super::reply::Reply;
use crate::store::{DsnEnvelope, NewRecipient};
use std::net::SocketAddr;

/// One mail transaction: MAIL, RCPTs, then DATA or BDAT chunks.
pub struct Transaction {
    /// Empty for the null sender `<>`.
    pub sender: String,
    pub dsn: DsnEnvelope,
    pub recipients: Vec<NewRecipient>,
    /// Present once the first BDAT chunk arrived.
    pub chunks: Option<ChunkReceiver>,
    /// A BDAT in this transaction failed: swallow the rest until LAST, then refuse.
    pub chunk_error: Option<Reply>,
    /// The id of the list this message is posted to (its address was a recipient).
    pub list: Option<String>,
}

pub struct SessionState {
    pub role: Role,
    pub peer: SocketAddr,
    pub tls: bool,
    pub helo: Option<String>,
    pub esmtp: bool,
    /// The authenticated user name.
    pub user: Option<String>,
    /// The client is in `trusted_networks` (submission without AUTH, like Postfix's mynetworks).
    pub trusted: bool,
    pub tx: Option<Transaction>,
    /// A SASL exchange in progress.
    pub auth: Option<AuthStep>,
}

impl SessionState {
    pub fn new(role: Role, peer: SocketAddr, tls: bool, trusted: bool) -> Self {
        SessionState {
            role,
            peer,
            tls,
            helo: None,
            esmtp: false,
            user: None,
            trusted,
            tx: None,
            auth: None,
        }
    }

    /// RFC 3848 protocol name for the Received field.
    pub fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls, self.user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }
}

/// What the session does after writing a handler's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Close,
    /// Flush, discard anything pipelined, and run the TLS handshake.
    StartTls,
    /// Read message content until `CRLF.CRLF`.
    ReadData,
    /// Read exactly `size` bytes of a BDAT chunk.
    ReadChunk {
        size: u64,
        last: bool,
    },
}

/// A handler's result: the reply to write and what comes next.
pub struct Step {
    pub reply: Reply,
    pub next: Next,
}

impl Step {
    pub fn reply(reply: Reply) -> Self {
        Step {
            reply,
            next: Next::Continue,
        }
    }
    pub fn then(reply: Reply, next: Next) -> Self {
        Step { reply, next }
    }
}

impl From<Reply> for Step {
    fn from(reply: Reply) -> Self {
        Step::reply(reply)
    }
}
