//! The configuration the test daemons get: the base file (users, TLS, the `example.org`
//! domain), and the tables tests add to it (a relay, lists, a relay that refuses).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::{ALICE, alice_hash};
use std::net::SocketAddr;
use std::path::Path;

/// The base config every test daemon gets; `extra` is appended (TOML).
pub fn base_config(dir: &Path, extra: &str) -> String {
    base_config_top(dir, "", extra)
}

/// The base config with top-level keys `top` (e.g. `trusted_networks`) before any table.
pub fn base_config_top(dir: &Path, top: &str, extra: &str) -> String {
    format!(
        r#"{top}
hostname = "mx.test.example"
data_dir = "{data}"
[listen]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
inbound = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[tls]
cert = "{dir}/cert.pem"
key = "{dir}/key.pem"
[[users]]
name = "{ALICE}"
password_hash = "{hash}"
senders = ["alice@example.org", "*@alice.example"]
[domains."example.org"]
bounce_domain = "bounces.example.org"
{extra}
"#,
        data = dir.join("data").display(),
        dir = dir.display(),
        hash = alice_hash(),
    )
}

/// A `[delivery]` table relaying everything to `relay` (a test sink), retrying after 1 s.
pub fn relay_to(relay: SocketAddr) -> String {
    format!("[delivery]\nrelay = \"{relay}\"\nretry = [\"1s\"]\n")
}

/// An announce list's `[[lists]]` table: `id` at `ID@example.org`, called `name`, posted to by
/// `posters` (user names or addresses).
pub fn announce_list(id: &str, name: &str, posters: &[&str]) -> String {
    let posters = posters
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n[[lists]]\nid = \"{id}\"\naddress = \"{id}@example.org\"\nname = \"{name}\"\n\
         kind = \"announce\"\nposters = [{posters}]\n"
    )
}

/// The `news` list the list tests share: "Example News", posted to by alice.
pub fn news_list() -> String {
    announce_list("news", "Example News", &[ALICE])
}

/// The `[unsubscribe]` table whose base the list pages' links start with.
pub const UNSUBSCRIBE_BASE: &str = "\n[unsubscribe]\nbase_url = \"https://lists.example.org\"\n";

/// A `[delivery]` table whose relay is a closed loopback port: every delivery attempt is
/// deferred (connection refused, retried minutes later), so submitted mail stays in the queue
/// for the test to inspect.
pub fn hold() -> String {
    format!("[delivery]\nrelay = \"{}\"\n", closed_port())
}

/// A loopback address that refuses connections: a socket bound to it, never listening, held
/// for the whole test process, so no other daemon or sink of this process can be given it.
pub fn closed_port() -> SocketAddr {
    static SOCKET: std::sync::OnceLock<tokio::net::TcpSocket> = std::sync::OnceLock::new();
    let socket = SOCKET.get_or_init(|| {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s
    });
    socket.local_addr().unwrap()
}
