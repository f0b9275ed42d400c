//! The cases: the list, one case, and taking an action.

use axum::Json;
use axum::extract::State;
use bihuan_store::{ActionRequest, CaseFilter};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, SignedIn};
use crate::views::{CaseView, case_detail, case_summary};

/// `/api/v1/cases…`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(act))
}

/// Filters of the case list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    state: Option<String>,
    unit: Option<String>,
    overdue: Option<bool>,
    from: Option<String>,
    to: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

/// The highest page number a list answers (500 rows a page: half a billion rows).
pub const MAX_PAGE: u64 = 1_000_000;

/// The page (1 to [`MAX_PAGE`], default 1) and rows per page (1 to 500, default 50) of a list; out of
/// range is 400.
pub fn paging(page: Option<u64>, per_page: Option<u64>) -> ApiResult<(u64, u64)> {
    let per_page = per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::bad_request(
            "invalid_page",
            "每页条数（per_page）应在 1 到 500 之间",
        )
        .with_details(serde_json::json!({ "field": "per_page" })));
    }
    Ok((page_number(page)?, per_page))
}

/// A page number: 1 to [`MAX_PAGE`] (default 1); out of range is 400.
pub fn page_number(page: Option<u64>) -> ApiResult<u64> {
    let page = page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("页码（page）应在 1 到 {MAX_PAGE} 之间"),
        )
        .with_details(serde_json::json!({ "field": "page" })));
    }
    Ok(page)
}

/// A date (a whole day in the deployment's time zone) or an RFC 3339 instant.
pub fn parse_bound(
    field: &str,
    value: Option<&str>,
    tz: chrono_tz::Tz,
    end_of_day: bool,
) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.to_utc()));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_field(
            field,
            format!("“{text}”应为日期 2021-05-06 或 RFC 3339 时间"),
        )
    })?;
    let date = if end_of_day {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    Ok(tz
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.to_utc()))
}

/// The cases in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "{items, total, page, per_page}", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let tz = state.engine.calendar().tz();
    let (page, per_page) = paging(q.page, q.per_page)?;
    let filter = CaseFilter {
        state: q.state.filter(|s| !s.is_empty()),
        unit: q.unit.filter(|s| !s.is_empty()),
        overdue: q.overdue,
        from: parse_bound("from", q.from.as_deref(), tz, false)?,
        to: parse_bound("to", q.to.as_deref(), tz, true)?,
        page,
        per_page,
        ..CaseFilter::default()
    };
    let now = state.clock.now();
    let (rows, total) = state.store.list_cases(&caller.scope, &filter, now).await?;
    let items: Vec<CaseView> = rows
        .iter()
        .map(|(case, rating)| case_summary(&state.engine, case, rating, &caller, now))
        .collect();
    Ok(Json(
        json!({ "items": items, "total": total, "page": page, "per_page": per_page }),
    ))
}

/// The case if it exists and the caller may see it; 404 otherwise.
async fn visible_case(
    state: &AppState,
    caller: &SignedIn,
    id: Uuid,
) -> ApiResult<bihuan_store::CaseDetail> {
    let detail = state.store.case(id).await?;
    if caller.scope.contains(&detail.case) {
        Ok(detail)
    } else {
        Err(ApiError::not_found(format!("差评工单 {id} 不存在")))
    }
}

/// The full case JSON for the caller.
pub async fn case_json(state: &AppState, caller: &SignedIn, id: Uuid) -> ApiResult<CaseView> {
    let detail = visible_case(state, caller, id).await?;
    let follow_ups = state.store.follow_ups_of(id).await?;
    let attachments = state
        .store
        .attachments_of(bihuan_store::SubjectKind::Case, id)
        .await?;
    let masked = !crate::views::may_call_rater(caller, &detail.case);
    let mut view = case_detail(&state.engine, &detail, caller, state.clock.now())?;
    view.follow_ups = Some(
        follow_ups
            .iter()
            .map(|r| crate::views::rating_view(r, masked))
            .collect(),
    );
    view.attachments = Some(attachments.iter().map(Into::into).collect());
    Ok(view)
}

/// One case with its rating, events, audits and the actions the caller may take now.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "差评工单编号")),
    responses((status = 200, body = CaseView), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(case_json(&state, &caller, id).await?))
}

/// An action asked of a case or a work item.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ActionBody {
    pub(crate) action: String,
    pub(crate) version: i32,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) fields: Map<String, Value>,
}

/// Takes an action; answers the updated case.
#[utoipa::path(post, path = "/api/v1/cases/{id}/actions", tag = "cases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "差评工单编号")), request_body = ActionBody,
    responses((status = 200, body = CaseView), (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 403, description = "角色无权执行", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody),
        (status = 409, description = "版本冲突", body = ErrorBody),
        (status = 422, description = "当前状态不可执行或字段缺失", body = ErrorBody)))]
async fn act(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ActionBody>,
) -> ApiResult<Json<CaseView>> {
    // The scope is checked in the action's transaction, and the answer is the case as that
    // transaction committed it. The actor gets it back even when the action moved the case out of
    // their scope (a unit returning a case to the center).
    let detail = state
        .store
        .apply_action(
            &state.engine,
            &ActionRequest {
                id,
                scope: &caller.scope,
                version: body.version,
                action: &body.action,
                fields: &body.fields,
                actor: &caller.actor,
                now: state.clock.now(),
            },
        )
        .await?;
    Ok(Json(case_detail(
        &state.engine,
        &detail,
        &caller,
        state.clock.now(),
    )?))
}
