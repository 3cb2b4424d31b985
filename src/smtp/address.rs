//! Pure parsing of SMTP paths (`<local@domain>` with optional source route) and ESMTP parameters.
//! The local/domain split and domain syntax are `mail::address`'s.

use crate::mail::{split, valid_domain};

/// A parsed mailbox. `local` is unquoted; flags record forms that matter for relay decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    /// Empty when the path had no `@` (only `<postmaster>` is meaningful then).
    pub domain: String,
    pub quoted: bool,
    pub routed: bool,
    pub literal: bool,
}

impl Mailbox {
    /// The address as it is stored and logged (domain lower-cased, local part as given).
    pub fn address(&self) -> String {
        let local = if self.quoted {
            quote(&self.local)
        } else {
            self.local.clone()
        };
        if self.domain.is_empty() {
            local
        } else {
            format!("{local}@{}", self.domain.to_ascii_lowercase())
        }
    }
}

fn quote(local: &str) -> String {
    let mut s = String::from('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    MissingBrackets,
    Unterminated,
    BadRoute,
    BadLocalPart,
    BadDomain,
    TooLong,
}

impl PathError {
    pub fn text(&self) -> &'static str {
        match self {
            PathError::MissingBrackets => "Syntax: address must be enclosed in <>",
            PathError::Unterminated => "Syntax: unterminated address",
            PathError::BadRoute => "Syntax: bad source route",
            PathError::BadLocalPart => "Bad address syntax: local part",
            PathError::BadDomain => "Bad address syntax: domain",
            PathError::TooLong => "Address too long",
        }
    }
}

/// A path and the parameter text after it.
pub type ParsedPath<'a> = (Option<Mailbox>, &'a str);

/// Parses `<...>` at the start of `s`; `None` is the null path `<>`.
pub fn parse_path(s: &str) -> Result<ParsedPath<'_>, PathError> {
    let s = s.trim_start();
    let inner_start = s.strip_prefix('<').ok_or(PathError::MissingBrackets)?;
    let end = find_close(inner_start)?;
    let inner = &inner_start[..end];
    let rest = &inner_start[end + 1..];
    if inner.len() > 512 {
        return Err(PathError::TooLong);
    }
    if inner.is_empty() {
        return Ok((None, rest));
    }
    let (routed, mailbox) = strip_route(inner)?;
    let mut mb = parse_mailbox(mailbox)?;
    mb.routed = routed;
    Ok((Some(mb), rest))
}

fn find_close(s: &str) -> Result<usize, PathError> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return Ok(i),
            _ => {}
        }
    }
    Err(PathError::Unterminated)
}

fn strip_route(inner: &str) -> Result<(bool, &str), PathError> {
    if !inner.starts_with('@') {
        return Ok((false, inner));
    }
    let colon = inner.find(':').ok_or(PathError::BadRoute)?;
    for hop in inner[..colon].split(',') {
        let domain = hop.strip_prefix('@').ok_or(PathError::BadRoute)?;
        if !valid_domain(domain) {
            return Err(PathError::BadRoute);
        }
    }
    Ok((true, &inner[colon + 1..]))
}

fn parse_mailbox(s: &str) -> Result<Mailbox, PathError> {
    let (local, quoted, after) = if let Some(q) = s.strip_prefix('"') {
        let (local, consumed) = unquote(q)?;
        (local, true, &q[consumed..])
    } else {
        let (local, after) = split(s).map_or((s, ""), |(l, _)| (l, &s[l.len()..]));
        (local.to_string(), false, after)
    };
    if !quoted && !valid_dot_atom(&local) {
        return Err(PathError::BadLocalPart);
    }
    if local.len() > 256 {
        return Err(PathError::TooLong);
    }
    let domain = match after.strip_prefix('@') {
        Some(d) => d,
        None if after.is_empty() => "",
        None => return Err(PathError::BadLocalPart),
    };
    let literal = domain.starts_with('[');
    if !domain.is_empty()
        && !(if literal {
            valid_literal(domain)
        } else {
            valid_domain(domain)
        })
    {
        return Err(PathError::BadDomain);
    }
    Ok(Mailbox {
        local,
        domain: domain.to_string(),
        quoted,
        routed: false,
        literal,
    })
}

/// Unquotes the body of a quoted string (after the opening quote); returns it and bytes consumed.
fn unquote(s: &str) -> Result<(String, usize), PathError> {
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok((out, i + 1));
        } else if c.is_control() {
            return Err(PathError::BadLocalPart);
        } else {
            out.push(c);
        }
    }
    Err(PathError::BadLocalPart)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn valid_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.chars().all(is_atext))
}

fn valid_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    match inner.strip_prefix("IPv6:") {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Splits ESMTP parameters `KEY[=VALUE]`; keys are upper-cased.
pub fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    s.split_ascii_whitespace()
        .map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (p, None),
            };
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("Bad parameter {p:?}"));
            }
            Ok((k.to_ascii_uppercase(), v))
        })
        .collect()
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes); `None` when malformed.
pub fn decode_xtext(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if (33..=126).contains(&b) && b != b'=' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
