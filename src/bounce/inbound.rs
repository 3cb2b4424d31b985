//! Returned mail that reached a VERP address (`b+TOKEN@bounce_domain`) or the complaint address
//! (`fbl@`): parsed, matched to the address we actually sent to, and applied by `policy`.
//! For a VERP bounce the address comes from the token (a list member, or a delivery, queued or
//! remembered since), never from the report, so a forged report cannot suppress somebody else.

use super::parse::{self, Class, Finding, Kind};
use super::policy::{self, Applied};
use crate::config::Settings;
use crate::lists::token::{self, Verp};
use crate::store::{QueueId, Store, StoreError};

/// Where the returned mail was addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `b+TOKEN@`: the token, lower-cased.
    Verp(String),
    /// The feedback-loop address: ARF reports name the complaining recipients.
    Complaints,
}

/// What processing one returned message did, per address (for the log).
pub type Done = Vec<(String, Class, Applied)>;

/// Parses `raw` and applies what it reports for `target`.
pub async fn process(
    store: &Store,
    settings: &Settings,
    verp_key: &[u8; 32],
    raw: &[u8],
    target: &Target,
) -> Result<Done, StoreError> {
    let report = parse::parse(raw);
    if report.kind == Kind::AutoReply || report.kind == Kind::NotBounce {
        return Ok(Vec::new());
    }
    match target {
        Target::Verp(t) => {
            let Some(address) = verp_address(store, verp_key, t)? else {
                return Ok(Vec::new());
            };
            let Some(f) = pick(&report.findings, &address).filter(|f| acts_on(f)) else {
                return Ok(Vec::new());
            };
            let applied =
                policy::apply(store, settings, &address, f.class, "bounce", &detail(f)).await?;
            Ok(vec![(address, f.class, applied)])
        }
        Target::Complaints => {
            let mut done = Vec::new();
            for f in report
                .findings
                .iter()
                .filter(|f| f.class == Class::Complaint)
            {
                let Some(address) = f.recipient.as_deref().filter(|a| a.contains('@')) else {
                    continue;
                };
                let applied =
                    policy::apply(store, settings, address, f.class, "complaint", &detail(f))
                        .await?;
                done.push((address.to_string(), f.class, applied));
            }
            Ok(done)
        }
    }
}

/// The address a genuine VERP token stands for; `None` for a forged or stale token.
fn verp_address(store: &Store, verp_key: &[u8; 32], t: &str) -> Result<Option<String>, StoreError> {
    Ok(match token::open_verp(verp_key, t) {
        Some(Verp::Member(id)) => store.member_by_id(id)?.map(|m| m.address),
        Some(Verp::Delivery(id, index)) => match store.delivery(QueueId(id), index)? {
            Some(d) => Some(d.address.to_lowercase()),
            None => store.returned_address(QueueId(id), index)?,
        },
        None => None,
    })
}

/// The finding about `address`: the one naming it, else the only one (forwarding and
/// rewriting change recipients), else none.
fn pick<'a>(findings: &'a [Finding], address: &str) -> Option<&'a Finding> {
    findings
        .iter()
        .find(|f| {
            f.recipient
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(address))
        })
        .or(match findings {
            [only] => Some(only),
            _ => None,
        })
}

/// DMARC/SPF failure reports (ARF `auth-failure`) are about the sending domain, not a
/// recipient's wish: they change nothing for the address.
fn acts_on(f: &Finding) -> bool {
    f.reason != "auth-failure"
}

fn detail(f: &Finding) -> String {
    format!("{} {}", f.status.as_deref().unwrap_or("-"), f.reason)
}
