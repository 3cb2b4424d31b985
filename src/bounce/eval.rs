//! Evaluation of the bounce parser against the shared corpus (`corpus/bounces/README.md`):
//! the two figures it defines (score, status agreement) over the verified rows of `bsd/`, plus
//! a panic count and parse times over every file of every folder.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::bounce::parse::{Class, Report, parse};

/// The figures and what went wrong, for `herald bounce eval` and the corpus test.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    /// Rows scored (bsd, verified, real recipient, reason not delivered/undefined).
    pub rows: usize,
    /// Rows where the parser reports the recipient with the expected class.
    pub matched: usize,
    pub score: f64,
    /// Scored rows whose status is a real code.
    pub status_rows: usize,
    pub status_matched: usize,
    pub status_agreement: f64,
    /// Files parsed over all folders.
    pub files: usize,
    pub panics: usize,
    pub panicked_files: Vec<String>,
    pub median_parse_us: u64,
    pub max_parse_us: u64,
    /// Rows the parser missed or classed differently.
    pub misses: Vec<Miss>,
    /// Rows whose real status the parser did not report.
    pub status_misses: Vec<Miss>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub file: String,
    pub recipient: String,
    pub expected_class: Class,
    pub expected_status: Option<String>,
    /// What the parser reported for that recipient, if anything.
    pub got: Option<Got>,
    /// Every recipient the parser reported for the file.
    pub found: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Got {
    pub class: Class,
    pub status: Option<String>,
    pub reason: String,
    pub diagnostic: Option<String>,
}

/// Folders of the corpus; all are parsed, only `bsd/` is scored.
const FOLDERS: &[&str] = &["bsd", "dos", "mac", "err", "not", "tmp"];

/// Runs the evaluation on `corpus_dir` (e.g. `…/bounces/public`, next to `public.jsonl`).
/// `None` when the corpus or its expectations are absent.
pub fn evaluate(corpus_dir: &Path) -> Option<Evaluation> {
    let name = corpus_dir.file_name()?.to_str()?;
    let jsonl = corpus_dir.parent()?.join(format!("{name}.jsonl"));
    let expectations = std::fs::read_to_string(jsonl).ok()?;
    if !corpus_dir.is_dir() {
        return None;
    }
    let (reports, timing) = parse_all(corpus_dir);
    let mut e = Evaluation {
        files: timing.files,
        panics: timing.panicked.len(),
        panicked_files: timing.panicked,
        median_parse_us: timing.median_us,
        max_parse_us: timing.max_us,
        ..Evaluation::default()
    };
    for row in expectations
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        score_row(&row, &reports, &mut e);
    }
    e.score = ratio(e.matched, e.rows);
    e.status_agreement = ratio(e.status_matched, e.status_rows);
    Some(e)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

struct Timing {
    files: usize,
    panicked: Vec<String>,
    median_us: u64,
    max_us: u64,
}

/// Parses every file of every folder (each under `catch_unwind`); keeps the `bsd/` reports.
fn parse_all(dir: &Path) -> (HashMap<String, Report>, Timing) {
    let mut reports = HashMap::new();
    let mut times = Vec::new();
    let mut panicked = Vec::new();
    for folder in FOLDERS {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let file = format!(
                "{folder}/{}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            );
            let started = Instant::now();
            let result = std::panic::catch_unwind(|| parse(&bytes));
            times.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            match result {
                Ok(r) if *folder == "bsd" => {
                    reports.insert(file, r);
                }
                Ok(_) => {}
                Err(_) => panicked.push(file),
            }
        }
    }
    times.sort_unstable();
    let timing = Timing {
        files: times.len(),
        panicked,
        median_us: times.get(times.len() / 2).copied().unwrap_or_default(),
        max_us: times.last().copied().unwrap_or_default(),
    };
    (reports, timing)
}

