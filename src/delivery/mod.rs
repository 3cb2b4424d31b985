//! Delivery to remote mail exchangers: routes (`mx`), pacing (`limiter`), the SMTP client
//! (`client` and `transaction`, the only users of mail-send, with the pure `wire` encoding),
//! DKIM signing (`dkim`). Every attempt ends in an [`Outcome`] — data, not an error — that
//! carries a typed [`Reply`] and the [`Origin`] of what decided it.

pub mod client;
pub mod dkim;
pub mod limiter;
pub mod mx;
mod transaction;
pub mod wire;

pub use crate::mail::{Reply, Status};

/// Who an outcome is about; it decides what a failure may do beyond the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Said by or about the destination: its replies, its DNS verdicts (null MX, no such
    /// domain), its network failures. Only remote failures feed the bounce classifier and the
    /// bounce policy (soft-bounce counts, suppression).
    Remote,
    /// Herald's own fault: a store error, a damaged or unreadable body, TLS setup. It never
    /// counts against the recipient; a permanent one still tells the sender (DSN).
    Local,
    /// Herald's rule: the recipient is suppressed or no longer a receiving list member. Silent:
    /// no DSN, no bounce.
    Policy,
}

/// How one recipient's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The remote server said 2xx after the message content.
    Delivered { reply: Reply },
    /// Try again later; `throttle` when the remote signalled a rate problem or was unreachable.
    Transient {
        reply: Reply,
        origin: Origin,
        throttle: bool,
    },
    /// 5xx, a route that can never work, a body that can never be read, or a refusal by rule.
    Permanent { reply: Reply, origin: Origin },
}

impl Outcome {
    pub fn reply(&self) -> &Reply {
        match self {
            Outcome::Delivered { reply }
            | Outcome::Transient { reply, .. }
            | Outcome::Permanent { reply, .. } => reply,
        }
    }

    pub fn origin(&self) -> Origin {
        match self {
            Outcome::Delivered { .. } => Origin::Remote,
            Outcome::Transient { origin, .. } | Outcome::Permanent { origin, .. } => *origin,
        }
    }

    /// A transient failure that is no sign of throttling.
    pub fn transient(origin: Origin, reply: Reply) -> Outcome {
        Outcome::Transient {
            reply,
            origin,
            throttle: false,
        }
    }

    pub fn permanent(origin: Origin, reply: Reply) -> Outcome {
        Outcome::Permanent { reply, origin }
    }

    /// What a remote server's reply means (pure, table-tested).
    pub fn remote(reply: Reply) -> Outcome {
        match reply.code {
            200..=299 => Outcome::Delivered { reply },
            500..=599 => Outcome::permanent(Origin::Remote, reply),
            code => {
                let lower = reply.text.to_ascii_lowercase();
                let rate_words = [
                    "rate",
                    "too many",
                    "throttl",
                    "slow down",
                    "try again later",
                    "temporarily deferred",
                ];
                let policy = reply.status.is_some_and(|s| s.class == 4 && s.subject == 7);
                let throttle = matches!(code, 421 | 450 | 451 | 452)
                    && (policy || rate_words.iter().any(|w| lower.contains(w)));
                Outcome::Transient {
                    reply,
                    origin: Origin::Remote,
                    throttle,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let table: &[(u16, [u8; 3], &str, &str)] = &[
            (250, [2, 0, 0], "ok", "delivered"),
            (550, [5, 1, 1], "no such user", "permanent"),
            (554, [0, 0, 0], "rejected", "permanent"),
            (421, [4, 7, 0], "try later", "throttle"),
            (451, [4, 3, 0], "rate limit exceeded", "throttle"),
            (421, [4, 4, 2], "Too many connections", "throttle"),
            (450, [4, 2, 0], "mailbox busy", "transient"),
            (451, [4, 3, 0], "local error", "transient"),
        ];
        for (code, esc, text, want) in table {
            let outcome = Outcome::remote(Reply::from_wire(*code, *esc, text));
            let got = match &outcome {
                Outcome::Delivered { .. } => "delivered",
                Outcome::Permanent { .. } => "permanent",
                Outcome::Transient { throttle: true, .. } => "throttle",
                Outcome::Transient {
                    throttle: false, ..
                } => "transient",
            };
            assert_eq!(got, *want, "{code} {esc:?} {text}");
            assert_eq!(outcome.origin(), Origin::Remote);
        }
        let refused = Outcome::remote(Reply::from_wire(550, [5, 1, 1], "x"));
        assert_eq!(refused.reply().to_string(), "550 5.1.1 x");
    }
}
