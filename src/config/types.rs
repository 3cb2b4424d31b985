//! The typed configuration (DESIGN §3) and its embedded defaults.

use super::human::{ByteRate, ByteSize, HumanDuration, Rate};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub hostname: String,
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    pub users: Vec<User>,
    pub trusted_networks: Vec<IpNet>,
    pub domains: BTreeMap<String, Domain>,
    pub delivery: Delivery,
    pub unsubscribe: Unsubscribe,
    pub lists: Vec<List>,
    pub limits: Limits,
    pub http: Http,
    pub bounce: Bounce,
    pub policy: Policy,
    pub privacy: Privacy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postmaster: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub submission: Vec<String>,
    pub submissions: Vec<String>,
    pub inbound: Vec<String>,
    pub http: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub senders: Vec<String>,
    #[serde(default)]
    pub may_send_service: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim_selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    Opportunistic,
    Required,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// `default` plus per-domain overrides.
    pub rate: BTreeMap<String, Rate>,
    pub burst: u32,
    pub max_connections_per_domain: u32,
    pub retry: Vec<HumanDuration>,
    pub expire: HumanDuration,
    pub tls: TlsPolicy,
    /// DNS servers (`ip:port`) for MX lookups; empty means the system's resolv.conf.
    pub dns_servers: Vec<String>,
    /// Port of remote mail exchangers (25; tests point it elsewhere).
    pub smtp_port: u16,
    pub connect_timeout: HumanDuration,
    /// Per SMTP command (mail-send's own default is an hour).
    pub command_timeout: HumanDuration,
    /// Deliveries in flight at once, over all domains.
    pub concurrency: usize,
    /// How long a throttled domain stays slowed before each recovery step.
    pub throttle_cooldown: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    pub base_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Announce,
    Discussion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Marketing,
    Transactional,
    Service,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    pub id: String,
    pub address: String,
    pub name: String,
    pub kind: ListKind,
    #[serde(default)]
    pub posters: Vec<String>,
    #[serde(default = "default_category")]
    pub category: Category,
}

fn default_category() -> Category {
    Category::Marketing
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_message_size: ByteSize,
    pub max_recipients: usize,
    /// Over every SMTP listener together.
    pub max_connections: usize,
    /// Each SMTP listener's own budget (587, 465 and 25 apiece).
    pub connections_per_listener: usize,
    /// Slots of each submission listener only authenticated (or trusted) sessions may use.
    pub submission_reserve: usize,
    /// Per client address (IPv6: per /64) over every SMTP listener; trusted networks exempt.
    pub max_connections_per_ip: usize,
    pub max_auth_failures: u32,
    pub auth_failure_window: HumanDuration,
    pub max_line_length: usize,
    pub max_errors: u32,
    /// Commands that do nothing (NOOP, RSET, HELP, VRFY, unknown) per session; reset by each
    /// accepted message.
    pub max_idle_commands: u32,
    /// Waiting for a command, and then the whole command line from its first byte.
    pub command_timeout: HumanDuration,
    /// A message's content (DATA, or BDAT from its first chunk): this plus its size at
    /// `data_min_rate`.
    pub data_timeout: HumanDuration,
    pub data_min_rate: ByteRate,
    /// Replaces both timeouts for unauthenticated sessions while their listener holds three
    /// quarters of its budget or more (Postfix's `${stress?{10}:{300}}s`).
    pub stress_timeout: HumanDuration,
    pub tls_handshake_timeout: HumanDuration,
    pub shutdown_grace: HumanDuration,
    /// Failed AUTH attempts on one account name (known or not) from any address within
    /// `auth_failure_window`; past it the account is refused until the window ends.
    pub max_auth_failures_per_account: u32,
    /// Mail to `postmaster@` on the inbound listener, per client address (IPv6: per /64).
    pub postmaster_rate: Rate,
    /// Largest message to `postmaster@` on the inbound listener.
    pub postmaster_max_size: ByteSize,
    /// Below this much free space on `data_dir`'s file system, new mail gets `452 4.3.1` and
    /// `/healthz` answers 503 (like Postfix's `queue_minfree`); `"0"` turns the floor off.
    pub min_free_space: ByteSize,
}

