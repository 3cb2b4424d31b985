//! [`Settings`]: the loaded config plus what is derived from it once per load or reload
//! (the effective user list, this host's own domains, the compiled content policy). Swapped
//! atomically on SIGHUP.

use super::{CompiledPolicy, Config, ConfigError, ListKind, User};
use crate::mail::Address;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// Configured users plus the generated development user, if any.
    pub users: Vec<User>,
    /// Lower-cased domains whose `postmaster@`, `fbl@`, `b+…@` and `u+…@` are ours.
    pub own_domains: HashSet<String>,
    /// Lower-cased addresses of discussion lists (accepted on the inbound listener).
    pub discussion_lists: HashSet<String>,
    /// `policy` compiled once per load (regexes, attachment types).
    pub policy: CompiledPolicy,
}

/// Local parts reserved on bounce domains (besides `b+TOKEN` and `u+TOKEN`).
const RESERVED_LOCALS: [&str; 2] = ["postmaster", "fbl"];

impl Settings {
    /// Derives the settings from a loaded config. It fails only for a config that did not go
    /// through [`super::load`]'s validation (which compiles the policy the same way).
    pub fn new(config: Config, dev_user: Option<User>) -> Result<Settings, ConfigError> {
        let policy =
            CompiledPolicy::compile(&config.policy).map_err(|(key, reason)| ConfigError {
                source_name: "configuration".into(),
                key,
                reason,
            })?;
        let mut own_domains: HashSet<String> = config
            .domains
            .values()
            .filter_map(|d| d.bounce_domain.as_ref())
            .map(|d| d.to_ascii_lowercase())
            .collect();
        own_domains.insert(config.hostname.to_ascii_lowercase());
        let discussion_lists = config
            .lists
            .iter()
            .filter(|l| l.kind == ListKind::Discussion)
            .map(|l| l.address.to_ascii_lowercase())
            .collect();
        let mut users = config.users.clone();
        users.extend(dev_user);
        Ok(Settings {
            config,
            users,
            own_domains,
            discussion_lists,
            policy,
        })
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Whether `local@domain` (domain already lower-cased or not) is one of this host's own
    /// inbound addresses. `domain` empty means the bare `<postmaster>` of RFC 5321 §4.5.1.
    pub fn is_own_address(&self, local: &str, domain: &str) -> bool {
        let local_lc = local.to_ascii_lowercase();
        if domain.is_empty() {
            return local_lc == "postmaster";
        }
        let domain_lc = domain.to_ascii_lowercase();
        if self
            .discussion_lists
            .contains(&format!("{local_lc}@{domain_lc}"))
        {
            return true;
        }
        if !self.own_domains.contains(&domain_lc) {
            return false;
        }
        RESERVED_LOCALS.contains(&local_lc.as_str()) || is_token_address(&local_lc)
    }
}

/// `b+TOKEN` or `u+TOKEN` with a token of lower-case letters and digits.
fn is_token_address(local: &str) -> bool {
    let token = local
        .strip_prefix("b+")
        .or_else(|| local.strip_prefix("u+"));
    token.is_some_and(|t| {
        (1..=200).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Whether `user` may use `address` as envelope sender: exact match or `*@domain`, case-insensitive;
/// `*` alone allows any address (the loopback-only development user).
pub fn sender_allowed(user: &User, address: &str) -> bool {
    let parsed = Address::parse(address).ok();
    user.senders.iter().any(|pattern| {
        if pattern == "*" {
            return true;
        }
        match pattern.strip_prefix("*@") {
            Some(d) => parsed.as_ref().is_some_and(|a| a.domain_is(d)),
            None => pattern.eq_ignore_ascii_case(address),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Domain;

    fn settings() -> Settings {
        let mut config = Config {
            hostname: "mx.example.org".into(),
            ..Config::default()
        };
        config.domains.insert(
            "example.org".into(),
            Domain {
                bounce_domain: Some("Bounces.Example.org".into()),
                ..Domain::default()
            },
        );
        Settings::new(config, None).unwrap()
    }

    #[test]
    fn own_addresses() {
        let s = settings();
        let table = [
            ("postmaster", "bounces.example.org", true),
            ("PostMaster", "BOUNCES.example.ORG", true),
            ("postmaster", "", true),
            ("postmaster", "mx.example.org", true),
            ("fbl", "bounces.example.org", true),
            ("b+abc123", "bounces.example.org", true),
            ("u+abc123", "bounces.example.org", true),
            ("b+", "bounces.example.org", false),
            ("b+a.b", "bounces.example.org", false),
            ("user", "bounces.example.org", false),
            ("postmaster", "other.org", false),
            ("postmaster%other.org", "bounces.example.org", false),
            ("other.org!postmaster", "bounces.example.org", false),
            ("postmaster", "bounces.example.org.", false),
            ("postmaster", "[127.0.0.1]", false),
        ];
        for (local, domain, want) in table {
            assert_eq!(s.is_own_address(local, domain), want, "{local}@{domain}");
        }
    }

    #[test]
    fn senders() {
        let user = User {
            name: "u".into(),
            password_hash: String::new(),
            senders: vec!["news@example.org".into(), "*@shop.example".into()],
            may_send_service: false,
        };
        assert!(sender_allowed(&user, "News@Example.org"));
        assert!(sender_allowed(&user, "anyone@shop.example"));
        assert!(!sender_allowed(&user, "other@example.org"));
        assert!(!sender_allowed(&user, "x@evil.shop.example"));
        assert!(!sender_allowed(&user, ""));
    }
}
