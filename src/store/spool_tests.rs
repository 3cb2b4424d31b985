//! The body spool: round trips, checksums, which segments survive a start, deletion after sync, compaction.

use super::super::tests::message;
use super::super::{AttemptResult, Store};
use super::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn segments(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = ok(std::fs::read_dir(dir))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn bodies_round_trip_and_a_damaged_one_fails_its_checksum() {
    let dir = ok(tempfile::tempdir());
    let spool = ok(Spool::open(dir.path(), std::iter::empty()));
    let bodies: Vec<Vec<u8>> = (0..3u8)
        .map(|n| vec![b'a' + n; 1000 + n as usize])
        .collect();
    let refs: Vec<BodyRef> = bodies.iter().map(|b| ok(spool.append(b))).collect();
    for (r, b) in refs.iter().zip(&bodies) {
        assert_eq!(BodyRef::decode(&r.encode()), Some(*r));
        assert_eq!(&ok(spool.read(*r)), b);
    }
    assert_eq!(BodyRef::decode(&[0u8; 19]), None);
    let file = ok(std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), refs[1].segment)));
    ok(file.write_all_at(b"X", refs[1].offset + 10));
    assert!(matches!(
        spool.read(refs[1]),
        Err(SpoolError::Checksum { .. })
    ));
    assert_eq!(&ok(spool.read(refs[2])), &bodies[2]);
}

#[test]
fn opening_keeps_referenced_segments_only_and_writes_a_fresh_one() {
    let dir = ok(tempfile::tempdir());
    let kept = {
        let spool = ok(Spool::open_sized(dir.path(), std::iter::empty(), 100));
        let _first = ok(spool.append(&[1; 80]));
        let kept = ok(spool.append(&[2; 80]));
        let _third = ok(spool.append(&[3; 80]));
        assert_eq!(segments(dir.path()), vec![1, 2, 3]);
        kept
    };
    let spool = ok(Spool::open_sized(dir.path(), [kept].into_iter(), 100));
    assert_eq!(segments(dir.path()), vec![2, 4]);
    assert_eq!(ok(spool.read(kept)), vec![2; 80]);
    assert_eq!(ok(spool.append(&[4; 10])).segment, 4);
}

#[test]
fn a_spent_segment_is_deleted_only_after_the_sync_that_follows() {
    let dir = ok(tempfile::tempdir());
    let spool = ok(Spool::open_sized(dir.path(), std::iter::empty(), 100));
    let a = ok(spool.append(&[1; 80]));
    let b = ok(spool.append(&[2; 80]));
    assert_eq!((a.segment, b.segment), (1, 2));
    // The segment being written is not spent while it is written.
    spool.release(b);
    assert_eq!(ok(spool.sync()), Vec::<u32>::new());
    spool.release(a);
    assert_eq!(segments(dir.path()), vec![1, 2]);
    let spent = ok(spool.sync());
    assert_eq!(spent, vec![1]);
    assert_eq!(segments(dir.path()), vec![1, 2], "not before the flush");
    spool.delete(&spent);
    assert_eq!(segments(dir.path()), vec![2]);
    // Closing segment 2 (empty by now) spends it too.
    let c = ok(spool.append(&[3; 80]));
    assert_eq!(c.segment, 3);
    assert_eq!(ok(spool.sync()), vec![2]);
}

#[test]
fn a_closed_segment_under_a_quarter_full_is_sparse() {
    let dir = ok(tempfile::tempdir());
    let spool = ok(Spool::open_sized(dir.path(), std::iter::empty(), 1000));
    let refs: Vec<BodyRef> = (0..6).map(|_| ok(spool.append(&[7; 200]))).collect();
    assert_eq!(refs[4].segment, 1);
    assert_eq!(refs[5].segment, 2);
    for r in &refs[..3] {
        spool.release(*r);
    }
    assert!(spool.sparse().is_empty(), "400 of 1000 bytes live");
    spool.release(refs[3]);
    assert_eq!(spool.sparse(), [1].into_iter().collect());
    spool.release(refs[5]);
    assert_eq!(
        spool.sparse(),
        [1].into_iter().collect(),
        "never the current one"
    );
}

