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
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction() {
        assert_eq!(redact("jane@example.org", false), "j***@example.org");
        assert_eq!(redact("jane@example.org", true), "jane@example.org");
        assert_eq!(redact("", false), "<>");
        assert_eq!(redact("postmaster", false), "***");
    }
}
