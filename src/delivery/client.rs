//! The SMTP client: the only module that uses mail-send. Connects to the first reachable host,
//! says EHLO, upgrades with STARTTLS when offered (or refuses to go on without it when
//! `delivery.tls = "required"`), and sends messages one transaction at a time on a reusable
//! connection. Every failure becomes an [`Outcome`].

use super::{Origin, Outcome, Reply, Status};
use crate::config::TlsPolicy;
use crate::net::Conn;
use mail_send::SmtpClient;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Opens connections with one set of settings.
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    helo: String,
    policy: TlsPolicy,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// An open, greeted (and possibly encrypted) connection to one remote host.
pub struct Connection {
    pub(super) client: SmtpClient<Conn>,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The server advertised PIPELINING (RFC 2920): the envelope goes out in one write.
    pub(super) pipelining: bool,
    /// The server advertised SMTPUTF8 (RFC 6531): UTF-8 envelope addresses may go to it.
    pub(super) smtputf8: bool,
    pub(super) broken: bool,
    /// Reused for each transaction's outgoing bytes.
    pub(super) wbuf: Vec<u8>,
}

/// A transient failure of the destination: `451 class.subject.detail text`.
pub(super) fn transient(status: Status, text: String, throttle: bool) -> Outcome {
    Outcome::Transient {
        reply: Reply::new(451, status, text),
        origin: Origin::Remote,
        throttle,
    }
}

/// A reply that ended a step, as the destination gave it.
pub(super) fn reply_of(r: &smtp_proto::Response<String>) -> Reply {
    Reply::from_wire(r.code, r.esc, &r.message)
}

pub(super) fn from_error(e: mail_send::Error) -> (Outcome, bool) {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            (Outcome::remote(reply_of(&r)), false)
        }
        mail_send::Error::Timeout => (
            transient(
                Status::new(4, 4, 2),
                "timeout talking to remote server".into(),
                false,
            ),
            true,
        ),
        other => (
            transient(Status::new(4, 4, 0), other.to_string(), false),
            true,
        ),
    }
}

impl Connector {
    pub fn new(
        helo: &str,
        policy: TlsPolicy,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth();
        Ok(Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            helo: helo.to_string(),
            policy,
            connect_timeout,
            command_timeout,
        })
    }

    /// Tries the hosts in order; the first that greets and accepts EHLO wins.
    pub async fn connect(&self, hosts: &[(String, SocketAddr)]) -> Result<Connection, Outcome> {
        let mut last = transient(Status::new(4, 4, 1), "no host to connect to".into(), true);
        for (name, addr) in hosts {
            match self.open(name, *addr).await {
                Ok(c) => return Ok(c),
                Err(o) => {
                    tracing::debug!(host = %addr, reply = %o.reply(), "connection attempt failed");
                    last = o;
                }
            }
        }
        Err(last)
    }

    async fn open(&self, name: &str, addr: SocketAddr) -> Result<Connection, Outcome> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(transient(
                    Status::new(4, 4, 1),
                    format!("connection to {addr} failed: {e}"),
                    true,
                ));
            }
            Err(_) => {
                return Err(transient(
                    Status::new(4, 4, 1),
                    format!("connection to {addr} timed out"),
                    true,
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut client = SmtpClient {
            stream: Conn::Plain(tcp),
            timeout: self.command_timeout,
        };
        let greeting = client.read().await.map_err(|e| from_error(e).0)?;
        if greeting.code != 220 {
            // A 554 greeting means "not here": the next MX may take it (RFC 5321 §3.1).
            let reply = reply_of(&greeting).noted(&format!("greeting from {addr}"));
            return Err(Outcome::transient(Origin::Remote, reply));
        }
        let ehlo = client.ehlo(&self.helo).await.map_err(|e| from_error(e).0)?;
        if !ehlo.has_capability(smtp_proto::EXT_START_TLS) {
            if self.policy == TlsPolicy::Required {
                return Err(transient(
                    Status::new(4, 7, 4),
                    format!("{addr} does not offer STARTTLS and TLS is required"),
                    false,
                ));
            }
            return Ok(Connection::new(client, addr, false, &ehlo));
        }
        let reply = client
            .cmd(b"STARTTLS\r\n")
            .await
            .map_err(|e| from_error(e).0)?;
        if reply.code != 220 {
            let reply = reply_of(&reply).noted(&format!("STARTTLS at {addr}"));
            return Err(Outcome::transient(Origin::Remote, reply));
        }
        let Conn::Plain(tcp) = std::mem::replace(&mut client.stream, Conn::Gone) else {
            return Err(transient(
                Status::new(4, 4, 0),
                "connection lost".into(),
                false,
            ));
        };
        let server_name = ServerName::try_from(name.trim_end_matches('.').to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()));
        let tls = tokio::time::timeout(self.command_timeout, self.tls.connect(server_name, tcp))
            .await
            .map_err(|_| {
                let text = format!("TLS handshake with {addr} timed out");
                transient(Status::new(4, 7, 0), text, false)
            })?
            .map_err(|e| {
                let text = format!("TLS handshake with {addr} failed: {e}");
                transient(Status::new(4, 7, 0), text, false)
            })?;
        let mut client = SmtpClient {
            stream: Conn::Tls(Box::new(tls.into())),
            timeout: self.command_timeout,
        };
        let ehlo = client.ehlo(&self.helo).await.map_err(|e| from_error(e).0)?;
        Ok(Connection::new(client, addr, true, &ehlo))
    }
}

impl Connection {
    fn new(
        client: SmtpClient<Conn>,
        peer: SocketAddr,
        tls: bool,
        ehlo: &smtp_proto::EhloResponse<String>,
    ) -> Self {
        Connection {
            client,
            peer,
            tls,
            pipelining: ehlo.has_capability(smtp_proto::EXT_PIPELINING),
            smtputf8: ehlo.has_capability(smtp_proto::EXT_SMTP_UTF8),
            broken: false,
            wbuf: Vec::new(),
        }
    }

    /// Whether the connection can carry another transaction.
    pub fn usable(&self) -> bool {
        !self.broken
    }
}

/// Opportunistic TLS (RFC 7435) encrypts without authenticating the server, like Postfix's
/// `may` and `encrypt` levels; signatures are still checked so the handshake is sound.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
