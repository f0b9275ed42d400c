//! The JSON of plans and work items (docs/API.md: "A plan in JSON"), and the plan's workbook in the layout
//! of the original table plus status columns — what a town office sends upward.

use std::collections::BTreeMap;

use bihuan_core::plan::{Comparison, number_text};
use bihuan_core::{Engine, WORK_PLAN_TASK};
use bihuan_store::entity::{attachment, plan, task_event, task_target, unit};
use bihuan_store::{PlanSummary, StoreError, TaskView, is_overdue, task_event_fields};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::extract::SignedIn;
use crate::views::{ActionView, action_view};

/// A unit named on a work item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnitRef {
    pub code: String,
    pub name: String,
}

/// A target with its value now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetView {
    pub name: String,
    /// `at_least`, `at_most` or `equal`.
    pub comparison: String,
    /// ≥, ≤ or =.
    pub sign: String,
    pub value: f64,
    pub unit: String,
    /// The computed metric it is bound to (`rectification_rate` …), if any.
    pub metric: Option<String>,
    /// 差评整改率 = 100%.
    pub text: String,
    /// The value now: live from the metrics, or the last reported one; null when none.
    pub actual: Option<f64>,
    /// `metric` (live) or `reported`; null without a value.
    pub actual_source: Option<&'static str>,
    /// When the value was reported (reported values only).
    pub reported_at: Option<DateTime<Utc>>,
    pub reported_by: Option<String>,
    /// Whether the value meets the target; null without a value.
    pub met: Option<bool>,
}

/// One work item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskJson {
    pub id: Uuid,
    pub plan_id: Uuid,
    pub position: i32,
    pub source_row: i32,
    pub key_task: String,
    pub title: String,
    pub lead_units: Vec<UnitRef>,
    pub co_units: Vec<UnitRef>,
    /// `date`, `ongoing` or `scheduled`.
    pub deadline_kind: String,
    /// 完成时限 (a date), null for ongoing and scheduled items.
    pub deadline: Option<NaiveDate>,
    /// 完成时限 as the table writes it: 2021年6月30日, 持续推进, 按时序推进.
    pub deadline_text: String,
    pub state: String,
    pub state_label: String,
    pub version: i32,
    /// What it owes next (`completion`, `report`, `acceptance`), by `next_deadline`.
    pub owes: Option<String>,
    pub owes_label: Option<String>,
    pub next_deadline: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub escalated: bool,
    pub percent: Option<i32>,
    pub last_progress: Option<String>,
    pub last_report_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub targets: Vec<TargetView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionView>>,
    /// What the co-units reported of their share (报送配合情况), oldest first: the lead unit's
    /// submission shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<ShareView>>,
    /// The files attached to it (佐证材料), oldest first; in the item's own answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::attachments::AttachmentView>>,
}

/// A co-unit's report of its share of a work item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShareView {
    /// The co-unit's code.
    pub unit: String,
    /// Who reported.
    pub actor: String,
    pub at: DateTime<Utc>,
    pub summary: String,
}

/// The co-units' shares among a work item's events: the events of an action marked share_reported.
/// A share whose recorded fields are corrupt is an error naming the event, never a blank share.
pub fn shares_of(
    def: Option<&bihuan_core::WorkflowDefinition>,
    events: &[task_event::Model],
) -> Result<Vec<ShareView>, StoreError> {
    let Some(def) = def else {
        return Ok(Vec::new());
    };
    events
        .iter()
        .filter(|e| {
            def.action(&e.action)
                .is_some_and(|a| a.has_mark(bihuan_core::workflow::Mark::ShareReported))
        })
        .map(|e| {
            let fields = task_event_fields(e)?;
            let text = |name: &str| {
                fields
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(ShareView {
                unit: text("unit"),
                actor: e.actor.clone(),
                at: e.at,
                summary: text("summary"),
            })
        })
        .collect()
}

/// A plan with its items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanJson {
    pub id: Uuid,
    pub name: String,
    pub year: i32,
    pub source: String,
    pub report_months: i32,
    pub created_at: DateTime<Utc>,
    pub items: Vec<TaskJson>,
}

/// A plan in the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanListItem {
    pub id: Uuid,
    pub name: String,
    pub year: i32,
    pub source: String,
    pub report_months: i32,
    pub created_at: DateTime<Utc>,
    /// Items the caller may see, done, overdue.
    pub items: u64,
    pub done: u64,
    pub overdue: u64,
}

impl From<&PlanSummary> for PlanListItem {
    fn from(s: &PlanSummary) -> Self {
        Self {
            id: s.plan.id,
            name: s.plan.name.clone(),
            year: s.plan.year,
            source: s.plan.source.clone(),
            report_months: s.plan.report_months,
            created_at: s.plan.created_at,
            items: s.items,
            done: s.done,
            overdue: s.overdue,
        }
    }
}

fn unit_refs(units: &[unit::Model]) -> Vec<UnitRef> {
    units
        .iter()
        .map(|u| UnitRef {
            code: u.code.clone(),
            name: u.name.clone(),
        })
        .collect()
}

