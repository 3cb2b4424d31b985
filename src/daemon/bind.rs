//! Binding the SMTP and web listeners named by `listen.*`, each announced on stdout.

use super::announce;
use crate::config::Config;
use crate::smtp::Role;
use anyhow::Context as _;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

pub(super) type Bound = (Vec<(Role, TcpListener)>, Vec<TcpListener>);

/// Binds every SMTP and web listener, announcing each address.
pub(super) fn bind_all(config: &Config) -> anyhow::Result<Bound> {
    let l = &config.listen;
    let mut smtp = Vec::new();
    for (role, addrs) in [
        (Role::Submission, &l.submission),
        (Role::Submissions, &l.submissions),
        (Role::Inbound, &l.inbound),
    ] {
        for addr in addrs {
            let listener = bind(addr, role.name())?;
            announce(&format!(
                "listening {} {}",
                role.name(),
                listener.local_addr()?
            ));
            smtp.push((role, listener));
        }
    }
    let mut web = Vec::new();
    for addr in &l.http {
        let listener = bind(addr, "http")?;
        announce(&format!("listening http {}", listener.local_addr()?));
        web.push(listener);
    }
    Ok((smtp, web))
}

/// Binds a listening socket with a deep accept backlog, so a burst of connections waits in the
/// kernel for the accept loop (which answers past the limits with `421`) instead of being dropped.
fn bind(addr: &str, key: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("listen.{key}: bad address {addr}"))?;
    let open = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(4096)
    };
    open().with_context(|| format!("cannot listen on {addr}"))
}
