//! The expander and housekeeping as tasks: over a real store in a temp dir, under tokio's
//! paused clock where time matters.

use super::{expand, housekeeping};
use crate::config::{Category, Config, List, ListKind, Settings};
use crate::store::{
    Consent, ListPost, MemberStatus, NewMember, NewMessage, Origin, QueueId, Store, now_secs,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn settings() -> watch::Receiver<Arc<Settings>> {
    let mut config = Config::default();
    config.lists.push(List {
        id: "news".into(),
        address: "news@example.org".into(),
        name: "News".into(),
        kind: ListKind::Announce,
        posters: vec!["alice".into()],
        category: Category::Marketing,
    });
    let settings = Settings::new(config, None).unwrap();
    watch::channel(Arc::new(settings)).1
}

async fn add(store: &Store, address: &str, status: MemberStatus) {
    let member = NewMember {
        address: address.into(),
        name: None,
        status,
        consent: Consent {
            source: "test".into(),
            at: now_secs(),
            ip: None,
        },
    };
    store.add_members("news", vec![member]).await.unwrap();
}

async fn post(store: &Store) -> QueueId {
    let id = store.allocate_id();
    let msg = NewMessage {
        sender: "alice@example.org".into(),
        recipients: Vec::new(),
        message_id: None,
        origin: Origin::Submission {
            user: "alice".into(),
        },
        client: "127.0.0.1".into(),
        dsn: Default::default(),
        body: b"Subject: news\r\n\r\nhello\r\n".to_vec(),
        list: Some(ListPost {
            list: "news".into(),
            service: false,
        }),
    };
    store.insert_message(id, msg).await.unwrap();
    id
}

/// A member whose suppression entry cannot be read gets no guessed copy: the whole batch is
/// abandoned, nothing of it written, and the expansion stays pending; once the entry reads
/// again, every member gets their copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_aborts_the_batch_and_the_expansion_stays_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for m in ["a@x.test", "b@x.test", "c@x.test"] {
        add(&store, m, MemberStatus::Confirmed).await;
    }
    let id = post(&store).await;
    store.damage_suppression("b@x.test");
    let (settings, stop) = (settings().borrow().clone(), CancellationToken::new());

    let first = expand::expand(&store, &settings, id, &|| {}, &stop).await;
    assert!(first.is_err(), "{first:?}");
    let entry = store.get_message(id).unwrap().unwrap();
    assert!(entry.deliveries.is_empty(), "{:?}", entry.deliveries);
    assert_eq!(store.pending_expansions().unwrap(), vec![id]);

    assert!(store.unsuppress("b@x.test").await.unwrap());
    expand::expand(&store, &settings, id, &|| {}, &stop)
        .await
        .unwrap();
    let entry = store.get_message(id).unwrap().unwrap();
    let mut to: Vec<_> = entry.deliveries.iter().map(|d| d.address.clone()).collect();
    to.sort();
    assert_eq!(to, ["a@x.test", "b@x.test", "c@x.test"]);
    assert!(store.pending_expansions().unwrap().is_empty());
}

/// On a busy server the expander is woken all the time; housekeeping still runs every hour.
/// Here it is woken every simulated minute: a sign-up left pending for 8 days and a VERP
/// record older than the bounce window are gone once the hour is over, not before.
#[tokio::test(start_paused = true)]
async fn housekeeping_runs_hourly_while_the_expander_is_woken_every_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (settings, stop) = (settings(), CancellationToken::new());
    let wake = expand::Wake::default();
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(expand::run(
        store.clone(),
        settings.clone(),
        wake.clone(),
        || {},
        stop.clone(),
    ));
    tasks.spawn(housekeeping::run(store.clone(), settings, stop.clone()));
    // Let the first round, at start-up, pass: it prunes this record.
    store.remember_return(QueueId(1), 0, "old@x.test").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.returned_address(QueueId(1), 0).unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "no first round");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    add(&store, "late@x.test", MemberStatus::Pending).await;
    store.backdate_member("news", "late@x.test", 8 * 24 * 3600);
    store.remember_return(QueueId(2), 0, "old@x.test").unwrap();
    let present = |s: &Store| s.member("news", "late@x.test").unwrap().is_some();
    for minute in 1..=65 {
        wake.notify();
        tokio::time::sleep(Duration::from_secs(60)).await;
        if minute == 58 {
            assert!(present(&store), "expired before the hour was over");
        }
    }
    assert!(!present(&store), "the pending sign-up was not expired");
    assert_eq!(store.returned_address(QueueId(2), 0).unwrap(), None);
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}
