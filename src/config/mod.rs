//! Configuration: figment layering (embedded defaults, TOML file, `HERALD_` environment), typed
//! structs, and validation whose errors name the file, the key and the reason.

mod human;
mod origin;
mod policy;
mod settings;
mod types;
mod validate;

pub use human::{
    ByteRate, ByteSize, HumanDuration, Rate, parse_byte_rate, parse_duration, parse_rate,
    parse_size,
};
pub use origin::{is_origin, origin_of, signup_origins};
pub use policy::CompiledPolicy;
pub use settings::{Settings, sender_allowed};
pub use types::*;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the default config file lives when neither `--config` nor `$HERALD_CONFIG` is given.
pub const SYSTEM_CONFIG: &str = "/etc/herald/herald.toml";

/// A configuration problem: which file (or the environment), which key, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source_name, self.reason)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.source_name, self.key, self.reason
            )
        }
    }
}

/// A loaded configuration and the file it came from (if any).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

/// Picks the config file: the explicit path, else `/etc/herald/herald.toml` if it exists.
/// (`$HERALD_CONFIG` reaches us as the explicit path through the command line parser.)
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let sys = Path::new(SYSTEM_CONFIG);
            sys.exists().then(|| sys.to_path_buf())
        }
    }
}

/// Loads and validates the configuration from `file` (or the embedded default when `None`).
pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError {
                source_name: path.display().to_string(),
                key: String::new(),
                reason: "file not found or not a regular file".into(),
            });
        }
        refuse_empty(path)?;
        figment = figment.merge(Toml::file_exact(path));
    }
    // Not settings: the config path, logging, and the test suite's own switches
    // (`HERALD_REQUIRE_TOOLS`, `HERALD_CORPUS`, `HERALD_TEST_SEED`, see README "Tests").
    figment = figment.merge(Env::prefixed("HERALD_").split("__").ignore(&[
        "config",
        "log",
        "log_format",
        "require_tools",
        "corpus",
        "test_seed",
    ]));
    let config: Config = figment.extract().map_err(|e| from_figment(&e, file))?;
    if let Err((key, reason)) = validate::validate(&config) {
        return Err(ConfigError {
            source_name: locate(&figment, &key, file),
            key,
            reason,
        });
    }
    Ok(Loaded {
        config,
        file: file.map(Path::to_path_buf),
    })
}

/// A config file with nothing in it (0 bytes, or only blank lines and comments) is refused:
/// taken, it would be the embedded default, with no users and no lists (a reload of a file
/// truncated in place would drop them all).
fn refuse_empty(path: &Path) -> Result<(), ConfigError> {
    let error = |reason: String| ConfigError {
        source_name: path.display().to_string(),
        key: String::new(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let empty = text
        .lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'));
    if empty {
        return Err(error(
            "file is empty (no settings, only blank lines or comments): refused".into(),
        ));
    }
    Ok(())
}

fn source_of(meta: &figment::Metadata, file: Option<&Path>) -> String {
    match &meta.source {
        Some(figment::Source::File(p)) => p.display().to_string(),
        Some(figment::Source::Custom(s)) => s.clone(),
        _ if meta.name.contains("environment") => "environment (HERALD_*)".to_string(),
        _ if meta.name.contains("Serialized") => "embedded default".to_string(),
        _ => file.map_or_else(|| meta.name.to_string(), |f| f.display().to_string()),
    }
}

fn locate(figment: &Figment, key: &str, file: Option<&Path>) -> String {
    let mut probe = key.to_string();
    loop {
        if let Some(meta) = figment.find_metadata(&probe) {
            return source_of(meta, file);
        }
        match probe.rfind('.') {
            Some(i) => probe.truncate(i),
            None => break,
        }
    }
    file.map_or_else(
        || "embedded default".to_string(),
        |f| f.display().to_string(),
    )
}

fn from_figment(err: &figment::Error, file: Option<&Path>) -> ConfigError {
    let mut path = err.path.clone();
    if let figment::error::Kind::UnknownField(field, _) = &err.kind
        && path.last() != Some(field)
    {
        path.push(field.clone());
    }
    let source_name = match &err.metadata {
        Some(meta) => source_of(meta, file),
        None => file.map_or_else(|| "configuration".to_string(), |f| f.display().to_string()),
    };
    let reason = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => format!("unknown key `{field}`"),
        kind => kind.to_string(),
    };
    ConfigError {
        source_name,
        key: path.join("."),
        reason,
    }
}

/// The effective configuration as TOML with secrets replaced, for `check-config`.
pub fn redacted_toml(config: &Config) -> Result<String, ConfigError> {
    let mut shown = config.clone();
    for user in &mut shown.users {
        user.password_hash = "<redacted>".into();
    }
    toml::to_string_pretty(&shown).map_err(|e| ConfigError {
        source_name: "effective configuration".into(),
        key: String::new(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
