//! Extractors that answer with the API's JSON errors: the body, the path, the query, and who calls.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::{Json, http::header};
use bihuan_core::{Actor, Role};
use bihuan_store::entity::user;
use bihuan_store::{ApiToken, CHANNEL_PREFIX, CaseScope, SESSION_PREFIX, SessionUser, TokenScope};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body; malformed JSON is 400, a wrong shape 422, a wrong content type 415, too large 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || ApiError::payload_too_large(AppState::from_ref(state).config.body_limit);
        let declared_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                // As axum judges it: application/json or application/…+json, parameters aside.
                let essence = v.split(';').next().unwrap_or_default().trim();
                let essence = essence.to_ascii_lowercase();
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            });
        if !declared_json {
            // axum's own extractor names what is wrong.
            return match Json::<T>::from_request(req, state).await {
                Ok(Json(value)) => Ok(Self(value)),
                Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    Err(too_large())
                }
                Err(rejection) => Err(json_rejection(&rejection)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request(
                        "bad_request",
                        format!("无法读取请求内容：{}", rejection.body_text()),
                    )
                }
            })?;
        // The plain parser first (a batch holds thousands of ratings); only a body that fails is parsed
        // again by axum's, which tracks the path to the error for the message.
        let value = match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => value,
            Err(_) => match Json::<T>::from_bytes(&bytes) {
                Ok(Json(value)) => value,
                Err(rejection) => return Err(json_rejection(&rejection)),
            },
        };
        // JSON can spell a NUL character only as the escape `\u0000`: a body without that text
        // holds none; one with it is searched for the string that does.
        if bytes.windows(6).any(|w| w == b"\\u0000")
            && let Ok(tree) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(at) = nul_at(&tree, "")
        {
            return Err(crate::nul_error(&format!("字段 {at} ")));
        }
        Ok(Self(value))
    }
}

/// The path (`ratings[3].name`) of the first string or key of `value` holding a NUL character.
fn nul_at(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Some(if path.is_empty() {
            "(body)".into()
        } else {
            path.into()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(here.replace('\0', "\\u0000"))
            } else {
                nul_at(item, &here)
            }
        }),
        _ => None,
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("请求内容不符合要求：{}", e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("请求内容不是有效的 JSON：{}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "请求须为 JSON（Content-Type: application/json）",
        ),
        other => ApiError::bad_request(
            "bad_request",
            format!("无法读取请求内容：{}", other.body_text()),
        ),
    }
}

/// Path parameters; a value of the wrong shape is 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::bad_request(
                "invalid_path",
                format!("路径参数无效：{}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

/// Query parameters; a value of the wrong shape is 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => Err(
                ApiError::bad_request("invalid_query", format!("查询参数无效：{}", e.body_text())),
            ),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Result<Option<String>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization 头无效"))?;
    match value.strip_prefix("Bearer ").map(str::trim) {
        // Tokens are 68 characters; anything much longer is refused before any lookup.
        Some(token) if token.len() > MAX_TOKEN_BYTES => {
            Err(ApiError::unauthorized("令牌无效或已过期"))
        }
        Some(token) if !token.is_empty() => Ok(Some(token.to_owned())),
        _ => Err(ApiError::unauthorized("Authorization 头应为 Bearer 令牌")),
    }
}

/// The longest bearer token looked up.
const MAX_TOKEN_BYTES: usize = 256;

/// The client's address: the peer's, or — when the peer is a trusted proxy
/// (`BIHUAN_TRUSTED_PROXIES`) — the nearest address in `X-Forwarded-For` that is not one. Used for
/// the sign-in throttle; `None` when the server does not know the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self(peer.map(|peer| {
            client_ip(peer, &forwarded, &state.config.trusted_proxies)
        })))
    }
}

/// The client of a request from `peer` carrying `X-Forwarded-For: forwarded`: the header is believed
/// only as far as the proxies that wrote it are trusted, read from the right (the nearest hop first).
pub fn client_ip(peer: IpAddr, forwarded: &str, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded
        .rsplit(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // A hop that is no address: what lies beyond it cannot be believed.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// Parses `BIHUAN_TRUSTED_PROXIES`: comma-separated CIDRs or single addresses.
pub fn parse_trusted_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("“{t}”不是 CIDR（如 10.0.0.0/8）或 IP 地址"))
        })
        .collect()
}

/// A signed-in user, with the scope of cases they may see.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account.
    pub user: user::Model,
    /// Their role.
    pub role: Role,
    /// What the workflow interpreter needs of them.
    pub actor: Actor,
    /// The cases they may see.
    pub scope: CaseScope,
    /// The session token they used.
    pub token: String,
}

