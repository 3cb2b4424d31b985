//! Bounces and complaints end to end: a synchronous 5.1.1 suppresses, a spam block does not;
//! real DSNs from the corpus, rewritten to a member's VERP address, arrive on the inbound
//! port and are applied (hard at once, soft past the limit); an ARF report marks the address
//! complained everywhere and suppresses list mail only; a vacation reply changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sink::{Received, Rule, Sink};
use common::*;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Soft bounces suppress at the second; the `news` list and an `offers` list, both alice's.
fn lists() -> String {
    let offers = announce_list("offers", "Offers", &[ALICE]);
    format!("[bounce]\nsoft_limit = 2\n{}{offers}", news_list())
}

/// A message of the corpus's `public/bsd/`; `None` (a skip, or a failure under
/// `HERALD_REQUIRE_TOOLS=1`) without the corpus.
fn corpus(file: &str) -> Option<String> {
    let p = tools::corpus()?.join("public/bsd").join(file);
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(t),
        Err(e) => {
            tools::missing(
                &format!("corpus file {file}"),
                &format!("{}: {e}", p.display()),
            );
            None
        }
    }
}

/// A corpus message with `from` replaced by `to`, as CRLF lines, dot-stuffed for DATA.
fn rewritten(text: &str, from: &str, to: &str) -> String {
    let t = text.replace("\r\n", "\n").replace(from, to);
    let t = t.replace('\n', "\r\n");
    let t = if t.ends_with("\r\n") {
        t
    } else {
        format!("{t}\r\n")
    };
    t.replace("\r\n.", "\r\n..")
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn suppression(d: &Daemon, address: &str) -> Option<serde_json::Value> {
    let out = ok(&d.cli(&["suppression", "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == address)
        .cloned()
}

async fn post(d: &Daemon, list: &str, subject: &str) {
    let mut c = d.alice().await;
    let body = format!("From: <alice@example.org>\r\nSubject: {subject}\r\n\r\nPost.\r\n");
    let r = c.send_mail("alice@example.org", &[list], &body).await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
}

/// Sends returned mail to `to` through the inbound listener.
async fn returned(d: &Daemon, to: &str, message: &str) {
    let mut c = Client::connect(d.inbound).await;
    c.ehlo().await;
    let r = c.send_mail("", &[to], message).await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
}

fn copy_to<'a>(got: &'a [Received], subject: &str, rcpt: &str) -> &'a Received {
    got.iter()
        .find(|r| r.rcpts == [rcpt] && r.data.contains(&format!("Subject: {subject}\r\n")))
        .unwrap_or_else(|| panic!("no copy of {subject} to {rcpt}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_suppress_by_class() {
    let (Some(hard), Some(full)) = (
        corpus("lhost-postfix-04.eml"),
        corpus("lhost-postfix-63.eml"),
    ) else {
        return;
    };
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![
        Rule::RejectRcpt {
            needle: "gone@".into(),
            reply: "550 5.1.1 no such user".into(),
        },
        Rule::RejectRcpt {
            needle: "picky@".into(),
            reply: "550 5.7.1 message looks like spam".into(),
        },
        Rule::RejectRcpt {
            needle: "plain@".into(),
            reply: "550 No such user here".into(),
        },
    ]);
    let extra = format!("{}{}", relay_to(sink.addr), lists());
    let d = Daemon::start(&extra);
    let members = [
        "plain@remote.test",
        "gone@remote.test",
        "picky@remote.test",
        "y@remote.test",
        "z@remote.test",
    ];
    let mut args = vec!["list", "add", "news"];
    args.extend(members);
    args.extend(["--consent", "test"]);
    ok(&d.cli(&args));
    ok(&d.cli(&[
        "list",
        "add",
        "offers",
        "y@remote.test",
        "--consent",
        "test",
    ]));

    post(&d, "news@example.org", "one").await;
    let got = sink
        .wait_for(WAIT, "copies to y and z", |r| {
            r.iter()
                .filter(|m| m.data.contains("Subject: one\r\n"))
                .count()
                == 2
        })
        .await;
    // Synchronous refusals go through the classifier: 5.1.1 suppresses, a spam block does not.
    until("gone@ and plain@ to be suppressed", WAIT, || {
        suppression(&d, "gone@remote.test").is_some()
            && suppression(&d, "plain@remote.test").is_some()
    })
    .await;
    assert_eq!(
        suppression(&d, "gone@remote.test").unwrap()["scope"],
        "global"
    );
    assert_eq!(
        d.member_status("news", "gone@remote.test").as_deref(),
        Some("bounced")
    );
    assert!(suppression(&d, "picky@remote.test").is_none());
    assert_eq!(
        d.member_status("news", "picky@remote.test").as_deref(),
        Some("confirmed")
    );

    // A real DSN (Postfix, 5.1.1), rewritten to y's address, sent to y's VERP address.
    let y_verp = copy_to(&got, "one", "y@remote.test").mail_from.clone();
    assert!(y_verp.starts_with("b+"), "{y_verp}");
    returned(
        &d,
        &y_verp,
        &rewritten(&hard, "kijitora@example.co.jp", "y@remote.test"),
    )
    .await;
    assert_eq!(suppression(&d, "y@remote.test").unwrap()["scope"], "global");
    assert_eq!(
        d.member_status("news", "y@remote.test").as_deref(),
        Some("bounced")
    );
    assert_eq!(
        d.member_status("offers", "y@remote.test").as_deref(),
        Some("bounced")
    );

    // Mailbox full: once is counted, not suppressed; past bounce.soft_limit (2) it is.
    let z_verp = copy_to(&got, "one", "z@remote.test").mail_from.clone();
    let z_full = rewritten(&full, "neko@nyaaan.example.org", "z@remote.test");
    returned(&d, &z_verp, &z_full).await;
    assert!(suppression(&d, "z@remote.test").is_none());
    assert_eq!(
        d.member_status("news", "z@remote.test").as_deref(),
        Some("confirmed")
    );
    returned(&d, &z_verp, &z_full).await;
    assert_eq!(suppression(&d, "z@remote.test").unwrap()["scope"], "global");

    // A forged token changes nothing.
    returned(
        &d,
        "b+aaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounces.example.org",
        &rewritten(&hard, "kijitora@example.co.jp", "picky@remote.test"),
    )
    .await;
    assert!(suppression(&d, "picky@remote.test").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_and_auto_replies() {
    let (Some(arf), Some(vacation)) = (corpus("arf-14.eml"), corpus("rfc3834-01.eml")) else {
        return;
    };
    let sink = Sink::start("127.0.0.1:0").await;
    let extra = format!("{}{}", relay_to(sink.addr), lists());
    let d = Daemon::start_top("trusted_networks = [\"127.0.0.0/8\"]", &extra);
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "k@remote.test",
        "v@remote.test",
        "--consent",
        "test",
    ]));
    ok(&d.cli(&[
        "list",
        "add",
        "offers",
        "k@remote.test",
        "--consent",
        "test",
    ]));

    // An ARF report to the feedback-loop address.
    returned(
        &d,
        "fbl@bounces.example.org",
        &rewritten(&arf, "kijitora@y.example.com", "k@remote.test"),
    )
    .await;
    assert_eq!(
        suppression(&d, "k@remote.test").unwrap()["scope"],
        "marketing"
    );
    assert_eq!(
        d.member_status("news", "k@remote.test").as_deref(),
        Some("complained")
    );
    assert_eq!(
        d.member_status("offers", "k@remote.test").as_deref(),
        Some("complained")
    );

    // A vacation auto-reply to a VERP address changes nothing.
    post(&d, "news@example.org", "two").await;
    let got = sink.wait_count(1, WAIT).await;
    let v = copy_to(&got, "two", "v@remote.test");
    let vacation = rewritten(&vacation, "kijitora@example.net", "v@remote.test");
    returned(&d, &v.mail_from, &vacation).await;
    assert!(suppression(&d, "v@remote.test").is_none());
    assert_eq!(
        d.member_status("news", "v@remote.test").as_deref(),
        Some("confirmed")
    );

    // Transactional mail to the complainer still goes; list mail does not.
    let mut c = Client::connect(d.submission).await;
    c.ehlo().await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["k@remote.test"],
            &message("alice@example.org", "k@remote.test", "receipt"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    sink.wait_for(WAIT, "the receipt", |r| {
        r.iter().any(|m| m.rcpts == ["k@remote.test"])
    })
    .await;
    assert!(
        sink.received()
            .iter()
            .all(|m| !(m.rcpts == ["k@remote.test"] && m.data.contains("Subject: two")))
    );
}

/// A bounce for transactional mail that arrives after the delivery left the queue still finds
/// the address through its VERP token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_bounce_for_transactional_mail() {
    let Some(hard) = corpus("lhost-postfix-04.eml") else {
        return;
    };
    let sink = Sink::start("127.0.0.1:0").await;
    let extra = format!("[delivery]\nrelay = \"{}\"\n{}", sink.addr, lists());
    let d = Daemon::start(&extra);
    let mut c = d.alice().await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["t@remote.test"],
            &message("alice@example.org", "t@remote.test", "receipt"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let got = sink.wait_count(1, WAIT).await;
    let verp = got[0].mail_from.clone();
    assert!(
        verp.starts_with("b+") && verp.ends_with("@bounces.example.org"),
        "{verp}"
    );
    d.wait_queue_empty(WAIT).await;
    returned(
        &d,
        &verp,
        &rewritten(&hard, "kijitora@example.co.jp", "t@remote.test"),
    )
    .await;
    assert_eq!(suppression(&d, "t@remote.test").unwrap()["scope"], "global");
}

/// `herald bounce parse --json` works offline: one object per recipient, and one with no
/// recipient for a file that is not a bounce.
#[test]
fn bounce_parse_command() {
    let Some(dir) = tools::corpus().map(|c| c.join("public")) else {
        return;
    };
    let out = herald_command()
        .args(["bounce", "parse", "--json"])
        .arg(dir.join("bsd/lhost-postfix-04.eml"))
        .arg(dir.join("not/is-not-bounce-01.eml"))
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["recipient"], "kijitora@example.co.jp");
    assert_eq!(lines[0]["status"], "5.1.1");
    assert_eq!(lines[0]["class"], "hard");
    assert!(lines[1]["recipient"].is_null());
    assert_eq!(lines[1]["class"], "unknown");
    let out = herald_command()
        .args(["bounce", "parse", "/nonexistent/file.eml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(path);
        }
    }
    hits
}

/// `herald forget`: after the next start no file of the store holds the address, and it is
/// still not mailed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_leaves_no_trace_and_suppression_holds() {
    let sink = Sink::start("127.0.0.1:0").await;
    let extra = format!("[delivery]\nrelay = \"{}\"\n{}", sink.addr, lists());
    let mut d = Daemon::start(&extra);
    let secret = "private.person@remote.test";
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        secret,
        "keep@remote.test",
        "--consent",
        "test",
    ]));
    ok(&d.cli(&["list", "add", "offers", secret, "--consent", "test"]));
    ok(&d.cli(&["suppression", "add", secret, "--reason", "asked"]));
    let db = d.dir.path().join("data/db");
    assert!(
        !files_containing(&db, secret.as_bytes()).is_empty(),
        "the check can see it"
    );

    let out = ok(&d.cli(&["forget", secret, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["memberships"], 2, "{v}");
    assert_eq!(v["suppression_kept"], true, "{v}");
    let status = d.terminate(WAIT);
    assert_eq!(status.code(), Some(0));
    d.restart();
    assert_eq!(
        files_containing(&db, secret.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert_eq!(d.member_status("news", secret), None);
    assert_eq!(
        d.member_status("news", "keep@remote.test").as_deref(),
        Some("confirmed")
    );
    let s = ok(&d.cli(&["suppression", "ls", "--json"]));
    assert!(!s.contains(secret) && s.contains("\"#"), "{s}");

    // Still suppressed: a message to it is accepted but never leaves.
    let mut c = d.alice().await;
    for to in [secret, "other@remote.test"] {
        let r = c
            .send_mail(
                "alice@example.org",
                &[to],
                &message("alice@example.org", to, "after"),
            )
            .await;
        assert!(r.has(250, "2.0.0"), "{r:?}");
    }
    sink.wait_count(1, WAIT).await;
    d.wait_queue_empty(WAIT).await;
    assert!(sink.received().iter().all(|m| m.rcpts != [secret]));
}

/// Without the corpus (`HERALD_CORPUS` naming a directory that is not there) a corpus test
/// skips with a note, and fails naming the corpus under `HERALD_REQUIRE_TOOLS=1`.
#[test]
fn a_missing_corpus_fails_when_tools_are_required() {
    let absent = tempfile::tempdir().unwrap();
    let absent = absent.path().join("no-corpus");
    tools::assert_fails_only_when_required(
        "bounce_parse_command",
        &[(tools::CORPUS, Some(absent.to_str().unwrap()))],
        "the bounce corpus",
        "no public/ in",
    );
}
