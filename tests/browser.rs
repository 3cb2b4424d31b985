//! The list pages in a real browser. Headless Chromium, driven over the DevTools protocol by the
//! small WebSocket client below, presses the button of the confirm page and of the unsubscribe
//! page with mouse events at the button's centre, as a person would; the member's status is
//! read with the CLI after each press, and the page that follows must say what happened. A
//! page of another site that frames a Herald page gets Chromium's error page in the frame.
//!
//! At phone width (390 CSS px, device pixel ratio 2) every page must fit without horizontal
//! scrolling, with body text of at least 16 px and a button at least 44 px tall inside the
//! viewport. Screenshots go to the test's temp dir and to `target/browser-screenshots/` for a
//! person to look at. Without `chromium` on PATH the test prints a SKIP note and passes, or
//! fails naming it under `HERALD_REQUIRE_TOOLS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::http::Http;
use common::sink::{Received, Sink};
use common::*;
use serde_json::{Value, json};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
/// An iPhone 12-15 sized viewport, in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
const PIXEL_RATIO: u32 = 2;
const READER: &str = "reader@remote.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_work_in_chromium_and_pages_read_at_phone_width() {
    if !have("chromium") {
        return;
    }
    let sink = Sink::start("127.0.0.1:0").await;
    let d = Daemon::start(&format!(
        "{}{UNSUBSCRIBE_BASE}{}",
        relay_to(sink.addr),
        news_list()
    ));
    let base = format!("http://{}", d.http);
    let browser = Browser::launch();
    let mut tab = browser.tab().await;
    tab.phone_viewport().await;

    // Confirm: opening the link changes nothing; pressing the button confirms.
    let confirm = confirm_path(&d, &sink).await;
    tab.open(&format!("{base}{confirm}")).await;
    assert_eq!(
        tab.heading().await,
        "Confirm your subscription to Example News"
    );
    assert_eq!(status_of(&d, READER).as_deref(), Some("pending"));
    tab.check_readable(true).await;
    save_screenshot(&d, "1-confirm", &tab.screenshot().await);
    tab.press("form button[type=submit]").await;
    assert_eq!(tab.heading().await, "Subscription confirmed");
    assert_eq!(status_of(&d, READER).as_deref(), Some("confirmed"));
    tab.check_readable(false).await;
    save_screenshot(&d, "2-confirmed", &tab.screenshot().await);

    // Unsubscribe: the link from the List-Unsubscribe header of the reader's copy of a post.
    let token = unsubscribe_token(&d, &sink).await;
    tab.open(&format!("{base}/unsubscribe/{token}")).await;
    assert_eq!(tab.heading().await, "Unsubscribe from Example News");
    assert_eq!(status_of(&d, READER).as_deref(), Some("confirmed"));
    tab.check_readable(true).await;
    save_screenshot(&d, "3-unsubscribe", &tab.screenshot().await);
    tab.press("form button[type=submit]").await;
    assert_eq!(tab.heading().await, "You are unsubscribed");
    assert_eq!(status_of(&d, READER).as_deref(), Some("unsubscribed"));
    tab.check_readable(false).await;
    save_screenshot(&d, "4-unsubscribed", &tab.screenshot().await);
}

/// No other site can frame a page (clickjacking): Chromium, told to show a Herald page in an
/// iframe of a page from elsewhere (another port), shows its own error page in the frame
/// instead. A page served without Herald's headers, framed the same way, loads: the check
/// tells the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_will_not_frame_a_page() {
    if !have("chromium") {
        return;
    }
    let d = Daemon::start(&format!("{}{UNSUBSCRIBE_BASE}", news_list()));
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = format!("http://{}/plain", elsewhere.local_addr().unwrap());
    let targets = [
        (plain.clone(), true),
        (format!("http://{}/confirm/nosuchtoken", d.http), false),
        (format!("http://{}/unsubscribe/nosuchtoken", d.http), false),
        (format!("http://{}/healthz", d.http), false),
    ];
    let outer = format!("http://{}/outer", elsewhere.local_addr().unwrap());
    tokio::spawn(framing_site(
        elsewhere,
        targets.iter().map(|(u, _)| u.clone()).collect(),
    ));
    let browser = Browser::launch();
    let mut tab = browser.tab().await;
    for (n, (url, framable)) in targets.iter().enumerate() {
        tab.open(&format!("{outer}/{n}")).await;
        let tree = tab.cdp.call("Page.getFrameTree", json!({})).await;
        let child = &tree["frameTree"]["childFrames"][0]["frame"];
        assert!(child.is_object(), "{url}: no frame in {tree}");
        let loaded = child["url"] == url.as_str() && child.get("unreachableUrl").is_none();
        assert_eq!(loaded, *framable, "{url}: {child}");
    }
}

