//! Pure HMAC tokens that fit an email local part in lower case and a URL path segment:
//! lower-case base32 of `payload ++ HMAC-SHA256(key, kind ++ payload)[..10]`. A token names a
//! thing without revealing any address; a forged or altered token fails verification.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAC_LEN: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a token is for; part of the MAC input so one kind cannot pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A delivery (queue id and recipient index): VERP `b+TOKEN@`.
    Bounce,
    /// A list member: `u+TOKEN@` and `/unsubscribe/TOKEN`.
    Unsubscribe,
    /// A pending list member: `/confirm/TOKEN`.
    Confirm,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Bounce => b'b',
            Kind::Unsubscribe => b'u',
            Kind::Confirm => b'c',
        }
    }
}

fn mac(key: &[u8; 32], kind: Kind, payload: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    // HMAC accepts keys of any length, so this cannot fail.
    if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) {
        m.update(&[kind.tag()]);
        m.update(payload);
        out.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
    }
    out
}

pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding.
    (acc == 0 && bits < 5).then_some(out)
}

/// Seals `payload` into a token.
pub fn seal(key: &[u8; 32], kind: Kind, payload: &[u8]) -> String {
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(&mac(key, kind, payload));
    encode_base32(&bytes)
}

/// Opens a token; `None` when it is malformed, forged or of another kind.
pub fn open(key: &[u8; 32], kind: Kind, token: &str) -> Option<Vec<u8>> {
    if token.len() > 200 {
        return None;
    }
    let bytes = decode_base32(token)?;
    let split = bytes.len().checked_sub(MAC_LEN)?;
    let (payload, tag) = bytes.split_at(split);
    let want = mac(key, kind, payload);
    // Constant-time comparison.
    let diff = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then(|| payload.to_vec())
}

/// The VERP token of one delivery.
pub fn bounce_token(key: &[u8; 32], id: u64, index: u32) -> String {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&index.to_be_bytes());
    seal(key, Kind::Bounce, &payload)
}

/// The delivery a VERP token names.
pub fn open_bounce_token(key: &[u8; 32], token: &str) -> Option<(u64, u32)> {
    let p = open(key, Kind::Bounce, token)?;
    let id = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let index = u32::from_be_bytes(p.get(8..12)?.try_into().ok()?);
    (p.len() == 12).then_some((id, index))
}

/// What a VERP token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verp {
    /// A delivery of submitted mail: queue id and recipient index.
    Delivery(u64, u32),
    /// A list copy: the member it went to.
    Member(u64),
}

/// The VERP token of a list copy: it names the member, so a bounce that arrives after the copy
/// left the queue still finds the address.
pub fn member_bounce_token(key: &[u8; 32], member: u64) -> String {
    seal(key, Kind::Bounce, &member.to_be_bytes())
}

/// Opens any VERP token.
pub fn open_verp(key: &[u8; 32], token: &str) -> Option<Verp> {
    let p = open(key, Kind::Bounce, token)?;
    match p.len() {
        8 => Some(Verp::Member(u64::from_be_bytes(
            p.as_slice().try_into().ok()?,
        ))),
        12 => open_bounce_token(key, token).map(|(id, i)| Verp::Delivery(id, i)),
        _ => None,
    }
}

/// The token of a list member (its store id names both the list and the member).
pub fn member_token(key: &[u8; 32], kind: Kind, member: u64) -> String {
    seal(key, kind, &member.to_be_bytes())
}

/// The member a token names.
pub fn open_member_token(key: &[u8; 32], kind: Kind, token: &str) -> Option<u64> {
    let p = open(key, kind, token)?;
    Some(u64::from_be_bytes(p.as_slice().try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn base32_round_trip() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode_base32(&bytes);
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            );
            assert_eq!(decode_base32(&s), Some(bytes));
        }
        assert_eq!(decode_base32("a1"), None);
    }

    #[test]
    fn bounce_tokens() {
        let t = bounce_token(&KEY, 0x0006_4A2B_1234_5678, 3);
        assert!(t.len() <= 60, "fits a local part with b+: {t}");
        assert_eq!(
            open_bounce_token(&KEY, &t),
            Some((0x0006_4A2B_1234_5678, 3))
        );
        assert_eq!(
            open_bounce_token(&KEY, &t.to_uppercase()),
            Some((0x0006_4A2B_1234_5678, 3))
        );
        assert_eq!(open_bounce_token(&[8; 32], &t), None, "other key");
        assert_eq!(open(&KEY, Kind::Unsubscribe, &t), None, "other kind");
    }

    #[test]
    fn verp_tokens_name_a_delivery_or_a_member() {
        let d = bounce_token(&KEY, 9, 4);
        let m = member_bounce_token(&KEY, 77);
        assert_eq!(open_verp(&KEY, &d), Some(Verp::Delivery(9, 4)));
        assert_eq!(open_verp(&KEY, &m), Some(Verp::Member(77)));
        assert_eq!(
            open_verp(&KEY, &member_token(&KEY, Kind::Unsubscribe, 77)),
            None
        );
        assert_eq!(open_verp(&[0; 32], &m), None);
    }

    #[test]
    fn member_tokens() {
        let t = member_token(&KEY, Kind::Unsubscribe, 123_456);
        assert!(t.len() + 2 <= 64, "fits a local part with u+: {t}");
        assert_eq!(
            open_member_token(&KEY, Kind::Unsubscribe, &t),
            Some(123_456)
        );
        assert_eq!(open_member_token(&KEY, Kind::Confirm, &t), None, "kind");
        assert_eq!(open_member_token(&KEY, Kind::Unsubscribe, &t[1..]), None);
        let b = bounce_token(&KEY, 1, 2);
        assert_eq!(open_member_token(&KEY, Kind::Unsubscribe, &b), None);
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let t = bounce_token(&KEY, 42, 0);
        let bytes = decode_base32(&t).unwrap_or_default();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert_eq!(open_bounce_token(&KEY, &encode_base32(&b)), None, "bit {i}");
        }
    }
}
