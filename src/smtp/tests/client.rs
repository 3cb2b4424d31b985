//! The in-process tests' side of a connection: a small SMTP client over the other end of the
//! duplex pipe (plain, or TLS after STARTTLS or on 465), and a [`Recorder`] around the
//! server's end that keeps every write the session makes, so a test can see which replies
//! went out together.

use super::DEADLINE;
use crate::net::Conn;
use bytes::BytesMut;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::task::JoinHandle;

type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

/// The server's end of the pipe: passes everything through and keeps each `poll_write`'s
/// bytes as one entry (a session over TCP makes one `write` system call per entry).
pub struct Recorder {
    inner: DuplexStream,
    writes: Writes,
}

impl Recorder {
    pub fn new(inner: DuplexStream) -> (Recorder, Writes) {
        let writes = Writes::default();
        let r = Recorder {
            inner,
            writes: writes.clone(),
        };
        (r, writes)
    }
}

impl AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &done {
            this.writes.lock().expect("writes").push(buf[..*n].to_vec());
        }
        done
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One reply as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code, or empty (greeting, EHLO, 354, 334).
    pub status: String,
    /// Each line's text after the code (and status).
    pub lines: Vec<String>,
}

impl Reply {
    /// `"250 2.1.0"`, or `"220"` without an enhanced code: what the tests compare.
    pub fn short(&self) -> String {
        if self.status.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, self.status)
        }
    }
}

fn is_status(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits complete reply lines off `buf`; `None` until a final line (`DDD ` or `DDD\r\n`).
fn take_reply(buf: &mut BytesMut) -> Option<Reply> {
    let text = std::str::from_utf8(buf).expect("replies are UTF-8");
    let mut end = 0;
    let mut lines = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if !line.ends_with("\r\n") {
            return None;
        }
        end += line.len();
        let line = &line[..line.len() - 2];
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).expect("code");
        let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
        lines.push((code, line.get(4..).unwrap_or("").to_string()));
        if sep == b' ' {
            let _ = buf.split_to(end);
            let code = lines[0].0;
            assert!(
                lines.iter().all(|(c, _)| *c == code),
                "mixed codes {lines:?}"
            );
            let status = lines[0]
                .1
                .split(' ')
                .next()
                .filter(|w| is_status(w))
                .unwrap_or("")
                .to_string();
            let strip = |t: &str| match t.strip_prefix(&status) {
                Some(rest) if !status.is_empty() => rest.trim_start().to_string(),
                _ => t.to_string(),
            };
            let lines = lines.iter().map(|(_, t)| strip(t)).collect();
            return Some(Reply {
                code,
                status,
                lines,
            });
        }
        assert_eq!(sep, b'-', "reply line separator in {line:?}");
    }
    None
}

/// Every complete reply in `bytes`, in order, as [`Reply::short`] strings.
pub fn replies(bytes: &[u8]) -> Vec<String> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(r) = take_reply(&mut buf) {
        out.push(r.short());
    }
    assert!(buf.is_empty(), "a partial reply in one write: {buf:?}");
    out
}

pub struct Client {
    conn: Conn<DuplexStream>,
    buf: BytesMut,
    writes: Writes,
    session: JoinHandle<()>,
    /// How long one read may wait (tests under paused time raise it past their timeouts).
    pub deadline: Duration,
}

impl Client {
    pub fn new(stream: DuplexStream, writes: Writes, session: JoinHandle<()>) -> Client {
        Client {
            conn: Conn::Plain(stream),
            buf: BytesMut::new(),
            writes,
            session,
            deadline: DEADLINE,
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.conn.write_all(bytes.as_ref()).await.expect("send");
        self.conn.flush().await.expect("flush");
    }

    /// Reads more bytes; `false` at the end of the stream.
    async fn fill(&mut self) -> bool {
        match tokio::time::timeout(self.deadline, self.conn.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => n > 0,
            // A TLS peer that went without close_notify.
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => false,
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => panic!("no reply within {:?}; have {:?}", self.deadline, self.buf),
        }
    }

    /// The next reply; the connection must not end before it.
    pub async fn reply(&mut self) -> Reply {
        loop {
            if let Some(r) = take_reply(&mut self.buf) {
                return r;
            }
            assert!(self.fill().await, "connection closed; have {:?}", self.buf);
        }
    }

    /// Sends one command line and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends `line` and asserts the reply's code and enhanced code.
    pub async fn expect(&mut self, line: &str, code: u16, status: &str) -> Reply {
        let r = self.cmd(line).await;
        assert_eq!(
            (r.code, r.status.as_str()),
            (code, status),
            "reply to {line:?}: {r:?}"
        );
        r
    }

    /// Reads the next reply and asserts it is `want` (a [`Reply::short`] string).
    pub async fn expect_reply(&mut self, want: &str, what: &str) -> Reply {
        let r = self.reply().await;
        assert_eq!(r.short(), want, "{what}: {r:?}");
        r
    }

    /// The client side of the TLS handshake on the plain connection.
    pub async fn handshake(&mut self, cert_pem: &str) -> io::Result<()> {
        let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            panic!("handshake on a connection that is not plain");
        };
        assert!(self.buf.is_empty(), "plaintext left before the handshake");
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert_pem));
        let name = ServerName::try_from(super::HOST).expect("name");
        let tls = connector.connect(name, stream).await?;
        self.conn = Conn::Tls(Box::new(tls.into()));
        Ok(())
    }

    /// The server closed the connection with nothing more to say.
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await && self.buf.is_empty()
    }

    /// Reads to the end of the stream; what came before it.
    pub async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        self.buf.split().to_vec()
    }

    /// Each write the server made so far, as it made it.
    pub fn raw_writes(&self) -> Vec<Vec<u8>> {
        self.writes.lock().expect("writes").clone()
    }

    /// Each write the server made so far, as the replies it carried.
    pub fn writes(&self) -> Vec<Vec<String>> {
        let writes = self.writes.lock().expect("writes");
        writes.iter().map(|w| replies(w)).collect()
    }

    /// The session task ended (it must, after QUIT or a closing reply).
    pub async fn ended(self) {
        let done = tokio::time::timeout(self.deadline, self.session).await;
        done.expect("session still running")
            .expect("session panicked");
    }
}

/// A client configuration that trusts exactly `cert_pem`.
fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
