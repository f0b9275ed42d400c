//! Signing in and out: `POST /api/v1/session` issues a token, `DELETE` revokes it, and
//! `POST /api/v1/session/password` changes the password. Too many attempts for one username at one
//! address, or from one address, within ten minutes answer 429 for a while.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bihuan_store::entity::user;
use bihuan_store::{SignInAttempt, ThrottleKey};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ClientIp, SignedIn};

/// Sign-in attempts allowed per username and address within [`WINDOW_MINUTES`].
pub const MAX_PER_USER_AND_ADDRESS: u64 = 5;
/// Sign-in attempts allowed per address within [`WINDOW_MINUTES`], whatever the usernames (an
/// office behind one address signs in many people; a guesser tries many names).
pub const MAX_PER_ADDRESS: u64 = 30;
/// The throttling window.
pub const WINDOW_MINUTES: i64 = 10;
/// The longest username (usernames are codes of at most 64 characters).
pub const MAX_USERNAME_CHARS: usize = 64;

/// `/api/v1/session`, `/api/v1/session/password`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(change_password))
}

/// A sign-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    username: String,
    password: String,
}

/// Signs in: a bearer token for the API (expires, default 12 hours; ends after 30 idle minutes).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Credentials,
    responses((status = 200, description = "{token, expires_at, user}", body = Object),
        (status = 401, description = "用户名或密码错误", body = ErrorBody),
        (status = 422, description = "用户名或密码过长", body = ErrorBody),
        (status = 429, description = "登录尝试次数过多（Retry-After）", body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
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

/// Checks a username and password and opens a session: the account, the session token and when it
/// expires. The API and the sign-in page both come here.
///
/// Throttled per (username, client address) and per address, never per username alone (anyone could
/// lock anyone out); the attempt is counted before the password is checked, so parallel attempts
/// cannot slip past the count.
pub(crate) async fn authenticate(
    state: &AppState,
    username: &str,
    password: String,
    addr: Option<IpAddr>,
) -> ApiResult<(user::Model, String, DateTime<Utc>)> {
    let now = state.clock.now();
    let username = username.trim().to_owned();
    if username.is_empty() || username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::invalid_field(
            "username",
            format!("用户名不能为空，最长 {MAX_USERNAME_CHARS} 个字符"),
        ));
    }
    if password.len() > bihuan_store::MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid_field(
            "password",
            format!("密码不能超过 {} 字节", bihuan_store::MAX_PASSWORD_BYTES),
        ));
    }
    let (attempt, pair) = count_attempt(state, &username, addr).await?;
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
        // The attempt stays counted.
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "用户名或密码错误",
            ));
        }
    };
    state.store.end_sign_in(&attempt, &[pair]).await?;
    let (token, expires_at) = state
        .store
        .create_session(user.id, now, state.config.session_ttl)
        .await?;
    Ok((user, token, expires_at))
}

/// Counts an attempt at `username`'s password from `addr` before it is checked, or refuses it (429)
/// when the pair or the address has had too many; answers the rows to clear when the password turns
/// out right, and the pair's key.
async fn count_attempt(
    state: &AppState,
    username: &str,
    addr: Option<IpAddr>,
) -> ApiResult<(Vec<i64>, String)> {
    let now = state.clock.now();
    let address = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let pair = format!("pair:{username}|{address}");
    let keys = [
        ThrottleKey {
            key: pair.clone(),
            max: MAX_PER_USER_AND_ADDRESS,
        },
        ThrottleKey {
            key: format!("addr:{address}"),
            max: MAX_PER_ADDRESS,
        },
    ];
    let window = Duration::minutes(WINDOW_MINUTES);
    match state.store.begin_sign_in(&keys, window, now).await? {
        SignInAttempt::Allowed(rows) => Ok((rows, pair)),
        SignInAttempt::Throttled(wait) => {
            tracing::warn!("password attempt throttled");
            let seconds = u64::try_from(wait.num_seconds()).unwrap_or(1).max(1);
            Err(ApiError::too_many(
                "too_many_attempts",
                format!("密码尝试次数过多，请 {} 分钟后再试", seconds.div_ceil(60)),
                seconds,
            ))
        }
    }
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

/// A password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// Changes the caller's password; every other session of theirs ends.
#[utoipa::path(post, path = "/api/v1/session/password", tag = "session", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204, description = "已修改；其他会话已结束"), (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 422, description = "当前密码不正确，或新密码少于 12 个字符（weak_password）", body = ErrorBody),
        (status = 429, description = "密码尝试次数过多（Retry-After）", body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: SignedIn,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    if body.current.len() > bihuan_store::MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid_field("current", "当前密码不正确"));
    }
    // Guessing the current password through a stolen session counts as sign-in attempts do.
    let (attempt, pair) = count_attempt(&state, &caller.user.username, addr).await?;
    state
        .store
        .change_password(
            caller.user.id,
            &body.current,
            &body.new,
            Some(&caller.token),
            state.clock.now(),
        )
        .await?;
    state.store.end_sign_in(&attempt, &[pair]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An argon2id hash of a random password nobody knows, verified when the username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$OnQ0SaJeFGZQ3U1Wq1DxGH0cR1zg5Im5F4u+8PvSDy8";
