//! The basic path: submit over STARTTLS and over implicit TLS, and see it in `queue ls`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_lands_in_queue() {
    // Deliveries go to a closed port and stay queued, so the queue shows what was accepted.
    let d = Daemon::start(&hold());
    let mut c = d.alice().await;
    let r = c
        .send_mail(
            "alice@example.org",
            &["bob@remote.test"],
            &message("alice@example.org", "bob@remote.test", "one"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let id = r.text().rsplit(' ').next().unwrap().to_string();

    let mut t = Client::connect_tls(d.submissions, &d.cert_pem).await;
    t.ehlo().await;
    assert_eq!(t.auth_plain(ALICE, ALICE_PASSWORD).await.code, 235);
    let r = t
        .send_mail(
            "x@alice.example",
            &["carol@remote.test"],
            &message("x@alice.example", "carol@remote.test", "two"),
        )
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");

    let q = d.queue();
    assert_eq!(q.len(), 2);
    let first = q
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("first message listed");
    assert_eq!(first["sender"], "alice@example.org");
    assert_eq!(first["recipients"][0]["address"], "bob@remote.test");
    let state = first["recipients"][0]["state"].as_str().unwrap();
    assert!(state == "queued" || state == "deferred", "{state}");
    assert!(
        first["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@mx.test.example>"),
        "Message-ID added: {first}"
    );
}

/// `closed_port()` refuses connections, and stays taken for the whole test process: nothing
/// else can bind it, so no daemon or sink started by a parallel test is given it.
#[test]
fn closed_port_refuses_and_stays_reserved() {
    let addr = closed_port();
    for _ in 0..2 {
        let err = std::net::TcpStream::connect(addr).expect_err("connected to the closed port");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let err = std::net::TcpListener::bind(addr).expect_err("bound the closed port");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        assert_eq!(closed_port(), addr);
    }
}
