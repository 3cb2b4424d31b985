//! What strangers send to the list side — sign-up forms, one-click bodies, tokens in URLs and
//! local parts, posted headers — must never panic, and the header stripping must leave none
//! of the stripped headers behind.
#![no_main]

use herald::http::form;
use herald::lists::{headers, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = form::urlencoded(data);
    let _ = form::is_one_click("multipart/form-data; boundary=x", data);
    let _ = form::is_one_click("application/x-www-form-urlencoded", data);
    if let Some(e) = form::email(&text) {
        assert_eq!(form::email(&e).as_deref(), Some(e.as_str()));
    }
    for kind in [
        token::Kind::Unsubscribe,
        token::Kind::Confirm,
        token::Kind::Bounce,
    ] {
        assert!(token::open_member_token(&[1; 32], kind, &text).is_none() || text.len() <= 200);
    }
    let _ = headers::header_value(data, headers::CATEGORY_HEADER);
    let stripped = headers::strip_list_headers(data);
    assert!(stripped.len() <= data.len());
    if data.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(headers::header_value(&stripped, "List-Unsubscribe").is_none());
    }
});
