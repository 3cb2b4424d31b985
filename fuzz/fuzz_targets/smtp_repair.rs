//! Header scanning of accepted messages (trace facts, repairs, From addresses) must never
//! panic, whatever the bytes.
#![no_main]

use herald::smtp::repair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let facts = repair::scan(data);
    if let Some(id) = &facts.message_id {
        assert!(id.chars().count() <= 998);
    }
    let date = "Thu, 1 Jan 1970 00:00:00 +0000";
    let (add, id) = repair::submission_repairs(&facts, date, "<new@host>");
    assert_eq!(add.contains("Date: "), !facts.has_date);
    assert_eq!(
        facts.message_id.is_none(),
        id == "<new@host>" && add.contains("Message-ID: ")
    );
    // From addresses (held to a user's senders): each one an address, lower-cased.
    for a in &facts.from {
        assert!(a.contains('@'));
        assert_eq!(*a, a.to_ascii_lowercase());
    }
});
