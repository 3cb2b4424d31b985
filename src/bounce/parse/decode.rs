//! Decoders for the MIME reader: base64 and quoted-printable bodies (lenient: bad input is
//! skipped, never an error), charsets as far as bounce parsing needs them, and RFC 2047
//! encoded words in header values.

use std::borrow::Cow;

/// Undoes base64 or quoted-printable; anything else is returned as is.
pub fn decode_transfer<'a>(encoding: Option<&str>, body: &'a [u8]) -> Cow<'a, [u8]> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => Cow::Owned(base64_lenient(body)),
        Some("quoted-printable") => Cow::Owned(quoted_printable(body, false)),
        _ => Cow::Borrowed(body),
    }
}

/// Base64 that skips anything outside the alphabet and stops at padding.
pub fn base64_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Quoted-printable (`underscore` true for the `Q` encoding of encoded words).
pub fn quoted_printable(input: &[u8], underscore: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'=' => {
                let h = input.get(i + 1).copied();
                let l = input.get(i + 2).copied();
                if h == Some(b'\n') {
                    i += 2;
                    continue;
                }
                match (h.and_then(hex), l.and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'='),
                }
            }
            b'_' if underscore => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes to text: Latin-1 family mapped per byte, everything else as (lossy) UTF-8, which keeps
/// the ASCII that addresses and status codes are made of.
pub fn to_text(bytes: &[u8], charset: Option<&str>) -> String {
    let latin = charset.is_some_and(|c| {
        let c = c.trim().to_ascii_lowercase();
        c.starts_with("iso-8859-1") && c.len() == 10
            || c.starts_with("iso-8859-15")
            || c == "latin1"
            || c == "windows-1252"
            || c == "cp1252"
    });
    if latin && std::str::from_utf8(bytes).is_err() {
        return bytes.iter().map(|&b| char::from(b)).collect();
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`) in a header value.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, after) = rest.split_at(start);
        let Some((word, tail)) = encoded_word(after) else {
            out.push_str(before);
            out.push_str("=?");
            rest = after.get(2..).unwrap_or_default();
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word);
        rest = tail;
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: its text and what follows it.
fn encoded_word(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (enc, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = inner.get(..end)?;
    if payload.contains(' ') || charset.len() > 40 {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => base64_lenient(payload.as_bytes()),
        "Q" | "q" => quoted_printable(payload.as_bytes(), true),
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or_default();
    Some((to_text(&bytes, Some(charset)), inner.get(end + 2..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(base64_lenient(b"aGVs\nbG8="), b"hello");
        assert_eq!(quoted_printable(b"a=3Db=\nc", false), b"a=bc");
        assert_eq!(
            decode_words("=?UTF-8?B?aGk=?= =?utf-8?Q?_there?= x"),
            "hi there x"
        );
        assert_eq!(decode_words("=?bad"), "=?bad");
    }
}
