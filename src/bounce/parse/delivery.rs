//! Delivery failure reports: the per-recipient DSN fields when there are any, else the
//! failed recipients found in the human-readable text (see `human`), else the recipients
//! named by `X-Failed-Recipients` or the returned message.

use super::context::{Context, is_returned};
use super::dsn::{self, Record};
use super::human::{self, Hit};
use super::mime::Message;
use super::text::{addresses_in, enhanced_status, lower, one_line, statuses};
use super::{Finding, Found, Kind, failure};

/// Bytes of report text kept.
const MAX_TEXT: usize = 256 << 10;

/// `fallback`: also accept recipients named only outside the text (`X-Failed-Recipients`, the
/// returned message's `To`).
pub fn report(msg: &Message, ctx: &Context, fallback: bool) -> Option<Found> {
    let text = report_text(msg);
    let lines = human::report_lines(&text);
    let records = dsn_records(msg);
    if !records.is_empty() {
        let hits = human::scan(&lines, &ctx.exclude);
        let failed: Vec<&Record> = records.iter().filter(|r| r.is_failure()).collect();
        let stage = if failed.len() == 1 {
            stage_lines(&lines)
        } else {
            String::new()
        };
        let findings = failed
            .iter()
            .map(|r| from_record(r, &hits, &lines, failed.len(), &stage))
            .collect();
        return Some((Kind::Dsn, findings, None));
    }
    if !ctx.looks_like_bounce(msg) && !says_failed(&lines) {
        return None;
    }
    let mut hits = human::scan(&lines, &ctx.exclude);
    if hits.is_empty() && fallback {
        hits = fallback_recipients(msg, ctx, &lines);
    }
    if hits.is_empty() {
        return None;
    }
    let single = hits.len() == 1;
    let stage = if single {
        stage_lines(&lines)
    } else {
        String::new()
    };
    let findings = hits
        .iter()
        .map(|h| {
            let status =
                last_status(&h.text).or_else(|| single.then(|| report_status(&lines)).flatten());
            failure(Some(h.recipient.clone()), status, None, &h.text, &stage)
        })
        .collect();
    Some((Kind::Dsn, findings, None))
}

fn from_record(r: &Record, hits: &[Hit], lines: &[&str], failed: usize, stage: &str) -> Finding {
    let rcpt = r.recipient().map(str::to_string);
    let hit = hits
        .iter()
        .find(|h| Some(h.recipient.as_str()) == rcpt.as_deref());
    let diag = match (&r.diagnostic, hit) {
        (Some(d), _) => d.clone(),
        (None, Some(h)) => h.text.clone(),
        (None, None) if failed == 1 => one_line(&explanation(lines), 2000),
        (None, None) => String::new(),
    };
    let status = pick_status(r.status.as_deref(), &diag);
    let context = match hit {
        Some(h) if h.text != diag => format!("{} {stage}", h.text),
        _ => stage.to_string(),
    };
    failure(rcpt, status, r.action.clone(), &diag, context.trim())
}

/// Lines that name the SMTP stage of a refusal (`in reply to RCPT TO command`, `>>> DATA`,
/// `after end of data` …), joined.
fn stage_lines(lines: &[&str]) -> String {
    const MARKERS: &[&str] = &[
        "in reply to",
        ">>> ",
        "after rcpt",
        "after end of data",
        "after data",
        "after mail from",
        "does not like recipient",
        "after i sent",
        "rcpt_to",
        "rcpt command",
        "did not like our",
        "rcpt",
    ];
    let found: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            let l = lower(l);
            MARKERS.iter().any(|m| l.contains(m))
        })
        .take(8)
        .collect();
    super::mime::truncate(&found.join(" "), 600).to_string()
}

/// The code the remote reply names (its last one: an MTA's own code may precede the remote's),
/// else the DSN's `Status`. A reply code that says nothing finer than its subject (`X.Y.0`,
/// "other or undefined" in RFC 3463: `4.3.0`, `5.0.0`) does not replace a finer `Status`
/// (Herald's own expiry DSN: `Status: 4.4.7` beside a last reply of `421 4.3.0`).
fn pick_status(field: Option<&str>, diag: &str) -> Option<String> {
    let from_diag = last_status(diag);
    match (field, from_diag) {
        (Some(s), Some(d)) if d.ends_with(".0") && !s.trim().ends_with(".0") => {
            Some(s.trim().to_string())
        }
        (_, Some(d)) => Some(d),
        (s, None) => s.map(str::to_string),
    }
}

