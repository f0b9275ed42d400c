//! 任务分解: the plans (and importing one from its Excel or CSV table), a plan's board — key tasks
//! with their items, states, lead units, deadlines, last progress and target values — and a work
//! item's page with its forms and timeline.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use bihuan_core::LimitError;
use bihuan_core::plan::{PlanError, PlanFileError, number_text};
use bihuan_core::workflow::Mark;
use bihuan_core::{Role, WORK_PLAN_TASK, WorkflowDefinition};
use bihuan_store::{ActionRequest, NewPlan, PlanOptions, StoreError, SubjectKind, TaskDetail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::act::ActionPage;
use super::cases::{Recorded, event_line};
use super::files::FilesView;
use super::forms::{Submitted, action_form};
use super::views::{DeadlineView, Flash, Me, UnitNames, deadline_view, nav, when};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::error::ApiError;
use crate::plan_views::{
    PlanListItem, TargetView, TaskJson, reportable_targets, task_actions, task_json,
};
use crate::routes::plans::{import_parent, live_values, plan_for, plan_limits, read_upload};

/// A work item as the board and its page show it.
#[derive(Debug, Serialize)]
struct ItemRow {
    id: Uuid,
    title: String,
    state: String,
    state_label: String,
    lead: String,
    co: String,
    due_text: String,
    owes_label: Option<String>,
    deadline: Option<DeadlineView>,
    escalated: bool,
    percent: Option<i32>,
    last_progress: Option<String>,
    last_report: Option<String>,
    targets: Vec<TargetRow>,
}

#[derive(Debug, Serialize)]
struct TargetRow {
    text: String,
    actual: String,
    source: &'static str,
    met: Option<bool>,
    reported: Option<String>,
}

/// A key task with its items.
#[derive(Debug, Serialize)]
struct KeyTask {
    name: String,
    items: Vec<ItemRow>,
    done: usize,
}

fn joined(units: &[crate::plan_views::UnitRef]) -> String {
    units
        .iter()
        .map(|u| u.name.as_str())
        .collect::<Vec<_>>()
        .join("、")
}

fn target_row(cal: &bihuan_core::WorkingCalendar, t: &TargetView) -> TargetRow {
    TargetRow {
        text: t.text.clone(),
        actual: t.actual.map_or_else(
            || "暂无数据".to_owned(),
            |a| format!("{}{}", number_text(a), t.unit),
        ),
        source: match t.actual_source {
            Some("metric") => "系统实时计算",
            Some(_) => "填报",
            None => "",
        },
        met: t.met,
        reported: t.reported_at.map(|at| when(cal, at)),
    }
}

fn item_row(state: &AppState, t: &TaskJson) -> ItemRow {
    let cal = state.engine.calendar();
    let now = state.clock.now();
    ItemRow {
        id: t.id,
        title: t.title.clone(),
        state: t.state.clone(),
        state_label: t.state_label.clone(),
        lead: joined(&t.lead_units),
        co: joined(&t.co_units),
        due_text: t.deadline_text.clone(),
        owes_label: t.owes_label.clone(),
        deadline: t
            .next_deadline
            .map(|d| deadline_view(cal, d, t.overdue, now)),
        escalated: t.escalated,
        percent: t.percent,
        last_progress: t.last_progress.clone(),
        last_report: t.last_report_at.map(|at| when(cal, at)),
        targets: t.targets.iter().map(|x| target_row(cal, x)).collect(),
    }
}

fn may_import(user: &PageUser) -> bool {
    matches!(user.caller.role, Role::Admin | Role::Supervisor)
}

/// `GET /plans`: the plans in scope, and the import form for admins and supervisors.
pub(crate) async fn list(State(state): State<AppState>, user: PageUser) -> PageResult {
    list_page(&state, &user, StatusCode::OK, None, &[]).await
}

async fn list_page(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    flash: Option<Flash>,
    problems: &[PlanError],
) -> PageResult {
    let fail = |e: StoreError| PageError::new(e, Some(user));
    let plans: Vec<PlanListItem> = state
        .store
        .plans(&user.caller.scope, state.clock.now())
        .await
        .map_err(fail)?
        .iter()
        .map(PlanListItem::from)
        .collect();
    let units = UnitNames::in_scope(state.store.units().await.map_err(fail)?, &user.caller.scope);
    let me = Me::of(user).named(&units);
    Ok(render(
        status,
        "plans.html",
        page_context! {
            title => "任务分解", nav => nav(&me, "/plans"), me, flash, plans, problems,
            may_import => may_import(user), units => units.options(),
        },
    ))
}

/// `POST /plans`: imports an uploaded table (multipart form: csrf, file, name, year, parent,
/// report_months). Problems are listed by row on the page; nothing is written then. A file over the
/// upload limit, or one that inflates or extends beyond the table's limits, is refused on the page
/// with the limit named.
pub(crate) async fn import(
    State(state): State<AppState>,
    user: PageUser,
    mut multipart: Multipart,
) -> PageResult {
    let bad = |message: String| {
        PageError::new(ApiError::bad_request("invalid_form", message), Some(&user))
    };
    let mut fields: Map<String, Value> = Map::new();
    let mut file: Option<(String, Bytes)> = None;
    let mut oversize = false;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("上传内容无法读取：{e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or_default().to_owned();
            match field.bytes().await {
                Ok(bytes) => file = Some((file_name, bytes)),
                // The rest of the body cannot be read any more: the fields sent before the file
                // (the form puts the CSRF token first) are all there is.
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    oversize = true;
                    break;
                }
                Err(e) => return Err(bad(format!("文件无法读取：{e}"))),
            }
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| bad(format!("表单无法读取：{e}")))?;
            fields.insert(name, Value::from(text.trim()));
        }
    }
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    user.check_csrf(text("csrf").as_deref())?;
    if !may_import(&user) {
        return Err(PageError::new(
            ApiError::forbidden("not_allowed", "只有管理员和督查人员可以导入工作计划"),
            Some(&user),
        ));
    }
    if oversize {
        let limit = LimitError::TooLarge {
            limit: state.config.max_upload as u64,
        };
        return refused(&state, &user, PlanFileError::Limit(limit)).await;
    }
    let upload = UploadForm {
        file: file.filter(|(_, b)| !b.is_empty()),
        name: text("name"),
        year: text("year"),
        parent: text("parent"),
        report_months: text("report_months"),
    };
    let refusal = match upload.plan(&state, &user.caller).await {
        Ok(plan) => match state
            .store
            .import_plan(
                &state.engine,
                &plan,
                &user.caller.user.username,
                state.clock.now(),
            )
            .await
        {
            Ok(done) => {
                let to = format!(
                    "/plans/{}?imported={}&created={}",
                    done.plan.id,
                    done.items,
                    done.created_units.len()
                );
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e @ (StoreError::Duplicate { .. } | StoreError::Invalid { .. })) => {
                vec![problem("计划", &e.to_string())].into()
            }
            Err(e) => return Err(PageError::new(e, Some(&user))),
        },
        Err(Ok(refusal)) => refusal,
        Err(Err(e)) => return Err(PageError::new(e, Some(&user))),
    };
    refused(&state, &user, refusal).await
}