/// Through the store: bodies survive a reopen, compaction moves the last bodies out of a
/// sparse segment, and the segment is deleted after the next flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_compacts_a_sparse_segment_and_deletes_it_after_a_flush() {
    let dir = ok(tempfile::tempdir());
    let spool_dir = dir.path().join(DIR);
    let mut ids = Vec::new();
    {
        let store = ok(Store::open(dir.path()));
        // 1 MiB bodies: segment 1 takes 16, the 17th starts segment 2.
        for n in 0..17u8 {
            let mut msg = message(&["x@y.org"]);
            msg.body = vec![b'a' + n; 1 << 20];
            let id = store.allocate_id();
            ok(store.insert_message(id, msg).await);
            ids.push(id);
        }
        assert_eq!(segments(&spool_dir), vec![1, 2]);
    }
    let store = ok(Store::open(dir.path()));
    assert_eq!(segments(&spool_dir), vec![1, 2, 3]);
    let delivered = AttemptResult::Delivered {
        reply: "250 ok".into(),
    };
    for &id in &ids[..12] {
        assert!(ok(store.record_attempt(id, 0, &delivered)).message_finished);
    }
    // Segment 2 holds 1 MiB of 16: sparse. Segment 1 still has 4 MiB live: not.
    assert_eq!(ok(store.compact_spool()), 1);
    assert_eq!(segments(&spool_dir), vec![1, 2, 3], "not before the flush");
    ok(store.durable().await);
    assert_eq!(segments(&spool_dir), vec![1, 3]);
    ok(store.record_attempt(ids[12], 0, &delivered));
    assert_eq!(ok(store.compact_spool()), 3);
    ok(store.durable().await);
    assert_eq!(segments(&spool_dir), vec![3]);
    for (n, &id) in ids.iter().enumerate().skip(13) {
        let body = ok(store.get_body(id)).unwrap_or_else(|| panic!("body {n}"));
        assert_eq!(&body[..], &vec![b'a' + n as u8; 1 << 20][..]);
    }
    drop(store);
    let store = ok(Store::open(dir.path()));
    assert_eq!(ok(store.get_body(ids[16])).map(|b| b.len()), Some(1 << 20));
}

/// A small body is stored inline (no spool segment to sync), a large one in the spool; both
/// are read back and removed with their message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_bodies_are_inline_large_ones_spooled() {
    let dir = ok(tempfile::tempdir());
    let store = ok(Store::open(dir.path()));
    let (small, large) = (store.allocate_id(), store.allocate_id());
    ok(store.insert_message(small, message(&["x@y.org"])).await);
    let mut big = message(&["x@y.org"]);
    big.body = vec![b'b'; (16 << 10) + 1];
    ok(store.insert_message(large, big).await);
    let (bodies, spooled) = {
        let i = ok(store.inner());
        (i.bodies.clone(), i.spooled.clone())
    };
    assert_eq!((bodies.len(), spooled.len()), (1, 1));
    assert!(ok(bodies.get(small.0.to_be_bytes())).is_some());
    assert!(ok(spooled.get(large.0.to_be_bytes())).is_some());
    let body = ok(store.get_body(small));
    assert_eq!(body.as_deref(), Some(&b"Subject: t\r\n\r\nhi\r\n"[..]));
    assert_eq!(
        ok(store.get_body(large)).map(|b| b.len()),
        Some((16 << 10) + 1)
    );
    assert!(ok(store.delete_message(small).await));
    assert!(ok(store.delete_message(large).await));
    assert!(ok(store.get_body(small)).is_none());
    assert!(ok(store.get_body(large)).is_none());
    assert_eq!((bodies.len(), spooled.len()), (0, 0));
}

/// One undecodable body reference stops the start, naming its message, and deletes nothing:
/// skipping it would let start-up delete the segment and every body in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_reference_refuses_the_start_and_keeps_the_segment() {
    let dir = ok(tempfile::tempdir());
    let (bad, good) = {
        let store = ok(Store::open(dir.path()));
        let (bad, good) = (store.allocate_id(), store.allocate_id());
        for id in [bad, good] {
            let mut big = message(&["x@y.org"]);
            big.body = vec![b'b'; (16 << 10) + 1];
            ok(store.insert_message(id, big).await);
        }
        store.damage_body_ref(bad);
        ok(store.durable().await);
        (bad, good)
    };
    let spool_dir = dir.path().join(DIR);
    let before = segments(&spool_dir);
    let err = match Store::open(dir.path()) {
        Ok(_) => panic!("a store with a bad body reference opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&bad.to_string()), "{err}");
    assert!(err.contains("spooled"), "{err}");
    assert_eq!(segments(&spool_dir), before, "no segment deleted");
    // The good body is still in its segment, byte for byte.
    let found = before.iter().any(|&n| {
        std::fs::read(segment_path(&spool_dir, n))
            .is_ok_and(|b| b.windows(64).any(|w| w == [b'b'; 64]))
    });
    assert!(found, "the segment holding {good} is still there");
}

/// A backup and the rewrite after a forget copy spooled bodies inline: the copy is one sled
/// database, and the rewritten database starts with an empty spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_take_spooled_bodies_inline() {
    let dir = ok(tempfile::tempdir());
    let db = dir.path().join("db");
    let store = ok(Store::open(&db));
    let id = store.allocate_id();
    let mut big = message(&["keep@x.org"]);
    big.body = vec![b'k'; 100_000];
    ok(store.insert_message(id, big).await);
    let copy_dir = dir.path().join("copy");
    let counts = ok(store.snapshot(&copy_dir));
    assert_eq!(counts.get("bodies"), Some(&1));
    assert_eq!(counts.get("spooled"), Some(&0));
    {
        let copy = ok(Store::open(&copy_dir));
        assert_eq!(ok(copy.counts()), counts);
        let body = ok(copy.get_body(id)).map(|b| b.to_vec());
        assert_eq!(body, Some(vec![b'k'; 100_000]));
    }
    ok(store.forget("gone@x.org").await);
    drop(store);
    let store = ok(Store::open(&db));
    assert_eq!(ok(store.get_body(id)).map(|b| b.len()), Some(100_000));
    assert!(ok(store.inner()).spooled.is_empty());
    assert_eq!(segments(&db.join(DIR)), vec![1]);
}
