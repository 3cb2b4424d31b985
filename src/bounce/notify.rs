//! Pure construction of RFC 3464 DSNs for submitted mail that failed permanently or expired,
//! and the RFC 3461 rules for whether one is sent at all.

use crate::mail::{Reply, Status};
use crate::timefmt::rfc5322;

/// One failed recipient in a DSN.
pub struct Failed<'a> {
    pub address: &'a str,
    pub orcpt: Option<&'a str>,
    /// Enhanced status such as `5.1.1` (`4.4.7` for an expiry).
    pub status: Status,
    /// The remote reply or our own.
    pub diagnostic: &'a Reply,
    /// The failure is the destination's (`smtp;`), not Herald's own (`x-herald;`).
    pub remote: bool,
}

pub struct Dsn<'a> {
    pub hostname: &'a str,
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    /// RET=FULL: return the whole message; otherwise headers only.
    pub full: bool,
    pub arrival: u64,
    pub now: u64,
    pub message_id: &'a str,
    pub failed: Vec<Failed<'a>>,
    pub original: &'a [u8],
    /// Random, from the caller: the MIME boundary is unique to this DSN and unguessable, so
    /// neither another DSN of the same second nor the returned content can contain it.
    pub nonce: u128,
}

/// Whether a failure DSN goes out: never for the null sender; honour NOTIFY (RFC 3461 §4.1).
pub fn wanted(sender: &str, notify: Option<&str>) -> bool {
    if sender.is_empty() {
        return false;
    }
    match notify {
        None => true,
        Some(n) => n
            .split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("FAILURE")),
    }
}

/// The DSN message, CRLF line ends, ready to queue with a null sender.
pub fn build(d: &Dsn<'_>) -> Vec<u8> {
    // 45 characters: within the 70 of RFC 2046 §5.1.1 whatever the host name.
    let boundary = format!("=_herald_dsn_{:032x}", d.nonce);
    let date = rfc5322(d.now);
    let mut text = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: {mid}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is the mail system at host {host}.\r\n\
         \r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         \r\n",
        host = d.hostname,
        to = d.sender,
        mid = d.message_id,
    );
    for f in &d.failed {
        text += &format!("<{}>: {}\r\n", f.address, f.diagnostic);
    }
    text += &format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {}\r\n",
        d.hostname
    );
    if let Some(envid) = d.envid {
        text += &format!("Original-Envelope-Id: {envid}\r\n");
    }
    text += &format!("Arrival-Date: {}\r\n", rfc5322(d.arrival));
    for f in &d.failed {
        text += &format!("\r\nFinal-Recipient: rfc822; {}\r\n", f.address);
        if let Some(orcpt) = f.orcpt {
            text += &format!("Original-Recipient: {orcpt}\r\n");
        }
        let kind = if f.remote { "smtp" } else { "x-herald" };
        text += &format!(
            "Action: failed\r\nStatus: {}\r\nDiagnostic-Code: {kind}; {}\r\nLast-Attempt-Date: {date}\r\n",
            f.status, f.diagnostic
        );
    }
    let (ctype, original) = if d.full {
        ("message/rfc822", d.original)
    } else {
        (
            "text/rfc822-headers",
            crate::mail::header::section(d.original).head,
        )
    };
    text += &format!("\r\n--{boundary}\r\nContent-Type: {ctype}\r\n\r\n");
    let mut out = text.into_bytes();
    out.extend_from_slice(original);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rules() {
        assert!(wanted("a@b.org", None));
        assert!(wanted("a@b.org", Some("SUCCESS,FAILURE")));
        assert!(!wanted("a@b.org", Some("NEVER")));
        assert!(!wanted("a@b.org", Some("DELAY")));
        assert!(!wanted("", None));
    }

    #[test]
    fn report_shape() {
        let original = b"Subject: hello\r\nFrom: a@b.org\r\n\r\nsecret body\r\n";
        let reply = Reply::from_wire(550, [5, 1, 1], "no such user");
        let d = Dsn {
            hostname: "mx.example",
            sender: "a@b.org",
            envid: Some("ENV1"),
            full: false,
            arrival: 0,
            now: 60,
            message_id: "<dsn@mx.example>",
            failed: vec![Failed {
                address: "x@y.org",
                orcpt: Some("rfc822;x@y.org"),
                status: Status::new(5, 1, 1),
                diagnostic: &reply,
                remote: true,
            }],
            original,
            nonce: 7,
        };
        let text = String::from_utf8(build(&d)).unwrap_or_default();
        for needle in [
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Original-Envelope-Id: ENV1",
            "Final-Recipient: rfc822; x@y.org",
            "Original-Recipient: rfc822;x@y.org",
            "Status: 5.1.1",
            "Diagnostic-Code: smtp; 550 5.1.1 no such user",
            "text/rfc822-headers",
            "Subject: hello",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(
            !text.contains("secret body"),
            "headers only without RET=FULL"
        );
        assert!(
            !text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'),
            "CRLF only"
        );
        // Another DSN of the same second has its own boundary.
        let boundary = "=_herald_dsn_00000000000000000000000000000007";
        assert!(text.contains(&format!("boundary=\"{boundary}\"")), "{text}");
        let other = String::from_utf8(build(&Dsn { nonce: 8, ..d })).unwrap_or_default();
        assert!(!other.contains(boundary), "{other}");
    }
}
