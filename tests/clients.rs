//! Real external clients against the real daemon: Python's smtplib, swaks, and the README's
//! quick start (`herald serve` with no config file at all).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `python3 - ARGS` with `script` on stdin.
fn python(script: &str, args: &[&str]) -> Output {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().expect("python3 output")
}

/// The queue id at the end of a `250 2.0.0 Ok: queued as ID` reply somewhere in `output`.
fn queued_id(output: &str) -> String {
    let at = output
        .find("Ok: queued as ")
        .unwrap_or_else(|| panic!("no queue id in {output}"));
    output[at + "Ok: queued as ".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

fn entry<'a>(q: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    q.iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} not in the queue: {q:?}"))
}

fn recipients(m: &serde_json::Value) -> Vec<String> {
    let mut r: Vec<String> = m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    r.sort();
    r
}

/// Sends one message with smtplib's `send_message` and prints the DATA reply.
const SMTPLIB_SEND: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage

mode, host, port, cafile, user, password, msgid = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
if mode == "starttls":
    s = smtplib.SMTP(host, int(port), timeout=30)
    s.ehlo()
    s.starttls(context=ctx)
    s.ehlo()
else:
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=30)
s.login(user, password)

# send_message does not return the final reply: record it on the way.
orig_data = s.data
def data(msg):
    reply = orig_data(msg)
    print("DATA", reply[0], reply[1].decode())
    return reply
s.data = data

m = EmailMessage()
m["From"] = "Alice <alice@example.org>"
m["To"] = "bob@remote.test, Carol <carol@remote.test>"
m["Subject"] = "smtplib " + mode
m["Message-ID"] = msgid
m.set_content("Sent by Python's smtplib over " + mode + ".\n")
refused = s.send_message(m)
print("REFUSED", refused)
s.quit()
"#;

const SMTPLIB_BAD_LOGIN: &str = r#"
import smtplib, ssl, sys

host, port, cafile = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP(host, int(port), timeout=30)
s.starttls(context=ctx)
try:
    s.login("alice", "not-the-password")
    print("LOGGED IN")
