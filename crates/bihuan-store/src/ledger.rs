//! The case ledger (差评整改台账): one row per case with what a town office sends upward, read a page
//! at a time so an export of any size runs in constant memory.

use std::collections::HashMap;

use bihuan_core::rating::{Channel, Level};
use bihuan_core::workflow::{ActionDef, EffectDef, FieldKind, Mark};
use bihuan_core::{Engine, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cases::workflow_of;
use crate::entity::{case, event, rating, unit};
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// The ledger's columns, in order.
pub const LEDGER_HEADERS: [&str; 18] = [
    "办件编号",
    "事项名称",
    "评价等级",
    "评价渠道",
    "评价时间",
    "承办单位",
    "当前状态",
    "受理时间",
    "转办时间",
    "整改时间",
    "整改措施",
    "反馈时间",
    "回访方式",
    "评议结果",
    "是否超期",
    "办结时间",
    "评价单位",
    "工单编号",
];

/// One row of the ledger, in the order of [`LEDGER_HEADERS`].
pub type LedgerRow = Vec<String>;

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
    /// (for 是否超期); the last id of the page is the next `after`.
    pub async fn ledger_page(
        &self,
        engine: &Engine,
        scope: &CaseScope,
        filter: &LedgerFilter,
        after: Option<Uuid>,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<(Vec<LedgerRow>, Option<Uuid>)> {
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
        let cases = case::Entity::find()
            .filter(cond)
            .order_by_asc(case::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let last = cases.last().map(|c| c.id);
        if cases.is_empty() {
            return Ok((Vec::new(), last));
        }
        let ratings: HashMap<Uuid, rating::Model> = rating::Entity::find()
            .filter(rating::Column::Id.is_in(cases.iter().map(|c| c.rating_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut events: HashMap<Uuid, Vec<event::Model>> = HashMap::new();
        for e in event::Entity::find()
            .filter(event::Column::CaseId.is_in(cases.iter().map(|c| c.id)))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await?
        {
            events.entry(e.case_id).or_default().push(e);
        }
        let units: HashMap<String, String> = unit::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.code, u.name))
            .collect();
        let mut rows = Vec::with_capacity(cases.len());
        for c in &cases {
            let r = ratings
                .get(&c.rating_id)
                .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", c.id)))?;
            let def = workflow_of(engine, c)?;
            let log = events.remove(&c.id).unwrap_or_default();
            rows.push(row(now, engine, def, c, r, &log, &units)?);
        }
        Ok((rows, last))
    }
}

fn row(
    now: DateTime<Utc>,
    engine: &Engine,
    def: &WorkflowDefinition,
    c: &case::Model,
    r: &rating::Model,
    log: &[event::Model],
    units: &HashMap<String, String>,
) -> Result<LedgerRow> {
    let tz = engine.calendar().tz();
    let time = |at: DateTime<Utc>| at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    // The steps the ledger reports, found by what the workflow says an action is (its marks, its
    // effects, the state it leaves), never by its id.
    let action_of = |e: &event::Model| def.action(&e.action);
    let first_where =
        |test: &dyn Fn(&ActionDef) -> bool| log.iter().find(|e| action_of(e).is_some_and(test));
    let recorded: HashMap<i64, Map<String, Value>> = log
        .iter()
        .map(|e| Ok((e.seq, crate::cases::event_fields(e)?)))
        .collect::<Result<_>>()?;
    let field = |e: &event::Model, name: &str| -> Option<String> {
        recorded
            .get(&e.seq)?
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // The label of an enum field's value as the action records it.
    let option_label = |action: Option<&ActionDef>, field: &str, value: &str| -> String {
        action
            .and_then(|a| a.field(field))
            .and_then(|f| match &f.kind {
                FieldKind::Enum { options } => options.iter().find(|o| o.value == value),
                _ => None,
            })
            .map_or_else(|| value.to_owned(), |o| o.label.clone())
    };
    let is_enum = |k: &FieldKind| matches!(k, FieldKind::Enum { .. });
    let is_text = |k: &FieldKind| matches!(k, FieldKind::Text { .. });
    let at = |e: Option<&event::Model>| e.map(|e| time(e.at)).unwrap_or_default();
    let unit_name = |code: &str| units.get(code).cloned().unwrap_or_else(|| code.to_owned());
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
            let level = action.first_field(is_enum)?;
            let value = field(e, &level.name).unwrap_or_default();
            Some(option_label(Some(action), &level.name, &value))
        } else if action.has_mark(Mark::ReviewUnsatisfied) {
            Some("不满意".to_owned())
        } else if action.has_mark(Mark::ReviewTimedOut) {
            Some("评议超时".to_owned())
        } else {
            None
        }
    });
    let text = |e: Option<&event::Model>, name: &str| -> String {
        e.and_then(|e| field(e, name)).unwrap_or_default()
    };
    let feedback_action = feedback.and_then(action_of);
    let method_field = feedback_action
        .and_then(|a| a.first_field(is_enum))
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let method = text(feedback, &method_field);
    let measures_field = rectify
        .and_then(action_of)
        .and_then(|a| a.first_field(is_text))
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let terminal = def.state(&c.state).is_some_and(|s| s.terminal);
    let overdue = !terminal && bihuan_core::reminder::is_overdue(c.overdue, c.deadline, now);
    let corrupt = |what: &str, value: &str| {
        StoreError::Corrupt(format!("rating {}: stored {what} {value:?}", r.id))
    };
    let level = r
        .level
        .parse::<Level>()
        .map_err(|_| corrupt("level", &r.level))?;
    let channel = r
        .channel
        .parse::<Channel>()
        .map_err(|_| corrupt("channel", &r.channel))?;
    Ok(vec![
        r.project_no.clone(),
        r.service_name.clone(),
        level.label().to_owned(),
        channel.label().to_owned(),
        time(r.rated_at),
        c.unit_code.as_deref().map(unit_name).unwrap_or_default(),
        def.state(&c.state)
            .map_or_else(|| c.state.clone(), |s| s.label.clone()),
        at(accept),
        at(transfer),
        at(rectify),
        text(rectify, &measures_field),
        at(feedback),
        if method.is_empty() {
            method
        } else {
            option_label(feedback_action, &method_field, &method)
        },
        review.unwrap_or_default(),
        if overdue { "是" } else { "否" }.to_owned(),
        c.closed_at.map(time).unwrap_or_default(),
        unit_name(&c.origin_unit),
        c.id.to_string(),
    ])
}