/// The plans page again with why nothing was imported: the limit the file passed (413 for its size,
/// 422 for what it holds), or its problems by row (422).
async fn refused(state: &AppState, user: &PageUser, refusal: PlanFileError) -> PageResult {
    let (status, problems) = match refusal {
        PlanFileError::Limit(e) => (
            ApiError::limit(e).status(),
            vec![problem("文件", &e.to_string())],
        ),
        PlanFileError::Problems(problems) => (StatusCode::UNPROCESSABLE_ENTITY, problems),
    };
    let flash = Flash::bad(format!(
        "未导入：有 {} 处错误，请修改后重新上传。",
        problems.len()
    ));
    list_page(state, user, status, Some(flash), &problems).await
}

fn problem(column: &str, message: &str) -> PlanError {
    PlanError {
        row: 0,
        column: column.to_owned(),
        message: message.to_owned(),
    }
}

/// What the upload form sent.
struct UploadForm {
    file: Option<(String, Bytes)>,
    name: Option<String>,
    year: Option<String>,
    parent: Option<String>,
    report_months: Option<String>,
}

impl UploadForm {
    /// The plan the form describes, or why not (`Err(Ok)`: shown on the form), or a failure
    /// (`Err(Err)`). The file is read on a blocking thread within the plan's limits.
    async fn plan(
        self,
        state: &AppState,
        caller: &crate::extract::SignedIn,
    ) -> Result<NewPlan, Result<PlanFileError, ApiError>> {
        let Some((file_name, bytes)) = self.file else {
            return Err(Ok(vec![problem(
                "文件",
                "请选择要导入的任务分解表（.xlsx 或 .csv）",
            )]
            .into()));
        };
        let year = match self.year.map(|y| y.parse::<i32>()) {
            Some(Ok(y)) => Some(y),
            Some(Err(_)) => {
                return Err(Ok(
                    vec![problem("年份", "年份应为四位数字，例如 2021")].into()
                ));
            }
            None => None,
        };
        let parent = match import_parent(state, caller, self.parent).await {
            Ok(parent) => parent,
            Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Ok(vec![problem("上级单位", e.message())].into()));
            }
            Err(e) => return Err(Err(e)),
        };
        let options = PlanOptions {
            name: self.name,
            year,
            parent,
            report_months: self.report_months.and_then(|m| m.parse().ok()),
        };
        let limits = plan_limits(state);
        read_upload(move || NewPlan::from_file(&bytes, Some(&file_name), options, &limits))
            .await
            .map_err(Err)?
            .map_err(Ok)
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BoardQuery {
    imported: Option<usize>,
    created: Option<usize>,
}

