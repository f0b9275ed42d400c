//! 我的待办 and 差评工单详情: the cases the caller can act on now, and one case with the forms of the
//! actions the workflow file gives the caller in its state.

use std::collections::BTreeSet;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use bihuan_core::mail::chinese_day;
use bihuan_core::workflow::{ActionDef, FieldKind};
use bihuan_core::{WorkflowDefinition, available_actions};
use bihuan_store::entity::case;
use bihuan_store::{ActionRequest, CaseDetail, StoreError, SubjectKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::act::ActionPage;
use super::files::FilesView;
use super::forms::{ActionForm, Submitted, action_form};
use super::views::{CaseRow, Flash, Me, UnitNames, deadline_view, nav, when};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::error::ApiError;
use crate::views::{may_call_rater, rating_view};

/// The most cases 我的待办 lists (the nearest deadlines first); the ledger has the rest.
const TODO_LIMIT: u64 = 200;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TodoQuery {
    done: Option<String>,
}

/// `GET /`: 我的待办.
pub(crate) async fn todo(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<TodoQuery>,
) -> PageResult {
    let fail = |e: StoreError| PageError::new(e, Some(&user));
    let caller = &user.caller;
    // The (workflow, state) pairs in which the caller's role has some action.
    let states: BTreeSet<(String, String)> = state
        .engine
        .workflows()
        .flat_map(|def| {
            def.actions
                .iter()
                .filter(|a| a.roles.contains(&caller.role))
                .flat_map(move |a| a.from.iter().map(move |s| (def.id.clone(), s.clone())))
        })
        .collect();
    let now = state.clock.now();
    let (cases, total) = state
        .store
        .todo_cases(&caller.scope, &states, TODO_LIMIT)
        .await
        .map_err(fail)?;
    let units = UnitNames::in_scope(state.store.units().await.map_err(fail)?, &user.caller.scope);
    let rows: Vec<CaseRow> = cases
        .iter()
        .map(|(c, r)| CaseRow::new(&state.engine, &units, c, r, now))
        .collect();
    let soon = rows.iter().filter(|r| r.deadline_class == "soon").count();
    let over = rows.iter().filter(|r| r.deadline_class == "over").count();
    let me = Me::of(&user).named(&units);
    let flash = q
        .done
        .is_some()
        .then(|| Flash::ok("操作已完成，该差评工单已不在您的权限范围内。"));
    Ok(render(
        StatusCode::OK,
        "todo.html",
        page_context! {
            title => "我的待办", nav => nav(&me, "/"), me, flash, rows, soon, over,
            capped => total > TODO_LIMIT,
        },
    ))
}

/// The case header of the detail page: the list's row and what only the page shows.
#[derive(Debug, Serialize)]
struct CaseHead {
    #[serde(flatten)]
    row: CaseRow,
    version: i32,
    reopen_count: i32,
    deadline_provisional: bool,
    origin_unit_name: String,
    opened: String,
    extension_days_used: i32,
    extension_requested_days: Option<i32>,
    appeals_used: i32,
    /// 整改反馈时限, when the case has one: the tag's text and class, and the note beside it.
    overall: Option<ClockLine>,
    /// 限期整改, when its last rectification was scheduled: the tag and the note.
    scheduled: Option<ClockLine>,
}

/// How one of the case's other clocks stands (整改反馈时限, 限期整改), for the detail page.
#[derive(Debug, Serialize)]
struct ClockLine {
    text: String,
    class: &'static str,
    note: String,
}

impl ClockLine {
    fn scheduled(
        cal: &bihuan_core::WorkingCalendar,
        c: &case::Model,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let scheduled = bihuan_store::scheduled_of(c)?;
        let due = chinese_day(scheduled.due);
        Some(match scheduled.done_at {
            Some(done) => Self {
                text: "已完成".to_owned(),
                class: "ok",
                note: format!("期限 {due}，{} 报送完成", when(cal, done)),
            },
            None => {
                let view = deadline_view(cal, scheduled.deadline, false, now);
                Self {
                    text: view.text,
                    class: view.class,
                    note: format!("期限 {due}，完成后报送“限期整改完成”"),
                }
            }
        })
    }

    fn of(cal: &bihuan_core::WorkingCalendar, c: &case::Model, now: DateTime<Utc>) -> Option<Self> {
        let date = |d: DateTime<Utc>| format!("{} 24:00", chinese_day(cal.last_day(d)));
        if let Some(days) = c.overall_paused_days {
            return Some(Self {
                text: "申诉复核期间暂停".to_owned(),
                class: "plain",
                note: format!("恢复后剩余 {days} 个工作日"),
            });
        }
        let deadline = c.overall_deadline?;
        Some(match c.overall_met_at {
            Some(met) if met > deadline => Self {
                text: "超时限反馈".to_owned(),
                class: "over",
                note: format!("时限 {}，{} 反馈", date(deadline), when(cal, met)),
            },
            Some(met) => Self {
                text: "按时限反馈".to_owned(),
                class: "ok",
                note: format!("时限 {}，{} 反馈", date(deadline), when(cal, met)),
            },
            None => {
                let view = deadline_view(cal, deadline, false, now);
                Self {
                    text: view.text,
                    class: view.class,
                    note: view.date,
                }
            }
        })
    }
}

/// The rating as the detail page shows it (masked per role).
#[derive(Debug, Serialize)]
struct RatingFacts {
    service_name: String,
    service_code: String,
    project_no: String,
    level_label: String,
    channel_label: String,
    rated: String,
    rater_name: Option<String>,
    rater_phone: Option<String>,
    rater_email: Option<String>,
    masked: bool,
    staff: String,
    comment: Option<String>,
}

/// One event of the timeline.
#[derive(Debug, Serialize)]
pub(super) struct EventLine {
    label: String,
    from_label: String,
    to_label: String,
    actor: String,
    at: String,
    fields: Vec<FieldLine>,
}

#[derive(Debug, Serialize)]
struct FieldLine {
    label: String,
    value: String,
}

/// Everything the detail page shows.
struct DetailPage<'a> {
    state: &'a AppState,
    user: &'a PageUser,
    detail: &'a CaseDetail,
    units: &'a UnitNames,
    /// Its 佐证材料.
    files: FilesView,
}

