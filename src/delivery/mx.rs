//! Where mail for a domain goes: the smarthost, or MX hosts in preference order (implicit MX
//! from A/AAAA when there is none; RFC 7505 null MX refuses mail). Lookups go through
//! hickory-resolver, which caches by TTL. The lookup sits behind [`Lookup`] so the rest of
//! delivery does not depend on DNS.

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use std::net::{IpAddr, SocketAddr};

/// The answer for one destination domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Host names (for TLS SNI) and addresses to try, best first.
    Hosts(Vec<(String, SocketAddr)>),
    /// The domain publishes a null MX: it accepts no mail (RFC 7505).
    NullMx,
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
    /// DNS failed temporarily.
    TempFail(String),
}

/// Resolves destination domains to routes.
#[allow(async_fn_in_trait)]
pub trait Lookup {
    async fn route(&self, domain: &str) -> Route;
}

pub struct Resolver {
    dns: TokioResolver,
    port: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverError(String);

/// A resolver builder for `servers` (`ip:port`, UDP then TCP), or the system configuration
/// (resolv.conf) when `servers` is empty. Shared with `herald dns`.
pub fn resolver_builder(
    servers: &[SocketAddr],
) -> Result<ResolverBuilder<TokioRuntimeProvider>, ResolverError> {
    let provider = TokioRuntimeProvider::default();
    if servers.is_empty() {
        return TokioResolver::builder(provider).map_err(|e| ResolverError(e.to_string()));
    }
    let name_servers = servers
        .iter()
        .map(|s| {
            let mut ns = NameServerConfig::udp_and_tcp(s.ip());
            ns.connections = [ProtocolConfig::Udp, ProtocolConfig::Tcp]
                .into_iter()
                .map(|protocol| {
                    let mut c = ConnectionConfig::new(protocol);
                    c.port = s.port();
                    c
                })
                .collect();
            ns
        })
        .collect();
    Ok(TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        provider,
    ))
}

impl Resolver {
    /// `servers` empty: the system configuration (resolv.conf).
    pub fn new(servers: &[SocketAddr], port: u16) -> Result<Resolver, ResolverError> {
        let dns = resolver_builder(servers)?
            .build()
            .map_err(|e| ResolverError(e.to_string()))?;
        Ok(Resolver { dns, port })
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, hickory_resolver::net::NetError> {
        Ok(self.dns.lookup_ip(fqdn(host)).await?.iter().collect())
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl Lookup for Resolver {
    async fn route(&self, domain: &str) -> Route {
        let mut hosts: Vec<(u16, String)> = match self.dns.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Route::NoSuchDomain,
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Route::TempFail(e.to_string()),
        };
        if hosts.len() == 1 && (hosts[0].1 == "." || hosts[0].1.is_empty()) {
            return Route::NullMx;
        }
        if hosts.is_empty() {
            // Implicit MX (RFC 5321 §5.1): the domain's own address records.
            hosts.push((0, domain.to_string()));
        }
        hosts.sort_by_key(|(pref, _)| *pref);
        let mut addrs = Vec::new();
        let mut last_error = None;
        for (_, host) in &hosts {
            match self.addresses(host).await {
                Ok(ips) => addrs.extend(
                    ips.into_iter()
                        .map(|ip| (host.clone(), SocketAddr::new(ip, self.port))),
                ),
                Err(e) if e.is_nx_domain() && hosts.len() == 1 && hosts[0].1 == domain => {
                    return Route::NoSuchDomain;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if addrs.is_empty() {
            return Route::TempFail(
                last_error.unwrap_or_else(|| "no addresses for any MX host".into()),
            );
        }
        Route::Hosts(addrs)
    }
}
