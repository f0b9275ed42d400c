//! Cases: reading them, and taking an action as one transaction.

use std::collections::BTreeMap;

use bihuan_core::chain::canonical_json;
use bihuan_core::personal_data::KnownNames;
use bihuan_core::{
    Actor, Deadline, DeadlineBasis, Engine, OverallClock, PausedClock, ReminderTimes, Scheduled,
    Subject, Timing, WorkflowDefinition,
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationDef, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::entity::{audit, case, event, rating};
use crate::org_tree::OrgTree;
use crate::pipeline::{Chained, Ctx, Step};
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError, SubjectKind, outbox};

/// An action asked of a case or a work item.
#[derive(Debug, Clone, Copy)]
pub struct ActionRequest<'a> {
    /// The case (or, for `apply_task_action`, the work item).
    pub id: Uuid,
    /// What the caller may see: a subject outside it is not found. The scheduler, the rater's review
    /// and an audit act with [`CaseScope::All`].
    pub scope: &'a CaseScope,
    /// The version the caller saw; a different current version is a conflict.
    pub version: i32,
    /// The action's id.
    pub action: &'a str,
    /// The submitted fields.
    pub fields: &'a Map<String, Value>,
    /// Who asks.
    pub actor: &'a Actor,
    /// When.
    pub now: DateTime<Utc>,
}

/// A case with its rating, its events and its audits.
#[derive(Debug, Clone)]
pub struct CaseDetail {
    /// The case row.
    pub case: case::Model,
    /// The rating that opened it.
    pub rating: rating::Model,
    /// Its events in order.
    pub events: Vec<event::Model>,
    /// The supervisors' audits of it, oldest first.
    pub audits: Vec<audit::Model>,
    /// The units above its responsible unit in the organization, nearest first.
    pub responsible_ancestors: Vec<String>,
}

impl CaseDetail {
    /// The case as the interpreter sees it.
    pub fn subject(&self) -> Subject {
        let mut subject = subject_of(&self.case, &self.events);
        subject
            .responsible_ancestors
            .clone_from(&self.responsible_ancestors);
        subject.anonymous_rater = !self.rating.rater_real_name;
        subject
    }
}

/// The units above `unit` in the organization, nearest first (none for no unit or an unknown one).
fn ancestors_of(org: &OrgTree, unit: Option<&str>) -> Vec<String> {
    unit.map(|u| org.self_and_ancestors(u).into_iter().skip(1).collect())
        .unwrap_or_default()
}

