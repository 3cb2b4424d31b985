//! The web side against cross-site and proxied clients (issue 13, defect 7): sign-ups posted
//! from sites outside `http.signup_origins` are refused, clients behind a trusted proxy each
//! get their own sign-up budget and consent record, a one-click POST that is not a form is
//! `415`, and no page may be framed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::http::{Answer, exchange};
use common::sink::{Received, Sink};
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn config(sink: &Sink, http: &str) -> String {
    format!(
        "{}{UNSUBSCRIBE_BASE}{}\n[http]\n{http}\n",
        relay_to(sink.addr),
        news_list()
    )
}

async fn sign_up(addr: SocketAddr, email: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    exchange(
        addr,
        "POST",
        "/subscribe/news",
        &all,
        format!("email={email}").as_bytes(),
    )
    .await
}

/// `list members news --json`: (address, status, consent_ip).
fn members(d: &Daemon) -> Vec<(String, String, Option<String>)> {
    let out = d.cli(&["list", "members", "news", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
                m["consent_ip"].as_str().map(String::from),
            )
        })
        .collect()
}

fn member(d: &Daemon, address: &str) -> Option<(String, Option<String>)> {
    members(d)
        .into_iter()
        .find(|(a, _, _)| a == address)
        .map(|(_, s, ip)| (s, ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_posted_from_other_sites_are_refused() {
    let sink = Sink::start("127.0.0.1:0").await;
    // No `http.signup_origins`: the origin of `unsubscribe.base_url` (https://lists.example.org).
    let mut d = Daemon::start(&config(&sink, ""));
    let evil: &[&[(&str, &str)]] = &[
        &[("Origin", "https://evil.test")],
        &[("Origin", "null")],
        &[("Origin", "https://lists.example.org.evil.test")],
        &[("Origin", "http://lists.example.org")],
        &[("Referer", "https://evil.test/lists.example.org/join")],
        &[
            ("Origin", "https://evil.test"),
            ("Referer", "https://lists.example.org/"),
        ],
    ];
    // Ten refused, more than the per-client burst of five: a refusal spends no budget.
    for (i, h) in evil.iter().cycle().take(10).enumerate() {
        let a = sign_up(d.http, &format!("victim{i}@remote.test"), h).await;
        assert_eq!(a.status, 403, "{h:?}: {}", a.body);
        assert!(a.body.contains("Nothing was changed"), "{}", a.body);
    }
    assert!(
        members(&d).is_empty(),
        "nobody signed up: {:?}",
        members(&d)
    );
    let allowed: &[&[(&str, &str)]] = &[
        &[("Origin", "https://lists.example.org")],
        &[("Origin", "HTTPS://Lists.Example.org:443")],
        &[("Referer", "https://lists.example.org/join?from=home")],
        // Neither header: not a browser (curl, a script).
        &[],
    ];
    for (i, h) in allowed.iter().enumerate() {
        let email = format!("reader{i}@remote.test");
        let a = sign_up(d.http, &email, h).await;
        assert_eq!(a.status, 200, "{h:?}: {}", a.body);
        assert_eq!(member(&d, &email).unwrap().0, "pending");
    }
    sink.wait_for(WAIT, "four confirmation mails", |r: &[Received]| {
        r.len() == 4
    })
    .await;

    // An explicit list replaces the default.
    let http = "signup_origins = [\"https://www.example.org\", \"http://localhost:8080\"]";
    std::fs::write(
        &d.config_path,
        base_config(d.dir.path(), &config(&sink, http)),
    )
    .unwrap();
    d.restart();
    let a = sign_up(
        d.http,
        "late@remote.test",
        &[("Origin", "https://lists.example.org")],
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    for (email, origin) in [
        ("www@remote.test", "https://www.example.org"),
        ("local@remote.test", "http://localhost:8080"),
    ] {
        let a = sign_up(d.http, email, &[("Origin", origin)]).await;
        assert_eq!(a.status, 200, "{origin}: {}", a.body);
    }
    assert_eq!(member(&d, "late@remote.test"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_each_get_their_own_budget() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, "trusted_proxies = [\"127.0.0.0/8\"]"));
    let xff = |v: &'static str| [("X-Forwarded-For", v)];
    // One client: five sign-ups (the burst), the sixth waits; the header's left-most entries
    // are the client's own word and do not change who it is.
    for i in 0..5 {
        let spoof = [
            "1.1.1.1, 203.0.113.1",
            "203.0.113.1",
            "9.9.9.9, 203.0.113.1",
        ][i % 3];
        let a = sign_up(d.http, &format!("a{i}@remote.test"), &xff(spoof)).await;
        assert_eq!(a.status, 200, "{spoof}: {}", a.body);
    }
    let a = sign_up(d.http, "a5@remote.test", &xff("203.0.113.1")).await;
    assert_eq!(a.status, 429, "{}", a.body);
    // Another client behind the same proxy has its own budget, and its address is recorded.
    let a = sign_up(d.http, "b@remote.test", &xff("198.51.100.2")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        member(&d, "b@remote.test").unwrap().1.as_deref(),
        Some("198.51.100.2")
    );
    assert_eq!(
        member(&d, "a1@remote.test").unwrap().1.as_deref(),
        Some("203.0.113.1")
    );
    // A chain of proxies (both trusted) is walked to the client.
    let a = sign_up(d.http, "c@remote.test", &xff("192.0.2.3, 127.0.0.2")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        member(&d, "c@remote.test").unwrap().1.as_deref(),
        Some("192.0.2.3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_ignored_from_an_untrusted_peer() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, "trusted_proxies = [\"192.0.2.0/24\"]"));
    // Each request claims another client; the peer (127.0.0.1) is not a listed proxy, so all
    // share its budget.
    for i in 0..5 {
        let claim = format!("203.0.113.{i}");
        let a = sign_up(
            d.http,
            &format!("x{i}@remote.test"),
            &[("X-Forwarded-For", &claim)],
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = sign_up(
        d.http,
        "x5@remote.test",
        &[("X-Forwarded-For", "203.0.113.99")],
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(
        member(&d, "x0@remote.test").unwrap().1.as_deref(),
        Some("127.0.0.1")
    );
}

/// Posts to the list as alice and returns each member's unsubscribe token from its copy.
async fn tokens(d: &Daemon, sink: &Sink, members: &[&str]) -> Vec<String> {
    let body = "From: <alice@example.org>\r\nTo: <news@example.org>\r\n\
                Subject: tokens\r\n\r\nList post.\r\n";
    let r = d
        .alice()
        .await
        .send_mail("alice@example.org", &["news@example.org"], body)
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let got = sink
        .wait_for(WAIT, "a copy for each member", |r: &[Received]| {
            r.len() >= members.len()
        })
        .await;
    members
        .iter()
        .map(|m| {
            let copy = got.iter().find(|r| r.rcpts == [*m]).expect("a copy");
            let h = copy.header("List-Unsubscribe").expect("List-Unsubscribe");
            let start = h.find("/unsubscribe/").unwrap() + "/unsubscribe/".len();
            h[start..].split('>').next().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_takes_only_a_form() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, ""));
    let readers = ["form@remote.test", "multi@remote.test"];
    for r in readers {
        let out = d.cli(&["list", "add", "news", r, "--consent", "asked in person"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let t = tokens(&d, &sink, &readers).await;
    let path = |i: usize| format!("/unsubscribe/{}", t[i]);
    let body = b"List-Unsubscribe=One-Click";
    for ct in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/json"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        let a = exchange(d.http, "POST", &path(0), &headers, body).await;
        assert_eq!(a.status, 415, "{ct:?}: {}", a.body);
        assert_eq!(member(&d, readers[0]).unwrap().0, "confirmed", "{ct:?}");
    }
    // What mailbox providers send still works: form-urlencoded, and multipart.
    let a = exchange(d.http, "POST", &path(0), &[FORM], body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(member(&d, readers[0]).unwrap().0, "unsubscribed");
    let multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
                      One-Click\r\n--XyZ--\r\n";
    let ct = ("Content-Type", "multipart/form-data; boundary=XyZ");
    let a = exchange(d.http, "POST", &path(1), &[ct], multipart).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(member(&d, readers[1]).unwrap().0, "unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_can_be_framed_or_run_a_script() {
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&config(&sink, ""));
    let out = d.cli(&[
        "list",
        "add",
        "news",
        "r@remote.test",
        "--consent",
        "in person",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = tokens(&d, &sink, &["r@remote.test"]).await;
    let unsubscribe = format!("/unsubscribe/{}", t[0]);
    type Page<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);
    let pages: Vec<Page> = vec![
        ("GET", unsubscribe.as_str(), vec![], b"", 200),
        ("GET", "/confirm/nosuchtoken", vec![], b"", 404),
        ("GET", "/unsubscribe/nosuchtoken", vec![], b"", 404),
        ("POST", "/subscribe/news", vec![FORM], b"email=bad", 400),
        (
            "POST",
            "/subscribe/news",
            vec![FORM, ("Origin", "https://evil.test")],
            b"email=a@remote.test",
            403,
        ),
        (
            "POST",
            unsubscribe.as_str(),
            vec![("Content-Type", "text/plain")],
            b"x",
            415,
        ),
        ("GET", "/healthz", vec![], b"", 200),
        ("GET", "/no/such/route", vec![], b"", 404),
    ];
    for (method, path, headers, body, status) in pages {
        let a = exchange(d.http, method, path, &headers, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        let csp = a.header("content-security-policy").unwrap_or_else(|| {
            panic!(
                "{method} {path}: no Content-Security-Policy in {:?}",
                a.headers
            )
        });
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{method} {path}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert!(!a.body.contains("<script"), "{method} {path}: {}", a.body);
        if a.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
        {
            // The one inline style is allowed by its hash, nothing else.
            assert!(a.body.contains("<style>"), "{}", a.body);
            assert!(csp.contains("style-src 'sha256-"), "{csp}");
        }
    }
}
