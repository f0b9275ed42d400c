//! The axum front of Bihuan. For now: liveness and readiness; the JSON API and the pages build on
//! [`app`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bihuan_core::Engine;
use bihuan_store::{Clock, Store};
use serde_json::json;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The checked workflows and calendar.
    pub engine: Arc<Engine>,
    /// The clock (the system clock, or the fake one of `BIHUAN_FAKE_NOW`).
    pub clock: Clock,
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health_router())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn health_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "database_unavailable", "message": "数据库暂时无法访问", "details": {}})),
            )
                .into_response()
        }
    }
}
