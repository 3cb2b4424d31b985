//! Pure header work on accepted messages: find the header block, read Message-ID, and build the
//! trace and RFC 6409 §8 repairs (Date, Message-ID) that are prepended before storing.

/// What the session needs to know about a message's header block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderFacts {
    pub has_date: bool,
    pub message_id: Option<String>,
    /// Received fields: the hops the message has made (loop detection).
    pub received: usize,
    /// The addresses of the From field, lower-cased (held to a user's `senders`).
    pub from: Vec<String>,
}

/// Iterates unfolded header fields `(name, value)` of the header block.
fn fields(msg: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for raw in msg.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                out.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
            // Not a header: the header block ends here (no empty line before the body).
            _ => break,
        }
        if out.len() > 1000 {
            break;
        }
    }
    out
}

/// The domain of the first address in the From header, lower-cased (the DKIM signing domain).
pub fn from_domain(msg: &[u8]) -> Option<String> {
    let (_, value) = fields(msg).into_iter().find(|(name, _)| name == "from")?;
    let first = mailboxes(&value).into_iter().next()?;
    let domain = first.rsplit_once('@')?.1.trim();
    (!domain.is_empty()).then(|| domain.to_string())
}

/// The addresses of a From field's value (a mailbox list, RFC 5322 §3.6.2), lower-cased.
/// Commas inside quoted display names do not split.
fn mailboxes(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut angle) = (false, false);
    for c in value.chars() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
        .iter()
        .filter_map(|part| {
            let addr = match (part.rfind('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => &part[a + 1..b],
                _ => part.split_whitespace().find(|w| w.contains('@'))?,
            };
            let addr = addr.trim();
            addr.contains('@').then(|| addr.to_ascii_lowercase())
        })
        .collect()
}

pub fn scan(msg: &[u8]) -> HeaderFacts {
    let mut facts = HeaderFacts::default();
    let mut seen_from = false;
    for (name, value) in fields(msg) {
        match name.as_str() {
            "date" => facts.has_date = true,
            "received" => facts.received += 1,
            "from" if !seen_from => {
                seen_from = true;
                facts.from = mailboxes(&value);
            }
            "message-id" if facts.message_id.is_none() => {
                let v = value.trim();
                facts.message_id = Some(v.chars().take(998).collect());
            }
            _ => {}
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
            }
        );
        assert_eq!(scan(b"Subject: hi\n\nbody"), HeaderFacts::default());
        assert_eq!(
            scan(b"no header here\r\nDate: x\r\n"),
            HeaderFacts::default()
        );
        assert_eq!(scan(b""), HeaderFacts::default());
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

    #[test]
    fn from_domains() {
        assert_eq!(
            from_domain(b"From: Jane <jane@Example.ORG>\r\n\r\n").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            from_domain(b"From: jane@example.org\r\n\r\n").as_deref(),
            Some("example.org")
        );
        assert_eq!(from_domain(b"Subject: x\r\n\r\nFrom: a@b.c\r\n"), None);
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