impl DetailPage<'_> {
    fn render(
        &self,
        status: StatusCode,
        flash: Option<Flash>,
        submitted: Option<&Submitted>,
    ) -> Response {
        let engine = &self.state.engine;
        let cal = engine.calendar();
        let now = self.state.clock.now();
        let (c, r) = (&self.detail.case, &self.detail.rating);
        let def = engine.workflow(&c.workflow_id);
        let head = CaseHead {
            row: CaseRow::new(engine, self.units, c, r, now),
            version: c.version,
            reopen_count: c.reopen_count,
            deadline_provisional: c.deadline_provisional,
            origin_unit_name: self.units.name(&c.origin_unit),
            opened: when(cal, c.opened_at),
            extension_days_used: c.extension_days_used,
            extension_requested_days: c.extension_requested_days,
            appeals_used: c.appeals_used,
            overall: ClockLine::of(cal, c, now),
            scheduled: ClockLine::scheduled(cal, c, now),
        };
        let masked = !may_call_rater(&self.user.caller, c);
        let rv = rating_view(r, masked);
        let facts = RatingFacts {
            service_name: r.service_name.clone(),
            service_code: r.service_code.clone(),
            project_no: r.project_no.clone(),
            level_label: r.level.label().to_owned(),
            channel_label: r.channel.label().to_owned(),
            rated: when(cal, r.rated_at),
            rater_name: rv.rater.name,
            rater_phone: rv.rater.phone,
            rater_email: rv.rater.email,
            masked,
            staff: r
                .staff
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("、")
                })
                .unwrap_or_default(),
            comment: r.comment.clone(),
        };
        let events: Vec<EventLine> = self
            .detail
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
                event_line(def, &step, "生成差评工单", self.units, cal)
            })
            .collect();
        let actions: Vec<ActionForm> = def
            .map(|d| {
                available_actions(d, cal, &self.detail.subject(), &self.user.caller.actor, now)
            })
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                action_form(
                    a,
                    self.units,
                    &self.files.choices,
                    submitted.filter(|s| s.action == a.id),
                )
            })
            .collect();
        let audits: Vec<Value> = self
            .detail
            .audits
            .iter()
            .map(|a| {
                serde_json::json!({
                    "at": when(cal, a.at), "auditor": a.auditor,
                    "verdict": if *a.verdict == bihuan_store::Verdict::Pass { "通过" } else { "不通过" },
                    "reason": a.reason,
                })
            })
            .collect();
        let me = Me::of(self.user).named(self.units);
        render(
            status,
            "case.html",
            page_context! {
                title => format!("差评工单 {}", r.project_no), nav => nav(&me, ""), me, flash,
                c => head, r => facts, events, actions, audits, files => &self.files,
            },
        )
    }
}

