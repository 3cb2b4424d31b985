//! The human-readable part of a bounce, for the many servers that send no machine-readable
//! report (Exim, qmail, Postfix without DSN, Sendmail transcripts, Exchange, Gmail, Yahoo …):
//! find the failed recipients and the text that explains each failure.
//!
//! A recipient is an address that starts a line (`<user@example.org>:`, `  user@example.org`,
//! `550 <user@example.org>... User unknown`, `RCPT To:<user@example.org>`); its explanation is
//! the rest of that line and the lines after it up to the next recipient or section. When no
//! line starts with an address, lines that mention one next to delivery words are used.

use super::text::{address_spans, lower, one_line, reply_code};

/// Lines of report text looked at.
const MAX_LINES: usize = 3000;
/// Lines of explanation kept per recipient.
const MAX_BLOCK: usize = 16;
/// Recipients reported from one text.
const MAX_HITS: usize = 100;

/// One failed recipient found in the text, with the text that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub recipient: String,
    pub text: String,
}

/// The report text: lines up to the start of the returned original message, unquoted.
pub fn report_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut prev_blank = true;
    for raw in text.lines().take(MAX_LINES) {
        let line = unquote(raw);
        if is_cut(line, prev_blank) {
            break;
        }
        prev_blank = line.trim().is_empty();
        out.push(line);
    }
    out
}

fn unquote(line: &str) -> &str {
    let mut l = line;
    while let Some(rest) = l.strip_prefix('>') {
        if rest.starts_with(">>") || rest.starts_with("> ") && l.starts_with(">>>") {
            break;
        }
        l = rest.strip_prefix(' ').unwrap_or(rest);
    }
    l
}

/// Whether the returned original message starts at this line.
fn is_cut(line: &str, prev_blank: bool) -> bool {
    let l = lower(line.trim());
    let decorated = ["--", "==", "**", "__"].iter().any(|p| l.starts_with(p));
    const MARKERS: &[&str] = &[
        "original message",
        "copy of the message",
        "copy of your message",
        "copy of the original",
        "below this line",
        "returned message",
        "message follows",
        "headers follow",
        "original mail",
        "undelivered message",
        "unsent message",
        "message header",
        "original header",
        "enclosed is a copy",
    ];
    // Undecorated marker lines are short and end the sentence (`Original message headers:`).
    let sentence = l.len() < 40
        && (l.ends_with(':') || l.ends_with('.') || MARKERS.iter().any(|m| l.ends_with(m)));
    if (decorated || sentence) && MARKERS.iter().any(|m| l.contains(m)) {
        return true;
    }
    if l.starts_with("content-type: message/rfc822")
        || l.starts_with("content-type: text/rfc822-headers")
    {
        return true;
    }
    prev_blank
        && ["received: ", "return-path:", "received:from"]
            .iter()
            .any(|p| l.starts_with(p))
}

/// Finds failed recipients and their explanations in report lines.
pub fn scan(lines: &[&str], exclude: &[String]) -> Vec<Hit> {
    let starts = recipient_lines(lines, exclude);
    let mentioned = mentions(lines, exclude);
    let by_mention = starts.is_empty();
    let starts = if by_mention {
        mentioned
            .iter()
            .map(|(i, a, r)| (*i, a.clone(), *r, Lead::Sentence))
            .collect()
    } else {
        starts
    };
    let mut hits: Vec<Hit> = Vec::new();
    for (k, (i, addr, rest, lead)) in starts.iter().enumerate() {
        let prev = k
            .checked_sub(1)
            .and_then(|p| starts.get(p))
            .map_or(0, |s| s.0 + 1);
        let next = starts.get(k + 1).map_or(lines.len(), |s| s.0);
        let text = explanation(lines, (prev, *i, next), *rest, *lead);
        if let Some(h) = hits.iter_mut().find(|h| &h.recipient == addr) {
            append(&mut h.text, &text);
        } else if hits.len() < MAX_HITS {
            hits.push(Hit {
                recipient: addr.clone(),
                text,
            });
        }
    }
    // Sentences elsewhere about a recipient found add to its explanation
    // ("… wasn't delivered to x@example.org because the address couldn't be found").
    for (i, addr, _) in mentioned
        .into_iter()
        .filter(|m| !starts.iter().any(|s| s.0 == m.0))
    {
        if let Some(h) = hits.iter_mut().find(|h| h.recipient == addr) {
            append(
                &mut h.text,
                &one_line(lines.get(i).copied().unwrap_or_default(), 500),
            );
        }
    }
    hits
}

/// How a recipient was introduced, which says where its explanation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// The address starts the line; the explanation follows.
    Address,
    /// `554 <user@example.org>... Service unavailable`: the summary line of a session
    /// transcript, whose lines come before it.
    Reply,
    /// Named in a sentence; the reason may be in the paragraph before or after.
    Sentence,
}

