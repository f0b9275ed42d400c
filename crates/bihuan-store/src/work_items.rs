//! Work items (工作任务) in the one action pipeline, and their reminders.

use std::collections::{BTreeMap, BTreeSet};

use bihuan_core::chain::canonical_json;
use bihuan_core::plan::{TaskClock, next_deadline};
use bihuan_core::workflow::{Audience, Mark, Settings};
use bihuan_core::{
    Deadline, Engine, ReminderKind, ReminderTimes, Subject, Timing, WorkflowDefinition,
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::code::Code;
use crate::entity::{plan, task, task_event, task_target};
use crate::org_tree::OrgTree;
use crate::outbox::{Directory, supervisors_above};
use crate::pipeline::{Chained, Ctx, Step};
use crate::plans::{codes, task_in_scope, task_workflow, views_of};
use crate::reminders::{Found, Pass, Watch, Watched};
use crate::scope::CaseScope;
use crate::{ActionRequest, Result, Store, StoreError, SubjectKind, TaskDetail, TaskView};

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        what: SubjectKind::Task.what(),
        id: id.to_string(),
    }
}

impl Store {
    /// Takes an action on a work item through the one pipeline ([`crate::pipeline`]): the interpreter
    /// decides, the item's row moves on only if its version is unchanged, the hash-chained event is
    /// appended, a reported target value is stored and the notifications are queued, in one
    /// transaction.
    pub async fn apply_task_action(
        &self,
        engine: &Engine,
        req: &ActionRequest<'_>,
    ) -> Result<TaskDetail> {
        self.act::<TaskDetail>(engine, req).await
    }
}

/// A work item in the pipeline: loaded with its plan, units, targets and events.
impl Chained for TaskDetail {
    type Row = task::Model;
    type Answer = TaskDetail;
    const KIND: SubjectKind = SubjectKind::Task;

    async fn load(ctx: &Ctx<'_>, id: Uuid) -> Result<Option<Self>> {
        let Some(t) = task::Entity::find_by_id(id).one(ctx.txn).await? else {
            return Ok(None);
        };
        let plan = plan::Entity::find_by_id(t.plan_id)
            .one(ctx.txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("task {id} has no plan")))?;
        let item = views_of(ctx.txn, ctx.org, vec![t])
            .await?
            .pop()
            .ok_or_else(|| not_found(id))?;
        let events = task_events_of(ctx.txn, id).await?;
        Ok(Some(TaskDetail { plan, item, events }))
    }

    fn version(&self) -> i32 {
        self.item.task.version
    }

    fn chain_head(&self) -> (i64, &str) {
        (self.item.task.event_count, &self.item.task.head_hash)
    }

    fn workflow<'e>(&self, engine: &'e Engine) -> Result<&'e WorkflowDefinition> {
        task_workflow(engine)
    }

    fn visible(&self, scope: &CaseScope) -> bool {
        task_in_scope(scope, &self.item)
    }

    fn subject(&self) -> Subject {
        self.item.subject(&self.events)
    }

    /// A supervisor oversees only the items a unit of their subtree leads.
    fn may(&self, ctx: &Ctx<'_>, req: &ActionRequest<'_>, _step: &Step) -> Result<()> {
        if req.actor.role != bihuan_core::Role::Supervisor {
            return Ok(());
        }
        let reach = req
            .actor
            .unit
            .as_deref()
            .map(|unit| ctx.org.reach(unit))
            .unwrap_or_default();
        if self.item.led_within(&CaseScope::Units(reach)) {
            Ok(())
        } else {
            Err(bihuan_core::ActionError::LeadUnitOutOfScope {
                action: req.action.to_owned(),
            }
            .into())
        }
    }

    async fn write(
        &self,
        ctx: &Ctx<'_>,
        def: &WorkflowDefinition,
        step: &Step,
    ) -> Result<Option<task::Model>> {
        let updated = updated_task(&self.item, &self.plan, def, ctx.engine, step);
        Ok(task::Entity::update_many()
            .set(updated)
            .filter(task::Column::Id.eq(self.item.task.id))
            .filter(task::Column::Version.eq(step.version))
            .exec_with_returning(ctx.txn)
            .await?
            .pop())
    }

    async fn version_now(txn: &DatabaseTransaction, id: Uuid) -> Result<Option<i32>> {
        Ok(task::Entity::find_by_id(id)
            .select_only()
            .column(task::Column::Version)
            .into_tuple::<i32>()
            .one(txn)
            .await?)
    }

    async fn append(&mut self, txn: &DatabaseTransaction, step: &Step) -> Result<()> {
        let d = &step.decision;
        let event = task_event::ActiveModel {
            task_id: Set(self.item.task.id),
            seq: Set(step.seq),
            action: Set(d.action.clone()),
            from_state: Set(d.from.clone()),
            to_state: Set(d.to.clone()),
            actor: Set(step.actor.clone()),
            at: Set(step.now),
            fields: Set(canonical_json(&Value::Object(d.fields.clone()))),
            prev_hash: Set(step.prev_hash.clone()),
            hash: Set(step.hash.clone()),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        self.events.push(event);
        Ok(())
    }

    async fn effects(
        &mut self,
        ctx: &Ctx<'_>,
        def: &WorkflowDefinition,
        after: &task::Model,
        step: &Step,
    ) -> Result<()> {
        let d = &step.decision;
        let action = def
            .action(&d.action)
            .ok_or_else(|| StoreError::Corrupt(format!("action {} vanished", d.action)))?;
        if action.has_mark(Mark::TargetReported) {
            let (index, stored) =
                record_target(ctx.txn, &self.item, &d.fields, &step.actor, step.now).await?;
            self.item.targets[index] = stored;
        }
        self.item.task = after.clone();
        let people = ctx.org.people();
        for note in &d.notifications {
            let recipients = task_recipients(people, ctx.org, note.audience, &self.item);
            let notice = bihuan_core::mail::TaskNotice {
                kind: note.kind.clone(),
                action: Some(action.label.clone()),
                task: task_facts(ctx.engine, def, &self.plan, &self.item, step.now),
            };
            crate::outbox::insert_mail(
                ctx.txn,
                crate::outbox::NewMail {
                    kind: note.kind.clone(),
                    case_id: None,
                    audience: note.audience.as_str().to_owned(),
                    recipients,
                    letter: crate::outbox::render(ctx.engine, bihuan_core::mail::TASK, &notice)?,
                    unique_key: format!(
                        "task:{}:{}:{}:{}",
                        after.id,
                        step.seq,
                        note.kind,
                        note.audience.as_str()
                    ),
                    status: crate::outbox::OutboxStatus::Pending,
                    send_at: None,
                },
                step.now,
            )
            .await?;
        }
        Ok(())
    }

    fn answer(mut self, after: task::Model) -> TaskDetail {
        self.item.task = after;
        self
    }
}

