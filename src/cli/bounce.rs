//! `herald bounce parse FILE…` and `herald bounce eval [DIR]`: offline, no daemon needed.

use crate::bounce::{eval, parse};
use anyhow::Context as _;
use serde_json::json;
use std::path::{Path, PathBuf};

/// One line (JSON) or row (text) per recipient and file; a file that is not a bounce gets one
/// with no recipient and class `unknown`.
pub fn parse_files(files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    for file in files {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let report = parse::parse(&raw);
        let name = file.display().to_string();
        let mut rows: Vec<serde_json::Value> = report
            .findings
            .iter()
            .map(|f| {
                json!({
                    "file": name, "recipient": f.recipient, "status": f.status,
                    "action": f.action, "class": f.class, "reason": f.reason,
                    "diagnostic": f.diagnostic,
                })
            })
            .collect();
        if rows.is_empty() {
            rows.push(json!({
                "file": name, "recipient": null, "status": null, "action": null,
                "class": "unknown", "reason": "not a bounce", "diagnostic": null,
            }));
        }
        for r in rows {
            if json {
                println!("{r}");
            } else {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s("file"),
                    s("recipient"),
                    s("status"),
                    s("class"),
                    s("reason"),
                    s("diagnostic")
                );
            }
        }
    }
    Ok(())
}

/// Scores the parser on a corpus folder as its README defines; skips when it is absent.
pub fn evaluate(dir: &Path, json: bool) -> anyhow::Result<()> {
    let Some(e) = eval::evaluate(dir) else {
        println!("SKIP: no corpus at {}", dir.display());
        return Ok(());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        let v = serde_json::to_value(&e)?;
        for key in [
            "score",
            "status_agreement",
            "rows",
            "status_rows",
            "files",
            "panics",
            "median_parse_us",
        ] {
            if let Some(x) = v.get(key) {
                println!("{key}: {x}");
            }
        }
    }
    Ok(())
}
