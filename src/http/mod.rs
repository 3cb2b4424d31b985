//! The HTTP listener (axum): sign-up, confirmation and unsubscribe pages, RFC 8058 one-click
//! unsubscribe, and `/healthz`. A GET never changes anything; every change is durable before
//! the response. Unknown or forged tokens get `404` and change nothing.

pub mod form;
mod guard;
mod listener;
pub mod pages;

pub use listener::{Connections, Stop, serve};

use crate::config::Settings;
use crate::lists::consent::{self, Signup};
use crate::metrics::Metrics;
use crate::store::{MemberStatus, QueueId, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::sync::watch;

/// Request bodies are small forms.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// Keyed limiter tables are pruned past this many keys.
const MAX_KEYS: usize = 100_000;

/// What the handlers share.
pub struct Web {
    pub store: Store,
    pub settings: watch::Receiver<Arc<Settings>>,
    pub list_key: [u8; 32],
    /// The daemon's aggregate counters (`/metrics`; unsubscribes counted here).
    pub metrics: Arc<Metrics>,
    /// Told about each confirmation mail queued.
    pub on_queued: Box<dyn Fn(QueueId) + Send + Sync>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_address: DefaultKeyedRateLimiter<String>,
    /// Open connections over every web listener (`http.max_connections`).
    connections: Connections,
}

impl Web {
    pub fn new(
        store: Store,
        settings: watch::Receiver<Arc<Settings>>,
        list_key: [u8; 32],
        metrics: Arc<Metrics>,
        on_queued: Box<dyn Fn(QueueId) + Send + Sync>,
    ) -> Arc<Web> {
        // Sign-ups: 20 an hour per client address (burst 5), 3 an hour per mailbox.
        let per_hour = |n: u32, burst: u32| {
            Quota::per_hour(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Arc::new(Web {
            store,
            settings,
            list_key,
            metrics,
            on_queued,
            per_ip: DefaultKeyedRateLimiter::keyed(per_hour(20, 5)),
            per_address: DefaultKeyedRateLimiter::keyed(per_hour(3, 2)),
            connections: Connections::default(),
        })
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }
}

pub fn router(web: Arc<Web>) -> Router {
    // The policy is a fixed ASCII string; were it not a valid header value, no page is
    // better than a page without it.
    let csp = HeaderValue::from_str(&pages::content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/subscribe/{list}", axum::routing::post(subscribe))
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(move |r: Response| {
            let csp = csp.clone();
            async move { guard::secure(r, &csp) }
        }))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            listener::body_deadline,
        ))
        .with_state(web)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        pages::error(
            "Link not valid",
            "This link is not valid. Nothing was changed.",
        ),
    )
}

