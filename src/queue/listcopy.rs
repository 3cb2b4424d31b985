//! A list copy right before it leaves: is the member still someone who gets this post (an
//! unsubscribe or a suppression since the expansion stops the copy, silently), and the copy's
//! own headers, token and VERP envelope sender.

use super::DeliveryContext;
use crate::config::{List, Settings};
use crate::lists::expand::receives;
use crate::lists::headers::{CopyHeaders, copy_headers};
use crate::lists::token::{self, Kind};
use crate::store::{DeliveryRecord, MessageRecord, Scope, StoreError};

fn list_of<'a>(settings: &'a Settings, msg: &MessageRecord) -> Option<&'a List> {
    let post = msg.list.as_ref()?;
    settings.config.lists.iter().find(|l| l.id == post.list)
}

fn domain(address: &str) -> String {
    crate::mail::split(address)
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether this delivery may still go, given the address's suppression scope (looked up once
/// by the worker): always for a delivery that is not a list copy; for a list copy, whether
/// the member still receives this post. A store error is no answer: it is returned, and the
/// worker defers the copy.
pub fn still_wanted(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
    suppression: Option<Scope>,
) -> Result<bool, StoreError> {
    let Some(member_id) = rcpt.member else {
        return Ok(true);
    };
    let service = msg.list.as_ref().is_some_and(|p| p.service);
    let Some(list) = list_of(settings, msg) else {
        return Ok(false);
    };
    let member = ctx.store.member_by_id(member_id)?;
    Ok(member.is_some_and(|m| receives(m.status, suppression, list.category, service)))
}

/// The bounce domain for a list's copies: the one configured for the list address's domain,
/// else this host.
fn bounce_domain(settings: &Settings, list: &List) -> String {
    settings
        .config
        .domains
        .get(&domain(&list.address))
        .and_then(|d| d.bounce_domain.clone())
        .unwrap_or_else(|| settings.config.hostname.clone())
}

/// The copy for one member: its list headers on top of the stored post.
pub fn copy_body(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
    body: &[u8],
) -> Option<Vec<u8>> {
    let member_id = rcpt.member?;
    let list = list_of(settings, msg)?;
    let token = token::member_token(&ctx.list_key, Kind::Unsubscribe, member_id);
    let mailto_domain = bounce_domain(settings, list);
    let head = copy_headers(&CopyHeaders {
        name: &list.name,
        address: &list.address,
        base_url: &settings.config.unsubscribe.base_url,
        token: &token,
        mailto_domain: &mailto_domain,
        service: msg.list.as_ref().is_some_and(|p| p.service),
    });
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    Some(out)
}

/// The VERP envelope sender of a list copy: `b+TOKEN@bounce_domain`, the token naming the
/// member.
pub fn sender(
    ctx: &DeliveryContext,
    settings: &Settings,
    msg: &MessageRecord,
    rcpt: &DeliveryRecord,
) -> Option<String> {
    let member = rcpt.member?;
    let list = list_of(settings, msg)?;
    Some(format!(
        "b+{}@{}",
        token::member_bounce_token(&ctx.verp_key, member),
        bounce_domain(settings, list)
    ))
}
