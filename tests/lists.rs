//! Lists end to end: double opt-in with curl, a post expanded to exactly the members who may
//! receive it (smtplib), per-copy headers covered by DKIM, one-click and mailto unsubscribe
//! (durable across kill -9), forged tokens, copies stopped after an unsubscribe, and service
//! posts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use base64::Engine;
use common::dns::Dns;
use common::http::{Http, curl};
use common::sink::{Received, Sink};
use common::*;
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn config(sink: &Sink, domain_lines: &str, delivery: &str) -> String {
    format!(
        "{domain_lines}\n{}{delivery}\n{UNSUBSCRIBE_BASE}{}",
        relay_to(sink.addr),
        news_list()
    )
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_of(d: &Daemon, address: &str) -> Option<String> {
    d.member_status("news", address)
}

fn header(r: &Received, name: &str) -> Option<String> {
    r.header(name)
}

/// The https unsubscribe path (`/unsubscribe/TOKEN`) and the token of a copy.
fn unsubscribe_token(r: &Received) -> String {
    let h = header(r, "List-Unsubscribe").expect("List-Unsubscribe");
    let start = h.find("/unsubscribe/").unwrap() + "/unsubscribe/".len();
    h[start..].split('>').next().unwrap().to_string()
}

async fn post(d: &Daemon, subject: &str, extra_headers: &str) -> common::client::Reply {
    let mut c = d.alice().await;
    let body = format!(
        "From: <alice@example.org>\r\nTo: <news@example.org>\r\n{extra_headers}Subject: {subject}\r\n\r\nList post.\r\n"
    );
    c.send_mail("alice@example.org", &["news@example.org"], &body)
        .await
}

fn copies<'a>(got: &'a [Received], subject: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|r| r.data.contains(&format!("Subject: {subject}\r\n")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_one_click_and_mailto_unsubscribe() {
    assert!(have("curl"), "curl is needed (.ci/run installs it)");
    let sink = Sink::start("127.0.0.1:0").await;
    let mut d = Daemon::start_top(
        "trusted_networks = [\"127.0.0.0/8\"]",
        &config(&sink, "", ""),
    );
    let base = format!("http://{}", d.http);

    // Sign-up: a confirmation mail with a link; GET shows a button and changes nothing.
    let (code, page) = curl(&[
        "-d",
        "email=Reader@Remote.test",
        &format!("{base}/subscribe/news"),
    ]);
    assert_eq!(code, 200, "{page}");
    let got = sink
        .wait_for(WAIT, "confirmation mail", |r| !r.is_empty())
        .await;
    assert_eq!(got[0].rcpts, ["reader@remote.test"]);
    assert_eq!(
        got[0].mail_from, "",
        "confirmation mail has the null sender"
    );
    let link = got[0]
        .data
        .split_whitespace()
        .find(|w| w.contains("/confirm/"))
        .unwrap()
        .to_string();
    let confirm_path = &link[link.find("/confirm/").unwrap()..];
    let (code, page) = curl(&[&format!("{base}{confirm_path}")]);
    assert_eq!(code, 200);
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert_eq!(
        status_of(&d, "reader@remote.test").as_deref(),
        Some("pending")
    );
    let (code, _) = curl(&["-X", "POST", &format!("{base}{confirm_path}")]);
    assert_eq!(code, 200);
    assert_eq!(
        status_of(&d, "reader@remote.test").as_deref(),
        Some("confirmed")
    );
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "mailer@remote.test",
        "--consent",
        "signed form 2026-11",
    ]));

    // A post reaches both; each copy carries its own token.
    assert!(post(&d, "first post", "").await.has(250, "2.0.0"));
    let got = sink
        .wait_for(WAIT, "two copies", |r| copies(r, "first post").len() == 2)
        .await;
    let first = copies(&got, "first post");
    let token_of =
        |addr: &str| unsubscribe_token(first.iter().find(|r| r.rcpts == [addr]).unwrap());
    let (reader_token, mailer_token) = (
        token_of("reader@remote.test"),
        token_of("mailer@remote.test"),
    );
    assert_ne!(reader_token, mailer_token);

    // A GET never unsubscribes; the one-click POST does, durably (kill -9 right after the 200).
    let unsub = format!("{base}/unsubscribe/{reader_token}");
    let (code, page) = curl(&[&unsub]);
    assert_eq!(code, 200);
    assert!(page.contains("Unsubscribe"), "{page}");
    assert_eq!(
        status_of(&d, "reader@remote.test").as_deref(),
        Some("confirmed")
    );
    let (code, _) = curl(&["-d", "List-Unsubscribe=One-Click", &unsub]);
    assert_eq!(code, 200);
    d.kill9();
    d.restart();
    assert_eq!(
        status_of(&d, "reader@remote.test").as_deref(),
        Some("unsubscribed")
    );
    // Idempotent.
    let base = format!("http://{}", d.http);
    let (code, _) = curl(&[
        "-d",
        "List-Unsubscribe=One-Click",
        &format!("{base}/unsubscribe/{reader_token}"),
    ]);
    assert_eq!(code, 200);

    // The mailto route through the inbound port.
    let mut c = Client::connect(d.inbound).await;
    c.ehlo().await;
    let to = format!("u+{mailer_token}@bounces.example.org");
    let r = c
        .send_mail(
            "mailer@remote.test",
            &[&to],
            &message("mailer@remote.test", &to, "unsubscribe"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    assert_eq!(
        status_of(&d, "mailer@remote.test").as_deref(),
        Some("unsubscribed")
    );

    // Nothing more reaches either address: no confirmation of the unsubscribe, no list mail.
    let before = sink.received().len();
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "third@remote.test",
        "--consent",
        "test",
    ]));
    assert!(post(&d, "second post", "").await.has(250, "2.0.0"));
    sink.wait_for(WAIT, "third's copy", |r| {
        copies(r, "second post").len() == 1
    })
    .await;
    d.wait_queue_empty(WAIT).await;
    let after: Vec<Received> = sink.received().into_iter().skip(before).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].rcpts, ["third@remote.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reaches_exactly_the_receiving_members_with_signed_list_headers() {
    if !have("python3") {
        return;
    }
    let sink = Sink::start("127.0.0.1:0").await;
    let dns = Dns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(dir.path().join("ed.pem"), ed.serialize_pem()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(ed.public_key_raw());
    dns.txt(
        "ed._domainkey.example.org",
        &format!("v=DKIM1; k=ed25519; p={b64}"),
    );
    let keys = format!(
        "dkim_selector = \"ed\"\ndkim_key = \"{}\"\n",
        dir.path().join("ed.pem").display()
    );
    let d = Daemon::start(&config(&sink, &keys, ""));
    let members = [
        "c1@remote.test",
        "c2@remote.test",
        "c3@other.test",
        "gone@remote.test",
        "supp@remote.test",
    ];
    let mut args = vec!["list", "add", "news"];
    args.extend(members);
    args.extend(["--consent", "paper form"]);
    ok(&d.cli(&args));
    ok(&d.cli(&["list", "invite", "news", "pending@remote.test"]));
    ok(&d.cli(&["list", "remove", "news", "gone@remote.test"]));
    ok(&d.cli(&["suppression", "add", "supp@remote.test"]));
    sink.wait_for(WAIT, "invitation", |r| {
        r.iter().any(|m| m.rcpts == ["pending@remote.test"])
    })
    .await;

    // The post, by a real client: Python's smtplib over STARTTLS with AUTH.
    d.smtplib_submit(
        "alice@example.org",
        &["news@example.org"],
        "From: Alice <alice@example.org>\r\nTo: news@example.org\r\nList-Id: forged <x.y>\r\nSubject: the post\r\n\r\nhello list\r\n",
    );

    sink.wait_for(WAIT, "three copies", |r| copies(r, "the post").len() >= 3)
        .await;
    d.wait_queue_empty(WAIT).await;
    let got = sink.received();
    let posts = copies(&got, "the post");
    let to: HashSet<&str> = posts.iter().map(|r| r.rcpts[0].as_str()).collect();
    assert_eq!(
        to,
        HashSet::from(["c1@remote.test", "c2@remote.test", "c3@other.test"])
    );
    assert_eq!(posts.len(), 3, "exactly one copy each");
    let mut tokens = HashSet::new();
    for r in &posts {
        assert_eq!(
            header(r, "List-Id").as_deref(),
            Some("\"Example News\" <news.example.org>")
        );
        let list_ids = r
            .data
            .split("\r\n")
            .filter(|l| l.starts_with("List-Id:"))
            .count();
        assert_eq!(list_ids, 1, "the poster's List-Id is dropped: {}", r.data);
        let unsub = header(r, "List-Unsubscribe").unwrap();
        assert!(
            unsub.contains("<https://lists.example.org/unsubscribe/"),
            "{unsub}"
        );
        assert!(
            unsub.contains("<mailto:u+") && unsub.contains("@bounces.example.org>"),
            "{unsub}"
        );
        assert_eq!(
            header(r, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let sig = header(r, "DKIM-Signature").unwrap().to_ascii_lowercase();
        let h = sig
            .split(';')
            .find(|t| t.trim().starts_with("h="))
            .unwrap()
            .to_string();
        assert!(
            h.contains("list-unsubscribe") && h.contains("list-unsubscribe-post"),
            "{h}"
        );
        assert!(r.mail_from.starts_with("b+") && r.mail_from.ends_with("@bounces.example.org"));
        assert!(tokens.insert(unsubscribe_token(r)), "tokens are per member");
        let results = dns.verify_dkim(&r.data).await;
        assert_eq!(results, vec![mail_auth::DkimResult::Pass], "{}", r.data);
    }
}

/// Flips bits, truncates and invents tokens: all `404`, nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_forged_tokens_get_404_and_change_nothing() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, "", ""));
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "keep@remote.test",
        "--consent",
        "test",
    ]));
    assert!(post(&d, "token source", "").await.has(250, "2.0.0"));
    let got = sink.wait_count(1, WAIT).await;
    let real = unsubscribe_token(&got[0]);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut forged = Vec::new();
    // Every single-character change of the real token (bit flips in base32 digits).
    for i in 0..real.len() {
        for &c in alphabet {
            let mut t = real.clone().into_bytes();
            if t[i] != c {
                t[i] = c;
                forged.push(String::from_utf8(t).unwrap());
            }
        }
    }
    forged.push(real[..real.len() - 1].to_string());
    forged.push(format!("{real}a"));
    forged.push(String::new() + "..");
    // Random tokens of plausible and implausible lengths.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while forged.len() < 10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 60) as usize;
        forged.push(
            (0..len)
                .map(|i| alphabet[((x >> (i % 58)) as usize + i * 7) % 32] as char)
                .collect(),
        );
    }
    let mut http = Http::connect(d.http).await;
    let form = Some("application/x-www-form-urlencoded");
    for (n, t) in forged.iter().enumerate() {
        let (method, path) = match n % 4 {
            0 => ("POST", format!("/unsubscribe/{t}")),
            1 => ("GET", format!("/unsubscribe/{t}")),
            2 => ("POST", format!("/confirm/{t}")),
            _ => ("GET", format!("/confirm/{t}")),
        };
        let (status, _) = http
            .request(method, &path, form, b"List-Unsubscribe=One-Click")
            .await;
        assert_eq!(status, 404, "{method} {path}");
    }
    assert_eq!(
        status_of(&d, "keep@remote.test").as_deref(),
        Some("confirmed")
    );
    // The real token still works (and the confirm route does not take an unsubscribe token).
    let (status, _) = http
        .request("POST", &format!("/confirm/{real}"), form, b"")
        .await;
    assert_eq!(status, 404);
    let (status, _) = http
        .request(
            "POST",
            &format!("/unsubscribe/{real}"),
            form,
            b"List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        status_of(&d, "keep@remote.test").as_deref(),
        Some("unsubscribed")
    );
}

