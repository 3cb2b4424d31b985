//! The content policy at submission end to end: each rule refuses a matching message with
//! `550 5.7.1` and its reason while a similar clean message is delivered to a real sink;
//! `check-config` names a bad pattern; SIGHUP applies new rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use base64::Engine;
use common::sink::Sink;
use common::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const FROM: &str = "alice@example.org";
const TO: &str = "bob@remote.test";

const POLICY: &str = r#"
[policy]
deny_attachment_types = ["EXE", "application/x-msdownload"]
[[policy.deny]]
pattern = "(?i)cheap pills"
reason = "No pharmacy spam"
[[policy.deny]]
pattern = '(?i)\bcasino\b'
reason = "No gambling, please"
"#;

fn mail(subject: &str, headers: &str, body: &str) -> String {
    format!("From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: {subject}\r\n{headers}\r\n{body}\r\n")
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A text part and an attachment with the given Content-Type and file name.
fn with_attachment(subject: &str, ctype: &str, filename: &str) -> String {
    mail(
        subject,
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n",
        &format!(
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\n\
             Content-Type: {ctype}\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--",
            base64("MZ\u{0}binary")
        ),
    )
}

/// (rule, refused message, its reason, clean twin's subject, clean twin)
fn cases() -> Vec<(&'static str, String, &'static str, String)> {
    let b64 = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n";
    vec![
        (
            "pattern in the subject",
            mail("Cheap PILLS today", "", "Hello."),
            "No pharmacy spam",
            mail("clean subject", "", "Hello."),
        ),
        (
            "pattern in a base64 body",
            mail("news", b64, &base64("Visit our casino tonight!")),
            "No gambling, please",
            mail("clean base64", b64, &base64("Visit our museum tonight!")),
        ),
        (
            "attachment by extension",
            with_attachment("installer", "application/octet-stream", "setup.Exe"),
            "Attachments of type .exe are not accepted",
            with_attachment("clean pdf", "application/octet-stream", "report.pdf"),
        ),
        (
            "attachment by MIME type",
            with_attachment("tool", "application/x-msdownload", "tool"),
            "Attachments of type application/x-msdownload are not accepted",
            with_attachment("clean zip", "application/zip", "tool"),
        ),
        (
            "bulk without List-Unsubscribe",
            mail("offer", "Precedence: bulk\r\n", "Buy now."),
            "Bulk or marketing mail must have a List-Unsubscribe header",
            mail(
                "clean bulk",
                "Precedence: bulk\r\nList-Unsubscribe: <https://shop.example/u/1>\r\n",
                "Buy now.",
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_refuses_and_the_clean_twin_is_delivered() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!("{}{POLICY}{}", relay_to(sink.addr), news_list()));
    let mut c = d.alice().await;
    let mut delivered = Vec::new();
    for (rule, bad, reason, clean) in cases() {
        let r = c.send_mail(FROM, &[TO], &bad).await;
        assert!(r.has(550, "5.7.1"), "{rule}: {r:?}");
        assert_eq!(r.text(), format!("5.7.1 {reason}"), "{rule}");
        let r = c.send_mail(FROM, &[TO], &clean).await;
        assert!(r.has(250, "2.0.0"), "{rule}, clean twin: {r:?}");
        let subject = clean.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        delivered.push(subject.to_string());
    }
    // A list post gets Herald's own List-Unsubscribe, so it needs none of its own.
    let post = "From: <alice@example.org>\r\nTo: <news@example.org>\r\nSubject: Sale\r\nHerald-Category: marketing\r\n\r\nBuy now.\r\n";
    let r = c.send_mail(FROM, &["news@example.org"], post).await;
    assert!(r.has(250, "2.0.0"), "list post: {r:?}");

    let got = sink
        .wait_for(WAIT, "every clean twin", |r| {
            delivered
                .iter()
                .all(|s| r.iter().any(|m| m.data.contains(s.as_str())))
        })
        .await;
    for m in &got {
        for refused in ["PILLS", "installer", "Subject: tool", "Subject: offer"] {
            assert!(
                !m.data.contains(refused),
                "refused mail delivered: {}",
                m.data
            );
        }
    }
    // One log line per refusal (written before the reply), with the rule kind and no
    // recipient address.
    let log = d.stderr();
    let refusals: Vec<_> = log
        .lines()
        .filter(|l| l.contains("refused by content policy"))
        .collect();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    for kind in [
        "pattern",
        "attachment_extension",
        "attachment_type",
        "no_unsubscribe",
    ] {
        assert!(
            refusals.iter().any(|l| l.contains(kind)),
            "{kind}: {refusals:?}"
        );
    }
    assert!(
        refusals.iter().all(|l| !l.contains("remote.test")),
        "{refusals:?}"
    );
    // Nothing refused was queued: the queue holds at most the clean mail in flight.
    assert!(d.queue().iter().all(|m| m["sender"] == FROM));
}

/// Submits with Python's smtplib; returns the SMTP code and message of the end of DATA.
fn smtplib(d: &Daemon, message: &str) -> (i64, String) {
    let ca = d.dir.path().join("ca.pem");
    std::fs::write(&ca, &d.cert_pem).unwrap();
    let script = "import smtplib, ssl, sys, json\n\
        ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
        s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
        s.starttls(context=ctx)\n\
        s.login('alice', 'alice-secret')\n\
        try:\n    s.sendmail(sys.argv[3], [sys.argv[4]], sys.argv[5]); r = (250, 'ok')\n\
        except smtplib.SMTPDataError as e:\n    r = (e.smtp_code, e.smtp_error.decode())\n\
        s.quit()\n\
        print(json.dumps(r))\n";
    let out = Command::new("python3")
        .args(["-c", script, &d.submission.port().to_string()])
        .arg(&ca)
        .args([FROM, TO, message])
        .output()
        .unwrap();
    assert!(out.status.success(), "smtplib: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v[0].as_i64().unwrap(), v[1].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_submission_is_refused_with_the_reason() {
    if !have("python3") {
        return;
    }
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!("{}{POLICY}", relay_to(sink.addr)));
    let (code, text) = smtplib(&d, &mail("Big casino night", "", "Come along."));
    assert_eq!(code, 550, "{text}");
    assert_eq!(text, "5.7.1 No gambling, please");
    let (code, text) = smtplib(&d, &mail("Big chess night", "", "Come along."));
    assert_eq!(code, 250, "{text}");
    sink.wait_for(WAIT, "the chess mail", |r| {
        r.iter().any(|m| m.data.contains("Big chess night"))
    })
    .await;
}

fn write_config(d: &Daemon, extra: &str) {
    std::fs::write(&d.config_path, base_config(d.dir.path(), extra)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_rules_and_refuses_a_bad_pattern() {
    let d = Daemon::start(&hold());
    let casino = mail("casino", "", "x");
    let mut c = d.alice().await;
    let r = c.send_mail(FROM, &[TO], &casino).await;
    assert!(r.has(250, "2.0.0"), "no rules yet: {r:?}");

    write_config(&d, &format!("{}{POLICY}", hold()));
    d.signal(libc::SIGHUP);
    d.stdout.wait_in("herald: reloaded", 0, 0, WAIT);
    let r = c.send_mail(FROM, &[TO], &casino).await;
    assert!(
        r.has(550, "5.7.1"),
        "rules of the reload, same session: {r:?}"
    );

    // A bad pattern is refused at reload; the rules in force stay.
    let bad = "[[policy.deny]]\npattern = \"(unclosed\"\nreason = \"x\"\n";
    write_config(&d, &format!("{}{bad}", hold()));
    d.signal(libc::SIGHUP);
    let line = d.stdout.wait_in("herald: reload refused", 0, 0, WAIT);
    assert!(line.contains("policy.deny[0].pattern"), "{line}");
    let r = c.send_mail(FROM, &[TO], &casino).await;
    assert!(r.has(550, "5.7.1"), "old rules kept: {r:?}");
}

#[test]
fn check_config_names_a_bad_pattern_and_an_empty_reason() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, base_config(dir.path(), extra)).unwrap();
        let out = herald_command()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (path, out)
    };
    let rules = "[[policy.deny]]\npattern = \"ok\"\nreason = \"fine\"\n[[policy.deny]]\npattern = \"a(b\"\nreason = \"broken\"\n";
    let (path, out) = check("regex.toml", rules);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains(&*path.to_string_lossy()), "file: {err}");
    assert!(err.contains("policy.deny[1].pattern"), "key: {err}");
    assert!(err.contains("unclosed group"), "regex error: {err}");

    let (_, out) = check(
        "reason.toml",
        "[[policy.deny]]\npattern = \"x\"\nreason = \"\"\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains("policy.deny[0].reason"), "{err}");

    let (_, out) = check(
        "types.toml",
        "[policy]\ndeny_attachment_types = [\"a b\"]\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.deny_attachment_types[0]"), "{err}");

    let (_, out) = check("good.toml", POLICY);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
