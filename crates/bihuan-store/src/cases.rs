//! Cases: reading them, and taking an action as one transaction.

use std::collections::BTreeMap;

use bihuan_core::chain::{ChainedEvent, canonical_json, event_hash};
use bihuan_core::{
    Actor, Deadline, DeadlineBasis, Decision, Engine, PausedClock, ReminderTimes, Subject, Timing,
    WorkflowDefinition,
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::entity::{audit, case, event, rating, unit};
use crate::{Result, Store, StoreError, outbox};

/// An action asked of a case or a work item.
#[derive(Debug, Clone, Copy)]
pub struct ActionRequest<'a> {
    /// The case (or, for `apply_task_action`, the work item).
    pub id: Uuid,
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
}

impl CaseDetail {
    /// The case as the interpreter sees it.
    pub fn subject(&self) -> Subject {
        subject_of(&self.case, &self.events)
    }
}

impl Store {
    /// A case with its rating, events and audits.
    pub async fn case(&self, id: Uuid) -> Result<CaseDetail> {
        let case = case::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found(id))?;
        let events = events_of(&self.db, id).await?;
        detail_of(&self.db, case, events).await
    }

    /// Takes an action: reads the case, lets the core decide, updates the case only if its version is
    /// unchanged, appends the hash-chained event and queues the notifications, all in one transaction.
    /// The answer is the case as that transaction committed it; an error means nothing was kept.
    pub async fn apply_action(
        &self,
        engine: &Engine,
        req: &ActionRequest<'_>,
    ) -> Result<CaseDetail> {
        self.write(async |txn| {
            let (after, events) = apply_in(txn, engine, req).await?;
            let detail = detail_of(txn, after, events).await?;
            Ok(detail)
        })
        .await
    }
}