impl Store {
    /// A case with its rating, events and audits.
    pub async fn case(&self, id: Uuid) -> Result<CaseDetail> {
        let org = self.org().await?;
        load_case(&self.db, &org, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Takes an action on a case through the one pipeline ([`crate::pipeline`]): the core decides,
    /// the case moves on only if its version is unchanged, the hash-chained event is appended and the
    /// metric counters and notifications are written, all in one transaction. The answer is the case
    /// as that transaction committed it; an error means nothing was kept.
    pub async fn apply_action(
        &self,
        engine: &Engine,
        req: &ActionRequest<'_>,
    ) -> Result<CaseDetail> {
        self.act::<CaseDetail>(engine, req).await
    }
}

/// A case with its rating, events and audits, read through `db`.
async fn load_case(
    db: &impl ConnectionTrait,
    org: &OrgTree,
    id: Uuid,
) -> Result<Option<CaseDetail>> {
    let Some((case, rating)) = case::Entity::find_by_id(id)
        .select_also(rating::Entity)
        .join(JoinType::LeftJoin, rating_of_case())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let rating =
        rating.ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", case.id)))?;
    check_counts(&case)?;
    let events = events_of(db, id).await?;
    let audits = audit::Entity::find()
        .filter(audit::Column::CaseId.eq(id))
        .order_by_asc(audit::Column::At)
        .all(db)
        .await?;
    Ok(Some(CaseDetail {
        responsible_ancestors: ancestors_of(org, case.unit_code.as_deref()),
        case,
        rating,
        events,
        audits,
    }))
}

/// A case's counts are never negative: one that is was written by something else than this code,
/// and no decision is taken on it.
fn check_counts(case: &case::Model) -> Result<()> {
    let counts = [
        ("reopen_count", Some(case.reopen_count)),
        ("extension_days", Some(case.extension_days)),
        ("extension_days_used", Some(case.extension_days_used)),
        ("extension_requested_days", case.extension_requested_days),
        ("appeals_used", Some(case.appeals_used)),
        ("deadline_days", case.deadline_days),
        ("paused_remaining_days", case.paused_remaining_days),
    ];
    match counts.iter().find(|(_, n)| n.is_some_and(|n| n < 0)) {
        Some((column, n)) => Err(StoreError::Corrupt(format!(
            "case {}: {column} is {}",
            case.id,
            n.unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

/// A case's rating, to join.
pub(crate) fn rating_of_case() -> RelationDef {
    case::Entity::belongs_to(rating::Entity)
        .from(case::Column::RatingId)
        .to(rating::Column::Id)
        .into()
}

/// A case in the pipeline: loaded with its rating, events and audits (what `decide()`, the metric
/// counters, the notifications and the answer need).
impl Chained for CaseDetail {
    type Row = case::Model;
    type Answer = CaseDetail;
    const KIND: SubjectKind = SubjectKind::Case;

    async fn load(ctx: &Ctx<'_>, id: Uuid) -> Result<Option<Self>> {
        load_case(ctx.txn, ctx.org, id).await
    }

    fn version(&self) -> i32 {
        self.case.version
    }

    fn chain_head(&self) -> (i64, &str) {
        (self.case.event_count, &self.case.head_hash)
    }

    fn workflow<'e>(&self, engine: &'e Engine) -> Result<&'e WorkflowDefinition> {
        workflow_of(engine, &self.case)
    }

    fn visible(&self, scope: &CaseScope) -> bool {
        scope.contains(&self.case)
    }

    fn subject(&self) -> Subject {
        CaseDetail::subject(self)
    }

    /// The rater's name and the staff the rating named (`staff`, a list of names as sent).
    fn known_names(&self) -> Result<KnownNames> {
        let rating = &self.rating;
        let corrupt = || {
            StoreError::Corrupt(format!(
                "stored staff of rating {} is not a list of names",
                rating.id
            ))
        };
        let staff = rating
            .staff
            .as_array()
            .ok_or_else(corrupt)?
            .iter()
            .map(|name| name.as_str().map(str::to_owned).ok_or_else(corrupt))
            .collect::<Result<Vec<_>>>()?;
        Ok(KnownNames {
            rater: rating.rater_name.clone(),
            staff,
        })
    }

    /// A case goes only to a registered unit, and only to one the actor's center answers for
    /// (admins: any).
    fn may(&self, ctx: &Ctx<'_>, req: &ActionRequest<'_>, step: &Step) -> Result<()> {
        let newly: Vec<&String> = step
            .decision
            .responsible_units
            .iter()
            .filter(|u| self.case.unit_code.as_ref() != Some(*u))
            .collect();
        if let Some(code) = newly.iter().find(|code| ctx.org.unit(code).is_none()) {
            return Err(StoreError::Invalid {
                field: "unit".into(),
                message: format!("单位 {code} 不存在"),
            });
        }
        if newly.is_empty() || req.actor.role == bihuan_core::Role::Admin {
            return Ok(());
        }
        let reach = req
            .actor
            .unit
            .as_deref()
            .map(|unit| ctx.org.reach(unit))
            .unwrap_or_default();
        match newly
            .iter()
            .find(|code| !reach.origins.contains(code.as_str()))
        {
            Some(outside) => Err(StoreError::UnitOutOfScope {
                unit: (*outside).clone(),
            }),
            None => Ok(()),
        }
    }

    async fn write(
        &self,
        ctx: &Ctx<'_>,
        def: &WorkflowDefinition,
        step: &Step,
    ) -> Result<Option<case::Model>> {
        let mut updated = updated_case(&self.case, def, ctx.engine, step);
        put_overall(
            &mut updated,
            ctx.engine,
            def,
            &step.decision.overall,
            Some(&self.case),
        );
        put_scheduled(
            &mut updated,
            ctx.engine,
            def,
            step.decision.scheduled.as_ref(),
            Some(&self.case),
        );
        Ok(case::Entity::update_many()
            .set(updated)
            .filter(case::Column::Id.eq(self.case.id))
            .filter(case::Column::Version.eq(step.version))
            .exec_with_returning(ctx.txn)
            .await?
            .pop())
    }

    async fn version_now(txn: &DatabaseTransaction, id: Uuid) -> Result<Option<i32>> {
        Ok(case::Entity::find_by_id(id)
            .select_only()
            .column(case::Column::Version)
            .into_tuple::<i32>()
            .one(txn)
            .await?)
    }

    async fn append(&mut self, txn: &DatabaseTransaction, step: &Step) -> Result<()> {
        let d = &step.decision;
        let event = event::ActiveModel {
            case_id: Set(self.case.id),
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
        after: &case::Model,
        step: &Step,
    ) -> Result<()> {
        let before = self.case.overdue;
        let events_before = &self.events[..self.events.len() - 1];
        crate::metrics::record_case_change(
            ctx.txn,
            ctx.engine,
            after,
            &self.rating,
            (events_before, before),
            (&self.events, after.overdue),
        )
        .await?;
        if (after.state_entered_at != self.case.state_entered_at
            || after.deadline != self.case.deadline)
            && reminded(&self.case)
        {
            outbox::lapse_reminders(ctx.txn, [after.id]).await?;
        }
        outbox::queue_notifications(ctx, def, after, &self.rating, &self.events, step).await?;
        if ctx.upstream {
            outbox::queue_push(ctx, after, &self.rating, step).await?;
        }
        if after.deadline_provisional {
            tracing::warn!(case = %after.id, state = %after.state, "deadline is provisional: the calendar has no official data for its year");
        }
        self.responsible_ancestors = ancestors_of(ctx.org, after.unit_code.as_deref());
        Ok(())
    }

    fn answer(self, after: case::Model) -> CaseDetail {
        CaseDetail {
            case: after,
            ..self
        }
    }
}

impl Store {
    /// Recomputes the deadlines that were provisional (their year had no calendar data) with the
    /// calendar as it is now; returns how many changed. Run at start-up, so adding a year's data and
    /// restarting is enough.
    pub async fn recompute_provisional_deadlines(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let txn = self.begin_write().await?;
        let provisional = case::Entity::find()
            .filter(case::Column::DeadlineProvisional.eq(true))
            .all(&txn)
            .await?;
        let mut changed = 0;
        for c in provisional {
            let Some(basis) =
                c.deadline_start
                    .zip(c.deadline_days)
                    .map(|(start, days)| DeadlineBasis {
                        start,
                        working_days: u32::try_from(days).unwrap_or(0),
                    })
            else {
                continue;
            };
            let fresh = engine.calendar().deadline(basis);
            if Some(fresh.at) == c.deadline && fresh.provisional {
                continue;
            }
            let update = case::ActiveModel {
                version: Set(c.version + 1),
                remind_at: Set(first_reminder(
                    engine,
                    workflow_of(engine, &c)?,
                    Some(fresh.at),
                )),
                remind_stage: Set(0),
                deadline: Set(Some(fresh.at)),
                deadline_provisional: Set(fresh.provisional),
                timer_at: Set(c.timer_action.as_ref().map(|_| fresh.at)),
                overdue: Set(c.overdue && fresh.at <= now),
                updated_at: Set(now),
                ..Default::default()
            };
            let result = case::Entity::update_many()
                .set(update)
                .filter(case::Column::Id.eq(c.id))
                .filter(case::Column::Version.eq(c.version))
                .exec(&txn)
                .await?;
            if result.rows_affected == 1 {
                outbox::lapse_reminders(&txn, [c.id]).await?;
                let overdue = c.overdue && fresh.at <= now;
                if overdue != c.overdue {
                    let events = events_of(&txn, c.id).await?;
                    let rating = outbox::rating_of(&txn, &c).await?;
                    crate::metrics::record_case_change(
                        &txn,
                        engine,
                        &c,
                        &rating,
                        (&events, c.overdue),
                        (&events, overdue),
                    )
                    .await?;
                }
                tracing::info!(case = %c.id, old = ?c.deadline, new = %fresh.at, provisional = fresh.provisional, "provisional deadline recomputed");
                changed += 1;
            }
        }
        // The overall limits (整改反馈时限) computed provisionally, the same way.
        let provisional = case::Entity::find()
            .filter(case::Column::OverallProvisional.eq(true))
            .all(&txn)
            .await?;
        for c in provisional {
            let mut clock = overall_of(&c);
            let Some(basis) = clock.basis else { continue };
            let fresh = engine.calendar().deadline(basis);
            if clock.deadline == Some(fresh) {
                continue;
            }
            clock.deadline = Some(fresh);
            let mut row = case::ActiveModel {
                version: Set(c.version + 1),
                updated_at: Set(now),
                ..Default::default()
            };
            put_overall(&mut row, engine, workflow_of(engine, &c)?, &clock, Some(&c));
            let result = case::Entity::update_many()
                .set(row)
                .filter(case::Column::Id.eq(c.id))
                .filter(case::Column::Version.eq(c.version))
                .exec(&txn)
                .await?;
            if result.rows_affected == 1 {
                tracing::info!(case = %c.id, old = ?c.overall_deadline, new = %fresh.at, provisional = fresh.provisional, "provisional overall limit recomputed");
                changed += 1;
            }
        }
        if changed > 0 {
            // A case's counts replay its deadlines with the calendar: 按期整改率 (on time or late, and
            // the day its deadline fell) now reads otherwise than the sums were counted. They are
            // rebuilt whole by the next `rebuild_stale_metrics` (start-up, every scheduler pass).
            crate::metrics::mark_stale(&txn).await?;
        }
        txn.commit().await?;
        Ok(changed)
    }
}

impl Store {
    /// Fills in the overall limit (整改反馈时限) of the cases opened before it existed, replaying each
    /// one's event log through the core, a page at a time; returns how many were filled in. Run at
    /// start-up and by the scheduler (a database another process migrated); a case an action changed
    /// meanwhile was filled in by it.
    pub async fn start_overall_limits(&self, engine: &Engine, now: DateTime<Utc>) -> Result<usize> {
        const PAGE: u64 = 500;
        let mut filled = 0;
        loop {
            let cases = case::Entity::find()
                .filter(case::Column::OverallRemindStage.is_null())
                .order_by_asc(case::Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await?;
            if cases.is_empty() {
                return Ok(filled);
            }
            let looked = cases.len();
            filled += self
                .write(async |txn| {
                    let logs =
                        crate::reminders::events_of_many(txn, cases.iter().map(|c| c.id)).await?;
                    let mut written = 0;
                    for c in &cases {
                        let def = workflow_of(engine, c)?;
                        let events = logs.get(&c.id).map_or(&[][..], Vec::as_slice);
                        let fields: Vec<Map<String, Value>> = events
                            .iter()
                            .map(|e| event_fields(e.case_id, e.seq, &e.fields))
                            .collect::<Result<_>>()?;
                        let steps = crate::metrics::steps_of(events, &fields);
                        let clock = bihuan_core::overall::replay(def, engine.calendar(), &steps);
                        let mut row = case::ActiveModel {
                            version: Set(c.version + 1),
                            updated_at: Set(now),
                            ..Default::default()
                        };
                        put_overall(&mut row, engine, def, &clock, None);
                        let result = case::Entity::update_many()
                            .set(row)
                            .filter(case::Column::Id.eq(c.id))
                            .filter(case::Column::Version.eq(c.version))
                            .exec(txn)
                            .await?;
                        written += usize::try_from(result.rows_affected).unwrap_or(0);
                    }
                    Ok(written)
                })
                .await?;
            if (looked as u64) < PAGE {
                tracing::info!(
                    filled,
                    "overall limits filled in for cases opened before them"
                );
                return Ok(filled);
            }
        }
    }
}

/// Whether the scheduler may have written reminders of the case's current deadline: not while
/// its stage is still the first (a reminder moves it on in the transaction that writes it), and never
/// without a deadline. Reminders of an earlier deadline were lapsed when it changed.
fn reminded(case: &case::Model) -> bool {
    case.deadline.is_some() && case.remind_stage != bihuan_core::Stage::Fresh.code()
}

/// The stored reminder stage a fresh deadline starts at: `Fresh`, or with no deadline `Done` (nothing
/// to remind of, and out of the scheduler's way).
pub(crate) fn first_stage(deadline: Option<DateTime<Utc>>) -> i16 {
    use bihuan_core::Stage;
    if deadline.is_some() {
        Stage::Fresh.code()
    } else {
        Stage::Done.code()
    }
}

/// When the scheduler first looks at a deadline: when it becomes due soon.
pub(crate) fn first_reminder(
    engine: &Engine,
    def: &WorkflowDefinition,
    deadline: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    deadline.map(|at| ReminderTimes::of(engine.calendar(), &def.settings, at).due_soon)
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        what: "差评工单",
        id: id.to_string(),
    }
}

pub(crate) fn workflow_of<'a>(
    engine: &'a Engine,
    case: &case::Model,
) -> Result<&'a WorkflowDefinition> {
    workflow_named(engine, case.id, &case.workflow_id)
}

/// The loaded workflow a case runs in, from the case's id and workflow id (for reads that do not
/// load the whole row); one that is not loaded is corrupt.
pub(crate) fn workflow_named<'a>(
    engine: &'a Engine,
    case_id: Uuid,
    workflow_id: &str,
) -> Result<&'a WorkflowDefinition> {
    engine.workflow(workflow_id).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "case {case_id} runs workflow {workflow_id} which is not loaded"
        ))
    })
}

