//! Admin requests about lists: counts, members, add/import (confirmed, with the consent text),
//! invite (double opt-in), remove (silent unsubscribe), export.

use super::Response;
use super::server::AdminContext;
use crate::config::List;
use crate::lists::consent::{self, Signup};
use crate::store::{Added, Consent, MemberRecord, MemberStatus, NewMember, now_secs};
use crate::timefmt::rfc3339;
use serde_json::{Value, json};

fn find<'a>(settings: &'a crate::config::Settings, name: &str) -> Result<&'a List, Response> {
    consent::find_list(settings, name).ok_or_else(|| Response::err(format!("no list {name:?}")))
}

pub fn member_json(m: &MemberRecord) -> Value {
    json!({
        "address": m.address,
        "name": m.name,
        "status": m.status,
        "consent": m.consent.source,
        "consent_at": rfc3339(m.consent.at),
        "consent_ip": m.consent.ip,
        "since": rfc3339(m.since),
    })
}

pub fn ls(ctx: &AdminContext) -> Response {
    let settings = ctx.settings();
    let mut out = Vec::new();
    for l in &settings.config.lists {
        let members = match ctx.store.members(&l.id) {
            Ok(m) => m,
            Err(e) => return Response::err(e.to_string()),
        };
        let mut counts = serde_json::Map::new();
        for s in MemberStatus::ALL {
            let n = members.iter().filter(|m| m.status == s).count();
            counts.insert(s.as_str().into(), json!(n));
        }
        out.push(json!({
            "id": l.id, "address": l.address, "name": l.name,
            "kind": l.kind, "category": l.category, "members": counts,
        }));
    }
    Response::ok(Value::Array(out))
}

pub fn members(ctx: &AdminContext, list: &str, status: Option<&str>) -> Response {
    let settings = ctx.settings();
    let list = match find(&settings, list) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let status: Option<MemberStatus> = match status.map(str::parse).transpose() {
        Ok(s) => s,
        Err(e) => return Response::err(e),
    };
    match ctx.store.members(&list.id) {
        Ok(all) => Response::ok(Value::Array(
            all.iter()
                .filter(|m| status.is_none_or(|s| m.status == s))
                .map(member_json)
                .collect(),
        )),
        Err(e) => Response::err(e.to_string()),
    }
}

/// `list add` and each chunk of `list import`: confirmed members with their consent.
pub async fn add(
    ctx: &AdminContext,
    list: &str,
    members: Vec<(String, Option<String>)>,
    consent_text: &str,
    source: &str,
) -> Response {
    let settings = ctx.settings();
    let list = match find(&settings, list) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if consent_text.trim().is_empty() {
        return Response::err("--consent must say where the consent came from");
    }
    let mut new = Vec::with_capacity(members.len());
    for (address, name) in members {
        let Some(address) = crate::mail::Address::from_form(&address).map(String::from) else {
            return Response::err(format!("{address:?} is not an email address"));
        };
        new.push(NewMember {
            address,
            name,
            status: MemberStatus::Confirmed,
            consent: Consent {
                source: format!("{source}: {}", consent_text.trim()),
                at: now_secs(),
                ip: None,
            },
        });
    }
    match ctx.store.add_members(&list.id, new).await {
        Ok(done) => {
            let count = |a: Added| done.iter().filter(|(_, x)| *x == a).count();
            Response::ok(json!({
                "added": count(Added::New),
                "changed": count(Added::Changed),
                "unchanged": count(Added::Unchanged),
            }))
        }
        Err(e) => Response::err(e.to_string()),
    }
}

pub async fn invite(ctx: &AdminContext, list: &str, addresses: Vec<String>) -> Response {
    let settings = ctx.settings();
    let list = match find(&settings, list) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (mut sent, mut already) = (0, 0);
    for address in addresses {
        let Some(address) = crate::mail::Address::from_form(&address).map(String::from) else {
            return Response::err(format!("{address:?} is not an email address"));
        };
        match consent::sign_up(
            &ctx.store,
            &settings,
            &ctx.list_key,
            list,
            &address,
            "invite",
            None,
        )
        .await
        {
            Ok(Signup::ConfirmationSent(id)) => {
                ctx.arrivals.notify(id);
                sent += 1;
            }
            Ok(Signup::AlreadyMember) => already += 1,
            Err(e) => return Response::err(e.to_string()),
        }
    }
    Response::ok(json!({ "invited": sent, "already_members": already }))
}

pub async fn remove(ctx: &AdminContext, list: &str, addresses: Vec<String>) -> Response {
    let settings = ctx.settings();
    let list = match find(&settings, list) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (mut removed, mut unknown) = (0, Vec::new());
    for address in addresses {
        match ctx.store.member(&list.id, &address) {
            Ok(Some(m)) => {
                if let Err(e) = ctx
                    .store
                    .set_member_status(m.id, MemberStatus::Unsubscribed)
                    .await
                {
                    return Response::err(e.to_string());
                }
                removed += 1;
            }
            Ok(None) => unknown.push(address),
            Err(e) => return Response::err(e.to_string()),
        }
    }
    Response::ok(json!({ "removed": removed, "not_members": unknown }))
}
