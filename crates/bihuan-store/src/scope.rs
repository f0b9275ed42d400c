//! What a caller may see, and the case list with its filters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::NullOrdering;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::entity::{audit, case, metric_day, rating, unit, unit_alias};
use crate::{Result, Store};

/// A unit's subtree of the organization: its units (with the outside codes mapped onto them) and the
/// 行政区划 its service centers answer for.
///
/// The tree decides for every unit the organization knows (docs/DOMAIN.md, "Scope"): a case, rating or sum
/// of a registered (or mapped) unit is in reach only when that unit is. A region code reaches only
/// what comes from units the organization does not know, routed to the center that answers for the
/// region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Unit codes, registered or mapped.
    pub units: BTreeSet<String>,
    /// The units whose ratings come to a service center of the subtree: the subtree's own units and
    /// every unit whose nearest service center up the tree (a unit with a region code, or one among
    /// the children of the unit or of one of its ancestors) is in the subtree, with their mapped codes.
    pub origins: BTreeSet<String>,
    /// Region codes of the units that carry one.
    pub regions: BTreeSet<String>,
    /// Every code the organization knows (registered and mapped), in reach or not: what a region
    /// code never reaches.
    pub known: Arc<BTreeSet<String>>,
}

/// The codes the organization knows: registered units and the outside codes mapped onto them.
fn known_codes() -> (
    sea_orm::sea_query::SelectStatement,
    sea_orm::sea_query::SelectStatement,
) {
    (
        unit::Entity::find()
            .select_only()
            .column(unit::Column::Code)
            .into_query(),
        unit_alias::Entity::find()
            .select_only()
            .column(unit_alias::Column::Code)
            .into_query(),
    )
}

impl Reach {
    /// Whether something of unit `unit` (from region `region`) is in reach.
    pub fn reaches(&self, unit: &str, region: Option<&str>) -> bool {
        self.origins.contains(unit)
            || (!self.known.contains(unit) && region.is_some_and(|r| self.regions.contains(r)))
    }

    /// `unit_col IN origins`, or `region_col IN regions` for a unit the organization does not know.
    fn condition_on(
        &self,
        unit_col: impl ColumnTrait + Copy,
        region_col: impl ColumnTrait,
    ) -> Condition {
        let (registered, mapped) = known_codes();
        Condition::any()
            .add(unit_col.is_in(self.origins.iter().cloned()))
            .add(
                Condition::all()
                    .add(region_col.is_in(self.regions.iter().cloned()))
                    .add(unit_col.not_in_subquery(registered))
                    .add(unit_col.not_in_subquery(mapped)),
            )
    }

    pub(crate) fn case_condition(&self) -> Condition {
        Condition::any()
            .add(self.condition_on(case::Column::OriginUnit, case::Column::RegionCode))
            .add(case::Column::UnitCode.is_in(self.units.iter().cloned()))
    }

    fn rating_condition(&self) -> Condition {
        self.condition_on(rating::Column::UnitCode, rating::Column::RegionCode)
    }

    pub(crate) fn metrics_condition(&self) -> Condition {
        self.condition_on(metric_day::Column::UnitCode, metric_day::Column::RegionCode)
    }
}

/// The cases a caller may see (docs/API.md, "Scope").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseScope {
    /// Admins: everything.
    All,
    /// Supervisors, center staff and viewers: cases whose origin or responsible unit is in their own
    /// unit's subtree, or whose region one of its service centers answers for.
    Units(Reach),
    /// Unit staff: the cases transferred to this unit.
    Responsible(String),
}

impl CaseScope {
    /// Whether a registered unit is one the caller may see (its subtree and the units routed to its
    /// service center; unit staff their own unit): the unit pickers and `GET /api/v1/units`.
    pub fn reaches_unit(&self, code: &str) -> bool {
        match self {
            CaseScope::All => true,
            CaseScope::Units(reach) => reach.origins.contains(code),
            CaseScope::Responsible(unit) => unit == code,
        }
    }

    /// Whether a case is visible.
    pub fn contains(&self, case: &case::Model) -> bool {
        match self {
            CaseScope::All => true,
            CaseScope::Units(reach) => {
                reach.reaches(&case.origin_unit, case.region_code.as_deref())
                    || case
                        .unit_code
                        .as_ref()
                        .is_some_and(|u| reach.units.contains(u))
            }
            CaseScope::Responsible(unit) => case.unit_code.as_deref() == Some(unit.as_str()),
        }
    }

