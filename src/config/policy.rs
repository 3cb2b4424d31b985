//! [`CompiledPolicy`]: the `policy` section turned once per load into what the content check
//! needs — the deny patterns as one size-bounded regex set, attachment extensions and MIME
//! types normalised — with problems named by key (`policy.deny[1].pattern`).

use super::Policy;
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};

/// Compiled program size allowed for one deny pattern (the regex crate's default is 10 MiB).
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Longest reason text: it becomes one SMTP reply line (at most 512 octets, RFC 5321).
pub const MAX_REASON_LEN: usize = 300;

/// The content policy in the form the submission check uses.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    /// All `policy.deny` patterns in config order; `None` when there are none.
    pub patterns: Option<RegexSet>,
    /// The reason of each pattern, same order.
    pub reasons: Vec<String>,
    /// Denied file name endings, lower case, without the leading dot (`exe`, `tar.gz`).
    pub extensions: Vec<String>,
    /// Denied MIME types, lower case `type/subtype`.
    pub mime_types: Vec<String>,
}

/// A problem in the `policy` section: the key and why.
pub type PolicyProblem = (String, String);

impl CompiledPolicy {
    /// Whether any rule looks past the headers (patterns or attachment types). Without one,
    /// only the header section is parsed.
    pub fn reads_content(&self) -> bool {
        self.patterns.is_some() || !self.extensions.is_empty() || !self.mime_types.is_empty()
    }

    /// Compiles `policy`; the first problem found is returned with its key.
    pub fn compile(policy: &Policy) -> Result<CompiledPolicy, PolicyProblem> {
        let mut reasons = Vec::with_capacity(policy.deny.len());
        for (i, rule) in policy.deny.iter().enumerate() {
            let key = |field: &str| format!("policy.deny[{i}].{field}");
            // Each pattern alone first, so that an error names its rule.
            RegexBuilder::new(&rule.pattern)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| (key("pattern"), format!("invalid regex: {e}")))?;
            check_reason(&rule.reason).map_err(|why| (key("reason"), why.to_string()))?;
            reasons.push(rule.reason.clone());
        }
        let patterns = if policy.deny.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(policy.deny.iter().map(|r| r.pattern.as_str()))
                .size_limit(PATTERN_SIZE_LIMIT.saturating_mul(policy.deny.len()))
                .build()
                .map_err(|e| {
                    (
                        "policy.deny".to_string(),
                        format!("the patterns together do not compile: {e}"),
                    )
                })?;
            Some(set)
        };
        let mut extensions = Vec::new();
        let mut mime_types = Vec::new();
        for (i, entry) in policy.deny_attachment_types.iter().enumerate() {
            let key = format!("policy.deny_attachment_types[{i}]");
            match normalise_type(entry) {
                Ok(AttachmentType::Extension(e)) => extensions.push(e),
                Ok(AttachmentType::Mime(m)) => mime_types.push(m),
                Err(why) => return Err((key, format!("{entry:?} {why}"))),
            }
        }
        Ok(CompiledPolicy {
            patterns,
            reasons,
            extensions,
            mime_types,
        })
    }
}

fn check_reason(reason: &str) -> Result<(), &'static str> {
    if reason.trim().is_empty() {
        return Err("must not be empty: it is the text of the 550 reply");
    }
    if reason.len() > MAX_REASON_LEN {
        return Err("is too long for an SMTP reply line (at most 300 characters)");
    }
    if !reason.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err("must be printable ASCII on one line (it is sent in an SMTP reply)");
    }
    Ok(())
}

enum AttachmentType {
    Extension(String),
    Mime(String),
}

/// `exe`, `.EXE` → extension `exe`; `Application/X-MSDownload` → MIME type, lower case.
fn normalise_type(entry: &str) -> Result<AttachmentType, &'static str> {
    let lower = entry.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if let Some((t, sub)) = lower.split_once('/') {
        return if token(t) && token(sub) {
            Ok(AttachmentType::Mime(lower))
        } else {
            Err("is not a MIME type of the form type/subtype")
        };
    }
    let ext = lower.trim_start_matches('.');
    if token(ext) && !ext.ends_with('.') {
        Ok(AttachmentType::Extension(ext.to_string()))
    } else {
        Err("is neither a file extension (\"exe\") nor a MIME type (\"application/zip\")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DenyRule;

    fn policy(deny: &[(&str, &str)], types: &[&str]) -> Policy {
        Policy {
            deny: deny
                .iter()
                .map(|(p, r)| DenyRule {
                    pattern: p.to_string(),
                    reason: r.to_string(),
                })
                .collect(),
            deny_attachment_types: types.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn compiles_and_normalises() {
        let c = CompiledPolicy::compile(&policy(
            &[("(?i)viagra", "No pills"), ("casino", "No gambling")],
            &["exe", ".SCR", "tar.gz", "Application/X-MSDownload"],
        ))
        .unwrap();
        assert_eq!(c.patterns.as_ref().map(RegexSet::len), Some(2));
        assert_eq!(c.reasons, ["No pills", "No gambling"]);
        assert_eq!(c.extensions, ["exe", "scr", "tar.gz"]);
        assert_eq!(c.mime_types, ["application/x-msdownload"]);
        let empty = CompiledPolicy::compile(&Policy::default()).unwrap();
        assert!(empty.patterns.is_none());
    }

    #[test]
    fn problems_name_the_key() {
        let table: [(Policy, &str, &str); 9] = [
            (
                policy(&[("ok", "r"), ("(", "r")], &[]),
                "policy.deny[1].pattern",
                "regex",
            ),
            (policy(&[("ok", "")], &[]), "policy.deny[0].reason", "empty"),
            (
                policy(&[("ok", "  ")], &[]),
                "policy.deny[0].reason",
                "empty",
            ),
            (
                policy(&[("ok", "a\r\nb")], &[]),
                "policy.deny[0].reason",
                "one line",
            ),
            (
                policy(&[("ok", "é")], &[]),
                "policy.deny[0].reason",
                "ASCII",
            ),
            (
                policy(&[(r"\w{1000}\w{1000}", "r")], &[]),
                "policy.deny[0].pattern",
                "size",
            ),
            (
                policy(&[], &["exe", ""]),
                "policy.deny_attachment_types[1]",
                "extension",
            ),
            (
                policy(&[], &["a b"]),
                "policy.deny_attachment_types[0]",
                "extension",
            ),
            (
                policy(&[], &["application/"]),
                "policy.deny_attachment_types[0]",
                "MIME",
            ),
        ];
        for (p, key, words) in table {
            let (k, why) = CompiledPolicy::compile(&p).unwrap_err();
            assert_eq!(k, key, "{why}");
            assert!(why.contains(words), "{key}: {why}");
        }
    }
}
