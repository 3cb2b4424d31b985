//! Message content receivers (`DATA` and `BDAT`), fed the input in pieces.
//!
//! Input layout: byte 0 picks the size limit, bytes 1-2 the first split point, byte 3 the size
//! of the pieces after it (0: the rest in one piece); the remaining bytes are the stream.
//! Checked against simple reference implementations: where the end marker is found, what counts
//! as a bare LF / bare CR, dot-unstuffing, size accounting and the size limit.
#![no_main]

use herald::smtp::body::{ChunkReceiver, DataReceiver};
use libfuzzer_sys::fuzz_target;

const END: &[u8] = b"\r\n.\r\n";

/// Where the `DATA` content ends: just past the first `CRLF.CRLF`, or past a leading `.CRLF`.
fn reference_end(input: &[u8]) -> Option<usize> {
    if input.starts_with(b".\r\n") {
        return Some(3);
    }
    input
        .windows(END.len())
        .position(|w| w == END)
        .map(|i| i + END.len())
}

/// A LF not preceded by CR, or a CR not followed by LF. A CR at the very end counts only when
/// `trailing_cr_counts` (the next byte could still be its LF).
fn has_bare_newline(s: &[u8], trailing_cr_counts: bool) -> bool {
    s.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || s[i - 1] != b'\r',
        b'\r' => match s.get(i + 1) {
            Some(&next) => next != b'\n',
            None => trailing_cr_counts,
        },
        _ => false,
    })
}

/// Content (without the final `.CRLF`) of a message with only CRLF line endings, unstuffed.
fn unstuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut line_start = true;
    for (i, &b) in content.iter().enumerate() {
        if !(line_start && b == b'.') {
            out.push(b);
        }
        line_start = b == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    out
}

fn pieces(input: &[u8], first: usize, stride: usize) -> Vec<&[u8]> {
    let (head, rest) = input.split_at(first);
    let mut out = vec![head];
    if stride == 0 || rest.is_empty() {
        out.push(rest);
    } else {
        out.extend(rest.chunks(stride));
    }
    out
}

fn check_data(input: &[u8], parts: &[&[u8]], max: usize) {
    let mut r = DataReceiver::new(max);
    let mut offset = 0;
    let mut end = None;
    for part in parts {
        if let Some(consumed) = r.feed(part) {
            assert!(
                consumed <= part.len(),
                "consumed {consumed} of {}",
                part.len()
            );
            end = Some(offset + consumed);
            break;
        }
        offset += part.len();
    }
    let got = r.finish();

    assert_eq!(end, reference_end(input), "end marker position");
    let seen = match end {
        Some(e) => {
            assert!(e <= input.len());
            let upto = &input[..e];
            assert!(
                upto.ends_with(END) || (e == 3 && upto == b".\r\n"),
                "ended without CRLF.CRLF: {upto:?}"
            );
            upto
        }
        None => input,
    };

    assert!(got.body.len() <= max, "body {} > max {max}", got.body.len());
    assert!(got.size >= got.body.len() as u64);
    assert!(got.size <= seen.len() as u64);
    if got.oversize {
        assert!(got.size > max as u64);
    } else {
        assert_eq!(got.size, got.body.len() as u64);
    }

    assert_eq!(
        got.bare_newline,
        has_bare_newline(seen, false),
        "bare newline flag for {seen:?}"
    );
    if !got.bare_newline {
        assert!(
            !has_bare_newline(&got.body, true),
            "bare newline in body {:?} although not flagged",
            got.body
        );
    }
    if let (Some(e), false, false) = (end, got.bare_newline, got.oversize) {
        assert_eq!(got.body, unstuff(&input[..e - 3]));
        assert!(got.body.is_empty() || got.body.ends_with(b"\r\n"));
    }
}

fn check_chunks(input: &[u8], parts: &[&[u8]], max: usize) {
    let mut c = ChunkReceiver::new(max);
    let mut total = 0u64;
    for part in parts {
        c.feed(part);
        total += part.len() as u64;
        assert_eq!(c.size(), total);
    }
    let got = c.finish();
    assert_eq!(got.size, input.len() as u64);
    assert!(got.body.len() <= max, "body {} > max {max}", got.body.len());
    assert_eq!(got.bare_newline, has_bare_newline(input, true));
    if got.oversize {
        // Chunks past the limit are dropped whole, so a truncated body can hold a CR whose LF
        // was dropped (e.g. limit 1, chunks "\r" and "\n"). Harmless: an oversize message is
        // refused before its body is looked at.
        assert!(got.size > max as u64);
    } else {
        assert_eq!(got.body, input);
        if !got.bare_newline {
            assert!(!has_bare_newline(&got.body, true));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Small limits exercise truncation; the high bit gives a limit no input reaches.
    let max = if head[0] & 0x80 != 0 {
        1 << 20
    } else {
        usize::from(head[0])
    };
    let first = usize::from(u16::from_le_bytes([head[1], head[2]])) % (input.len() + 1);
    let stride = usize::from(head[3]);
    let parts = pieces(input, first, stride);

    check_data(input, &parts, max);
    check_chunks(input, &parts, max);
});