    pub(crate) fn condition(&self) -> Condition {
        match self {
            CaseScope::All => Condition::all(),
            CaseScope::Units(reach) => reach.case_condition(),
            CaseScope::Responsible(unit) => {
                Condition::all().add(case::Column::UnitCode.eq(unit.clone()))
            }
        }
    }
}

/// Filters of the case list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases in this state.
    pub state: Option<String>,
    /// Only cases of this unit's subtree (origin or responsible).
    pub unit: Option<String>,
    /// Only cases past (true) or within (false) their deadline.
    pub overdue: Option<bool>,
    /// Opened at or after.
    pub from: Option<DateTime<Utc>>,
    /// Opened before.
    pub to: Option<DateTime<Utc>>,
    /// Only cases of ratings given at or after.
    pub rated_from: Option<DateTime<Utc>>,
    /// Only cases of ratings given before.
    pub rated_to: Option<DateTime<Utc>>,
    /// Only cases escalated (true) or not (false).
    pub escalated: Option<bool>,
    /// Only cases whose unit asked for more time and waits for the answer (true), or not (false).
    pub extension_requested: Option<bool>,
    /// Only cases not closed yet.
    pub open: bool,
    /// 1-based page.
    pub page: u64,
    /// Rows per page.
    pub per_page: u64,
}