/// Another site on loopback, without security headers: `/outer/N` is a page that frames
/// `targets[N]`; anything else is a small page of its own (the framable control).
async fn framing_site(listener: tokio::net::TcpListener, targets: Vec<String>) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        let targets = targets.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read_exact(&mut byte).await.is_err() {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or("/");
            let framed = path
                .strip_prefix("/outer/")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| targets.get(n));
            let body = match framed {
                Some(url) => {
                    format!("<!doctype html><title>outer</title><iframe src=\"{url}\"></iframe>")
                }
                None => "<!doctype html><title>plain</title><h1>plain</h1>".to_string(),
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        });
    }
}

/// Without chromium on PATH the browser test skips, and fails naming chromium under
/// `HERALD_REQUIRE_TOOLS=1`.
#[test]
fn without_chromium_it_skips_or_fails_when_required() {
    let empty = tempfile::tempdir().unwrap();
    tools::assert_fails_only_when_required(
        "buttons_work_in_chromium_and_pages_read_at_phone_width",
        &[("PATH", Some(empty.path().to_str().unwrap()))],
        "chromium",
        "Debian package chromium",
    );
}

// --- The daemon side -------------------------------------------------------------------------

/// Signs READER up over HTTP and returns the path (`/confirm/TOKEN`) of the mailed link.
async fn confirm_path(d: &Daemon, sink: &Sink) -> String {
    let (code, page) = Http::connect(d.http)
        .await
        .request(
            "POST",
            "/subscribe/news",
            Some("application/x-www-form-urlencoded"),
            b"email=reader%40remote.test",
        )
        .await;
    assert_eq!(code, 200, "{page}");
    let got = sink
        .wait_for(WAIT, "confirmation mail", |r| !r.is_empty())
        .await;
    let link = got[0]
        .data
        .split_whitespace()
        .find(|w| w.contains("/confirm/"))
        .unwrap_or_else(|| panic!("no confirm link in {}", got[0].data));
    link[link.find("/confirm/").unwrap()..].to_string()
}

/// Posts to the list as alice and returns the token in READER's copy's List-Unsubscribe.
async fn unsubscribe_token(d: &Daemon, sink: &Sink) -> String {
    let body = "From: <alice@example.org>\r\nTo: <news@example.org>\r\n\
                Subject: browser post\r\n\r\nList post.\r\n";
    let r = d
        .alice()
        .await
        .send_mail("alice@example.org", &["news@example.org"], body)
        .await;
    assert!(r.has(250, "2.0.0"), "{r:?}");
    let is_copy = |m: &Received| m.rcpts == [READER] && m.data.contains("Subject: browser post");
    let got = sink
        .wait_for(WAIT, "the reader's copy", |r| r.iter().any(is_copy))
        .await;
    let copy = got.iter().find(|m| is_copy(m)).unwrap();
    let h = header(copy, "List-Unsubscribe").expect("List-Unsubscribe");
    let start = h.find("/unsubscribe/").expect("https unsubscribe link") + "/unsubscribe/".len();
    h[start..].split('>').next().unwrap().to_string()
}

fn header(r: &Received, name: &str) -> Option<String> {
    r.header(name)
}

fn status_of(d: &Daemon, address: &str) -> Option<String> {
    d.member_status("news", address)
}

