//! 任务分解: importing a plan, the plans, one plan, one work item, acting on it, and the plan's
//! workbook.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bihuan_core::plan::{
    Comparison, PlanError, PlanFileError, PlanItem, Target, metric_of, parse_due, split_units,
};
use bihuan_core::{LimitError, Limits, Role};
use bihuan_store::{ActionRequest, NewItem, NewPlan, PlanOptions, SubjectKind};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, SignedIn};
use crate::plan_views::{
    PlanJson, PlanListItem, TaskJson, plan_json, plan_workbook, task_detail_json,
};
use crate::routes::cases::ActionBody;
use crate::routes::export::{Format, attachment};

/// `/api/v1/plans…` and `/api/v1/tasks…`; the import takes files of up to `max_upload` bytes.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    // A plan's workbook may be larger than other requests' bodies (`BIHUAN_MAX_UPLOAD_MB`).
    let upload = OpenApiRouter::new()
        .routes(routes!(import, list))
        .layer(DefaultBodyLimit::max(max_upload));
    OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(show))
        .routes(routes!(export))
        .routes(routes!(task))
        .routes(routes!(act))
}

/// How an uploaded table is to be imported.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The plan's name (default: the file's name).
    name: Option<String>,
    /// Its year (default: the first 20xx in the file's name).
    year: Option<i32>,
    /// The file's name, for the format and the defaults (or the Content-Disposition's).
    file: Option<String>,
    /// Where units the organization does not have are created (default: a supervisor's own unit).
    parent: Option<String>,
    /// Report period of ongoing items, in months (default 1).
    report_months: Option<u32>,
}

/// A plan sent as JSON.
#[derive(Debug, Deserialize)]
struct PlanBody {
    name: String,
    year: i32,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    report_months: Option<u32>,
    items: Vec<ItemBody>,
}

#[derive(Debug, Deserialize)]
struct ItemBody {
    key_task: String,
    title: String,
    lead_units: UnitsBody,
    #[serde(default)]
    co_units: Option<UnitsBody>,
    deadline: String,
    /// Explicit targets; without them, the ones the title states.
    #[serde(default)]
    targets: Option<Vec<TargetBody>>,
}

/// Units as a list of names or codes, or one cell's text ("区司法局、区政府职转办").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UnitsBody {
    List(Vec<String>),
    Cell(String),
}

impl UnitsBody {
    fn names(&self) -> Vec<String> {
        match self {
            UnitsBody::List(list) => split_units(&list.join("、")),
            UnitsBody::Cell(cell) => split_units(cell),
        }
    }
}

#[derive(Debug, Deserialize)]
struct TargetBody {
    name: String,
    comparison: String,
    value: f64,
    #[serde(default)]
    unit: String,
}

/// The JSON body's plan within the plan's limits, every problem named by item (row = its number
/// from 1).
fn plan_from_json(
    body: PlanBody,
    options: &PlanOptions,
    limits: &Limits,
) -> Result<NewPlan, PlanFileError> {
    // A table of that many rows would be refused: so is the same plan as JSON.
    limits.check_cell(body.items.len(), 1)?;
    let mut problems = Vec::new();
    let mut items = Vec::new();
    for (i, item) in body.items.into_iter().enumerate() {
        let row = i + 1;
        let mut problem = |column: &str, message: String| {
            problems.push(PlanError {
                row,
                column: column.to_owned(),
                message,
            });
        };
        let lead_units = item.lead_units.names();
        if lead_units.is_empty() {
            problem("牵头单位", "没有牵头单位".to_owned());
        }
        let co_text = item
            .co_units
            .as_ref()
            .map(|u| u.names().join("、"))
            .unwrap_or_default();
        for (column, message) in bihuan_core::plan::cell_problems([
            &item.key_task,
            &item.title,
            &lead_units.join("、"),
            &co_text,
            &item.deadline,
        ]) {
            problem(bihuan_core::plan::COLUMNS[column].0, message);
        }
        if item.key_task.trim().is_empty() {
            problem("重点任务", "重点任务为空".to_owned());
        }
        if item.title.trim().is_empty() {
            problem("具体工作", "具体工作为空".to_owned());
        }
        let due = parse_due(&item.deadline)
            .map_err(|m| problem("完成时限", m))
            .ok();
        let targets = match item.targets {
            None => bihuan_core::plan::targets_in(&item.title),
            Some(list) => list
                .into_iter()
                .filter_map(|t| {
                    if t.name.chars().count() > 100 || t.unit.chars().count() > 20 {
                        problem(
                            "考核指标",
                            "指标名称最多 100 个字符，单位最多 20 个字符".to_owned(),
                        );
                        return None;
                    }
                    let Some(comparison) = Comparison::parse(&t.comparison) else {
                        let shown: String = t.comparison.chars().take(10).collect();
                        problem(
                            "考核指标",
                            format!("“{shown}”不是比较方式（at_least、at_most、equal 或 ≥ ≤ =）"),
                        );
                        return None;
                    };
                    Some(Target {
                        metric: metric_of(&t.name).map(str::to_owned),
                        name: t.name,
                        comparison,
                        value: t.value,
                        unit: t.unit,
                    })
                })
                .collect(),
        };
        if let Some(due) = due {
            items.push(NewItem {
                item: PlanItem {
                    row,
                    key_task: item.key_task.trim().to_owned(),
                    title: item.title.trim().to_owned(),
                    lead_units,
                    co_units: item.co_units.map(|u| u.names()).unwrap_or_default(),
                    due,
                },
                targets,
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems.into());
    }
    Ok(NewPlan {
        name: options.name.clone().unwrap_or(body.name),
        year: options.year.unwrap_or(body.year),
        source: "api".to_owned(),
        report_months: options
            .report_months
            .or(body.report_months)
            .unwrap_or(bihuan_core::plan::DEFAULT_REPORT_MONTHS),
        parent_unit: options.parent.clone().or(body.parent),
        items,
    })
}

/// The file name of a Content-Disposition header.
fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let (_, rest) = value.split_once("filename=")?;
    Some(rest.trim().trim_matches('"').to_owned())
}

/// The answer for a plan that was not read: the limit it passed, or its problems by row.
pub(crate) fn plan_refused(refusal: PlanFileError) -> ApiError {
    let problems = match refusal {
        PlanFileError::Limit(e) => return ApiError::limit(e),
        PlanFileError::Problems(problems) => problems,
    };
    let message = problems
        .iter()
        .take(5)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("；");
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_plan",
        format!("计划有 {} 处错误：{message}", problems.len()),
    )
    .with_details(json!({ "errors": problems }))
}