/// The last enhanced status code in `text`.
fn last_status(text: &str) -> Option<String> {
    statuses(text).pop()
}

/// Per-recipient DSN groups: from `delivery-status` parts, else field blocks in the text.
fn dsn_records(msg: &Message) -> Vec<Record> {
    let typed: Vec<Record> = msg
        .leaves
        .iter()
        .filter(|l| l.ctype.mime.ends_with("delivery-status"))
        .flat_map(|l| dsn::records(&l.text))
        .collect();
    if !typed.is_empty() {
        return typed;
    }
    msg.leaves
        .iter()
        .filter(|l| l.ctype.mime.starts_with("text/") && !is_returned(l))
        .filter(|l| {
            let t = lower(&l.text);
            t.contains("final-recipient:") || t.contains("original-recipient:")
        })
        .flat_map(|l| dsn::records(&l.text))
        .filter(|r| r.action.is_some() || r.status.is_some())
        .collect()
}

/// The human-readable text of the report: its text parts (HTML stripped when there is no plain
/// text), without the returned message.
pub fn report_text(msg: &Message) -> String {
    let texts: Vec<&super::mime::Leaf> = msg
        .leaves
        .iter()
        .filter(|l| l.ctype.mime.starts_with("text/") && !is_returned(l))
        .collect();
    let plain: Vec<String> = texts
        .iter()
        .filter(|l| l.ctype.mime != "text/html")
        .map(|l| l.text.clone())
        .collect();
    let joined = if plain.is_empty() {
        texts
            .iter()
            .map(|l| strip_html(&l.text))
            .collect::<Vec<_>>()
            .join("\n\n")
    } else {
        plain.join("\n\n")
    };
    super::mime::truncate(&joined, MAX_TEXT).to_string()
}

/// Crude tag removal; enough to find addresses and replies in an HTML-only report.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Whether the text says a delivery failed (for reports whose headers do not).
fn says_failed(lines: &[&str]) -> bool {
    const PHRASES: &[&str] = &[
        "could not be delivered",
        "couldn't be delivered",
        "was not delivered",
        "undeliverable",
        "delivery failed",
        "delivery has failed",
        "permanent error",
        "permanent fatal",
        "wasn't able to deliver",
        "unable to deliver",
        "following address",
        "following recipient",
        "did not reach",
        "not be delivered",
        "failed permanently",
        "error delivering",
        "returned to sender",
        "delivery to the following",
        "no such user",
        "user unknown",
        "invalid user",
        "requested action not taken",
        "delivery error",
    ];
    lines.iter().take(200).any(|l| {
        let l = lower(l);
        PHRASES.iter().any(|p| l.contains(p))
    })
}

/// Recipients named outside the text: `X-Failed-Recipients`, else the returned message's `To`
/// when it names one address.
fn fallback_recipients(msg: &Message, ctx: &Context, lines: &[&str]) -> Vec<Hit> {
    let mut rcpts: Vec<String> = msg
        .headers
        .all("x-failed-recipients")
        .flat_map(addresses_in)
        .collect();
    if rcpts.is_empty() {
        let to: Vec<String> = ctx
            .original
            .as_ref()
            .map(|o| o.all("to").flat_map(addresses_in).collect())
            .unwrap_or_default();
        if to.len() == 1 {
            rcpts = to;
        }
    }
    rcpts.dedup();
    let text = one_line(&explanation(lines), 2000);
    rcpts
        .into_iter()
        .take(100)
        .map(|recipient| Hit {
            recipient,
            text: text.clone(),
        })
        .collect()
}

/// The lines of the report that carry a reply or status code, else the whole report text.
fn explanation(lines: &[&str]) -> String {
    let coded: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            !statuses(l).is_empty()
                || super::text::reply_code(l.trim_start()).is_some_and(|_| {
                    l.trim_start()
                        .as_bytes()
                        .get(3)
                        .is_some_and(|b| *b == b' ' || *b == b'-')
                })
        })
        .collect();
    if coded.is_empty() {
        lines.join(" ")
    } else {
        coded.join(" ")
    }
}

/// The first enhanced status anywhere in the report text.
fn report_status(lines: &[&str]) -> Option<String> {
    lines.iter().find_map(|l| enhanced_status(l))
}
