//! 任务分解: importing a plan, reading plans and work items in a caller's scope, and taking a work
//! item's actions as one transaction each (the same interpreter and hash chain as cases, in the
//! item's own tables).

use std::collections::{BTreeMap, BTreeSet};

use bihuan_core::chain::{ChainedEvent, GENESIS_HASH, canonical_json, event_hash};
use bihuan_core::plan::{Due, PlanItem, Target, TaskClock, next_deadline};
use bihuan_core::{Engine, Subject, WORK_PLAN_TASK, WorkflowDefinition};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::code::{Code, StoredCode};
use crate::entity::{plan, task, task_event, task_target, task_unit, unit};
use crate::org_tree::OrgTree;
use crate::scope::CaseScope;
use crate::work_items::{first_remind_at, subject_of, task_events_of};
use crate::{Result, Store, StoreError};

/// The part a unit takes in a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitRole {
    /// 牵头单位: answers for the item.
    Lead,
    /// 配合单位: helps.
    Co,
}

impl StoredCode for UnitRole {
    const WHAT: &'static str = "work item unit role";

    fn code(self) -> &'static str {
        match self {
            UnitRole::Lead => "lead",
            UnitRole::Co => "co",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [UnitRole::Lead, UnitRole::Co]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// How a work item's due is stored: its kind, beside the date a dated one has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DueKind {
    /// By a date (`due_date`).
    Date,
    /// 持续推进.
    Ongoing,
    /// 按时序推进.
    Scheduled,
}

impl DueKind {
    /// The kind of a due.
    pub fn of(due: Due) -> Self {
        match due {
            Due::Date(_) => DueKind::Date,
            Due::Ongoing => DueKind::Ongoing,
            Due::Scheduled => DueKind::Scheduled,
        }
    }
}

impl StoredCode for DueKind {
    const WHAT: &'static str = "work item due kind";

