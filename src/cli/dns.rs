//! `herald dns DOMAIN`: the DNS records a configured sending domain needs (computed purely in
//! `records`) and, when a resolver answers, whether each is published. Reads the config only;
//! needs no daemon.

pub(super) mod records;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::delivery::{dkim, mx};
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use records::{Kind, Record, Status};
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// How long one lookup may take before the records count as not checked.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0} is not a sending domain of this configuration (no [domains.\"{0}\"] table)")]
    UnknownDomain(String),
    #[error("DKIM key for {domain} ({path}): {reason}")]
    Key {
        domain: String,
        path: String,
        reason: String,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
}

/// A record with what the resolver said about it.
struct Checked {
    record: Record,
    status: Status,
    published: Vec<String>,
}

/// What to publish for a configured domain, and notes on what its configuration leaves out.
struct Plan {
    /// As the configuration spells it.
    domain: String,
    records: Vec<Record>,
    notes: Vec<String>,
}

fn plan(domain: &str, config: &Config) -> Result<Plan, DnsError> {
    let wanted = domain.trim_end_matches('.');
    let (name, d) = config
        .domains
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| DnsError::UnknownDomain(wanted.to_string()))?;
    let mut notes = Vec::new();
    let key = match (&d.dkim_selector, &d.dkim_key) {
        (Some(selector), Some(path)) => {
            let err = |reason: String| DnsError::Key {
                domain: name.clone(),
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            Some((selector.as_str(), dkim::public_key(&pem).map_err(err)?))
        }
        (None, None) => {
            notes.push(format!(
                "no DKIM key: mail from {name} is not signed (`herald dkim keygen {name}` makes one)"
            ));
            None
        }
        _ => {
            notes.push(format!(
                "[domains.\"{name}\"] needs both dkim_selector and dkim_key to sign"
            ));
            None
        }
    };
    match &d.bounce_domain {
        None => notes.push(format!(
            "no bounce_domain: mail from {name} keeps its own envelope sender (no VERP), so no MX is needed"
        )),
        Some(b) if !is_under(b, name) => notes.push(format!(
            "bounce_domain {b} is not {name} or under it: SPF passes but does not align for DMARC, only DKIM does"
        )),
        Some(_) => {}
    }
    let records = records::required(&records::Domain {
        domain: name,
        hostname: &config.hostname,
        bounce_domain: d.bounce_domain.as_deref(),
        dkim: key.as_ref().map(|(s, k)| (*s, k)),
    });
    Ok(Plan {
        domain: name.clone(),
        records,
        notes,
    })
}

fn is_under(name: &str, domain: &str) -> bool {
    let (n, d) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    n == d || n.ends_with(&format!(".{d}"))
}