/// Checks that `png` is a PNG as wide as the phone in device pixels, and writes it to the
/// daemon's temp dir and to `target/browser-screenshots/NAME.png`.
fn save_screenshot(d: &Daemon, name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(
        width,
        PHONE.0 * PIXEL_RATIO,
        "screenshot width in device pixels"
    );
    std::fs::write(d.dir.path().join(format!("{name}.png")), png).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

// --- The browser -----------------------------------------------------------------------------

/// Headless Chromium in its own process group and profile; killed (the whole group) on drop.
struct Browser {
    child: Child,
    /// `ws://127.0.0.1:PORT/devtools/browser/ID`
    endpoint: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox", // the tests run as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={},{}", PHONE.0, PHONE.1))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn chromium");
        // Read stderr to its end (so Chromium never blocks on a full pipe), passing on the
        // DevTools address.
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(line[i..].trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(WAIT)
            .expect("chromium did not print 'DevTools listening on ws://...'");
        Browser {
            child,
            endpoint,
            _profile: profile,
        }
    }

    /// A new page target, with its own DevTools connection and page events enabled.
    async fn tab(&self) -> Tab {
        let mut browser = Cdp::connect(&self.endpoint).await;
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let id = target["targetId"].as_str().expect("targetId");
        let (origin, _) = self.endpoint.split_once("/devtools/").unwrap();
        let mut cdp = Cdp::connect(&format!("{origin}/devtools/page/{id}")).await;
        cdp.call("Page.enable", json!({})).await;
        Tab { cdp }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group is Chromium's own (process_group(0)): the browser and its helpers.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// One page, driven through its DevTools connection.
struct Tab {
    cdp: Cdp,
}

impl Tab {
    /// A phone: 390 px wide, device pixel ratio 2, mobile viewport rules (`<meta viewport>`).
    async fn phone_viewport(&mut self) {
        let (width, height) = PHONE;
        let metrics = json!({
            "width": width, "height": height, "deviceScaleFactor": PIXEL_RATIO, "mobile": true
        });
        self.cdp
            .call("Emulation.setDeviceMetricsOverride", metrics)
            .await;
    }

    /// Navigates to `url` and waits for the page's load event.
    async fn open(&mut self, url: &str) {
        self.cdp.events.clear();
        let r = self.cdp.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "navigate to {url}: {r}");
        self.cdp.event("Page.loadEventFired").await;
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let params = json!({"expression": expression, "returnByValue": true});
        let r = self.cdp.call("Runtime.evaluate", params).await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    async fn heading(&mut self) -> String {
        let h = self.eval("document.querySelector('h1')?.textContent").await;
        h.as_str().unwrap_or_default().to_string()
    }

    /// Presses the element at `selector` with the mouse (move, press, release at the centre of
    /// its box) and waits for the page its form submission loads.
    async fn press(&mut self, selector: &str) {
        let find = format!(
            "(() => {{ const b = document.querySelector({sel}); if (!b) return null; \
             b.scrollIntoView({{block: 'center'}}); const r = b.getBoundingClientRect(); \
             return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()",
            sel = serde_json::to_string(selector).unwrap()
        );
        let centre = self.eval(&find).await;
        assert!(centre.is_object(), "no {selector} on the page");
        let (x, y) = (&centre["x"], &centre["y"]);
        self.cdp.events.clear();
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let event = json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1});
            self.cdp.call("Input.dispatchMouseEvent", event).await;
        }
        self.cdp.event("Page.loadEventFired").await;
    }

    /// Readable on a phone: no horizontal scrolling, body text >= 16 px, and (if `button`) a
    /// form button at least 44 px tall that lies within the viewport's width.
    async fn check_readable(&mut self, button: bool) {
        let m = self
            .eval(
                "(() => { const b = document.querySelector('form button'); \
                 const r = b && b.getBoundingClientRect(); return { \
                 innerWidth: window.innerWidth, \
                 scrollWidth: document.documentElement.scrollWidth, \
                 fontSize: parseFloat(getComputedStyle(document.body).fontSize), \
                 button: r && {left: r.left, right: r.right, height: r.height} }; })()",
            )
            .await;
        let px = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let width = f64::from(PHONE.0);
        assert_eq!(px(&m["innerWidth"]), width, "viewport: {m}");
        assert!(px(&m["scrollWidth"]) <= width, "scrolls sideways: {m}");
        assert!(px(&m["fontSize"]) >= 16.0, "text too small: {m}");
        if button {
            let b = &m["button"];
            assert!(px(&b["height"]) >= 44.0, "no button or too small: {m}");
            let inside = px(&b["left"]) >= 0.0 && px(&b["right"]) <= width;
            assert!(inside, "button off screen: {m}");
        }
    }

    async fn screenshot(&mut self) -> Vec<u8> {
        let r = self
            .cdp
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .unwrap()
    }
}

