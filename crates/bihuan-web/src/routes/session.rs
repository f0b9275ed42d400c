//! Signing in and out: `POST /api/v1/session` issues a token, `DELETE` revokes it.
//! Repeated failures for one username or address within ten minutes answer 429 for a while.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bihuan_store::entity::user;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, SignedIn};

/// Failed sign-ins allowed per username or address within [`WINDOW_MINUTES`].
pub const MAX_FAILURES: u64 = 5;
/// The throttling window.
pub const WINDOW_MINUTES: i64 = 10;

/// `/api/v1/session`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in, sign_out))
}

/// A sign-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    username: String,
    password: String,
}

/// The caller's address, when the server knows it.
#[derive(Debug)]
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Signs in: a bearer token for the API (expires, default 12 hours).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Credentials,
    responses((status = 200, description = "{token, expires_at, user}", body = Object),
        (status = 401, description = "用户名或密码错误", body = ErrorBody),
        (status = 429, description = "登录失败次数过多", body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(credentials): ApiJson<Credentials>,
) -> ApiResult<Json<Value>> {
    let (user, token, expires_at) =
        authenticate(&state, &credentials.username, credentials.password, addr).await?;
    Ok(Json(json!({
        "token": token,
        "expires_at": expires_at,
        "user": { "username": user.username, "role": user.role, "unit": user.unit_code },
    })))
}

/// Checks a username and password (throttled per username and address) and opens a session: the
/// account, the session token and when it expires. The API and the sign-in page both come here.
pub(crate) async fn authenticate(
    state: &AppState,
    username: &str,
    password: String,
    addr: Option<SocketAddr>,
) -> ApiResult<(user::Model, String, DateTime<Utc>)> {
    let now = state.clock.now();
    let username = username.trim().to_owned();
    let mut keys = vec![format!("user:{username}")];
    keys.extend(addr.map(|a| format!("addr:{}", a.ip())));
    let since = now - Duration::minutes(WINDOW_MINUTES);
    for key in &keys {
        if state.store.login_failures_since(key, since).await? >= MAX_FAILURES {
            tracing::warn!(key = %key.split(':').next().unwrap_or_default(), "sign-in throttled");
            return Err(ApiError::too_many_requests(
                format!("登录失败次数过多，请 {WINDOW_MINUTES} 分钟后再试"),
                u64::try_from(WINDOW_MINUTES * 60).unwrap_or(600),
            ));
        }
    }
    let user = state.store.user_by_name(&username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Verifying is deliberately slow: keep it off the async workers, and do it even for an unknown
    // user so the answer's timing does not tell which usernames exist.
    let valid = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        bihuan_store::verify_password(&hash, &password)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let user = match user {
        Some(u) if valid && !u.disabled => u,
        _ => {
            state.store.record_login_failure(&keys, now).await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "用户名或密码错误",
            ));
        }
    };
    state.store.clear_login_failures(&keys[0]).await?;
    let (token, expires_at) = state
        .store
        .create_session(user.id, now, state.config.session_ttl)
        .await?;
    Ok((user, token, expires_at))
}

/// Signs out: revokes the token used.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 204, description = "已注销"), (status = 401, description = "未登录或令牌无效", body = ErrorBody)))]
async fn sign_out(State(state): State<AppState>, caller: SignedIn) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_session(&caller.token, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An argon2id hash of a random password nobody knows, verified when the username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$OnQ0SaJeFGZQ3U1Wq1DxGH0cR1zg5Im5F4u+8PvSDy8";
