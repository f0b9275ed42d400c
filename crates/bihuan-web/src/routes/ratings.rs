//! `POST /api/v1/ratings`: one rating from a channel, idempotent on (source, source_id).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Channel};

/// `/api/v1/ratings`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/ratings", post(create))
}

async fn create(
    State(state): State<AppState>,
    channel: Channel,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rating = bihuan_core::rating_input::parse_rating(&body, state.engine.calendar().tz()).map_err(|errors| {
        let first = errors.first().map_or("评价无效".to_owned(), |e| format!("{}：{}", e.field, e.message));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rating", first).with_details(json!({
            "field": errors.first().map(|e| e.field.clone()),
            "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
        }))
    })?;
    let recorded = state
        .store
        .record_rating(&state.engine, &rating, state.clock.now())
        .await?;
    if !recorded.duplicate {
        tracing::info!(channel = %channel.token.name, rating = %recorded.rating_id, case = ?recorded.case_id, "rating stored");
    }
    let status = if recorded.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({ "id": recorded.rating_id, "case_id": recorded.case_id })),
    ))
}