/// Stores a reported target value: the field `target` names one of the item's targets (by name or
/// its number from 1), `value` is a number in the target's unit.
async fn record_target(
    txn: &DatabaseTransaction,
    view: &TaskView,
    fields: &Map<String, Value>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(usize, task_target::Model)> {
    let named = fields
        .get("target")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let target = view
        .targets
        .iter()
        .enumerate()
        .find(|(i, t)| t.name == named || (i + 1).to_string() == named)
        .ok_or_else(|| StoreError::Invalid {
            field: "target".into(),
            message: if view.targets.is_empty() {
                "该工作任务没有考核指标".to_owned()
            } else {
                format!(
                    "“{named}”不是该工作任务的指标（应为：{}）",
                    view.targets
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join("、")
                )
            },
        })?;
    let (index, target) = target;
    if let Some(metric) = &target.metric {
        return Err(StoreError::Invalid {
            field: "target".into(),
            message: format!("“{}”由系统按 {metric} 实时计算，无需填报", target.name),
        });
    }
    let text = fields
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .trim_end_matches(['%', '％', '次']);
    let value: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| StoreError::Invalid {
            field: "value".into(),
            message: format!("“{text}”不是数字"),
        })?;
    let stored = task_target::ActiveModel {
        id: Set(target.id),
        reported_value: Set(Some(value)),
        reported_at: Set(Some(now)),
        reported_by: Set(Some(actor.to_owned())),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok((index, stored))
}

pub(crate) async fn task_events_of(
    db: &impl ConnectionTrait,
    task_id: Uuid,
) -> Result<Vec<task_event::Model>> {
    Ok(task_event::Entity::find()
        .filter(task_event::Column::TaskId.eq(task_id))
        .order_by_asc(task_event::Column::Seq)
        .all(db)
        .await?)
}

/// The fields a work item's event recorded; a corrupt value is an error naming the event, never an
/// empty record.
pub fn task_event_fields(e: &task_event::Model) -> Result<Map<String, Value>> {
    crate::cases::recorded_fields(SubjectKind::Task, e.task_id, e.seq, &e.fields)
}

/// The item as the interpreter sees it.
pub(crate) fn subject_of(
    t: &task::Model,
    lead: Vec<String>,
    co: Vec<String>,
    events: &[task_event::Model],
) -> Subject {
    let actions_in_state = crate::cases::actions_in_state(events.iter().map(|e| {
        (
            e.from_state.as_deref(),
            e.to_state.as_str(),
            e.action.as_str(),
        )
    }));
    let basis = crate::cases::basis_of(t.deadline_start, t.deadline_days);
    Subject {
        responsible_units: lead,
        co_units: co,
        escalated: t.escalated,
        timing: Timing {
            basis,
            deadline: t.state_deadline.map(|at| Deadline {
                at,
                provisional: t.deadline_provisional,
            }),
            paused: None,
        },
        actions_in_state,
        ..Subject::new(&t.state)
    }
}

pub(crate) fn first_remind_at(
    engine: &Engine,
    def: &WorkflowDefinition,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    ReminderTimes::of(engine.calendar(), &def.settings, at).due_soon
}

fn updated_task(
    item: &TaskView,
    plan: &plan::Model,
    def: &WorkflowDefinition,
    engine: &Engine,
    step: &Step,
) -> task::ActiveModel {
    let current = &item.task;
    let (d, now) = (&step.decision, step.now);
    let entered = step.entered();
    let terminal = def.state(&d.to).is_some_and(|s| s.terminal);
    let action = def.action(&d.action);
    let reported = action.is_some_and(|a| a.has_mark(Mark::ProgressReported));
    let last_report = if reported {
        Some(now)
    } else {
        current.last_report_at
    };
    let text = action.and_then(|a| {
        a.fields
            .iter()
            .filter(|f| matches!(f.kind, bihuan_core::workflow::FieldKind::Text { .. }))
            .find_map(|f| d.fields.get(&f.name).and_then(Value::as_str))
    });
    let percent = action
        .and_then(|a| {
            a.first_field(|k| matches!(k, bihuan_core::workflow::FieldKind::Integer { .. }))
        })
        .and_then(|f| d.fields.get(&f.name))
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok());
    let state_deadline = d.timing.deadline.map(|x| x.at);
    let next = next_deadline(
        engine.calendar(),
        &TaskClock {
            due: item.due,
            report_months: u32::try_from(plan.report_months).unwrap_or(1),
            state_deadline,
            terminal,
            last_report,
            since: current.created_at,
        },
    );
    let deadline = next.map(|(at, _)| at);
    let fresh = deadline != current.deadline || entered;
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    task::ActiveModel {
        state: Set(d.to.clone()),
        version: Set(current.version + 1),
        state_entered_at: Set(if entered {
            now
        } else {
            current.state_entered_at
        }),
        deadline: Set(deadline),
        owed: Set(next.map(|(_, o)| Code(o))),
        state_deadline: Set(state_deadline),
        deadline_start: Set(d.timing.basis.map(|b| b.start)),
        deadline_days: Set(d.timing.basis.map(|b| to_i32(b.working_days))),
        deadline_provisional: Set(d.timing.deadline.is_some_and(|x| x.provisional)),
        escalated: Set(!fresh && current.escalated),
        overdue: Set(!fresh && current.overdue),
        remind_at: Set(if fresh {
            deadline.map(|at| first_remind_at(engine, def, at))
        } else {
            current.remind_at
        }),
        remind_stage: Set(if fresh {
            crate::cases::first_stage(deadline)
        } else {
            current.remind_stage
        }),
        last_report_at: Set(last_report),
        percent: Set(if reported {
            percent.or(current.percent)
        } else {
            current.percent
        }),
        last_progress: Set(text.map(str::to_owned).or(current.last_progress.clone())),
        event_count: Set(step.seq),
        head_hash: Set(step.hash.clone()),
        closed_at: Set(terminal.then_some(now)),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Who a notice about a work item goes to: its lead units (their mail and unit staff), or the
/// supervisors of the lead units' ancestors (of the units themselves when no ancestor has one).
fn task_recipients(
    people: &Directory,
    org: &OrgTree,
    audience: Audience,
    view: &TaskView,
) -> Vec<String> {
    let lead = codes(&view.lead_units);
    match audience {
        Audience::Supervisors => {
            let mut own = Vec::new();
            let mut above = Vec::new();
            for code in &lead {
                let mut chain = org.self_and_ancestors(code).into_iter();
                own.extend(chain.next());
                above.extend(chain);
            }
            supervisors_above(people, &above, &own)
        }
        _ => {
            let mut addresses: Vec<String> = view
                .lead_units
                .iter()
                .filter_map(|u| u.email.clone())
                .collect();
            addresses.extend(people.emails(bihuan_core::Role::UnitStaff, &lead));
            addresses.sort();
            addresses.dedup();
            addresses
        }
    }
}

/// What a mail says about a work item as of `now`.
fn task_facts(
    engine: &Engine,
    def: &WorkflowDefinition,
    plan: &plan::Model,
    view: &TaskView,
    now: DateTime<Utc>,
) -> bihuan_core::mail::TaskFacts {
    let t = &view.task;
    let cal = engine.calendar();
    bihuan_core::mail::TaskFacts {
        task_id: t.id.to_string(),
        plan: plan.name.clone(),
        key_task: t.key_task.clone(),
        title: t.title.clone(),
        lead_units: view
            .lead_units
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join("、"),
        state: def
            .state(&t.state)
            .map_or_else(|| t.state.clone(), |s| s.label.clone()),
        due: view.due.text(),
        owed: t.owed.map_or("期限", |o| o.label()).to_owned(),
        deadline: t
            .deadline
            .map(|d| bihuan_core::mail::chinese_deadline(cal, d)),
        working_days: t
            .deadline
            .map(|d| bihuan_core::reminder::working_days_to(cal, now, d)),
        link: engine.letters().link(&format!("/tasks/{}", t.id)),
    }
}

/// A work item's reminders: due soon and overdue to the lead units — sent no earlier than the
/// pass's office hours (the next working day's mail time, so nobody is mailed at night or on a
/// holiday) —, the escalation (督办) to the supervisors above them at once.
impl Watched for task::Model {
    type Entity = task::Entity;
    const TABLE: &'static str = "tasks";
    const ID: task::Column = task::Column::Id;
    const REMIND_AT: task::Column = task::Column::RemindAt;
    const REMIND_STAGE: task::Column = task::Column::RemindStage;

    fn of(row: task::Model) -> Self {
        row
    }

    fn watch(&self) -> Result<Watch> {
        Ok(Watch {
            id: self.id,
            version: self.version,
            deadline: self.deadline,
            stage: crate::reminders::stored_stage(Self::TABLE, self.id, self.remind_stage)?,
            remind_at: self.remind_at,
            overdue: self.overdue,
            escalated: self.escalated,
            updated_at: self.updated_at,
        })
    }

    fn settings<'e>(&self, engine: &'e Engine) -> Result<&'e Settings> {
        Ok(&task_workflow(engine)?.settings)
    }

    async fn remind(pass: &Pass<'_>, found: Vec<Found<Self>>) -> Result<usize> {
        let (txn, engine, org, now) = (pass.txn, pass.engine, pass.org, pass.now);
        let def = task_workflow(engine)?;
        let plan_ids: BTreeSet<Uuid> = found.iter().map(|f| f.subject.plan_id).collect();
        let plans: BTreeMap<Uuid, plan::Model> = plan::Entity::find()
            .filter(plan::Column::Id.is_in(plan_ids))
            .all(txn)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let views = views_of(txn, org, found.iter().map(|f| f.subject.clone()).collect()).await?;
        let people = org.people();
        let mut mails = Vec::new();
        for (f, view) in found.iter().zip(&views) {
            let t = &f.subject;
            let plan = plans
                .get(&t.plan_id)
                .ok_or_else(|| StoreError::Corrupt(format!("task {} has no plan", t.id)))?;
            for kind in &f.findings.kinds {
                let audience = if *kind == ReminderKind::Escalated {
                    Audience::Supervisors
                } else {
                    Audience::ResponsibleUnit
                };
                let notice = bihuan_core::mail::TaskNotice {
                    kind: kind.as_str().to_owned(),
                    action: None,
                    task: task_facts(engine, def, plan, view, now),
                };
                mails.push(crate::outbox::NewMail {
                    kind: format!("task_{}", kind.as_str()),
                    case_id: None,
                    audience: audience.as_str().to_owned(),
                    recipients: task_recipients(people, org, audience, view),
                    letter: crate::outbox::render(engine, bihuan_core::mail::TASK, &notice)?,
                    unique_key: format!(
                        "task-remind:{}:{}:{}",
                        t.id,
                        f.deadline.timestamp_micros(),
                        kind.as_str()
                    ),
                    status: crate::outbox::OutboxStatus::Pending,
                    send_at: (audience != Audience::Supervisors).then_some(pass.office_hours),
                });
                tracing::debug!(task = %t.id, kind = kind.as_str(), "task reminder");
            }
        }
        let written = mails.len();
        crate::outbox::insert_mails(txn, mails, now).await?;
        Ok(written)
    }
}