pub fn run(domain: &str, config: &Config, json: bool) -> ExitCode {
    let Plan {
        domain,
        records,
        notes,
    } = match plan(domain, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Validation has made sure every entry parses.
    let servers: Vec<SocketAddr> = config
        .delivery
        .dns_servers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DnsError::Runtime(e.to_string()))
        .map(|rt| rt.block_on(check(records, &servers, &config.hostname)));
    let (checked, error) = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if json {
        print_json(
            &domain,
            &config.hostname,
            &checked,
            error.as_deref(),
            &notes,
        );
    } else {
        print_text(
            &domain,
            &config.hostname,
            &checked,
            error.as_deref(),
            &notes,
        );
    }
    if checked
        .iter()
        .any(|c| matches!(c.status, Status::Missing | Status::Differs))
    {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Looks every record up; the first failure that is not "no such record" leaves it and the rest
/// unchecked (an unreachable resolver would only time out again), with the error returned.
async fn check(
    records: Vec<Record>,
    servers: &[SocketAddr],
    hostname: &str,
) -> (Vec<Checked>, Option<String>) {
    let (resolver, mut error) = match resolver(servers) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let answer = match (&resolver, &error) {
            (Some(resolver), None) => lookup(resolver, &record).await,
            _ => Err(String::new()),
        };
        let (status, published) = match answer {
            Ok(published) => (records::compare(&record, &published, hostname), published),
            Err(e) => {
                if error.is_none() {
                    error = Some(e);
                }
                (Status::Unchecked, Vec::new())
            }
        };
        out.push(Checked {
            record,
            status,
            published,
        });
    }
    (out, error)
}

/// A resolver that gives up on a lookup after [`LOOKUP_TIMEOUT`], without retries.
fn resolver(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = mx::resolver_builder(servers).map_err(|e| e.to_string())?;
    builder.options_mut().timeout = LOOKUP_TIMEOUT;
    builder.options_mut().attempts = 1;
    builder.build().map_err(|e| e.to_string())
}

/// The published rdata at the record's name and type (MX `pref host.`, TXT strings joined);
/// empty for NXDOMAIN or no such records.
async fn lookup(resolver: &TokioResolver, r: &Record) -> Result<Vec<String>, String> {
    let rtype = if r.kind == Kind::Mx {
        RecordType::MX
    } else {
        RecordType::TXT
    };
    let answer = tokio::time::timeout(
        LOOKUP_TIMEOUT,
        resolver.lookup(format!("{}.", r.name), rtype),
    )
    .await
    .map_err(|_| format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()))?;
    match answer {
        Ok(found) => Ok(found
            .answers()
            .iter()
            .filter_map(|a| match &a.data {
                RData::MX(mx) if rtype == RecordType::MX => {
                    Some(format!("{} {}", mx.preference, mx.exchange.to_ascii()))
                }
                RData::TXT(t) if rtype == RecordType::TXT => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

fn purpose(kind: Kind, hostname: &str) -> String {
    match kind {
        Kind::Mx => "bounces, unsubscribe mail and complaints come back to this host".into(),
        Kind::Spf => format!("authorizes {hostname} for the envelope senders at this name"),
        Kind::Dkim => "public key of the DKIM signature".into(),
        Kind::Dmarc => "policy for the From domain: p=none monitors, reports go to rua".into(),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Missing => "missing",
        Status::Differs => "differs",
        Status::Unchecked => "not checked",
    }
}

fn print_text(
    domain: &str,
    hostname: &str,
    checked: &[Checked],
    error: Option<&str>,
    notes: &[String],
) {
    println!("; DNS records for mail from {domain}, sent by {hostname}\n");
    for c in checked {
        let kind = format!("{:?}", c.record.kind).to_ascii_uppercase();
        println!(
            "; {kind} {}: {}",
            status_word(c.status),
            purpose(c.record.kind, hostname)
        );
        if c.status == Status::Differs {
            for p in &c.published {
                let shown = match c.record.kind {
                    Kind::Mx => p.clone(),
                    _ => records::txt_strings(p).join(" "),
                };
                println!(";   published: {shown}");
            }
        }
        println!("{}\n", records::zone_line(&c.record));
    }
    for n in notes {
        println!("; note: {n}");
    }
    let bad = checked
        .iter()
        .filter(|c| matches!(c.status, Status::Missing | Status::Differs))
        .count();
    match error {
        Some(e) => println!("; records were not checked: no answer from the resolver ({e})"),
        None if bad == 0 => println!("; all {} records are published", checked.len()),
        None => println!(
            "; {bad} of {} records are missing or differ: publish them as shown",
            checked.len()
        ),
    }
}

fn print_json(
    domain: &str,
    hostname: &str,
    checked: &[Checked],
    error: Option<&str>,
    notes: &[String],
) {
    let records: Vec<serde_json::Value> = checked
        .iter()
        .map(|c| {
            json!({
                "kind": c.record.kind, "name": c.record.name, "type": c.record.rtype,
                "value": c.record.value, "status": c.status, "published": c.published,
            })
        })
        .collect();
    let out = json!({
        "domain": domain,
        "hostname": hostname,
        "checked": error.is_none(),
        "error": error,
        "records": records,
        "notes": notes,
    });
    println!("{out}");
}
