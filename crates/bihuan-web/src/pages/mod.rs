//! The web pages staff and supervisors work in: server-rendered HTML in Simplified Chinese from the
//! templates under `templates/pages/` (minijinja, HTML auto-escaping on), one stylesheet, no script.
//!
//! Pages sign in with a cookie carrying the same session token the API takes as a bearer token (one
//! session table, one way to revoke), and every form carries a CSRF token derived from it. Handlers
//! read, call the store, and hand plain view structs (`views`) to a template; nothing here decides
//! what the workflow allows, the core does.

/// The context of a page, as `minijinja::context!` writes it (`key => value` or a variable's name),
/// from any serializable values.
macro_rules! page_context {
    ($($key:ident $(=> $value:expr)?),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $(
            map.insert(
                stringify!($key).to_owned(),
                serde_json::to_value(page_context!(@value $key $(, $value)?))
                    .unwrap_or(serde_json::Value::Null),
            );
        )*
        serde_json::Value::Object(map)
    }};
    (@value $key:ident) => { &$key };
    (@value $key:ident, $value:expr) => { &$value };
}

mod act;
mod admin;
mod auth;
mod cases;
mod files;
mod forms;
mod ledger;
mod plans;
mod stats;
mod supervise;
mod views;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

pub(crate) use auth::PageUser;
pub use auth::session_cookie_token;

/// The pages' routes; the plan upload form takes files of up to `max_upload` bytes.
pub fn router(max_upload: usize) -> Router<AppState> {
    let upload_body = max_upload.saturating_add(crate::routes::attachments::MULTIPART_OVERHEAD);
    Router::new()
        .route("/", get(cases::todo))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/cases/{id}", get(cases::show).post(cases::act))
        .route(
            "/cases/{id}/attachments",
            post(files::upload_to_case).layer(DefaultBodyLimit::max(upload_body)),
        )
        .route(
            "/tasks/{id}/attachments",
            post(files::upload_to_task).layer(DefaultBodyLimit::max(upload_body)),
        )
        .route("/ledger", get(ledger::page))
        .route(
            "/plans",
            get(plans::list)
                .post(plans::import)
                .layer(DefaultBodyLimit::max(max_upload)),
        )
        .route("/plans/{id}", get(plans::board))
        .route("/tasks/{id}", get(plans::show).post(plans::act))
        .route("/stats", get(stats::page))
        .route("/supervise", get(supervise::page))
        .route("/supervise/audits", post(supervise::audit))
        .route("/admin", get(admin::page))
        .route("/admin/units", post(admin::add_unit))
        .route("/admin/users", post(admin::add_user))
        .route("/admin/tokens", post(admin::add_token))
        .route("/admin/aliases", post(admin::map_code))
        .route("/admin/outbox/{id}/retry", post(admin::retry_mail))
        .route("/static/style.css", get(style))
}

/// Every template, compiled once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in [
        (
            "layout.html",
            include_str!("../../templates/pages/layout.html"),
        ),
        (
            "macros.html",
            include_str!("../../templates/pages/macros.html"),
        ),
        (
            "login.html",
            include_str!("../../templates/pages/login.html"),
        ),
        (
            "message.html",
            include_str!("../../templates/pages/message.html"),
        ),
        ("todo.html", include_str!("../../templates/pages/todo.html")),
        ("case.html", include_str!("../../templates/pages/case.html")),
        (
            "ledger.html",
            include_str!("../../templates/pages/ledger.html"),
        ),
        (
            "stats.html",
            include_str!("../../templates/pages/stats.html"),
        ),
        (
            "supervise.html",
            include_str!("../../templates/pages/supervise.html"),
        ),
        (
            "admin.html",
            include_str!("../../templates/pages/admin.html"),
        ),
        (
            "plans.html",
            include_str!("../../templates/pages/plans.html"),
        ),
        ("plan.html", include_str!("../../templates/pages/plan.html")),
        ("task.html", include_str!("../../templates/pages/task.html")),
        ("review.html", include_str!("../../templates/review.html")),
    ] {
        // A syntax error is caught by this module's test; the page would then answer 500.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "page template");
        }
    }
    env
});

/// Renders a template with its context; a rendering failure is logged and answers 500.
pub(crate) fn render(status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
    let rendered = TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(Value::from(Serde(&ctx))));
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><meta charset=utf-8><title>服务器内部错误</title><p>服务器内部错误，请稍后重试。</p>"),
            )
                .into_response()
        }
    }
}

/// A failure shown as a page: the API error's status and message, in the layout (boxed: it is
/// the error of every page handler and should stay small to move).
#[derive(Debug)]
pub(crate) struct PageError(Box<(ApiError, Option<views::Me>)>);

impl PageError {
    pub(crate) fn new(error: impl Into<ApiError>, user: Option<&PageUser>) -> Self {
        Self(Box::new((error.into(), user.map(views::Me::of))))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (error, me) = *self.0;
        let status = error.status();
        let title = match status {
            StatusCode::NOT_FOUND => "没有找到",
            StatusCode::FORBIDDEN => "无权访问",
            StatusCode::CONFLICT => "操作冲突",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE => "暂时无法保存",
            s if s.is_server_error() => "服务器内部错误",
            _ => "请求无效",
        };
        let nav = me.as_ref().map(|m| views::nav(m, "")).unwrap_or_default();
        render(
            status,
            "message.html",
            page_context! {
                title, text => error.message(), me, nav,
            },
        )
    }
}

/// The result of a page handler.
pub(crate) type PageResult = Result<Response, PageError>;

/// `GET /static/style.css`: the one stylesheet, compiled into the binary.
async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

/// Whether a request prefers a page to JSON (a browser's navigation does).
pub(crate) fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The 404 page of an unknown address, for browsers.
pub(crate) fn not_found_page() -> Response {
    render(
        StatusCode::NOT_FOUND,
        "message.html",
        page_context! { title => "没有找到", text => "没有这个页面。", nav => Vec::<()>::new() },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_template_compiles() {
        for name in [
            "layout.html",
            "macros.html",
            "login.html",
            "message.html",
            "todo.html",
            "case.html",
            "ledger.html",
            "stats.html",
            "supervise.html",
            "admin.html",
            "plans.html",
            "plan.html",
            "task.html",
            "review.html",
        ] {
            TEMPLATES.get_template(name).unwrap();
        }
    }
}
