//! `herald list ls|members|add|invite|remove|import|export`: requests to the daemon, CSV in
//! and out (header `email[,name]`), and a progress line for long imports on a terminal.

use super::ListCommand;
use crate::admin::{Request, client};
use anyhow::Context as _;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Members per admin request during an import.
const CHUNK: usize = 1000;

pub async fn run(cmd: &ListCommand, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    if let ListCommand::Import {
        list,
        file,
        consent,
    } = cmd
    {
        return import(data_dir, list, file, consent, json).await;
    }
    let req = match cmd {
        ListCommand::Ls => Request::ListLs,
        ListCommand::Members { list, status } => Request::ListMembers {
            list: list.clone(),
            status: status.clone(),
        },
        ListCommand::Export { list } => Request::ListMembers {
            list: list.clone(),
            status: None,
        },
        ListCommand::Add {
            list,
            addresses,
            consent,
        } => Request::ListAdd {
            list: list.clone(),
            members: addresses.iter().map(|a| (a.clone(), None)).collect(),
            consent: consent.clone(),
            source: "admin".into(),
        },
        ListCommand::Invite { list, addresses } => Request::ListInvite {
            list: list.clone(),
            addresses: addresses.clone(),
        },
        ListCommand::Remove { list, addresses } => Request::ListRemove {
            list: list.clone(),
            addresses: addresses.clone(),
        },
        ListCommand::Import { .. } => return Ok(()),
    };
    let data = client::request(data_dir, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    match cmd {
        ListCommand::Ls => print!("{}", render_lists(&data)),
        ListCommand::Members { .. } => {
            for m in data.as_array().into_iter().flatten() {
                println!(
                    "{:<40} {:<13} {} ({})",
                    text(&m["address"]),
                    text(&m["status"]),
                    text(&m["since"]),
                    text(&m["consent"])
                );
            }
        }
        ListCommand::Export { .. } => print!("{}", to_csv(&data)),
        _ => println!("{}", serde_json::to_string(&data)?),
    }
    Ok(())
}

/// `herald forget ADDR`
pub async fn forget(address: &str, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let req = Request::Forget {
        address: address.to_string(),
    };
    let data = client::request(data_dir, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        println!(
            "forgotten: {} memberships, {} queued deliveries ended, suppression {}; the \
             database is rewritten without it at the next start",
            data["memberships"],
            data["deliveries"],
            if data["suppression_kept"] == true {
                "kept as a hash"
            } else {
                "none"
            }
        );
    }
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn render_lists(data: &Value) -> String {
    let mut out = String::new();
    for l in data.as_array().into_iter().flatten() {
        let counts = l["members"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<12} {:<32} {}\n",
            text(&l["id"]),
            text(&l["address"]),
            counts
        ));
    }
    out
}

/// Parses CSV with a header naming `email` (and optionally `name`) columns. Quoted fields
/// with doubled quotes are understood. Returns (email, name) pairs, or the line that failed.
pub fn parse_csv(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols = fields(header);
    let find = |name: &str| {
        cols.iter()
            .position(|c| c.trim().eq_ignore_ascii_case(name))
    };
    let email = find("email").ok_or("the header line has no \"email\" column")?;
    let name = find("name");
    let mut out = Vec::new();
    for (n, line) in lines {
        let f = fields(line);
        let address = f
            .get(email)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("line {}: no email", n + 1))?;
        let name = name
            .and_then(|i| f.get(i))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        out.push((address, name));
    }
    Ok(out)
}

fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(s) = out.last_mut() {
                    s.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `list export`: every member, with status and consent, as CSV (the first two columns are
/// what `import` reads).
pub fn to_csv(data: &Value) -> String {
    let mut out = String::from("email,name,status,consent,since\n");
    for m in data.as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            csv_field(&text(&m["address"])),
            csv_field(name),
            text(&m["status"]),
            csv_field(&text(&m["consent"])),
            text(&m["since"]),
        ));
    }
    out
}

async fn import(
    data_dir: &Path,
    list: &str,
    file: &Path,
    consent: &str,
    json: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let members = parse_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let total = members.len();
    let progress = std::io::stderr().is_terminal();
    let (mut added, mut changed, mut unchanged) = (0u64, 0u64, 0u64);
    for (i, chunk) in members.chunks(CHUNK).enumerate() {
        let req = Request::ListAdd {
            list: list.to_string(),
            members: chunk.to_vec(),
            consent: consent.to_string(),
            source: "import".into(),
        };
        let data = client::request(data_dir, &req).await?;
        added += data["added"].as_u64().unwrap_or(0);
        changed += data["changed"].as_u64().unwrap_or(0);
        unchanged += data["unchanged"].as_u64().unwrap_or(0);
        if progress {
            let done = (i * CHUNK + chunk.len()).min(total);
            eprint!(
                "\rimporting: {done}/{total} ({}%)",
                done * 100 / total.max(1)
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    let summary = serde_json::json!({
        "members": total, "added": added, "changed": changed, "unchanged": unchanged,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{total} members read: {added} added, {changed} changed, {unchanged} already there"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let data = serde_json::json!([
            {"address": "a@b.test", "name": "Ann, \"The\" First", "status": "confirmed",
             "consent": "import: fair, 2024", "since": "2026-01-01T00:00:00Z"},
            {"address": "c@d.test", "name": null, "status": "pending",
             "consent": "web", "since": "2026-01-02T00:00:00Z"},
        ]);
        let csv = to_csv(&data);
        let back = parse_csv(&csv).unwrap();
        assert_eq!(
            back,
            vec![
                ("a@b.test".into(), Some("Ann, \"The\" First".into())),
                ("c@d.test".into(), None)
            ]
        );
    }

    #[test]
    fn csv_needs_an_email_column() {
        assert!(parse_csv("name\nx\n").is_err());
        assert_eq!(parse_csv("").unwrap(), vec![]);
        assert_eq!(
            parse_csv("Email\r\nx@y.test\r\n\r\n").unwrap(),
            vec![("x@y.test".into(), None)]
        );
        assert!(parse_csv("email,name\n,Bob\n").is_err());
    }
}