    fn code(self) -> &'static str {
        match self {
            DueKind::Date => "date",
            DueKind::Ongoing => "ongoing",
            DueKind::Scheduled => "scheduled",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [DueKind::Date, DueKind::Ongoing, DueKind::Scheduled]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// A plan to import.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// Its name (2021年政务服务工作任务分解).
    pub name: String,
    /// Its year.
    pub year: i32,
    /// The file it comes from, or `api`.
    pub source: String,
    /// How often ongoing and scheduled items report, in months.
    pub report_months: u32,
    /// Where units the organization does not have yet are created.
    pub parent_unit: Option<String>,
    /// Its items, in order.
    pub items: Vec<NewItem>,
}

/// One work item to import.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// The item as the table gives it; its units are names (or codes) of units.
    pub item: PlanItem,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// How a plan file is to be imported.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The plan's name (default: the file's name without its extension).
    pub name: Option<String>,
    /// Its year (default: the first 20xx in the file's name).
    pub year: Option<i32>,
    /// Where unknown units are created.
    pub parent: Option<String>,
    /// The report period in months (default monthly).
    pub report_months: Option<u32>,
}

impl NewPlan {
    /// A plan from a file's bytes (CSV or xlsx), named and dated by the options or the file's name,
    /// read within `limits`. Every problem is named; a file beyond a limit is refused as a whole.
    pub fn from_file(
        bytes: &[u8],
        file_name: Option<&str>,
        options: PlanOptions,
        limits: &bihuan_core::Limits,
    ) -> std::result::Result<Self, bihuan_core::plan::PlanFileError> {
        use bihuan_core::plan::{
            PlanError, PlanFileError, TableFormat, name_and_year_of_file, read_plan,
        };
        let (file_stem, file_year) = file_name.map(name_and_year_of_file).unzip();
        let mut problems = Vec::new();
        let name = options.name.or(file_stem).unwrap_or_default();
        if name.trim().is_empty() {
            problems.push(PlanError {
                row: 0,
                column: "计划名称".to_owned(),
                message: "请给出计划名称（name）".to_owned(),
            });
        }
        let year = options.year.or(file_year.flatten());
        if year.is_none() {
            problems.push(PlanError {
                row: 0,
                column: "年份".to_owned(),
                message: "文件名中没有年份，请给出年份（year）".to_owned(),
            });
        }
        match (
            read_plan(bytes, TableFormat::of(file_name, bytes), limits),
            year,
        ) {
            (Err(PlanFileError::Limit(e)), _) => Err(e.into()),
            (Ok(items), Some(year)) if problems.is_empty() => Ok(Self {
                name,
                year,
                source: file_name.unwrap_or("api").to_owned(),
                report_months: options
                    .report_months
                    .unwrap_or(bihuan_core::plan::DEFAULT_REPORT_MONTHS),
                parent_unit: options.parent,
                items: items.into_iter().map(NewItem::from_table).collect(),
            }),
            (items, _) => {
                if let Err(PlanFileError::Problems(more)) = items {
                    problems.extend(more);
                }
                Err(problems.into())
            }
        }
    }
}

impl NewItem {
    /// An item of an imported table, with the targets its text states.
    pub fn from_table(item: PlanItem) -> Self {
        Self {
            targets: bihuan_core::plan::targets_in(&item.title),
            item,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct PlanImport {
    /// The plan.
    pub plan: plan::Model,
    /// Its items as the import's transaction stored them, in order.
    pub stored: Vec<TaskView>,
    /// Items imported.
    pub items: usize,
    /// Key tasks.
    pub key_tasks: usize,
    /// Targets found.
    pub targets: usize,
    /// Units the organization did not have, created under the parent.
    pub created_units: Vec<unit::Model>,
}

/// A plan with counts, as the plan list shows it.
#[derive(Debug, Clone)]
pub struct PlanSummary {
    /// The plan.
    pub plan: plan::Model,
    /// Items visible to the caller.
    pub items: u64,
    /// Of which done.
    pub done: u64,
    /// Of which overdue.
    pub overdue: u64,
}

/// A work item with its units and targets.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The row.
    pub task: task::Model,
    /// 牵头单位, in the table's order.
    pub lead_units: Vec<unit::Model>,
    /// 配合单位.
    pub co_units: Vec<unit::Model>,
    /// Its targets, in order.
    pub targets: Vec<task_target::Model>,
    /// When it is due, as the table wrote it.
    pub due: Due,
}

impl TaskView {
    /// The item as the interpreter sees it.
    pub fn subject(&self, events: &[task_event::Model]) -> Subject {
        subject_of(
            &self.task,
            codes(&self.lead_units),
            codes(&self.co_units),
            events,
        )
    }

    /// Whether one of its lead units (牵头单位) is in `scope`: a supervisor oversees only the items
    /// their subtree leads, not those it merely co-handles.
    pub fn led_within(&self, scope: &CaseScope) -> bool {
        match scope {
            CaseScope::All => true,
            CaseScope::Units(reach) => self
                .lead_units
                .iter()
                .any(|u| reach.units.contains(&u.code)),
            CaseScope::Responsible(unit) => self.lead_units.iter().any(|u| &u.code == unit),
        }
    }
}

/// A plan with the items the caller may see.
#[derive(Debug, Clone)]
pub struct PlanDetail {
    /// The plan.
    pub plan: plan::Model,
    /// Its items in order.
    pub items: Vec<TaskView>,
}

/// A work item with its plan and events.
#[derive(Debug, Clone)]
pub struct TaskDetail {
    /// The plan.
    pub plan: plan::Model,
    /// The item.
    pub item: TaskView,
    /// Its events in order.
    pub events: Vec<task_event::Model>,
}

pub(crate) fn codes(units: &[unit::Model]) -> Vec<String> {
    units.iter().map(|u| u.code.clone()).collect()
}

/// A work item's due from its row: a dated kind without its date is corrupt.
pub(crate) fn due_of(t: &task::Model) -> Result<Due> {
    match (*t.due_kind, t.due_date) {
        (DueKind::Date, Some(d)) => Ok(Due::Date(d)),
        (DueKind::Date, None) => Err(StoreError::Corrupt(format!(
            "work item {} is due by a date but has none",
            t.id
        ))),
        (DueKind::Ongoing, _) => Ok(Due::Ongoing),
        (DueKind::Scheduled, _) => Ok(Due::Scheduled),
    }
}

/// A unit code for a unit first named in a plan: `p-` and the first hex digits of its name's hash,
/// stable across imports.
fn code_for_name(name: &str) -> String {
    format!("p-{}", &crate::access::token_hash(name)[..12])
}

fn not_found(what: &'static str, id: Uuid) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

pub(crate) fn task_workflow(engine: &Engine) -> Result<&WorkflowDefinition> {
    engine
        .workflow(WORK_PLAN_TASK)
        .ok_or_else(|| StoreError::Corrupt(format!("workflow {WORK_PLAN_TASK} is not loaded")))
}

impl Store {
    /// Imports a plan: its units resolved by name or code (unknown ones created under the parent),
    /// every item opened in the work-plan workflow with its first event, its targets stored. All or
    /// nothing; a plan of the same name and year is refused.
    pub async fn import_plan(
        &self,
        engine: &Engine,
        new: &NewPlan,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<PlanImport> {
        let now = truncate_to_micros(now);
        let def = task_workflow(engine)?;
        let name = checked_plan(new)?;
        let txn = self.begin_write().await?;
        check_plan_place(&txn, new, &name).await?;
        let (by_name, created) = units_by_name(&txn, new, now).await?;
        let plan = plan::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name),
            year: Set(new.year),
            source: Set(new.source.clone()),
            report_months: Set(i32::try_from(new.report_months).unwrap_or(1)),
            created_by: Set(actor.to_owned()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let opening = Opening {
            engine,
            def,
            plan: &plan,
            report_months: new.report_months,
            actor,
            now,
        };
        let mut targets = 0;
        for (i, item) in new.items.iter().enumerate() {
            targets += opening.insert(&txn, i + 1, item, &by_name).await?;
        }
        let key_tasks: BTreeSet<&str> =
            new.items.iter().map(|i| i.item.key_task.as_str()).collect();
        let tasks = task::Entity::find()
            .filter(task::Column::PlanId.eq(plan.id))
            .order_by_asc(task::Column::Position)
            .all(&txn)
            .await?;
        let org = self.org_with_own_changes(&txn).await?;
        let stored = views_of(&txn, &org, tasks).await?;
        txn.commit().await?;
        Ok(PlanImport {
            key_tasks: key_tasks.len(),
            plan,
            stored,
            items: new.items.len(),
            targets,
            created_units: created,
        })
    }

    /// The plans with at least one item in scope (admins: every plan), newest year first, with counts.
    pub async fn plans(&self, scope: &CaseScope, now: DateTime<Utc>) -> Result<Vec<PlanSummary>> {
        let plans = plan::Entity::find()
            .order_by_desc(plan::Column::Year)
            .order_by_asc(plan::Column::Name)
            .all(&self.db)
            .await?;
        let visible = self.visible_tasks(scope, None).await?;
        let mut out = Vec::new();
        for p in plans {
            let items: Vec<&task::Model> = visible.iter().filter(|t| t.plan_id == p.id).collect();
            if items.is_empty() && *scope != CaseScope::All {
                continue;
            }
            out.push(PlanSummary {
                items: items.len() as u64,
                done: items.iter().filter(|t| t.closed_at.is_some()).count() as u64,
                overdue: items.iter().filter(|t| is_overdue(t, now)).count() as u64,
                plan: p,
            });
        }
        Ok(out)
    }

    /// One plan with its items in scope; a plan with none is not found.
    pub async fn plan(&self, id: Uuid, scope: &CaseScope) -> Result<PlanDetail> {
        let plan = plan::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("工作计划", id))?;
        let tasks = self.visible_tasks(scope, Some(id)).await?;
        if tasks.is_empty() && *scope != CaseScope::All {
            return Err(not_found("工作计划", id));
        }
        let items = views_of(&self.db, &*self.org().await?, tasks).await?;
        Ok(PlanDetail { plan, items })
    }

    /// One work item with its plan and events; outside the scope it is not found.
    pub async fn task(&self, id: Uuid, scope: &CaseScope) -> Result<TaskDetail> {
        let t = task::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("工作任务", id))?;
        let mut views = views_of(&self.db, &*self.org().await?, vec![t]).await?;
        let item = views.pop().ok_or_else(|| not_found("工作任务", id))?;
        if !task_in_scope(scope, &item) {
            return Err(not_found("工作任务", id));
        }
        let plan = plan::Entity::find_by_id(item.task.plan_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("task {id} has no plan")))?;
        let events = task_events_of(&self.db, id).await?;
        Ok(TaskDetail { plan, item, events })
    }

    /// The tasks in scope (of one plan, or all), in plan order.
    async fn visible_tasks(
        &self,
        scope: &CaseScope,
        plan_id: Option<Uuid>,
    ) -> Result<Vec<task::Model>> {
        let mut query = task::Entity::find();
        if let Some(id) = plan_id {
            query = query.filter(task::Column::PlanId.eq(id));
        }
        Ok(query
            .filter(task_condition(scope))
            .order_by_asc(task::Column::PlanId)
            .order_by_asc(task::Column::Position)
            .all(&self.db)
            .await?)
    }
}

/// The plan's name, once its year, items and report period are checked.
fn checked_plan(new: &NewPlan) -> Result<String> {
    let name = crate::access::bounded_text("name", &new.name, 200, "计划名称")?;
    if !(2000..=2100).contains(&new.year) {
        return Err(StoreError::Invalid {
            field: "year".into(),
            message: format!("年份 {} 无效", new.year),
        });
    }
    if new.items.is_empty() {
        return Err(StoreError::Invalid {
            field: "items".into(),
            message: "计划中没有工作任务".into(),
        });
    }
    if !(1..=12).contains(&new.report_months) {
        return Err(StoreError::Invalid {
            field: "report_months".into(),
            message: format!("报告周期应为 1 到 12 个月，而不是 {}", new.report_months),
        });
    }
    Ok(name)
}

/// Refuses a plan of the same name and year, or a parent unit that does not exist.
async fn check_plan_place(txn: &impl ConnectionTrait, new: &NewPlan, name: &str) -> Result<()> {
    if plan::Entity::find()
        .filter(plan::Column::Name.eq(name))
        .filter(plan::Column::Year.eq(new.year))
        .one(txn)
        .await?
        .is_some()
    {
        return Err(StoreError::Duplicate {
            what: "工作计划",
            key: format!("{name}（{}年）", new.year),
        });
    }
    if let Some(parent) = &new.parent_unit
        && unit::Entity::find_by_id(parent.clone())
            .one(txn)
            .await?
            .is_none()
    {
        return Err(StoreError::Invalid {
            field: "parent".into(),
            message: format!("上级单位 {parent} 不存在"),
        });
    }
    Ok(())
}

/// The code of every unit the plan names (by code or by name), adding under the plan's parent each
/// unit the organization does not have yet; with the units added.
async fn units_by_name(
    txn: &impl ConnectionTrait,
    new: &NewPlan,
    now: DateTime<Utc>,
) -> Result<(BTreeMap<String, String>, Vec<unit::Model>)> {
    let known = unit::Entity::find().all(txn).await?;
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for u in &known {
        by_name.insert(u.code.clone(), u.code.clone());
    }
    for u in &known {
        by_name.insert(u.name.clone(), u.code.clone());
    }
    let mut created = Vec::new();
    for NewItem { item, .. } in &new.items {
        for unit_name in item.lead_units.iter().chain(&item.co_units) {
            if by_name.contains_key(unit_name) {
                continue;
            }
            let model = unit::ActiveModel {
                code: Set(code_for_name(unit_name)),
                name: Set(unit_name.clone()),
                parent_code: Set(new.parent_unit.clone()),
                email: Set(None),
                region_code: Set(None),
                created_at: Set(now),
            }
            .insert(txn)
            .await?;
            by_name.insert(unit_name.clone(), model.code.clone());
            created.push(model);
        }
    }
    Ok((by_name, created))
}

/// What opening the work items of one imported plan shares.
struct Opening<'a> {
    engine: &'a Engine,
    def: &'a WorkflowDefinition,
    plan: &'a plan::Model,
    report_months: u32,
    actor: &'a str,
    now: DateTime<Utc>,
}

impl Opening<'_> {
    /// Opens the item at `position` (from 1): its row and first event, its units and its targets;
    /// returns how many targets it has.
    async fn insert(
        &self,
        txn: &impl ConnectionTrait,
        position: usize,
        new: &NewItem,
        by_name: &BTreeMap<String, String>,
    ) -> Result<usize> {
        let (engine, def, now, actor) = (self.engine, self.def, self.now, self.actor);
        let item = &new.item;
        let id = Uuid::new_v4();
        let opened = bihuan_core::open(def, engine.calendar(), now);
        let hash = event_hash(
            GENESIS_HASH,
            &ChainedEvent {
                subject_id: &id.to_string(),
                seq: 1,
                action: &opened.action,
                from: None,
                to: &opened.to,
                actor,
                at: now,
                fields: &Map::new(),
            },
        );
        let state_deadline = opened.timing.deadline.map(|d| d.at);
        let clock = TaskClock {
            due: item.due,
            report_months: self.report_months,
            state_deadline,
            terminal: false,
            last_report: None,
            since: now,
        };
        let next = next_deadline(engine.calendar(), &clock);
        task::ActiveModel {
            id: Set(id),
            plan_id: Set(self.plan.id),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
            source_row: Set(i32::try_from(item.row).unwrap_or(0)),
            key_task: Set(item.key_task.clone()),
            title: Set(item.title.clone()),
            due_kind: Set(Code(DueKind::of(item.due))),
            due_date: Set(item.due.date()),
            workflow_id: Set(def.id.clone()),
            workflow_version: Set(i32::try_from(def.version).unwrap_or(1)),
            state: Set(opened.to.clone()),
            version: Set(1),
            state_entered_at: Set(now),
            deadline: Set(next.map(|(at, _)| at)),
            owed: Set(next.map(|(_, o)| Code(o))),
            state_deadline: Set(state_deadline),
            deadline_start: Set(opened.timing.basis.map(|b| b.start)),
            deadline_days: Set(opened
                .timing
                .basis
                .map(|b| i32::try_from(b.working_days).unwrap_or(0))),
            deadline_provisional: Set(opened.timing.deadline.is_some_and(|d| d.provisional)),
            escalated: Set(false),
            overdue: Set(false),
            remind_at: Set(next.map(|(at, _)| first_remind_at(engine, def, at))),
            remind_stage: Set(crate::cases::first_stage(next.map(|(at, _)| at))),
            last_report_at: Set(None),
            percent: Set(None),
            last_progress: Set(None),
            event_count: Set(1),
            head_hash: Set(hash.clone()),
            created_at: Set(now),
            closed_at: Set(None),
            updated_at: Set(now),
        }
        .insert(txn)
        .await?;
        task_event::ActiveModel {
            task_id: Set(id),
            seq: Set(1),
            action: Set(opened.action.clone()),
            from_state: Set(None),
            to_state: Set(opened.to.clone()),
            actor: Set(actor.to_owned()),
            at: Set(now),
            fields: Set(canonical_json(&Value::Object(Map::new()))),
            prev_hash: Set(GENESIS_HASH.to_owned()),
            hash: Set(hash),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        insert_item_units(txn, id, item, by_name).await?;
        insert_item_targets(txn, id, &new.targets).await?;
        Ok(new.targets.len())
    }
}

/// An item's lead and co-units, in the table's order, each once per role.
async fn insert_item_units(
    txn: &impl ConnectionTrait,
    id: Uuid,
    item: &PlanItem,
    by_name: &BTreeMap<String, String>,
) -> Result<()> {
    for (role, names) in [
        (UnitRole::Lead, &item.lead_units),
        (UnitRole::Co, &item.co_units),
    ] {
        let mut seen = BTreeSet::new();
        for (position, unit_name) in names.iter().enumerate() {
            let code = by_name
                .get(unit_name)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("unit {unit_name} was not resolved")))?;
            if !seen.insert(code.clone()) {
                continue;
            }
            task_unit::ActiveModel {
                task_id: Set(id),
                role: Set(Code(role)),
                unit_code: Set(code),
                position: Set(i32::try_from(position).unwrap_or(0)),
            }
            .insert(txn)
            .await?;
        }
    }
    Ok(())
}