/// The fields an event recorded, as stored in the chain: a corrupt value is an error naming the event,
/// never an empty record (it would silently change what the case counts for).
pub(crate) fn event_fields(case_id: Uuid, seq: i64, fields: &str) -> Result<Map<String, Value>> {
    recorded_fields(SubjectKind::Case, case_id, seq, fields)
}

/// The fields of event `seq` of `kind` `id` (a case, a work item); a corrupt value is an error
/// naming the event.
pub(crate) fn recorded_fields(
    kind: SubjectKind,
    id: Uuid,
    seq: i64,
    fields: &str,
) -> Result<Map<String, Value>> {
    serde_json::from_str(fields).map_err(|err| {
        StoreError::Corrupt(format!(
            "event {seq} of {} {id}: its fields are not a JSON object ({err})",
            kind.noun()
        ))
    })
}

/// The recorded fields of a case's last rectification (its last event of an action marked
/// `rectified`), `None` before it has one; a corrupt event is an error.
pub fn last_rectification(
    def: &WorkflowDefinition,
    events: &[event::Model],
) -> Result<Option<Map<String, Value>>> {
    events
        .iter()
        .rev()
        .find(|e| {
            def.action(&e.action)
                .is_some_and(|a| a.has_mark(bihuan_core::workflow::Mark::Rectified))
        })
        .map(|e| event_fields(e.case_id, e.seq, &e.fields))
        .transpose()
}