/// A recorded step of a case's or a work item's log.
pub(super) struct Recorded<'a> {
    pub action: &'a str,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub actor: &'a str,
    pub at: DateTime<chrono::Utc>,
    /// The fields as stored (canonical JSON text).
    pub fields: &'a str,
}

/// A step of the timeline as people read it: the action's label (`opened` for the first step),
/// the states by label, the fields in words.
pub(super) fn event_line(
    def: Option<&bihuan_core::WorkflowDefinition>,
    e: &Recorded<'_>,
    opened: &str,
    units: &UnitNames,
    cal: &bihuan_core::WorkingCalendar,
) -> EventLine {
    let state_label = |id: &str| {
        def.and_then(|d| d.state(id))
            .map_or_else(|| id.to_owned(), |s| s.label.clone())
    };
    let action = def.and_then(|d| d.action(e.action));
    let recorded: Map<String, Value> = serde_json::from_str(e.fields).unwrap_or_default();
    EventLine {
        label: match (action, e.action) {
            (Some(a), _) => a.label.clone(),
            (None, "open") => opened.to_owned(),
            (None, "timeout") => "超时自动处理".to_owned(),
            (None, other) => other.to_owned(),
        },
        from_label: e.from.map(state_label).unwrap_or_default(),
        to_label: state_label(e.to),
        actor: e.actor.to_owned(),
        at: when(cal, e.at),
        fields: recorded
            .iter()
            .map(|(name, value)| field_line(action, name, value, units, cal))
            .collect(),
    }
}

/// A recorded field as people read it: the option's label, the unit's name, the time in Chinese.
fn field_line(
    action: Option<&ActionDef>,
    name: &str,
    value: &Value,
    units: &UnitNames,
    cal: &bihuan_core::WorkingCalendar,
) -> FieldLine {
    let def = action.and_then(|a| a.field(name));
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    let shown = match def.map(|f| &f.kind) {
        Some(FieldKind::Enum { .. }) => def
            .and_then(|f| f.option_label(&text))
            .map_or(text, str::to_owned),
        Some(FieldKind::Unit) => units.name(&text),
        Some(FieldKind::DateTime { .. }) => {
            DateTime::parse_from_rfc3339(&text).map_or(text, |t| when(cal, t.to_utc()))
        }
        Some(FieldKind::Evidence { .. }) => {
            let files: Option<Vec<String>> = value.as_array().and_then(|files| {
                files
                    .iter()
                    .map(|f| bihuan_core::evidence::EvidenceFile::from_recorded(f).map(|f| f.name))
                    .collect()
            });
            // A record that does not read as files is said to be damaged, never left out.
            files.map_or_else(
                || "（记录已损坏，请运行办理记录防篡改校验）".to_owned(),
                |names| names.join("、"),
            )
        }
        _ => text,
    };
    // The co-unit the interpreter records with a co-unit's report (报送配合情况).
    if def.is_none() && name == "unit" {
        return FieldLine {
            label: "配合单位".to_owned(),
            value: units.name(&shown),
        };
    }
    FieldLine {
        label: def.map_or_else(|| name.to_owned(), |f| f.label.clone()),
        value: shown,
    }
}

