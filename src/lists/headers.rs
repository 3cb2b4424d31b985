//! Per-copy list headers (RFC 2369, RFC 2919, RFC 8058) and the `Herald-Category` header
//! (pure functions, table-tested). The worker puts these on each copy before DKIM signing, so
//! the signature covers them.

/// The header that marks a post as a service announcement; never leaves Herald.
pub const CATEGORY_HEADER: &str = "Herald-Category";

/// What one copy's headers say.
pub struct CopyHeaders<'a> {
    /// Display name of the list.
    pub name: &'a str,
    /// The list address (`news@example.org`); its `@` becomes a `.` in List-Id.
    pub address: &'a str,
    /// `unsubscribe.base_url` without a trailing slash.
    pub base_url: &'a str,
    /// This member's unsubscribe token.
    pub token: &'a str,
    /// The domain of the `u+TOKEN@` mailto address.
    pub mailto_domain: &'a str,
    /// Service announcements carry List-Id only: there is nothing to unsubscribe from.
    pub service: bool,
}

/// The header block (CRLF-terminated lines) for one copy.
pub fn copy_headers(h: &CopyHeaders<'_>) -> String {
    let name = h.name.replace(['"', '\\', '\r', '\n'], "");
    let id = h.address.replacen('@', ".", 1);
    let mut out = format!("List-Id: \"{name}\" <{id}>\r\n");
    if !h.service {
        let base = h.base_url.trim_end_matches('/');
        out.push_str(&format!(
            "List-Unsubscribe: <{base}/unsubscribe/{}>,\r\n <mailto:u+{}@{}>\r\n",
            h.token, h.token, h.mailto_domain
        ));
        out.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    out
}

/// The end of the header section: the offset just past the blank line, or the whole message
/// when there is no body.
fn header_end(message: &[u8]) -> usize {
    memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |p| p + 4)
}

/// The value of the first `name:` header in the header section, unfolded and trimmed.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let head = &message[..header_end(message)];
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if !n.eq_ignore_ascii_case(name) || line.starts_with([' ', '\t']) {
            continue;
        }
        let mut value = v.trim().to_string();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next.trim());
        }
        return Some(value.trim().to_string());
    }
    None
}

/// The message without any `name:` header (folded continuation lines included).
pub fn strip_header(message: &[u8], name: &str) -> Vec<u8> {
    let end = header_end(message);
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            dropping = line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()..].trim_ascii_start().first() == Some(&b':');
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[end..]);
    out
}

/// Drops list headers a poster may have put on the message (the copy gets its own).
pub fn strip_list_headers(message: &[u8]) -> Vec<u8> {
    let mut out = strip_header(message, CATEGORY_HEADER);
    for name in ["List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"] {
        out = strip_header(&out, name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@example.org\r\nHerald-Category: service\r\nList-Unsubscribe:\r\n <x>\r\nSubject: s\r\n\r\nHerald-Category: body stays\r\n";

    #[test]
    fn strips_headers_and_their_continuations_only_in_the_header_section() {
        let out = strip_list_headers(MSG);
        assert_eq!(
            out,
            b"From: a@example.org\r\nSubject: s\r\n\r\nHerald-Category: body stays\r\n"
        );
        assert_eq!(
            strip_header(b"X-Herald-Category: a\r\n\r\n", CATEGORY_HEADER).len(),
            24
        );
    }

    #[test]
    fn header_values() {
        assert_eq!(
            header_value(MSG, "herald-category").as_deref(),
            Some("service")
        );
        assert_eq!(
            header_value(MSG, "List-Unsubscribe").as_deref(),
            Some("<x>")
        );
        assert_eq!(header_value(MSG, "To"), None);
        assert_eq!(
            header_value(b"Subject: a\r\n b\r\n\r\n", "subject").as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn copy_headers_for_marketing_and_service() {
        let mut h = CopyHeaders {
            name: "Example \"News\"",
            address: "news@example.org",
            base_url: "https://lists.example.org/",
            token: "abc234",
            mailto_domain: "bounces.example.org",
            service: false,
        };
        assert_eq!(
            copy_headers(&h),
            "List-Id: \"Example News\" <news.example.org>\r\n\
             List-Unsubscribe: <https://lists.example.org/unsubscribe/abc234>,\r\n \
             <mailto:u+abc234@bounces.example.org>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        );
        h.service = true;
        assert_eq!(
            copy_headers(&h),
            "List-Id: \"Example News\" <news.example.org>\r\n"
        );
    }
}
