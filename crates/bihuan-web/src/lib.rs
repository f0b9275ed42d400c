//! The axum front of Bihuan: the JSON API of docs/API.md and the web pages staff work in (`pages`).
//!
//! [`app`] builds the whole application from its state, so tests start it on port 0 with a fresh
//! database. Handlers extract, call one store function, and map the result; every failure is an
//! [`ApiError`] with a stable snake_case code.

mod attachments;
mod error;
mod extract;
mod ledger;
mod metrics;
mod pages;
mod plan_views;
mod routes;
mod thumbnails;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bihuan_core::Engine;
use bihuan_store::files::Files;
use bihuan_store::{Clock, Store};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};
pub use extract::{client_ip, parse_trusted_proxies};
pub use routes::export::{metrics_table_csv, metrics_workbook};
pub use routes::stats::metrics_json;

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// How long a sign-in token lives (default 12 hours).
    pub session_ttl: chrono::Duration,
    /// The largest request body accepted (default 16 MiB).
    pub body_limit: usize,
    /// The largest file an upload route (a plan's table) accepts, in bytes (`BIHUAN_MAX_UPLOAD_MB`,
    /// default 20 MiB); it also sets what an uploaded workbook may inflate to.
    pub max_upload: usize,
    /// How long one request may take (default 60 s).
    pub request_timeout: Duration,
    /// Whether the pages' cookies are marked Secure (the site is served over https; default false,
    /// and a request that came through a proxy over https gets them Secure anyway).
    pub secure_cookies: bool,
    /// How long a session may go unused before it ends (`BIHUAN_SESSION_IDLE_MINUTES`, default 30).
    pub session_idle: chrono::Duration,
    /// The proxies whose `X-Forwarded-For` is believed (`BIHUAN_TRUSTED_PROXIES`; default none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether `/metrics` answers without a `metrics:read` token (`BIHUAN_METRICS_PUBLIC`, default
    /// false).
    pub metrics_public: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(12),
            body_limit: 16 * 1024 * 1024,
            max_upload: 20 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            secure_cookies: false,
            session_idle: chrono::Duration::minutes(30),
            trusted_proxies: Vec::new(),
            metrics_public: false,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The checked workflows and calendar.
    pub engine: Arc<Engine>,
    /// The clock (the system clock, or the fake one of `BIHUAN_FAKE_NOW`).
    pub clock: Clock,
    /// Settings.
    pub config: WebConfig,
    /// Where evidence files are kept (`BIHUAN_FILES`).
    pub files: Arc<Files>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routers of every area with their OpenAPI description: one declaration serves both, so the
/// document cannot drift from the routes.
fn routes(config: &WebConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(utoipa_axum::routes!(metrics::render))
        .routes(utoipa_axum::routes!(openapi_json))
        .merge(routes::health::router())
        .merge(routes::session::router())
        .merge(routes::ratings::router())
        .merge(routes::cases::router())
        .merge(routes::audit::router())
        .merge(routes::admin::router())
        .merge(routes::review::router())
        .merge(routes::stats::router())
        .merge(routes::export::router())
        .merge(routes::charts::router())
        .merge(routes::plans::router(config.max_upload))
        .merge(routes::attachments::router(config.max_upload))
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let timeout = state.config.request_timeout;
    let deadline_state = state.clone();
    let recorder = metrics::Metrics::new();
    let (router, doc) = routes(&state.config).split_for_parts();
    router
        .merge(pages::router(state.config.max_upload))
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(|headers: axum::http::HeaderMap| async move {
            if pages::wants_html(&headers) {
                pages::not_found_page()
            } else {
                ApiError::not_found("没有这个地址").into_response()
            }
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "此地址不支持该请求方法",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            body_limit,
            forms_without_nul,
        ))
        .layer(middleware::from_fn_with_state(
            deadline_state,
            storage_deadline,
        ))
        .layer(middleware::from_fn_with_state(timeout, request_deadline))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "服务器内部错误，请稍后重试",
            )
            .into_response()
        }))
        // Outside the time limit and the panic catcher, so that their answers too are JSON errors
        // with the security headers.
        .layer(middleware::from_fn_with_state(body_limit, json_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(
            // Failures are logged where they happen, once, with their cause (`ApiError`): the trace
            // layer's own line for every 5xx would say it a second time without one.
            TraceLayer::new_for_http()
                .on_failure(())
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // The path only (queries may carry personal data), and a rater's link without its
                    // token: the token is the key to that rater's review.
                    let path = req.uri().path();
                    let path = if path.starts_with("/r/") {
                        "/r/…"
                    } else {
                        path
                    };
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %path)
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::Extension(recorder))
        .layer(axum::Extension(Arc::new(doc)))
        .with_state(state)
}

/// The OpenAPI document of this API, for other systems and tests.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(&WebConfig::default()).split_for_parts().1
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Bihuan (闭环) API", description = "政务服务好差评差评整改闭环：评价归集、工单流转、督查审核。"),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer token every protected route takes.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "本 API 的 OpenAPI 文档", body = Object)))]
async fn openapi_json(
    axum::Extension(doc): axum::Extension<Arc<utoipa::openapi::OpenApi>>,
) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json((*doc).clone())
}

/// The longest path and query accepted.
const MAX_URI_BYTES: usize = 4096;