// --- The DevTools protocol over a minimal WebSocket client (RFC 6455) -------------------------

/// A DevTools connection: numbered commands, and the events that arrived meanwhile.
struct Cdp {
    ws: Ws,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        Cdp {
            ws: Ws::connect(url).await,
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// Sends a command and returns its result; events that arrive first are kept.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.ws.send(command.to_string().as_bytes()).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let msg = self.next(deadline, method).await;
            if msg["id"].as_u64() == Some(id) {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
            if msg.get("method").is_some() {
                self.events.push(msg);
            }
        }
    }

    /// Waits for the event `method` (one that already arrived counts) and consumes it.
    async fn event(&mut self, method: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
                return self.events.remove(i);
            }
            let msg = self.next(deadline, method).await;
            if msg.get("method").is_some() {
                self.events.push(msg);
            }
        }
    }

    async fn next(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = tokio::time::timeout(left, self.ws.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {waiting_for}"));
        serde_json::from_slice(&text).unwrap()
    }
}

/// A WebSocket client connection to a `ws://host:port/path` URL.
struct Ws {
    io: BufReader<TcpStream>,
}

impl Ws {
    async fn connect(url: &str) -> Ws {
        let rest = url.strip_prefix("ws://").expect("ws:// url");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(host))
            .await
            .expect("connect timed out")
            .expect("connect to chromium");
        let mut io = BufReader::new(tcp);
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        io.get_mut().write_all(request.as_bytes()).await.unwrap();
        let handshake = async {
            let mut status = String::new();
            io.read_line(&mut status).await.unwrap();
            assert!(
                status.contains(" 101 "),
                "websocket upgrade refused: {status}"
            );
            let mut line = String::new();
            while line != "\r\n" {
                line.clear();
                assert_ne!(
                    io.read_line(&mut line).await.unwrap(),
                    0,
                    "closed in handshake"
                );
            }
        };
        tokio::time::timeout(WAIT, handshake)
            .await
            .expect("websocket handshake timed out");
        Ws { io }
    }

    /// Sends one text frame, masked as a client must.
    async fn send(&mut self, payload: &[u8]) {
        let mut frame = vec![0x81]; // FIN, text
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = rand::random();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.io.get_mut().write_all(&frame).await.unwrap();
    }

    /// The next text message (fragments joined); answers pings, panics on close.
    async fn recv(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        loop {
            let (fin, opcode, payload) = self.frame().await;
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return message;
                    }
                }
                0x8 => panic!("chromium closed the DevTools connection"),
                0x9 => self.pong(&payload).await,
                _ => {} // pong or reserved: ignore
            }
        }
    }

    async fn pong(&mut self, payload: &[u8]) {
        let mask: [u8; 4] = rand::random();
        let mut frame = vec![0x8a, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.io.get_mut().write_all(&frame).await.unwrap();
    }

    /// One frame: (FIN, opcode, unmasked payload).
    async fn frame(&mut self) -> (bool, u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.io.read_exact(&mut head).await.expect("websocket read");
        let len = match head[1] & 0x7f {
            126 => u64::from(self.io.read_u16().await.unwrap()),
            127 => self.io.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        let mask = if head[1] & 0x80 != 0 {
            Some(self.io.read_u32().await.unwrap().to_be_bytes())
        } else {
            None
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.io.read_exact(&mut payload).await.unwrap();
        if let Some(mask) = mask {
            payload
                .iter_mut()
                .zip(mask.iter().cycle())
                .for_each(|(b, m)| *b ^= m);
        }
        (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
    }
}
