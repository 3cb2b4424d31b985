//! `herald dkim keygen`: writes a new DKIM key file (offline: no daemon) that
//! `delivery::dkim` loads, and prints the TXT record to publish and the configuration to add.

use super::dns::records;
use super::{EXIT_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::delivery::dkim::{self, PublicKey};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DkimCommand {
    /// Write a new DKIM key for DOMAIN and print the TXT record to publish (offline)
    Keygen {
        domain: String,
        #[arg(long, value_enum, default_value_t = Algorithm::Ed25519)]
        algorithm: Algorithm,
        /// Selector [default: hYYYYMM of the current month, so a rotation gets a new one]
        #[arg(long)]
        selector: Option<String>,
        /// Key file [default: data_dir/dkim/DOMAIN.SELECTOR.pem]; an existing file is never
        /// overwritten
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Ed25519 (RFC 8463): short, fast; verifiers that lack it ignore the signature
    Ed25519,
    /// RSA, 2048 bits: verified everywhere
    Rsa2048,
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0:?} is not a domain name")]
    BadDomain(String),
    #[error("{0:?} is not a selector (letters, digits and hyphens, labels separated by dots)")]
    BadSelector(String),
    #[error("{} already exists; not overwriting it (choose another --selector or --out)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the key: {0}")]
    Generate(String),
    #[error("the generated key does not load for signing: {0}")]
    Load(String),
}

impl KeygenError {
    fn exit_code(&self) -> u8 {
        match self {
            KeygenError::BadDomain(_) | KeygenError::BadSelector(_) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// What `keygen` made: printed as text or JSON.
struct NewKey {
    domain: String,
    selector: String,
    algorithm: Algorithm,
    path: PathBuf,
    record: records::Record,
}

pub fn run(command: &DkimCommand, config: &Config, json: bool) -> ExitCode {
    let DkimCommand::Keygen {
        domain,
        algorithm,
        selector,
        out,
    } = command;
    match keygen(
        config,
        domain,
        *algorithm,
        selector.as_deref(),
        out.as_deref(),
    ) {
        Ok(key) if json => {
            print_json(&key);
            ExitCode::SUCCESS
        }
        Ok(key) => {
            print_text(&key);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A DNS name of letters, digits and hyphens (no label starting or ending with one).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `hYYYYMM` for the month of `secs` (Unix time).
fn default_selector(secs: u64) -> String {
    let date = crate::timefmt::rfc3339(secs);
    let year = date.get(0..4).unwrap_or("0000");
    let month = date.get(5..7).unwrap_or("00");
    format!("h{year}{month}")
}

fn keygen(
    config: &Config,
    domain: &str,
    algorithm: Algorithm,
    selector: Option<&str>,
    out: Option<&Path>,
) -> Result<NewKey, KeygenError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_dns_name(&domain) {
        return Err(KeygenError::BadDomain(domain));
    }
    let selector = match selector {
        Some(s) => s.to_ascii_lowercase(),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            default_selector(now)
        }
    };
    if !is_dns_name(&selector) {
        return Err(KeygenError::BadSelector(selector));
    }
    let path = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let dir = config.data_dir.join("dkim");
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| KeygenError::Write {
                    path: dir.clone(),
                    source,
                })?;
            dir.join(format!("{domain}.{selector}.pem"))
        }
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    if path.symlink_metadata().is_ok() {
        return Err(KeygenError::Exists(path));
    }
    let pem = generate(algorithm)?;
    // The same parser the daemon signs with: what it cannot load is never written.
    let public = dkim::public_key(pem.as_bytes()).map_err(KeygenError::Load)?;
    let expected = matches!(
        (&public, algorithm),
        (PublicKey::Ed25519(_), Algorithm::Ed25519) | (PublicKey::Rsa(_), Algorithm::Rsa2048)
    );
    if !expected {
        return Err(KeygenError::Load("loads as another algorithm".into()));
    }
    write_new(&path, &pem)?;
    Ok(NewKey {
        record: records::dkim_record(&domain, &selector, &public),
        domain,
        selector,
        algorithm,
        path,
    })
}

/// A PKCS#8 PEM private key.
fn generate(algorithm: Algorithm) -> Result<String, KeygenError> {
    let pair = match algorithm {
        Algorithm::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
        Algorithm::Rsa2048 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
    };
    pair.map(|p| p.serialize_pem())
        .map_err(|e| KeygenError::Generate(e.to_string()))
}

/// Creates `path` with mode 0600, failing if anything exists there already.
fn write_new(path: &Path, pem: &str) -> Result<(), KeygenError> {
    let write_err = |source: std::io::Error| KeygenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeygenError::Exists(path.to_path_buf()),
            _ => write_err(e),
        })?;
    if let Err(e) = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(path);
        return Err(write_err(e));
    }
    Ok(())
}

/// The `[domains."…"]` lines that make the daemon sign with the key.
fn config_lines(key: &NewKey) -> String {
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "[domains.{}]\ndkim_selector = {}\ndkim_key = {}\n",
        quoted(&key.domain),
        quoted(&key.selector),
        quoted(&key.path.display().to_string())
    )
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::Rsa2048 => "rsa2048",
    }
}

fn print_text(key: &NewKey) {
    println!(
        "Wrote a new {} DKIM key for {} to {} (mode 0600).\n",
        algorithm_name(key.algorithm),
        key.domain,
        key.path.display()
    );
    println!(
        "Publish this DNS record:\n{}\n",
        records::zone_line(&key.record)
    );
    println!(
        "Add to the configuration (into the existing [domains.\"{}\"] table if there is one), then reload (SIGHUP):\n{}",
        key.domain,
        config_lines(key)
    );
    println!(
        "`herald dns {}` prints every record the domain needs and checks what is published.",
        key.domain
    );
}

fn print_json(key: &NewKey) {
    let out = json!({
        "domain": key.domain,
        "selector": key.selector,
        "algorithm": algorithm_name(key.algorithm),
        "key_file": key.path.display().to_string(),
        "record": key.record,
        "zone": records::zone_line(&key.record),
        "config": config_lines(key),
    });
    println!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_selectors_name_the_month() {
        assert_eq!(default_selector(0), "h197001");
        assert_eq!(default_selector(1_795_652_900), "h202611");
    }

    #[test]
    fn names() {
        for good in ["example.org", "h202606", "a-b.c1", "x"] {
            assert!(is_dns_name(good), "{good}");
        }
        for bad in [
            "", "../etc", "a..b", "-a.org", "a-.org", "a/b", "a_b", "é.org", "a b",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