/// A copy held back by a slow rate limit is not delivered once its member unsubscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_copy_is_dropped_after_unsubscribe() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(
        &sink,
        "",
        "burst = 1\n[delivery.rate]\n\"slow.test\" = \"6/min\"",
    ));
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "a@slow.test",
        "b@slow.test",
        "--consent",
        "test",
    ]));
    assert!(post(&d, "held", "").await.has(250, "2.0.0"));
    let got = sink.wait_count(1, WAIT).await;
    let first = got[0].rcpts[0].clone();
    let other = if first == "a@slow.test" {
        "b@slow.test"
    } else {
        "a@slow.test"
    };
    // The other copy waits for the limiter (one message per 10 s) while its member leaves.
    ok(&d.cli(&["list", "remove", "news", other]));
    d.wait_queue_empty(WAIT).await;
    let all = sink.received();
    assert_eq!(all.len(), 1, "only {first} got a copy: {all:?}");
}

/// Service posts reach unsubscribed members but never suppressed ones, carry no one-click
/// header and leave without Herald-Category; a user without may_send_service is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_posts() {
    let sink = Sink::start("127.0.0.1:0").await;
    let ops = format!(
        "[[users]]\nname = \"ops\"\npassword_hash = \"{}\"\nsenders = [\"ops@example.org\"]\nmay_send_service = true\n",
        alice_hash()
    );
    let list = announce_list("news", "Example News", &[ALICE, "ops"]);
    let extra = format!("{}{ops}{UNSUBSCRIBE_BASE}{list}", relay_to(sink.addr));
    let d = Daemon::start(&extra);
    ok(&d.cli(&[
        "list",
        "add",
        "news",
        "in@remote.test",
        "out@remote.test",
        "mkt@remote.test",
        "supp@remote.test",
        "--consent",
        "test",
    ]));
    ok(&d.cli(&["list", "remove", "news", "out@remote.test"]));
    ok(&d.cli(&["suppression", "add", "supp@remote.test"]));
    ok(&d.cli(&[
        "suppression",
        "add",
        "mkt@remote.test",
        "--scope",
        "marketing",
    ]));

    // Alice may post, but not as a service announcement.
    let r = post(&d, "not allowed", "Herald-Category: service\r\n").await;
    assert!(r.has(550, "5.7.1"), "{r:?}");
    assert!(r.text().contains("may_send_service"), "{r:?}");

    let mut c = Client::connect(d.submission).await;
    c.ehlo().await;
    c.starttls(&d.cert_pem).await;
    c.ehlo().await;
    assert_eq!(c.auth_plain("ops", "alice-secret").await.code, 235);
    let body = "From: <ops@example.org>\r\nHerald-Category: service\r\nSubject: terms changed\r\n\r\nService notice.\r\n";
    let r = c
        .send_mail("ops@example.org", &["news@example.org"], body)
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    sink.wait_for(WAIT, "service copies", |r| {
        copies(r, "terms changed").len() >= 3
    })
    .await;
    d.wait_queue_empty(WAIT).await;
    let got = sink.received();
    let posts = copies(&got, "terms changed");
    let to: HashSet<&str> = posts.iter().map(|r| r.rcpts[0].as_str()).collect();
    assert_eq!(
        to,
        HashSet::from(["in@remote.test", "out@remote.test", "mkt@remote.test"])
    );
    for r in posts {
        assert!(header(r, "List-Id").is_some());
        assert!(header(r, "List-Unsubscribe").is_none(), "{}", r.data);
        assert!(header(r, "List-Unsubscribe-Post").is_none(), "{}", r.data);
        assert!(!r.data.contains("Herald-Category"), "{}", r.data);
    }
    assert!(copies(&got, "not allowed").is_empty());
}