/// A target with its live (bound) or reported value.
pub fn target_view(t: &task_target::Model, live: &BTreeMap<String, Option<f64>>) -> TargetView {
    let comparison = Comparison::parse(&t.comparison).unwrap_or(Comparison::AtLeast);
    let (actual, source) = match &t.metric {
        Some(metric) => (live.get(metric).copied().flatten(), Some("metric")),
        None => (t.reported_value, Some("reported")),
    };
    let actual = actual.map(|v| (v * 100.0).round() / 100.0);
    TargetView {
        name: t.name.clone(),
        comparison: comparison.as_str().to_owned(),
        sign: comparison.sign().to_owned(),
        value: t.value,
        unit: t.unit.clone(),
        metric: t.metric.clone(),
        text: format!(
            "{} {} {}{}",
            t.name,
            comparison.sign(),
            number_text(t.value),
            t.unit
        ),
        actual,
        actual_source: actual.and(source),
        reported_at: t.metric.is_none().then_some(t.reported_at).flatten(),
        reported_by: t.metric.is_none().then(|| t.reported_by.clone()).flatten(),
        met: actual.map(|a| comparison.met(a, t.value)),
    }
}

/// A work item as the API shows it; with `events` and the caller's `actions` for one item.
pub fn task_json(
    engine: &Engine,
    view: &TaskView,
    live: &BTreeMap<String, Option<f64>>,
    now: DateTime<Utc>,
    detail: Option<(&[task_event::Model], &SignedIn)>,
) -> TaskJson {
    let t = &view.task;
    let def = engine.workflow(WORK_PLAN_TASK);
    let due = view.due;
    let owed = t.owed.map(|o| *o);
    TaskJson {
        id: t.id,
        plan_id: t.plan_id,
        position: t.position,
        source_row: t.source_row,
        key_task: t.key_task.clone(),
        title: t.title.clone(),
        lead_units: unit_refs(&view.lead_units),
        co_units: unit_refs(&view.co_units),
        deadline_kind: t.due_kind.to_string(),
        deadline: due.date(),
        deadline_text: due.text(),
        state: t.state.clone(),
        state_label: def
            .and_then(|d| d.state(&t.state))
            .map_or_else(|| t.state.clone(), |s| s.label.clone()),
        version: t.version,
        owes: owed.map(|o| o.as_str().to_owned()),
        owes_label: owed.map(|o| o.label().to_owned()),
        next_deadline: t.deadline,
        overdue: is_overdue(t, now),
        escalated: t.escalated,
        percent: t.percent,
        last_progress: t.last_progress.clone(),
        last_report_at: t.last_report_at,
        closed_at: t.closed_at,
        targets: view.targets.iter().map(|x| target_view(x, live)).collect(),
        events: detail.map(|(events, _)| events.iter().map(event_json).collect()),
        shares: None,
        attachments: None,
        actions: detail.map(|(events, caller)| {
            def.map(|d| {
                task_actions(d, engine.calendar(), view, events, caller, now)
                    .into_iter()
                    .map(action_view)
                    .collect()
            })
            .unwrap_or_default()
        }),
    }
}

/// One work item as the API shows it to `caller`: with its events, its co-units' shares, its files
/// and the caller's actions.
pub fn task_detail_json(
    engine: &Engine,
    view: &TaskView,
    live: &BTreeMap<String, Option<f64>>,
    now: DateTime<Utc>,
    detail: (&[task_event::Model], &[attachment::Model]),
    caller: &SignedIn,
) -> Result<TaskJson, StoreError> {
    let (events, files) = detail;
    let mut json = task_json(engine, view, live, now, Some((events, caller)));
    json.shares = Some(shares_of(engine.workflow(WORK_PLAN_TASK), events)?);
    json.attachments = Some(files.iter().map(Into::into).collect());
    Ok(json)
}

/// The actions the caller may take on a work item now: the workflow's, less reporting a target's
/// value when the item has no target that takes reported values; none for a supervisor whose subtree
/// only co-handles it (the store refuses those too).
pub fn task_actions<'d>(
    def: &'d bihuan_core::WorkflowDefinition,
    cal: &bihuan_core::calendar::WorkingCalendar,
    view: &TaskView,
    events: &[task_event::Model],
    caller: &SignedIn,
    now: DateTime<Utc>,
) -> Vec<&'d bihuan_core::workflow::ActionDef> {
    if caller.role == bihuan_core::Role::Supervisor && !view.led_within(&caller.scope) {
        return Vec::new();
    }
    let reportable = reportable_targets(view);
    bihuan_core::available_actions(def, cal, &view.subject(events), &caller.actor, now)
        .into_iter()
        .filter(|a| {
            !a.has_mark(bihuan_core::workflow::Mark::TargetReported) || !reportable.is_empty()
        })
        .collect()
}

/// The names of an item's targets that take reported values (those not computed by the system).
pub fn reportable_targets(view: &TaskView) -> Vec<String> {
    view.targets
        .iter()
        .filter(|t| t.metric.is_none())
        .map(|t| t.name.clone())
        .collect()
}

