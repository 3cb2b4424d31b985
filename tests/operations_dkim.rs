//! `herald dkim keygen` and `herald dns` end to end: keys made by the CLI sign real deliveries
//! that mail-auth verifies against the printed TXT record served by a loopback DNS server, keys
//! are never overwritten, and `herald dns` reports missing, ok and differing records (text and
//! JSON) against that server, or says it could not check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::dns::Dns;
use common::sink::Sink;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A config for the offline commands: the test hostname, a data dir in `dir`, example.org with a
/// bounce domain plus `domain_lines`, and `dns` as the only DNS server.
fn cli_config(dir: &Path, dns: &str, domain_lines: &str) -> PathBuf {
    let path = dir.join("cli.toml");
    let text = format!(
        "hostname = \"mx.test.example\"\ndata_dir = \"{}\"\n\
         [domains.\"example.org\"]\nbounce_domain = \"bounces.example.org\"\n{domain_lines}\n\
         [delivery]\ndns_servers = [\"{dns}\"]\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `herald ARGS --config CONFIG` without blocking the runtime (the DNS server runs on it).
async fn herald(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::from(herald_command())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap()
}

/// The record a keygen printed: (owner name, TXT text with its strings joined).
fn printed_txt(stdout: &str) -> (String, String) {
    let line = stdout
        .lines()
        .find(|l| l.contains(" IN TXT "))
        .expect("a TXT line");
    let (owner, rdata) = line.split_once(" IN TXT ").unwrap();
    let strings: Vec<&str> = rdata.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{line}");
    (owner.trim_end_matches('.').to_string(), strings.concat())
}

/// The `dkim_selector = …` and `dkim_key = …` lines a keygen printed.
fn printed_key_lines(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| l.starts_with("dkim_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs a keygen that must succeed; returns its stdout and the record it printed.
async fn keygen(config: &Path, args: &[&str]) -> (String, (String, String)) {
    let mut all = vec!["dkim", "keygen"];
    all.extend_from_slice(args);
    let out = herald(config, &all).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let record = printed_txt(&stdout);
    (stdout, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_keys_sign_mail_that_verifies() {
    let sink = Sink::start("127.0.0.1:0").await;
    let dns = Dns::start().await;
    let keys = tempfile::tempdir().unwrap();
    let config = cli_config(keys.path(), &dns.addr.to_string(), "");

    // Ed25519 (the default) into data_dir/dkim with the default selector, mode 0600.
    let (ed_out, (ed_name, ed_txt)) = keygen(&config, &["example.org"]).await;
    assert!(ed_txt.starts_with("v=DKIM1; k=ed25519; p="), "{ed_txt}");
    let selector = ed_name.strip_suffix("._domainkey.example.org").unwrap();
    assert!(
        selector.len() == 7 && selector.starts_with('h'),
        "{selector}"
    );
    let ed_path = keys
        .path()
        .join(format!("data/dkim/example.org.{selector}.pem"));
    let mode = std::fs::metadata(&ed_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", ed_path.display());
    dns.txt(&ed_name, &ed_txt);

    // RSA-2048 with --selector and --out; its record needs two strings.
    let rsa_path = keys.path().join("alice.pem");
    let rsa_args = [
        "alice.example",
        "--algorithm",
        "rsa2048",
        "--selector",
        "rs1",
        "--out",
    ];
    let mut args = rsa_args.to_vec();
    args.push(rsa_path.to_str().unwrap());
    let (rsa_out, (rsa_name, rsa_txt)) = keygen(&config, &args).await;
    assert_eq!(rsa_name, "rs1._domainkey.alice.example");
    assert!(rsa_txt.starts_with("v=DKIM1; k=rsa; p="), "{rsa_txt}");
    assert!(rsa_txt.len() > 255, "split into strings: {rsa_out}");
    dns.txt(&rsa_name, &rsa_txt);

    // A daemon configured with the printed lines signs with both keys.
    let rsa_table: Vec<&str> = rsa_out
        .lines()
        .skip_while(|l| !l.starts_with("[domains."))
        .take(3)
        .collect();
    let extra = format!(
        "{}{}\n[delivery]\nrelay = \"{}\"\n",
        printed_key_lines(&ed_out),
        rsa_table.join("\n"),
        sink.addr
    );
    let d = Daemon::start(&extra);
    let mut c = d.alice().await;
    let sent = [
        (
            "alice@example.org",
            "bob@remote.test",
            "a=ed25519-sha256",
            selector,
        ),
        (
            "news@alice.example",
            "carol@remote.test",
            "a=rsa-sha256",
            "rs1",
        ),
    ];
    for (from, to, _, _) in sent {
        let r = c.send_mail(from, &[to], &message(from, to, "signed")).await;
        assert!(r.has(250, "2.0.0"), "{r:?}");
    }
    let got = sink.wait_count(2, WAIT).await;
    for (_, to, algorithm, selector) in sent {
        let r = got.iter().find(|r| r.rcpts == [to]).unwrap();
        let signature = r.header("DKIM-Signature").expect("signed");
        assert!(signature.contains(algorithm), "{signature}");
        assert!(signature.contains(&format!("s={selector};")), "{signature}");
        let results = dns.verify_dkim(&r.data).await;
        assert_eq!(results, vec![mail_auth::DkimResult::Pass], "{}", r.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_never_overwrites_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), "127.0.0.1:53", "");
    keygen(&config, &["example.org", "--selector", "s1"]).await;
    let path = dir.path().join("data/dkim/example.org.s1.pem");
    let before = std::fs::read(&path).unwrap();
    let again = herald(
        &config,
        &["dkim", "keygen", "example.org", "--selector", "s1"],
    )
    .await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{}", text(&again));
    assert!(stderr.contains("example.org.s1.pem"), "{}", text(&again));
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // An existing --out file (not a key at all) is refused the same way.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "keep me").unwrap();
    let args = [
        "dkim",
        "keygen",
        "example.org",
        "--out",
        other.to_str().unwrap(),
    ];
    let out = herald(&config, &args).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep me");

    for bad in ["../etc", "example.org --selector a/b"] {
        let mut args = vec!["dkim", "keygen"];
        args.extend(bad.split(' '));
        let out = herald(&config, &args).await;
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
}

fn records(out: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["records"].as_array().unwrap().clone()
}

/// Publishes the records `herald dns --json` asked for on `dns`, except those `skip` names.
fn publish(dns: &Dns, records: &[serde_json::Value], skip: &str) {
    for r in records.iter().filter(|r| r["kind"] != skip) {
        let name = r["name"].as_str().unwrap();
        let value = r["value"].as_str().unwrap();
        if r["type"] == "MX" {
            let (pref, host) = value.split_once(' ').unwrap();
            dns.mx(name, pref.parse().unwrap(), host.trim_end_matches('.'));
        } else {
            dns.txt(name, value);
        }
    }
}

/// A config in `dir` whose example.org signs with a new RSA key (selector s1), asking `dns`.
async fn rsa_domain(dir: &Path, dns: &Dns) -> PathBuf {
    let config = cli_config(dir, &dns.addr.to_string(), "");
    let key = dir.join("rsa.pem");
    let args = [
        "example.org",
        "--algorithm",
        "rsa2048",
        "--selector",
        "s1",
        "--out",
    ];
    let mut args = args.to_vec();
    args.push(key.to_str().unwrap());
    let (stdout, _) = keygen(&config, &args).await;
    cli_config(dir, &dns.addr.to_string(), &printed_key_lines(&stdout))
}

/// `herald dns example.org --json` with nothing published: the records it wants, all missing.
async fn wanted_records(config: &Path) -> Vec<serde_json::Value> {
    let out = herald(config, &["dns", "example.org", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["domain"], "example.org");
    assert_eq!(v["hostname"], "mx.test.example");
    assert_eq!(v["checked"], true);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(v["notes"], serde_json::json!([]));
    let wanted = records(&out);
    let shape: Vec<[&str; 4]> = wanted
        .iter()
        .map(|r| ["kind", "name", "type", "status"].map(|k| r[k].as_str().unwrap()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ["mx", "bounces.example.org", "MX", "missing"],
            ["spf", "bounces.example.org", "TXT", "missing"],
            ["dkim", "s1._domainkey.example.org", "TXT", "missing"],
            ["dmarc", "_dmarc.example.org", "TXT", "missing"],
        ]
    );
    assert_eq!(wanted[0]["value"], "10 mx.test.example.");
    assert_eq!(wanted[1]["value"], "v=spf1 a:mx.test.example -all");
    assert!(
        wanted
            .iter()
            .all(|r| r["published"] == serde_json::json!([]))
    );
    wanted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_reports_missing_records_then_all_ok() {
    let dns = Dns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = rsa_domain(dir.path(), &dns).await;

    // Nothing published: exit 1, every record missing, in text and JSON.
    let plain = herald(&config, &["dns", "example.org"]).await;
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    let stdout = String::from_utf8_lossy(&plain.stdout);
    for kind in ["MX", "SPF", "DKIM", "DMARC"] {
        assert!(stdout.contains(&format!("; {kind} missing")), "{stdout}");
    }
    assert!(stdout.contains("\nbounces.example.org. IN MX 10 mx.test.example.\n"));
    assert!(stdout.contains("4 of 4 records are missing"), "{stdout}");
    let wanted = wanted_records(&config).await;

    // Exactly the printed records published: exit 0, all ok.
    publish(&dns, &wanted, "");
    let ok = herald(&config, &["dns", "example.org", "--json"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        records(&ok).iter().all(|r| r["status"] == "ok"),
        "{}",
        text(&ok)
    );
    let plain = herald(&config, &["dns", "example.org"]).await;
    assert!(plain.status.success(), "{}", text(&plain));
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(stdout.contains("all 4 records are published"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_shows_a_record_that_differs() {
    let dns = Dns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = rsa_domain(dir.path(), &dns).await;
    let wanted = wanted_records(&config).await;
    // Everything but the DKIM key, which is a stale one.
    publish(&dns, &wanted, "dkim");
    dns.txt("s1._domainkey.example.org", "v=DKIM1; k=rsa; p=AAAA");

    let differs = herald(&config, &["dns", "example.org", "--json"]).await;
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    let got = records(&differs);
    let statuses: Vec<[&str; 2]> = got
        .iter()
        .map(|r| ["kind", "status"].map(|k| r[k].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ["mx", "ok"],
            ["spf", "ok"],
            ["dkim", "differs"],
            ["dmarc", "ok"]
        ]
    );
    assert_eq!(
        got[2]["published"],
        serde_json::json!(["v=DKIM1; k=rsa; p=AAAA"])
    );
    let plain = herald(&config, &["dns", "example.org"]).await;
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(stdout.contains("; DKIM differs"), "{stdout}");
    assert!(
        stdout.contains(";   published: \"v=DKIM1; k=rsa; p=AAAA\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 4 records are missing or differ"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_without_an_answer_or_for_an_unknown_domain() {
    let dir = tempfile::tempdir().unwrap();
    // A resolver that never answers: bound, never read.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = cli_config(dir.path(), &silent.local_addr().unwrap().to_string(), "");
    let out = herald(&config, &["dns", "example.org"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("records were not checked"), "{stdout}");
    assert!(stdout.contains("no DKIM key"), "{stdout}");
    assert!(stdout.contains("_dmarc.example.org. IN TXT"), "{stdout}");

    let unknown = herald(&config, &["dns", "other.example"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("other.example"));
}
