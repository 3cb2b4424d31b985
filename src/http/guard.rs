//! What a request is allowed to be (pure functions, table-tested): where a sign-up form was
//! posted from (`http.signup_origins`), which client a request is from when it came through a
//! listed reverse proxy (`http.trusted_proxies`, `X-Forwarded-For`), and the headers every
//! response carries so that no page can be framed or run a script.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Where a browser says a POST came from: `Origin`, else the origin of `Referer`.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    /// Neither header: not a browser (curl, a script), or one that sends neither.
    Unknown,
    /// The origin as sent (`null` and unparseable referers are kept as they are, and match
    /// nothing).
    From(String),
}

pub fn posted_from(headers: &HeaderMap) -> Posted {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
    };
    if let Some(origin) = text(header::ORIGIN) {
        return Posted::From(crate::config::origin_of(&origin).unwrap_or(origin));
    }
    match text(header::REFERER) {
        Some(referer) => Posted::From(crate::config::origin_of(&referer).unwrap_or(referer)),
        None => Posted::Unknown,
    }
}

/// Whether a sign-up posted from `posted` may be taken, `allowed` being normalised origins.
pub fn signup_allowed(posted: &Posted, allowed: &[String]) -> bool {
    match posted {
        Posted::Unknown => true,
        Posted::From(origin) => allowed.iter().any(|a| a == origin),
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (an entry that is not an address
/// stops the walk at the hop that added it).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let entries: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for entry in entries.iter().rev() {
        let parsed = entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()));
        let Ok(ip) = parsed.map(|ip| ip.to_canonical()) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Whether a one-click body's media type is one RFC 8058 allows (form-urlencoded, or
/// `multipart/form-data`).
pub fn is_form_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || media.eq_ignore_ascii_case("multipart/form-data")
}

/// Adds the security headers to a response: `csp` (from [`super::pages::content_security_policy`],
/// with `frame-ancestors 'none'`), `X-Frame-Options: DENY` for older browsers, `nosniff`.
pub fn secure(mut response: Response, csp: &HeaderValue) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                *k,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn where_a_sign_up_came_from() {
        let allowed = vec!["https://www.example.org".to_string()];
        let cases: &[(Pairs, bool)] = &[
            (&[], true),
            (&[("origin", "https://www.example.org")], true),
            (&[("origin", "HTTPS://WWW.example.org:443")], true),
            (&[("origin", "https://evil.test")], false),
            (&[("origin", "null")], false),
            (&[("origin", "https://www.example.org.evil.test")], false),
            (&[("referer", "https://www.example.org/join?x=1")], true),
            (&[("referer", "https://evil.test/www.example.org")], false),
            (&[("referer", "garbage")], false),
            // Origin wins over Referer.
            (
                &[
                    ("origin", "https://evil.test"),
                    ("referer", "https://www.example.org/"),
                ],
                false,
            ),
        ];
        for (h, want) in cases {
            let posted = posted_from(&headers(h));
            assert_eq!(
                signup_allowed(&posted, &allowed),
                *want,
                "{h:?}: {posted:?}"
            );
        }
    }

    #[test]
    fn the_client_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
        let proxy: SocketAddr = "10.0.0.1:4000".parse().unwrap_or_else(|e| panic!("{e}"));
        let stranger: SocketAddr = "198.51.100.7:4000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        let cases: &[(SocketAddr, Pairs, &str)] = &[
            // Not from a proxy: the header is the client's own word, ignored.
            (
                stranger,
                &[("x-forwarded-for", "203.0.113.9")],
                "198.51.100.7",
            ),
            (proxy, &[], "10.0.0.1"),
            (proxy, &[("x-forwarded-for", "203.0.113.9")], "203.0.113.9"),
            // A client cannot pick its address by sending its own X-Forwarded-For.
            (
                proxy,
                &[("x-forwarded-for", "1.2.3.4, 203.0.113.9")],
                "203.0.113.9",
            ),
            // Chained proxies are skipped, over several header lines too.
            (
                proxy,
                &[
                    ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
                    ("x-forwarded-for", "10.1.1.1"),
                ],
                "203.0.113.9",
            ),
            (
                proxy,
                &[("x-forwarded-for", "203.0.113.9, garbage")],
                "10.0.0.1",
            ),
            (proxy, &[("x-forwarded-for", "2001:db8::5")], "2001:db8::5"),
            (
                proxy,
                &[("x-forwarded-for", "203.0.113.9:5555")],
                "203.0.113.9",
            ),
        ];
        for (peer, h, want) in cases {
            assert_eq!(
                client_ip(*peer, &headers(h), &trusted),
                ip(want),
                "{peer} {h:?}"
            );
        }
        let none = client_ip(proxy, &headers(&[("x-forwarded-for", "203.0.113.9")]), &[]);
        assert_eq!(none, ip("10.0.0.1"), "no trusted proxies: the peer");
    }

    #[test]
    fn one_click_media_types() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_form_type(Some(&v("application/x-www-form-urlencoded"))));
        assert!(is_form_type(Some(&v(
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
        ))));
        assert!(is_form_type(Some(&v("multipart/form-data; boundary=x"))));
        assert!(!is_form_type(Some(&v("text/plain"))));
        assert!(!is_form_type(Some(&v("application/json"))));
        assert!(!is_form_type(None));
    }
}
