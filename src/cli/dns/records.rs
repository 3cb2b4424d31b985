//! The DNS records a sending domain needs, pure: what `herald dns` and `herald dkim keygen`
//! print, their zone-file form, and how a published answer compares with each.

use crate::delivery::dkim::PublicKey;
use base64::Engine as _;
use serde::Serialize;

/// MX preference suggested for the bounce domain (any value works: it is the only MX).
pub const MX_PREFERENCE: u16 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Mx,
    Spf,
    Dkim,
    Dmarc,
}

/// One record to publish. `value` is the MX rdata (`10 host.`) or the whole TXT text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub kind: Kind,
    /// Owner name, lower case, without the trailing dot.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: &'static str,
    pub value: String,
}

/// What a configured sending domain consists of, as far as DNS is concerned.
pub struct Domain<'a> {
    pub domain: &'a str,
    pub hostname: &'a str,
    pub bounce_domain: Option<&'a str>,
    pub dkim: Option<(&'a str, &'a PublicKey)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Differs,
    /// No answer from the resolver: nothing is known.
    Unchecked,
}

fn bare(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `v=DKIM1; k=…; p=…` for a public key.
pub fn dkim_txt(key: &PublicKey) -> String {
    let (k, bytes) = match key {
        PublicKey::Rsa(b) => ("rsa", b),
        PublicKey::Ed25519(b) => ("ed25519", b),
    };
    let p = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("v=DKIM1; k={k}; p={p}")
}

pub fn dkim_record(domain: &str, selector: &str, key: &PublicKey) -> Record {
    Record {
        kind: Kind::Dkim,
        name: format!("{}._domainkey.{}", bare(selector), bare(domain)),
        rtype: "TXT",
        value: dkim_txt(key),
    }
}

/// Every record `d` needs, in the order an operator would publish them:
/// - MX of the bounce domain → `hostname`, so VERP returns, `u+` unsubscribes and complaints
///   reach Herald;
/// - SPF (`v=spf1 a:HOSTNAME -all`) on the domain of the envelope sender: the bounce domain when
///   there is one (every message from `d` then uses VERP there), else `d` itself;
/// - DKIM at `SELECTOR._domainkey.DOMAIN` when a key is configured;
/// - DMARC at `_dmarc.DOMAIN`, `p=none` (monitor only) with aggregate reports to
///   `postmaster@DOMAIN`.
pub fn required(d: &Domain) -> Vec<Record> {
    let domain = bare(d.domain);
    let hostname = bare(d.hostname);
    let mut out = Vec::new();
    if let Some(bounce) = d.bounce_domain {
        out.push(Record {
            kind: Kind::Mx,
            name: bare(bounce),
            rtype: "MX",
            value: format!("{MX_PREFERENCE} {hostname}."),
        });
    }
    out.push(Record {
        kind: Kind::Spf,
        name: d.bounce_domain.map_or_else(|| domain.clone(), bare),
        rtype: "TXT",
        value: format!("v=spf1 a:{hostname} -all"),
    });
    if let Some((selector, key)) = d.dkim {
        out.push(dkim_record(&domain, selector, key));
    }
    out.push(Record {
        kind: Kind::Dmarc,
        name: format!("_dmarc.{domain}"),
        rtype: "TXT",
        value: format!("v=DMARC1; p=none; rua=mailto:postmaster@{domain}"),
    });
    out
}

/// A TXT text as the quoted strings of a zone file, each at most 255 bytes (RFC 1035 §3.3.14).
pub fn txt_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(255);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(format!(
            "\"{}\"",
            head.replace('\\', "\\\\").replace('"', "\\\"")
        ));
        rest = tail;
    }
    if out.is_empty() {
        out.push("\"\"".into());
    }
    out
}

/// The record as one zone-file line (`name. IN TXT "…" "…"`).
pub fn zone_line(r: &Record) -> String {
    let rdata = match r.rtype {
        "TXT" => txt_strings(&r.value).join(" "),
        _ => r.value.clone(),
    };
    format!("{}. IN {} {rdata}", r.name, r.rtype)
}