/// Lines that start with a recipient: `(line index, address, offset of the rest, lead)`.
fn recipient_lines(lines: &[&str], exclude: &[String]) -> Vec<(usize, String, usize, Lead)> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| recipient_line(l).map(|(a, rest, coded)| (i, a, rest, coded)))
        // An address alone at the start of a line is a recipient even when it is also the
        // sender's (mail to oneself); one after a reply code may be the refused sender.
        .filter(|(_, a, _, coded)| {
            !(a.starts_with("mailer-daemon@") || *coded && excluded(a, exclude))
        })
        .map(|(i, a, rest, coded)| (i, a, rest, if coded { Lead::Reply } else { Lead::Address }))
        .collect()
}

/// The text explaining the recipient on line `at` (`span`: previous recipient line + 1, `at`,
/// next recipient line): the rest of that line and the lines after it, or the transcript lines
/// before a reply summary, or for a sentence the paragraphs around it.
fn explanation(lines: &[&str], span: (usize, usize, usize), rest: usize, lead: Lead) -> String {
    let (prev, at, next) = span;
    let line = lines.get(at).copied().unwrap_or_default();
    let first = line.get(rest..).unwrap_or_default();
    let first = first.trim_start_matches([':', '.', ',', ';', ' ', '\t']);
    let mut block = if lead == Lead::Reply {
        Vec::new()
    } else {
        block_after(lines, at + 1, next)
    };
    block.insert(0, first);
    if lead != Lead::Address || block.iter().all(|l| l.trim().is_empty()) {
        let mut before = block_before(lines, prev, at);
        before.extend(block);
        block = before;
    }
    if lower(line).contains("rcpt to") {
        // Keep the command: it tells a refused recipient from a refused message.
        if let Some(f) = block.iter_mut().find(|l| **l == first) {
            *f = line.trim();
        }
    }
    one_line(&block.join(" "), 2000)
}

/// Appends `more` to an explanation unless it is already there.
fn append(text: &mut String, more: &str) {
    if !more.is_empty() && !text.contains(more) && text.len() < 2000 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(more);
    }
}

/// Lines after a recipient line that belong to it: up to three paragraphs, ending early at a
/// section line (`----- … -----`).
fn block_after<'a>(lines: &[&'a str], from: usize, to: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut paragraphs = 0;
    let mut in_paragraph = false;
    for l in lines.get(from..to).unwrap_or_default() {
        let t = l.trim();
        if t.is_empty() {
            in_paragraph = false;
            continue;
        }
        if is_section(t) || is_dsn_field(t) {
            break;
        }
        if !in_paragraph {
            paragraphs += 1;
            in_paragraph = true;
            if paragraphs > 3 {
                break;
            }
        }
        out.push(t);
        if out.len() >= MAX_BLOCK {
            break;
        }
    }
    out
}

/// The paragraph just before a recipient line (not reaching back past `from`), for reports
/// that explain first and name the address after.
fn block_before<'a>(lines: &[&'a str], from: usize, at: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    for l in lines.get(from.min(at)..at).unwrap_or_default().iter().rev() {
        let t = l.trim();
        if t.is_empty() || is_section(t) || out.len() >= 4 {
            break;
        }
        out.push(t);
    }
    out.reverse();
    out
}

/// A machine-readable DSN field line (`Reporting-MTA:`, `Final-Recipient:` …), not prose.
fn is_dsn_field(t: &str) -> bool {
    const FIELDS: &[&str] = &[
        "reporting-mta:",
        "received-from-mta:",
        "arrival-date:",
        "final-recipient:",
        "original-recipient:",
        "action:",
        "status:",
        "remote-mta:",
        "last-attempt-date:",
    ];
    let t = lower(t);
    FIELDS.iter().any(|f| t.starts_with(f))
}

fn is_section(t: &str) -> bool {
    ["---", "===", "***", "___"]
        .iter()
        .any(|p| t.starts_with(p))
}

fn excluded(addr: &str, exclude: &[String]) -> bool {
    exclude.iter().any(|e| e == addr) || addr.starts_with("mailer-daemon@")
}

