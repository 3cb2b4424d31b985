//! The worker and the outcome recorder over a real store (sled in a temp dir) with a real TCP
//! listener as the relay: a store error while deciding whether a recipient may get a message
//! defers it (nothing sent, nothing failed), and a local fault counts against nobody.

use super::outcome::{Report, apply};
use super::worker::{Job, deliver};
use super::{DeliveryContext, Keys};
use crate::config::{Category, Config, List, ListKind, Settings};
use crate::delivery::dkim::Signers;
use crate::delivery::mx::Resolver;
use crate::delivery::{Origin, Outcome, Reply, Status};
use crate::metrics::{Metrics, QueueGauges};
use crate::store::{
    Consent, DeliveryRecord, DeliveryState, ListPost, MemberStatus, NewMember, NewMessage,
    NewRecipient, QueueId, Store,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A relay that counts the connections it gets and closes each at once.
struct Relay {
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A delivery context over a fresh store, relaying to a [`Relay`], with one list (`news`).
struct Bench {
    ctx: Arc<DeliveryContext>,
    relay: Relay,
    _dir: tempfile::TempDir,
}

const LIST: &str = "news";

impl Bench {
    async fn new() -> Bench {
        let dir = ok(tempfile::tempdir());
        let store = ok(Store::open(dir.path()));
        let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await);
        let mut config = Config::default();
        config.delivery.relay = Some(ok(listener.local_addr()).to_string());
        // One soft bounce is enough to suppress: a bounce that is counted shows at once.
        config.bounce.soft_limit = 1;
        config.lists.push(List {
            id: LIST.into(),
            address: "news@example.org".into(),
            name: "News".into(),
            kind: ListKind::Announce,
            posters: vec![],
            category: Category::Marketing,
        });
        let settings = Arc::new(ok(Settings::new(config, None)));
        let (_, settings) = watch::channel(settings);
        let resolver = ok(Resolver::new(&[], 25));
        let keys = Keys {
            verp: [1; 32],
            list: [2; 32],
        };
        let metrics = Arc::new(Metrics::default());
        let stop = CancellationToken::new();
        let ctx = DeliveryContext::new(
            store,
            settings,
            resolver,
            Signers::default(),
            keys,
            metrics,
            stop,
        );
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Bench {
            ctx,
            relay: Relay { connections, task },
            _dir: dir,
        }
    }

    fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// A message from alice@example.org to `to` (none for a list post, whose copies the
    /// expansion adds).
    async fn queue(&self, to: &[&str], list: Option<&str>) -> QueueId {
        let id = self.store().allocate_id();
        let new = NewMessage {
            sender: "alice@example.org".into(),
            recipients: to
                .iter()
                .map(|a| NewRecipient {
                    address: a.to_string(),
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            message_id: Some("<m@example.org>".into()),
            origin: crate::store::Origin::Trusted,
            client: "127.0.0.1".into(),
            dsn: Default::default(),
            body: b"From: alice@example.org\r\nSubject: t\r\n\r\nhi\r\n".to_vec(),
            list: list.map(|l| ListPost {
                list: l.into(),
                service: false,
            }),
        };
        ok(self.store().insert_message(id, new).await);
        id
    }

    /// A post to the list with one copy, for `member` (a confirmed member).
    async fn list_copy(&self, member: &str) -> QueueId {
        let added = ok(self
            .store()
            .add_members(
                LIST,
                vec![NewMember {
                    address: member.into(),
                    name: None,
                    status: MemberStatus::Confirmed,
                    consent: Consent {
                        source: "admin: test".into(),
                        at: crate::store::now_secs(),
                        ip: None,
                    },
                }],
            )
            .await);
        let member_id = added.first().map_or(0, |(m, _)| m.id);
        let id = self.queue(&[], Some(LIST)).await;
        ok(self
            .store()
            .expand_batch(id, &[(member.into(), member_id)], None, true));
        id
    }

    fn deliveries(&self, id: QueueId) -> Vec<DeliveryRecord> {
        ok(self.store().get_message(id)).map_or_else(Vec::new, |e| e.deliveries)
    }

    /// Runs the worker's delivery of every queued recipient of `id`, as one job.
    async fn deliver(&self, id: QueueId) {
        let job = Job {
            id,
            recipients: self.deliveries(id),
        };
        assert!(!job.recipients.is_empty(), "nothing queued for {id}");
        let mut conn = None;
        deliver(&self.ctx, "remote.test", 1, &mut conn, job).await;
    }

    fn bounces(&self) -> (u64, u64) {
        let s = self
            .ctx
            .metrics
            .snapshot(Some(QueueGauges::default()), &BTreeMap::new());
        (s.bounced.hard, s.bounced.soft)
    }
}

/// The one delivery of `id` is still queued, deferred by a local `4.3.0`, and the relay never
/// saw a connection.
fn assert_deferred_unsent(bench: &Bench, id: QueueId, case: &str) {
    let d = bench.deliveries(id);
    assert_eq!(d.len(), 1, "{case}: the delivery is still queued: {d:?}");
    assert_eq!(d[0].state, DeliveryState::Deferred, "{case}: {d:?}");
    let reply = d[0].last_reply.as_deref().unwrap_or_default();
    assert!(reply.starts_with("451 4.3.0 "), "{case}: {reply}");
    assert_eq!(
        bench.relay.connections.load(Ordering::SeqCst),
        0,
        "{case}: something was sent"
    );
    assert_eq!(
        bench.bounces(),
        (0, 0),
        "{case}: a store fault counted as a bounce"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_suppression_lookup_defers_and_sends_nothing() {
    let bench = Bench::new().await;
    let id = bench.queue(&["x@remote.test"], None).await;
    bench.store().damage_suppression("x@remote.test");
    bench.deliver(id).await;
    assert_deferred_unsent(&bench, id, "direct recipient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_copy_whose_suppression_lookup_fails_is_deferred() {
    let bench = Bench::new().await;
    let id = bench.list_copy("reader@remote.test").await;
    bench.store().damage_suppression("reader@remote.test");
    bench.deliver(id).await;
    assert_deferred_unsent(&bench, id, "list copy, suppression damaged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_copy_whose_member_lookup_fails_is_deferred_not_dropped() {
    let bench = Bench::new().await;
    let id = bench.list_copy("reader@remote.test").await;
    bench.store().damage_member(LIST, "reader@remote.test");
    bench.deliver(id).await;
    assert_deferred_unsent(&bench, id, "list copy, member damaged");
}

/// The same permanent failure, `554 5.3.0`, for two recipients: the remote one is classified
/// and (with `soft_limit = 1`) suppressed; the local one only fails, with a DSN to the sender
/// that names it as Herald's own (`x-herald`), and counts against nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_failure_tells_the_sender_and_counts_no_bounce() {
    let bench = Bench::new().await;
    let id = bench
        .queue(&["local@remote.test", "remote@remote.test"], None)
        .await;
    let d = bench.deliveries(id);
    let damaged = Reply::new(554, Status::new(5, 3, 0), "the queued message is damaged");
    let settings = bench.ctx.settings();
    let Some(msg) = ok(bench.store().message(id)) else {
        panic!("no message {id}")
    };
    let mut report = Report::default();
    let outcomes = vec![(&d[0], Outcome::permanent(Origin::Local, damaged.clone()))];
    apply(&bench.ctx, &settings, &msg, b"", outcomes, &mut report).await;
    assert_eq!(
        bench.deliveries(id).len(),
        1,
        "the local failure is recorded"
    );
    assert_eq!(
        bench.bounces(),
        (0, 0),
        "a local failure counted as a bounce"
    );
    assert!(ok(bench.store().suppressed("local@remote.test")).is_none());
    let queue = ok(bench.store().list_queue());
    let dsns: Vec<_> = queue
        .iter()
        .filter(|e| e.message.sender.is_empty())
        .collect();
    assert_eq!(dsns.len(), 1, "one DSN to the sender");
    assert_eq!(dsns[0].deliveries[0].address, "alice@example.org");
    let body = ok(bench.store().get_body(dsns[0].message.id)).map(|b| b.to_vec());
    let body = body.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Status: 5.3.0"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: x-herald; 554 5.3.0 the queued message is damaged"),
        "{text}"
    );

    let outcomes = vec![(&d[1], Outcome::permanent(Origin::Remote, damaged))];
    apply(&bench.ctx, &settings, &msg, b"", outcomes, &mut report).await;
    assert_eq!(
        bench.bounces(),
        (0, 1),
        "the remote failure is a soft bounce"
    );
    assert!(ok(bench.store().suppressed("remote@remote.test")).is_some());
}

/// One connector per settings generation: the same settings give the same connector, a
/// reload (a new `Arc<Settings>`) a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_is_built_once_per_settings_generation() {
    let bench = Bench::new().await;
    let settings = bench.ctx.settings();
    let first = ok(bench.ctx.connector(&settings));
    let again = ok(bench.ctx.connector(&bench.ctx.settings()));
    assert!(Arc::ptr_eq(&first, &again), "rebuilt for the same settings");
    let reloaded = Arc::new(Settings::clone(&settings));
    let fresh = ok(bench.ctx.connector(&reloaded));
    assert!(!Arc::ptr_eq(&first, &fresh), "kept across a reload");
    assert!(Arc::ptr_eq(&fresh, &ok(bench.ctx.connector(&reloaded))));
}

/// An envelope that cannot be read leaves nothing to record an attempt against: its
/// deliveries are put off by a minute (not picked up again at once, in a loop), and nothing
/// is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_envelope_puts_its_deliveries_off_and_sends_nothing() {
    let bench = Bench::new().await;
    let id = bench.queue(&["x@remote.test"], None).await;
    let job = Job {
        id,
        recipients: bench.deliveries(id),
    };
    bench.store().damage_message(id);
    let now = crate::store::now_secs();
    deliver(&bench.ctx, "remote.test", 1, &mut None, job).await;
    let (due, next) = ok(bench.store().due(now + 30, 10, |_, _| false));
    assert!(due.is_empty(), "still due at once: {due:?}");
    assert!(next.is_some_and(|t| t >= now + 55), "next attempt {next:?}");
    assert_eq!(bench.relay.connections.load(Ordering::SeqCst), 0);
}
