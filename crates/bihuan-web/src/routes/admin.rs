//! Admins manage units, users and channel tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bihuan_core::Role;
use bihuan_store::{NewUnit, NewUser, OutboxChannel, OutboxStatus, TokenScope};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, SignedIn};
use crate::routes::cases::paging;

/// `/api/v1/units`, `/api/v1/users`, `/api/v1/tokens`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(units, add_unit))
        .routes(routes!(unmapped))
        .routes(routes!(aliases, map_code))
        .routes(routes!(add_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(add_token))
        .routes(routes!(outbox))
        .routes(routes!(upstream))
        .routes(routes!(resend_upstream))
}

/// The units of the organization the caller may reach: admins every unit; others their subtree and
/// the units their service center answers for (unit staff: their own unit).
#[utoipa::path(get, path = "/api/v1/units", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "{items}", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody)))]
async fn units(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    let units = state.store.units().await?;
    Ok(Json(json!({
        "items": units.iter().filter(|u| caller.scope.reaches_unit(&u.code)).map(unit_json).collect::<Vec<_>>()
    })))
}

fn unit_json(u: &bihuan_store::entity::unit::Model) -> Value {
    json!({"code": u.code, "name": u.name, "parent": u.parent_code, "email": u.email, "region_code": u.region_code})
}

/// Unit codes that ratings name but the organization does not have: register them, map them onto a unit
/// (`POST /api/v1/units/aliases`), or fix the sender.
#[utoipa::path(get, path = "/api/v1/units/unmapped", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "{items:[{unit_code, ratings, negative}]}", body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unmapped(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let items = state.store.unmapped_units().await?;
    Ok(Json(json!({
        "items": items.iter().map(|u| json!({"unit_code": u.unit_code, "ratings": u.ratings, "negative": u.negative})).collect::<Vec<_>>()
    })))
}

/// A unit to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UnitBody {
    code: String,
    name: String,
    parent: Option<String>,
    email: Option<String>,
    /// The 行政区划 a service center answers for (6 to 12 digits).
    region_code: Option<String>,
}

/// Adds a unit (admins).
#[utoipa::path(post, path = "/api/v1/units", tag = "admin", security(("bearer" = [])), request_body = UnitBody,
    responses((status = 201, body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_unit(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<UnitBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let unit = state
        .store
        .add_unit(
            &NewUnit {
                code: b.code,
                name: b.name,
                parent: b.parent,
                email: b.email,
                region: b.region_code,
            },
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(unit_json(&unit))))
}

/// The outside unit codes mapped onto registered units (admins).
#[utoipa::path(get, path = "/api/v1/units/aliases", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "{items:[{code, unit, mapped_by, created_at}]}", body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn aliases(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let items = state.store.unit_aliases().await?;
    Ok(Json(json!({
        "items": items.iter().map(alias_json).collect::<Vec<_>>()
    })))
}

fn alias_json(a: &bihuan_store::entity::unit_alias::Model) -> Value {
    json!({"code": a.code, "unit": a.unit_code, "mapped_by": a.mapped_by, "created_at": a.created_at})
}

/// An outside unit code to map onto a registered unit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AliasBody {
    /// The code as ratings send it (see `/api/v1/units/unmapped`).
    code: String,
    /// The registered unit it stands for.
    unit: String,
}

/// Maps an unregistered unit code onto a registered unit (admins): its ratings and cases join that
/// unit's organization.
#[utoipa::path(post, path = "/api/v1/units/aliases", tag = "admin", security(("bearer" = [])), request_body = AliasBody,
    responses((status = 201, body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn map_code(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<AliasBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let alias = state
        .store
        .map_unit_code(&b.code, &b.unit, &caller.user.username, state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(alias_json(&alias))))
}

/// A user to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserBody {
    username: String,
    role: String,
    unit: Option<String>,
    email: Option<String>,
    /// A mobile number the daily digest also goes to by SMS.
    sms_phone: Option<String>,
    password: String,
}

/// Adds a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", security(("bearer" = [])), request_body = UserBody,
    responses((status = 201, body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_user(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<UserBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let role: Role = b
        .role
        .parse()
        .map_err(|e: bihuan_core::UnknownRole| ApiError::invalid_field("role", e.to_string()))?;
    let password = b.password;
    let new = NewUser {
        username: b.username,
        role,
        unit: b.unit,
        email: b.email,
        sms_phone: b.sms_phone,
    };
    let user = state
        .store
        .add_user(&new, &password, state.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"username": user.username, "role": user.role, "unit": user.unit_code, "email": user.email,
                "sms_phone": user.sms_phone.as_deref().map(bihuan_core::rating::mask_phone)}),
        ),
    ))
}

/// Disables an account (admins): its sessions end at once and it cannot sign in until enabled.
#[utoipa::path(post, path = "/api/v1/users/{username}/disable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "用户名")),
    responses((status = 204, description = "已停用"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "不能停用自己的账号", body = ErrorBody)))]
