//! Request bodies (pure functions, table-tested): form-urlencoded fields (the sign-up form's
//! `email`, checked by `mail::Address::from_form`) and the RFC 8058 one-click body, which
//! mailbox providers send form-urlencoded or as `multipart/form-data`.

/// Decodes `application/x-www-form-urlencoded` into pairs (`+` is a space, `%XX` a byte).
pub fn urlencoded(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a POST body is the RFC 8058 one-click request `List-Unsubscribe=One-Click`, either
/// form-urlencoded or as a multipart form field (and its type says which).
pub fn is_one_click(content_type: &str, body: &[u8]) -> bool {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(body);
        // Each part: headers naming the field, a blank line, the value.
        return text.split("\r\n--").any(|part| {
            let Some((head, value)) = part.split_once("\r\n\r\n") else {
                return false;
            };
            let head = head.to_ascii_lowercase();
            head.contains("name=\"list-unsubscribe\"") && value.trim() == "One-Click"
        });
    }
    // Any other type (`text/plain` included) is not a one-click request (`415` in the handler).
    ct.starts_with("application/x-www-form-urlencoded")
        && urlencoded(body)
            .iter()
            .any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_click_bodies() {
        let form = "application/x-www-form-urlencoded";
        let multipart = "multipart/form-data; boundary=XYZ";
        let mp = b"--XYZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XYZ--\r\n";
        let cases: &[(&str, &[u8], bool)] = &[
            (form, b"List-Unsubscribe=One-Click", true),
            (form, b"a=b&List-Unsubscribe=One-Click", true),
            (form, b"List-Unsubscribe=One%2DClick", true),
            (form, b"List-Unsubscribe=Two-Click", false),
            (form, b"", false),
            (multipart, mp, true),
            (
                multipart,
                b"--XYZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nOne-Click\r\n--XYZ--",
                false,
            ),
            ("text/plain", b"List-Unsubscribe=One-Click", false),
            ("", b"List-Unsubscribe=One-Click", false),
            (
                "application/x-www-form-urlencoded; charset=utf-8",
                b"List-Unsubscribe=One-Click",
                true,
            ),
        ];
        for (ct, body, want) in cases {
            assert_eq!(
                is_one_click(ct, body),
                *want,
                "{ct} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn urlencoded_pairs() {
        assert_eq!(
            urlencoded(b"email=a%40b.test&x=1+2&bad=%zz&tail=%4"),
            vec![
                ("email".into(), "a@b.test".into()),
                ("x".into(), "1 2".into()),
                ("bad".into(), "%zz".into()),
                ("tail".into(), "%4".into()),
            ]
        );
    }
}