pub(crate) async fn events_of(
    db: &impl ConnectionTrait,
    case_id: Uuid,
) -> Result<Vec<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::CaseId.eq(case_id))
        .order_by_asc(event::Column::Seq)
        .all(db)
        .await?)
}

/// How many times each action was taken since the subject entered its current state, from its steps
/// (from, to, action) in order.
pub(crate) fn actions_in_state<'a>(
    steps: impl Iterator<Item = (Option<&'a str>, &'a str, &'a str)>,
) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for (from, to, action) in steps {
        if from == Some(to) {
            *counts.entry(action.to_owned()).or_default() += 1;
        } else {
            counts.clear();
        }
    }
    counts
}

/// The stored basis of a deadline (its start and working days).
pub(crate) fn basis_of(start: Option<DateTime<Utc>>, days: Option<i32>) -> Option<DeadlineBasis> {
    start.zip(days).map(|(start, days)| DeadlineBasis {
        start,
        working_days: u32::try_from(days).unwrap_or(0),
    })
}

/// The case as the interpreter sees it: its row plus the action counts since it entered its state.
pub(crate) fn subject_of(case: &case::Model, events: &[event::Model]) -> Subject {
    let actions_in_state = actions_in_state(events.iter().map(|e| {
        (
            e.from_state.as_deref(),
            e.to_state.as_str(),
            e.action.as_str(),
        )
    }));
    let basis = basis_of(case.deadline_start, case.deadline_days);
    Subject {
        state: case.state.clone(),
        responsible_units: case.unit_code.iter().cloned().collect(),
        co_units: Vec::new(),
        reopen_count: u32::try_from(case.reopen_count).unwrap_or(0),
        escalated: case.escalated,
        extension_days: u32::try_from(case.extension_days).unwrap_or(0),
        extension_days_used: u32::try_from(case.extension_days_used).unwrap_or(0),
        extension_requested: case
            .extension_requested_days
            .and_then(|d| u32::try_from(d).ok()),
        appeals_used: u32::try_from(case.appeals_used).unwrap_or(0),
        transferred_at: case.transferred_at,
        responsible_ancestors: Vec::new(),
        overall: overall_of(case),
        scheduled: scheduled_of(case),
        timing: Timing {
            basis,
            deadline: case.deadline.map(|at| Deadline {
                at,
                provisional: case.deadline_provisional,
            }),
            paused: case
                .paused_state
                .clone()
                .zip(case.paused_remaining_days)
                .map(|(state, days)| PausedClock {
                    state,
                    remaining_days: u32::try_from(days).unwrap_or(0),
                }),
        },
        actions_in_state,
        evidence: Vec::new(),
        anonymous_rater: false,
        known_names: KnownNames::default(),
    }
}