fn event_json(e: &task_event::Model) -> Value {
    serde_json::json!({
        "seq": e.seq,
        "action": e.action,
        "from": e.from_state,
        "to": e.to_state,
        "actor": e.actor,
        "at": e.at,
        "fields": serde_json::from_str::<Map<String, Value>>(&e.fields).map_or(Value::Null, Value::Object),
        "hash": e.hash,
    })
}

/// A plan with its items as the API shows it.
pub fn plan_json(
    engine: &Engine,
    plan: &plan::Model,
    items: &[TaskView],
    live: &BTreeMap<String, Option<f64>>,
    now: DateTime<Utc>,
) -> PlanJson {
    PlanJson {
        id: plan.id,
        name: plan.name.clone(),
        year: plan.year,
        source: plan.source.clone(),
        report_months: plan.report_months,
        created_at: plan.created_at,
        items: items
            .iter()
            .map(|v| task_json(engine, v, live, now, None))
            .collect(),
    }
}

/// The columns the export adds to the original five.
const STATUS_COLUMNS: [(&str, f64); 7] = [
    ("状态", 12.0),
    ("完成百分比", 10.0),
    ("最新进展", 40.0),
    ("最近报告时间", 16.0),
    ("下一期限", 22.0),
    ("是否超期", 10.0),
    ("考核指标（目标 / 当前值）", 40.0),
];

/// The plan as an xlsx workbook: a title row, the original table's five columns with the key-task
/// cells merged as in the original, then the status columns.
pub fn plan_workbook(engine: &Engine, plan: &PlanJson) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format as Style, FormatAlign, FormatBorder, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let cal = engine.calendar();
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("任务分解").map_err(err)?;
    let title = Style::new()
        .set_bold()
        .set_font_size(14)
        .set_align(FormatAlign::Center);
    let head = Style::new()
        .set_bold()
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center)
        .set_text_wrap();
    let cell = Style::new()
        .set_border(FormatBorder::Thin)
        .set_text_wrap()
        .set_align(FormatAlign::VerticalCenter);
    let headers: Vec<(&str, f64)> = bihuan_core::plan::COLUMNS
        .iter()
        .map(|(zh, _)| *zh)
        .zip([24.0, 60.0, 24.0, 24.0, 14.0])
        .chain(STATUS_COLUMNS)
        .collect();
    let last_col = u16::try_from(headers.len() - 1).map_err(|e| e.to_string())?;
    sheet
        .merge_range(
            0,
            0,
            0,
            last_col,
            &format!("{}（{}年）", plan.name, plan.year),
            &title,
        )
        .map_err(err)?;
    for (i, (name, width)) in headers.iter().enumerate() {
        let col = u16::try_from(i).map_err(|e| e.to_string())?;
        sheet
            .write_string_with_format(1, col, *name, &head)
            .map_err(err)?;
        sheet.set_column_width(col, *width).map_err(err)?;
    }
    let names = |units: &[UnitRef]| {
        units
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join("、")
    };
    let first = 2u32;
    let mut group_start = first;
    for (i, item) in plan.items.iter().enumerate() {
        let row = first + u32::try_from(i).map_err(|e| e.to_string())?;
        let deadline = item
            .next_deadline
            .map(|d| {
                format!(
                    "{}：{}",
                    item.owes_label.as_deref().unwrap_or("期限"),
                    bihuan_core::mail::chinese_deadline(cal, d)
                )
            })
            .unwrap_or_default();
        let targets = item
            .targets
            .iter()
            .map(|t| {
                let actual = t.actual.map_or_else(
                    || "暂无".to_owned(),
                    |a| format!("{}{}", number_text(a), t.unit),
                );
                format!("{} / {actual}", t.text)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let texts = [
            item.title.clone(),
            names(&item.lead_units),
            names(&item.co_units),
            item.deadline_text.clone(),
            item.state_label.clone(),
            item.percent.map(|p| format!("{p}%")).unwrap_or_default(),
            item.last_progress.clone().unwrap_or_default(),
            item.last_report_at
                .map(|t| bihuan_core::mail::chinese_date(cal.local_date(t)))
                .unwrap_or_default(),
            deadline,
            if item.overdue { "已超期" } else { "" }.to_owned(),
            targets,
        ];
        for (c, text) in texts.iter().enumerate() {
            let col = u16::try_from(c + 1).map_err(|e| e.to_string())?;
            sheet
                .write_string_with_format(row, col, text, &cell)
                .map_err(err)?;
        }
        // The key task's cell spans its items, as in the original.
        let next_differs = plan
            .items
            .get(i + 1)
            .is_none_or(|n| n.key_task != item.key_task);
        if next_differs {
            if row > group_start {
                sheet
                    .merge_range(group_start, 0, row, 0, &item.key_task, &cell)
                    .map_err(err)?;
            } else {
                sheet
                    .write_string_with_format(row, 0, &item.key_task, &cell)
                    .map_err(err)?;
            }
            group_start = row + 1;
        }
    }
    workbook.save_to_buffer().map_err(err)
}
