//! What strangers send to the list side — sign-up forms, one-click bodies, tokens in URLs and
//! local parts, posted headers, the origin a sign-up form names — must never panic, and the header stripping must leave none
//! of the stripped headers behind.
#![no_main]

use herald::config::origin_of;
use herald::http::form;
use herald::lists::{headers, token};
use herald::mail::{Address, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = form::urlencoded(data);
    let _ = form::is_one_click("multipart/form-data; boundary=x", data);
    let _ = form::is_one_click("application/x-www-form-urlencoded", data);
    if let Some(e) = Address::from_form(&text) {
        assert_eq!(Address::from_form(e.as_str()).as_ref(), Some(&e));
    }
    for kind in [
        token::Kind::Unsubscribe,
        token::Kind::Confirm,
        token::Kind::Bounce,
    ] {
        assert!(token::open_member_token(&[1; 32], kind, &text).is_none() || text.len() <= 200);
    }
    // An origin is normalised once and for all: normalising it again changes nothing.
    if let Some(o) = origin_of(&text) {
        assert_eq!(origin_of(&o).as_deref(), Some(o.as_str()), "{text:?}");
    }
    let _ = header::value(data, headers::CATEGORY_HEADER);
    let stripped = headers::strip_list_headers(data);
    assert!(stripped.len() <= data.len());
    assert!(header::value(&stripped, "List-Unsubscribe").is_none());
});
