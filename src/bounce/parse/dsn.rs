//! RFC 3464 / RFC 6533 delivery-status fields: per-recipient groups (`Final-Recipient`,
//! `Action`, `Status`, `Diagnostic-Code` …), read from a `message/delivery-status` part or from
//! field blocks quoted in a human-readable part.

use super::text::{address_in, enhanced_status};

/// One per-recipient group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

impl Record {
    pub fn recipient(&self) -> Option<&str> {
        self.final_recipient
            .as_deref()
            .or(self.original_recipient.as_deref())
    }

    /// Whether this group reports a failure or a delay (not a success or a relay).
    pub fn is_failure(&self) -> bool {
        match self.action.as_deref() {
            Some(a)
                if a.starts_with("deliver")
                    || a.starts_with("relay")
                    || a.starts_with("expand") =>
            {
                false
            }
            Some(_) => true,
            None => !self.status.as_deref().is_some_and(|s| s.starts_with('2')),
        }
    }
}

/// Field lines longer than this are cut (a diagnostic is one line in the end anyway).
const MAX_FIELD: usize = 2048;
/// Groups read from one text.
const MAX_RECORDS: usize = 200;

/// Reads every per-recipient group in `text`. Groups end at blank lines or when a second
/// `Final-Recipient` starts; fields may be folded onto indented continuation lines.
pub fn records(text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut cur = Record::default();
    let mut field: Option<(String, String)> = None;
    for raw in text.lines() {
        if out.len() >= MAX_RECORDS {
            break;
        }
        let line = unquote(raw);
        if line.trim().is_empty() {
            flush_field(&mut field, &mut cur, &mut out);
            push(&mut cur, &mut out);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = field.as_mut()
                && v.len() < MAX_FIELD
            {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        flush_field(&mut field, &mut cur, &mut out);
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() && !name.contains(' ') {
                field = Some((name, value.trim().to_string()));
            }
        }
    }
    flush_field(&mut field, &mut cur, &mut out);
    push(&mut cur, &mut out);
    out
}

/// Strips a leading `> ` quote (forwarded bounces).
fn unquote(line: &str) -> &str {
    let mut l = line;
    while let Some(rest) = l.strip_prefix('>') {
        l = rest.strip_prefix(' ').unwrap_or(rest);
    }
    l
}

fn push(cur: &mut Record, out: &mut Vec<Record>) {
    if cur.recipient().is_some() && out.len() < MAX_RECORDS {
        out.push(std::mem::take(cur));
    } else {
        *cur = Record::default();
    }
}

fn flush_field(field: &mut Option<(String, String)>, cur: &mut Record, out: &mut Vec<Record>) {
    let Some((name, value)) = field.take() else {
        return;
    };
    let value = super::mime::truncate(&value, MAX_FIELD).to_string();
    match name.as_str() {
        "final-recipient" => {
            if cur.final_recipient.is_some() {
                push(cur, out);
            }
            cur.final_recipient = recipient_value(&value);
        }
        "x-actual-recipient" if cur.final_recipient.is_none() => {
            cur.final_recipient = recipient_value(&value);
        }
        "original-recipient" => {
            if cur.original_recipient.is_some() {
                push(cur, out);
            }
            cur.original_recipient = recipient_value(&value);
        }
        "action" => {
            cur.action = value
                .split_whitespace()
                .next()
                .map(|a| a.trim_end_matches(';').to_ascii_lowercase());
        }
        "status" => cur.status = enhanced_status(&value),
        "diagnostic-code" => {
            let v = value
                .split_once(';')
                .filter(|(t, _)| t.len() < 16 && !t.contains(' '))
                .map_or(value.as_str(), |(_, v)| v)
                .trim();
            if !v.is_empty() {
                cur.diagnostic = Some(v.to_string());
            }
        }
        _ => {}
    }
}

/// `rfc822; <user@example.org>` → `user@example.org` (lower-cased).
fn recipient_value(value: &str) -> Option<String> {
    let v = value
        .split_once(';')
        .filter(|(t, _)| t.len() < 16 && !t.contains('@'))
        .map_or(value, |(_, v)| v);
    address_in(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        let text = "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; <A@Example.org>\nAction: failed\nStatus: 5.1.1 (user unknown)\nDiagnostic-Code: smtp; 550 5.1.1\n  no such user\nFinal-Recipient: RFC822; b@example.org\nAction: delayed\nStatus: 4.4.7\n\nOriginal-Recipient: rfc822;c@example.org\nFinal-Recipient: rfc822;c@example.org\nAction: delivered\nStatus: 2.0.0\n";
        let r = records(text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].final_recipient.as_deref(), Some("a@example.org"));
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 no such user"));
        assert!(r[0].is_failure());
        assert_eq!(r[1].action.as_deref(), Some("delayed"));
        assert!(r[1].is_failure());
        assert_eq!(r[2].original_recipient.as_deref(), Some("c@example.org"));
        assert!(!r[2].is_failure());
    }

    #[test]
    fn quoted_forward() {
        let r = records(
            "> Final-Recipient: RFC822; x@example.com\n> Action: failed\n> Status: 5.1.1\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
    }
}