/// The case if the caller may see it; a 404 page otherwise.
async fn visible(state: &AppState, user: &PageUser, id: Uuid) -> Result<CaseDetail, PageError> {
    let missing = || {
        PageError::new(
            ApiError::not_found(format!("差评工单 {id} 不存在或不在您的权限范围内")),
            Some(user),
        )
    };
    let detail = match state.store.case(id).await {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(PageError::new(e, Some(user))),
    };
    if user.caller.scope.contains(&detail.case) {
        Ok(detail)
    } else {
        Err(missing())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShowQuery {
    done: Option<String>,
    uploaded: Option<String>,
}

/// The case's files as its page shows them.
async fn files_of(state: &AppState, user: &PageUser, id: Uuid) -> Result<FilesView, PageError> {
    let files = state
        .store
        .attachments_of(SubjectKind::Case, id)
        .await
        .map_err(|e| PageError::new(e, Some(user)))?;
    Ok(FilesView::of(state, user, &files))
}

/// `GET /cases/{id}`: 差评工单详情.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let detail = visible(&state, &user, id).await?;
    let units = UnitNames::in_scope(
        state
            .store
            .units()
            .await
            .map_err(|e| PageError::new(e, Some(&user)))?,
        &user.caller.scope,
    );
    let flash = q.done.as_deref().and_then(|done| {
        state
            .engine
            .workflow(&detail.case.workflow_id)
            .and_then(|d| d.action(done))
            .map(|a| Flash::ok(format!("已完成“{}”。", a.label)))
    });
    let flash = flash.or_else(|| {
        q.uploaded
            .is_some()
            .then(|| Flash::ok("已上传。在需要佐证材料的操作中勾选它即可引用。"))
    });
    let page = DetailPage {
        state: &state,
        user: &user,
        detail: &detail,
        units: &units,
        files: files_of(&state, &user, id).await?,
    };
    Ok(page.render(StatusCode::OK, flash, None))
}

/// A case's page and its action forms.
pub(crate) struct CasePage;

impl ActionPage for CasePage {
    type Detail = CaseDetail;
    type Done = CaseDetail;
    const CONFLICT: &'static str =
        "其他人已先处理了此差评工单，您的操作未执行。以下是最新情况，请确认后再操作。";
    const NO_VERSION: &'static str = "表单已过期，请刷新页面后重试。";
    const KIND: SubjectKind = SubjectKind::Case;

    fn path(id: Uuid) -> String {
        format!("/cases/{id}")
    }

    async fn visible(state: &AppState, user: &PageUser, id: Uuid) -> Result<CaseDetail, PageError> {
        visible(state, user, id).await
    }

    fn workflow<'s>(state: &'s AppState, detail: &CaseDetail) -> Option<&'s WorkflowDefinition> {
        state.engine.workflow(&detail.case.workflow_id)
    }

    async fn page(
        state: &AppState,
        user: &PageUser,
        detail: &CaseDetail,
        status: StatusCode,
        flash: Option<Flash>,
        submitted: Option<&Submitted>,
    ) -> PageResult {
        let units = state
            .store
            .units()
            .await
            .map_err(|e| PageError::new(e, Some(user)))?;
        let units = UnitNames::in_scope(units, &user.caller.scope);
        let page = DetailPage {
            state,
            user,
            detail,
            units: &units,
            files: files_of(state, user, detail.case.id).await?,
        };
        Ok(page.render(status, flash, submitted))
    }

    async fn apply(state: &AppState, req: &ActionRequest<'_>) -> Result<CaseDetail, StoreError> {
        state.store.apply_action(&state.engine, req).await
    }

    /// Back to the case while it stays in scope (a unit returning it to the center no longer sees
    /// it).
    fn done_at(user: &PageUser, id: Uuid, action: &str, done: &CaseDetail) -> String {
        if user.caller.scope.contains(&done.case) {
            format!("/cases/{id}?done={action}")
        } else {
            "/?done=1".to_owned()
        }
    }
}

/// `POST /cases/{id}`: takes the action of one of the page's forms.
pub(crate) async fn act(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    super::act::act::<CasePage>(&state, &user, id, &form).await
}
