//! Delivery end to end: relay and MX routing to real sinks on loopback, a loopback DNS server,
//! DKIM verified with mail-auth, VERP, retries, DSNs, expiry and the null sender.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use base64::Engine;
use common::dns::Dns;
use common::sink::{Rule, Sink};
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Base config lines that belong in `[domains."example.org"]` come first in `extra`.
fn relay_config(sink: &Sink, extra_domain: &str, delivery: &str) -> String {
    format!(
        "{extra_domain}\n[delivery]\nrelay = \"{}\"\nretry = [\"1s\"]\n{delivery}\n",
        sink.addr
    )
}

async fn submit(d: &Daemon, from: &str, to: &[&str], subject: &str) -> String {
    let mut c = d.alice().await;
    let r = c.send_mail(from, to, &message(from, to[0], subject)).await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    r.text().rsplit(' ').next().unwrap().to_string()
}

async fn verify_dkim(dns: &Dns, message: &str) -> Vec<mail_auth::DkimResult> {
    dns.verify_dkim(message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_delivery_is_dkim_signed_with_verp() {
    let sink = Sink::start("127.0.0.1:0").await;
    let dns = Dns::start().await;
    let dir = tempfile::tempdir().unwrap();
    // One Ed25519 and one RSA-2048 domain.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    std::fs::write(dir.path().join("ed.pem"), ed.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("rsa.pem"), rsa.serialize_pem()).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    dns.txt(
        "ed._domainkey.example.org",
        &format!("v=DKIM1; k=ed25519; p={}", b64(ed.public_key_raw())),
    );
    dns.txt(
        "rs._domainkey.alice.example",
        &format!("v=DKIM1; k=rsa; p={}", b64(&rsa.public_key_der())),
    );
    let domain_keys = format!(
        "dkim_selector = \"ed\"\ndkim_key = \"{}\"\n[domains.\"alice.example\"]\ndkim_selector = \"rs\"\ndkim_key = \"{}\"\n",
        dir.path().join("ed.pem").display(),
        dir.path().join("rsa.pem").display()
    );
    let d = Daemon::start(&relay_config(&sink, &domain_keys, ""));

    submit(
        &d,
        "alice@example.org",
        &["bob@remote.test"],
        "ed25519 signed",
    )
    .await;
    submit(
        &d,
        "news@alice.example",
        &["carol@remote.test"],
        "rsa signed",
    )
    .await;
    let mut expected = 2;
    if have("python3") {
        // A real client too: Python's smtplib over STARTTLS with AUTH.
        d.smtplib_submit(
            "alice@example.org",
            &["dave@remote.test"],
            "From: Alice <alice@example.org>\r\nTo: dave@remote.test\r\nSubject: via smtplib\r\n\r\nhello\r\n",
        );
        expected += 1;
    }
    let got = sink.wait_count(expected, WAIT).await;
    for r in &got {
        assert!(r.data.starts_with("DKIM-Signature:"), "signed: {}", r.data);
        let results = verify_dkim(&dns, &r.data).await;
        assert_eq!(results, vec![mail_auth::DkimResult::Pass], "{}", r.data);
    }
    let ed_msg = got.iter().find(|r| r.rcpts == ["bob@remote.test"]).unwrap();
    assert!(
        ed_msg.mail_from.starts_with("b+") && ed_msg.mail_from.ends_with("@bounces.example.org"),
        "VERP: {}",
        ed_msg.mail_from
    );
    let rsa_msg = got
        .iter()
        .find(|r| r.rcpts == ["carol@remote.test"])
        .unwrap();
    assert_eq!(
        rsa_msg.mail_from, "news@alice.example",
        "no bounce domain, no VERP"
    );
    d.wait_queue_empty(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_preference_fallback_and_null_mx() {
    let dns = Dns::start().await;
    let mx1 = Sink::start("127.0.0.2:0").await;
    let port = mx1.addr.port();
    let mx2 = Sink::start(&format!("127.0.0.3:{port}")).await;
    let home = Sink::start(&format!("127.0.0.5:{port}")).await;
    dns.mx("pref.test", 20, "mx2.pref.test");
    dns.mx("pref.test", 10, "mx1.pref.test");
    dns.a("mx1.pref.test", "127.0.0.2".parse().unwrap());
    dns.a("mx2.pref.test", "127.0.0.3".parse().unwrap());
    // The preferred MX of fall.test refuses connections (nothing listens on 127.0.0.4).
    dns.mx("fall.test", 10, "dead.fall.test");
    dns.a("dead.fall.test", "127.0.0.4".parse().unwrap());
    dns.mx("fall.test", 20, "mx2.pref.test");
    dns.mx("null.test", 0, ".");
    dns.mx("example.org", 10, "mx.example.org");
    dns.a("mx.example.org", "127.0.0.5".parse().unwrap());
    let d = Daemon::start(&format!(
        "[delivery]\ndns_servers = [\"{}\"]\nsmtp_port = {port}\nretry = [\"1s\"]\n",
        dns.addr
    ));

    submit(&d, "alice@example.org", &["a@pref.test"], "preferred").await;
    mx1.wait_count(1, WAIT).await;
    submit(&d, "alice@example.org", &["b@fall.test"], "fallback").await;
    mx2.wait_for(WAIT, "fallback delivery", |r| {
        r.iter().any(|m| m.rcpts == ["b@fall.test"])
    })
    .await;
    assert!(
        mx2.received().iter().all(|m| m.rcpts != ["a@pref.test"]),
        "preference order kept"
    );

    submit(&d, "alice@example.org", &["c@null.test"], "null mx").await;
    let dsn = home.wait_count(1, WAIT).await;
    let dsn = &dsn[0];
    assert_eq!(dsn.mail_from, "", "DSNs have a null sender");
    assert_eq!(dsn.rcpts, ["alice@example.org"]);
    assert!(dsn.data.contains("Status: 5.1.10"), "{}", dsn.data);
    assert!(
        dsn.data.contains("Final-Recipient: rfc822; c@null.test"),
        "{}",
        dsn.data
    );
    d.wait_queue_empty(WAIT).await;
    assert!(
        d.stderr()
            .matches("delivery attempt")
            .filter(|_| true)
            .count()
            >= 1,
        "attempts are logged"
    );
    let null_attempts = d
        .stderr()
        .lines()
        .filter(|l| l.contains("delivery attempt") && l.contains("null.test"))
        .count();
    assert_eq!(null_attempts, 1, "a null MX fails at once, no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dsns_expiry_and_null_sender() {
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![
        Rule::DeferRcpt {
            needle: "once@".into(),
            reply: "451 4.3.0 try again".into(),
            times: 1,
        },
        Rule::RejectRcpt {
            needle: "nosuch@".into(),
            reply: "550 5.1.1 no such user".into(),
        },
        Rule::DeferRcpt {
            needle: "never@".into(),
            reply: "450 4.2.0 mailbox busy".into(),
            times: usize::MAX,
        },
    ]);
    let d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &relay_config(&sink, "", "expire = \"4s\""),
    );

    // 4xx then 2xx: delivered exactly once.
    submit(
        &d,
        "alice@example.org",
        &["once@remote.test"],
        "deferred once",
    )
    .await;
    sink.wait_for(WAIT, "retried delivery", |r| {
        r.iter().any(|m| m.rcpts == ["once@remote.test"])
    })
    .await;

    // 5xx: a DSN with the original headers goes to the sender.
    submit(
        &d,
        "alice@example.org",
        &["nosuch@remote.test"],
        "will bounce",
    )
    .await;
    let (dsn, _) = sink.wait_dsn(WAIT, "5.1.1", "alice@example.org").await;
    assert!(
        dsn.data.contains("Subject: will bounce"),
        "original headers included: {}",
        dsn.data
    );
    assert!(
        dsn.data
            .contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"),
        "{}",
        dsn.data
    );

    // Expiry: a DSN once delivery.expire has passed.
    submit(
        &d,
        "alice@example.org",
        &["never@remote.test"],
        "never deliverable",
    )
    .await;
    let (dsn, _) = sink.wait_dsn(WAIT, "4.4.7", "alice@example.org").await;
    assert!(
        dsn.data
            .contains("Final-Recipient: rfc822; never@remote.test"),
        "{}",
        dsn.data
    );

    // The null sender never gets a DSN.
    let mut c = Client::connect(d.submission).await;
    c.ehlo().await;
    let r = c
        .send_mail(
            "",
            &["nosuch@remote.test"],
            &message(
                "mailer-daemon@example.org",
                "nosuch@remote.test",
                "null sender",
            ),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    d.wait_queue_empty(WAIT).await;
    let all = sink.received();
    assert_eq!(
        all.iter()
            .filter(|m| m.rcpts == ["once@remote.test"])
            .count(),
        1,
        "exactly once"
    );
    let dsns = all.iter().filter(|m| m.mail_from.is_empty()).count();
    assert_eq!(
        dsns, 2,
        "DSNs for 5.1.1 and expiry only, none for the null sender"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_is_checked_before_every_delivery_and_retry_now_works() {
    let sink = Sink::start("127.0.0.1:0").await;
    sink.set_rules(vec![
        Rule::DeferRcpt {
            needle: "waiting@".into(),
            reply: "451 4.3.0 later".into(),
            times: 1,
        },
        Rule::DeferRcpt {
            needle: "slow@".into(),
            reply: "451 4.3.0 later".into(),
            times: 1,
        },
    ]);
    let d = Daemon::start(&format!(
        "[delivery]\nrelay = \"{}\"\nretry = [\"1h\"]\n",
        sink.addr
    ));

    // Suppressed before submission: never delivered, no DSN.
    let out = d.cli(&[
        "suppression",
        "add",
        "Gone@Remote.test",
        "--reason",
        "hard bounce",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["suppression", "ls", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["address"], "gone@remote.test");
    assert_eq!(list[0]["scope"], "global");
    assert_eq!(list[0]["source"], "admin");
    submit(
        &d,
        "alice@example.org",
        &["gone@remote.test"],
        "to a suppressed address",
    )
    .await;

    // Suppressed while waiting in the queue: the retry does not deliver it.
    submit(&d, "alice@example.org", &["waiting@remote.test"], "waits").await;
    submit(
        &d,
        "alice@example.org",
        &["slow@remote.test"],
        "retried by hand",
    )
    .await;
    d.wait_queue(WAIT, |q| {
        q.len() == 2 && q.iter().all(|m| m["recipients"][0]["state"] == "deferred")
    })
    .await;
    assert!(
        d.cli(&["suppression", "add", "waiting@remote.test"])
            .status
            .success()
    );
    let out = d.cli(&["queue", "retry", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sink.wait_for(WAIT, "the retried message", |r| {
        r.iter().any(|m| m.rcpts == ["slow@remote.test"])
    })
    .await;
    d.wait_queue_empty(WAIT).await;
    let got = sink.received();
    assert!(
        got.iter()
            .all(|m| m.rcpts != ["gone@remote.test"] && m.rcpts != ["waiting@remote.test"]),
        "{got:?}"
    );
    assert!(
        got.iter().all(|m| !m.mail_from.is_empty()),
        "no DSN for suppressed recipients"
    );

    assert!(
        d.cli(&["suppression", "rm", "gone@remote.test"])
            .status
            .success()
    );
    let out = d.cli(&["suppression", "rm", "gone@remote.test"]);
    assert_eq!(out.status.code(), Some(1), "removing twice fails");
    let out = d.cli(&["queue", "retry", "0000000000000001"]);
    assert_eq!(out.status.code(), Some(1), "unknown id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_starttls_opportunistic_and_required() {
    // Herald B's inbound listener offers STARTTLS and takes mail for postmaster@.
    let b = Daemon::start("");
    let a = Daemon::start(&format!(
        "[delivery]\nrelay = \"{}\"\nretry = [\"1h\"]\n",
        b.inbound
    ));
    submit(
        &a,
        "alice@example.org",
        &["postmaster@mx.test.example"],
        "over tls",
    )
    .await;
    a.wait_queue_empty(WAIT).await;
    let got = b.wait_queue(WAIT, |q| !q.is_empty()).await;
    let id = got[0]["id"].as_str().unwrap().to_string();
    let shown = b.cli(&["queue", "show", &id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("with ESMTPS id"),
        "B received it over TLS: {text}"
    );

    // A sink without STARTTLS and tls = "required": deferred, never sent in clear.
    let sink = Sink::start("127.0.0.1:0").await;
    let c = Daemon::start(&format!(
        "[delivery]\nrelay = \"{}\"\nretry = [\"1h\"]\ntls = \"required\"\n",
        sink.addr
    ));
    submit(
        &c,
        "alice@example.org",
        &["x@remote.test"],
        "must be encrypted",
    )
    .await;
    let q = c
        .wait_queue(WAIT, |q| {
            q.first()
                .is_some_and(|m| m["recipients"][0]["state"] == "deferred")
        })
        .await;
    let reply = q[0]["recipients"][0]["last_reply"].as_str().unwrap();
    assert!(
        reply.contains("4.7.4") && reply.contains("STARTTLS"),
        "{reply}"
    );
    assert!(sink.received().is_empty());
}

/// One message to three recipients, with lines that start with a dot: the refused recipient
/// bounces, the deferred one is retried, the accepted one gets the content intact — both
/// with a pipelining server (one envelope group) and with one that answers command by command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_recipients_and_dot_lines_with_and_without_pipelining() {
    for pipelining in [true, false] {
        let sink = Sink::start("127.0.0.1:0").await;
        let mut rules = vec![
            Rule::RejectRcpt {
                needle: "nosuch@".into(),
                reply: "550 5.1.1 no such user".into(),
            },
            Rule::DeferRcpt {
                needle: "later@".into(),
                reply: "451 4.3.0 try again".into(),
                times: 1,
            },
        ];
        if !pipelining {
            rules.push(Rule::NoPipelining);
        }
        sink.set_rules(rules);
        let d = Daemon::start_top(
            "trusted_networks = [\"127.0.0.0/8\"]",
            &relay_config(&sink, "", ""),
        );
        let to = ["ok@remote.test", "nosuch@remote.test", "later@remote.test"];
        // Sent already dot-stuffed, as a client must; stored and delivered unstuffed.
        let body = "From: <alice@example.org>\r\nSubject: dots\r\n\r\n..leading dot\r\n\
                    ...\r\nmiddle . dot\r\n..\r\nlast line\r\n";
        let mut c = d.alice().await;
        let r = c.send_mail("alice@example.org", &to, body).await;
        assert!(r.has(250, "2.0.0"), "{r:?}");

        let got = sink
            .wait_for(WAIT, "both deliveries and the DSN", |r| {
                let to = |a: &str| r.iter().any(|m| m.rcpts == [a.to_string()]);
                to("ok@remote.test") && to("later@remote.test") && to("alice@example.org")
            })
            .await;
        let ok = got.iter().find(|m| m.rcpts == ["ok@remote.test"]).unwrap();
        assert!(
            ok.data
                .ends_with("\r\n.leading dot\r\n..\r\nmiddle . dot\r\n.\r\nlast line\r\n"),
            "pipelining={pipelining}: {:?}",
            ok.data
        );
        let dsn = got
            .iter()
            .find(|m| m.rcpts == ["alice@example.org"])
            .unwrap();
        assert!(dsn.data.contains("Status: 5.1.1"), "{}", dsn.data);
        assert!(!dsn.data.contains("later@remote.test"), "{}", dsn.data);
        d.wait_queue_empty(WAIT).await;
        let all = sink.received();
        assert_eq!(all.len(), 3, "pipelining={pipelining}: {all:?}");
    }
}
