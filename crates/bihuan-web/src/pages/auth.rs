//! Signing in and out of the pages: a cookie session (HttpOnly, SameSite=Lax, Secure over https)
//! holding an API session token, and CSRF tokens on every form.
//!
//! A form's token is a hash of the session token, so nothing more is stored and a token dies with its
//! session; the sign-in form, before any session, is guarded by a random value that must come back in
//! both a cookie and the form (double submit).

use axum::Form;
use axum::extract::{FromRequestParts, OriginalUri, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bihuan_store::token_hash;
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::{PageError, render, views};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::extract::SignedIn;
use crate::routes::session::authenticate;

/// The cookie holding the session token.
pub(crate) const SESSION_COOKIE: &str = "bihuan_session";
/// The cookie of the sign-in form's CSRF value.
const LOGIN_COOKIE: &str = "bihuan_login";

/// The session token of a request's cookies, if any.
pub fn session_cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether cookies must be marked Secure: the deployment says it is served over https, or the proxy
/// in front says this request came over https.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    name: &str,
    value: String,
    max_age: Option<chrono::Duration>,
    secure: bool,
) -> HeaderValue {
    let mut c = Cookie::build((name.to_owned(), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure);
    if let Some(age) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(age.num_seconds()));
    }
    // Cookie values here are tokens of [A-Za-z0-9_], always a valid header.
    HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The CSRF token of the forms of a session.
pub(crate) fn csrf_of(session_token: &str) -> String {
    token_hash(&format!("csrf:{session_token}"))
}

/// Compares without an early exit, so the time taken tells nothing of the expected token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A user signed in to the pages, with the CSRF token of their forms. Without a live session the
/// request is sent to the sign-in page, which brings them back afterwards.
#[derive(Debug, Clone)]
pub(crate) struct PageUser {
    pub caller: SignedIn,
    pub csrf: String,
}

impl PageUser {
    /// Checks the CSRF token a form sent; a page saying so when it is missing or wrong.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), PageError> {
        match given {
            Some(token) if same(token, &self.csrf) => Ok(()),
            _ => Err(PageError::new(
                ApiError::forbidden(
                    "csrf_failed",
                    "表单已失效或来源不明（缺少有效的 CSRF 令牌），请刷新页面后重新提交。",
                ),
                Some(self),
            )),
        }
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let back = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.to_string(), |u| u.0.to_string());
        let to_login = || {
            let next = if parts.method == axum::http::Method::GET {
                back.clone()
            } else {
                "/".to_owned()
            };
            let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        };
        let Some(token) = session_cookie_token(&parts.headers) else {
            return Err(to_login());
        };
        match SignedIn::from_session(state, token.clone()).await {
            Ok(caller) => Ok(Self {
                caller,
                csrf: csrf_of(&token),
            }),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => Err(to_login()),
            Err(e) => Err(PageError::new(e, None).into_response()),
        }
    }
}

/// Where to go after signing in: a path of this site only. A browser decodes percent escapes and
/// drops tabs and newlines before it resolves a path, so `/%09/evil.example` would lead to
/// `//evil.example`, another site: the path is judged as the browser will read it, and anything
/// doubtful goes home.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else {
        return "/".to_owned();
    };
    let raw_ok = n.len() <= 2048 && n.bytes().all(|b| b.is_ascii_graphic());
    let decoded = percent_decoded(n);
    let read_ok = decoded.as_deref().is_some_and(|d| {
        d.starts_with('/')
            && !d.starts_with("//")
            && !d.contains('\\')
            && d.bytes().all(|b| b >= 0x20 && b != 0x7f)
    });
    if raw_ok && read_ok && n.starts_with('/') {
        n.to_owned()
    } else {
        "/".to_owned()
    }
}

/// `%XX` escapes decoded; `None` when one is broken or the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_form(
        &state,
        &headers,
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        "",
        None,
    )
}

/// The sign-in form, with a fresh CSRF value in a cookie and in the form.
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = uuid::Uuid::new_v4().simple().to_string();
    let flash = error.map(views::Flash::bad);
    let mut response = render(
        status,
        "login.html",
        page_context! { title => "登录", narrow => true, csrf, next, username, flash },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, csrf, None, secure(state, headers)),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginForm {
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

/// `POST /login`: signs in and goes on to the page asked for.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(addr): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let username = form.username.unwrap_or_default();
    let expected = cookie_value(&headers, LOGIN_COOKIE);
    let csrf_ok = matches!((&expected, &form.csrf), (Some(e), Some(g)) if same(e, g));
    if !csrf_ok {
        return login_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            &next,
            &username,
            Some("登录表单已失效，请重新输入后登录。"),
        );
    }
    let password = form.password.unwrap_or_default();
    match authenticate(&state, &username, password, addr).await {
        Ok((_, token, _)) => {
            let mut response = Redirect::to(&next).into_response();
            let secure = secure(&state, &headers);
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    token,
                    Some(state.config.session_ttl),
                    secure,
                ),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    LOGIN_COOKIE,
                    String::new(),
                    Some(chrono::Duration::zero()),
                    secure,
                ),
            );
            response
        }
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            login_form(
                &state,
                &headers,
                status,
                &next,
                &username,
                Some(e.message()),
            )
        }
        Err(e) => PageError::new(e, None).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session and clears the cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: PageUser,
    Form(form): Form<LogoutForm>,
) -> Result<Response, PageError> {
    user.check_csrf(form.csrf.as_deref())?;
    state
        .store
        .revoke_session(&user.caller.token, state.clock.now())
        .await
        .map_err(|e| PageError::new(e, Some(&user)))?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            String::new(),
            Some(chrono::Duration::zero()),
            secure(&state, &headers),
        ),
    );
    Ok(response)
}
