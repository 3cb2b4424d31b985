//! Ignored helpers for tuning the parser on the corpus: they print the misses, every scored
//! row with what the parser says, and the rows outside the figures.
//! `cargo test --lib bounce::eval::debug -- --ignored --nocapture`

use super::*;

/// `cargo test --lib bounce::eval::debug::misses -- --ignored --nocapture`
#[test]
#[ignore = "prints the corpus misses for debugging"]
fn misses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces/public");
    let Some(e) = evaluate(&dir) else {
        return;
    };
    for m in e
        .misses
        .iter()
        .chain(std::iter::once(&Miss {
            file: "----- status misses -----".into(),
            recipient: String::new(),
            expected_class: Class::Unknown,
            expected_status: None,
            got: None,
            found: Vec::new(),
        }))
        .chain(&e.status_misses)
    {
        eprintln!("{}", serde_json::to_string(m).unwrap_or_default());
    }
    eprintln!("score {:.3} status {:.3}", e.score, e.status_agreement);
}

/// `cargo test --lib bounce::eval::debug::all_rows -- --ignored --nocapture`: every scored row with
/// what the parser says.
#[test]
#[ignore = "prints every scored row"]
fn all_rows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces/public");
    let Ok(lines) = std::fs::read_to_string(dir.with_extension("jsonl")) else {
        return;
    };
    for row in lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let Some(file) = row.get("file").and_then(Value::as_str) else {
            continue;
        };
        let raw = std::fs::read(dir.join(file)).unwrap_or_default();
        let mut reports = HashMap::new();
        reports.insert(file.to_string(), parse(&raw));
        let mut e = Evaluation::default();
        score_row(&row, &reports, &mut e);
        if e.rows == 0 {
            continue;
        }
        let r = &reports[file];
        let rcpt = row
            .get("recipient")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let f = r
            .findings
            .iter()
            .find(|f| f.recipient.as_deref() == Some(rcpt));
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            if e.matched == 1 { "OK" } else { "MISS" },
            file,
            row.get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            row.get("status").and_then(Value::as_str).unwrap_or("-"),
            f.map_or("-".into(), |f| format!("{:?}/{}", f.class, f.reason)),
            f.and_then(|f| f.status.clone()).unwrap_or("-".into()),
            f.and_then(|f| f.diagnostic.clone()).unwrap_or_default(),
        );
    }
}

/// Rows the figures leave out (unverified, `err/`, `tmp/`): a rough check of how the rules
/// carry over to messages they were not tuned on.
#[test]
#[ignore = "prints the rows outside the figures"]
fn loose_rows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces/public");
    let Ok(lines) = std::fs::read_to_string(dir.with_extension("jsonl")) else {
        return;
    };
    let (mut rows, mut ok) = (0, 0);
    for mut row in lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let file = row
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let verified = row
            .get("verified")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if file.starts_with("bsd/") && verified
            || file.starts_with("dos/")
            || file.starts_with("mac/")
        {
            continue;
        }
        let raw = std::fs::read(dir.join(&file)).unwrap_or_default();
        let key = format!("bsd/{file}");
        let mut reports = HashMap::new();
        reports.insert(key.clone(), parse(&raw));
        if let Some(o) = row.as_object_mut() {
            o.insert("file".into(), Value::String(key));
            o.insert("verified".into(), Value::Bool(true));
        }
        let mut e = Evaluation::default();
        score_row(&row, &reports, &mut e);
        rows += e.rows;
        ok += e.matched;
        for m in &e.misses {
            println!("{}", serde_json::to_string(m).unwrap_or_default());
        }
    }
    println!("loose rows {ok}/{rows}");
}