async fn disable_user(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if username == caller.user.username {
        return Err(ApiError::invalid_field(
            "username",
            "不能停用自己的账号（否则将无人管理）",
        ));
    }
    state
        .store
        .set_user_disabled(&username, true, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a disabled account again (admins).
#[utoipa::path(post, path = "/api/v1/users/{username}/enable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "用户名")),
    responses((status = 204, description = "已启用"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enable_user(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state
        .store
        .set_user_disabled(&username, false, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An API token to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    name: String,
    /// `ratings:write` (default) or `metrics:read`.
    #[serde(default)]
    scope: Option<String>,
    /// For a ratings token: the only `source` its ratings may have (default: its name).
    #[serde(default)]
    source: Option<String>,
}

/// Creates a channel token (admins); it is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", security(("bearer" = [])), request_body = TokenBody,
    responses((status = 201, description = "{name, scope, token}", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_token(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let scope = match b.scope.as_deref() {
        None => TokenScope::RatingsWrite,
        Some(s) => s.parse()?,
    };
    let token = state
        .store
        .add_api_token(&b.name, scope, b.source.as_deref(), state.clock.now())
        .await?;
    let source = (scope == TokenScope::RatingsWrite)
        .then(|| b.source.as_deref().unwrap_or(&b.name).trim().to_owned());
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": b.name.trim(), "scope": scope.as_str(), "source": source, "token": token}),
        ),
    ))
}

/// Filters of the outbox list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `sent`, `dead`, `digest` (reminders the daily digest lists) or `lapsed`.
    status: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

/// The mail outbox (admins): what waits to be sent, what was sent, and what was given up after the
/// last retry (`status=dead`), with the last error.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "admin", security(("bearer" = [])), params(OutboxQuery),
    responses((status = 200, description = "{items:[{id, kind, case_id, audience, recipients, subject, status, attempts, next_attempt_at, last_error, created_at, sent_at}], total}", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn outbox(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(OutboxStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = OutboxStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid_field(
                "status",
                format!("状态 {text} 无效：应为 {}", known.join("、")),
            )
        })?),
    };
    let (page, per_page) = paging(q.page, q.per_page)?;
    let (items, total) = state
        .store
        .list_outbox(None, status, page, per_page)
        .await?;
    Ok(Json(json!({
        "items": items.iter().map(|m| json!({
            "id": m.id, "channel": m.channel.as_str(), "kind": m.kind, "case_id": m.case_id,
            "audience": m.audience,
            "recipients": m.recipients, "subject": m.subject, "status": m.status.as_str(),
            "attempts": m.attempts, "next_attempt_at": m.next_attempt_at,
            "last_error": m.last_error, "created_at": m.created_at, "sent_at": m.sent_at,
        })).collect::<Vec<_>>(),
        "total": total, "page": page, "per_page": per_page,
    })))
}

/// Which pushes to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpstreamQuery {
    /// `pending`, `sent` or `dead`.
    status: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

/// 数据回传 (admins): each step of a 差评's handling pushed to the provincial platform, waiting,
/// delivered, or given up after the last retry (`status=dead`) with the platform's last answer.
#[utoipa::path(get, path = "/api/v1/upstream", tag = "admin", security(("bearer" = [])), params(UpstreamQuery),
    responses((status = 200, description = "{items:[{id, case_id, step, idempotency_key, status, attempts, next_attempt_at, last_error, created_at, sent_at, body}], total}", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upstream(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<UpstreamQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let shown = [
        OutboxStatus::Pending,
        OutboxStatus::Sent,
        OutboxStatus::Dead,
    ];
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(
            OutboxStatus::parse(text)
                .filter(|s| shown.contains(s))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "status",
                        format!("状态 {text} 无效：应为 pending、sent 或 dead"),
                    )
                })?,
        ),
    };
    let (page, per_page) = paging(q.page, q.per_page)?;
    let (items, total) = state
        .store
        .list_outbox(Some(OutboxChannel::Upstream), status, page, per_page)
        .await?;
    let items = items
        .iter()
        .map(|m| {
            let body: Value = m
                .payload
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| {
                    ApiError::internal(&format!(
                        "push {} has a payload that is not JSON: {e}",
                        m.id
                    ))
                })?
                .unwrap_or(Value::Null);
            Ok(json!({
                "id": m.id, "case_id": m.case_id,
                "step": m.kind.strip_prefix("upstream_").unwrap_or(&m.kind),
                "idempotency_key": bihuan_store::idempotency_key(m),
                "status": m.status.as_str(), "attempts": m.attempts,
                "next_attempt_at": m.next_attempt_at, "last_error": m.last_error,
                "created_at": m.created_at, "sent_at": m.sent_at, "body": body,
            }))
        })
        .collect::<ApiResult<Vec<Value>>>()?;
    Ok(Json(json!({
        "items": items, "total": total, "page": page, "per_page": per_page,
    })))
}

/// Sends a push that was given up (`dead`) again, with a fresh round of attempts (admins); 404 when
/// there is no such dead push.
#[utoipa::path(post, path = "/api/v1/upstream/{id}/retry", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "推送编号")),
    responses((status = 204, description = "已重新排队"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "没有这条已放弃的推送", body = ErrorBody)))]
async fn resend_upstream(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if state
        .store
        .retry_outbox(id, Some(OutboxChannel::Upstream), state.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "没有已放弃的数据回传推送 {id}"
        )))
    }
}
