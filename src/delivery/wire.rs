//! Bytes on the wire for one outgoing transaction (pure functions, table-tested): the
//! pipelined envelope (RFC 2920) and the dot-stuffed message content with its terminator
//! (RFC 5321 §4.5.2).

use memchr::memmem;

/// Appends `MAIL FROM` (with `SMTPUTF8` when `utf8`, RFC 6531 §3.4), one `RCPT TO` per
/// recipient and `DATA`, CRLF-terminated.
pub fn envelope(out: &mut Vec<u8>, sender: &str, recipients: &[String], utf8: bool) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(sender.as_bytes());
    out.extend_from_slice(if utf8 { b"> SMTPUTF8\r\n" } else { b">\r\n" });
    for rcpt in recipients {
        out.extend_from_slice(b"RCPT TO:<");
        out.extend_from_slice(rcpt.as_bytes());
        out.extend_from_slice(b">\r\n");
    }
    out.extend_from_slice(b"DATA\r\n");
}

/// Appends `body` with every line that starts with `.` doubled, then the `.` terminator line.
/// A body that does not end in CRLF gets one first, so the terminator is always on its own line.
pub fn content(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut rest = body;
    if rest.first() == Some(&b'.') {
        out.push(b'.');
    }
    let finder = memmem::Finder::new(b"\n.");
    while let Some(pos) = finder.find(rest) {
        // Copy up to and including the LF, then the extra dot; the line's own dot follows.
        out.extend_from_slice(&rest[..=pos]);
        out.push(b'.');
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        content(&mut out, body);
        out
    }

    #[test]
    fn content_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b".a\r\nb\r\n", b"..a\r\nb\r\n.\r\n"),
            (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\r\n..b\r\n.\r\n", b"a\r\n...b\r\n..\r\n.\r\n"),
            (b"a.b\r\nc. \r\n", b"a.b\r\nc. \r\n.\r\n"),
            (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
        ];
        for (body, want) in cases {
            assert_eq!(
                stuffed(body),
                *want,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn content_round_trips_through_unstuffing() {
        let body = b"Subject: x\r\n\r\n.\r\n..\r\n.hidden\r\nplain\r\n";
        let out = stuffed(body);
        let text = out.strip_suffix(b".\r\n").unwrap();
        let lines: Vec<Vec<u8>> = text
            .split_inclusive(|&b| b == b'\n')
            .map(|l| l.strip_prefix(b".").unwrap_or(l).to_vec())
            .collect();
        assert_eq!(lines.concat(), body.to_vec());
    }

    #[test]
    fn envelope_is_one_pipelined_group() {
        let mut out = Vec::new();
        envelope(
            &mut out,
            "s@a.test",
            &["x@b.test".into(), "y@b.test".into()],
            false,
        );
        assert_eq!(
            out,
            b"MAIL FROM:<s@a.test>\r\nRCPT TO:<x@b.test>\r\nRCPT TO:<y@b.test>\r\nDATA\r\n"
        );
        out.clear();
        envelope(&mut out, "", &["x@b.test".into()], false);
        assert!(out.starts_with(b"MAIL FROM:<>\r\n"));
        out.clear();
        envelope(&mut out, "s@a.test", &["josé@b.test".into()], true);
        assert!(out.starts_with(b"MAIL FROM:<s@a.test> SMTPUTF8\r\n"));
    }
}
