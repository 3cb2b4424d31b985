//! Web origins (`scheme://host[:port]`, RFC 6454): parsed from URLs for `http.signup_origins`
//! and `unsubscribe.base_url`, and compared the way browsers send them in `Origin`
//! (lower case, without the scheme's default port).

use super::Config;

/// The origin of an `http` or `https` URL, normalised; `None` if it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].to_ascii_lowercase();
    let host_ok = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    };
    // The port follows the last `:` outside an IPv6 literal's brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority.as_str(), None),
    };
    if !host_ok(host) || host.contains(':') && !host.starts_with('[') {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(p) if p.parse::<u16>().is_err() => None,
        Some(p) if p == default_port => Some(format!("{scheme}://{host}")),
        Some(p) => Some(format!("{scheme}://{host}:{p}")),
    }
}

/// Whether `s` is an origin and nothing more (no path, query or fragment).
pub fn is_origin(s: &str) -> bool {
    origin_of(s).is_some()
        && s.split_once("://")
            .is_some_and(|(_, rest)| !rest.contains(['/', '?', '#']))
}

/// The origins whose pages may post the sign-up form: `http.signup_origins`, or else the
/// origin of `unsubscribe.base_url`.
pub fn signup_origins(config: &Config) -> Vec<String> {
    if config.http.signup_origins.is_empty() {
        origin_of(&config.unsubscribe.base_url)
            .into_iter()
            .collect()
    } else {
        config
            .http
            .signup_origins
            .iter()
            .filter_map(|o| origin_of(o))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://lists.example.org",
                Some("https://lists.example.org"),
            ),
            (
                "HTTPS://Lists.Example.org/a/b?c#d",
                Some("https://lists.example.org"),
            ),
            ("https://example.org:443", Some("https://example.org")),
            ("http://example.org:80/", Some("http://example.org")),
            ("http://127.0.0.1:8025", Some("http://127.0.0.1:8025")),
            (
                "https://[2001:db8::1]:8443/x",
                Some("https://[2001:db8::1]:8443"),
            ),
            ("https://[2001:db8::1]", Some("https://[2001:db8::1]")),
            ("https://example.org:99999", None),
            ("https://user@example.org", None),
            ("ftp://example.org", None),
            ("example.org", None),
            ("https://", None),
            ("null", None),
        ];
        for (url, want) in cases {
            assert_eq!(origin_of(url).as_deref(), *want, "{url}");
        }
        assert!(is_origin("https://example.org:8443"));
        assert!(!is_origin("https://example.org/signup"));
        assert!(!is_origin("https://example.org/"));
        assert!(!is_origin("example.org"));
    }

    #[test]
    fn signup_origins_default_to_the_unsubscribe_base() {
        let mut config = Config::default();
        config.unsubscribe.base_url = "https://Lists.example.org/herald".into();
        assert_eq!(signup_origins(&config), ["https://lists.example.org"]);
        config.http.signup_origins = vec!["https://www.example.org".into()];
        assert_eq!(signup_origins(&config), ["https://www.example.org"]);
    }
}
