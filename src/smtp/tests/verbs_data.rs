//! Table tests of DATA's and BDAT's pre-checks and of a BDAT chunk's answer, as pure calls:
//! (state, command) → (reply, what the session reads next, the refusal kept for the end).

use super::{Fixture, Given, settings, state};
use crate::config::ByteSize;
use crate::smtp::Role::Inbound;
use crate::smtp::body::ChunkReceiver;
use crate::smtp::data;
use crate::smtp::state::{Next, SessionState};

fn open() -> SessionState {
    state(Inbound)
        .ehlo()
        .mail("s@remote.test")
        .rcpt("postmaster@mx.herald.test")
}

/// A transaction with `n` bytes of BDAT chunks already read.
fn chunked(n: usize) -> SessionState {
    let mut st = open();
    if let Some(tx) = st.tx.as_mut() {
        let mut chunks = ChunkReceiver::new(100);
        chunks.feed(&vec![b'x'; n]);
        tx.chunks = Some(chunks);
    }
    st
}

#[test]
fn data_table() {
    let list_only = || {
        let mut st = state(Inbound).ehlo().mail("carol@remote.test");
        if let Some(tx) = st.tx.as_mut() {
            tx.list = Some("talk".into());
        }
        st
    };
    #[rustfmt::skip]
    let rows: [(&str, Fixture, u16, &str, Next); 5] = [
        ("no MAIL", || state(Inbound).ehlo(), 503, "5.5.1", Next::Continue),
        ("no RCPT", || state(Inbound).ehlo().mail("s@remote.test"), 554, "5.5.1", Next::Continue),
        ("after BDAT", || chunked(0), 503, "5.5.1", Next::Continue),
        ("a recipient", open, 354, "", Next::ReadData),
        ("a list only", list_only, 354, "", Next::ReadData),
    ];
    for (name, st, code, status, next) in rows {
        let step = data::data(&st());
        assert_eq!(
            (step.reply.code, step.reply.status, step.next),
            (code, status, next),
            "{name}"
        );
    }
}

type BdatRow = (
    &'static str,
    Fixture,
    u64,
    Option<(u16, &'static str)>,
    (u16, &'static str),
);

/// `BDAT size` with a 100-byte limit: (state, size) → (refusal kept, answer after the chunk).
/// The chunk is always read (`Next::ReadChunk`), refused or not.
#[test]
fn bdat_table() {
    let settings = settings(|c| c.limits.max_message_size = ByteSize(100));
    let no_rcpt = || state(Inbound).ehlo().mail("s@remote.test");
    #[rustfmt::skip]
    let rows: &[BdatRow] = &[
        ("no MAIL", || state(Inbound).ehlo(), 10, None, (503, "5.5.1")),
        ("no RCPT", no_rcpt, 10, Some((554, "5.5.1")), (554, "5.5.1")),
        ("no RCPT and too big", no_rcpt, 101, Some((554, "5.5.1")), (554, "5.5.1")),
        ("empty", open, 0, None, (250, "2.0.0")),
        ("at the limit", open, 100, None, (250, "2.0.0")),
        ("over the limit", open, 101, Some((552, "5.3.4")), (552, "5.3.4")),
        ("never fits", open, u64::MAX, Some((552, "5.3.4")), (552, "5.3.4")),
        ("60 read, 40 more", || chunked(60), 40, None, (250, "2.0.0")),
        ("60 read, 41 more", || chunked(60), 41, Some((552, "5.3.4")), (552, "5.3.4")),
    ];
    for (name, st, size, kept, ack) in rows {
        for last in [false, true] {
            let mut st = st();
            let step = data::bdat(&mut st, &settings, *size, last);
            assert_eq!(step.next, Next::ReadChunk { size: *size, last }, "{name}");
            let error = st.tx.as_ref().and_then(|t| t.chunk_error.as_ref());
            let error = error.map(|r| (r.code, r.status));
            assert_eq!(error, *kept, "{name}: refusal kept for the end");
            let reply = data::chunk_ack(&st, *size);
            assert_eq!((reply.code, reply.status), *ack, "{name}: chunk answer");
            assert!(reply.rejection.is_none(), "{name}: counted only at the end");
            if reply.code == 250 {
                assert_eq!(reply.lines, [format!("{size} octets received")], "{name}");
            }
        }
    }
}
