//! Admins manage units, users and channel tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bihuan_core::Role;
use bihuan_store::{NewUnit, NewUser};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, SignedIn};

/// `/api/v1/units`, `/api/v1/users`, `/api/v1/tokens`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/units", get(units).post(add_unit))
        .route("/api/v1/users", post(add_user))
        .route("/api/v1/tokens", post(add_token))
}

async fn units(State(state): State<AppState>, _caller: SignedIn) -> ApiResult<Json<Value>> {
    let units = state.store.units().await?;
    Ok(Json(json!({
        "items": units.iter().map(|u| json!({"code": u.code, "name": u.name, "parent": u.parent_code, "email": u.email})).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize)]
struct UnitBody {
    code: String,
    name: String,
    parent: Option<String>,
    email: Option<String>,
}

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
            },
            state.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"code": unit.code, "name": unit.name, "parent": unit.parent_code, "email": unit.email}),
        ),
    ))
}

#[derive(Debug, Deserialize)]
struct UserBody {
    username: String,
    role: String,
    unit: Option<String>,
    email: Option<String>,
    password: String,
}

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
    };
    let user = state
        .store
        .add_user(&new, &password, state.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"username": user.username, "role": user.role, "unit": user.unit_code, "email": user.email}),
        ),
    ))
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    name: String,
    scope: String,
}

async fn add_token(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let token = state
        .store
        .add_api_token(&b.name, &b.scope, state.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": b.name.trim(), "scope": b.scope, "token": token})),
    ))
}
