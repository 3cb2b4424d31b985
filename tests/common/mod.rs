//! Test harness: runs the real `herald` binary on 127.0.0.1:0 ports with a temp data dir and
//! rcgen TLS certificates, and talks to it with a small raw SMTP client (plain, STARTTLS,
//! implicit TLS). Every wait has a deadline; none is a sleep. Beside it: the daemons' TOML
//! (`config`), external tools and the bounce corpus, which skip or, under
//! `HERALD_REQUIRE_TOOLS=1`, fail (`tools`), polling with a deadline (`poll`), SMTP steps with
//! every reply checked (`checked`), the raw client (`client`), the sink, DNS and HTTP fakes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod checked;
pub mod client;
pub mod config;
pub mod dns;
pub mod http;
pub mod poll;
pub mod sink;
pub mod tools;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use client::{Client, Reply};
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use poll::{poll, until};
#[allow(unused_imports)]
pub use tools::have;

pub const ALICE: &str = "alice";
pub const ALICE_PASSWORD: &str = "alice-secret";
/// argon2id of ALICE_PASSWORD, made with `herald hash-password`.
pub fn alice_hash() -> String {
    static_hash(ALICE_PASSWORD)
}

fn static_hash(password: &str) -> String {
    herald::devuser::hash_password(password).expect("hash")
}

pub fn herald_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald"))
}

/// Variables of the test harness whose names start with `HERALD_` but which are not Herald's
/// settings (its configuration refuses unknown `HERALD_*` keys): no process the tests start
/// through `command` sees them.
pub const HARNESS_VARS: [&str; 3] = [tools::REQUIRE, tools::CORPUS, "HERALD_TEST_SEED"];

/// A command running `program` without the harness's variables.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in HARNESS_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The `herald` binary under test, without the harness's variables and `$HERALD_CONFIG`.
pub fn herald_command() -> Command {
    let mut cmd = command(herald_bin());
    cmd.env_remove("HERALD_CONFIG");
    cmd
}

/// A self-signed certificate for `localhost` / 127.0.0.1, as PEM (cert, key).
pub fn make_cert() -> (String, String) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    (pair.cert.pem(), pair.key_pair.serialize_pem())
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// How many daemon processes' stdout streams have ended.
    closed: usize,
}

/// Collected stdout of the daemon, with waiting.
#[derive(Clone, Default)]
pub struct Stdout(Arc<(Mutex<Lines>, Condvar)>);

impl Stdout {
    fn push(&self, line: String) {
        let (m, c) = &*self.0;
        m.lock().unwrap().lines.push(line);
        c.notify_all();
    }
    fn close(&self) {
        let (m, c) = &*self.0;
        m.lock().unwrap().closed += 1;
        c.notify_all();
    }
    /// Waits for the `n`th (0-based) line containing `pattern`, while the `n`th process lives.
    pub fn wait_nth(&self, pattern: &str, n: usize, timeout: Duration) -> String {
        self.wait_in(pattern, n, n, timeout)
    }
    /// Waits for the `n`th line containing `pattern`; fails if process number `generation` ended.
    pub fn wait_in(&self, pattern: &str, n: usize, generation: usize, timeout: Duration) -> String {
        let (m, c) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.lines.iter().filter(|l| l.contains(pattern)).nth(n) {
                return l.clone();
            }
            let now = Instant::now();
            assert!(
                g.closed <= generation,
                "daemon stdout closed before {pattern:?}; got {:?}",
                g.lines
            );
            assert!(
                now < deadline,
                "timed out waiting for {pattern:?}; got {:?}",
                g.lines
            );
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.0.lock().unwrap().lines.clone()
    }
}

/// A running daemon in its own temp directory.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub cert_pem: String,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub inbound: SocketAddr,
    pub http: SocketAddr,
    pub stdout: Stdout,
    pub stderr_path: PathBuf,
}

impl Daemon {
    /// Starts a daemon with the base config plus `extra`.
    pub fn start(extra: &str) -> Daemon {
        Daemon::start_top("", extra)
    }