/// `GET /plans/{id}`: the plan's board.
pub(crate) async fn board(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Query(q): Query<BoardQuery>,
) -> PageResult {
    let plan = plan_for(&state, &user.caller, id)
        .await
        .map_err(|e| PageError::new(e, Some(&user)))?;
    let mut groups: Vec<KeyTask> = Vec::new();
    for item in &plan.items {
        let row = item_row(&state, item);
        let done = usize::from(item.closed_at.is_some());
        match groups.last_mut() {
            Some(g) if g.name == item.key_task => {
                g.items.push(row);
                g.done += done;
            }
            _ => groups.push(KeyTask {
                name: item.key_task.clone(),
                items: vec![row],
                done,
            }),
        }
    }
    let overdue = plan.items.iter().filter(|i| i.overdue).count();
    let done = plan.items.iter().filter(|i| i.closed_at.is_some()).count();
    let units = UnitNames::in_scope(
        state
            .store
            .units()
            .await
            .map_err(|e| PageError::new(e, Some(&user)))?,
        &user.caller.scope,
    );
    let me = Me::of(&user).named(&units);
    let flash = q.imported.map(|n| {
        Flash::ok(format!(
            "已导入 {n} 项工作{}。",
            match q.created {
                Some(c) if c > 0 => format!("，新建单位 {c} 个（可在“管理”中补充邮箱）"),
                _ => String::new(),
            }
        ))
    });
    Ok(render(
        StatusCode::OK,
        "plan.html",
        page_context! {
            title => plan.name.clone(), nav => nav(&me, "/plans"), me, flash, groups,
            plan => page_context! { id => plan.id, name => plan.name, year => plan.year,
                report_months => plan.report_months, items => plan.items.len() },
            overdue, done,
        },
    ))
}

/// The item if the caller may see it; a 404 page otherwise.
async fn visible(state: &AppState, user: &PageUser, id: Uuid) -> Result<TaskDetail, PageError> {
    state
        .store
        .task(id, &user.caller.scope)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => PageError::new(
                ApiError::not_found(format!("工作任务 {id} 不存在或不在您的权限范围内")),
                Some(user),
            ),
            e => PageError::new(e, Some(user)),
        })
}