/// Bounds on the web listener (DESIGN §16), like `limits` for SMTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Concurrent connections over every `listen.http` address; past it new ones are closed.
    pub max_connections: usize,
    /// A request's head must arrive within this of when the server starts waiting for it (a
    /// new connection, or the previous response on a kept-alive one), and its body within
    /// this again.
    pub header_timeout: HumanDuration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Origins (`scheme://host[:port]`) whose pages may post the sign-up form; empty means
    /// the origin of `unsubscribe.base_url`. A sign-up with neither `Origin` nor `Referer` is
    /// taken (not a browser).
    pub signup_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: from a listed peer the client is
    /// the right-most address in it that is not itself listed.
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounce {
    pub soft_limit: u32,
    pub soft_window: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    pub pattern: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub deny: Vec<DenyRule>,
    pub deny_attachment_types: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    pub log_addresses: bool,
}

fn mins(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n * 60))
}

impl Default for Config {
    fn default() -> Self {
        let hostname = gethostname::gethostname()
            .to_string_lossy()
            .trim()
            .to_ascii_lowercase();
        let hostname = if hostname.is_empty() {
            "localhost".to_string()
        } else {
            hostname
        };
        Config {
            hostname,
            data_dir: PathBuf::from("./herald-data"),
            listen: Listen {
                submission: vec!["127.0.0.1:2587".into()],
                submissions: vec!["127.0.0.1:2465".into()],
                inbound: vec!["127.0.0.1:2525".into()],
                http: vec!["127.0.0.1:8025".into()],
            },
            tls: Tls::default(),
            users: Vec::new(),
            trusted_networks: Vec::new(),
            domains: BTreeMap::new(),
            delivery: Delivery {
                relay: None,
                rate: BTreeMap::from([(
                    "default".to_string(),
                    Rate {
                        count: 600,
                        per: Duration::from_secs(60),
                    },
                )]),
                burst: 5,
                max_connections_per_domain: 10,
                retry: [5, 10, 30, 60, 120, 240, 480]
                    .into_iter()
                    .map(mins)
                    .collect(),
                expire: mins(5 * 24 * 60),
                tls: TlsPolicy::Opportunistic,
                dns_servers: Vec::new(),
                smtp_port: 25,
                connect_timeout: HumanDuration(Duration::from_secs(30)),
                command_timeout: mins(5),
                concurrency: 100,
                throttle_cooldown: mins(2),
            },
            unsubscribe: Unsubscribe {
                base_url: "http://127.0.0.1:8025".into(),
            },
            lists: Vec::new(),
            limits: Limits::default(),
            http: Http {
                max_connections: 256,
                header_timeout: HumanDuration(Duration::from_secs(10)),
                idle_timeout: mins(1),
                signup_origins: Vec::new(),
                trusted_proxies: Vec::new(),
            },
            bounce: Bounce {
                soft_limit: 5,
                soft_window: mins(14 * 24 * 60),
            },
            policy: Policy::default(),
            privacy: Privacy::default(),
            postmaster: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: ByteSize(25 << 20),
            max_recipients: 1000,
            max_connections: 3000,
            connections_per_listener: 1000,
            submission_reserve: 100,
            max_connections_per_ip: 50,
            max_auth_failures: 5,
            auth_failure_window: mins(15),
            max_line_length: 4096,
            max_errors: 20,
            max_idle_commands: 100,
            command_timeout: mins(5),
            data_timeout: mins(10),
            data_min_rate: ByteRate(500),
            stress_timeout: HumanDuration(Duration::from_secs(10)),
            tls_handshake_timeout: HumanDuration(Duration::from_secs(30)),
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            max_auth_failures_per_account: 10,
            postmaster_rate: Rate {
                count: 10,
                per: Duration::from_secs(3600),
            },
            postmaster_max_size: ByteSize(1 << 20),
            min_free_space: ByteSize(1 << 30),
        }
    }
}
