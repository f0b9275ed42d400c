//! `POST /api/v1/ratings`: one rating from a channel, idempotent on (source, source_id).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Channel};

/// `/api/v1/ratings`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// Stores one rating from a channel (channel token); a non-default 差评 opens its case.
#[utoipa::path(post, path = "/api/v1/ratings", tag = "ratings", security(("bearer" = [])),
    request_body(content = Object, description = "API.md 的评价 JSON"),
    responses((status = 201, description = "{id, case_id}", body = Object),
        (status = 200, description = "同一 (source, source_id) 已存在：首次的答复", body = Object),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, description = "不是渠道令牌", body = ErrorBody),
        (status = 422, description = "字段无效，details.errors 逐项列出", body = ErrorBody)))]
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
