//! A stream that may be upgraded to TLS once (STARTTLS), for both the SMTP server sessions and
//! the delivery client. Generic over the byte stream underneath: a `TcpStream` in the daemon
//! (the default), an in-memory `tokio::io::duplex` pipe in the session's in-process tests.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsStream};

/// What a connection runs over: any byte stream a task can own (Stalwart's `SessionStream`
/// plays this part there). TLS, once agreed, is layered on top by [`Conn`].
pub trait SessionStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> SessionStream for T {}

pub enum Conn<S = TcpStream> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Transient state while upgrading, or after a failed handshake.
    Gone,
}

impl<S: SessionStream> Conn<S> {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// The server side of the one upgrade: runs the TLS handshake on a plain stream within
    /// `limit`. `false` (and the connection is [`Conn::Gone`]) when the handshake failed or
    /// timed out, or the connection was not plain.
    pub async fn accept_tls(&mut self, acceptor: &TlsAcceptor, limit: Duration) -> bool {
        let Conn::Plain(stream) = std::mem::replace(self, Conn::Gone) else {
            return false;
        };
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                *self = Conn::Tls(Box::new(tls.into()));
                true
            }
            _ => false,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// The unit a per-client limit counts (connections, AUTH failures, `postmaster@` mail): an
/// IPv4 address as is (IPv4-mapped IPv6 too), an IPv6 address cut to its /64, the block one
/// site or subscriber usually holds whole.
pub fn client_unit(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::client_unit;
    use std::net::IpAddr;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        let table = [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("::1", "::"),
        ];
        for (a, want) in table {
            assert_eq!(client_unit(ip(a)), ip(want), "{a}");
        }
    }
}
