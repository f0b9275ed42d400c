//! `GET /api/v1/metrics`: the figures of docs/DOMAIN.md per period, scope and grouping, each with its
//! definition.

use axum::Json;
use axum::extract::State;
use bihuan_core::metrics::{DEFINITIONS, figures};
use bihuan_store::{GroupBy, MetricsQuery};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, SignedIn};

/// `/api/v1/metrics`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The period (by rating date, both ends included), unit and grouping.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// First day, `YYYY-MM-DD`.
    pub(crate) from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    pub(crate) to: Option<String>,
    /// A unit's code: its subtree only.
    pub(crate) unit: Option<String>,
    /// `unit`, `month`, `channel` or `service`; none gives one row, `all`.
    pub(crate) group_by: Option<String>,
}

fn date(field: &str, value: Option<&str>) -> ApiResult<Option<NaiveDate>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ApiError::invalid_field(field, format!("“{text}”不是日期，应为 YYYY-MM-DD"))
            }),
    }
}

/// The figures per group, with their definitions; only what the caller's scope holds.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics", security(("bearer" = [])), params(MetricsParams),
    responses((status = 200, description = "{definitions:{key:{label,label_en,definition,definition_en}}, rows:[{group, label, ratings, negative, valid_negative, rectified, negative_rate, positive_rate, active_rate, rectification_rate, on_time_rate, return_visit_rate, review_satisfaction_rate, avg_days_to_rectify, avg_days_to_close, open, overdue}]}; rates in 0..1, null when the denominator is 0", body = Object),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn metrics(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(p): ApiQuery<MetricsParams>,
) -> ApiResult<Json<Value>> {
    let rows = metric_rows(&state, &caller, p).await?;
    Ok(Json(metrics_json(&rows)))
}

/// The answer of `GET /api/v1/metrics` (and of `bihuan report --format json`): the definitions and a
/// row of figures per group.
pub fn metrics_json(rows: &[bihuan_store::MetricsRow]) -> Value {
    let definitions: Map<String, Value> = DEFINITIONS
        .iter()
        .map(|d| {
            (
                d.key.to_owned(),
                json!({"label": d.label, "label_en": d.label_en, "definition": d.definition, "definition_en": d.definition_en}),
            )
        })
        .collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut row = serde_json::to_value(figures(&r.counts)).unwrap_or_default();
            if let Value::Object(map) = &mut row {
                map.insert("group".into(), Value::from(r.group.clone()));
                map.insert("label".into(), Value::from(r.label.clone()));
            }
            row
        })
        .collect();
    json!({"definitions": definitions, "rows": rows})
}

/// The groups' counts a metrics query asks for, checked and scoped.
pub(crate) async fn metric_rows(
    state: &AppState,
    caller: &SignedIn,
    p: MetricsParams,
) -> ApiResult<Vec<bihuan_store::MetricsRow>> {
    let from = date("from", p.from.as_deref())?;
    let to = date("to", p.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::invalid_field("to", "结束日期早于开始日期"));
    }
    let group_by = match p
        .group_by
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        None => GroupBy::All,
        Some(name) => GroupBy::parse(name).ok_or_else(|| {
            ApiError::invalid_field(
                "group_by",
                format!("“{name}”无效：应为 unit、month、channel 或 service"),
            )
        })?,
    };
    let unit = p
        .unit
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(code) = &unit
        && state.store.unit(code).await?.is_none()
    {
        return Err(ApiError::invalid_field(
            "unit",
            format!("单位 {code} 不存在"),
        ));
    }
    let query = MetricsQuery {
        from,
        to,
        unit,
        group_by,
    };
    let mut rows = state.store.metrics(&caller.scope, &query).await?;
    if group_by == GroupBy::All && rows.is_empty() {
        rows.push(bihuan_store::MetricsRow {
            group: "all".into(),
            label: "all".into(),
            counts: Default::default(),
        });
    }
    Ok(rows)
}
