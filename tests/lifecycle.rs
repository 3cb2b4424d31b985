//! Process lifecycle: SIGTERM drain, SIGHUP reload (accepted and refused), `check-config`,
//! `hash-password`, and the queue commands against a running and a stopped daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Replaces the daemon's config file (atomically): `top` goes before the base config (so it
/// can hold top-level keys), `extra` after it (and after [`hold`]).
fn rewrite_config(d: &Daemon, top: &str, extra: &str) {
    let text = format!(
        "{top}\n{}",
        base_config(d.dir.path(), &format!("{}{extra}", hold()))
    );
    let tmp = d.dir.path().join("herald.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &d.config_path).unwrap();
}

/// `herald hash-password` with `password` on stdin.
fn hash_password(password: &str) -> Output {
    let mut child = herald_command()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `herald check-config --config FILE` with extra environment.
fn check_config(path: &Path, env: &[(&str, &str)]) -> Output {
    herald_command()
        .args(["check-config", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

async fn login(d: &Daemon, user: &str, password: &str) -> (Client, Reply) {
    let mut c = Client::connect(d.submission).await;
    c.ehlo().await;
    c.starttls(&d.cert_pem).await;
    c.ehlo().await;
    let r = c.auth_plain(user, password).await;
    (c, r)
}

// ---- SIGTERM -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_open_transactions_and_exits_0() {
    let mut d = Daemon::start(&hold());

    // An idle session, a session inside DATA, and one between RCPT and DATA.
    let mut idle = d.alice().await;
    let mut in_data = d.alice().await;
    let body = message("alice@example.org", "drain@remote.test", "drained in DATA");
    let (head, tail) = body.split_at(body.len() / 2);
    assert_eq!(in_data.cmd("MAIL FROM:<alice@example.org>").await.code, 250);
    assert_eq!(in_data.cmd("RCPT TO:<drain@remote.test>").await.code, 250);
    assert_eq!(in_data.cmd("DATA").await.code, 354);
    in_data.send_raw(head.as_bytes()).await;
    let mut in_rcpt = d.alice().await;
    assert_eq!(in_rcpt.cmd("MAIL FROM:<x@alice.example>").await.code, 250);
    assert_eq!(in_rcpt.cmd("RCPT TO:<one@remote.test>").await.code, 250);

    d.signal(libc::SIGTERM);

    // The idle session is told at once and closed.
    let r = idle.read_reply().await;
    assert!(r.has(421, "4.3.2"), "{r:?}");
    assert!(idle.closed().await, "idle session closed after 421");

    // New connections are not served: refused, reset, or at most greeted and sent away.
    // One attempt only: the listener may close between two connects.
    if let Some(mut late) = Client::try_connect_raw(d.submission).await {
        late.timeout = Duration::from_secs(5);
        if let Some(r) = late.try_read_reply().await {
            assert_eq!(r.code, 220, "{r:?}");
            late.try_send_raw(b"EHLO late.test\r\n").await;
            let r = late.try_read_reply().await;
            assert!(r.as_ref().is_none_or(|r| r.has(421, "4.3.2")), "{r:?}");
        }
    }

    // The transaction in DATA may finish; then the session is closed with 421.
    in_data.send_raw(tail.as_bytes()).await;
    let r = in_data.cmd(".").await;
    let drained_id = queued_id(&r);
    in_data
        .try_send_raw(b"MAIL FROM:<alice@example.org>\r\n")
        .await;
    let r = in_data.read_reply().await;
    assert!(r.has(421, "4.3.2"), "{r:?}");
    assert!(in_data.closed().await);

    // The transaction between RCPT and DATA may add recipients and finish too.
    assert_eq!(in_rcpt.cmd("RCPT TO:<two@remote.test>").await.code, 250);
    assert_eq!(in_rcpt.cmd("DATA").await.code, 354);
    in_rcpt
        .send_raw(message("x@alice.example", "one@remote.test", "drained before DATA").as_bytes())
        .await;
    let rcpt_id = queued_id(&in_rcpt.cmd(".").await);
    in_rcpt.try_send_raw(b"NOOP\r\n").await;
    let r = in_rcpt.read_reply().await;
    assert!(r.has(421, "4.3.2"), "{r:?}");

    let status = d.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", d.stderr());

    // Both drained messages survived the shutdown (`restart` works after `terminate`).
    d.restart();
    let q = d.queue();
    let ids: Vec<&str> = q.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&drained_id.as_str()), "{q:?}");
    assert!(ids.contains(&rcpt_id.as_str()), "{q:?}");
    let m = q.iter().find(|m| m["id"] == rcpt_id.as_str()).unwrap();
    assert_eq!(m["recipients"].as_array().unwrap().len(), 2, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_grace_period_ends_a_stalled_transaction() {
    let mut d = Daemon::start(&format!("{}[limits]\nshutdown_grace = \"1s\"\n", hold()));
    let mut stalled = d.alice().await;
    assert_eq!(stalled.cmd("MAIL FROM:<alice@example.org>").await.code, 250);
    assert_eq!(stalled.cmd("RCPT TO:<stalled@remote.test>").await.code, 250);
    assert_eq!(stalled.cmd("DATA").await.code, 354);
    stalled
        .send_raw(b"From: <alice@example.org>\r\nSubject: never finished\r\n\r\nhalf a")
        .await;

    let t = std::time::Instant::now();
    let status = d.terminate(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", d.stderr());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "waited for the grace period: {:?}",
        t.elapsed()
    );
    let r = stalled.try_read_reply().await;
    assert!(
        r.as_ref().is_some_and(|r| r.has(421, "4.3.2")),
        "told before being closed: {r:?}"
    );

    d.restart();
    assert!(
        d.queue().is_empty(),
        "the unfinished message was not queued"
    );
}

// ---- SIGHUP --------------------------------------------------------------------------------

#[test]
fn hash_password_prints_argon2id() {
    let out = hash_password("bob-secret");
    assert!(out.status.success(), "{}", text(&out));
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("bob-secret"));
    assert_ne!(
        hash,
        String::from_utf8(hash_password("bob-secret").stdout).unwrap(),
        "salted"
    );
    let out = hash_password("");
    assert_eq!(out.status.code(), Some(2), "empty password: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_user_without_dropping_sessions() {
    let d = Daemon::start(&hold());
    let mut alice = d.alice().await;

    let (_, r) = login(&d, "bob", "bob-secret").await;
    assert!(r.has(535, "5.7.8"), "bob is not configured yet: {r:?}");

    let out = hash_password("bob-secret");
    assert!(out.status.success(), "{}", text(&out));
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    rewrite_config(
        &d,
        "",
        &format!(
            "[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nsenders = [\"bob@example.org\"]\n"
        ),
    );
    let out = d.cli(&["check-config"]);
    assert!(out.status.success(), "{}", text(&out));

    d.signal(libc::SIGHUP);
    d.stdout.wait_in("herald: reloaded", 0, 0, WAIT);

    let (mut bob, r) = login(&d, "bob", "bob-secret").await;
    assert_eq!(r.code, 235, "{r:?}");
    let r = bob
        .send_mail(
            "bob@example.org",
            &["friend@remote.test"],
            &message("bob@example.org", "friend@remote.test", "from bob"),
        )
        .await;
    let bob_id = queued_id(&r);
    let r = bob.cmd("MAIL FROM:<alice@example.org>").await;
    assert!(r.has(553, "5.7.1"), "bob may not send as alice: {r:?}");

    // The session opened before the reload is still there and still works.
    let r = alice
        .send_mail(
            "alice@example.org",
            &["after-reload@remote.test"],
            &message(
                "alice@example.org",
                "after-reload@remote.test",
                "still here",
            ),
        )
        .await;
    let alice_id = queued_id(&r);

    let q = d.queue();
    for (id, sender) in [
        (&bob_id, "bob@example.org"),
        (&alice_id, "alice@example.org"),
    ] {
        let m = q.iter().find(|m| m["id"] == id.as_str()).expect("queued");
        assert_eq!(m["sender"], sender);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_bad_config_keeps_the_old_one() {
    let d = Daemon::start(&hold());
    let mut before = d.alice().await;

    rewrite_config(&d, "surprise_key = 1", "");
    d.signal(libc::SIGHUP);
    let line = d.stdout.wait_in("herald: reload refused", 0, 0, WAIT);
    assert!(
        line.contains("surprise_key") && line.contains(&*d.config_path.to_string_lossy()),
        "names the key and the file: {line}"
    );

    // Still up, old config in force: alice authenticates on a new connection and both the
    // old and the new session submit.
    let (mut after, r) = login(&d, ALICE, ALICE_PASSWORD).await;
    assert_eq!(r.code, 235, "{r:?}");
    for c in [&mut before, &mut after] {
        let r = c
            .send_mail(
                "alice@example.org",
                &["x@remote.test"],
                &message("alice@example.org", "x@remote.test", "after refused reload"),
            )
            .await;
        queued_id(&r);
    }

    // A config with a bad value is refused as well; a good one afterwards is taken.
    rewrite_config(&d, "", "[limits]\nmax_recipients = \"many\"\n");
    d.signal(libc::SIGHUP);
    let line = d.stdout.wait_in("herald: reload refused", 1, 0, WAIT);
    assert!(line.contains("limits.max_recipients"), "{line}");
    rewrite_config(&d, "", "[limits]\nmax_recipients = 1\n");
    d.signal(libc::SIGHUP);
    d.stdout.wait_in("herald: reloaded", 0, 0, WAIT);
    let mut c = d.alice().await;
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<a@remote.test>").await.code, 250);
    let r = c.cmd("RCPT TO:<b@remote.test>").await;
    assert!(r.has(452, "4.5.3"), "the reloaded limit applies: {r:?}");
    // (`queue ls` reads the config file too, so it is only usable with a good one again.)
    assert_eq!(d.queue().len(), 2);
}

// ---- check-config --------------------------------------------------------------------------

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, top: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{top}\n{}", base_config(dir.path(), extra))).unwrap();
        path
    };

    let unknown = write(
        "unknown.toml",
        "",
        "[limits]\nmax_mesage_size = \"10MiB\"\n",
    );
    let out = check_config(&unknown, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains(&*unknown.to_string_lossy()), "file: {err}");
    assert!(err.contains("limits.max_mesage_size"), "key: {err}");
    assert!(err.contains("unknown key"), "reason: {err}");

    let top_unknown = write("top.toml", "colour = \"blue\"", "");
    let out = check_config(&top_unknown, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        err.contains(&*top_unknown.to_string_lossy()) && err.contains("colour"),
        "{err}"
    );

    let bad_value = write("bad.toml", "", "[limits]\nmax_message_size = \"ten\"\n");
    let out = check_config(&bad_value, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains(&*bad_value.to_string_lossy()), "file: {err}");
    assert!(err.contains("limits.max_message_size"), "key: {err}");
    assert!(err.contains("\"ten\""), "reason quotes the value: {err}");

    let good = write("good.toml", "", "");
    let out = check_config(&good, &[]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(shown.contains("password_hash = \"<redacted>\""), "{shown}");
    assert!(!shown.contains("$argon2"), "no real hash printed: {shown}");
    assert!(shown.contains("mx.test.example"), "{shown}");

    let out = check_config(&good, &[("HERALD_LIMITS__MAX_RECIPIENTS", "abc")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains("limits.max_recipients"), "key: {err}");
    assert!(err.contains("environment"), "source: {err}");
    assert!(err.contains("abc"), "reason: {err}");

    // A good environment override is shown in the effective config.
    let out = check_config(&good, &[("HERALD_LIMITS__MAX_RECIPIENTS", "7")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("max_recipients = 7"),
        "{}",
        text(&out)
    );

    // $HERALD_CONFIG stands in for --config.
    let out = herald_command()
        .arg("check-config")
        .env("HERALD_CONFIG", &bad_value)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&*bad_value.to_string_lossy()),
        "{}",
        text(&out)
    );

    let out = check_config(&dir.path().join("missing.toml"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

// ---- queue commands ------------------------------------------------------------------------

#[test]
fn queue_commands_without_a_daemon_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, base_config(dir.path(), "")).unwrap();
    for args in [
        &["queue", "ls"][..],
        &["queue", "ls", "--json"],
        &["queue", "show", "0000000000000001"],
    ] {
        let out = herald_command()
            .args(args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not running"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_show_and_delete() {
    let mut d = Daemon::start(&hold());
    let mut c = d.alice().await;
    let keep = queued_id(
        &c.send_mail(
            "alice@example.org",
            &["keep@remote.test"],
            &message("alice@example.org", "keep@remote.test", "keep me"),
        )
        .await,
    );
    let id = queued_id(
        &c.send_mail(
            "alice@example.org",
            &["gone@remote.test", "also@remote.test"],
            &message(
                "alice@example.org",
                "gone@remote.test",
                "queue-cli subject 42",
            ),
        )
        .await,
    );

    let out = d.cli(&["queue", "show", &id]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(shown.contains(&id), "{shown}");
    assert!(shown.contains("Subject: queue-cli subject 42"), "{shown}");
    assert!(shown.contains("gone@remote.test"), "{shown}");
    assert!(shown.contains("also@remote.test"), "{shown}");

    let out = d.cli(&["queue", "show", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert!(v["body"].as_str().unwrap().contains("queue-cli subject 42"));

    let out = d.cli(&["queue", "ls"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        listing.contains(&id) && listing.contains(&keep) && listing.contains("in 2 Requests"),
        "{listing}"
    );

    let out = d.cli(&["queue", "delete", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let q = d.queue();
    assert!(q.iter().all(|m| m["id"] != id.as_str()), "{q:?}");
    assert!(q.iter().any(|m| m["id"] == keep.as_str()), "{q:?}");

    for args in [
        &["queue", "show", "NOSUCH"][..],
        &["queue", "show", &id],
        &["queue", "delete", &id],
        &["queue", "delete", "NOSUCH"],
    ] {
        let out = d.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }

    // The deletion is durable, and once the daemon is gone the CLI says so.
    d.restart();
    let q = d.queue();
    assert_eq!(q.len(), 1, "{q:?}");
    let status = d.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let out = d.cli(&["queue", "ls"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{}",
        text(&out)
    );
}

/// The signal handlers are in place before READY is announced: a SIGTERM the moment the daemon
/// says it is ready drains it (exit 0), it does not kill it (the default action, status 15).
#[test]
fn sigterm_right_after_ready_drains() {
    for _ in 0..5 {
        let mut d = Daemon::start(&hold());
        let status = d.terminate(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "{status:?}\n{}", d.stderr());
    }
}

/// SIGHUP the moment the daemon says it is ready reloads it; it does not kill it (SIGHUP's
/// default action). Five starts in a row; each is still serving afterwards and drains on
/// SIGTERM.
#[test]
fn sighup_right_after_ready_reloads() {
    use std::io::{BufRead, BufReader};
    for round in 0..5 {
        let mut d = Daemon::start(&hold());
        d.signal(libc::SIGHUP);
        d.stdout.wait_in("herald: reloaded", 0, 0, WAIT);
        let alive = d.child.as_mut().unwrap().try_wait().unwrap();
        assert!(alive.is_none(), "round {round}: {alive:?}\n{}", d.stderr());
        let tcp = std::net::TcpStream::connect(d.submission).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let mut banner = String::new();
        BufReader::new(tcp).read_line(&mut banner).unwrap();
        assert!(banner.starts_with("220 "), "round {round}: {banner:?}");
        let status = d.terminate(WAIT);
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
    }
}

/// A config file with nothing in it (truncated, or only comments) is refused: on SIGHUP the
/// running configuration stays (users and lists), `check-config` and `serve` name the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_config_file_is_refused() {
    let d = Daemon::start(&format!("{}{}", hold(), news_list()));
    let path = d.config_path.to_string_lossy().into_owned();
    for (n, empty) in ["", "\n  \n\t\n", "# truncated by an editor\n\n"]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&d.config_path, empty).unwrap();
        d.signal(libc::SIGHUP);
        let line = d.stdout.wait_in("herald: reload refused", n, 0, WAIT);
        assert!(
            line.contains("file is empty") && line.contains(&path),
            "{line}"
        );
        // The users and the list are still there.
        let (_c, r) = login(&d, ALICE, ALICE_PASSWORD).await;
        assert_eq!(r.code, 235, "{empty:?}: {r:?}");
        let (status, page) = common::http::Http::connect(d.http)
            .await
            .request(
                "POST",
                "/subscribe/news",
                Some("application/x-www-form-urlencoded"),
                format!("email=r{n}%40remote.test").as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "the list is still served: {page}");

        let out = check_config(&d.config_path, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path) && err.contains("file is empty"),
            "{err}"
        );
    }
    let out = herald_command()
        .args(["serve", "--config"])
        .arg(&d.config_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&path) && err.contains("file is empty"),
        "{err}"
    );
}

/// A CLI user who may not open the admin socket is told so, not that the daemon is down.
/// As root (which file modes do not stop) the command runs as `nobody` through `setpriv`;
/// otherwise the socket's mode is taken away for the call.
#[test]
fn cli_refused_by_socket_permissions_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start(&hold());
    let socket = d.dir.path().join("data").join("admin.sock");
    assert!(socket.exists(), "{}", socket.display());
    let out = if unsafe { libc::geteuid() } == 0 {
        if !have("setpriv") {
            return;
        }
        // A copy of the config that nobody may read; the data dir stays closed to nobody.
        let open = tempfile::tempdir().unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = open.path().join("herald.toml");
        std::fs::copy(&d.config_path, &config).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = command("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(herald_bin())
            .args(["queue", "ls", "--config"])
            .arg(&config)
            .env_remove("HERALD_CONFIG")
            .output()
            .unwrap();
        // Not a setpriv failure (no permission to change user, say) read as the answer.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("herald: "),
            "{}",
            text(&out)
        );
        out
    } else {
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).unwrap();
        let out = d.cli(&["queue", "ls"]);
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
        out
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("permission denied on {}", socket.display())),
        "{err}"
    );
    assert!(err.contains("daemon's user"), "{err}");
    assert!(!err.contains("not running"), "{err}");
    // The daemon's own user gets its answer.
    assert!(d.cli(&["queue", "ls"]).status.success());
}
