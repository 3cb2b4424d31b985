//! The header-section rules (strict and lenient), fields, unfolding, strip and the From domain.

use super::*;

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn where_the_header_section_ends() {
    // (message, head, body start)
    let table: &[(&[u8], &[u8], usize)] = &[
        (b"", b"", 0),
        (b"A: 1\r\n\r\nbody", b"A: 1\r\n", 8),
        (b"A: 1\r\n\r\n", b"A: 1\r\n", 8),
        (b"A: 1\r\nB: 2\r\n\r\nC: 3\r\n\r\n", b"A: 1\r\nB: 2\r\n", 14),
        // Body-less: the whole message is the header section.
        (b"A: 1\r\n", b"A: 1\r\n", 6),
        (b"A: 1", b"A: 1", 4),
        // No fields at all: the empty line is the first line.
        (b"\r\nbody", b"", 2),
        (b"\r\n\r\nbody", b"", 2),
        (b"\r\n", b"", 2),
        // A bare LF is not a line end: no empty line here.
        (b"A: 1\n\nbody", b"A: 1\n\nbody", 10),
        (b"A: 1\r\n\n\r\nbody", b"A: 1\r\n\n\r\nbody", 13),
        // A line that is not a field does not end the section.
        (
            b"A: 1\r\nnot a field\r\nB: 2\r\n\r\nx",
            b"A: 1\r\nnot a field\r\nB: 2\r\n",
            27,
        ),
        (b"not a field\r\n\r\nx", b"not a field\r\n", 15),
    ];
    for (msg, head, body) in table {
        let s = section(msg);
        assert_eq!(show(s.head), show(head), "{:?}", show(msg));
        assert_eq!(s.body_start, *body, "{:?}", show(msg));
    }
}

#[test]
fn where_returned_mail_headers_end() {
    let table: &[(&[u8], &[u8], usize)] = &[
        (
            b"From x\nSubject: a\n b\nX-Y:z\n\nbody",
            b"From x\nSubject: a\n b\nX-Y:z\n",
            28,
        ),
        // No empty line: the first line that is not a field starts the body.
        (b"A: 1\nnot a header\nrest", b"A: 1\n", 5),
        (b"x\nA: 1\n\n", b"", 0),
        // `From ` is passed over only as the first line.
        (b"A: 1\nFrom x\n\n", b"A: 1\n", 5),
        (b"A: 1\r\n\r\nbody", b"A: 1\r\n", 8),
        (b"A: 1\n\r\nbody", b"A: 1\n", 7),
        (b"\nbody", b"", 1),
        (b"", b"", 0),
        (b"A: 1", b"A: 1", 4),
        (b" folded\nA: 1\n\nx", b" folded\nA: 1\n", 14),
    ];
    for (msg, head, body) in table {
        let s = lenient_section(msg);
        assert_eq!(show(s.head), show(head), "{:?}", show(msg));
        assert_eq!(s.body_start, *body, "{:?}", show(msg));
    }
    let s = lenient_section(b"From x\nSubject: a\n b\nX-Y:z\n\nbody");
    let got: Vec<_> = s.fields().map(|f| (f.name, f.value())).collect();
    assert_eq!(got, [("Subject", "a b".into()), ("X-Y", "z".into())]);
}

#[test]
fn fields_and_unfolded_values() {
    type Row<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
    let table: &[Row] = &[
        (b"Subject: a\r\n b\r\n\r\n", &[("Subject", "a b")]),
        (
            b"Received: from a\r\n\tby b\r\nFrom: a@b.org\r\n\r\nX: body",
            &[("Received", "from a by b"), ("From", "a@b.org")],
        ),
        // Obsolete syntax: blanks before the colon.
        (b"Subject : spaced\r\n", &[("Subject", "spaced")]),
        (b"Subject:\r\n\r\n", &[("Subject", "")]),
        (b"Subject:\r\n \r\n x\r\n", &[("Subject", "x")]),
        (b"A:1", &[("A", "1")]),
        // A continuation before any field, and a line that is no field with its
        // continuation, are skipped.
        (b" orphan\r\nA: 1\r\n", &[("A", "1")]),
        (b"garbage\r\n B: x\r\nA: 1\r\n\r\n", &[("A", "1")]),
        // Not field names.
        (b"Bad Name: x\r\n:x\r\n\xc3\xbc: x\r\n", &[]),
        // A bare LF stays inside its line.
        (b"A: 1\nB: 2\r\n\r\n", &[("A", "1\nB: 2")]),
        // Nothing of the body.
        (b"\r\nA: 1\r\n", &[]),
    ];
    for (msg, want) in table {
        let got: Vec<(&str, String)> = fields(msg).map(|f| (f.name, f.value())).collect();
        let want: Vec<(&str, String)> = want.iter().map(|(n, v)| (*n, v.to_string())).collect();
        assert_eq!(got, want, "{:?}", show(msg));
    }
}