async fn task_page(
    state: &AppState,
    user: &PageUser,
    detail: &TaskDetail,
    status: StatusCode,
    flash: Option<Flash>,
    submitted: Option<&Submitted>,
) -> PageResult {
    let fail = |e: ApiError| PageError::new(e, Some(user));
    let engine = &state.engine;
    let cal = engine.calendar();
    let live = live_values(state, &user.caller, detail.plan.year)
        .await
        .map_err(fail)?;
    let json = task_json(engine, &detail.item, &live, state.clock.now(), None);
    let item = item_row(state, &json);
    let units = UnitNames::in_scope(
        state
            .store
            .units()
            .await
            .map_err(|e| PageError::new(e, Some(user)))?,
        &user.caller.scope,
    );
    let def = engine.workflow(WORK_PLAN_TASK);
    let events: Vec<_> = detail
        .events
        .iter()
        .map(|e| {
            let step = Recorded {
                action: &e.action,
                from: e.from_state.as_deref(),
                to: &e.to_state,
                actor: &e.actor,
                at: e.at,
                fields: &e.fields,
            };
            event_line(def, &step, "导入计划", &units, cal)
        })
        .collect();
    let files = state
        .store
        .attachments_of(SubjectKind::Task, detail.item.task.id)
        .await
        .map_err(|e| PageError::new(e, Some(user)))?;
    let files = FilesView::of(state, user, &files);
    let reportable = reportable_targets(&detail.item);
    let actions: Vec<_> = def
        .map(|d| {
            task_actions(
                d,
                cal,
                &detail.item,
                &detail.events,
                &user.caller,
                state.clock.now(),
            )
        })
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let form = action_form(
                a,
                &units,
                &files.choices,
                submitted.filter(|s| s.action == a.id),
            );
            // A reported value names one of the item's own targets: offer them to choose from.
            match a.has_mark(Mark::TargetReported) {
                true => form.with_choices("target", &reportable),
                false => form,
            }
        })
        .collect();
    let shares: Vec<Value> = crate::plan_views::shares_of(def, &detail.events)
        .map_err(|e| fail(e.into()))?
        .iter()
        .map(|x| {
            serde_json::json!({
                "unit": units.name(&x.unit), "actor": x.actor, "at": when(cal, x.at),
                "summary": x.summary,
            })
        })
        .collect();
    let me = Me::of(user).named(&units);
    Ok(render(
        status,
        "task.html",
        page_context! {
            title => format!("工作任务 {}", detail.item.task.position), nav => nav(&me, "/plans"),
            me, flash, item, events, actions, shares, files,
            t => page_context! {
                id => detail.item.task.id, version => detail.item.task.version,
                key_task => detail.item.task.key_task, position => detail.item.task.position,
                source_row => detail.item.task.source_row,
                plan_id => detail.plan.id, plan_name => detail.plan.name, plan_year => detail.plan.year,
            },
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShowQuery {
    done: Option<String>,
    uploaded: Option<String>,
}

/// `GET /tasks/{id}`: a work item with its forms and timeline.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let detail = visible(&state, &user, id).await?;
    let flash = q.done.as_deref().and_then(|done| {
        state
            .engine
            .workflow(WORK_PLAN_TASK)
            .and_then(|d| d.action(done))
            .map(|a| Flash::ok(format!("已完成“{}”。", a.label)))
    });
    let flash = flash.or_else(|| {
        q.uploaded
            .is_some()
            .then(|| Flash::ok("已上传。在需要佐证材料的操作中勾选它即可引用。"))
    });
    task_page(&state, &user, &detail, StatusCode::OK, flash, None).await
}

/// A work item's page and its action forms.
pub(crate) struct TaskPage;

impl ActionPage for TaskPage {
    type Detail = TaskDetail;
    type Done = TaskDetail;
    const CONFLICT: &'static str =
        "其他人已先处理了此任务，您的操作未执行。以下是最新情况，请确认后再操作。";
    const NO_VERSION: &'static str = "表单已过期，请刷新页面后重试。";
    const KIND: SubjectKind = SubjectKind::Task;

    fn path(id: Uuid) -> String {
        format!("/tasks/{id}")
    }

    async fn visible(state: &AppState, user: &PageUser, id: Uuid) -> Result<TaskDetail, PageError> {
        visible(state, user, id).await
    }

    fn workflow<'s>(state: &'s AppState, _detail: &TaskDetail) -> Option<&'s WorkflowDefinition> {
        state.engine.workflow(WORK_PLAN_TASK)
    }

    async fn page(
        state: &AppState,
        user: &PageUser,
        detail: &TaskDetail,
        status: StatusCode,
        flash: Option<Flash>,
        submitted: Option<&Submitted>,
    ) -> PageResult {
        task_page(state, user, detail, status, flash, submitted).await
    }

    async fn apply(state: &AppState, req: &ActionRequest<'_>) -> Result<TaskDetail, StoreError> {
        state.store.apply_task_action(&state.engine, req).await
    }

    fn done_at(_user: &PageUser, id: Uuid, action: &str, _done: &TaskDetail) -> String {
        format!("/tasks/{id}?done={action}")
    }
}

/// `POST /tasks/{id}`: takes the action of one of the item's forms.
pub(crate) async fn act(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    super::act::act::<TaskPage>(&state, &user, id, &form).await
}
