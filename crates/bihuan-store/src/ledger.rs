//! The case ledger (差评整改台账): one entry per case with what a town office sends upward, read a
//! page at a time so an export of any size runs in constant memory. The entries are facts (times,
//! recorded values, ids); the export layer words and formats them.

use std::collections::HashMap;

use bihuan_core::evidence::EvidenceFile;
use bihuan_core::rating::{Channel, Level};
use bihuan_core::workflow::{ActionDef, EffectDef, FieldKind, Mark};
use bihuan_core::{Engine, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::code::Code;
use crate::entity::{case, event, rating};
use crate::org_tree::OrgTree;
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// A value chosen from an enum field of a workflow action, as recorded: the workflow file's labels
/// word it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The action that recorded it.
    pub action: String,
    /// The field.
    pub field: String,
    /// The option's value.
    pub value: String,
}

/// What the rater's review (用户评议) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Satisfied, at the level chosen.
    Satisfied(Choice),
    /// Not satisfied: the case went back.
    Unsatisfied,
    /// The rater did not answer in time.
    TimedOut,
}

/// One case of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// 工单编号.
    pub case_id: Uuid,
    /// 办件编号.
    pub project_no: String,
    /// 事项名称.
    pub service_name: String,
    /// 评价等级.
    pub level: Level,
    /// 评价渠道.
    pub channel: Channel,
    /// 评价时间.
    pub rated_at: DateTime<Utc>,
    /// The workflow the case runs in.
    pub workflow_id: String,
    /// Its current state's id.
    pub state: String,
    /// 承办单位: the responsible unit's name, once transferred.
    pub unit: Option<String>,
    /// 评价单位: the name of the unit that handled the rated item.
    pub origin_unit: String,
    /// 受理时间: when it first left its initial state.
    pub accepted_at: Option<DateTime<Utc>>,
    /// 转办时间: the first action that set the responsible unit.
    pub transferred_at: Option<DateTime<Utc>>,
    /// 整改时间: the first rectification.
    pub rectified_at: Option<DateTime<Utc>>,
    /// 整改措施: its first text field.
    pub measures: Option<String>,
    /// 限期整改: the due date of a scheduled rectification, and when it was reported done.
    pub scheduled: Option<(chrono::NaiveDate, Option<DateTime<Utc>>)>,
    /// 反馈时间: the first return visit.
    pub visited_at: Option<DateTime<Utc>>,
    /// 回访方式: the return visit's first enum field.
    pub visit_method: Option<Choice>,
    /// 评议结果: the last review.
    pub review: Option<ReviewOutcome>,
    /// 是否超期, as of the page's time.
    pub overdue: bool,
    /// 办结时间.
    pub closed_at: Option<DateTime<Utc>>,
    /// 佐证材料: the files its steps cite, each once, in the order first cited.
    pub evidence: Vec<EvidenceFile>,
}

/// Which cases: those of ratings given in `from..to` (by rating time), in a unit's subtree.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub unit: Option<String>,
    /// Only cases in this state.
    pub state: Option<String>,
    /// Only cases past (true) or within (false) their deadline.
    pub overdue: Option<bool>,
}