/// A case's overall limit (整改反馈时限) as stored.
pub(crate) fn overall_of(case: &case::Model) -> OverallClock {
    OverallClock {
        basis: basis_of(case.overall_start, case.overall_days),
        deadline: case.overall_deadline.map(|at| Deadline {
            at,
            provisional: case.overall_provisional,
        }),
        paused_days: case.overall_paused_days.and_then(|d| u32::try_from(d).ok()),
        met_at: case.overall_met_at,
    }
}

/// A case's scheduled rectification (限期整改) as stored.
pub fn scheduled_of(case: &case::Model) -> Option<Scheduled> {
    Some(Scheduled {
        due: case.scheduled_due?,
        deadline: case.scheduled_deadline?,
        done_at: case.scheduled_done_at,
    })
}

/// Writes a scheduled rectification into a case's row; its reminders start afresh when the deadline
/// to meet changed.
pub(crate) fn put_scheduled(
    row: &mut case::ActiveModel,
    engine: &Engine,
    def: &WorkflowDefinition,
    scheduled: Option<&Scheduled>,
    before: Option<&case::Model>,
) {
    row.scheduled_due = Set(scheduled.map(|s| s.due));
    row.scheduled_deadline = Set(scheduled.map(|s| s.deadline));
    row.scheduled_done_at = Set(scheduled.and_then(|s| s.done_at));
    let open = scheduled.and_then(Scheduled::open);
    let was = before.and_then(scheduled_of).and_then(|s| s.open());
    if before.is_none() || open != was {
        row.scheduled_remind_at = Set(first_reminder(engine, def, open));
        row.scheduled_remind_stage = Set(first_stage(open));
    }
}