/// An address that starts a line: `(address, byte offset of the rest of the line, whether a
/// reply code precedes it)`.
fn recipient_line(line: &str) -> Option<(String, usize, bool)> {
    let l = lower(line);
    let mut pos = line.len() - line.trim_start().len();
    let head = l.get(pos..).unwrap_or_default();
    let mut coded = false;
    if let Some(bullet) = ["-- ", "- ", "* ", "• "]
        .iter()
        .find(|b| head.starts_with(*b))
    {
        pos += bullet.len();
    }
    let head = l.get(pos..).unwrap_or_default();
    if let Some(label) = LABELS.iter().find(|p| head.starts_with(*p)) {
        pos += label.len();
    } else if reply_code(head).is_some() && head.get(3..5) == Some(" <") {
        pos += 4; // `550 <user@example.org>... User unknown`
        coded = true;
    }
    while matches!(line.as_bytes().get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    if line.as_bytes().get(pos) == Some(&b'<') {
        pos += 1;
    }
    let rest = line.get(pos..)?;
    let &(a, e) = address_spans(rest).first()?;
    if a != 0 {
        return None;
    }
    let mut addr = rest.get(..e)?.to_ascii_lowercase();
    let mut after = rest.get(e..).unwrap_or_default();
    let mut end = pos + e;
    if let Some(a) = after.strip_prefix('>') {
        after = a;
        end += 1;
    }
    // `name@example.org <other@example.org>:` names the one in brackets.
    if let Some(inner) = after.strip_prefix(" <")
        && let Some(&(0, e2)) = address_spans(inner).first()
        && inner.get(e2..).is_some_and(|t| t.starts_with('>'))
    {
        addr = inner.get(..e2)?.to_ascii_lowercase();
        end += 2 + e2 + 1;
        after = inner.get(e2 + 1..).unwrap_or_default();
    }
    // An address followed by more words on the line must be set off by punctuation.
    let ok =
        after.is_empty() || after.starts_with([':', ',', ';', '.', ' ', '\t', '(', '[', ')', '"']);
    ok.then_some((addr, end, coded))
}

/// Labels that may precede a recipient at the start of a line.
const LABELS: &[&str] = &[
    ">>> rcpt to:",
    "rcpt to:",
    "recipient address:",
    "recipient:",
    "failed recipient:",
    "original recipient:",
];

/// Lines that mention an address together with delivery words (used when no line starts with
/// an address).
fn mentions(lines: &[&str], exclude: &[String]) -> Vec<(usize, String, usize)> {
    const WORDS: &[&str] = &[
        "deliver",
        "recipient",
        "rcpt",
        "mailbox",
        "user",
        "account",
        "failed",
        "address",
        "could not",
        "unable",
        "rejected",
        "unknown",
        "not listed",
    ];
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let l = lower(line);
        if !WORDS.iter().any(|w| l.contains(w)) || is_dsn_field(line.trim()) {
            continue;
        }
        for (a, e) in address_spans(line) {
            let addr = line.get(a..e).unwrap_or_default().to_ascii_lowercase();
            if !excluded(&addr, exclude) && !l.get(..a).unwrap_or_default().ends_with("mail from:<")
            {
                out.push((i, addr, e));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(text: &str) -> Vec<(String, String)> {
        scan(&report_lines(text), &["sender@example.org".to_string()])
            .into_iter()
            .map(|h| (h.recipient, h.text))
            .collect()
    }

    #[test]
    fn exim() {
        let t = "A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  kiji@example.jp\n    SMTP error from remote mail server after RCPT TO:<kiji@example.jp>:\n    host mx [192.0.2.1]: 550 5.1.1 <kiji@example.jp>... User Unknown\n\n------ This is a copy of the message, including all the headers. ------\n\nTo: other@example.net\n";
        let h = hits(t);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "kiji@example.jp");
        assert!(
            h[0].1
                .ends_with("550 5.1.1 <kiji@example.jp>... User Unknown"),
            "{}",
            h[0].1
        );
    }

    #[test]
    fn qmail_and_postfix() {
        let h = hits(
            "Hi.\n\n<a@example.net>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\n<b@example.net>: host mx said: 552 mailbox full\n\n--- Below this line is a copy of the message.\n\n<c@example.net>:\n",
        );
        assert_eq!(h.len(), 2);
        assert!(h[0].1.contains("550 5.1.1 no such user"));
        assert_eq!(h[1].0, "b@example.net");
        assert_eq!(h[1].1, "host mx said: 552 mailbox full");
    }

    #[test]
    fn mention_and_exclusion() {
        let h = hits(
            "From sender@example.org\nThere was an error delivering your mail to <x@example.com>.\n\n550 5.7.1 blocked\n",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "x@example.com");
        assert!(h[0].1.contains("550 5.7.1 blocked"));
    }

    #[test]
    fn transcript() {
        let h = hits(
            "   ----- Transcript of session follows -----\n>>> RCPT To:<m@example.co.jp>\n<<< 550 No such user here.\n550 <m@example.co.jp>... User unknown\n",
        );
        assert_eq!(h.len(), 1);
        assert!(h[0].1.contains("No such user"));
    }
}
