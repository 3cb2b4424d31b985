//! Pure header work on accepted messages: find the header block, read Message-ID, and build the
//! trace and RFC 6409 §8 repairs (Date, Message-ID) that are prepended before storing. Where
//! the header section ends and what a field is are `mail::header`'s rule.

use crate::mail::{header, mailboxes};

/// What the session needs to know about a message's header block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderFacts {
    pub has_date: bool,
    pub message_id: Option<String>,
    /// Received fields: the hops the message has made (loop detection).
    pub received: usize,
    /// The addresses of every From and Sender field, lower-cased (each is held to a user's
    /// `senders`: a reader may be shown any of them).
    pub from: Vec<String>,
    /// How many From fields there are (RFC 5322 §3.6 allows exactly one).
    pub from_fields: usize,
}

/// What the header section (`mail::header`'s one rule) says about trace, repairs and From.
pub fn scan(msg: &[u8]) -> HeaderFacts {
    let mut facts = HeaderFacts::default();
    for field in header::fields(msg) {
        if field.is("date") {
            facts.has_date = true;
        } else if field.is("received") {
            facts.received += 1;
        } else if field.is("from") || field.is("sender") {
            facts.from_fields += usize::from(field.is("from"));
            for a in mailboxes(&field.value()) {
                if !facts.from.contains(&a) {
                    facts.from.push(a);
                }
            }
        } else if field.is("message-id") && facts.message_id.is_none() {
            facts.message_id = Some(field.value().chars().take(998).collect());
        }
    }
    facts
}

/// Inputs for the Received trace field (RFC 5321 §4.4).
pub struct Trace<'a> {
    pub helo: &'a str,
    /// Client address; `None` keeps a submitting user's IP out of the message.
    pub client_ip: Option<std::net::IpAddr>,
    pub hostname: &'a str,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA` (RFC 3848).
    pub protocol: &'a str,
    pub queue_id: &'a str,
    pub date: &'a str,
}

pub fn received(t: &Trace<'_>) -> String {
    let helo: String = t
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let from = match t.client_ip {
        Some(ip) => format!("from {helo} ([{ip}])"),
        None => format!("from {helo}"),
    };
    format!(
        "Received: {from}\r\n\tby {} (Herald) with {} id {};\r\n\t{}\r\n",
        t.hostname, t.protocol, t.queue_id, t.date
    )
}

