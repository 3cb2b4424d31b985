//! A raw SMTP client for tests: exact bytes out, whole replies in, TLS by rustls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP reply: code and the text of every line (after `NNN-` / `NNN `).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    /// The enhanced status code at the start of the last line, if any.
    pub fn status(&self) -> &str {
        self.lines
            .last()
            .and_then(|l| l.split(' ').next())
            .unwrap_or("")
    }
    pub fn has(&self, code: u16, status: &str) -> bool {
        self.code == code && self.status() == status
    }
}

pub struct Client {
    io: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    pub timeout: Duration,
}

pub fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Client {
    /// Connects and reads the greeting (asserting 220).
    pub async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client::connect_raw(addr).await;
        let greeting = c.read_reply().await;
        assert_eq!(greeting.code, 220, "greeting {greeting:?}");
        c
    }

    /// Connects without reading anything.
    pub async fn connect_raw(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Client {
            io: Some(Box::new(tcp)),
            buf: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Connects without reading anything; `None` when the connection is refused.
    pub async fn try_connect_raw(addr: SocketAddr) -> Option<Client> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        Some(Client {
            io: Some(Box::new(tcp)),
            buf: Vec::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Implicit TLS (port 465 style), then the greeting.
    pub async fn connect_tls(addr: SocketAddr, cert_pem: &str) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Client::tls_over(tcp, cert_pem).await
    }

    /// Implicit TLS from the local address `source` (any of 127.0.0.0/8 on loopback, so one
    /// test can be many clients), then the greeting.
    pub async fn connect_tls_from(addr: SocketAddr, source: IpAddr, cert_pem: &str) -> Client {
        let socket = match source {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind source");
        let tcp = socket.connect(addr).await.expect("connect");
        Client::tls_over(tcp, cert_pem).await
    }

    async fn tls_over(tcp: TcpStream, cert_pem: &str) -> Client {
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert_pem));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("tls");
        let mut c = Client {
            io: Some(Box::new(tls)),
            buf: Vec::new(),
            timeout: Duration::from_secs(30),
        };
        let greeting = c.read_reply().await;
        assert_eq!(greeting.code, 220, "greeting {greeting:?}");
        c
    }

    fn io(&mut self) -> &mut Box<dyn Io> {
        self.io.as_mut().expect("connection")
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let io = self.io();
        io.write_all(bytes).await.expect("write");
        io.flush().await.expect("flush");
    }

    /// Like `send_raw` but tolerates the peer having closed.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        let io = self.io();
        io.write_all(bytes).await.is_ok() && io.flush().await.is_ok()
    }

    /// Reads one complete reply; `None` on EOF or timeout.
    pub async fn try_read_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code: u16 = line.get(..3)?.parse().ok()?;
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
            if sep != b'-' {
                return Some(Reply { code, lines });
            }
        }
    }

    pub async fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .await
            .expect("reply (connection closed or timed out)")
    }

    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            let mut chunk = [0u8; 8192];
            let timeout = self.timeout;
            let n = tokio::time::timeout(timeout, self.io().read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True when the server closed the connection (EOF) within the timeout.
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::time::timeout(self.timeout, self.io().read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends `line` + CRLF and reads the reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    pub async fn ehlo(&mut self) -> Reply {
        let r = self.cmd("EHLO client.test").await;
        assert_eq!(r.code, 250, "{r:?}");
        r
    }

    /// STARTTLS and the handshake (trusting `cert_pem`).
    pub async fn starttls(&mut self, cert_pem: &str) {
        let r = self.cmd("STARTTLS").await;
        assert_eq!(r.code, 220, "{r:?}");
        self.tls_handshake(cert_pem).await;
    }

    /// The TLS handshake alone, for a caller that sent STARTTLS itself (e.g. pipelined with
    /// other commands) and read the 220; asserts the server sent nothing after that 220.
    pub async fn tls_handshake(&mut self, cert_pem: &str) {
        assert!(
            self.buf.is_empty(),
            "server sent bytes after 220 to STARTTLS: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let io = self.io.take().unwrap();
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert_pem));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), io)
            .await
            .expect("handshake");
        self.io = Some(Box::new(tls));
    }

    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Reply {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.cmd(&format!("AUTH PLAIN {token}")).await
    }

    /// MAIL, RCPTs, DATA with `body` (dot-stuffing is the caller's business) and the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if r.code != 250 {
            return r;
        }
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            if r.code != 250 {
                return r;
            }
        }
        let r = self.cmd("DATA").await;
        if r.code != 354 {
            return r;
        }
        self.send_raw(body.as_bytes()).await;
        self.cmd(".").await
    }
}
