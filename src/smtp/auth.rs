//! AUTH PLAIN and LOGIN (RFC 4954), only after TLS and only on submission. Password checks run
//! on blocking threads, a few at a time; failures are counted per client and per account name
//! and throttled (`auth_throttle`).

use super::Context;
use super::auth_throttle::AuthLimits;
use super::reply::Reply;
use super::state::SessionState;
use crate::metrics::Rejection;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::time::Instant;

/// A SASL exchange waiting for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

/// Either a reply now, or credentials to verify.
pub enum Flow {
    Reply(Reply),
    Verify { user: String, password: String },
}

fn syntax() -> Reply {
    Reply::new(501, "5.5.2", "Cannot decode authentication data")
}

pub fn start(st: &mut SessionState, mechanism: &str, initial: Option<String>) -> Flow {
    if !st.role.is_submission() {
        return Flow::Reply(Reply::new(502, "5.5.1", "AUTH not available on this port"));
    }
    if !st.tls {
        return Flow::Reply(Reply::new(
            530,
            "5.7.0",
            "Must issue a STARTTLS command first",
        ));
    }
    if st.user.is_some() {
        return Flow::Reply(Reply::new(503, "5.5.1", "Already authenticated"));
    }
    if st.tx.is_some() {
        return Flow::Reply(Reply::new(
            503,
            "5.5.1",
            "AUTH not allowed during a mail transaction",
        ));
    }
    match (mechanism, initial) {
        ("PLAIN", None) => {
            st.auth = Some(AuthStep::Plain);
            Flow::Reply(Reply::new(334, "", ""))
        }
        ("PLAIN", Some(data)) => decode_plain(&data),
        ("LOGIN", None) => {
            st.auth = Some(AuthStep::LoginUser);
            Flow::Reply(challenge("Username:"))
        }
        ("LOGIN", Some(data)) => match decode_text(&data) {
            Some(user) => {
                st.auth = Some(AuthStep::LoginPassword { user });
                Flow::Reply(challenge("Password:"))
            }
            None => Flow::Reply(syntax()),
        },
        _ => Flow::Reply(Reply::new(
            504,
            "5.5.4",
            "Unrecognized authentication mechanism",
        )),
    }
}

fn challenge(text: &str) -> Reply {
    Reply {
        rejection: None,
        code: 334,
        status: "",
        lines: vec![B64.encode(text)],
    }
}

/// The client's answer to a 334 challenge.
pub fn step(st: &mut SessionState, line: &[u8]) -> Flow {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let Some(step) = st.auth.take() else {
        return Flow::Reply(syntax());
    };
    if text == "*" {
        return Flow::Reply(Reply::new(501, "5.0.0", "Authentication cancelled"));
    }
    match step {
        AuthStep::Plain => decode_plain(text),
        AuthStep::LoginUser => match decode_text(text) {
            Some(user) => {
                st.auth = Some(AuthStep::LoginPassword { user });
                Flow::Reply(challenge("Password:"))
            }
            None => Flow::Reply(syntax()),
        },
        AuthStep::LoginPassword { user } => match decode_text(text) {
            Some(password) => Flow::Verify { user, password },
            None => Flow::Reply(syntax()),
        },
    }
}

fn decode_text(data: &str) -> Option<String> {
    let bytes = B64.decode(data.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

fn decode_plain(data: &str) -> Flow {
    let Ok(bytes) = B64.decode(data.trim()) else {
        return Flow::Reply(syntax());
    };
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Flow::Reply(syntax());
    };
    let (Ok(authz), Ok(user), Ok(password)) = (
        std::str::from_utf8(authz),
        String::from_utf8(authc.to_vec()),
        String::from_utf8(pass.to_vec()),
    ) else {
        return Flow::Reply(syntax());
    };
    if !authz.is_empty() && authz != user {
        return Flow::Reply(Reply::new(
            535,
            "5.7.8",
            "Authentication credentials invalid",
        ));
    }
    Flow::Verify { user, password }
}

/// A fixed hash to verify against when the user does not exist, so timing does not reveal names.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CfpRxz/GaU7pD3cM1oJkS1bgBzuS5G4V3kX8xk2bHUA";

fn limits(settings: &crate::config::Settings) -> AuthLimits {
    let l = &settings.config.limits;
    AuthLimits {
        per_client: l.max_auth_failures,
        per_account: l.max_auth_failures_per_account,
        window: l.auth_failure_window.0,
    }
}

/// Checks the credentials and records the outcome. A throttled client or account name gets
/// `454` before any password is checked, the right one too; unknown names are counted and
/// answered exactly as known ones.
pub async fn verify(ctx: &Context, st: &mut SessionState, user: String, password: String) -> Reply {
    let settings = ctx.settings();
    let limits = limits(&settings);
    let ip = st.peer.ip();
    let now = Instant::now();
    if ctx.auth_throttle.blocked(ip, &user, &limits, now) {
        tracing::warn!(client = %ip, "authentication throttled");
        return Reply::new(
            454,
            "4.7.0",
            "Too many authentication failures; try again later",
        );
    }
    let hash = settings
        .user(&user)
        .map_or(DECOY_HASH.to_string(), |u| u.password_hash.clone());
    let known = settings.user(&user).is_some();
    let ok = {
        let Ok(_permit) = ctx.auth_slots.acquire().await else {
            return Reply::new(454, "4.7.0", "Temporary authentication failure");
        };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    };
    if ok && known {
        tracing::info!(user = %user, client = %ip, "authenticated");
        st.user = Some(user);
        return Reply::new(235, "2.7.0", "Authentication successful");
    }
    let (client, account) = ctx
        .auth_throttle
        .record_failure(ip, &user, &limits, Instant::now());
    tracing::warn!(client = %ip, failures = client, account_failures = account, "authentication failed");
    Reply::new(535, "5.7.8", "Authentication credentials invalid").counted(Rejection::Auth)
}
