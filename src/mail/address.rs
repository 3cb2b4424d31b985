//! Addresses: the one local/domain split (at the last `@`, RFC 5321 §4.1.2: a quoted local
//! part may itself contain `@`, a domain never does), the [`Address`] type built on it, domain
//! syntax, the plausible address of a sign-up form, and the addresses of a mailbox list.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Splits `local@domain` at the last `@`; `None` when there is none. Either side may be empty
/// (the caller decides what that means; [`Address::parse`] refuses it).
pub fn split(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no @ in the address")]
    NoAt,
    #[error("nothing before the @")]
    EmptyLocal,
    #[error("no domain after the @")]
    EmptyDomain,
}

/// `local@domain`, split at the last `@`, neither part empty. The text is kept as given (no
/// syntax check beyond that; [`valid_domain`] and the SMTP path parser check more). Two
/// addresses are equal when their local parts are equal and their domains are equal ignoring
/// ASCII case (RFC 5321 §2.4: a local part may be case-sensitive, a domain is not).
#[derive(Debug, Clone)]
pub struct Address {
    text: String,
    /// Byte offset of the `@` that separates the local part from the domain.
    at: usize,
}

impl Address {
    /// Refuses a string without `@` or with an empty local part or domain.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (local, domain) = split(s).ok_or(AddressError::NoAt)?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if domain.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        Ok(Address {
            text: s.to_string(),
            at: local.len(),
        })
    }

    /// A plausible address typed into a sign-up form or given to the admin socket: trimmed,
    /// a dot-atom local part of at most 64 bytes, a valid domain with a dot, 254 bytes in all;
    /// lower-cased. `None` if it is not one.
    pub fn from_form(value: &str) -> Option<Address> {
        let v = value.trim();
        let (local, domain) = split(v)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let domain_ok = domain.contains('.') && valid_domain(domain);
        if !(local_ok && domain_ok && v.len() <= 254) {
            return None;
        }
        Address::parse(&v.to_ascii_lowercase()).ok()
    }

    pub fn local(&self) -> &str {
        self.text.get(..self.at).unwrap_or_default()
    }

    pub fn domain(&self) -> &str {
        self.text.get(self.at + 1..).unwrap_or_default()
    }

    /// Whether the domain is `domain`, ignoring ASCII case.
    pub fn domain_is(&self, domain: &str) -> bool {
        self.domain().eq_ignore_ascii_case(domain)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Address) -> bool {
        self.local() == other.local() && self.domain_is(other.domain())
    }
}

impl Eq for Address {}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.local().hash(state);
        for b in self.domain().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// The stored form (store records and config keep addresses as strings).
impl From<Address> for String {
    fn from(a: Address) -> String {
        a.text
    }
}

/// A domain name: dot-separated labels of letters, digits, hyphens (not at either end) and
/// non-ASCII characters (internationalised names), at most 63 bytes each and 255 in all.
pub fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
                })
        })
}

/// The addresses of a mailbox-list field value (From, RFC 5322 §3.6.2), lower-cased: the
/// part in angle brackets, or else the word with an `@`. Commas inside quoted display names
/// or angle brackets do not split; entries without an `@` are left out.
pub fn mailboxes(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut angle) = (false, false);
    for c in value.chars() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
        .iter()
        .filter_map(|part| {
            let addr = match (part.rfind('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => part.get(a + 1..b)?,
                _ => part.split_whitespace().find(|w| w.contains('@'))?,
            };
            let addr = addr.trim();
            addr.contains('@').then(|| addr.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests;