/// Writes the overall limit into a case's row; its reminders start afresh when the deadline to meet
/// changed (or the case is new, or had none computed yet), as a state's do.
pub(crate) fn put_overall(
    row: &mut case::ActiveModel,
    engine: &Engine,
    def: &WorkflowDefinition,
    clock: &OverallClock,
    before: Option<&case::Model>,
) {
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    row.overall_start = Set(clock.basis.map(|b| b.start));
    row.overall_days = Set(clock.basis.map(|b| to_i32(b.working_days)));
    row.overall_deadline = Set(clock.deadline.map(|d| d.at));
    row.overall_provisional = Set(clock.deadline.is_some_and(|d| d.provisional));
    row.overall_paused_days = Set(clock.paused_days.map(to_i32));
    row.overall_met_at = Set(clock.met_at);
    let running = clock.running().map(|d| d.at);
    let unchanged = before.is_some_and(|c| {
        c.overall_remind_stage.is_some() && overall_of(c).running().map(|d| d.at) == running
    });
    if !unchanged {
        row.overall_remind_at = Set(first_reminder(engine, def, running));
        row.overall_remind_stage = Set(Some(first_stage(running)));
    }
}

fn updated_case(
    current: &case::Model,
    def: &WorkflowDefinition,
    engine: &Engine,
    step: &Step,
) -> case::ActiveModel {
    let (d, now) = (&step.decision, step.now);
    let entered = step.entered();
    let terminal = def.state(&d.to).is_some_and(|s| s.terminal);
    let deadline_changed = d.timing.deadline.map(|x| x.at) != current.deadline;
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    case::ActiveModel {
        state: Set(d.to.clone()),
        version: Set(current.version + 1),
        unit_code: Set(d.responsible_units.first().cloned()),
        state_entered_at: Set(if entered {
            now
        } else {
            current.state_entered_at
        }),
        deadline: Set(d.timing.deadline.map(|x| x.at)),
        deadline_start: Set(d.timing.basis.map(|b| b.start)),
        deadline_days: Set(d.timing.basis.map(|b| to_i32(b.working_days))),
        deadline_provisional: Set(d.timing.deadline.is_some_and(|x| x.provisional)),
        paused_state: Set(d.timing.paused.as_ref().map(|p| p.state.clone())),
        paused_remaining_days: Set(d.timing.paused.as_ref().map(|p| to_i32(p.remaining_days))),
        extension_days: Set(to_i32(d.extension_days)),
        extension_days_used: Set(to_i32(d.extension_days_used)),
        extension_requested_days: Set(d.extension_requested.map(to_i32)),
        appeals_used: Set(to_i32(d.appeals_used)),
        transferred_at: Set(d.transferred_at),
        reopen_count: Set(to_i32(d.reopen_count)),
        escalated: Set(d.escalated),
        overdue: Set(if deadline_changed || entered {
            false
        } else {
            current.overdue
        }),
        // A new deadline (or a new stay in a state) starts its reminders afresh.
        remind_at: Set(if deadline_changed || entered {
            first_reminder(engine, def, d.timing.deadline.map(|x| x.at))
        } else {
            current.remind_at
        }),
        remind_stage: Set(if deadline_changed || entered {
            first_stage(d.timing.deadline.map(|x| x.at))
        } else {
            current.remind_stage
        }),
        timer_action: Set(d.timer.as_ref().map(|t| t.action.clone())),
        timer_at: Set(d.timer.as_ref().map(|t| t.at)),
        event_count: Set(step.seq),
        head_hash: Set(step.hash.clone()),
        closed_at: Set(if terminal {
            Some(if entered {
                now
            } else {
                current.closed_at.unwrap_or(now)
            })
        } else {
            None
        }),
        updated_at: Set(now),
        ..Default::default()
    }
}

impl Store {
    /// Open cases whose state's timer is due at `now`, earliest first, at most `limit`.
    pub async fn due_timers(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<case::Model>> {
        Ok(case::Entity::find()
            .filter(case::Column::TimerAction.is_not_null())
            .filter(case::Column::TimerAt.lte(now))
            .order_by_asc(case::Column::TimerAt)
            .order_by_asc(case::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}
