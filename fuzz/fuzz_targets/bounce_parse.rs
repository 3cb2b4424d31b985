//! Returned mail is written by strangers: DSNs, ARF reports and VERP tokens must parse
//! without panicking, and every finding must be well formed.
#![no_main]

use herald::bounce::parse;
use herald::lists::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = parse::parse(data);
    for f in &report.findings {
        if let Some(s) = &f.status {
            assert!(s.len() <= 16, "status {s:?}");
        }
        if let Some(r) = &f.recipient {
            assert_eq!(r, &r.to_lowercase());
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = token::open_verp(&[3; 32], &text);
});