/// An item's targets, in order.
async fn insert_item_targets(
    txn: &impl ConnectionTrait,
    id: Uuid,
    targets: &[Target],
) -> Result<()> {
    for (position, target) in targets.iter().enumerate() {
        task_target::ActiveModel {
            task_id: Set(id),
            position: Set(i32::try_from(position).unwrap_or(0)),
            name: Set(target.name.clone()),
            comparison: Set(target.comparison.as_str().to_owned()),
            value: Set(target.value),
            unit: Set(target.unit.clone()),
            metric: Set(target.metric.clone()),
            reported_value: Set(None),
            reported_at: Set(None),
            reported_by: Set(None),
            ..Default::default()
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

/// The items with their units (from the organization tree) and targets.
pub(crate) async fn views_of(
    db: &impl ConnectionTrait,
    org: &OrgTree,
    tasks: Vec<task::Model>,
) -> Result<Vec<TaskView>> {
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let mut roles: BTreeMap<Uuid, Vec<task_unit::Model>> = BTreeMap::new();
    let mut targets: BTreeMap<Uuid, Vec<task_target::Model>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for r in task_unit::Entity::find()
            .filter(task_unit::Column::TaskId.is_in(chunk.iter().copied()))
            .order_by_asc(task_unit::Column::Position)
            .all(db)
            .await?
        {
            roles.entry(r.task_id).or_default().push(r);
        }
        for t in task_target::Entity::find()
            .filter(task_target::Column::TaskId.is_in(chunk.iter().copied()))
            .order_by_asc(task_target::Column::Position)
            .all(db)
            .await?
        {
            targets.entry(t.task_id).or_default().push(t);
        }
    }
    tasks
        .into_iter()
        .map(|t| {
            let of_role = |role: UnitRole| -> Vec<unit::Model> {
                roles
                    .get(&t.id)
                    .into_iter()
                    .flatten()
                    .filter(|r| *r.role == role)
                    .filter_map(|r| org.unit(&r.unit_code).cloned())
                    .collect()
            };
            Ok(TaskView {
                lead_units: of_role(UnitRole::Lead),
                co_units: of_role(UnitRole::Co),
                targets: targets.remove(&t.id).unwrap_or_default(),
                due: due_of(&t)?,
                task: t,
            })
        })
        .collect()
}

/// The work items in `scope`, as a condition: those a unit of the scope leads or co-handles.
pub(crate) fn task_condition(scope: &CaseScope) -> sea_orm::Condition {
    let units: Vec<String> = match scope {
        CaseScope::All => return sea_orm::Condition::all(),
        CaseScope::Units(reach) => reach.units.iter().cloned().collect(),
        CaseScope::Responsible(unit) => vec![unit.clone()],
    };
    let of_units = task_unit::Entity::find()
        .select_only()
        .column(task_unit::Column::TaskId)
        .filter(task_unit::Column::UnitCode.is_in(units))
        .into_query();
    sea_orm::Condition::all().add(task::Column::Id.in_subquery(of_units))
}

/// Whether a work item is past what it owes as of `now`.
pub fn is_overdue(t: &task::Model, now: DateTime<Utc>) -> bool {
    bihuan_core::reminder::is_overdue(t.overdue, t.deadline, now)
}

pub(crate) fn task_in_scope(scope: &CaseScope, view: &TaskView) -> bool {
    let mut units = view.lead_units.iter().chain(&view.co_units);
    match scope {
        CaseScope::All => true,
        CaseScope::Units(reach) => units.any(|u| reach.units.contains(&u.code)),
        CaseScope::Responsible(code) => units.any(|u| &u.code == code),
    }
}

impl Store {
    /// The live values (in percent) of the metrics targets can be bound to, over `year` up to `now`,
    /// in the caller's scope: metric key → value, `None` when its denominator is 0.
    pub async fn target_metric_values(
        &self,
        scope: &CaseScope,
        year: i32,
        today: NaiveDate,
    ) -> Result<BTreeMap<String, Option<f64>>> {
        let from = NaiveDate::from_ymd_opt(year, 1, 1);
        let end = NaiveDate::from_ymd_opt(year, 12, 31);
        let to = end.map(|e| e.min(today));
        let rows = self
            .metrics(
                scope,
                &crate::MetricsQuery {
                    from,
                    to,
                    unit: None,
                    group_by: crate::GroupBy::All,
                },
            )
            .await?;
        let counts = rows.first().map(|r| r.counts).unwrap_or_default();
        let figures =
            serde_json::to_value(bihuan_core::metrics::figures(&counts)).unwrap_or(Value::Null);
        let mut values = BTreeMap::new();
        if let Value::Object(map) = figures {
            for (key, value) in map {
                if key.ends_with("_rate") {
                    values.insert(key, value.as_f64().map(|v| v * 100.0));
                }
            }
        }
        Ok(values)
    }
}
