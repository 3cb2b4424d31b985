//! The content policy's table tests: deny patterns, attachment types, bulk mail without List-Unsubscribe, bounds.

use super::*;
use crate::config::{DenyRule, Policy};

fn compiled() -> CompiledPolicy {
    let policy = Policy {
        deny: vec![
            DenyRule {
                pattern: "(?i)cheap pills".into(),
                reason: "No pharmacy spam".into(),
            },
            DenyRule {
                pattern: r"\bcasino\b".into(),
                reason: "No gambling".into(),
            },
        ],
        deny_attachment_types: vec![
            "exe".into(),
            ".Scr".into(),
            "application/x-msdownload".into(),
        ],
    };
    CompiledPolicy::compile(&policy).unwrap()
}

const HEAD: &str = "From: a@example.org\r\nTo: b@example.net\r\n";

fn msg(headers: &str, body: &str) -> String {
    format!("{HEAD}{headers}\r\n{body}")
}

fn multipart(parts: &[(&str, &str)]) -> String {
    let mut s = format!(
        "{HEAD}Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
    );
    for (headers, body) in parts {
        s.push_str(&format!("--XX\r\n{headers}\r\n{body}\r\n"));
    }
    s.push_str("--XX--\r\n");
    s
}

fn attached(name_params: &str, ctype: &str) -> String {
    multipart(&[
        ("Content-Type: text/plain\r\n", "See attached."),
        (
            &format!(
                "Content-Type: {ctype}\r\nContent-Disposition: attachment{name_params}\r\nContent-Transfer-Encoding: base64\r\n"
            ),
            "TVqQAAMAAAAEAAAA",
        ),
    ])
}

fn verdict(message: &str) -> Option<Rule> {
    match check(message.as_bytes(), &compiled(), false) {
        Verdict::Accept => None,
        Verdict::Deny { rule, .. } => Some(rule),
    }
}

#[test]
fn patterns_in_subject_and_text() {
    let pattern = |index| Some(Rule::Pattern { index });
    let table: Vec<(String, Option<Rule>)> = vec![
        (msg("Subject: Cheap Pills here\r\n", "hello"), pattern(0)),
        (
            msg("Subject: hello\r\n", "visit our casino today"),
            pattern(1),
        ),
        (msg("Subject: hello\r\n", "casinos are fine"), None),
        (
            msg("Subject: =?UTF-8?B?Q2hlYXAgcGlsbHM=?=\r\n", "x"),
            pattern(0),
        ),
        (
            msg(
                "Subject: x\r\nContent-Transfer-Encoding: base64\r\n",
                "dmlzaXQgb3VyIGNhc2lubw==",
            ),
            pattern(1),
        ),
        (
            msg(
                "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                "cheap=20pi=\r\nlls",
            ),
            pattern(0),
        ),
        (
            msg(
                "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                "caf=E9 casino",
            ),
            pattern(1),
        ),
        (
            multipart(&[
                ("Content-Type: text/plain\r\n", "plain and clean"),
                ("Content-Type: text/html\r\n", "<p>big <b>casino</b></p>"),
            ]),
            pattern(1),
        ),
        (
            multipart(&[(
                "Content-Type: message/rfc822\r\n",
                "Subject: cheap pills inside\r\n\r\nforwarded",
            )]),
            pattern(0),
        ),
        (
            msg("Subject: Monthly report\r\n", "All figures attached."),
            None,
        ),
        // Only decoded text is searched: a header other than Subject is not.
        (msg("Subject: ok\r\nX-Note: casino\r\n", "fine"), None),
    ];
    for (m, want) in table {
        assert_eq!(verdict(&m), want, "{m}");
    }
}

#[test]
fn denied_attachments() {
    let ext = |e: &str| Some(Rule::Extension(e.into()));
    let mime = Some(Rule::MimeType("application/x-msdownload".into()));
    let table: Vec<(String, Option<Rule>)> = vec![
        (
            attached("; filename=\"setup.exe\"", "application/octet-stream"),
            ext("exe"),
        ),
        (
            attached("; filename=\"SETUP.EXE\"", "application/octet-stream"),
            ext("exe"),
        ),
        (
            attached("; filename=\"setup.exe. \"", "application/octet-stream"),
            ext("exe"),
        ),
        (
            attached("; filename=\"photo.scr\"", "application/octet-stream"),
            ext("scr"),
        ),
        (
            attached("", "application/octet-stream; name=\"run.exe\""),
            ext("exe"),
        ),
        (
            attached(
                "; filename*=UTF-8''r%C3%A9sum%C3%A9.exe",
                "application/octet-stream",
            ),
            ext("exe"),
        ),
        (
            attached("; filename=\"tool\"", "application/x-msdownload"),
            mime.clone(),
        ),
        (
            attached("; filename=\"tool\"", "Application/X-MSDownload"),
            mime.clone(),
        ),
        (
            attached("; filename=\"report.pdf\"", "application/pdf"),
            None,
        ),
        (
            attached("; filename=\"notexe\"", "application/octet-stream"),
            None,
        ),
        (
            attached("; filename=\"exe\"", "application/octet-stream"),
            None,
        ),
        (
            attached("; filename=\"a.exe.pdf\"", "application/pdf"),
            None,
        ),
        // Inside an attached message.
        (
            multipart(&[(
                "Content-Type: message/rfc822\r\n",
                &attached("; filename=\"inner.exe\"", "application/octet-stream"),
            )]),
            ext("exe"),
        ),
    ];
    for (m, want) in table {
        assert_eq!(verdict(&m), want, "{m}");
    }
}