#[test]
fn field_lookup() {
    let msg = b"Subject: one\r\nsubject: two\r\nList-Id : <x>\r\n\r\nTo: body\r\n";
    assert_eq!(value(msg, "SUBJECT").as_deref(), Some("one"));
    assert_eq!(value(msg, "list-id").as_deref(), Some("<x>"));
    assert_eq!(value(msg, "To"), None);
    assert_eq!(value(b"\r\nTo: body\r\n", "to"), None);
    let f = fields(msg).nth(1).map(|f| (f.offset, show(f.raw)));
    assert_eq!(f, Some((14, "subject: two\r\n".into())));
}

#[test]
fn values_within_a_bound() {
    let msg = "A: xxxxxxxxxx\r\n ééé\r\n\r\n".as_bytes();
    let f = fields(msg).next();
    let within = |max| f.map(|f| f.value_within(max));
    assert_eq!(within(usize::MAX).as_deref(), Some("xxxxxxxxxx ééé"));
    assert_eq!(within(13).as_deref(), Some("xxxxxxxxxx é"));
    assert_eq!(within(12).as_deref(), Some("xxxxxxxxxx"));
    assert_eq!(within(4).as_deref(), Some("xxxx"));
    assert_eq!(within(0).as_deref(), Some(""));
}

#[test]
fn stripping_a_field() {
    let table: &[(&[u8], &[u8])] = &[
        (
            b"List-Id: x\r\n y\r\nSubject: s\r\n\r\nList-Id: body\r\n",
            b"Subject: s\r\n\r\nList-Id: body\r\n",
        ),
        (b"list-id : x\r\nSubject: s\r\n", b"Subject: s\r\n"),
        (b"Subject: s\r\nList-Id: x", b"Subject: s\r\n"),
        (b"X-List-Id: a\r\n\r\n", b"X-List-Id: a\r\n\r\n"),
        (b"\r\nList-Id: body\r\n", b"\r\nList-Id: body\r\n"),
        (
            b"Subject: s\r\nbroken\r\n cont\r\nList-Id: x\r\nList-Id: y\r\n\r\nz",
            b"Subject: s\r\nbroken\r\n cont\r\n\r\nz",
        ),
    ];
    for (msg, want) in table {
        assert_eq!(show(&strip(msg, "List-Id")), show(want), "{:?}", show(msg));
    }
}

#[test]
fn from_domains() {
    let table: &[(&[u8], Option<&str>)] = &[
        (
            b"From: Jane <jane@Example.ORG>\r\n\r\n",
            Some("example.org"),
        ),
        (b"From: jane@example.org\r\n\r\n", Some("example.org")),
        (
            b"From: \"x@y.org\" <a@Z.org>, b@c.org\r\n\r\n",
            Some("z.org"),
        ),
        (b"From: <a@ b.org >\r\n\r\n", Some("b.org")),
        (b"Subject: x\r\n\r\nFrom: a@b.c\r\n", None),
        (b"From: undisclosed\r\n\r\n", None),
        (b"From: a@\r\n\r\n", None),
        // Not an address: nothing before the @.
        (b"From: @example.org\r\n\r\n", None),
        // A line that is not a field, or blanks before the colon, no longer hide the From.
        (
            b"Subject: s\r\nbroken\r\nFrom: a@B.org\r\n\r\n",
            Some("b.org"),
        ),
        (b"From : a@b.org\r\n\r\n", Some("b.org")),
    ];
    for (msg, want) in table {
        assert_eq!(from_domain(msg).as_deref(), *want, "{:?}", show(msg));
    }
}
