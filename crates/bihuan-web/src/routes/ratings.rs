//! `POST /api/v1/ratings`: one rating from a channel, idempotent on (source, source_id).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Channel, SignedIn};
use crate::routes::cases::{paging, parse_bound};
use crate::views::{RatingView, rating_view};
use bihuan_core::Role;
use bihuan_core::rating_input::parse_rating;
use bihuan_store::RatingFilter;
use serde::Deserialize;

/// `/api/v1/ratings`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(batch))
}

/// The most ratings one batch may carry.
pub const MAX_BATCH: usize = 10_000;

/// Stores one rating from a channel (channel token); a non-default 差评 opens its case.
#[utoipa::path(post, path = "/api/v1/ratings", tag = "ratings", security(("bearer" = [])),
    request_body(content = Object, description = "docs/API.md 的评价 JSON"),
    responses((status = 201, description = "{id, case_id}", body = Object),
        (status = 200, description = "同一 (source, source_id) 已存在：首次的答复", body = Object),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, description = "不是渠道令牌", body = ErrorBody),
        (status = 422, description = "字段无效，details.errors 逐项列出", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    channel: Channel,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rating = parse_rating(&body, state.engine.calendar().tz()).map_err(|errors| {
        let first = errors.first().map_or("评价无效".to_owned(), |e| format!("{}：{}", e.field, e.message));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rating", first).with_details(json!({
            "field": errors.first().map(|e| e.field.clone()),
            "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
        }))
    })?;
    channel.check_source(&rating.source)?;
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

/// A batch of ratings.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchBody {
    /// Up to 10,000 ratings in the JSON of docs/API.md.
    #[schema(value_type = Vec<Object>)]
    ratings: Vec<Value>,
}

/// Stores up to 10,000 ratings: valid rows are kept, invalid rows are named by index, duplicates
/// (also within the batch) are counted and never stored twice.
#[utoipa::path(post, path = "/api/v1/ratings/batch", tag = "ratings", security(("bearer" = [])), request_body = BatchBody,
    responses((status = 200, description = "{inserted, duplicates, errors:[{index, error, message, field}]}", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, description = "超过 10,000 条", body = ErrorBody)))]
async fn batch(
    State(state): State<AppState>,
    channel: Channel,
    ApiJson(body): ApiJson<BatchBody>,
) -> ApiResult<Json<Value>> {
    if body.ratings.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "ratings",
            format!(
                "一批最多 {MAX_BATCH} 条评价，实际 {} 条",
                body.ratings.len()
            ),
        ));
    }
    let tz = state.engine.calendar().tz();
    let mut valid = Vec::with_capacity(body.ratings.len());
    let mut errors = Vec::new();
    for (index, value) in body.ratings.iter().enumerate() {
        match parse_rating(value, tz) {
            // Another source anywhere in the batch refuses the whole batch: nothing is stored.
            Ok(r) => {
                channel
                    .check_source(&r.source)
                    .map_err(|e| e.with_details(json!({ "field": "source", "index": index })))?;
                valid.push(r);
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| {
                json!({"index": index, "error": "invalid_rating", "field": e.field, "message": format!("{}：{}", e.field, e.message)})
            })),
        }
    }
    let outcome = state
        .store
        .record_ratings_batch(&state.engine, &valid, state.clock.now())
        .await?;
    tracing::info!(channel = %channel.token.name, inserted = outcome.inserted, duplicates = outcome.duplicates, invalid = errors.len(), "rating batch stored");
    Ok(Json(
        json!({"inserted": outcome.inserted, "duplicates": outcome.duplicates, "cases_opened": outcome.cases_opened, "errors": errors}),
    ))
}

/// Filters of the rating list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    unit: Option<String>,
    level: Option<String>,
    channel: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

/// The ratings in the caller's scope (by the unit that handled the item), newest first; the rater's
/// personal data is masked for viewers and unit staff.
#[utoipa::path(get, path = "/api/v1/ratings", tag = "ratings", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "{items, total, page, per_page}", body = Object), (status = 401, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let tz = state.engine.calendar().tz();
    let (page, per_page) = paging(q.page, q.per_page)?;
    let level = match q.level.as_deref().filter(|s| !s.is_empty()) {
        Some(l) => Some(
            l.parse::<bihuan_core::rating::Level>()
                .map_err(|e| ApiError::invalid_field("level", e.to_string()))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let channel = match q.channel.as_deref().filter(|s| !s.is_empty()) {
        Some(c) => Some(
            c.parse::<bihuan_core::rating::Channel>()
                .map_err(|e| ApiError::invalid_field("channel", e.to_string()))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let filter = RatingFilter {
        from: parse_bound("from", q.from.as_deref(), tz, false)?,
        to: parse_bound("to", q.to.as_deref(), tz, true)?,
        unit: q.unit.filter(|s| !s.is_empty()),
        level,
        channel,
        page,
        per_page,
    };
    let (items, total) = state.store.list_ratings(&caller.scope, &filter).await?;
    let masked = matches!(caller.role, Role::Viewer | Role::UnitStaff);
    let items: Vec<RatingView> = items.iter().map(|r| rating_view(r, masked)).collect();
    Ok(Json(
        json!({"items": items, "total": total, "page": page, "per_page": per_page}),
    ))
}
