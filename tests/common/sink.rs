//! A real SMTP sink for delivery tests: accepts connections on a loopback address, records
//! every transaction with its arrival time, and answers by rules so tests can refuse, defer or
//! throttle chosen recipients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    /// MAIL FROM carried the SMTPUTF8 parameter (RFC 6531).
    pub smtputf8: bool,
    pub rcpts: Vec<String>,
    pub data: String,
    pub at: Instant,
    pub connection: u64,
}

/// How the sink answers a RCPT (or the end of DATA for that recipient set).
impl Received {
    /// The value of a header (unfolded), if the message has it.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    /// Refuse RCPT for addresses containing `needle` with this reply.
    RejectRcpt { needle: String, reply: String },
    /// Answer `reply` to RCPT for addresses containing `needle` the first `times` times.
    DeferRcpt {
        needle: String,
        reply: String,
        times: usize,
    },
    /// Answer every MAIL FROM with `reply` while active (e.g. 421 4.7.0 throttling).
    RefuseAll { reply: String },
    /// Do not advertise PIPELINING (the client must then wait for each reply).
    NoPipelining,
    /// Advertise SMTPUTF8 (RFC 6531); without it the sink offers none.
    SmtpUtf8,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    rules: Vec<Rule>,
    counts: std::collections::HashMap<String, usize>,
    connections: u64,
    refused_mails: usize,
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Sink {
    /// Listens on `ip:port` (port 0 for any).
    pub async fn start(addr: &str) -> Sink {
        let listener = TcpListener::bind(addr).await.expect("bind sink");
        let sink = Sink {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            notify: Arc::new(Notify::new()),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(tcp).await;
                });
            }
        });
        sink
    }

    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.inner.lock().unwrap().rules = rules;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn refused_mails(&self) -> usize {
        self.inner.lock().unwrap().refused_mails
    }

    pub fn connections(&self) -> u64 {
        self.inner.lock().unwrap().connections
    }

    /// Waits for a delivery status notification carrying `Status: status` and returns it with
    /// everything received so far; asserts it came from the null sender to `to` only.
    pub async fn wait_dsn(
        &self,
        timeout: Duration,
        status: &str,
        to: &str,
    ) -> (Received, Vec<Received>) {
        let line = format!("Status: {status}");
        let got = self
            .wait_for(timeout, &format!("a {status} DSN"), |r| {
                r.iter().any(|m| m.data.contains(&line))
            })
            .await;
        let dsn = got.iter().find(|m| m.data.contains(&line)).unwrap().clone();
        assert_eq!(
            (dsn.mail_from.as_str(), dsn.rcpts.as_slice()),
            ("", &[to.to_string()][..]),
            "the {status} DSN's envelope"
        );
        (dsn, got)
    }

    /// Waits until `pred` holds for the received list, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            {
                let g = self.inner.lock().unwrap();
                if pred(&g.received) {
                    return g.received.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "sink: timed out waiting for {what}; got {} messages",
                self.received().len()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Waits for at least `n` messages.
    pub async fn wait_count(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(timeout, &format!("{n} messages"), |r| r.len() >= n)
            .await
    }

    fn rcpt_reply(&self, rcpt: &str) -> Option<String> {
        let mut g = self.inner.lock().unwrap();
        let rules = g.rules.clone();
        for rule in rules {
            match rule {
                Rule::RejectRcpt { needle, reply } if rcpt.contains(&needle) => return Some(reply),
                Rule::DeferRcpt {
                    needle,
                    reply,
                    times,
                } if rcpt.contains(&needle) => {
                    let n = g.counts.entry(rcpt.to_string()).or_insert(0);
                    if *n < times {
                        *n += 1;
                        return Some(reply);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn mail_reply(&self) -> Option<String> {
        let mut g = self.inner.lock().unwrap();
        let reply = g.rules.iter().find_map(|r| match r {
            Rule::RefuseAll { reply } => Some(reply.clone()),
            _ => None,
        });
        if reply.is_some() {
            g.refused_mails += 1;
        }
        reply
    }

    fn has_rule(&self, pred: impl Fn(&Rule) -> bool) -> bool {
        self.inner.lock().unwrap().rules.iter().any(pred)
    }

    async fn session(&self, tcp: TcpStream) -> std::io::Result<()> {
        let connection = {
            let mut g = self.inner.lock().unwrap();
            g.connections += 1;
            g.connections
        };
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 sink.test ESMTP\r\n").await?;
        let (mut from, mut rcpts) = (String::new(), Vec::new());
        let mut smtputf8 = false;
        let mut in_mail = false;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            let reply = if upper.starts_with("EHLO") {
                let pipelining = !self.has_rule(|r| matches!(r, Rule::NoPipelining));
                let utf8 = self.has_rule(|r| matches!(r, Rule::SmtpUtf8));
                format!(
                    "250-sink.test\r\n{}{}250-8BITMIME\r\n250 SIZE 100000000\r\n",
                    if pipelining { "250-PIPELINING\r\n" } else { "" },
                    if utf8 { "250-SMTPUTF8\r\n" } else { "" }
                )
            } else if upper.starts_with("HELO") {
                "250 sink.test\r\n".into()
            } else if upper.starts_with("MAIL FROM:") {
                rcpts.clear();
                match self.mail_reply() {
                    Some(reply) => {
                        in_mail = false;
                        format!("{reply}\r\n")
                    }
                    None => {
                        in_mail = true;
                        from = addr(&line);
                        smtputf8 = upper.contains("> SMTPUTF8");
                        "250 2.1.0 ok\r\n".into()
                    }
                }
            } else if upper.starts_with("RCPT TO:") && !in_mail {
                "503 5.5.1 MAIL first\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = addr(&line);
                match self.rcpt_reply(&rcpt) {
                    Some(reply) => format!("{reply}\r\n"),
                    None => {
                        rcpts.push(rcpt);
                        "250 2.1.5 ok\r\n".into()
                    }
                }
            } else if upper.starts_with("DATA") && rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else if upper.starts_with("DATA") {
                w.write_all(b"354 go ahead\r\n").await?;
                let data = read_data(&mut r).await?;
                {
                    let mut g = self.inner.lock().unwrap();
                    g.received.push(Received {
                        mail_from: from.clone(),
                        smtputf8,
                        rcpts: rcpts.clone(),
                        data,
                        at: Instant::now(),
                        connection,
                    });
                }
                self.notify.notify_waiters();
                in_mail = false;
                rcpts.clear();
                "250 2.0.0 queued\r\n".into()
            } else if upper.starts_with("RSET") {
                in_mail = false;
                rcpts.clear();
                "250 2.0.0 ok\r\n".into()
            } else if upper.starts_with("QUIT") {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else {
                "250 2.0.0 ok\r\n".into()
            };
            w.write_all(reply.as_bytes()).await?;
        }
    }
}

fn addr(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end.max(start)].to_string()
}

async fn read_data<R: tokio::io::AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> std::io::Result<String> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        r.read_exact(&mut byte).await?;
        data.push(byte[0]);
        if data.ends_with(b"\r\n.\r\n") || data == b".\r\n" {
            let keep = data.len().saturating_sub(3);
            data.truncate(keep);
            let text = String::from_utf8_lossy(&data).replace("\r\n..", "\r\n.");
            return Ok(text);
        }
    }
}
