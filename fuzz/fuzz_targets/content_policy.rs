//! The content policy reads whole submitted messages, MIME and all: whatever the bytes, the
//! check must not panic, and a refusal must carry a one-line reason for the 550 reply.
#![no_main]

use herald::config::{CompiledPolicy, DenyRule, Policy};
use herald::smtp::policy::{self, Verdict};
use libfuzzer_sys::fuzz_target;

fn compiled() -> Option<CompiledPolicy> {
    let rule = |pattern: &str, reason: &str| DenyRule {
        pattern: pattern.into(),
        reason: reason.into(),
    };
    let policy = Policy {
        deny: vec![
            rule("(?i)cheap pills", "pills"),
            rule(r"\bcasino\b", "casino"),
        ],
        deny_attachment_types: vec!["exe".into(), "tar.gz".into(), "application/zip".into()],
    };
    CompiledPolicy::compile(&policy).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((first, message)) = data.split_first() else {
        return;
    };
    let Some(compiled) = compiled() else {
        return;
    };
    if let Verdict::Deny { reason, .. } = policy::check(message, &compiled, first & 1 == 1) {
        assert!(
            !reason.is_empty() && !reason.contains(['\r', '\n']),
            "{reason:?}"
        );
    }
});
