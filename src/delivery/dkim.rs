//! DKIM signing (mail-auth) for configured sending domains, RSA-2048 or Ed25519 keys in PEM.
//! Keys are loaded once per config load; signing is per message at delivery time.

use crate::config::Config;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::Arc;

/// Headers covered by the signature when present (RFC 6376 §5.4.1 plus RFC 8058 §3).
pub const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The signing keys of every configured domain that has one.
#[derive(Clone, Default)]
pub struct Signers {
    keys: Arc<HashMap<String, Signer>>,
}

#[derive(Debug, thiserror::Error)]
#[error("DKIM key for {domain} ({path}): {reason}")]
pub struct DkimError {
    pub domain: String,
    pub path: String,
    pub reason: String,
}

/// Parses a PEM private key as RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
fn parse_key(pem: &[u8]) -> Result<Key, String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    if let PrivateKeyDer::Pkcs8(p8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(p8.secret_pkcs8_der())
    {
        return Ok(Key::Ed25519(key));
    }
    RsaKey::<Sha256>::from_key_der(der)
        .map(Key::Rsa)
        .map_err(|e| format!("not an RSA or Ed25519 key: {e}"))
}

/// The public half of a DKIM key, as its DNS record publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// SubjectPublicKeyInfo DER (what `openssl rsa -pubout` and OpenDKIM publish).
    Rsa(Vec<u8>),
    /// The raw 32-byte key (RFC 8463 §4.2).
    Ed25519(Vec<u8>),
}

/// The public key of a PEM private key, parsed exactly as [`Signers::load`] parses it: a key
/// this accepts is a key the daemon can sign with.
pub fn public_key(pem: &[u8]) -> Result<PublicKey, String> {
    Ok(match parse_key(pem)? {
        Key::Rsa(k) => PublicKey::Rsa(rsa_spki(&k.public_key())),
        Key::Ed25519(k) => PublicKey::Ed25519(k.public_key()),
    })
}

/// Wraps a PKCS#1 `RSAPublicKey` in a SubjectPublicKeyInfo with the rsaEncryption algorithm.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

impl Signers {
    pub fn load(config: &Config) -> Result<Signers, DkimError> {
        let mut keys = HashMap::new();
        for (domain, d) in &config.domains {
            let (Some(selector), Some(path)) = (&d.dkim_selector, &d.dkim_key) else {
                continue;
            };
            let err = |reason: String| DkimError {
                domain: domain.clone(),
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let signer = match parse_key(&pem).map_err(err)? {
                Key::Rsa(k) => Signer::Rsa(
                    DkimSigner::from_key(k)
                        .domain(domain)
                        .selector(selector)
                        .headers(SIGNED_HEADERS),
                ),
                Key::Ed25519(k) => Signer::Ed25519(
                    DkimSigner::from_key(k)
                        .domain(domain)
                        .selector(selector)
                        .headers(SIGNED_HEADERS),
                ),
            };
            keys.insert(domain.to_ascii_lowercase(), signer);
        }
        Ok(Signers {
            keys: Arc::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A `DKIM-Signature:` header field (with CRLF) for `message`, if `domain` has a key.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Option<Result<String, String>> {
        let signature = match self.keys.get(&domain.to_ascii_lowercase())? {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        };
        Some(signature.map(|s| s.to_header()).map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn public_keys_match_what_rcgen_derives() {
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        assert_eq!(
            public_key(rsa.serialize_pem().as_bytes()).unwrap(),
            PublicKey::Rsa(rsa.public_key_der())
        );
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            public_key(ed.serialize_pem().as_bytes()).unwrap(),
            PublicKey::Ed25519(ed.public_key_raw().to_vec())
        );
        assert!(
            public_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
