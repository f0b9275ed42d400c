//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
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

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "数据库可用", body = Object), (status = 503, description = "数据库不可用", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "数据库暂时无法访问",
            ))
        }
    }
}
