//! The one header-section rule and its tolerant twin, on any bytes: never panic, the section
//! is a prefix of the message, fields lie in it in order, bounded values stay bounded, and a
//! stripped field is gone.
#![no_main]

use herald::mail::header::{self, Section};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8], s: Section<'_>) {
    assert!(data.starts_with(s.head));
    assert!(s.head.len() <= s.body_start && s.body_start <= data.len());
    let mut at = 0;
    for f in s.fields() {
        assert!(f.offset >= at);
        at = f.offset + f.raw.len();
        assert!(at <= s.head.len());
        assert_eq!(data.get(f.offset..at), Some(f.raw));
        assert!(f.value_within(64).len() <= 64);
        let _ = f.value();
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = header::section(data);
    check(data, strict);
    // Between the head and the body: the empty line (CRLF) or nothing.
    let blank = data.get(strict.head.len()..strict.body_start);
    assert!(matches!(blank, Some(b"" | b"\r\n")));
    check(data, header::lenient_section(data));
    let stripped = header::strip(data, "Subject");
    assert!(stripped.len() <= data.len());
    assert!(header::value(&stripped, "subject").is_none());
    assert_eq!(header::strip(&stripped, "Subject"), stripped);
    let _ = header::from_domain(data);
});