/// The limits of a plan upload with this app's configuration.
pub(crate) fn plan_limits(state: &AppState) -> Limits {
    Limits::plans(state.config.max_upload as u64)
}

/// Reads an uploaded plan on a blocking thread: parsing a workbook takes CPU time (bounded by the
/// limits) that must not hold up the async workers serving everyone else.
pub(crate) async fn read_upload<T: Send + 'static, E: Send + 'static>(
    read: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> ApiResult<Result<T, E>> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// Imports a plan: a CSV (UTF-8 or GB18030) or xlsx body with the table, or the plan as JSON.
/// Admins and supervisors; a supervisor's new units go under their own unit (or a parent in their
/// subtree).
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", security(("bearer" = [])), params(ImportQuery),
    request_body(content = String, description = "任务分解表（CSV 或 xlsx），或 JSON {name, year, items:[{key_task, title, lead_units, co_units, deadline, targets}]}"),
    responses((status = 201, description = "{plan, summary}", body = Object),
        (status = 400, description = "请求体为空或格式错误", body = ErrorBody),
        (status = 403, description = "只有管理员和督查人员可以导入", body = ErrorBody),
        (status = 409, description = "同名同年的计划已存在", body = ErrorBody),
        (status = 413, description = "文件超过 BIHUAN_MAX_UPLOAD_MB（too_large，details.limit_mb）", body = ErrorBody),
        (status = 422, description = "表格有误，details.errors 逐行列出；或超出解压大小、行数、列数的上限（workbook_too_large、too_many_rows、too_many_columns，details.limit）", body = ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !matches!(caller.role, Role::Admin | Role::Supervisor) {
        return Err(ApiError::forbidden(
            "not_allowed",
            "只有管理员和督查人员可以导入工作计划",
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::limit(LimitError::TooLarge {
                limit: state.config.max_upload as u64,
            })
        } else {
            ApiError::bad_request(
                "bad_request",
                format!("无法读取请求内容：{}", rejection.body_text()),
            )
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "请求体为空：请上传任务分解表",
        ));
    }
    let parent = import_parent(&state, &caller, q.parent.clone()).await?;
    let options = PlanOptions {
        name: q.name.clone().filter(|n| !n.trim().is_empty()),
        year: q.year,
        parent,
        report_months: q.report_months,
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let limits = plan_limits(&state);
    let file = q.file.clone().or_else(|| disposition_name(&headers));
    let plan = read_upload(move || {
        if is_json {
            let parsed: PlanBody = serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request("malformed_json", format!("JSON 格式错误：{e}"))
            })?;
            plan_from_json(parsed, &options, &limits).map_err(plan_refused)
        } else {
            NewPlan::from_file(&body, file.as_deref(), options, &limits).map_err(plan_refused)
        }
    })
    .await??;
    let now = state.clock.now();
    // Read before the import, so that the answer after the commit is built from what the import's
    // transaction stored, with nothing left to read.
    let live = live_values(&state, &caller, plan.year).await?;
    let done = state
        .store
        .import_plan(&state.engine, &plan, &caller.user.username, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "plan": plan_json(&state.engine, &done.plan, &done.stored, &live, now),
            "summary": {
                "items": done.items,
                "key_tasks": done.key_tasks,
                "targets": done.targets,
                "created_units": done.created_units.iter().map(|u| json!({
                    "code": u.code, "name": u.name, "parent": u.parent_code,
                })).collect::<Vec<_>>(),
            }
        })),
    ))
}

