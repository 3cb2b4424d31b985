//! A small, bounded MIME reader for bounce parsing: line-end normalisation, header blocks
//! (through `mail::header`), `Content-Type` and multipart splitting (decoding is in `decode`).
//!
//! Everything here is linear in its input with small constant factors, and every loop is
//! capped (nesting depth, number of parts, number and length of headers), so a hostile message
//! costs at most a few passes over the capped input.

use super::decode::{decode_transfer, to_text};

/// Bytes of a message looked at; the rest (usually the returned original) is ignored.
pub const MAX_INPUT: usize = 4 << 20;
/// Multipart nesting followed.
const MAX_DEPTH: usize = 6;
/// Body parts collected over the whole message.
const MAX_PARTS: usize = 48;
/// Header fields kept per header block.
const MAX_HEADERS: usize = 200;
/// Length kept of one header value.
const MAX_VALUE: usize = 4096;

/// One unfolded header field: lower-cased name, value with folding removed.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A header block.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of a field (name in lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every value of a field (name in lower case).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| h.value.as_str())
    }
}

/// A parsed `Content-Type`: lower-cased `type/subtype` and its parameters (names lower-cased).
#[derive(Debug, Clone, Default)]
pub struct ContentType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A body part that is not multipart, decoded from its transfer encoding.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub ctype: ContentType,
    /// The part's own header block.
    pub headers: Headers,
    /// Decoded content as text (lossy for charsets other than UTF-8 and Latin-1).
    pub text: String,
    /// Multipart nesting: 0 for the body of a single-part message.
    pub depth: usize,
}

/// A message split into its top header block and its leaf parts, in order.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub headers: Headers,
    pub ctype: ContentType,
    pub leaves: Vec<Leaf>,
}

