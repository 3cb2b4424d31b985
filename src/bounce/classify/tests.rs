//! The classifier's tables: text as returned DSNs give it, and typed delivery replies.

use super::*;

#[test]
fn table() {
    use Class::{Hard, Soft};
    let cases: &[(Option<&str>, &str, Class, &str)] = &[
        (
            Some("5.1.1"),
            "550 5.1.1 <a@b.c>... User Unknown",
            Hard,
            "user-unknown",
        ),
        (
            None,
            "550 Unknown user a@b.c (in reply to RCPT TO command)",
            Hard,
            "user-unknown",
        ),
        (None, "550 Unknown user a@b.c", Soft, "filtered"),
        (
            Some("5.0.0"),
            ">>> DATA <<< 550 No such user here",
            Soft,
            "filtered",
        ),
        (
            Some("5.0.0"),
            "after RCPT TO:<a@b.c>: 550 No such user here",
            Hard,
            "user-unknown",
        ),
        (
            Some("5.0.0"),
            ">>> RCPT To:<a@b.c> <<< 250 >>> DATA <<< 550 No such user",
            Soft,
            "filtered",
        ),
        (
            Some("5.1.351"),
            "550 5.1.351 unknown recipient -> 550 : User unknown",
            Soft,
            "filtered",
        ),
        (
            Some("5.1.1"),
            "The email address you entered couldn't be found. 550 5.1.1 RESOLVER.ADR.RecipNotFound",
            Hard,
            "user-unknown",
        ),
        (
            Some("4.0.0"),
            "The domain example.jp couldn't be found",
            Soft,
            "temporary",
        ),
        (
            Some("5.0.0"),
            "The domain example.jp couldn't be found",
            Hard,
            "host-unknown",
        ),
        (
            None,
            "The recipient name is not recognized",
            Hard,
            "user-unknown",
        ),
        (Some("5.1.1"), "", Hard, "user-unknown"),
        (Some("4.1.1"), "450 user unknown", Soft, "bad-address"),
        (Some("5.1.2"), "Host unknown", Hard, "host-unknown"),
        (
            None,
            "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)",
            Hard,
            "host-unknown",
        ),
        (Some("5.1.6"), "551 user has moved", Hard, "has-moved"),
        (
            Some("5.1.10"),
            "556 5.1.10 domain does not accept mail",
            Hard,
            "no-mail-accepted",
        ),
        (
            Some("5.7.1"),
            "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            Soft,
            "spam-block",
        ),
        (
            Some("5.7.1"),
            "550 5.7.1 Message rejected as spam; user unknown",
            Soft,
            "spam-block",
        ),
        (
            Some("5.7.1"),
            "550 5.7.1 Delivery not authorized",
            Soft,
            "policy",
        ),
        (
            Some("5.2.2"),
            "552 5.2.2 Mailbox full",
            Soft,
            "mailbox-full",
        ),
        (
            None,
            "552 Requested mail action aborted: exceeded storage allocation; user unknown",
            Soft,
            "mailbox-full",
        ),
        (
            Some("5.3.4"),
            "552 message size exceeds fixed limit",
            Soft,
            "message-too-big",
        ),
        (Some("4.4.7"), "retry timeout exceeded", Soft, "expired"),
        (
            Some("4.4.7"),
            "421 4.3.0 Try again later (gave up: message expired after 5d)",
            Soft,
            "expired",
        ),
        (
            Some("5.4.7"),
            "450 4.7.1 too many connections, slow down",
            Soft,
            "expired",
        ),
        (
            Some("5.7.26"),
            "550-5.7.26 Unauthenticated email is not accepted due to DMARC",
            Soft,
            "auth-failure",
        ),
        (
            Some("5.7.1"),
            "554 5.7.1 <a@b.c>: Relay access denied",
            Soft,
            "relay-denied",
        ),
        (
            None,
            "421 4.7.0 Try again later, closing connection",
            Soft,
            "rate-limited",
        ),
        (
            Some("5.2.1"),
            "550 5.2.1 The email account that you tried to reach is disabled",
            Soft,
            "suspended",
        ),
        (Some("5.0.0"), "550 rejected", Soft, "policy"),
        (None, "", Soft, "failed"),
        (
            Some("5.4.6"),
            "554 5.4.6 Hop count exceeded - possible mail loop",
            Soft,
            "network-error",
        ),
        (
            None,
            "550 User some.name (a@b.c) not listed in Domino Directory",
            Hard,
            "user-unknown",
        ),
        (
            Some("5.1.1"),
            "550 5.1.1 <a@b.c>: Sender address rejected: blacklisted",
            Soft,
            "sender-rejected",
        ),
    ];
    for (status, diag, class, reason) in cases {
        assert_eq!(
            classify(*status, diag),
            (*class, *reason),
            "{status:?} {diag}"
        );
    }
}

/// Delivery replies, typed, class as their rendered text classifies through the text
/// entry point (what the daemon did before replies were typed).
#[test]
fn typed_replies() {
    use Class::{Hard, Soft};
    let rcpt = "in reply to RCPT TO command";
    let data = "in reply to end of DATA command";
    let cases: &[(Reply, Option<Status>, Class, &str)] = &[
        (
            Reply::from_wire(550, [5, 1, 1], "no such user").noted(rcpt),
            None,
            Hard,
            "user-unknown",
        ),
        (
            Reply::from_wire(550, [0, 0, 0], "Unknown user a@b.c").noted(rcpt),
            None,
            Hard,
            "user-unknown",
        ),
        (
            Reply::from_wire(550, [0, 0, 0], "No such user here").noted(data),
            None,
            Soft,
            "filtered",
        ),
        (
            Reply::new(
                556,
                Status::new(5, 1, 10),
                "x.test accepts no mail (null MX)",
            ),
            None,
            Hard,
            "no-mail-accepted",
        ),
        (
            // "does not exist" is read as a mailbox's wording first; hard either way.
            Reply::new(550, Status::new(5, 1, 2), "domain x.test does not exist"),
            None,
            Hard,
            "user-unknown",
        ),
        (
            Reply::from_wire(554, [5, 7, 1], "blocked using zen.spamhaus.org").noted(data),
            None,
            Soft,
            "spam-block",
        ),
        (
            Reply::from_wire(451, [4, 3, 0], "not yet").noted("gave up: message expired"),
            Some(Status::new(4, 4, 7)),
            Soft,
            "expired",
        ),
        (
            Reply::from_wire(525, [0, 0, 0], "account disabled").noted(rcpt),
            None,
            Soft,
            "suspended",
        ),
        (
            Reply::from_wire(554, [0, 0, 0], "rejected").noted(data),
            None,
            Soft,
            "policy",
        ),
        (
            Reply::from_wire(554, [0, 0, 0], "go away").noted(data),
            None,
            Soft,
            "failed",
        ),
    ];
    for (reply, status, class, reason) in cases {
        let status = status.or(reply.status);
        let typed = classify_reply(status, reply);
        assert_eq!(typed, (*class, *reason), "{reply}");
        let text = status
            .unwrap_or_else(|| reply.status_or_generic())
            .to_string();
        assert_eq!(classify(Some(&text), &reply.to_string()), typed, "{reply}");
    }
}
