//! One SMTP command line, and the path / parameter / xtext parsers behind MAIL and RCPT.
//! Nothing here may panic on any input.
#![no_main]

use herald::mail;
use herald::smtp::address;
use herald::smtp::command::{self, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = command::parse(data) {
        match cmd {
            Command::Mail { from, params } => {
                if let Some(m) = from {
                    let _ = m.address();
                }
                for (k, v) in params {
                    assert!(!k.is_empty());
                    if let Some(v) = v {
                        let _ = address::decode_xtext(&v);
                    }
                }
            }
            Command::Rcpt { to, params } => {
                let _ = to.address();
                for (k, v) in params {
                    assert!(!k.is_empty());
                    if let Some(v) = v {
                        let _ = address::decode_xtext(&v);
                    }
                }
            }
            Command::Ehlo(name) | Command::Helo(name) => assert!(!name.is_empty()),
            _ => {}
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((mailbox, rest)) = address::parse_path(text) {
        if let Some(m) = mailbox {
            let _ = m.address();
            let _ = mail::valid_domain(&m.domain);
        }
        // `rest` is a suffix of the input.
        assert!(text.ends_with(rest));
        let _ = address::parse_params(rest);
    }
    if let Ok(params) = address::parse_params(text) {
        for (k, _) in params {
            assert!(!k.is_empty());
            assert_eq!(k, k.to_ascii_uppercase());
        }
    }
    if let Some(decoded) = address::decode_xtext(text) {
        // Every `+XX` escape shrinks three bytes to one; plain characters stay as they are.
        assert!(decoded.len() <= text.len());
    }
    let _ = mail::valid_domain(text);
});