fn score_row(row: &Value, reports: &HashMap<String, Report>, e: &mut Evaluation) {
    let s = |k: &str| row.get(k).and_then(Value::as_str);
    let b = |k: &str| row.get(k).and_then(Value::as_bool).unwrap_or(false);
    let (Some(file), Some(recipient)) = (s("file"), s("recipient")) else {
        return;
    };
    let reason = s("reason").unwrap_or_default();
    if !file.starts_with("bsd/")
        || !b("verified")
        || b("recipient_is_placeholder")
        || matches!(reason, "delivered" | "undefined")
    {
        return;
    }
    let expected = if b("is_arf") {
        Class::Complaint
    } else if reason == "vacation" {
        Class::AutoReply
    } else if b("hardbounce") {
        Class::Hard
    } else {
        Class::Soft
    };
    let status = s("status").filter(|_| !b("status_is_sisimai_pseudo"));
    let report = reports.get(file);
    let mine: Vec<_> = report
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| {
                    f.recipient
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(recipient))
                })
                .collect()
        })
        .unwrap_or_default();
    let miss = || Miss {
        file: file.to_string(),
        recipient: recipient.to_string(),
        expected_class: expected,
        expected_status: s("status").map(str::to_string),
        got: mine.first().map(|f| Got {
            class: f.class,
            status: f.status.clone(),
            reason: f.reason.clone(),
            diagnostic: f.diagnostic.clone(),
        }),
        found: report
            .map(|r| {
                r.findings
                    .iter()
                    .filter_map(|f| f.recipient.clone())
                    .collect()
            })
            .unwrap_or_default(),
    };
    e.rows += 1;
    if mine.iter().any(|f| f.class == expected) {
        e.matched += 1;
    } else {
        e.misses.push(miss());
    }
    if let Some(status) = status {
        e.status_rows += 1;
        if mine.iter().any(|f| f.status.as_deref() == Some(status)) {
            e.status_matched += 1;
        } else {
            e.status_misses.push(miss());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `public/` of the corpus (`$HERALD_CORPUS`, else `../shared/corpus/bounces`); without
    /// it the test skips, or fails under `HERALD_REQUIRE_TOOLS=1` (as `tests/common/tools.rs`).
    fn corpus() -> Option<std::path::PathBuf> {
        let base = std::env::var_os("HERALD_CORPUS").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces"),
            std::path::PathBuf::from,
        );
        let dir = base.join("public");
        if dir.is_dir() {
            return Some(dir);
        }
        let why = format!("no bounce corpus at {}", dir.display());
        assert!(
            std::env::var("HERALD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "HERALD_REQUIRE_TOOLS=1 and {why} (set HERALD_CORPUS)"
        );
        eprintln!("SKIP: {why}");
        None
    }

    #[test]
    fn corpus_figures() {
        let Some(dir) = corpus() else {
            return;
        };
        let Some(e) = evaluate(&dir) else {
            panic!("corpus present but not readable");
        };
        eprintln!(
            "score {:.3} ({}/{}), status {:.3} ({}/{}), {} files, {} panics, median {} µs, max {} µs",
            e.score,
            e.matched,
            e.rows,
            e.status_agreement,
            e.status_matched,
            e.status_rows,
            e.files,
            e.panics,
            e.median_parse_us,
            e.max_parse_us
        );
        assert_eq!(e.panics, 0, "{:?}", e.panicked_files);
        assert!(e.score >= 0.95, "score {}", e.score);
        assert!(e.status_agreement >= 0.90, "status {}", e.status_agreement);
    }

    /// The `dos/` and `mac/` copies parse like their `bsd/` originals.
    #[test]
    fn same_reports_whatever_the_line_ends() {
        let Some(dir) = corpus() else {
            return;
        };
        let mut differ = Vec::new();
        for folder in ["dos", "mac"] {
            let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
                return;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name();
                let (Ok(copy), Ok(orig)) = (
                    std::fs::read(e.path()),
                    std::fs::read(dir.join("bsd").join(&name)),
                ) else {
                    continue;
                };
                let (a, b) = (parse(&copy), parse(&orig));
                let brief = |r: &Report| {
                    r.findings
                        .iter()
                        .map(|f| (f.recipient.clone(), f.status.clone(), f.class))
                        .collect::<Vec<_>>()
                };
                if brief(&a) != brief(&b) {
                    differ.push(format!("{folder}/{}", name.to_string_lossy()));
                }
            }
        }
        assert!(differ.is_empty(), "{differ:?}");
    }
}

#[cfg(test)]
mod debug;