/// Cases of ratings given in a period.
pub(crate) fn rated_in(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Condition {
    let mut period = sea_orm::sea_query::Query::select();
    period.column(rating::Column::Id).from(rating::Entity);
    if let Some(from) = from {
        period.and_where(rating::Column::RatedAt.gte(from));
    }
    if let Some(to) = to {
        period.and_where(rating::Column::RatedAt.lt(to));
    }
    Condition::all().add(case::Column::RatingId.in_subquery(period))
}

/// Cases overdue (true) or not (false) at `now`: [`bihuan_core::reminder::is_overdue`] as SQL.
pub(crate) fn overdue_at(overdue: bool, now: DateTime<Utc>) -> Condition {
    if overdue {
        Condition::any()
            .add(case::Column::Overdue.eq(true))
            .add(case::Column::Deadline.lte(now))
    } else {
        // Spelled out rather than negated: `NOT (… OR deadline <= now)` is NULL without a deadline.
        Condition::all().add(case::Column::Overdue.eq(false)).add(
            Condition::any()
                .add(case::Column::Deadline.is_null())
                .add(case::Column::Deadline.gt(now)),
        )
    }
}

impl Store {
    /// A unit's subtree: the codes of the unit, every unit below it and every outside code mapped onto
    /// one of them, and the regions those units answer for.
    pub async fn reach(&self, root: &str) -> Result<Reach> {
        Ok(self.org().await?.reach(root))
    }

    /// One page of the cases in scope that pass the filter, newest first, with their ratings, and the
    /// total count.
    pub async fn list_cases(
        &self,
        scope: &CaseScope,
        filter: &CaseFilter,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(case::Model, rating::Model)>, u64)> {
        let mut cond = Condition::all().add(scope.condition());
        if let Some(state) = &filter.state {
            cond = cond.add(case::Column::State.eq(state.clone()));
        }
        if let Some(unit) = &filter.unit {
            cond = cond.add(self.reach(unit).await?.case_condition());
        }
        if let Some(overdue) = filter.overdue {
            cond = cond.add(overdue_at(overdue, now));
        }
        if let Some(from) = filter.from {
            cond = cond.add(case::Column::OpenedAt.gte(from));
        }
        if let Some(to) = filter.to {
            cond = cond.add(case::Column::OpenedAt.lt(to));
        }
        if filter.rated_from.is_some() || filter.rated_to.is_some() {
            cond = cond.add(rated_in(filter.rated_from, filter.rated_to));
        }
        if let Some(escalated) = filter.escalated {
            cond = cond.add(case::Column::Escalated.eq(escalated));
        }
        match filter.extension_requested {
            Some(true) => cond = cond.add(case::Column::ExtensionRequestedDays.is_not_null()),
            Some(false) => cond = cond.add(case::Column::ExtensionRequestedDays.is_null()),
            None => {}
        }
        if filter.open {
            cond = cond.add(case::Column::ClosedAt.is_null());
        }
        let query = case::Entity::find().filter(cond);
        let total = query.clone().count(&self.db).await?;
        let per_page = filter.per_page.clamp(1, 500);
        let cases = query
            .order_by_desc(case::Column::OpenedAt)
            .order_by_desc(case::Column::Id)
            .offset(filter.page.saturating_sub(1).saturating_mul(per_page))
            .limit(per_page)
            .all(&self.db)
            .await?;
        let rows = self.with_ratings(cases).await?;
        Ok((rows, total))
    }

    /// The open cases in scope that wait in one of `states` ((workflow, state) pairs), nearest
    /// deadline first (those without one last), at most `limit`, with the count of all of them.
    pub async fn todo_cases(
        &self,
        scope: &CaseScope,
        states: &BTreeSet<(String, String)>,
        limit: u64,
    ) -> Result<(Vec<(case::Model, rating::Model)>, u64)> {
        if states.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let waiting = states
            .iter()
            .fold(Condition::any(), |any, (workflow, state)| {
                any.add(
                    Condition::all()
                        .add(case::Column::WorkflowId.eq(workflow.clone()))
                        .add(case::Column::State.eq(state.clone())),
                )
            });
        let query = case::Entity::find()
            .filter(scope.condition())
            .filter(case::Column::ClosedAt.is_null())
            .filter(waiting);
        let total = query.clone().count(&self.db).await?;
        let cases = query
            .order_by_with_nulls(case::Column::Deadline, Order::Asc, NullOrdering::Last)
            .order_by_asc(case::Column::OpenedAt)
            .order_by_asc(case::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok((self.with_ratings(cases).await?, total))
    }

    /// Cases paired with their ratings, loaded in one query.
    async fn with_ratings(
        &self,
        cases: Vec<case::Model>,
    ) -> Result<Vec<(case::Model, rating::Model)>> {
        let ratings: BTreeMap<Uuid, rating::Model> = rating::Entity::find()
            .filter(rating::Column::Id.is_in(cases.iter().map(|c| c.rating_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        Ok(cases
            .into_iter()
            .filter_map(|c| ratings.get(&c.rating_id).cloned().map(|r| (c, r)))
            .collect())
    }

    /// Up to `n` closed cases in scope that no one has audited yet, with their ratings: those the
    /// rater came back to with a 差评 (追评) first, the others at random.
    pub async fn audit_sample(
        &self,
        scope: &CaseScope,
        closed_state: &str,
        n: u64,
    ) -> Result<Vec<(case::Model, rating::Model)>> {
        let audited = audit::Entity::find()
            .select_only()
            .column(audit::Column::CaseId)
            .into_query();
        let cases = case::Entity::find()
            .filter(scope.condition())
            .filter(case::Column::State.eq(closed_state))
            .filter(case::Column::Id.not_in_subquery(audited))
            // A closed loop the rater came back to with a 差评 (追评) is drawn first.
            .order_by(
                Expr::cust(format!(
                    "CASE WHEN EXISTS (SELECT 1 FROM follow_ups f WHERE f.case_id = cases.id \
                     AND f.negative AND f.kind = '{}') THEN 0 ELSE 1 END",
                    crate::code::StoredCode::code(crate::follow_ups::FollowUpKind::FollowUp)
                )),
                sea_orm::Order::Asc,
            )
            .order_by(Expr::cust("RANDOM()"), sea_orm::Order::Asc)
            .limit(n)
            .all(&self.db)
            .await?;
        self.with_ratings(cases).await
    }
}

impl Store {
    /// How many cases are in each state (for monitoring): `COUNT(*)` grouped by the leading column
    /// of `idx_cases_state_deadline`, so the index answers without the table.
    pub async fn case_counts_by_state(&self) -> Result<Vec<(String, i64)>> {
        Ok(case::Entity::find()
            .select_only()
            .column(case::Column::State)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(case::Column::State)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?)
    }

    /// How many outbox rows have each status (for monitoring), from `idx_outbox_status_next` alone.
    pub async fn outbox_counts_by_status(&self) -> Result<Vec<(String, i64)>> {
        use crate::entity::outbox;
        Ok(outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Status)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(outbox::Column::Status)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?)
    }
}

/// Filters of the rating list.
#[derive(Debug, Clone, Default)]
pub struct RatingFilter {
    /// Rated at or after.
    pub from: Option<DateTime<Utc>>,
    /// Rated before.
    pub to: Option<DateTime<Utc>>,
    /// Only ratings of this unit's subtree.
    pub unit: Option<String>,
    /// Only this level (identifier).
    pub level: Option<String>,
    /// Only this channel (identifier).
    pub channel: Option<String>,
    /// 1-based page.
    pub page: u64,
    /// Rows per page.
    pub per_page: u64,
}

impl CaseScope {
    fn rating_condition(&self) -> Condition {
        match self {
            CaseScope::All => Condition::all(),
            CaseScope::Units(reach) => reach.rating_condition(),
            CaseScope::Responsible(unit) => {
                Condition::all().add(rating::Column::UnitCode.eq(unit.clone()))
            }
        }
    }

    /// The metrics' sums in scope: those of the ratings the caller may see.
    pub(crate) fn metrics_condition(&self) -> Condition {
        match self {
            CaseScope::All => Condition::all(),
            CaseScope::Units(reach) => reach.metrics_condition(),
            CaseScope::Responsible(unit) => {
                Condition::all().add(metric_day::Column::UnitCode.eq(unit.clone()))
            }
        }
    }
}

impl Store {
    /// One page of the ratings in scope that pass the filter, newest first, and the total count.
    pub async fn list_ratings(
        &self,
        scope: &CaseScope,
        filter: &RatingFilter,
    ) -> Result<(Vec<rating::Model>, u64)> {
        let mut cond = Condition::all().add(scope.rating_condition());
        if let Some(from) = filter.from {
            cond = cond.add(rating::Column::RatedAt.gte(from));
        }
        if let Some(to) = filter.to {
            cond = cond.add(rating::Column::RatedAt.lt(to));
        }
        if let Some(unit) = &filter.unit {
            cond = cond.add(self.reach(unit).await?.rating_condition());
        }
        if let Some(level) = &filter.level {
            cond = cond.add(rating::Column::Level.eq(level.clone()));
        }
        if let Some(channel) = &filter.channel {
            cond = cond.add(rating::Column::Channel.eq(channel.clone()));
        }
        let query = rating::Entity::find().filter(cond);
        let total = query.clone().count(&self.db).await?;
        let per_page = filter.per_page.clamp(1, 500);
        let items = query
            .order_by_desc(rating::Column::RatedAt)
            .order_by_desc(rating::Column::Id)
            .offset(filter.page.saturating_sub(1).saturating_mul(per_page))
            .limit(per_page)
            .all(&self.db)
            .await?;
        Ok((items, total))
    }
}

/// A unit code that ratings name but the organization does not have yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedUnit {
    /// The code as sent.
    pub unit_code: String,
    /// Ratings naming it.
    pub ratings: i64,
    /// Of which negative.
    pub negative: i64,
}

impl Store {
    /// The unit codes of stored ratings that are neither registered units nor mapped onto one, most
    /// ratings first.
    pub async fn unmapped_units(&self) -> Result<Vec<UnmappedUnit>> {
        let (registered, mapped) = known_codes();
        let rows = rating::Entity::find()
            .select_only()
            .column(rating::Column::UnitCode)
            .column_as(rating::Column::Id.count(), "n")
            .column_as(
                Expr::cust("SUM(CASE WHEN negative THEN 1 ELSE 0 END)"),
                "neg",
            )
            .filter(rating::Column::UnitCode.not_in_subquery(registered))
            .filter(rating::Column::UnitCode.not_in_subquery(mapped))
            .group_by(rating::Column::UnitCode)
            .order_by(Expr::cust("COUNT(*)"), sea_orm::Order::Desc)
            .order_by_asc(rating::Column::UnitCode)
            .into_tuple::<(String, i64, i64)>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(unit_code, ratings, negative)| UnmappedUnit {
                unit_code,
                ratings,
                negative,
            })
            .collect())
    }
}