impl SignedIn {
    /// Only admins pass.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_only",
                "只有系统管理员可以执行此操作",
            ))
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Reading with the pages' cookie is allowed (exports, charts); changing is not, so another
        // site cannot make a signed-in browser act (the pages' own forms carry CSRF tokens).
        let cookie = || {
            matches!(parts.method, Method::GET | Method::HEAD)
                .then(|| crate::pages::session_cookie_token(&parts.headers))
                .flatten()
        };
        let Some(token) = bearer(parts)?.or_else(cookie) else {
            return Err(ApiError::unauthorized(
                "请先登录（Authorization: Bearer 令牌）",
            ));
        };
        Self::from_session(state, token).await
    }
}

impl SignedIn {
    /// The user of a session token, with their role, actor and scope.
    pub async fn from_session(state: &AppState, token: String) -> Result<Self, ApiError> {
        if token.starts_with(CHANNEL_PREFIX) {
            return Err(ApiError::forbidden(
                "channel_token_not_allowed",
                "渠道令牌只能用于推送评价",
            ));
        }
        if !token.starts_with(SESSION_PREFIX) {
            return Err(ApiError::unauthorized("令牌无效或已过期"));
        }
        let SessionUser { user, reach } = state
            .store
            .session_user(&token, state.clock.now(), state.config.session_idle)
            .await?
            .ok_or_else(|| ApiError::unauthorized("令牌无效或已过期"))?;
        let role = *user.role;
        let scope = match (role, &user.unit_code) {
            (Role::Admin, _) => CaseScope::All,
            (Role::UnitStaff, Some(unit)) => CaseScope::Responsible(unit.clone()),
            (_, _) => CaseScope::Units(reach.unwrap_or_default()),
        };
        let actor = Actor {
            name: user.username.clone(),
            role,
            unit: user.unit_code.clone(),
        };
        Ok(Self {
            user,
            role,
            actor,
            scope,
            token,
        })
    }
}

/// A channel pushing ratings with its API token.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The token (scope `ratings:write`, bound to its source).
    pub token: ApiToken,
}

impl Channel {
    /// A rating of another source than the token's is refused: one channel cannot write (or squat)
    /// another's ratings.
    pub fn check_source(&self, source: &str) -> Result<(), ApiError> {
        match &self.token.source {
            Some(own) if own == source => Ok(()),
            own => Err(ApiError::forbidden(
                "source_mismatch",
                format!(
                    "该渠道令牌只能推送来源为 {} 的评价，不能推送来源 {source}",
                    own.as_deref().unwrap_or("（无）")
                ),
            )
            .with_details(serde_json::json!({ "field": "source" }))),
        }
    }
}

impl FromRequestParts<AppState> for Channel {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(parts)? else {
            return Err(ApiError::unauthorized(
                "需要渠道令牌（Authorization: Bearer 令牌）",
            ));
        };
        if token.starts_with(SESSION_PREFIX) {
            return Err(ApiError::forbidden(
                "channel_token_required",
                "推送评价须使用渠道令牌",
            ));
        }
        let token = scoped_token(
            state,
            &token,
            TokenScope::RatingsWrite,
            "该令牌无权推送评价",
        )
        .await?;
        Ok(Self { token })
    }
}

/// The live API token `token` with `scope`: unknown or revoked is 401, another scope 403
/// `scope_missing` (`refused` says what it may not do).
async fn scoped_token(
    state: &AppState,
    token: &str,
    scope: TokenScope,
    refused: &str,
) -> Result<ApiToken, ApiError> {
    let token = state
        .store
        .api_token(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("令牌无效或已吊销"))?;
    if token.scope != scope {
        return Err(ApiError::forbidden("scope_missing", refused.to_owned()));
    }
    Ok(token)
}

/// A monitoring system reading `/metrics` with a `metrics:read` token — or anyone, when the
/// deployment made the figures public (`BIHUAN_METRICS_PUBLIC=true`).
#[derive(Debug, Clone, Copy)]
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.metrics_public {
            return Ok(Self);
        }
        let Some(token) = bearer(parts)? else {
            return Err(ApiError::unauthorized(
                "需要监控令牌（Authorization: Bearer 令牌，权限范围 metrics:read）",
            ));
        };
        scoped_token(
            state,
            &token,
            TokenScope::MetricsRead,
            "该令牌无权读取监控指标（需要 metrics:read）",
        )
        .await?;
        Ok(Self)
    }
}
