//! DATA and BDAT content readers: dot-unstuffing, the CRLF.CRLF end, bare LF/CR, size caps.

use super::*;

fn data(input: &[u8]) -> (Option<usize>, Received) {
    let mut r = DataReceiver::new(1 << 20);
    let done = r.feed(input);
    (done, r.finish())
}

#[test]
fn ends_only_on_crlf_dot_crlf() {
    let (done, got) = data(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
    assert_eq!(done, Some(24));
    assert_eq!(got.body, b"Subject: x\r\n\r\nhello\r\n");
    assert!(!got.bare_newline);

    // Smuggling variants never end the message and are flagged.
    for input in [
        &b"a\r\n\n.\nMAIL FROM:<x@y>\r\n"[..],
        b"a\n.\r\nMAIL FROM:<x@y>\r\n",
        b"a\r.\rMAIL FROM:<x@y>\r\n",
        b"a\r\n.\rMAIL FROM:<x@y>\r\n",
        b"a\n.\nb\r\n",
    ] {
        let (done, got) = data(input);
        assert_eq!(done, None, "{}", String::from_utf8_lossy(input));
        assert!(got.bare_newline, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn empty_message_and_unstuffing() {
    assert_eq!(data(b".\r\n").0, Some(3));
    let (done, got) = data(b"..leading\r\n.x\r\n.\r\n");
    assert!(done.is_some());
    assert_eq!(got.body, b".leading\r\nx\r\n");
}

#[test]
fn split_across_feeds() {
    let input = b"line one\r\n..two\r\n.\r\nNOOP\r\n";
    for split in 0..input.len() {
        let mut r = DataReceiver::new(1 << 20);
        let first = r.feed(&input[..split]);
        let total = match first {
            Some(n) => n,
            None => split + r.feed(&input[split..]).unwrap_or(usize::MAX - split),
        };
        assert_eq!(total, 20, "split at {split}");
        assert_eq!(r.finish().body, b"line one\r\n.two\r\n");
    }
}

#[test]
fn oversize_keeps_consuming() {
    let mut r = DataReceiver::new(10);
    assert_eq!(r.feed(b"0123456789abcdef\r\n"), None);
    assert_eq!(r.feed(b".\r\n"), Some(3));
    let got = r.finish();
    assert!(got.oversize);
    assert_eq!(got.size, 18);
}

#[test]
fn chunks() {
    let mut c = ChunkReceiver::new(100);
    c.feed(b"a\r");
    c.feed(b"\nb\r\n");
    let got = c.finish();
    assert!(!got.bare_newline);
    assert_eq!(got.body, b"a\r\nb\r\n");
    for bad in [&b"a\nb"[..], b"a\rb", b"a\r"] {
        let mut c = ChunkReceiver::new(100);
        c.feed(bad);
        assert!(c.finish().bare_newline);
    }
    let mut c = ChunkReceiver::new(3);
    c.feed(b"abcd");
    assert!(c.finish().oversize);
}

/// Fixed (issue 13): NUL bytes went through to the store and on to other servers raw.
#[test]
fn nul_bytes_are_flagged() {
    for input in [&b"a\0b\r\n.\r\n"[..], b"\0\r\n.\r\n", b"..\0\r\n.\r\n"] {
        let (done, got) = data(input);
        assert!(done.is_some(), "{input:?}");
        assert!(got.nul, "{input:?}");
    }
    assert!(!data(b"a0b\r\n.\r\n").1.nul);
    let mut c = ChunkReceiver::new(100);
    c.feed(b"abc\r\n");
    c.feed(b"x\0");
    assert!(c.finish().nul);
    let mut c = ChunkReceiver::new(100);
    c.feed(b"abc\r\n");
    assert!(!c.finish().nul);
}