#[test]
fn bulk_without_unsubscribe() {
    let no = Some(Rule::NoUnsubscribe);
    let unsub = "List-Unsubscribe: <https://example.org/u/1>, <mailto:u@example.org>\r\n";
    let table: [(String, Option<Rule>); 16] = [
        (msg("Subject: receipt\r\n", "thanks"), None),
        (msg("Precedence: bulk\r\n", "x"), no.clone()),
        (msg("Precedence: LIST\r\n", "x"), no.clone()),
        (msg("Precedence: junk\r\n", "x"), None),
        (msg("Herald-Category: marketing\r\n", "x"), no.clone()),
        (msg("Herald-Category: Marketing\r\n", "x"), no.clone()),
        (msg("Herald-Category: transactional\r\n", "x"), None),
        (msg("List-Id: News <news.example.org>\r\n", "x"), no.clone()),
        (msg(&format!("Precedence: bulk\r\n{unsub}"), "x"), None),
        (
            msg(&format!("List-Id: <n.example.org>\r\n{unsub}"), "x"),
            None,
        ),
        (
            msg(
                "Precedence: bulk\r\nList-Unsubscribe: <mailto:u@x.org>\r\n",
                "x",
            ),
            None,
        ),
        (
            msg(
                "Precedence: bulk\r\nList-Unsubscribe: please reply\r\n",
                "x",
            ),
            no.clone(),
        ),
        (
            msg("Precedence: bulk\r\nList-Unsubscribe: <https://>\r\n", "x"),
            no.clone(),
        ),
        // Notifications mark themselves as automatic; they are not marketing.
        (
            msg(
                "Precedence: bulk\r\nAuto-Submitted: auto-generated\r\n",
                "x",
            ),
            None,
        ),
        (
            msg("Precedence: bulk\r\nAuto-Submitted: no\r\n", "x"),
            no.clone(),
        ),
        (
            msg(
                "Precedence: bulk\r\nHerald-Category: transactional\r\n",
                "x",
            ),
            None,
        ),
    ];
    for (m, want) in table {
        assert_eq!(verdict(&m), want, "{m}");
        // With no pattern or attachment rule only the header section is parsed: same verdicts.
        let headers_only = match check(m.as_bytes(), &CompiledPolicy::default(), false) {
            Verdict::Accept => None,
            Verdict::Deny { rule, .. } => Some(rule),
        };
        assert_eq!(headers_only, want, "{m}");
    }
    // A body line that looks like a header is not one.
    let m = msg("Precedence: bulk\r\n", "List-Unsubscribe: <mailto:u@x.org>");
    assert_eq!(verdict(&m), no);
    let none = CompiledPolicy::default();
    assert!(!none.reads_content());
    assert!(matches!(
        check(m.as_bytes(), &none, false),
        Verdict::Deny { .. }
    ));
    // A list post gets Herald's own List-Unsubscribe: not refused for lacking one.
    let post = msg("Herald-Category: marketing\r\n", "x");
    assert_eq!(check(post.as_bytes(), &compiled(), true), Verdict::Accept);
}

#[test]
fn reasons_and_bounds() {
    let deny = |m: &str| match check(m.as_bytes(), &compiled(), false) {
        Verdict::Deny { reason, .. } => reason,
        Verdict::Accept => panic!("accepted: {m}"),
    };
    assert_eq!(deny(&msg("Subject: casino\r\n", "")), "No gambling");
    assert_eq!(
        deny(&attached(
            "; filename=\"a.exe\"",
            "application/octet-stream"
        )),
        "Attachments of type .exe are not accepted"
    );
    assert_eq!(
        deny(&attached("", "application/x-msdownload")),
        "Attachments of type application/x-msdownload are not accepted"
    );
    // Text past MAX_SCANNED_TEXT is not examined.
    let long = format!("{} casino", "a".repeat(MAX_SCANNED_TEXT));
    assert_eq!(verdict(&msg("Subject: x\r\n", &long)), None);
    let edge = format!("{} casino", "a".repeat(MAX_SCANNED_TEXT - 100));
    assert_eq!(
        verdict(&msg("Subject: x\r\n", &edge)),
        Some(Rule::Pattern { index: 1 })
    );
    // Deeply nested messages and garbage never panic.
    let mut nested = msg("Subject: casino\r\n", "x");
    for _ in 0..50 {
        nested = format!("{HEAD}Content-Type: message/rfc822\r\n\r\n{nested}");
    }
    let _ = verdict(&nested);
    for junk in [
        "",
        "\r\n",
        "garbage",
        "Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
    ] {
        let _ = verdict(junk);
    }
    // An empty policy still applies the unsubscribe rule and nothing else.
    let empty = CompiledPolicy::default();
    let m = msg("Subject: casino\r\nPrecedence: bulk\r\n", "casino");
    assert!(matches!(
        check(m.as_bytes(), &empty, false),
        Verdict::Deny {
            rule: Rule::NoUnsubscribe,
            ..
        }
    ));
}
