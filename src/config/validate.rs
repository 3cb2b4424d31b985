//! Semantic checks that serde cannot express; each failure names the key and the reason.

use super::Config;
use crate::mail::Address;
use std::net::SocketAddr;

type Problem = (String, String);

fn problem(key: impl Into<String>, reason: impl Into<String>) -> Problem {
    (key.into(), reason.into())
}

pub fn validate(config: &Config) -> Result<(), Problem> {
    if config.hostname.is_empty() || config.hostname.contains(char::is_whitespace) {
        return Err(problem("hostname", "must be a host name without spaces"));
    }
    let listen = &config.listen;
    for (name, addrs) in [
        ("submission", &listen.submission),
        ("submissions", &listen.submissions),
        ("inbound", &listen.inbound),
        ("http", &listen.http),
    ] {
        for (i, addr) in addrs.iter().enumerate() {
            if addr.parse::<SocketAddr>().is_err() {
                return Err(problem(
                    format!("listen.{name}"),
                    format!("entry {i} ({addr:?}) is not an IP:port address"),
                ));
            }
        }
    }
    if config.tls.cert.is_some() != config.tls.key.is_some() {
        return Err(problem("tls", "set both `cert` and `key`, or neither"));
    }
    validate_users(config)?;
    validate_limits(config)?;
    validate_abuse_limits(config)?;
    validate_delivery(config)?;
    validate_http(config)?;
    super::CompiledPolicy::compile(&config.policy)?;
    for (i, list) in config.lists.iter().enumerate() {
        let ok = !list.id.is_empty()
            && list
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(problem(
                format!("lists.{i}.id"),
                "must be a non-empty slug of a-z, 0-9 and -",
            ));
        }
        if !list.address.contains('@') {
            return Err(problem(
                format!("lists.{i}.address"),
                "must be an email address",
            ));
        }
    }
    match &config.postmaster {
        Some(p) if !is_address(p) => Err(problem(
            "postmaster",
            format!("{p:?} is not an email address (local@domain)"),
        )),
        _ => Ok(()),
    }
}

fn is_address(s: &str) -> bool {
    Address::parse(s).is_ok_and(|a| a.domain().contains('.')) && !s.contains(char::is_whitespace)
}

fn validate_users(config: &Config) -> Result<(), Problem> {
    let mut seen = std::collections::HashSet::new();
    for (i, user) in config.users.iter().enumerate() {
        if user.name.is_empty() || !seen.insert(user.name.as_str()) {
            return Err(problem(
                format!("users.{i}.name"),
                "must be present and unique",
            ));
        }
        if argon2::password_hash::PasswordHash::new(&user.password_hash).is_err() {
            return Err(problem(
                format!("users.{i}.password_hash"),
                "is not a PHC password hash (make one with `herald hash-password`)",
            ));
        }
        for sender in &user.senders {
            let ok = sender == "*" || Address::parse(sender).is_ok();
            if !ok {
                return Err(problem(
                    format!("users.{i}.senders"),
                    format!("{sender:?} is not an address or `*@domain`"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_limits(config: &Config) -> Result<(), Problem> {
    let l = &config.limits;
    if l.max_message_size.0 < 1024 {
        return Err(problem("limits.max_message_size", "must be at least 1KiB"));
    }
    if l.max_line_length < 512 {
        return Err(problem(
            "limits.max_line_length",
            "must be at least 512 (RFC 5321 §4.5.3.1.4)",
        ));
    }
    for (key, value) in [
        ("limits.max_recipients", l.max_recipients),
        ("limits.max_connections", l.max_connections),
        ("limits.max_connections_per_ip", l.max_connections_per_ip),
        (
            "limits.connections_per_listener",
            l.connections_per_listener,
        ),
        ("limits.max_idle_commands", l.max_idle_commands as usize),
    ] {
        if value == 0 {
            return Err(problem(key, "must be at least 1"));
        }
    }
    if l.submission_reserve >= l.connections_per_listener {
        return Err(problem(
            "limits.submission_reserve",
            "must be smaller than limits.connections_per_listener",
        ));
    }
    if l.stress_timeout.0.is_zero() {
        return Err(problem("limits.stress_timeout", "must be longer than zero"));
    }
    let h = &config.http;
    if h.max_connections == 0 {
        return Err(problem("http.max_connections", "must be at least 1"));
    }
    for (key, value) in [
        ("http.header_timeout", h.header_timeout),
        ("http.idle_timeout", h.idle_timeout),
    ] {
        if value.0.is_zero() {
            return Err(problem(key, "must be longer than zero"));
        }
    }
    if l.command_timeout.0.is_zero() || l.data_timeout.0.is_zero() {
        return Err(problem(
            "limits.command_timeout",
            "timeouts must be longer than zero",
        ));
    }
    Ok(())
}

/// The AUTH and `postmaster@` bounds (issue 13).
fn validate_abuse_limits(config: &Config) -> Result<(), Problem> {
    let l = &config.limits;
    if l.max_auth_failures == 0 {
        return Err(problem("limits.max_auth_failures", "must be at least 1"));
    }
    if l.max_auth_failures_per_account == 0 {
        return Err(problem(
            "limits.max_auth_failures_per_account",
            "must be at least 1",
        ));
    }
    if l.auth_failure_window.0.is_zero() {
        return Err(problem(
            "limits.auth_failure_window",
            "must be longer than zero",
        ));
    }
    if l.postmaster_max_size.0 < 1024 {
        return Err(problem(
            "limits.postmaster_max_size",
            "must be at least 1KiB",
        ));
    }
    Ok(())
}

fn validate_delivery(config: &Config) -> Result<(), Problem> {
    let d = &config.delivery;
    if !d.rate.contains_key("default") {
        return Err(problem("delivery.rate.default", "is required"));
    }
    if d.retry.is_empty() {
        return Err(problem("delivery.retry", "needs at least one step"));
    }
    for (i, server) in d.dns_servers.iter().enumerate() {
        if server.parse::<SocketAddr>().is_err() {
            return Err(problem(
                "delivery.dns_servers",
                format!("entry {i} ({server:?}) is not an IP:port address"),
            ));
        }
    }
    if d.concurrency == 0 || d.max_connections_per_domain == 0 || d.burst == 0 {
        return Err(problem(
            "delivery",
            "concurrency, max_connections_per_domain and burst must be at least 1",
        ));
    }
    if let Some(relay) = &d.relay {
        let ok = relay
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(problem(
                "delivery.relay",
                format!("{relay:?} is not host:port"),
            ));
        }
    }
    Ok(())
}

fn validate_http(config: &Config) -> Result<(), Problem> {
    for (i, origin) in config.http.signup_origins.iter().enumerate() {
        if !super::is_origin(origin) {
            return Err(problem(
                "http.signup_origins",
                format!(
                    "entry {i} ({origin:?}) is not an origin: scheme://host[:port], http or https, no path"
                ),
            ));
        }
    }
    Ok(())
}
