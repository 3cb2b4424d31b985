//! `herald backup DIR` (through the daemon, which writes the snapshot) and `herald restore DIR`
//! (offline, into an empty data_dir), with their human or JSON output.

use crate::admin::{Request, client};
use crate::backup::{self, Manifest};
use anyhow::Context as _;
use std::path::Path;

pub async fn backup(dir: &Path, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    // The daemon has its own working directory: hand it an absolute path.
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve the path {}", dir.display()))?;
    let req = Request::Backup {
        dir: dir.display().to_string(),
    };
    let data = client::request(data_dir, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let manifest: Manifest =
        serde_json::from_value(data).context("unreadable reply from the daemon")?;
    println!(
        "backup written to {}: {}",
        dir.display(),
        summary(&manifest)
    );
    Ok(())
}

pub fn restore(dir: &Path, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let manifest = backup::restore(dir, data_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    println!(
        "restored {} into {}: {}",
        dir.display(),
        data_dir.display(),
        summary(&manifest)
    );
    Ok(())
}

fn summary(m: &Manifest) -> String {
    let n = |tree: &str| m.trees.get(tree).copied().unwrap_or(0);
    format!(
        "{} messages, {} deliveries, {} list members, {} suppressed, {} files (Herald {}, schema {}, taken {})",
        n("messages"),
        n("deliveries"),
        n("members"),
        n("suppression"),
        m.files.len(),
        m.herald_version,
        m.schema_version,
        m.created
    )
}
