//! SMTP replies: a code, an enhanced status code (RFC 3463) and text. Only the session writes them.

use crate::metrics::Rejection;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `"5.7.1"`; empty only for the greeting and EHLO/HELO
    /// replies, where RFC 2034 §3 says it must not appear.
    pub status: &'static str,
    pub lines: Vec<String>,
    /// A refusal the metrics count (`herald_rejected_total{reason}`), when the session sends it.
    pub rejection: Option<Rejection>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Reply {
            code,
            status,
            lines: vec![text.into()],
            rejection: None,
        }
    }

    /// The same reply, counted as a refusal of this kind when sent.
    pub fn counted(mut self, why: Rejection) -> Self {
        self.rejection = Some(why);
        self
    }

    /// A reply without an enhanced status code (greeting, EHLO, HELO).
    pub fn plain(code: u16, lines: Vec<String>) -> Self {
        Reply {
            code,
            status: "",
            lines,
            rejection: None,
        }
    }

    pub fn ok(text: impl Into<String>) -> Self {
        Reply::new(250, "2.0.0", text)
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let text = line.replace(['\r', '\n'], " ");
            let item = if self.status.is_empty() {
                format!("{}{sep}{text}\r\n", self.code)
            } else {
                format!("{}{sep}{} {text}\r\n", self.code, self.status)
            };
            out.extend_from_slice(item.as_bytes());
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{} {}\r\n", self.code, self.status).as_bytes());
        }
    }
}

/// Replies used from more than one place, and the session's own.
pub mod common {
    use super::{Rejection, Reply};
    use crate::smtp::command::ParseError;

    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.5.1", text)
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down, closing connection")
    }
    pub fn timeout() -> Reply {
        Reply::new(421, "4.4.2", "Timeout, closing connection").counted(Rejection::Timeout)
    }
    pub fn evicted() -> Reply {
        Reply::new(421, "4.7.0", "Too many connections, closing this one")
            .counted(Rejection::Evicted)
    }
    pub fn too_many_idle_commands() -> Reply {
        Reply::new(421, "4.7.0", "Too many commands without mail, closing")
            .counted(Rejection::IdleCommands)
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing connection")
    }
    /// The store refuses new mail: free space below `limits.min_free_space`, or a failed
    /// write it has not yet recovered from (`store::Storage`).
    pub fn insufficient_storage() -> Reply {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    }
    pub fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }
    /// The answer to a line that is not a command.
    pub fn parse_error(e: ParseError) -> Reply {
        match e {
            ParseError::Unknown => Reply::new(500, "5.5.1", "Command unrecognized"),
            ParseError::Garbled => {
                Reply::new(500, "5.5.2", "Syntax error: invalid characters in command")
            }
            ParseError::Syntax(text) => Reply::new(501, "5.5.4", text),
            ParseError::Path(p) => Reply::new(501, "5.1.3", p.text()),
            ParseError::NullRecipient => Reply::new(501, "5.1.3", "Null recipient not allowed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let mut out = Vec::new();
        Reply::new(550, "5.7.1", "Relaying denied").write_to(&mut out);
        assert_eq!(out, b"550 5.7.1 Relaying denied\r\n");
        out.clear();
        Reply::plain(250, vec!["host".into(), "PIPELINING".into()]).write_to(&mut out);
        assert_eq!(out, b"250-host\r\n250 PIPELINING\r\n");
        out.clear();
        Reply::new(500, "5.5.2", "bad\r\ninjected").write_to(&mut out);
        assert_eq!(out, b"500 5.5.2 bad  injected\r\n");
    }
}
