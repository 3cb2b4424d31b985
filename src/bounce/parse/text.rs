//! Small text scanners shared by the bounce parsers: e-mail addresses, enhanced status codes
//! (`5.1.1`), SMTP reply codes (`550`), and squeezing text into one bounded line.

/// Addresses looked at per text.
const MAX_ADDRESSES: usize = 2000;

/// Characters allowed in an unquoted local part.
fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

/// Spans (`start..end`) of what look like e-mail addresses in `s`, in order.
pub fn address_spans(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'@', bytes.get(from..).unwrap_or_default()) {
        let at = from + i;
        from = at + 1;
        if let Some(span) = span_at(bytes, at) {
            if out.last().is_none_or(|&(_, e)| e <= span.0) {
                out.push(span);
            }
            if out.len() >= MAX_ADDRESSES {
                break;
            }
        }
    }
    out
}

/// The address around the `@` at `at`, if both sides are plausible.
fn span_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    if at > 0 && bytes.get(at - 1) == Some(&b'"') {
        // Quoted local part: back to the opening quote on the same line.
        let before = bytes.get(..at - 1)?;
        let q = memchr::memrchr(b'"', before)?;
        if before.get(q..)?.contains(&b'\n') || at - q > 128 {
            return None;
        }
        start = q;
    } else {
        while start > 0 && bytes.get(start - 1).is_some_and(|&b| local_char(b)) && at - start < 128
        {
            start -= 1;
        }
        while bytes.get(start) == Some(&b'.') {
            start += 1;
        }
    }
    let mut end = at + 1;
    if bytes.get(end) == Some(&b'[') {
        let close = memchr::memchr(b']', bytes.get(end..(end + 64).min(bytes.len()))?)?;
        end += close + 1;
    } else {
        while bytes.get(end).is_some_and(|&b| domain_char(b)) && end - at < 256 {
            end += 1;
        }
        while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.' | b'-' | b'_')) {
            end -= 1;
        }
    }
    let domain = bytes.get(at + 1..end)?;
    let ok_domain = domain.starts_with(b"[") || domain.contains(&b'.');
    (start < at && ok_domain).then_some((start, end))
}

/// The first address in `s` (preferring one in angle brackets), lower-cased.
pub fn address_in(s: &str) -> Option<String> {
    let spans = address_spans(s);
    let bracketed = spans.iter().find(|&&(a, e)| {
        a > 0 && s.as_bytes().get(a - 1) == Some(&b'<') && s.as_bytes().get(e) == Some(&b'>')
    });
    let (a, e) = bracketed.or(spans.first()).copied()?;
    s.get(a..e).map(str::to_ascii_lowercase)
}

/// Every address in `s`, lower-cased.
pub fn addresses_in(s: &str) -> Vec<String> {
    address_spans(s)
        .into_iter()
        .filter_map(|(a, e)| s.get(a..e).map(str::to_ascii_lowercase))
        .collect()
}

/// Reads `d{1,3}` starting at `i`; returns the end.
fn digits(b: &[u8], i: usize, max: usize) -> Option<usize> {
    let mut j = i;
    while b.get(j).is_some_and(u8::is_ascii_digit) && j - i < max + 1 {
        j += 1;
    }
    (j > i && j - i <= max).then_some(j)
}

/// The enhanced status code (`class.subject.detail`, RFC 3463) starting at `i`, if any.
fn status_at(b: &[u8], i: usize) -> Option<usize> {
    if !matches!(b.get(i), Some(b'2' | b'4' | b'5')) {
        return None;
    }
    if i > 0
        && b.get(i - 1)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.')
    {
        return None;
    }
    if b.get(i + 1) != Some(&b'.') {
        return None;
    }
    let j = digits(b, i + 2, 3)?;
    if b.get(j) != Some(&b'.') {
        return None;
    }
    let k = digits(b, j + 1, 3)?;
    let next = b.get(k).copied();
    if next.is_some_and(|c| c.is_ascii_alphanumeric())
        || (next == Some(b'.') && b.get(k + 1).is_some_and(u8::is_ascii_digit))
    {
        return None;
    }
    Some(k)
}

/// The first enhanced status code in `s`.
pub fn enhanced_status(s: &str) -> Option<String> {
    statuses(s).into_iter().next()
}

/// Every enhanced status code in `s`, in order (at most 32).
pub fn statuses(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 32 {
        if let Some(end) = status_at(b, i) {
            if let Some(code) = s.get(i..end) {
                out.push(code.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The first SMTP reply code (`[245]xy` standing alone, or before `-` of a multi-line reply).
pub fn reply_code(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 3 <= b.len() {
        let prev_ok = i == 0
            || b.get(i - 1).is_some_and(|&c| {
                !c.is_ascii_alphanumeric() && c != b'.' && c != b'-' && c != b'+' && c != b':'
            });
        let d = b.get(i..i + 3).unwrap_or_default();
        let is_code = matches!(d.first(), Some(b'2' | b'4' | b'5'))
            && d.iter().all(u8::is_ascii_digit)
            && matches!(d.get(1), Some(b'0'..=b'5'));
        let next_ok = matches!(
            b.get(i + 3),
            None | Some(b' ' | b'-' | b'\t' | b'\n' | b')' | b',' | b']')
        );
        if prev_ok && is_code && next_ok {
            let code = d
                .iter()
                .fold(0u16, |acc, &c| acc * 10 + u16::from(c - b'0'));
            return Some(code);
        }
        i += 1;
    }
    None
}

/// Collapses whitespace into single spaces and bounds the length.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for word in s.split_whitespace() {
        if out.len() + word.len() + 1 > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// ASCII-lower-cased copy for phrase matching.
pub fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            address_in("to: Cat <Kiji@Example.ORG>, x@y.z"),
            Some("kiji@example.org".into())
        );
        assert_eq!(
            address_in("  neko@example.jp."),
            Some("neko@example.jp".into())
        );
        assert_eq!(
            address_in("<\"neko....nyaan....\"@libsisimai.org>"),
            Some("\"neko....nyaan....\"@libsisimai.org".into())
        );
        assert_eq!(address_in("MAILER-DAEMON@localhost"), None);
        assert_eq!(address_in("no at sign"), None);
        assert_eq!(addresses_in("a@b.c d@e.f").len(), 2);
    }

    #[test]
    fn status_codes() {
        for (text, want) in [
            ("550 5.1.1 <a@b.c>", Some("5.1.1")),
            ("Status: 4.4.7", Some("4.4.7")),
            ("550-5.7.26 Unauthenticated", Some("5.7.26")),
            ("(#5.5.0)", Some("5.5.0")),
            ("5.1.351 Remote server", Some("5.1.351")),
            ("host 192.0.2.1 said", None),
            ("4.16.55.1; see", None),
            ("Exim 4.72", None),
            ("v5.1.1", None),
        ] {
            assert_eq!(enhanced_status(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn reply_codes() {
        assert_eq!(reply_code("said: 550 5.1.1 x"), Some(550));
        assert_eq!(reply_code("550-5.7.1 x"), Some(550));
        assert_eq!(reply_code("host 192.0.2.250 x"), None);
        assert_eq!(reply_code("at 23:45:01 +0900"), None);
        assert_eq!(reply_code("#5.5.0"), None);
    }

    #[test]
    fn squeeze() {
        assert_eq!(one_line("  a\n  b\tc ", 100), "a b c");
        assert_eq!(one_line("aaa bbb ccc", 7), "aaa bbb");
    }
}