/// `GET /healthz`: `ok`, or 503 with the reason new mail is refused (free space below
/// `limits.min_free_space`, a failed write).
async fn healthz(State(web): State<Arc<Web>>) -> Response {
    match web.store.refusal() {
        None => "ok\n".into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// `GET /metrics`: aggregate counters and gauges in Prometheus text (no addresses).
async fn metrics(State(web): State<Arc<Web>>) -> Response {
    match crate::metrics::current(web.metrics.clone(), web.store.clone(), web.settings()).await {
        Ok(s) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::prometheus(&s),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "http request failed");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::error(
            "Please try again",
            "Something went wrong on our side. Nothing was changed.",
        ),
    )
}

fn list_name(settings: &Settings, id: &str) -> String {
    consent::find_list(settings, id).map_or_else(|| id.to_string(), |l| l.name.clone())
}

fn shown(address: &str) -> String {
    crate::logging::redact(address, false)
}

async fn subscribe(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(list): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let settings = web.settings();
    let Some(list) = settings.config.lists.iter().find(|l| l.id == list) else {
        return not_found();
    };
    let posted = guard::posted_from(&headers);
    if !guard::signup_allowed(&posted, &crate::config::signup_origins(&settings.config)) {
        tracing::warn!(list = %list.id, ?posted, "sign-up refused: posted from a site not in http.signup_origins");
        return html(
            StatusCode::FORBIDDEN,
            pages::error(
                "Sign-up not accepted here",
                "This form is on a site that may not sign people up to this list. Nothing was changed.",
            ),
        );
    }
    let client = guard::client_ip(peer, &headers, &settings.config.http.trusted_proxies);
    let fields = form::urlencoded(&body);
    let Some(email) = fields
        .iter()
        .find(|(k, _)| k == "email")
        .and_then(|(_, v)| crate::mail::Address::from_form(v))
        .map(String::from)
    else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::error(
                "Address not valid",
                "Please go back and enter a valid email address.",
            ),
        );
    };
    // Before the rate limits: a sign-up refused for the disk does not count against them.
    if web.store.refusal().is_some() {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::error(
                "Please try again later",
                "We cannot take sign-ups right now: our server is short of disk space. \
                 Nothing was changed.",
            ),
        );
    }
    prune(&web);
    if web.per_ip.check_key(&client).is_err() || web.per_address.check_key(&email).is_err() {
        let mut r = html(
            StatusCode::TOO_MANY_REQUESTS,
            pages::error("Too many sign-ups", "Please try again in an hour."),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        return r;
    }
    let ip = Some(client.to_string());
    match consent::sign_up(
        &web.store,
        &settings,
        &web.list_key,
        list,
        &email,
        "web",
        ip,
    )
    .await
    {
        Ok(Signup::ConfirmationSent(id)) => {
            (web.on_queued)(id);
            tracing::info!(list = %list.id, to = %shown(&email), queue_id = %id, "confirmation sent");
            html(StatusCode::OK, pages::check_inbox(&list.name))
        }
        Ok(Signup::AlreadyMember) => html(StatusCode::OK, pages::check_inbox(&list.name)),
        Err(e) => failed(e),
    }
}

fn prune(web: &Web) {
    if web.per_ip.len() > MAX_KEYS {
        web.per_ip.retain_recent();
    }
    if web.per_address.len() > MAX_KEYS {
        web.per_address.retain_recent();
    }
}

async fn confirm_page(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let settings = web.settings();
    match consent::confirm_target(&web.store, &web.list_key, &token) {
        Ok(Some(m)) => html(
            StatusCode::OK,
            pages::confirm_form(&list_name(&settings, &m.list), &shown(&m.address)),
        ),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

async fn confirm(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let settings = web.settings();
    match consent::confirm(&web.store, &web.list_key, &token).await {
        Ok(Some(m)) if m.status == MemberStatus::Confirmed => {
            tracing::info!(list = %m.list, member = m.id, "subscription confirmed");
            html(
                StatusCode::OK,
                pages::confirmed(&list_name(&settings, &m.list)),
            )
        }
        Ok(Some(m)) => html(
            StatusCode::OK,
            pages::not_pending(&list_name(&settings, &m.list)),
        ),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

async fn unsubscribe_page(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let settings = web.settings();
    match consent::unsubscribe_target(&web.store, &web.list_key, &token) {
        Ok(Some(m)) => html(
            StatusCode::OK,
            pages::unsubscribe_form(&list_name(&settings, &m.list), &shown(&m.address)),
        ),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

/// RFC 8058 one-click, and the unsubscribe page's button (which sends the same field).
async fn unsubscribe(
    State(web): State<Arc<Web>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE);
    if !guard::is_form_type(content_type) {
        return html(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            pages::error(
                "Not understood",
                "Expected a form (application/x-www-form-urlencoded or multipart/form-data). Nothing was changed.",
            ),
        );
    }
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form::is_one_click(content_type, &body) {
        return html(
            StatusCode::BAD_REQUEST,
            pages::error(
                "Not understood",
                "Expected List-Unsubscribe=One-Click. Nothing was changed.",
            ),
        );
    }
    let settings = web.settings();
    match consent::unsubscribe(&web.store, &web.list_key, &token, &web.metrics, false).await {
        Ok(Some(m)) => {
            tracing::info!(list = %m.list, member = m.id, via = "https", "unsubscribed");
            html(
                StatusCode::OK,
                pages::unsubscribed(&list_name(&settings, &m.list)),
            )
        }
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}