/// Turns CRLF and lone CR into LF, keeping at most [`MAX_INPUT`] bytes.
pub fn normalise(raw: &[u8]) -> Vec<u8> {
    let raw = raw.get(..MAX_INPUT).unwrap_or(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\r', rest) {
        out.extend_from_slice(rest.get(..i).unwrap_or_default());
        out.push(b'\n');
        let skip = if rest.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = rest.get(i + skip..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

/// Splits off a header block; returns it and the offset where the body starts. The tolerant
/// reading of mail from elsewhere is `mail::header::lenient_section`'s: LF line ends, a
/// leading mbox `From ` line, and no empty line needed (the first line that is no field ends
/// the block). Fields and value lengths are capped here.
pub fn parse_headers(data: &[u8]) -> (Headers, usize) {
    let section = crate::mail::header::lenient_section(data);
    let headers = section
        .fields()
        .take(MAX_HEADERS)
        .map(|f| Header {
            name: f.name.to_ascii_lowercase(),
            value: f.value_within(MAX_VALUE),
        })
        .collect();
    (Headers(headers), section.body_start)
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Parses a `Content-Type` value.
pub fn content_type(value: Option<&str>) -> ContentType {
    let Some(value) = value else {
        return ContentType {
            mime: "text/plain".into(),
            params: Vec::new(),
        };
    };
    let mut pieces = split_params(value).into_iter();
    let mime = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .map(|v| v.strip_suffix('"').unwrap_or(v))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    ContentType { mime, params }
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
        if out.len() > 32 {
            break;
        }
    }
    out.push(value.get(start..).unwrap_or_default());
    out
}

/// Reads a whole (normalised) message into headers and leaves.
pub fn read(data: &[u8]) -> Message {
    let (headers, body_at) = parse_headers(data);
    let ctype = content_type(headers.get("content-type"));
    let body = data.get(body_at..).unwrap_or_default();
    let mut leaves = Vec::new();
    let mut budget = MAX_PARTS;
    walk(&headers, &ctype, body, 0, &mut budget, &mut leaves);
    Message {
        headers,
        ctype,
        leaves,
    }
}

fn walk(
    headers: &Headers,
    ctype: &ContentType,
    body: &[u8],
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<Leaf>,
) {
    if *budget == 0 {
        return;
    }
    if ctype.mime.starts_with("multipart/") && depth < MAX_DEPTH {
        let boundary = ctype.param("boundary").filter(|b| !b.is_empty());
        let parts =
            boundary.map_or_else(Vec::new, |b| split_multipart(body, b.as_bytes(), *budget));
        if !parts.is_empty() {
            for part in parts {
                let (h, at) = parse_headers(part);
                let ct = match h.get("content-type") {
                    Some(v) => content_type(Some(v)),
                    None => default_child(ctype),
                };
                walk(
                    &h,
                    &ct,
                    part.get(at..).unwrap_or_default(),
                    depth + 1,
                    budget,
                    out,
                );
                if *budget == 0 {
                    return;
                }
            }
            return;
        }
    }
    let plain;
    let ctype = if ctype.mime.starts_with("multipart/") {
        // Unsplittable multipart: read it as text.
        plain = content_type(None);
        &plain
    } else {
        ctype
    };
    *budget -= 1;
    let decoded = decode_transfer(headers.get("content-transfer-encoding"), body);
    // Encoded content has line ends of its own.
    let decoded = if decoded.contains(&b'\r') {
        std::borrow::Cow::Owned(normalise(&decoded))
    } else {
        decoded
    };
    let text = to_text(&decoded, ctype.param("charset"));
    out.push(Leaf {
        ctype: ctype.clone(),
        headers: headers.clone(),
        text,
        depth,
    });
}

fn default_child(parent: &ContentType) -> ContentType {
    let mime = if parent.mime == "multipart/digest" {
        "message/rfc822"
    } else {
        "text/plain"
    };
    ContentType {
        mime: mime.into(),
        params: Vec::new(),
    }
}

/// The parts between `--boundary` delimiter lines (at most `max`).
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut delim = Vec::with_capacity(boundary.len() + 3);
    delim.extend_from_slice(b"\n--");
    delim.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delim);
    // Positions (of the LF before `--`) of delimiter lines; a virtual LF precedes the body.
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut search = 0;
    let starts_with_delim = body.starts_with(delim.get(1..).unwrap_or_default());
    if starts_with_delim {
        match after_delimiter(body, delim.len() - 1) {
            Some((true, _)) => return parts,
            Some((false, next)) => start = Some(next),
            None => {}
        }
        search = delim.len() - 1;
    }
    while parts.len() < max {
        let Some(found) = finder.find(body.get(search..).unwrap_or_default()) else {
            break;
        };
        let at = search + found;
        search = at + delim.len();
        let Some((closing, next)) = after_delimiter(body, at + delim.len()) else {
            continue;
        };
        if let Some(s) = start {
            parts.push(body.get(s..at).unwrap_or_default());
        }
        if closing {
            return parts;
        }
        start = Some(next);
    }
    if let Some(s) = start.filter(|_| parts.len() < max) {
        parts.push(body.get(s..).unwrap_or_default());
    }
    parts
}

/// After `--boundary` at `at`: `(closing, start of the next line)`, or None when the boundary
/// continues with other characters (it was only a prefix of a longer line).
fn after_delimiter(body: &[u8], at: usize) -> Option<(bool, usize)> {
    let rest = body.get(at..).unwrap_or_default();
    let closing = rest.starts_with(b"--");
    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let tail = rest
        .get(if closing { 2 } else { 0 }..line_end)
        .unwrap_or_default();
    if !tail.iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some((closing, (at + line_end + 1).min(body.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(normalise(b"a\r\nb\rc\n\r"), b"a\nb\nc\n\n");
    }

    #[test]
    fn headers_unfold_and_stop() {
        let (h, at) = parse_headers(b"From x\nSubject: a\n b\nX-Y:z\n\nbody");
        assert_eq!(h.get("subject"), Some("a b"));
        assert_eq!(h.get("x-y"), Some("z"));
        assert_eq!(at, 28);
        let (h, at) = parse_headers(b"A: 1\nnot a header\nrest");
        assert_eq!(h.0.len(), 1);
        assert_eq!(at, 5);
    }

    #[test]
    fn content_type_params() {
        let ct = content_type(Some(
            "Multipart/Report; report-type=\"delivery-status\"; boundary=\"a;b\"",
        ));
        assert_eq!(ct.mime, "multipart/report");
        assert_eq!(ct.param("report-type"), Some("delivery-status"));
        assert_eq!(ct.param("boundary"), Some("a;b"));
    }

    #[test]
    fn multipart_walk() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--bx\n--b\nContent-Type: text/html\n\ntwo\n--b--\nepilogue";
        let m = read(msg);
        assert_eq!(m.leaves.len(), 2);
        assert_eq!(m.leaves[0].text, "one\n--bx");
        assert_eq!(m.leaves[1].ctype.mime, "text/html");
        assert_eq!(m.leaves[1].text, "two");
    }
}
