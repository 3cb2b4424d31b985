//! Logging setup (tracing-subscriber: human on a terminal, JSON on request) and the address
//! redaction every log line about a person goes through.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global subscriber (the one process-wide piece of state, set once by `main`).
/// Level comes from `HERALD_LOG` (e.g. `debug`, `herald=trace`), default `info`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    // Already installed (tests run several daemons in one process): keep the first.
    let _ = result;
}

/// `jane@example.org` → `j***@example.org` unless full addresses are allowed in logs.
pub fn redact(address: &str, show: bool) -> String {
    if show || address.is_empty() {
        return if address.is_empty() {
            "<>".into()
        } else {
            address.to_string()
        };
    }
    match crate::mail::split(address) {
        Some((local, domain)) => {
            let first: String = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `text` (a remote reply, a bounce detail) with every occurrence of `address` redacted, unless
/// `show`: remote servers often echo the recipient (`550 5.1.1 <jane@example.org>: unknown`).
pub fn redact_in(text: &str, address: &str, show: bool) -> String {
    if show || address.is_empty() {
        return text.to_string();
    }
    // ASCII lower-casing keeps byte offsets, so positions found in the copy hold in `text`.
    let (hay, needle) = (text.to_ascii_lowercase(), address.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = hay[at..].find(&needle) {
        out.push_str(&text[at..at + found]);
        out.push_str(&redact(address, false));
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_in};

    #[test]
    fn addresses_in_replies_are_redacted() {
        let reply = "550 5.1.1 <Jane@Example.org>: user unknown; jane@example.org";
        assert_eq!(
            redact_in(reply, "jane@example.org", false),
            "550 5.1.1 <j***@example.org>: user unknown; j***@example.org"
        );
        assert_eq!(redact_in(reply, "jane@example.org", true), reply);
        assert_eq!(redact_in("250 ok", "jane@example.org", false), "250 ok");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("jane@example.org", false), "j***@example.org");
        assert_eq!(redact("jane@example.org", true), "jane@example.org");
        assert_eq!(redact("", false), "<>");
        assert_eq!(redact("postmaster", false), "***");
    }
}