/// A case row with its events, completed by its rating and audits.
async fn detail_of(
    db: &impl ConnectionTrait,
    case: case::Model,
    events: Vec<event::Model>,
) -> Result<CaseDetail> {
    let rating = rating::Entity::find_by_id(case.rating_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", case.id)))?;
    let audits = audit::Entity::find()
        .filter(audit::Column::CaseId.eq(case.id))
        .order_by_asc(audit::Column::At)
        .all(db)
        .await?;
    Ok(CaseDetail {
        case,
        rating,
        events,
        audits,
    })
}

/// The body of [`Store::apply_action`], inside a transaction the caller commits: the case after the
/// action and its events, the new one last.
pub(crate) async fn apply_in(
    txn: &DatabaseTransaction,
    engine: &Engine,
    req: &ActionRequest<'_>,
) -> Result<(case::Model, Vec<event::Model>)> {
    let now = truncate_to_micros(req.now);
    let current = case::Entity::find_by_id(req.id)
        .one(txn)
        .await?
        .ok_or_else(|| not_found(req.id))?;
    if current.version != req.version {
        return Err(StoreError::Conflict {
            expected: req.version,
            actual: current.version,
        });
    }
    let def = workflow_of(engine, &current)?;
    let events = events_of(txn, current.id).await?;
    let subject = subject_of(&current, &events);
    let decision = bihuan_core::decide(
        def,
        engine.calendar(),
        &subject,
        req.actor,
        req.action,
        req.fields,
        now,
    )?;
    let newly_responsible: Vec<&String> = decision
        .responsible_units
        .iter()
        .filter(|u| !subject.responsible_units.contains(u))
        .collect();
    for code in &newly_responsible {
        if unit::Entity::find_by_id((*code).clone())
            .one(txn)
            .await?
            .is_none()
        {
            return Err(StoreError::Invalid {
                field: "unit".into(),
                message: format!("单位 {code} 不存在"),
            });
        }
    }
    // A case goes only to a unit the actor's center answers for (admins: any), read in this
    // transaction.
    if !newly_responsible.is_empty() && req.actor.role != bihuan_core::Role::Admin {
        let reach = match &req.actor.unit {
            Some(unit) => crate::scope::reach_in(txn, unit).await?,
            None => crate::Reach::default(),
        };
        if let Some(outside) = newly_responsible
            .iter()
            .find(|code| !reach.origins.contains(code.as_str()))
        {
            return Err(StoreError::UnitOutOfScope {
                unit: (*outside).clone(),
            });
        }
    }

    let seq = current.event_count + 1;
    let fields_value = Value::Object(decision.fields.clone());
    let hash = event_hash(
        &current.head_hash,
        &ChainedEvent {
            subject_id: &current.id.to_string(),
            seq,
            action: &decision.action,
            from: decision.from.as_deref(),
            to: &decision.to,
            actor: &req.actor.name,
            at: now,
            fields: &decision.fields,
        },
    );
    let updated = updated_case(&current, def, engine, &decision, seq, &hash, now);
    let result = case::Entity::update_many()
        .set(updated.clone())
        .filter(case::Column::Id.eq(current.id))
        .filter(case::Column::Version.eq(req.version))
        .exec(txn)
        .await?;
    if result.rows_affected == 0 {
        let actual = case::Entity::find_by_id(current.id)
            .one(txn)
            .await?
            .map_or(current.version, |c| c.version);
        return Err(StoreError::Conflict {
            expected: req.version,
            actual,
        });
    }
    let new_event = event::ActiveModel {
        case_id: Set(current.id),
        seq: Set(seq),
        action: Set(decision.action.clone()),
        from_state: Set(decision.from.clone()),
        to_state: Set(decision.to.clone()),
        actor: Set(req.actor.name.clone()),
        at: Set(now),
        fields: Set(canonical_json(&fields_value)),
        prev_hash: Set(current.head_hash.clone()),
        hash: Set(hash),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let after = case::Entity::find_by_id(current.id)
        .one(txn)
        .await?
        .ok_or_else(|| not_found(current.id))?;
    let mut events_after = events;
    let events_before_len = events_after.len();
    events_after.push(new_event);
    crate::metrics::record_case_change(
        txn,
        engine,
        &after,
        (&events_after[..events_before_len], current.overdue),
        (&events_after, after.overdue),
    )
    .await?;
    if after.state_entered_at != current.state_entered_at || after.deadline != current.deadline {
        outbox::lapse_reminders(txn, current.id).await?;
    }
    outbox::queue_notifications(txn, engine, def, &after, &decision, seq, now).await?;
    if after.deadline_provisional {
        tracing::warn!(case = %after.id, state = %after.state, "deadline is provisional: the calendar has no official data for its year");
    }
    Ok((after, events_after))
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
                outbox::lapse_reminders(&txn, c.id).await?;
                let overdue = c.overdue && fresh.at <= now;
                if overdue != c.overdue {
                    let events = events_of(&txn, c.id).await?;
                    crate::metrics::record_case_change(
                        &txn,
                        engine,
                        &c,
                        (&events, c.overdue),
                        (&events, overdue),
                    )
                    .await?;
                }
                tracing::info!(case = %c.id, old = ?c.deadline, new = %fresh.at, provisional = fresh.provisional, "provisional deadline recomputed");
                changed += 1;
            }
        }
        txn.commit().await?;
        Ok(changed)
    }
}

/// The reminder stage a fresh deadline starts at: 0, or with no deadline the last stage (nothing to
/// remind of, and out of the scheduler's way).
pub(crate) fn first_stage(deadline: Option<DateTime<Utc>>) -> i16 {
    if deadline.is_some() {
        0
    } else {
        bihuan_core::reminder::LAST_STAGE
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
        what: "案件",
        id: id.to_string(),
    }
}

pub(crate) fn workflow_of<'a>(
    engine: &'a Engine,
    case: &case::Model,
) -> Result<&'a WorkflowDefinition> {
    engine.workflow(&case.workflow_id).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "case {} runs workflow {} which is not loaded",
            case.id, case.workflow_id
        ))
    })
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
    }
}

fn updated_case(
    current: &case::Model,
    def: &WorkflowDefinition,
    engine: &Engine,
    d: &Decision,
    seq: i64,
    hash: &str,
    now: DateTime<Utc>,
) -> case::ActiveModel {
    let entered = d.from.as_deref() != Some(d.to.as_str());
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
        event_count: Set(seq),
        head_hash: Set(hash.to_owned()),
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
