//! In-process tests of the SMTP server. Sessions run over `tokio::io::duplex` through the
//! listener's own start path (`listener::handle`), with a real sled store in a temp dir and
//! real rustls (a certificate rcgen makes, as on a first run); the verb handlers are
//! table-tested as pure calls on a `SessionState` and `Settings`.
//!
//! This module holds the shared pieces: the configuration, the test environment, a small SMTP
//! client, and a recorder that keeps each write the server makes (to see PIPELINING batches).

mod bdat;
mod client;
mod deadlines;
mod limits;
mod pipelining;
mod senders;
mod starttls;
mod verbs_auth;
mod verbs_data;
mod verbs_mail;
mod verbs_rcpt;

pub(super) use client::{Client, Reply};

use super::conns::{Budget, Refusal};
use super::state::{SessionState, Transaction};
use super::{Context, Role, listener};
use crate::config::{Config, List, ListKind, Settings, User};
use crate::store::{NewRecipient, QueueEntry, QueueId, Store};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) const HOST: &str = "mx.herald.test";
pub(super) const PASSWORD: &str = "alice-secret";
/// The client address of every test session.
pub(super) const PEER: &str = "192.0.2.10:40000";

fn user(name: &str, senders: &[&str], password_hash: &str) -> User {
    User {
        name: name.into(),
        password_hash: password_hash.into(),
        senders: senders.iter().map(|s| s.to_string()).collect(),
        may_send_service: false,
    }
}

fn list(id: &str, kind: ListKind, posters: &[&str]) -> List {
    List {
        id: id.into(),
        address: format!("{id}@lists.example.org"),
        name: id.into(),
        kind,
        posters: posters.iter().map(|s| s.to_string()).collect(),
        category: crate::config::Category::Marketing,
    }
}

