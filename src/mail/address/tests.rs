//! The address split, parsing and its refusals, case rules, form addresses, domain syntax.

use super::*;

#[test]
fn split_at_the_last_at() {
    let table: &[(&str, Option<(&str, &str)>)] = &[
        ("a@b.org", Some(("a", "b.org"))),
        ("\"a@x\"@b.org", Some(("\"a@x\"", "b.org"))),
        ("u+tok@bounces.example", Some(("u+tok", "bounces.example"))),
        ("a@b@c", Some(("a@b", "c"))),
        ("@b.org", Some(("", "b.org"))),
        ("a@", Some(("a", ""))),
        ("postmaster", None),
        ("", None),
    ];
    for (s, want) in table {
        assert_eq!(split(s), *want, "{s}");
    }
}

#[test]
fn parse_refuses_what_is_no_address() {
    type Row<'a> = (&'a str, Result<(&'a str, &'a str), AddressError>);
    let table: &[Row] = &[
        ("a@b.org", Ok(("a", "b.org"))),
        ("Jane.Doe@Example.ORG", Ok(("Jane.Doe", "Example.ORG"))),
        ("\"a@x\"@b.org", Ok(("\"a@x\"", "b.org"))),
        ("postmaster", Err(AddressError::NoAt)),
        ("", Err(AddressError::NoAt)),
        ("@b.org", Err(AddressError::EmptyLocal)),
        ("a@", Err(AddressError::EmptyDomain)),
        ("a@b@", Err(AddressError::EmptyDomain)),
    ];
    for (s, want) in table {
        let got = Address::parse(s);
        assert_eq!(
            got.as_ref()
                .map(|a| (a.local(), a.domain()))
                .map_err(Clone::clone),
            *want,
            "{s}"
        );
        if let Ok(a) = got {
            assert_eq!(a.as_str(), *s);
            assert_eq!(a.to_string(), *s);
            assert_eq!(String::from(a), *s);
        }
    }
    assert_eq!("x@y".parse::<Address>().map(String::from), Ok("x@y".into()));
}

#[test]
fn domains_compare_without_case_local_parts_with() {
    use std::collections::HashSet;
    let a = |s: &str| Address::parse(s).ok();
    assert_eq!(a("jane@Example.ORG"), a("jane@example.org"));
    assert_ne!(a("Jane@example.org"), a("jane@example.org"));
    assert_ne!(a("jane@example.org"), a("jane@example.com"));
    let set: HashSet<Address> = ["jane@Example.ORG", "jane@example.org", "Jane@example.org"]
        .iter()
        .filter_map(|s| a(s))
        .collect();
    assert_eq!(set.len(), 2);
    assert!(a("x@Bounces.Example").is_some_and(|x| x.domain_is("bounces.example")));
}

#[test]
fn form_addresses() {
    assert_eq!(
        Address::from_form(" Ann@Example.ORG ").map(String::from),
        Some("ann@example.org".into())
    );
    for bad in [
        "",
        "a",
        "a@b",
        "@b.test",
        "a@",
        "a b@c.test",
        "a..b@c.test",
        ".a@c.test",
        "<a@b.test>",
        "a@-b.test",
        "\"a@x\"@b.test",
    ] {
        assert_eq!(Address::from_form(bad), None, "{bad}");
    }
    let long = format!("{}@b.test", "a".repeat(65));
    assert_eq!(Address::from_form(&long), None);
}

#[test]
fn domain_syntax() {
    for good in [
        "b.org",
        "localhost",
        "xn--bcher-kva.de",
        "bücher.de",
        "a-b.c",
    ] {
        assert!(valid_domain(good), "{good}");
    }
    let long_label = format!("{}.org", "a".repeat(64));
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "-a.org",
        "a-.org",
        "a_b.org",
        "a b",
        &long_label,
    ] {
        assert!(!valid_domain(bad), "{bad}");
    }
}

#[test]
fn mailbox_lists() {
    let table: &[(&str, &[&str])] = &[
        ("Jane <Jane@Example.org>", &["jane@example.org"]),
        ("jane@example.org", &["jane@example.org"]),
        ("jane@example.org (Jane)", &["jane@example.org"]),
        (
            "\"Doe, Jane\" <jane@x.org>, bob@y.org",
            &["jane@x.org", "bob@y.org"],
        ),
        ("\"a@b.org via list\" <evil@c.org>", &["evil@c.org"]),
        ("<a,b@c.org>", &["a,b@c.org"]),
        ("undisclosed", &[]),
        ("", &[]),
    ];
    for (value, want) in table {
        assert_eq!(mailboxes(value), *want, "{value}");
    }
}
