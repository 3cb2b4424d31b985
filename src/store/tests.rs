//! The store over a real sled database in a temp dir: messages, members, suppression, reopen.

use super::*;

pub(super) fn message(rcpts: &[&str]) -> NewMessage {
    NewMessage {
        sender: "a@example.org".into(),
        recipients: rcpts
            .iter()
            .map(|r| NewRecipient {
                address: r.to_string(),
                notify: Some("FAILURE".into()),
                orcpt: None,
            })
            .collect(),
        message_id: Some("<m@x>".into()),
        origin: Origin::Inbound,
        client: "127.0.0.1".into(),
        dsn: DsnEnvelope::default(),
        body: b"Subject: t\r\n\r\nhi\r\n".to_vec(),
        list: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_list_reopen_delete() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let id = {
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let id = store.allocate_id();
        store
            .insert_message(id, message(&["x@y.org", "z@y.org"]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        id
    };
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let q = store.list_queue().unwrap_or_default();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].message.id, id);
    assert_eq!(q[0].deliveries.len(), 2);
    assert_eq!(q[0].deliveries[0].notify.as_deref(), Some("FAILURE"));
    assert!(store.allocate_id() > id, "ids stay unique across reopen");
    assert_eq!(
        store.get_body(id).unwrap().as_deref(),
        Some(&b"Subject: t\r\n\r\nhi\r\n"[..])
    );
    assert!(store.delete_message(id).await.unwrap_or(false));
    assert!(!store.delete_message(id).await.unwrap_or(true));
    assert_eq!(store.queue_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writers_share_flushes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let id = store.allocate_id();
                store.insert_message(id, message(&["r@x.org"])).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(store.queue_len(), 640);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_dropped_while_it_leads_a_flush_does_not_wedge_the_others() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..20 {
        let id = store.allocate_id();
        let writer = store.insert_message(id, message(&["r@x.org"]));
        // Polled once (it inserts and starts a flush), then dropped.
        let _ = tokio::time::timeout(std::time::Duration::ZERO, writer).await;
    }
    let id = store.allocate_id();
    let last = store.insert_message(id, message(&["r@x.org"]));
    tokio::time::timeout(std::time::Duration::from_secs(30), last)
        .await
        .unwrap_or_else(|_| panic!("the flush never finished"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.queue_len(), 21);
}

#[test]
fn queue_ids_round_trip() {
    let id = QueueId(0x0006_4A2B_1234_5678);
    assert_eq!(id.to_string(), "00064A2B12345678");
    assert_eq!("00064a2b12345678".parse::<QueueId>(), Ok(id));
    assert!("zz".parse::<QueueId>().is_err());
}

fn member(address: &str, status: MemberStatus) -> NewMember {
    NewMember {
        address: address.into(),
        name: None,
        status,
        consent: Consent {
            source: "test".into(),
            at: 0,
            ip: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_pages_status_and_expiry() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let added = store
        .add_members(
            "news",
            vec![
                member("B@x.test", MemberStatus::Confirmed),
                member("a@x.test", MemberStatus::Pending),
                member("b@x.test", MemberStatus::Pending),
                member("c@x.test", MemberStatus::Confirmed),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let how: Vec<Added> = added.iter().map(|(_, a)| *a).collect();
    // A pending sign-up never downgrades a confirmed member, even within one batch.
    assert_eq!(how, [Added::New, Added::New, Added::Unchanged, Added::New]);
    store
        .add_members("other", vec![member("a@x.test", MemberStatus::Confirmed)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (page, next) = store.members_page("news", None, 2).unwrap_or_default();
    let addrs: Vec<&str> = page.iter().map(|m| m.address.as_str()).collect();
    assert_eq!(addrs, ["a@x.test", "b@x.test"]);
    let (page, next) = store
        .members_page("news", next.as_deref(), 2)
        .unwrap_or_default();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].address, "c@x.test");
    assert!(next.is_none());

    let b = &added[0].0;
    assert_eq!(store.member_by_id(b.id).unwrap().as_ref(), Some(b));
    let changed = store
        .set_member_status(b.id, MemberStatus::Unsubscribed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changed.map(|m| m.status), Some(MemberStatus::Unsubscribed));
    assert_eq!(store.member_by_id(0).unwrap(), None);

    // Only pending members older than the cutoff go, with their id.
    let a = store.member("news", "a@x.test").unwrap();
    let gone = store
        .expire_pending(now_secs() + 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone, 1);
    assert_eq!(store.member("news", "a@x.test").unwrap(), None);
    assert_eq!(store.member_by_id(a.map_or(0, |m| m.id)).unwrap(), None);
    assert!(store.member("other", "a@x.test").unwrap().is_some());
    assert_eq!(store.members("news").unwrap_or_default().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_post_finishes_only_after_its_expansion() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let id = store.allocate_id();
    let mut msg = message(&["direct@y.org"]);
    msg.list = Some(ListPost {
        list: "news".into(),
        service: false,
    });
    store
        .insert_message(id, msg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.pending_expansions().unwrap_or_default(), [id]);
    assert_eq!(store.expansion_after(id).ok(), Some(Some(None)));
    let delivered = AttemptResult::Delivered {
        reply: "250".into(),
    };
    // The direct recipient is done, but the message stays: copies are still to come.
    let r = store
        .record_attempt(id, 0, &delivered)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.message_finished);
    let first = store
        .expand_batch(
            id,
            &[("m1@y.org".into(), 7)],
            Some(b"news\0m1@y.org"),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.added, 1);
    assert_eq!(
        store.expansion_after(id).ok(),
        Some(Some(Some(b"news\0m1@y.org".to_vec())))
    );
    let last = store
        .expand_batch(id, &[("m2@y.org".into(), 8)], None, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!last.message_finished);
    assert!(store.pending_expansions().unwrap_or_default().is_empty());
    let entry = store.get_message(id).unwrap();
    let d = entry.map(|e| e.deliveries).unwrap_or_default();
    let got: Vec<(u32, &str, Option<u64>)> = d
        .iter()
        .map(|d| (d.index, d.address.as_str(), d.member))
        .collect();
    assert_eq!(got, [(1, "m1@y.org", Some(7)), (2, "m2@y.org", Some(8))]);
    assert!(
        !store
            .record_attempt(id, 1, &delivered)
            .unwrap_or_else(|e| panic!("{e}"))
            .message_finished
    );
    assert!(
        store
            .record_attempt(id, 2, &delivered)
            .unwrap_or_else(|e| panic!("{e}"))
            .message_finished
    );
    assert!(store.get_message(id).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_rewrites_the_database_at_the_next_open_and_survives_an_interrupted_swap() {
    let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = top.path().join("db");
    {
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        store
            .add_members("news", vec![member("gone@x.test", MemberStatus::Confirmed)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .add_members("news", vec![member("kept@x.test", MemberStatus::Confirmed)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let done = store
            .forget("Gone@x.test")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.memberships, 1);
    }
    assert!(top.path().join("db.rewrite-pending").exists());
    {
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(store.member("news", "kept@x.test").unwrap().is_some());
        assert!(store.member("news", "gone@x.test").unwrap().is_none());
    }
    assert!(!top.path().join("db.rewrite-pending").exists());
    // Stopped between the two renames of a swap: the complete fresh copy is taken.
    std::fs::rename(&dir, top.path().join("db.rewrite")).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(store.member("news", "kept@x.test").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_read_as_errors_not_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.damage_suppression("Gone@X.test");
    assert!(store.suppressed("gone@x.test").is_err());
    store.damage_member("news", "m@x.test");
    assert!(store.member("news", "m@x.test").is_err());
}