/// The configuration every test starts from: host `mx.herald.test`, users `alice`
/// (`alice@example.org`) and `bob` (`*@bob.test`), bounce domain `bounces.example.org`, the
/// announce list `news` (posters: alice) and the discussion list `talk`.
pub(super) fn base_config(data_dir: &Path, password_hash: &str) -> Config {
    let mut c = Config {
        hostname: HOST.into(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    c.users = vec![
        user("alice", &["alice@example.org"], password_hash),
        user("bob", &["*@bob.test"], password_hash),
    ];
    c.domains.insert(
        "example.org".into(),
        crate::config::Domain {
            bounce_domain: Some("bounces.example.org".into()),
            ..Default::default()
        },
    );
    c.lists = vec![
        list("news", ListKind::Announce, &["alice"]),
        list("talk", ListKind::Discussion, &[]),
    ];
    c
}

/// The settings of [`base_config`] (no password will verify), for the handler tables.
pub(super) fn settings(edit: impl FnOnce(&mut Config)) -> Settings {
    let mut config = base_config(Path::new("/nonexistent"), "unused");
    edit(&mut config);
    Settings::new(config, None).expect("settings")
}

/// A session state as a handler sees it; the builders below put it where a row needs it.
pub(super) fn state(role: Role) -> SessionState {
    let peer: SocketAddr = PEER.parse().expect("peer");
    SessionState::new(role, peer, role == Role::Submissions, false)
}

/// A table row's starting state.
pub(super) type Fixture = fn() -> SessionState;

/// Builders for [`SessionState`] fixtures (table rows are `fn() -> SessionState`).
pub(super) trait Given: Sized {
    fn ehlo(self) -> Self;
    fn helo(self) -> Self;
    fn tls(self) -> Self;
    fn trusted(self) -> Self;
    fn user(self, name: &str) -> Self;
    fn mail(self, sender: &str) -> Self;
    fn rcpt(self, address: &str) -> Self;
}

impl Given for SessionState {
    fn ehlo(mut self) -> Self {
        self.helo = Some("client.test".into());
        self.esmtp = true;
        self
    }
    fn helo(mut self) -> Self {
        self.helo = Some("client.test".into());
        self.esmtp = false;
        self
    }
    fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    fn trusted(mut self) -> Self {
        self.trusted = true;
        self
    }
    fn user(mut self, name: &str) -> Self {
        self.user = Some(name.into());
        self
    }
    fn mail(mut self, sender: &str) -> Self {
        self.tx = Some(Transaction {
            sender: sender.into(),
            dsn: Default::default(),
            recipients: Vec::new(),
            chunks: None,
            chunk_error: None,
            list: None,
        });
        self
    }
    fn rcpt(mut self, address: &str) -> Self {
        let tx = self.tx.as_mut().expect("rcpt needs a transaction");
        tx.recipients.push(NewRecipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        });
        self
    }
}

/// One daemon's SMTP side, in process: a context over a store in a temp dir.
pub(super) struct Env {
    pub ctx: Arc<Context>,
    /// The certificate clients trust (rcgen's, self-signed for [`HOST`]).
    pub cert_pem: String,
    queued: Arc<Mutex<Vec<QueueId>>>,
    _dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    /// An environment whose configuration `edit` changed from [`base_config`].
    pub fn with(edit: impl FnOnce(&mut Config)) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = base_config(dir.path(), &password_hash(PASSWORD));
        edit(&mut config);
        let store = Store::open(&dir.path().join("db")).expect("store");
        let (tls, cert_pem) = acceptor();
        let queued = Arc::new(Mutex::new(Vec::new()));
        let on_queued = {
            let queued = queued.clone();
            Box::new(move |id| queued.lock().expect("queued").push(id))
        };
        let ctx = Context::for_test(config, store, tls, on_queued);
        Env {
            ctx: Arc::new(ctx),
            cert_pem,
            queued,
            _dir: dir,
        }
    }

    /// A new connection on `role`'s listener, started as the listener starts one.
    pub fn connect(&self, role: Role, trusted: bool) -> Client {
        let peer = PEER.parse().expect("peer");
        self.connect_from(role, peer, trusted).expect("admitted")
    }

    /// A new connection from `peer`, admitted (or refused) by the connection budgets as the
    /// listener admits one.
    pub fn connect_from(
        &self,
        role: Role,
        peer: SocketAddr,
        trusted: bool,
    ) -> Result<Client, Refusal> {
        let budget = Budget::of(&self.ctx.settings().config.limits);
        let admitted = self.ctx.conns.admit(role, peer.ip(), trusted, budget)?;
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (server, writes) = client::Recorder::new(theirs);
        let session = tokio::spawn(listener::handle(
            self.ctx.clone(),
            role,
            server,
            peer,
            trusted,
            admitted.slot,
        ));
        Ok(Client::new(ours, writes, session))
    }

    /// What `on_queued` was told, in order.
    pub fn queued(&self) -> Vec<QueueId> {
        self.queued.lock().expect("queued").clone()
    }

    /// The one message in the queue, with its stored bytes. Fails unless exactly one is there
    /// and `on_queued` was told of it.
    pub fn only_message(&self) -> (QueueEntry, Vec<u8>) {
        let queue = self.ctx.store.list_queue().expect("queue");
        assert_eq!(queue.len(), 1, "one message stored");
        let entry = queue.into_iter().next().expect("entry");
        assert_eq!(
            self.queued(),
            vec![entry.message.id],
            "on_queued told of it"
        );
        let body = self.ctx.store.get_body(entry.message.id).expect("body");
        (entry, body.expect("stored body").to_vec())
    }

    /// Nothing was stored and nothing announced.
    pub fn nothing_queued(&self) {
        assert_eq!(self.ctx.store.queue_len(), 0, "nothing stored");
        assert!(self.queued().is_empty(), "nothing announced");
    }
}

/// An argon2id hash of `password`, as `herald hash-password` makes one.
fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default().hash_password(password.as_bytes(), &salt);
    hash.expect("hash").to_string()
}

/// A rustls acceptor (aws-lc-rs, as the daemon's) over a fresh self-signed certificate for
/// [`HOST`], and that certificate's PEM for the clients.
fn acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    let pair = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).expect("certificate");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(pair.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pair.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    (acceptor, pair.cert.pem())
}

/// A generous bound on any one wait in a test that runs in real time.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

/// A short message with the header fields a submission needs none of (the session repairs).
pub(super) fn message(subject: &str) -> String {
    format!(
        "From: <alice@example.org>\r\nTo: <bob@remote.test>\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    )
}
