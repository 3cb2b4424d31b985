//! Pure parsing of one SMTP command line into a [`Command`]. No I/O; fuzzed.

use super::address::{self, Mailbox, PathError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: Option<Mailbox>,
        params: Vec<(String, Option<String>)>,
    },
    Rcpt {
        to: Mailbox,
        params: Vec<(String, Option<String>)>,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Why a line is not a command we can act on; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `500 5.5.1`
    Unknown,
    /// `500 5.5.2` (not UTF-8, control characters)
    Garbled,
    /// `501 5.5.4` with a text
    Syntax(&'static str),
    /// `501` with the path problem
    Path(PathError),
    /// `501 5.1.3` null path where a mailbox is required
    NullRecipient,
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one line (with or without its line ending).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let text = std::str::from_utf8(strip_eol(line)).map_err(|_| ParseError::Garbled)?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::Garbled);
    }
    let text = text.trim_end();
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], text[i + 1..].trim_start()),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |cmd: Command| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax("Syntax: no arguments allowed"))
        }
    };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let name = rest
                .split_ascii_whitespace()
                .next()
                .ok_or(ParseError::Syntax("Syntax: EHLO hostname"))?;
            if name.len() > 255 {
                return Err(ParseError::Syntax("Syntax: host name too long"));
            }
            Ok(if verb == "EHLO" {
                Command::Ehlo(name.into())
            } else {
                Command::Helo(name.into())
            })
        }
        "MAIL" => {
            let arg = strip_keyword(rest, "FROM:")
                .ok_or(ParseError::Syntax("Syntax: MAIL FROM:<address>"))?;
            let (from, params) = address::parse_path(arg).map_err(ParseError::Path)?;
            let params = address::parse_params(params)
                .map_err(|_| ParseError::Syntax("Syntax: bad parameter"))?;
            Ok(Command::Mail { from, params })
        }
        "RCPT" => {
            let arg = strip_keyword(rest, "TO:")
                .ok_or(ParseError::Syntax("Syntax: RCPT TO:<address>"))?;
            let (to, params) = address::parse_path(arg).map_err(ParseError::Path)?;
            let to = to.ok_or(ParseError::NullRecipient)?;
            let params = address::parse_params(params)
                .map_err(|_| ParseError::Syntax("Syntax: bad parameter"))?;
            Ok(Command::Rcpt { to, params })
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut parts = rest.split_ascii_whitespace();
            let mechanism = parts.next().ok_or(ParseError::Syntax(
                "Syntax: AUTH mechanism [initial-response]",
            ))?;
            let initial = parts.next().map(str::to_string);
            if parts.next().is_some() {
                return Err(ParseError::Syntax(
                    "Syntax: AUTH mechanism [initial-response]",
                ));
            }
            Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial,
            })
        }
        _ => Err(ParseError::Unknown),
    }
}

/// Case-insensitive `FROM:` / `TO:`, tolerating a space after the colon.
fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| s[keyword.len()..].trim_start())
}

fn parse_bdat(rest: &str) -> Result<Command, ParseError> {
    let mut parts = rest.split_ascii_whitespace();
    let size = parts
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or(ParseError::Syntax("Syntax: BDAT size [LAST]"))?;
    let last = match parts.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Syntax("Syntax: BDAT size [LAST]")),
    };
    if parts.next().is_some() {
        return Err(ParseError::Syntax("Syntax: BDAT size [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok: &[(&[u8], Command)] = &[
            (
                b"EHLO client.example\r\n",
                Command::Ehlo("client.example".into()),
            ),
            (b"helo x\n", Command::Helo("x".into())),
            (b"DATA\r\n", Command::Data),
            (b"data", Command::Data),
            (
                b"BDAT 100 LAST\r\n",
                Command::Bdat {
                    size: 100,
                    last: true,
                },
            ),
            (
                b"BDAT 0\r\n",
                Command::Bdat {
                    size: 0,
                    last: false,
                },
            ),
            (b"QUIT\r\n", Command::Quit),
            (b"NOOP anything\r\n", Command::Noop),
            (b"STARTTLS\r\n", Command::StartTls),
            (
                b"AUTH plain AGEAYg==\r\n",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some("AGEAYg==".into()),
                },
            ),
            (
                b"AUTH LOGIN\r\n",
                Command::Auth {
                    mechanism: "LOGIN".into(),
                    initial: None,
                },
            ),
        ];
        for (line, want) in ok {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[(&[u8], ParseError)] = &[
            (b"FOO\r\n", ParseError::Unknown),
            (b"\xff\xfe\r\n", ParseError::Garbled),
            (b"MAIL FROM:<a@b>\x00\r\n", ParseError::Garbled),
            (
                b"MAIL TO:<a@b.org>\r\n",
                ParseError::Syntax("Syntax: MAIL FROM:<address>"),
            ),
            (b"RCPT TO:<>\r\n", ParseError::NullRecipient),
            (b"EHLO\r\n", ParseError::Syntax("Syntax: EHLO hostname")),
            (
                b"BDAT x\r\n",
                ParseError::Syntax("Syntax: BDAT size [LAST]"),
            ),
            (
                b"STARTTLS now\r\n",
                ParseError::Syntax("Syntax: no arguments allowed"),
            ),
        ];
        for (line, want) in bad {
            assert_eq!(
                parse(line).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn mail_and_rcpt() {
        match parse(b"MAIL FROM: <a@b.org> SIZE=10 BODY=8BITMIME\r\n") {
            Ok(Command::Mail {
                from: Some(m),
                params,
            }) => {
                assert_eq!(m.address(), "a@b.org");
                assert_eq!(params.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse(b"mail from:<>\r\n"),
            Ok(Command::Mail { from: None, .. })
        ));
        assert!(matches!(
            parse(b"RCPT TO:<x@y.org> NOTIFY=NEVER\r\n"),
            Ok(Command::Rcpt { .. })
        ));
    }
}
