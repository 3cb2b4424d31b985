use super::*;

fn message(rcpts: &[&str]) -> NewMessage {
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
        store.get_body(id).ok().flatten().as_deref(),
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

#[test]
fn queue_ids_round_trip() {
    let id = QueueId(0x0006_4A2B_1234_5678);
    assert_eq!(id.to_string(), "00064A2B12345678");
    assert_eq!("00064a2b12345678".parse::<QueueId>(), Ok(id));
    assert!("zz".parse::<QueueId>().is_err());
}
