//! Delivery to remote mail exchangers: routes (`mx`), pacing (`limiter`), the SMTP client
//! (`client` and `transaction`, the only users of mail-send, with the pure `wire` encoding),
//! DKIM signing (`dkim`). Every attempt ends in an [`Outcome`] — data, not an error.

pub mod client;
pub mod dkim;
pub mod limiter;
pub mod mx;
mod transaction;
pub mod wire;

/// How one recipient's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The remote server said 2xx after the message content.
    Delivered { reply: String },
    /// Try again later; `throttle` when the remote signalled a rate problem or was unreachable.
    Transient { reply: String, throttle: bool },
    /// 5xx or a route that can never work.
    Permanent { reply: String },
}

impl Outcome {
    pub fn reply(&self) -> &str {
        match self {
            Outcome::Delivered { reply }
            | Outcome::Transient { reply, .. }
            | Outcome::Permanent { reply } => reply,
        }
    }
}

/// Classifies a remote reply (pure, table-tested).
pub fn classify_reply(code: u16, esc: [u8; 3], text: &str) -> Outcome {
    let reply = if esc[0] > 0 {
        format!("{code} {}.{}.{} {}", esc[0], esc[1], esc[2], text.trim())
    } else {
        format!("{code} {}", text.trim())
    };
    match code {
        200..=299 => Outcome::Delivered { reply },
        500..=599 => Outcome::Permanent { reply },
        _ => {
            let lower = text.to_ascii_lowercase();
            let rate_words = [
                "rate",
                "too many",
                "throttl",
                "slow down",
                "try again later",
                "temporarily deferred",
            ];
            let throttle = matches!(code, 421 | 450 | 451 | 452)
                && (esc[0] == 4 && esc[1] == 7 || rate_words.iter().any(|w| lower.contains(w)));
            Outcome::Transient { reply, throttle }
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
            let got = match classify_reply(*code, *esc, text) {
                Outcome::Delivered { .. } => "delivered",
                Outcome::Permanent { .. } => "permanent",
                Outcome::Transient { throttle: true, .. } => "throttle",
                Outcome::Transient {
                    throttle: false, ..
                } => "transient",
            };
            assert_eq!(got, *want, "{code} {esc:?} {text}");
        }
        assert_eq!(classify_reply(550, [5, 1, 1], "x").reply(), "550 5.1.1 x");
    }
}
