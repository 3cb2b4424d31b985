//! Keeps the code to ARCHITECTURE.md, in the manner of rust-analyzer's tidy test: it reads
//! `src/` as text and checks the module dependencies against the allow-list the document
//! prints (its `deps` block), the crates with one home, who writes to an SMTP session's
//! connection, statics, detached spawns, module docs and file sizes. Test code (files named
//! `tests.rs`, `testing.rs`, `*_tests.rs`, folders named `tests`, and a trailing
//! `#[cfg(test)] mod tests { … }`) is left out: tests may reach further.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files over 400 lines, each with why it stays whole.
const LONG_FILES: &[(&str, &str)] = &[(
    "bounce/parse/human.rs",
    "one algorithm: the human-readable bounce text scanner and its phrase tables",
)];

/// Crates that only these files (or folders, ending in `/`) may name.
const ONE_HOME: &[(&str, &[&str])] = &[
    ("sled", &["store/"]),
    (
        "mail_send",
        &["delivery/client.rs", "delivery/transaction.rs"],
    ),
    ("mail_parser", &["smtp/policy.rs"]),
    ("mail_auth", &["delivery/dkim.rs"]),
    ("axum", &["http/"]),
    ("hyper", &["http/"]),
    ("hyper_util", &["http/"]),
    ("tower_service", &["http/"]),
    ("figment", &["config/"]),
    ("tracing_subscriber", &["logging.rs"]),
];

struct Source {
    /// Relative to `src/`, with `/`.
    path: String,
    /// Without its test code.
    code: String,
    lines: usize,
    first_line: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "tests.rs"
        || name == "testing.rs"
        || name.ends_with("_tests.rs")
        || path.split('/').any(|part| part == "tests")
}

/// The file without a trailing `#[cfg(test)] mod tests { … }`.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<Source>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(Source {
                    code: if is_test_file(&rel) {
                        String::new()
                    } else {
                        without_tests(&text)
                    },
                    lines: text.lines().count(),
                    first_line: text.lines().next().unwrap_or_default().to_string(),
                    path: rel,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &src(), &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The top-level module a file belongs to (`queue/worker.rs` → `queue`, `net.rs` → `net`).
fn module_of(path: &str) -> Option<String> {
    let first = path.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules a piece of code names as `crate::x` or `crate::{x, y::z}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            out.extend(ident(rest));
        }
    }
    out.remove("self");
    out
}

fn ident(s: &str) -> Option<String> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| s[..end].to_string())
}

/// The `deps` block of ARCHITECTURE.md: module → the modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let start = doc
        .find("```deps\n")
        .expect("ARCHITECTURE.md has a ```deps block")
        + 8;
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (module, uses) = l.split_once(':').expect("`module: uses…`");
            let uses = uses.split_whitespace().map(String::from).collect();
            (module.trim().to_string(), uses)
        })
        .collect()
}