/// Headers to add for RFC 6409 §8 submission repair; returns them and the Message-ID in effect.
pub fn submission_repairs(facts: &HeaderFacts, date: &str, new_id: &str) -> (String, String) {
    let mut add = String::new();
    if !facts.has_date {
        add.push_str(&format!("Date: {date}\r\n"));
    }
    let id = match &facts.message_id {
        Some(id) => id.clone(),
        None => {
            add.push_str(&format!("Message-ID: {new_id}\r\n"));
            new_id.to_string()
        }
    };
    (add, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_headers() {
        let msg = b"Received: from a\r\n by b\r\nFrom: a@b.org\r\nMessage-ID:\r\n <x@y>\r\n\
                    received: from c\r\nDate: now\r\n\r\nMessage-ID: <body@z>\r\nReceived: x\r\n";
        assert_eq!(
            scan(msg),
            HeaderFacts {
                has_date: true,
                message_id: Some("<x@y>".into()),
                received: 2,
                from: vec!["a@b.org".into()],
                from_fields: 1,
            }
        );
        assert_eq!(scan(b"Subject: hi\n\nbody"), HeaderFacts::default());
        assert_eq!(scan(b"\r\nDate: x\r\n"), HeaderFacts::default());
        assert_eq!(scan(b""), HeaderFacts::default());
    }

    /// Fixed: the scan used to end the header section at the first line that was no field
    /// (or at `From :`), so a From after one escaped the check against the user's senders
    /// while mail-parser, the DKIM signer and the list-header stripping all read it.
    #[test]
    fn from_past_a_line_that_is_no_field_is_seen() {
        let table: [(&[u8], &[&str]); 3] = [
            (
                b"Subject: s\r\nbroken line\r\nFrom: ceo@bank.example\r\n\r\nbody",
                &["ceo@bank.example"],
            ),
            (b"From : ceo@bank.example\r\n\r\n", &["ceo@bank.example"]),
            (b"no header here\r\nFrom: a@b.org\r\n", &["a@b.org"]),
        ];
        for (msg, want) in table {
            assert_eq!(scan(msg).from, want, "{}", String::from_utf8_lossy(msg));
        }
        assert!(scan(b"no header here\r\nDate: x\r\n").has_date);
    }

    #[test]
    fn from_address_lists() {
        let table: [(&[u8], &[&str]); 7] = [
            (
                b"From: Jane <Jane@Example.org>\r\n\r\n",
                &["jane@example.org"],
            ),
            (b"From: jane@example.org\r\n\r\n", &["jane@example.org"]),
            (
                b"From: jane@example.org (Jane)\r\n\r\n",
                &["jane@example.org"],
            ),
            (
                b"From: \"Doe, Jane\" <jane@x.org>,\r\n bob@y.org\r\n\r\n",
                &["jane@x.org", "bob@y.org"],
            ),
            (
                b"From: \"a@b.org via list\" <evil@c.org>\r\n\r\n",
                &["evil@c.org"],
            ),
            (b"Subject: x\r\n\r\nFrom: a@b.org\r\n", &[]),
            (b"From: undisclosed\r\n\r\n", &[]),
        ];
        for (msg, want) in table {
            assert_eq!(scan(msg).from, want, "{}", String::from_utf8_lossy(msg));
        }
    }

    /// Fixed (issue 13): only the first From was read, so `From: bob` then `From: alice` was
    /// held to bob's rights alone, and a message with no From but `Sender: alice` not at all.
    #[test]
    fn every_from_and_sender_is_seen() {
        let table: [(&[u8], &[&str], usize); 6] = [
            (
                b"From: bob@x.org\r\nFrom: alice@y.org\r\n\r\n",
                &["bob@x.org", "alice@y.org"],
                2,
            ),
            (b"Sender: Alice <alice@y.org>\r\n\r\n", &["alice@y.org"], 0),
            (
                b"From: bob@x.org\r\nSender: alice@y.org\r\n\r\n",
                &["bob@x.org", "alice@y.org"],
                1,
            ),
            (
                b"From: bob@x.org\r\nfrom: Bob@X.org\r\n\r\n",
                &["bob@x.org"],
                2,
            ),
            (b"From:\r\n\r\n", &[], 1),
            // A group is no mailbox-list: its members are still held to the user's senders.
            (
                b"From: Team: a@x.org, b@y.org;\r\n\r\n",
                &["a@x.org", "b@y.org;"],
                1,
            ),
        ];
        for (msg, want, fields) in table {
            let facts = scan(msg);
            assert_eq!(facts.from, want, "{}", String::from_utf8_lossy(msg));
            assert_eq!(
                facts.from_fields,
                fields,
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn repairs() {
        let (add, id) = submission_repairs(&HeaderFacts::default(), "D", "<n@h>");
        assert_eq!(add, "Date: D\r\nMessage-ID: <n@h>\r\n");
        assert_eq!(id, "<n@h>");
        let facts = HeaderFacts {
            has_date: true,
            message_id: Some("<o@h>".into()),
            ..HeaderFacts::default()
        };
        assert_eq!(
            submission_repairs(&facts, "D", "<n@h>"),
            (String::new(), "<o@h>".into())
        );
    }

    #[test]
    fn trace_field() {
        let t = Trace {
            helo: "client\r\nX-Injected: 1",
            client_ip: None,
            hostname: "mx.example",
            protocol: "ESMTPSA",
            queue_id: "ABC",
            date: "D",
        };
        let r = received(&t);
        assert!(
            r.starts_with("Received: from clientX-Injected:1\r\n\tby mx.example"),
            "{r}"
        );
    }
}
