//! The reply an attempt ends with: an SMTP reply code, its enhanced status code (RFC 3463)
//! when there is one, and the text. Built once, where a remote reply is read or where Herald
//! makes its own (route verdicts, TLS setup, store faults), and rendered once ([`Display`]) for
//! logs, the store (`last_reply`) and DSNs. Pure: the bounce classifier and the DSN builder
//! take it as it is instead of parsing text back.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;

/// An enhanced mail system status code `class.subject.detail`, such as `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// 2 (success), 4 (persistent transient) or 5 (permanent).
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Status {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// Parses `5.1.1` (surrounding space allowed); the class must be 2, 4 or 5.
    pub fn parse(s: &str) -> Option<Status> {
        let mut it = s.trim().split('.');
        let mut part = || {
            it.next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let (class, subject, detail) = (part()?, part()?, part()?);
        if it.next().is_some() {
            return None;
        }
        let class = class
            .parse::<u8>()
            .ok()
            .filter(|c| matches!(c, 2 | 4 | 5))?;
        Some(Status::new(
            class,
            subject.parse().ok()?,
            detail.parse().ok()?,
        ))
    }

    /// The generic status of a reply code that carries none: `2.0.0`, `4.0.0` or `5.0.0`.
    pub fn of_code(code: u16) -> Status {
        match code / 100 {
            2 => Status::new(2, 0, 0),
            4 => Status::new(4, 0, 0),
            _ => Status::new(5, 0, 0),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply, remote or Herald's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    /// The text after the code and status, trimmed.
    pub text: String,
}

impl Reply {
    /// A reply Herald makes itself; it always carries an enhanced status.
    pub fn new(code: u16, status: Status, text: impl Into<String>) -> Reply {
        let text: String = text.into();
        Reply {
            code,
            status: Some(status),
            text: text.trim().to_string(),
        }
    }

    /// A reply as read from the wire; `esc` is the enhanced status as mail-send gives it, all
    /// zero when the reply had none.
    pub fn from_wire(code: u16, esc: [u8; 3], text: &str) -> Reply {
        let status = (matches!(esc[0], 2 | 4 | 5))
            .then(|| Status::new(esc[0], u16::from(esc[1]), u16::from(esc[2])));
        Reply {
            code,
            status,
            text: text.trim().to_string(),
        }
    }

    /// The enhanced status, or the generic one of the code (for a DSN's `Status:` field).
    pub fn status_or_generic(&self) -> Status {
        self.status.unwrap_or_else(|| Status::of_code(self.code))
    }

    /// The same reply with `(note)` added to its text.
    pub fn noted(mut self, note: &str) -> Reply {
        self.text = format!("{} ({note})", self.text);
        self
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {status} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let table: &[(&str, Option<Status>)] = &[
            ("5.1.1", Some(Status::new(5, 1, 1))),
            (" 4.4.7 ", Some(Status::new(4, 4, 7))),
            ("5.1.351", Some(Status::new(5, 1, 351))),
            ("2.0.0", Some(Status::new(2, 0, 0))),
            ("3.1.1", None),
            ("5.1", None),
            ("5.1.1.1", None),
            ("5.1.x", None),
            ("5..1", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(Status::parse(text), *want, "{text:?}");
        }
        assert_eq!(Status::new(5, 1, 10).to_string(), "5.1.10");
        assert_eq!(Status::of_code(554).to_string(), "5.0.0");
        assert_eq!(Status::of_code(451).to_string(), "4.0.0");
    }

    #[test]
    fn rendering() {
        let table: &[(Reply, &str, &str)] = &[
            (
                Reply::from_wire(
                    550,
                    [5, 1, 1],
                    " no such user (in reply to RCPT TO command) ",
                ),
                "550 5.1.1 no such user (in reply to RCPT TO command)",
                "5.1.1",
            ),
            (
                Reply::from_wire(554, [0, 0, 0], "rejected"),
                "554 rejected",
                "5.0.0",
            ),
            (
                Reply::from_wire(451, [0, 0, 0], "try later"),
                "451 try later",
                "4.0.0",
            ),
            (
                Reply::new(
                    556,
                    Status::new(5, 1, 10),
                    "x.test accepts no mail (null MX)",
                ),
                "556 5.1.10 x.test accepts no mail (null MX)",
                "5.1.10",
            ),
            (
                Reply::new(451, Status::new(4, 3, 0), "not yet").noted("gave up: expired"),
                "451 4.3.0 not yet (gave up: expired)",
                "4.3.0",
            ),
        ];
        for (reply, shown, status) in table {
            assert_eq!(reply.to_string(), *shown);
            assert_eq!(reply.status_or_generic().to_string(), *status, "{shown}");
        }
    }
}
