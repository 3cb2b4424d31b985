//! The header section of a message (RFC 5322 §2.1–2.2): where it ends, its fields and their
//! unfolded values, taking a field out, and the From domain. One rule, [`section`], for every
//! message Herald accepted (and so stores, signs, lists and returns); one tolerant reading,
//! [`lenient_section`], for mail written elsewhere (returned mail and the headers quoted in it).
//!
//! The rule, decided once:
//! - The header section ends at the first empty line: the first CRLF CRLF, or a CRLF at the very
//!   start (a message with no fields). The empty line belongs to neither side: [`Section::head`]
//!   is the field lines, each with its CRLF, and the body starts after the empty line.
//! - No empty line: the whole message is the header section and the body is empty (RFC 5322
//!   §3.5: a body is optional, and the empty line is there only to separate one).
//! - Only CRLF ends a line. A bare LF or CR is part of its line (RFC 5322 §2.3 allows them only
//!   together); Herald refuses messages with them at DATA, so none that it stores has one.
//! - A line in the section that is neither a field nor a continuation does not end it (no guess
//!   at a missing empty line): [`Fields`] skips it, with its continuation lines, and
//!   [`strip`] keeps it. So what is checked (the From held to a user's senders), what is
//!   stripped (List-* headers) and what is read (Herald-Category) are the same fields.
//! - A field is a name of printable ASCII other than `:`, optional spaces or tabs (the obsolete
//!   syntax of RFC 5322 §4.5, which readers must accept), then `:`. A line starting with a space
//!   or tab continues the field above it; before any field it is skipped.
//! - Unfolded values: each line of the value trimmed, empty ones dropped, the rest joined by one
//!   space. Values are compared and shown, never written back.

use super::address::{Address, mailboxes};

/// What ends a line in the bytes a [`Section`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnds {
    /// CRLF only ([`section`]).
    Crlf,
    /// LF, a CR before it dropped ([`lenient_section`]).
    Lf,
}

/// A message's header section.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// The field lines with their line ends, without the empty line; a prefix of the message.
    pub head: &'a [u8],
    /// Offset of the body: after the empty line, or the message's length when it has no body.
    pub body_start: usize,
    ends: LineEnds,
}

/// The header section of a message Herald accepted (see the rule above).
pub fn section(msg: &[u8]) -> Section<'_> {
    let (head, body_start) = if msg.starts_with(b"\r\n") {
        (0, 2)
    } else {
        match memchr::memmem::find(msg, b"\r\n\r\n") {
            Some(p) => (p + 2, p + 4),
            None => (msg.len(), msg.len()),
        }
    };
    Section {
        head: msg.get(..head).unwrap_or(msg),
        body_start,
        ends: LineEnds::Crlf,
    }
}

/// The header section of mail from elsewhere, read tolerantly: a line ends at LF (with or
/// without a CR before it); a first line `From ` (an mbox separator) is passed over; and the
/// section also ends, with no empty line, at the first line that is neither a field nor a
/// continuation (the body then starts at that line).
pub fn lenient_section(data: &[u8]) -> Section<'_> {
    let mut first = true;
    let (mut head, mut body_start) = (data.len(), data.len());
    for line in Lines::new(data, LineEnds::Lf) {
        if line.text.is_empty() {
            (head, body_start) = (line.start, line.end);
            break;
        }
        let ok = continues(line.text)
            || field_start(line.text).is_some()
            || (first && line.text.starts_with(b"From "));
        if !ok {
            (head, body_start) = (line.start, line.start);
            break;
        }
        first = false;
    }
    Section {
        head: data.get(..head).unwrap_or(data),
        body_start,
        ends: LineEnds::Lf,
    }
}

impl<'a> Section<'a> {
    /// The fields in order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            lines: Lines::new(self.head, self.ends).peekable(),
        }
    }

    /// The unfolded value of the first field called `name` (any case).
    pub fn value(&self, name: &str) -> Option<String> {
        self.fields().find(|f| f.is(name)).map(|f| f.value())
    }
}

/// The fields of the header section of a message Herald accepted.
pub fn fields(msg: &[u8]) -> Fields<'_> {
    section(msg).fields()
}

/// The unfolded value of the first field called `name` in a message Herald accepted.
pub fn value(msg: &[u8], name: &str) -> Option<String> {
    section(msg).value(name)
}

/// The message without any field called `name` (continuation lines included); the body and
/// everything else in the header section stay as they are.
pub fn strip(msg: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    let mut at = 0;
    for f in fields(msg).filter(|f| f.is(name)) {
        out.extend_from_slice(msg.get(at..f.offset).unwrap_or_default());
        at = f.offset + f.raw.len();
    }
    out.extend_from_slice(msg.get(at..).unwrap_or_default());
    out
}