impl Store {
    /// The next page of the ledger after the case `after` (by id), at most `limit` rows, as of `now`
    /// (for 是否超期); the last id of the page is the next `after`. Unit names come from the cached
    /// organization tree.
    pub async fn ledger_page(
        &self,
        engine: &Engine,
        scope: &CaseScope,
        filter: &LedgerFilter,
        after: Option<Uuid>,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<(Vec<LedgerEntry>, Option<Uuid>)> {
        let mut cond = Condition::all().add(scope.condition());
        if let Some(unit) = &filter.unit {
            cond = cond.add(self.reach(unit).await?.case_condition());
        }
        if filter.from.is_some() || filter.to.is_some() {
            cond = cond.add(crate::scope::rated_in(filter.from, filter.to));
        }
        if let Some(state) = &filter.state {
            cond = cond.add(case::Column::State.eq(state.clone()));
        }
        if let Some(overdue) = filter.overdue {
            cond = cond.add(crate::scope::overdue_at(overdue, now));
        }
        if let Some(after) = after {
            cond = cond.add(case::Column::Id.gt(after));
        }
        // Only the columns the ledger shows, the case's and its rating's in one query: a rating's staff
        // and indicators (JSON) and a case's timers are not parsed for nothing.
        let cases: Vec<LedgerCase> = case::Entity::find()
            .select_only()
            .columns([
                case::Column::Id,
                case::Column::WorkflowId,
                case::Column::State,
                case::Column::UnitCode,
                case::Column::OriginUnit,
                case::Column::Deadline,
                case::Column::Overdue,
                case::Column::ClosedAt,
                case::Column::ScheduledDue,
                case::Column::ScheduledDoneAt,
            ])
            .columns([
                rating::Column::ProjectNo,
                rating::Column::ServiceName,
                rating::Column::Level,
                rating::Column::Channel,
                rating::Column::RatedAt,
            ])
            .join(JoinType::InnerJoin, crate::cases::rating_of_case())
            .filter(cond)
            .order_by_asc(case::Column::Id)
            .limit(limit)
            .into_model()
            .all(&self.db)
            .await?;
        let last = cases.last().map(|c| c.id);
        if cases.is_empty() {
            return Ok((Vec::new(), last));
        }
        let mut events: HashMap<Uuid, Vec<LedgerEvent>> = HashMap::new();
        for e in event::Entity::find()
            .select_only()
            .columns([
                event::Column::CaseId,
                event::Column::Seq,
                event::Column::Action,
                event::Column::FromState,
                event::Column::ToState,
                event::Column::At,
                event::Column::Fields,
            ])
            .filter(event::Column::CaseId.is_in(cases.iter().map(|c| c.id)))
            // The opening event (no state before it) records the rating, not a step the ledger
            // reports: most cases of a ledger have little more, so it is not read at all.
            .filter(event::Column::FromState.is_not_null())
            .order_by_asc(event::Column::Seq)
            .into_model::<LedgerEvent>()
            .all(&self.db)
            .await?
        {
            events.entry(e.case_id).or_default().push(e);
        }
        let org = self.org().await?;
        let mut rows = Vec::with_capacity(cases.len());
        for c in &cases {
            let def = crate::cases::workflow_named(engine, c.id, &c.workflow_id)?;
            let log = events.remove(&c.id).unwrap_or_default();
            rows.push(entry(now, def, c, &log, &org)?);
        }
        Ok((rows, last))
    }
}

/// The columns of a case and of its rating the ledger reads.
#[derive(Debug, FromQueryResult)]
struct LedgerCase {
    id: Uuid,
    workflow_id: String,
    state: String,
    unit_code: Option<String>,
    origin_unit: String,
    deadline: Option<DateTime<Utc>>,
    overdue: bool,
    closed_at: Option<DateTime<Utc>>,
    scheduled_due: Option<chrono::NaiveDate>,
    scheduled_done_at: Option<DateTime<Utc>>,
    project_no: String,
    service_name: String,
    level: Code<Level>,
    channel: Code<Channel>,
    rated_at: DateTime<Utc>,
}

/// The columns of an event the ledger reads (not its hashes).
#[derive(Debug, FromQueryResult)]
struct LedgerEvent {
    case_id: Uuid,
    seq: i64,
    action: String,
    from_state: Option<String>,
    to_state: String,
    at: DateTime<Utc>,
    fields: String,
}

/// The entry of one case from its rating and events.
fn entry(
    now: DateTime<Utc>,
    def: &WorkflowDefinition,
    c: &LedgerCase,
    log: &[LedgerEvent],
    org: &OrgTree,
) -> Result<LedgerEntry> {
    // The steps the ledger reports, found by what the workflow says an action is (its marks, its
    // effects, the state it leaves), never by its id.
    let action_of = |e: &LedgerEvent| def.action(&e.action);
    let first_where =
        |test: &dyn Fn(&ActionDef) -> bool| log.iter().find(|e| action_of(e).is_some_and(test));
    // Every step's recorded fields must be JSON (a corrupt one is an error, whichever step it is);
    // only the steps the ledger reports are read further.
    let recorded: HashMap<i64, Map<String, Value>> = log
        .iter()
        .map(|e| {
            Ok((
                e.seq,
                crate::cases::event_fields(e.case_id, e.seq, &e.fields)?,
            ))
        })
        .collect::<Result<_>>()?;
    let field = |e: &LedgerEvent, name: &str| -> Option<String> {
        recorded
            .get(&e.seq)?
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let is_enum = |k: &FieldKind| matches!(k, FieldKind::Enum { .. });
    let is_text = |k: &FieldKind| matches!(k, FieldKind::Text { .. });
    // The value of an event's first field of a kind, as a choice of its action.
    let chosen = |e: &LedgerEvent| -> Option<Choice> {
        let action = action_of(e)?;
        let f = action.first_field(is_enum)?;
        Some(Choice {
            action: action.id.clone(),
            field: f.name.clone(),
            value: field(e, &f.name)?,
        })
    };
    let unit_name = |code: &str| {
        org.unit(code)
            .map_or_else(|| code.to_owned(), |u| u.name.clone())
    };
    let accept = log.iter().find(|e| {
        e.from_state.as_deref() == Some(def.initial.as_str()) && e.to_state != def.initial
    });
    let transfer = first_where(&|a| {
        a.effects
            .iter()
            .any(|x| matches!(x, EffectDef::SetResponsibleUnit { .. }))
    });
    let rectify = first_where(&|a| a.has_mark(Mark::Rectified));
    let feedback = first_where(&|a| a.has_mark(Mark::ReturnVisited));
    let review = log.iter().rev().find_map(|e| {
        let action = action_of(e)?;
        if action.has_mark(Mark::ReviewSatisfied) {
            Some(ReviewOutcome::Satisfied(chosen(e)?))
        } else if action.has_mark(Mark::ReviewUnsatisfied) {
            Some(ReviewOutcome::Unsatisfied)
        } else if action.has_mark(Mark::ReviewTimedOut) {
            Some(ReviewOutcome::TimedOut)
        } else {
            None
        }
    });
    let measures = rectify.and_then(|e| {
        let f = action_of(e)?.first_field(is_text)?;
        field(e, &f.name)
    });
    let terminal = def.state(&c.state).is_some_and(|s| s.terminal);
    let mut evidence: Vec<EvidenceFile> = Vec::new();
    for e in log {
        let fields = recorded.get(&e.seq).cloned().unwrap_or_default();
        let cited = crate::attachments::cited_by(def, &e.action, &fields).map_err(|reason| {
            StoreError::Corrupt(format!("event {} of case {}: {reason}", e.seq, e.case_id))
        })?;
        for file in cited {
            if !evidence.iter().any(|f| f.id == file.id) {
                evidence.push(file);
            }
        }
    }
    Ok(LedgerEntry {
        case_id: c.id,
        project_no: c.project_no.clone(),
        service_name: c.service_name.clone(),
        level: *c.level,
        channel: *c.channel,
        rated_at: c.rated_at,
        workflow_id: c.workflow_id.clone(),
        state: c.state.clone(),
        unit: c.unit_code.as_deref().map(unit_name),
        origin_unit: unit_name(&c.origin_unit),
        accepted_at: accept.map(|e| e.at),
        transferred_at: transfer.map(|e| e.at),
        rectified_at: rectify.map(|e| e.at),
        measures,
        scheduled: c.scheduled_due.map(|due| (due, c.scheduled_done_at)),
        visited_at: feedback.map(|e| e.at),
        visit_method: feedback.and_then(chosen),
        review,
        overdue: !terminal && bihuan_core::reminder::is_overdue(c.overdue, c.deadline, now),
        closed_at: c.closed_at,
        evidence,
    })
}
