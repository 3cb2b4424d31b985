//! SMTP paths and parameters: routes, quoted local parts, literals, ESMTP params, xtext.

use super::*;

fn mb(s: &str) -> Option<Mailbox> {
    parse_path(s).ok().and_then(|(m, _)| m)
}

#[test]
fn paths() {
    type Row<'a> = (&'a str, Option<(&'a str, &'a str, bool, bool, bool)>);
    let table: &[Row] = &[
        ("<a@b.org>", Some(("a", "b.org", false, false, false))),
        (
            "<A.B+c@Example.ORG>",
            Some(("A.B+c", "Example.ORG", false, false, false)),
        ),
        (
            "<\"a@x\"@b.org>",
            Some(("a@x", "b.org", true, false, false)),
        ),
        (
            "<\"a\\\"q\"@b.org>",
            Some(("a\"q", "b.org", true, false, false)),
        ),
        (
            "<@r1.org,@r2.org:a@b.org>",
            Some(("a", "b.org", false, true, false)),
        ),
        (
            "<a@[127.0.0.1]>",
            Some(("a", "[127.0.0.1]", false, false, true)),
        ),
        (
            "<a@[IPv6:::1]>",
            Some(("a", "[IPv6:::1]", false, false, true)),
        ),
        (
            "<postmaster>",
            Some(("postmaster", "", false, false, false)),
        ),
        (
            "<a%b.org@c.org>",
            Some(("a%b.org", "c.org", false, false, false)),
        ),
        (
            "<b.org!a@c.org>",
            Some(("b.org!a", "c.org", false, false, false)),
        ),
        (
            "<jörg@bücher.de>",
            Some(("jörg", "bücher.de", false, false, false)),
        ),
    ];
    for (input, want) in table {
        let got = mb(input).map(|m| (m.local, m.domain, m.quoted, m.routed, m.literal));
        let want = want.map(|(l, d, q, r, lit)| (l.to_string(), d.to_string(), q, r, lit));
        assert_eq!(got, want, "{input}");
    }
}

#[test]
fn bad_paths() {
    for input in [
        "a@b.org",
        "<a@b.org",
        "<a@b.org.>",
        "<a@.b.org>",
        "<a@b..org>",
        "<.a@b.org>",
        "<a..b@b.org>",
        "<a@[1.2.3]>",
        "<a@-b.org>",
        "<@r1.org a@b.org>",
        "<a b@c.org>",
        "<a@b.org\u{0}>",
    ] {
        assert!(parse_path(input).is_err(), "{input} should be refused");
    }
    assert_eq!(
        parse_path("<>").ok().map(|(m, r)| (m, r.to_string())),
        Some((None, String::new()))
    );
}

#[test]
fn params() {
    let (_, rest) = parse_path("<a@b.org> SIZE=100 body=8BITMIME").unwrap_or((None, ""));
    let p = parse_params(rest).unwrap_or_default();
    assert_eq!(
        p,
        vec![
            ("SIZE".into(), Some("100".into())),
            ("BODY".into(), Some("8BITMIME".into()))
        ]
    );
    assert!(parse_params("=x").is_err());
}

#[test]
fn xtext() {
    assert_eq!(
        decode_xtext("rfc822;a+2Bb@c.org").as_deref(),
        Some("rfc822;a+b@c.org")
    );
    assert_eq!(decode_xtext("bad+zz"), None);
    assert_eq!(decode_xtext("a=b"), None);
}
