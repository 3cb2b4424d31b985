//! Bounds on the listeners that are not SMTP: the web port (connection cap, header and body
//! deadlines, idle connections) and the admin socket (request deadline), and a stop that no
//! idle client can hold up. Over real sockets against the real daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const HTTP: &str = "[http]\nmax_connections = 2\nheader_timeout = \"1s\"\nidle_timeout = \"3s\"\n";

/// Reads until the peer closes (or `limit` passes, which fails the test); returns what came
/// and how long the close took.
fn until_closed(stream: &mut impl Read, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, start.elapsed());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "still open after {:?}; got {:?}",
                    start.elapsed(),
                    String::from_utf8_lossy(&got)
                )
            }
            Err(e) => panic!("read: {e}"),
        }
        assert!(start.elapsed() < limit, "still open after {limit:?}");
    }
}

fn tcp(addr: std::net::SocketAddr, limit: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    s
}

fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = tcp(addr, Duration::from_secs(10));
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    String::from_utf8_lossy(&until_closed(&mut s, Duration::from_secs(10)).0).into_owned()
}

/// A client that sends half a request head, or a head and then nothing of its body, or
/// nothing more after a response, is cut off; the web port keeps answering others.
#[test]
fn slow_and_idle_web_clients_are_cut_off() {
    let d = Daemon::start(&format!("{}{HTTP}", hold()));
    let mut half = tcp(d.http, Duration::from_secs(8));
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, took) = until_closed(&mut half, Duration::from_secs(8));
    assert!(
        took < Duration::from_secs(5),
        "half a head kept for {took:?}"
    );

    let mut slow_body = tcp(d.http, Duration::from_secs(8));
    slow_body
        .write_all(b"POST /unsubscribe/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nList-")
        .unwrap();
    let (got, took) = until_closed(&mut slow_body, Duration::from_secs(8));
    assert!(
        took < Duration::from_secs(5),
        "a stalled body kept for {took:?}"
    );
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");

    let mut kept = tcp(d.http, Duration::from_secs(8));
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = until_closed(&mut kept, Duration::from_secs(8));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        took < Duration::from_secs(5),
        "an idle keep-alive kept for {took:?}"
    );
    assert!(healthz(d.http).starts_with("HTTP/1.1 200"));
}

/// Past `http.max_connections` a new connection is closed at once; a freed slot serves again.
#[test]
fn the_web_port_has_a_connection_cap() {
    let d = Daemon::start(&format!(
        "{}{}",
        hold(),
        HTTP.replace("header_timeout = \"1s\"", "header_timeout = \"30s\"")
            .replace("idle_timeout = \"3s\"", "idle_timeout = \"30s\"")
    ));
    let first = tcp(d.http, Duration::from_secs(5));
    let second = tcp(d.http, Duration::from_secs(5));
    // Both are accepted (and counted) once a request on a third connection is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut third = tcp(d.http, Duration::from_secs(5));
        let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let (got, _) = until_closed(&mut third, Duration::from_secs(5));
        if got.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "a third connection was served");
    }
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !healthz(d.http).starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "no slot came free");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(second);
}

/// An admin client that connects and says nothing is disconnected after the request
/// deadline, and the CLI works meanwhile.
#[test]
fn a_silent_admin_client_is_disconnected() {
    let d = Daemon::start(&hold());
    let mut silent = UnixStream::connect(d.dir.path().join("data/admin.sock")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert!(d.cli(&["queue", "ls"]).status.success());
    let (got, took) = until_closed(&mut silent, Duration::from_secs(20));
    assert!(got.is_empty());
    assert!(took < Duration::from_secs(15), "kept for {took:?}");
}

/// SIGTERM stops the daemon within its grace period even while an admin client and a web
/// client sit idle, each in the middle of a request.
#[test]
fn idle_clients_do_not_hold_up_the_stop() {
    let mut d = Daemon::start(&format!(
        "{}[limits]\nshutdown_grace = \"1s\"\n[http]\nheader_timeout = \"1h\"\nidle_timeout = \"1h\"\n",
        hold()
    ));
    let mut admin = UnixStream::connect(d.dir.path().join("data/admin.sock")).unwrap();
    admin.write_all(b"{\"Queue").unwrap();
    let mut web = tcp(d.http, Duration::from_secs(20));
    web.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Both connections are open and being served before the signal.
    assert!(healthz(d.http).starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    let status = d.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        start.elapsed()
    );
}
