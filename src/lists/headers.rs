//! Per-copy list headers (RFC 2369, RFC 2919, RFC 8058) and the `Herald-Category` header
//! (pure functions, table-tested). The worker puts these on each copy before DKIM signing, so
//! the signature covers them. Reading and stripping fields is `mail::header`'s.

use crate::mail::{header, split};

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
    let id = split(h.address).map_or_else(|| h.address.to_string(), |(l, d)| format!("{l}.{d}"));
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

/// Drops list headers a poster may have put on the message (the copy gets its own).
pub fn strip_list_headers(message: &[u8]) -> Vec<u8> {
    let mut out = header::strip(message, CATEGORY_HEADER);
    for name in ["List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"] {
        out = header::strip(&out, name);
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
            header::strip(b"X-Herald-Category: a\r\n\r\n", CATEGORY_HEADER).len(),
            24
        );
    }

    #[test]
    fn header_values() {
        let value = |name| header::value(MSG, name);
        assert_eq!(value("herald-category").as_deref(), Some("service"));
        assert_eq!(value("List-Unsubscribe").as_deref(), Some("<x>"));
        assert_eq!(value("To"), None);
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