except smtplib.SMTPAuthenticationError as e:
    print("AUTHFAIL", e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

#[test]
fn python_smtplib_starttls_and_implicit_tls() {
    if !have("python3") {
        return;
    }
    let d = Daemon::start(&hold());
    let cafile = d.dir.path().join("ca.pem");
    std::fs::write(&cafile, &d.cert_pem).unwrap();
    let cafile = cafile.to_str().unwrap();

    let mut ids = Vec::new();
    for (mode, addr, msgid) in [
        ("starttls", d.submission, "<py-starttls.1@client.test>"),
        ("tls", d.submissions, "<py-tls.2@client.test>"),
    ] {
        let out = python(
            SMTPLIB_SEND,
            &[
                mode,
                "127.0.0.1",
                &addr.port().to_string(),
                cafile,
                ALICE,
                ALICE_PASSWORD,
                msgid,
            ],
        );
        let t = text(&out);
        assert!(out.status.success(), "smtplib {mode} failed:\n{t}");
        assert!(t.contains("DATA 250 2.0.0 Ok: queued as "), "{t}");
        assert!(t.contains("REFUSED {}"), "no recipient refused: {t}");
        ids.push((queued_id(&t), msgid));
    }

    let q = d.queue();
    assert_eq!(q.len(), 2, "{q:?}");
    for (id, msgid) in ids {
        let m = entry(&q, &id);
        assert_eq!(m["sender"], "alice@example.org", "{m}");
        assert_eq!(
            recipients(m),
            ["bob@remote.test", "carol@remote.test"],
            "{m}"
        );
        assert_eq!(
            m["message_id"], msgid,
            "the client's Message-ID is kept: {m}"
        );
    }
}

#[test]
fn python_smtplib_wrong_password_is_535() {
    if !have("python3") {
        return;
    }
    let d = Daemon::start(&hold());
    let cafile = d.dir.path().join("ca.pem");
    std::fs::write(&cafile, &d.cert_pem).unwrap();
    let out = python(
        SMTPLIB_BAD_LOGIN,
        &[
            "127.0.0.1",
            &d.submission.port().to_string(),
            cafile.to_str().unwrap(),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("AUTHFAIL 535 5.7.8"), "{t}");
    assert!(d.queue().is_empty());
}

fn swaks(args: &[&str]) -> Output {
    Command::new("swaks")
        .args(["--timeout", "30"])
        .args(args)
        .output()
        .expect("run swaks")
}

#[test]
fn swaks_starttls_and_implicit_tls() {
    if !tools::have_swaks_tls() {
        return;
    }
    let d = Daemon::start(&hold());
    let mut ids = Vec::new();
    for (flag, addr, to) in [
        ("--tls", d.submission, "x@remote.test"),
        ("--tlsc", d.submissions, "y@remote.test"),
    ] {
        let server = addr.to_string();
        let subject = format!("Subject: swaks {flag}");
        let out = swaks(&[
            "--server",
            &server,
            flag,
            "--auth-user",
            ALICE,
            "--auth-password",
            ALICE_PASSWORD,
            "--from",
            "alice@example.org",
            "--to",
            to,
            "--header",
            &subject,
        ]);
        let t = text(&out);
        assert!(out.status.success(), "swaks {flag}:\n{t}");
        assert!(t.contains("250 2.0.0 Ok: queued as "), "{t}");
        ids.push((queued_id(&t), to));
    }
    let q = d.queue();
    assert_eq!(q.len(), 2, "{q:?}");
    for (id, to) in ids {
        let m = entry(&q, &id);
        assert_eq!(m["sender"], "alice@example.org");
        assert_eq!(recipients(m), [to]);
        assert!(
            m["message_id"]
                .as_str()
                .is_some_and(|s| s.starts_with('<') && s.ends_with('>')),
            "{m}"
        );
    }
}

#[test]
fn swaks_without_auth_gets_530() {
    if !tools::have_swaks_tls() {
        return;
    }
    let d = Daemon::start(&hold());
    let server = d.submission.to_string();
    let base = [
        "--server",
        &server,
        "--from",
        "alice@example.org",
        "--to",
        "x@remote.test",
    ];
    // No TLS, no AUTH.
    let out = swaks(&base);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("530 5.7.0"), "{t}");
    // TLS but no AUTH.
    let mut args = base.to_vec();
    args.push("--tls");
    let out = swaks(&args);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("530 5.7.0 Authentication required"), "{t}");
    assert!(d.queue().is_empty());
}

/// A swaks without Net::SSLeay (here a stand-in that answers `--support` as such a swaks
/// does) counts as missing: the swaks tests skip, and fail naming libnet-ssleay-perl under
/// `HERALD_REQUIRE_TOOLS=1`.
#[test]
fn swaks_without_tls_skips_or_fails_when_required() {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("swaks");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho '=== Basic AUTH supported'\n\
         echo '*** TLS not available: requires Net::SSLeay'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for test in [
        "swaks_starttls_and_implicit_tls",
        "swaks_without_auth_gets_530",
    ] {
        tools::assert_fails_only_when_required(
            test,
            &[("PATH", Some(bin.path().to_str().unwrap()))],
            "swaks with TLS",
            "libnet-ssleay-perl",
        );
    }
}

// ---- The README quick start: no config file at all -------------------------------------------