/// Import and export round-trip; members by status; a long import shows progress on a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_round_trip_and_members_by_status() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, "", "[delivery.rate]\ndefault = \"1/min\""));
    let mut csv = String::from("email,name\n");
    for i in 0..2500 {
        csv.push_str(&format!("m{i}@remote.test,\"Member, {i}\"\n"));
    }
    csv.push_str("M7@Remote.TEST,duplicate of m7\n");
    let file = d.dir.path().join("members.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = ok(&d.cli(&[
        "list",
        "import",
        "news",
        file.to_str().unwrap(),
        "--consent",
        "fair 2026",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["members"].as_u64(), v["added"].as_u64()),
        (Some(2501), Some(2500)),
        "{v}"
    );
    ok(&d.cli(&["list", "remove", "news", "m3@remote.test"]));

    let exported = ok(&d.cli(&["list", "export", "news"]));
    let mut lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.remove(0), "email,name,status,consent,since");
    assert_eq!(lines.len(), 2500);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m5@remote.test,\"Member, 5\",confirmed,import: fair 2026,")),
        "{exported}"
    );
    // Re-importing the export adds nobody new: the same members come back.
    let again = d.dir.path().join("export.csv");
    std::fs::write(&again, &exported).unwrap();
    let out = ok(&d.cli(&[
        "list",
        "import",
        "news",
        again.to_str().unwrap(),
        "--consent",
        "again",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["added"].as_u64(), Some(0), "{v}");

    let by = |status: &str| {
        let out = ok(&d.cli(&["list", "members", "news", "--status", status, "--json"]));
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    // m3 came back with the re-import (an explicit import with consent re-subscribes).
    assert_eq!(
        (by("confirmed"), by("unsubscribed"), by("pending")),
        (2500, 0, 0)
    );
    ok(&d.cli(&["list", "remove", "news", "m3@remote.test"]));
    assert_eq!((by("confirmed"), by("unsubscribed")), (2499, 1));
    let ls = ok(&d.cli(&["list", "ls"]));
    assert!(
        ls.contains("confirmed 2499") && ls.contains("unsubscribed 1"),
        "{ls}"
    );

    // On a terminal, the import reports its progress.
    if have("script") {
        let cmd = format!(
            "{} list import news {} --consent tty --config {}",
            herald_bin().display(),
            file.display(),
            d.config_path.display()
        );
        let out = command("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("importing: 2501/2501 (100%)"), "{text}");
    }
}

/// Sign-ups are limited per mailbox and per client address; a bad address or list is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_rate_limited_and_checked() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, "", ""));
    let mut http = Http::connect(d.http).await;
    let form = Some("application/x-www-form-urlencoded");
    let mut signup = async |list: &str, email: &str| {
        http.request(
            "POST",
            &format!("/subscribe/{list}"),
            form,
            format!("email={email}").as_bytes(),
        )
        .await
        .0
    };
    assert_eq!(signup("news", "not-an-address").await, 400);
    assert_eq!(signup("nosuch", "a@remote.test").await, 404);
    // Per mailbox: two at once, then wait.
    assert_eq!(signup("news", "same@remote.test").await, 200);
    assert_eq!(signup("news", "same@remote.test").await, 200);
    assert_eq!(signup("news", "same@remote.test").await, 429);
    // Per client address: a burst of five attempts, then wait (three were made above).
    assert_eq!(signup("news", "x1@remote.test").await, 200);
    assert_eq!(signup("news", "x2@remote.test").await, 200);
    assert_eq!(signup("news", "x3@remote.test").await, 429);
    let (code, _) = curl(&[&format!("http://{}/healthz", d.http)]);
    assert_eq!(code, 200);
    assert_eq!(d.member_status("news", "x3@remote.test"), None);
    assert_eq!(
        d.member_status("news", "x2@remote.test").as_deref(),
        Some("pending")
    );
}

/// On a discussion list, confirmed members post from outside through the inbound listener;
/// others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discussion_list_members_post_through_inbound() {
    let sink = Sink::start("127.0.0.1:0").await;
    let talk = "[[lists]]\nid = \"talk\"\naddress = \"talk@example.org\"\nname = \"Talk\"\nkind = \"discussion\"\n";
    let d = Daemon::start(&format!("{}{talk}", config(&sink, "", "")));
    ok(&d.cli(&[
        "list",
        "add",
        "talk",
        "ann@remote.test",
        "bob@remote.test",
        "--consent",
        "test",
    ]));
    let mut c = Client::connect(d.inbound).await;
    c.ehlo().await;
    let body = message("eve@remote.test", "talk@example.org", "from a stranger");
    let r = c
        .send_mail("eve@remote.test", &["talk@example.org"], &body)
        .await;
    assert!(r.has(550, "5.7.1"), "{r:?}");
    assert!(c.cmd("RSET").await.has(250, "2.0.0"));
    let body = message("ann@remote.test", "talk@example.org", "from a member");
    let r = c
        .send_mail("ann@remote.test", &["talk@example.org"], &body)
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let got = sink
        .wait_for(WAIT, "both members' copies", |r| {
            copies(r, "from a member").len() == 2
        })
        .await;
    for r in copies(&got, "from a member") {
        assert_eq!(
            header(r, "List-Id").as_deref(),
            Some("\"Talk\" <talk.example.org>")
        );
    }
    // The announce list's address is not taken from outside at all.
    let r = c.cmd("MAIL FROM:<ann@remote.test>").await;
    assert!(r.has(250, "2.1.0"), "{r:?}");
    assert!(c.cmd("RCPT TO:<news@example.org>").await.has(550, "5.7.1"));
}
