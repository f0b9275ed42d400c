//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bihuan_store::Outage;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// `/healthz`, `/readyz`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "进程存活", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long `/readyz` lets its write probe take: it answers within 2 s whatever the database does.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Readiness: a write would succeed now (the store writes and removes a probe row and commits; it
/// logs when the answer changes).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "数据库可写", body = Object), (status = 503, description = "数据库不可用或无法写入", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let Err(not_ready) = state.store.ready(READY_WITHIN).await else {
        return Ok(Json(json!({"status": "ready"})));
    };
    // Not ready is 503 whatever the cause; the code says whether the disk is full.
    let code = if not_ready.outage == Some(Outage::DiskFull) {
        "insufficient_storage"
    } else {
        "storage_unavailable"
    };
    let why = not_ready.outage.map_or("数据库错误", Outage::label);
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        format!("数据库暂时无法写入（{why}）"),
    ))
}