/// Environment that keeps the embedded defaults but moves every listener to an ephemeral port.
/// figment's `Env` provider parses `["127.0.0.1:0"]` as a one-element array (so does
/// `[127.0.0.1:0]`).
const EPHEMERAL: [(&str, &str); 4] = [
    ("HERALD_LISTEN__SUBMISSION", r#"["127.0.0.1:0"]"#),
    ("HERALD_LISTEN__SUBMISSIONS", r#"["127.0.0.1:0"]"#),
    ("HERALD_LISTEN__INBOUND", r#"["127.0.0.1:0"]"#),
    ("HERALD_LISTEN__HTTP", r#"["127.0.0.1:0"]"#),
];

/// `herald ARGS` in `cwd` with no config file and the ephemeral-port environment (plus a
/// relay that defers every delivery, so the test can see its mail in the queue).
fn bare_herald(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = herald_command();
    cmd.args(args)
        .current_dir(cwd)
        .envs(EPHEMERAL)
        .env("HERALD_DELIVERY__RELAY", closed_port().to_string());
    cmd
}

/// A `herald serve` with no config, killed when dropped.
struct Bare {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Bare {
    fn start(cwd: &Path) -> Bare {
        let stderr = std::fs::File::create(cwd.join("stderr.log")).unwrap();
        let mut child = bare_herald(cwd, &["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn herald serve");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Bare {
            child,
            lines,
            seen: Vec::new(),
        };
        b.wait_for("herald: ready");
        b
    }

    fn wait_for(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(pattern)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(e) => panic!(
                    "waiting for {pattern:?}: {e}; stdout so far {:?}",
                    self.seen
                ),
            }
        }
    }

    fn addr(&mut self, role: &str) -> std::net::SocketAddr {
        let line = self.wait_for(&format!("listening {role} "));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// SIGTERM and a bounded wait for exit status 0.
    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = poll::wait_exit(&mut self.child, Duration::from_secs(30));
        let status = status.expect("no exit after SIGTERM");
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();

    let mut first = Bare::start(cwd);
    let created = first.wait_for("created development user \"dev\" with password \"");
    let password = created
        .split("with password \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(password.len() >= 16, "{created}");
    let submission = first.addr("submission");
    let submissions = first.addr("submissions");

    // The generated certificate is valid for localhost.
    let cert = std::fs::read_to_string(cwd.join("herald-data/tls-cert.pem"))
        .expect("a self-signed certificate generated in data_dir");
    let mut c = Client::connect(submission).await;
    c.ehlo().await;
    c.starttls(&cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_plain("dev", &password).await.code, 235);
    let r = c
        .send_mail(
            "dev@quickstart.test",
            &["first@remote.test"],
            &message("dev@quickstart.test", "first@remote.test", "quick start"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let mut ids = vec![r.text().rsplit(' ').next().unwrap().to_string()];

    if tools::have_swaks_tls() {
        let server = submissions.to_string();
        let out = tokio::task::spawn_blocking(move || {
            swaks(&[
                "--server",
                &server,
                "--tlsc",
                "--auth-user",
                "dev",
                "--auth-password",
                &password,
                "--from",
                "dev@quickstart.test",
                "--to",
                "second@remote.test",
            ])
        })
        .await
        .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        ids.push(queued_id(&t));
    }

    let out = bare_herald(cwd, &["queue", "ls", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let q: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q.len(), ids.len(), "{q:?}");
    for id in &ids {
        assert_eq!(entry(&q, id)["sender"], "dev@quickstart.test");
    }
    // The human listing too.
    let out = bare_herald(cwd, &["queue", "ls"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listing.contains(&ids[0]),
        "{listing}"
    );
    first.stop();

    // A second start in the same directory keeps the password and does not print it again.
    let mut second = Bare::start(cwd);
    let line = second.wait_for("development user \"dev\"");
    assert!(line.contains("password in"), "{line}");
    let password = std::fs::read_to_string(cwd.join("herald-data/dev-password")).unwrap();
    let password = password.trim();
    assert!(
        second.seen.iter().all(|l| !l.contains(password)),
        "password printed again: {:?}",
        second.seen
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cwd.join("herald-data/dev-password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "dev-password is private");
    let mut c = Client::connect(second.addr("submission")).await;
    c.ehlo().await;
    c.starttls(&cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_plain("dev", password).await.code, 235);
    second.stop();
}