/// Where an import creates the units it does not find: the unit asked for — for a supervisor one in
/// their subtree, their own unit when none is asked for.
pub(crate) async fn import_parent(
    state: &AppState,
    caller: &SignedIn,
    requested: Option<String>,
) -> ApiResult<Option<String>> {
    if caller.role != Role::Supervisor {
        return Ok(requested);
    }
    let own = caller.user.unit_code.clone();
    let Some(parent) = requested else {
        return Ok(own);
    };
    let reach = state
        .store
        .reach(own.as_deref().unwrap_or_default())
        .await?;
    if reach.units.contains(&parent) {
        Ok(Some(parent))
    } else {
        Err(ApiError::invalid_field(
            "parent",
            format!("上级单位 {parent} 不在您的管辖范围内"),
        ))
    }
}

/// The live values of the metrics targets can be bound to, over the plan's year, in the caller's
/// scope.
pub(crate) async fn live_values(
    state: &AppState,
    caller: &SignedIn,
    year: i32,
) -> ApiResult<BTreeMap<String, Option<f64>>> {
    let today = state.engine.calendar().local_date(state.clock.now());
    Ok(state
        .store
        .target_metric_values(&caller.scope, year, today)
        .await?)
}

/// The plans with items in the caller's scope.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", security(("bearer" = [])),
    responses((status = 200, description = "{items:[{id, name, year, items, done, overdue}], total}", body = Object),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody)))]
async fn list(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    let plans = state.store.plans(&caller.scope, state.clock.now()).await?;
    let items: Vec<PlanListItem> = plans.iter().map(PlanListItem::from).collect();
    Ok(Json(json!({ "total": items.len(), "items": items })))
}

/// One plan with its items in the caller's scope.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "计划编号")),
    responses((status = 200, body = PlanJson), (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PlanJson>> {
    Ok(Json(plan_for(&state, &caller, id).await?))
}

pub(crate) async fn plan_for(state: &AppState, caller: &SignedIn, id: Uuid) -> ApiResult<PlanJson> {
    let detail = state.store.plan(id, &caller.scope).await?;
    let live = live_values(state, caller, detail.plan.year).await?;
    Ok(plan_json(
        &state.engine,
        &detail.plan,
        &detail.items,
        &live,
        state.clock.now(),
    ))
}

/// The plan with its status and latest progress as xlsx, in the layout of the original table plus
/// status columns.
#[utoipa::path(get, path = "/api/v1/plans/{id}/export.xlsx", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "计划编号")),
    responses((status = 200, description = "任务分解推进情况表（xlsx）", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let plan = plan_for(&state, &caller, id).await?;
    let bytes = plan_workbook(&state.engine, &plan).map_err(|e| ApiError::internal(&e))?;
    Ok(attachment(
        Body::from(bytes),
        Format::Xlsx,
        "%E4%BB%BB%E5%8A%A1%E5%88%86%E8%A7%A3",
    ))
}

/// One work item with its events and the actions the caller may take now.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "工作任务编号")),
    responses((status = 200, body = TaskJson), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn task(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TaskJson>> {
    Ok(Json(task_for(&state, &caller, id).await?))
}

pub(crate) async fn task_for(state: &AppState, caller: &SignedIn, id: Uuid) -> ApiResult<TaskJson> {
    let detail = state.store.task(id, &caller.scope).await?;
    let live = live_values(state, caller, detail.plan.year).await?;
    let files = state.store.attachments_of(SubjectKind::Task, id).await?;
    Ok(task_detail_json(
        &state.engine,
        &detail.item,
        &live,
        state.clock.now(),
        (&detail.events, &files),
        caller,
    )?)
}

/// Acts on a work item like on a case; answers the updated item.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/actions", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "工作任务编号")), request_body = ActionBody,
    responses((status = 200, body = TaskJson), (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 403, description = "角色或单位无权执行", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody),
        (status = 409, description = "版本冲突", body = ErrorBody),
        (status = 422, description = "当前状态不可执行或字段有误", body = ErrorBody)))]
async fn act(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ActionBody>,
) -> ApiResult<Json<TaskJson>> {
    let before = state.store.task(id, &caller.scope).await?;
    // The live rates a target shows do not depend on the item: read before acting, so that the answer
    // after the commit is built from what the action's transaction committed, with nothing left to read.
    let live = live_values(&state, &caller, before.plan.year).await?;
    // Nor do its files: an action cites them, never adds or removes one.
    let files = state.store.attachments_of(SubjectKind::Task, id).await?;
    let detail = state
        .store
        .apply_task_action(
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
    Ok(Json(task_detail_json(
        &state.engine,
        &detail.item,
        &live,
        state.clock.now(),
        (&detail.events, &files),
        &caller,
    )?))
}