/// `key=value` tags of a DKIM or DMARC record, keys lower case, all whitespace removed from values.
fn tags(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            (k.trim().to_ascii_lowercase(), v)
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn starts_with_version(text: &str, version: &str) -> bool {
    let t = text.trim_start();
    t.get(..version.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(version))
        && t.get(version.len()..)
            .is_some_and(|rest| rest.starts_with([' ', ';']) || rest.is_empty())
}

/// How the `published` answers for `r`'s name and type (MX rdata `pref host.`, or TXT texts
/// with their strings joined) compare with `r`. `hostname` is the host MX and SPF must name.
pub fn compare(r: &Record, published: &[String], hostname: &str) -> Status {
    if published.is_empty() {
        return Status::Missing;
    }
    let ok = match r.kind {
        Kind::Mx => published.iter().any(|mx| {
            mx.split_whitespace()
                .nth(1)
                .is_some_and(|host| bare(host) == bare(hostname))
        }),
        Kind::Spf => {
            let spf: Vec<&String> = published
                .iter()
                .filter(|t| starts_with_version(t, "v=spf1"))
                .collect();
            if spf.is_empty() {
                return Status::Missing;
            }
            // Two SPF records are a permanent error (RFC 7208 §4.5), whatever they say.
            let term = format!("a:{}", bare(hostname));
            spf.len() == 1
                && (spf[0].trim() == r.value
                    || spf[0]
                        .split_whitespace()
                        .any(|t| t.trim_start_matches('+').eq_ignore_ascii_case(&term)))
        }
        Kind::Dkim => {
            let want = tags(&r.value);
            published.iter().any(|t| {
                let got = tags(t);
                tag(&got, "v").is_none_or(|v| v == "DKIM1")
                    && tag(&got, "k").unwrap_or("rsa") == tag(&want, "k").unwrap_or("rsa")
                    && tag(&got, "p") == tag(&want, "p")
            })
        }
        Kind::Dmarc => {
            let dmarc: Vec<&String> = published
                .iter()
                .filter(|t| starts_with_version(t, "v=DMARC1"))
                .collect();
            if dmarc.is_empty() {
                return Status::Missing;
            }
            // Any policy the operator chose is fine; more than one record means none applies.
            dmarc.len() == 1 && tag(&tags(dmarc[0]), "p").is_some()
        }
    };
    if ok { Status::Ok } else { Status::Differs }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HOST: &str = "mx.example.net";

    fn ed() -> PublicKey {
        PublicKey::Ed25519(vec![7; 32])
    }

    fn full(key: &PublicKey) -> Vec<Record> {
        required(&Domain {
            domain: "Example.ORG",
            hostname: "MX.example.net.",
            bounce_domain: Some("bounces.example.org"),
            dkim: Some(("h202606", key)),
        })
    }

    #[test]
    fn a_domain_with_bounce_domain_and_key_needs_four_records() {
        let key = ed();
        let lines: Vec<String> = full(&key).iter().map(zone_line).collect();
        let p = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(
            lines,
            vec![
                "bounces.example.org. IN MX 10 mx.example.net.".to_string(),
                "bounces.example.org. IN TXT \"v=spf1 a:mx.example.net -all\"".into(),
                format!("h202606._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p={p}\""),
                "_dmarc.example.org. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.org\""
                    .into(),
            ]
        );
    }

    #[test]
    fn without_bounce_domain_or_key_spf_goes_on_the_domain_itself() {
        let records = required(&Domain {
            domain: "example.org",
            hostname: HOST,
            bounce_domain: None,
            dkim: None,
        });
        let kinds: Vec<(Kind, &str)> = records.iter().map(|r| (r.kind, r.name.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Spf, "example.org"),
                (Kind::Dmarc, "_dmarc.example.org")
            ]
        );
    }

    #[test]
    fn rsa_records_split_into_strings_of_at_most_255_bytes() {
        let key = PublicKey::Rsa(vec![1; 294]);
        let r = dkim_record("example.org", "s", &key);
        assert!(r.value.starts_with("v=DKIM1; k=rsa; p="));
        let strings = txt_strings(&r.value);
        assert_eq!(strings.len(), 2, "{strings:?}");
        assert!(strings.iter().all(|s| s.len() <= 255 + 2));
        let joined: String = strings.iter().map(|s| s.trim_matches('"')).collect();
        assert_eq!(joined, r.value);
        assert_eq!(txt_strings(""), vec!["\"\"".to_string()]);
        assert_eq!(txt_strings("a\"b"), vec!["\"a\\\"b\"".to_string()]);
    }

    fn status(kind: Kind, published: &[&str]) -> Status {
        let key = ed();
        let r = full(&key).into_iter().find(|r| r.kind == kind).unwrap();
        let published: Vec<String> = published.iter().map(|s| s.to_string()).collect();
        compare(&r, &published, HOST)
    }

    #[test]
    fn comparisons() {
        let p = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        let dkim_ok = format!("v=DKIM1;k=ed25519; p={}", &p);
        let dkim_rsa = format!("v=DKIM1; p={p}");
        let dkim_wrong = format!("v=DKIM1; k=ed25519; p={other}");
        let table: Vec<(Kind, Vec<&str>, Status)> = vec![
            (Kind::Mx, vec![], Status::Missing),
            (Kind::Mx, vec!["10 mx.example.net."], Status::Ok),
            (
                Kind::Mx,
                vec!["5 backup.example.net.", "20 MX.Example.Net."],
                Status::Ok,
            ),
            (Kind::Mx, vec!["0 ."], Status::Differs),
            (
                Kind::Spf,
                vec!["google-site-verification=x"],
                Status::Missing,
            ),
            (Kind::Spf, vec!["v=spf1 a:mx.example.net -all"], Status::Ok),
            (
                Kind::Spf,
                vec!["v=spf1 ip4:192.0.2.1 +a:MX.example.net ~all"],
                Status::Ok,
            ),
            (Kind::Spf, vec!["v=spf1 mx -all"], Status::Differs),
            (Kind::Spf, vec!["v=spf10 a:mx.example.net"], Status::Missing),
            (
                Kind::Spf,
                vec!["v=spf1 a:mx.example.net -all", "v=spf1 -all"],
                Status::Differs,
            ),
            (Kind::Dkim, vec![&dkim_ok], Status::Ok),
            (Kind::Dkim, vec![&dkim_wrong], Status::Differs),
            (Kind::Dkim, vec![&dkim_rsa], Status::Differs),
            (Kind::Dkim, vec!["v=DKIM1; k=ed25519; p="], Status::Differs),
            (Kind::Dmarc, vec!["v=DMARC1; p=reject"], Status::Ok),
            (
                Kind::Dmarc,
                vec!["v=DMARC1; rua=mailto:x@example.org"],
                Status::Differs,
            ),
            (
                Kind::Dmarc,
                vec!["v=DMARC1; p=none", "v=DMARC1; p=reject"],
                Status::Differs,
            ),
            (Kind::Dmarc, vec!["v=spf1 -all"], Status::Missing),
        ];
        for (kind, published, want) in table {
            assert_eq!(status(kind, &published), want, "{kind:?} {published:?}");
        }
    }
}