    /// Starts with top-level keys `top` and table sections `extra`.
    pub fn start_top(top: &str, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = make_cert();
        std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key).unwrap();
        let config_path = dir.path().join("herald.toml");
        std::fs::write(&config_path, base_config_top(dir.path(), top, extra)).unwrap();
        Daemon::start_with(dir, config_path, cert)
    }

    /// Starts with an already written config file in `dir`.
    pub fn start_with(dir: tempfile::TempDir, config_path: PathBuf, cert_pem: String) -> Daemon {
        let mut d = Daemon {
            child: None,
            dir,
            config_path,
            cert_pem,
            submission: "0.0.0.0:0".parse().unwrap(),
            submissions: "0.0.0.0:0".parse().unwrap(),
            inbound: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            stdout: Stdout::default(),
            stderr_path: PathBuf::new(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let n = self
            .stdout
            .lines()
            .iter()
            .filter(|l| l.contains("herald: ready"))
            .count();
        self.stderr_path = self.dir.path().join(format!("stderr-{n}.log"));
        let stderr = std::fs::File::create(&self.stderr_path).unwrap();
        let mut child = herald_command()
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn herald");
        let out = child.stdout.take().unwrap();
        let sink = self.stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => sink.push(l),
                    Err(_) => break,
                }
            }
            sink.close();
        });
        self.child = Some(child);
        self.stdout
            .wait_nth("herald: ready", n, Duration::from_secs(60));
        let addr = |role: &str| -> SocketAddr {
            let pat = format!("listening {role} ");
            let line = self
                .stdout
                .lines()
                .into_iter()
                .rfind(|l| l.contains(&pat))
                .unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        self.submission = addr("submission");
        self.submissions = addr("submissions");
        self.inbound = addr("inbound");
        self.http = addr("http");
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// kill -9, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("running");
        poll::wait_exit(&mut child, timeout).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("daemon did not exit within {timeout:?} after SIGTERM");
        })
    }

    /// Restarts on the same data dir and config (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Runs a `herald` CLI command against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        herald_command()
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .expect("run herald cli")
    }

    /// `herald queue ls --json`
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["queue", "ls", "--json"]);
        assert!(
            out.status.success(),
            "queue ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `herald queue ls` until it is empty (there is no event to wait on from outside).
    pub async fn wait_queue_empty(&self, timeout: Duration) {
        self.wait_queue(timeout, <[serde_json::Value]>::is_empty)
            .await;
    }

    /// Polls `herald queue ls` until `pred` holds for the queue, and returns that queue.
    pub async fn wait_queue(
        &self,
        timeout: Duration,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        poll("the queue", timeout, || {
            let q = self.queue();
            if pred(&q) { Ok(q) } else { Err(q) }
        })
        .await
    }

    /// A list member's status as `herald list members LIST --json` reports it.
    pub fn member_status(&self, list: &str, address: &str) -> Option<String> {
        let out = self.cli(&["list", "members", list, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == address)
            .map(|m| m["status"].as_str().unwrap().to_string())
    }

    /// Submits `message` as alice with Python's smtplib (STARTTLS, AUTH PLAIN).
    pub fn smtplib_submit(&self, from: &str, to: &[&str], message: &str) {
        let ca = self.dir.path().join("ca.pem");
        std::fs::write(&ca, &self.cert_pem).unwrap();
        let script = "import smtplib, ssl, sys, json\n\
            ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
            s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
            s.starttls(context=ctx)\n\
            s.login('alice', 'alice-secret')\n\
            s.sendmail(sys.argv[3], json.loads(sys.argv[4]), sys.argv[5])\n\
            s.quit()\n";
        let out = Command::new("python3")
            .args(["-c", script, &self.submission.port().to_string()])
            .arg(&ca)
            .args([from, &serde_json::to_string(to).unwrap(), message])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "smtplib: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn connect(&self, addr: SocketAddr) -> Client {
        Client::connect(addr).await
    }

    /// Submission over STARTTLS, EHLO'd and authenticated as alice.
    pub async fn alice(&self) -> Client {
        let mut c = Client::connect(self.submission).await;
        c.ehlo().await;
        c.starttls(&self.cert_pem).await;
        c.ehlo().await;
        let r = c.auth_plain(ALICE, ALICE_PASSWORD).await;
        assert_eq!(r.code, 235, "{r:?}");
        c
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A small RFC 5322 message.
pub fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello from the Herald tests.\r\n"
    )
}

/// A command's exit status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
pub fn queued_id(r: &Reply) -> String {
    assert!(r.has(250, "2.0.0"), "{r:?}");
    r.text().rsplit(' ').next().unwrap().to_string()
}