/// The domain of the first address in the first From field, lower-cased (the DKIM signing
/// domain). `None` when there is no From or its first entry is not an address.
pub fn from_domain(msg: &[u8]) -> Option<String> {
    let value = fields(msg).find(|f| f.is("from"))?.value();
    let first = mailboxes(&value).into_iter().next()?;
    let address = Address::parse(&first).ok()?;
    let domain = address.domain().trim();
    (!domain.is_empty()).then(|| domain.to_string())
}

/// One header field as it stands in the section.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The name as written (printable ASCII).
    pub name: &'a str,
    /// The whole field: its first line and continuation lines, line ends included.
    pub raw: &'a [u8],
    /// Where `raw` starts in the message.
    pub offset: usize,
    /// Offset in `raw` just past the colon.
    value_at: usize,
    ends: LineEnds,
}

impl Field<'_> {
    /// Whether the field is called `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The unfolded value (see the module doc).
    pub fn value(&self) -> String {
        self.value_within(usize::MAX)
    }

    /// The unfolded value, at most `max` bytes (cut on a character boundary); only the first
    /// `max` bytes of each line are decoded, so a huge field costs no more than `max`.
    pub fn value_within(&self, max: usize) -> String {
        let mut out = String::new();
        let value = self.raw.get(self.value_at..).unwrap_or_default();
        for line in Lines::new(value, self.ends) {
            if out.len() >= max {
                break;
            }
            let text = line.text.trim_ascii_start();
            let piece = String::from_utf8_lossy(text.get(..max).unwrap_or(text));
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let gap = usize::from(!out.is_empty());
            let room = max.saturating_sub(out.len() + gap);
            let cut = piece
                .get(..piece.floor_char_boundary(room))
                .unwrap_or_default();
            if cut.is_empty() {
                break;
            }
            if gap == 1 {
                out.push(' ');
            }
            out.push_str(cut);
        }
        out
    }
}

/// The fields of a [`Section`], in order (lines that are not fields are skipped).
pub struct Fields<'a> {
    lines: std::iter::Peekable<Lines<'a>>,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        loop {
            let line = self.lines.next()?;
            let Some((name, value_at)) = field_start(line.text) else {
                continue;
            };
            let mut end = line.end;
            while let Some(more) = self.lines.next_if(|l| continues(l.text)) {
                end = more.end;
            }
            return Some(Field {
                name,
                raw: line.bytes.get(line.start..end).unwrap_or_default(),
                offset: line.start,
                value_at,
                ends: line.ends,
            });
        }
    }
}

/// `name:` at the start of a line: the name and the offset past the colon.
fn field_start(line: &[u8]) -> Option<(&str, usize)> {
    let len = line
        .iter()
        .position(|&b| !(33..=126).contains(&b) || b == b':')
        .unwrap_or(line.len());
    if len == 0 {
        return None;
    }
    let rest = line.get(len..).unwrap_or_default();
    let blanks = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if rest.get(blanks) != Some(&b':') {
        return None;
    }
    let name = std::str::from_utf8(line.get(..len)?).ok()?;
    Some((name, len + blanks + 1))
}

/// A continuation line (folding whitespace at its start).
fn continues(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// One line: its text without the line end, and where it starts and ends (past the line end)
/// in the bytes read.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    bytes: &'a [u8],
    text: &'a [u8],
    start: usize,
    end: usize,
    ends: LineEnds,
}

#[derive(Debug, Clone)]
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    ends: LineEnds,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8], ends: LineEnds) -> Lines<'a> {
        Lines {
            bytes,
            pos: 0,
            ends,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let start = self.pos;
        let rest = self.bytes.get(start..).filter(|r| !r.is_empty())?;
        let (text_len, end) = match self.ends {
            LineEnds::Crlf => match memchr::memmem::find(rest, b"\r\n") {
                Some(i) => (i, start + i + 2),
                None => (rest.len(), self.bytes.len()),
            },
            LineEnds::Lf => match memchr::memchr(b'\n', rest) {
                Some(i) if i > 0 && rest.get(i - 1) == Some(&b'\r') => (i - 1, start + i + 1),
                Some(i) => (i, start + i + 1),
                None => (rest.len(), self.bytes.len()),
            },
        };
        self.pos = end;
        Some(Line {
            bytes: self.bytes,
            text: rest.get(..text_len).unwrap_or_default(),
            start,
            end,
            ends: self.ends,
        })
    }
}

#[cfg(test)]
mod tests;