/// The content security policy of every answer: the pages use no script, no inline style, nothing
/// from another site, and may not be framed.
const CSP: &str = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer (when a handler did not set its own): the content security
/// policy, no MIME sniffing, no referrer (a rater's link holds its token), no framing, and
/// `Cache-Control: no-store` — signed-in pages and API answers carry personal data; only the
/// stylesheet says it may be cached.
async fn security_headers(req: Request, next: Next) -> Response {
    // Every path and query parameter is bounded at once by the address's length, and none may hold
    // a NUL character (PostgreSQL refuses it in text; no name, date or code has one).
    let address = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    let mut response = if address.len() > MAX_URI_BYTES {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("请求地址过长：不能超过 {MAX_URI_BYTES} 字节"),
        )
        .into_response()
    } else if has_encoded_nul(address.as_bytes()) {
        nul_error("请求地址").into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, axum::http::HeaderValue::from_static(value));
        }
    }
    response
}

/// Whether a request legitimately runs long: a whole export, a bulk import, an evidence file. Each of its waits on the
/// database is bounded by the store (pool, locks); the request as a whole by `request_timeout`.
fn runs_long(method: &axum::http::Method, uri: &axum::http::Uri) -> bool {
    let path = uri.path();
    path.starts_with("/api/v1/export/")
        || path.ends_with("/export.xlsx")
        // An evidence file streams in or out at the client's pace.
        || path.starts_with("/api/v1/attachments/")
        // The chain check reads every cited file back from the file store.
        || path == "/api/v1/audit/verify"
        || (path == "/supervise" && uri.query().is_some_and(|q| q.contains("verify=")))
        || (method == axum::http::Method::POST
            && (matches!(path, "/api/v1/ratings/batch" | "/api/v1/plans" | "/plans")
                || is_upload(path)))
}

/// How long an evidence upload may take at least: a file of `BIHUAN_MAX_UPLOAD_MB` over a slow
/// township line (20 MiB at 256 kbit/s is about 11 minutes).
const UPLOAD_TIME: Duration = Duration::from_secs(15 * 60);

/// Every request answers within `limit` (408 `timeout` past it), an evidence upload within
/// [`UPLOAD_TIME`] if that is longer: its body arrives at the client's pace.
async fn request_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let limit = if req.method() == axum::http::Method::POST && is_upload(req.uri().path()) {
        limit.max(UPLOAD_TIME)
    } else {
        limit
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "请求处理超时").into_response()
        }
    }
}

/// Whether `path` is one an evidence file is uploaded to (`…/attachments`).
fn is_upload(path: &str) -> bool {
    path.ends_with("/attachments")
}

/// Every other request answers within the database's time limit (and a second for the rest): a
/// database that stops answering (a frozen server, a cut network, a hung disk) gives 503
/// `storage_unavailable`, not a hang. A write's own transaction is bounded inside the store, which
/// tells "not saved" from "outcome unknown"; this deadline cannot tell, so it says neither.
async fn storage_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if runs_long(req.method(), req.uri()) {
        return next.run(req).await;
    }
    let html = pages::wants_html(req.headers());
    let limit = state.store.timeout() + Duration::from_secs(1);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(
                limit_ms = limit.as_millis() as u64,
                "the database did not answer in time"
            );
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "数据库未在规定时间内应答，请稍后重试；如是提交操作，请先刷新查看是否已生效。",
            )
            .with_details(serde_json::json!({ "outcome": "unknown" }));
            if html {
                pages::PageError::new(error, None).into_response()
            } else {
                error.into_response()
            }
        }
    }
}

/// Whether URL-encoded text holds an encoded NUL (`%00`).
fn has_encoded_nul(text: &[u8]) -> bool {
    text.windows(3).any(|w| w == b"%00")
}

/// 400 `invalid_text`: `place` holds a NUL character.
pub(crate) fn nul_error(place: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_text",
        format!("{place}中含有不允许的 NUL 字符（\\u0000）"),
    )
}

/// A form (`application/x-www-form-urlencoded`) holding an encoded NUL is refused before any handler
/// reads it, as the address is; other bodies pass untouched.
async fn forms_without_nul(State(body_limit): State<usize>, req: Request, next: Next) -> Response {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, body_limit).await else {
        return ApiError::payload_too_large(body_limit).into_response();
    };
    if has_encoded_nul(&bytes) {
        return nul_error("表单").into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Any error answer that is not JSON yet (a time-out, a rejection from a layer) gets the JSON body of
/// the API with a code for its status; a body over the limit is told the limit (the upload routes
/// answer their own larger limit themselves).
async fn json_errors(State(body_limit): State<usize>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(body_limit)
    } else {
        let (code, message) = match status {
            StatusCode::REQUEST_TIMEOUT => ("timeout", "请求处理超时"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "此地址不支持该请求方法"),
            StatusCode::NOT_FOUND => ("not_found", "没有这个地址"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "不支持的请求内容类型")
            }
            s if s.is_server_error() => ("internal_error", "服务器内部错误，请稍后重试"),
            _ => ("bad_request", "请求无效"),
        };
        ApiError::new(status, code, message)
    };
    let mut fresh = error.into_response();
    for name in [REQUEST_ID, header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            fresh.headers_mut().insert(name, v.clone());
        }
    }
    fresh
}
