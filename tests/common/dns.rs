//! A loopback DNS server for delivery tests: answers MX, A and TXT queries from a table over
//! UDP; unknown names get NXDOMAIN, known names without the asked type get an empty NOERROR.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

#[derive(Default)]
struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    txt: HashMap<String, Vec<String>>,
}

#[derive(Clone)]
pub struct Dns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Dns {
    pub async fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let dns = Dns {
            addr: socket.local_addr().unwrap(),
            zone: Arc::default(),
        };
        let zone = dns.zone.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    break;
                };
                if let Some(reply) = answer(&zone, &buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        dns
    }

    /// `exchange` "." publishes a null MX.
    pub fn mx(&self, domain: &str, preference: u16, exchange: &str) {
        self.zone
            .lock()
            .unwrap()
            .mx
            .entry(key(domain))
            .or_default()
            .push((preference, exchange.to_string()));
    }
    pub fn a(&self, name: &str, ip: Ipv4Addr) {
        self.zone
            .lock()
            .unwrap()
            .a
            .entry(key(name))
            .or_default()
            .push(ip);
    }
    pub fn txt(&self, name: &str, text: &str) {
        self.zone
            .lock()
            .unwrap()
            .txt
            .entry(key(name))
            .or_default()
            .push(text.to_string());
    }

    /// Verifies a message's DKIM signatures with mail-auth against this server.
    pub async fn verify_dkim(&self, message: &str) -> Vec<mail_auth::DkimResult> {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
        };
        let mut ns = NameServerConfig::udp_and_tcp(self.addr.ip());
        let mut c = ConnectionConfig::new(ProtocolConfig::Udp);
        c.port = self.addr.port();
        ns.connections = vec![c];
        let auth = mail_auth::MessageAuthenticator::new(
            ResolverConfig::from_name_servers(vec![ns]),
            ResolverOpts::default(),
        )
        .expect("authenticator");
        let raw = message.as_bytes();
        let parsed = mail_auth::AuthenticatedMessage::parse(raw).expect("parse");
        auth.verify_dkim(&parsed)
            .await
            .iter()
            .map(|o| o.result().clone())
            .collect()
    }
}

fn answer(zone: &Mutex<Zone>, packet: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let q = query.queries.first()?.clone();
    let name = key(&q.name().to_ascii());
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let z = zone.lock().unwrap();
    let known = z.mx.contains_key(&name) || z.a.contains_key(&name) || z.txt.contains_key(&name);
    let owner = q.name().clone();
    match q.query_type() {
        RecordType::MX => {
            for (pref, exchange) in z.mx.get(&name).into_iter().flatten() {
                let exch = if exchange == "." {
                    Name::root()
                } else {
                    Name::from_str(&format!("{exchange}.")).ok()?
                };
                reply.add_answer(Record::from_rdata(
                    owner.clone(),
                    60,
                    RData::MX(MX::new(*pref, exch)),
                ));
            }
        }
        RecordType::A => {
            for ip in z.a.get(&name).into_iter().flatten() {
                reply.add_answer(Record::from_rdata(owner.clone(), 60, RData::A(A(*ip))));
            }
        }
        RecordType::TXT => {
            for t in z.txt.get(&name).into_iter().flatten() {
                let chunks = t
                    .as_bytes()
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                reply.add_answer(Record::from_rdata(
                    owner.clone(),
                    60,
                    RData::TXT(TXT::new(chunks)),
                ));
            }
        }
        _ => {}
    }
    if !known {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.to_vec().ok()
}