#[test]
fn module_dependencies_are_the_ones_architecture_md_prints() {
    let allowed = allowed();
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources() {
        let Some(module) = module_of(&s.path) else {
            continue;
        };
        let refs = actual.entry(module.clone()).or_default();
        refs.extend(crate_refs(&s.code).into_iter().filter(|r| *r != module));
    }
    let modules: BTreeSet<_> = actual.keys().cloned().collect();
    let listed: BTreeSet<_> = allowed.keys().cloned().collect();
    assert_eq!(
        modules, listed,
        "the modules under src/ and those in ARCHITECTURE.md's deps block differ"
    );
    let mut wrong = Vec::new();
    for (module, uses) in &actual {
        let may = &allowed[module];
        for extra in uses.difference(may) {
            wrong.push(format!(
                "{module} uses {extra}, which ARCHITECTURE.md does not allow"
            ));
        }
        for unused in may.difference(uses) {
            wrong.push(format!(
                "ARCHITECTURE.md lets {module} use {unused}, which it does not: strike it there"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_bounce_parser_and_classifier_are_pure() {
    for s in sources() {
        let pure = s.path.starts_with("bounce/parse") || s.path.starts_with("bounce/classify");
        if !pure {
            continue;
        }
        let refs = crate_refs(&s.code);
        let foreign: Vec<_> = refs
            .iter()
            .filter(|r| !matches!(r.as_str(), "mail" | "bounce"))
            .collect();
        assert!(foreign.is_empty(), "{} uses {foreign:?}", s.path);
    }
}

#[test]
fn crates_with_one_home_stay_there() {
    let mut wrong = Vec::new();
    for s in sources() {
        for (krate, homes) in ONE_HOME {
            let at_home = homes.iter().any(|h| {
                if h.ends_with('/') {
                    s.path.starts_with(h)
                } else {
                    s.path == *h
                }
            });
            let named = s.code.match_indices(&format!("{krate}::")).any(|(i, _)| {
                // `hyper::` inside `hyper_util::`'s name does not count, nor `foo_sled::`.
                i == 0
                    || !s.code.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && s.code.as_bytes()[i - 1] != b'_'
            });
            if named && !at_home {
                wrong.push(format!("{} names {krate}, whose home is {homes:?}", s.path));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn only_the_session_writes_to_an_smtp_connection() {
    for s in sources() {
        if !s.path.starts_with("smtp/") {
            continue;
        }
        let writes = s.code.contains("write_all(") || s.code.contains(".poll_write(");
        let may = matches!(s.path.as_str(), "smtp/session.rs" | "smtp/listener.rs");
        assert!(!writes || may, "{} writes to a connection", s.path);
    }
}

#[test]
fn no_statics_and_no_detached_spawns() {
    let mut wrong = Vec::new();
    for s in sources() {
        for (n, line) in s.code.lines().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub ")
                .or_else(|| t.strip_prefix("pub(crate) "))
                .unwrap_or(t);
            if t.starts_with("static ") {
                wrong.push(format!("{}:{}: a static: {line}", s.path, n + 1));
            }
            let detached = line.contains("tokio::spawn(") || line.contains("thread::spawn(");
            if detached && s.path != "store/flush.rs" {
                wrong.push(format!(
                    "{}:{}: spawned outside a tracker: {line}",
                    s.path,
                    n + 1
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_file_says_what_it_owns_and_stays_short() {
    let mut wrong = Vec::new();
    for s in sources() {
        if !s.first_line.starts_with("//!") {
            wrong.push(format!("{} does not start with a //! doc", s.path));
        }
        let excused = LONG_FILES.iter().any(|(p, _)| *p == s.path);
        if s.lines > 400 && !excused {
            wrong.push(format!("{} has {} lines (400 at most)", s.path, s.lines));
        }
    }
    for (p, _) in LONG_FILES {
        let s = sources().into_iter().find(|s| s.path == *p);
        if s.is_none_or(|s| s.lines <= 400) {
            wrong.push(format!(
                "{p} is excused for length but is short (or gone): drop it"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The parsing above, on a few shapes it must get right, so the checks cannot pass vacuously.
#[test]
fn the_reference_scanner_reads_paths_and_groups() {
    let code = "use crate::config::Settings;\nuse crate::{mail, store::{Store, QueueId}};\nlet x = crate::metrics::current();\nuse crate::self_made;";
    let got: Vec<_> = crate_refs(code).into_iter().collect();
    assert_eq!(got, ["config", "mail", "metrics", "self_made", "store"]);
    let tests = "fn a() {}\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n";
    assert!(crate_refs(&without_tests(tests)).is_empty());
    assert!(is_test_file("smtp/tests/bdat.rs") && is_test_file("store/spool_tests.rs"));
    assert_eq!(
        module_of("queue/scheduler/plan.rs").as_deref(),
        Some("queue")
    );
    assert_eq!(module_of("lib.rs"), None);
    assert!(allowed().contains_key("mail"));
}
