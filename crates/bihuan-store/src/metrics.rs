//! The metrics' per-day sums (`metric_days`): kept up to date by every stored rating and every action
//! in its own transaction (the difference of the case's counts before and after), queried by period,
//! scope and grouping, and recomputed from the raw rows by [`Store::rebuild_metrics`].

use std::collections::{BTreeMap, HashMap};

use bihuan_core::metrics::{
    CaseCounts, CasePart, CaseRecord, Counts, Owner, case_counts, opened_case_counts, rating_counts,
};
use bihuan_core::rating::{Channel, Rating};
use bihuan_core::{Engine, NEGATIVE_RATING, Step, WorkflowDefinition};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cases::workflow_of;
use crate::code::Code;
use crate::entity::{
    case, event, metric_day, metric_delta, metric_detail, rating, unit, unit_alias,
};
use crate::org_tree::OrgTree;
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// The key of one row of `metric_days`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DayKey {
    day: String,
    unit_code: String,
    region_code: String,
    channel: Code<Channel>,
    service_code: String,
}

/// Sums per key, with the service's name.
pub(crate) type DaySums = BTreeMap<DayKey, (String, Counts)>;

impl DayKey {
    fn new(
        engine: &Engine,
        rated_at: DateTime<Utc>,
        unit: &str,
        region: &str,
        channel: Channel,
        service: &str,
    ) -> Self {
        Self::of_day(
            engine.calendar().local_date(rated_at),
            unit,
            region,
            channel,
            service,
        )
    }

    /// The key of a local day and the rating's unit, region, channel and service.
    pub(crate) fn of_day(
        day: NaiveDate,
        unit: &str,
        region: &str,
        channel: Channel,
        service: &str,
    ) -> Self {
        Self {
            day: day.format("%Y-%m-%d").to_string(),
            unit_code: unit.to_owned(),
            region_code: region.to_owned(),
            channel: Code(channel),
            service_code: service.to_owned(),
        }
    }

    /// The key of a stored rating.
    pub(crate) fn of_row(engine: &Engine, r: &rating::Model) -> Self {
        Self::new(
            engine,
            r.rated_at,
            &r.unit_code,
            &r.region_code,
            *r.channel,
            &r.service_code,
        )
    }

    /// The key of a checked rating about to be stored.
    pub(crate) fn of_rating(engine: &Engine, r: &Rating) -> Self {
        Self::new(
            engine,
            r.rated_at,
            &r.unit_code,
            &r.region_code,
            r.channel,
            &r.service_code,
        )
    }
}

/// Adds `counts` under `key`.
pub(crate) fn add(sums: &mut DaySums, key: DayKey, service_name: &str, counts: Counts) {
    sums.entry(key)
        .or_insert_with(|| (service_name.to_owned(), Counts::default()))
        .1 += counts;
}

/// The key a part of a case's counts is summed under: its rating's region, channel and service, the
/// part's day, and the code of the part's owner (the rated unit, the case's center, or its 承办单位).
fn part_key(rated: &DayKey, center: &str, part: &CasePart) -> DayKey {
    DayKey {
        day: part.day.format("%Y-%m-%d").to_string(),
        unit_code: match &part.owner {
            Owner::Rated => rated.unit_code.clone(),
            Owner::Center => center.to_owned(),
            Owner::Unit(unit) => unit.clone(),
        },
        region_code: rated.region_code.clone(),
        channel: rated.channel,
        service_code: rated.service_code.clone(),
    }
}

/// Adds the parts of a case's counts (subtracts them when `negate`) to `sums`; `rated` is its
/// rating's key.
fn add_parts(
    sums: &mut DaySums,
    rated: &DayKey,
    service_name: &str,
    center: &str,
    counts: &CaseCounts,
    negate: bool,
) {
    for part in &counts.parts {
        let c = if negate {
            Counts::default() - part.counts
        } else {
            part.counts
        };
        add(sums, part_key(rated, center, part), service_name, c);
    }
}

/// Adds what a checked rating about to be stored counts for, with its case when it opens one (then
/// `case` is the center that owns it and when it opens).
pub(crate) fn add_new_rating(
    sums: &mut DaySums,
    engine: &Engine,
    r: &Rating,
    case: Option<(&str, DateTime<Utc>)>,
) -> Result<()> {
    if let Some((center, at)) = case {
        add_new_case(sums, engine, r, center, at)?;
    }
    add(
        sums,
        DayKey::of_rating(engine, r),
        &r.service_name,
        rating_counts(r.level, r.channel),
    );
    Ok(())
}

/// Adds what the case a rating opens at `at`, owned by `center`, counts for (the rating aside).
pub(crate) fn add_new_case(
    sums: &mut DaySums,
    engine: &Engine,
    r: &Rating,
    center: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let def = engine
        .workflow(NEGATIVE_RATING)
        .ok_or_else(|| StoreError::Corrupt(format!("workflow {NEGATIVE_RATING} is not loaded")))?;
    let cal = engine.calendar();
    let opened = opened_case_counts(def, cal, at, cal.local_date(r.rated_at), r.rater.real_name);
    let rated = DayKey::of_rating(engine, r);
    add_parts(sums, &rated, &r.service_name, center, &opened, false);
    Ok(())
}

/// Rows of a sums table from sums: the key columns are set from `k` (and the service's `name`); zero
/// sums are left out.
macro_rules! rows_of {
    ($entity:ident, $sums:expr, |$k:ident, $name:pat_param| { $($col:ident: $val:expr),* $(,)? } $(, $rest:tt)?) => {
        $sums
            .into_iter()
            .filter(|(_, (_, c))| !c.is_zero())
            .map(|($k, ($name, c))| $entity::ActiveModel {
                $($col: Set($val),)*
                ratings: Set(c.ratings),
                negative: Set(c.negative),
                positive: Set(c.positive),
                active: Set(c.active),
                cases: Set(c.cases),
                valid: Set(c.valid),
                rectified: Set(c.rectified),
                due: Set(c.due),
                on_time: Set(c.on_time),
                real_name: Set(c.real_name),
                visited: Set(c.visited),
                reviewed: Set(c.reviewed),
                satisfied: Set(c.satisfied),
                open: Set(c.open),
                overdue: Set(c.overdue),
                rectify_days: Set(c.rectify_days),
                closed: Set(c.closed),
                close_days: Set(c.close_days),
                reached_feedback: Set(c.reached_feedback),
                unreachable: Set(c.unreachable),
                center_handled: Set(c.center_handled),
                center_timely: Set(c.center_timely),
                valid_rated: Set(c.valid_rated),
                $(..$rest::default())?
            })
            .collect::<Vec<_>>()
    };
}

/// The sums as rows of `metric_deltas`.
pub(crate) fn delta_rows(sums: DaySums) -> Vec<metric_delta::ActiveModel> {
    rows_of!(metric_delta, sums, |k, name| {
        day: k.day,
        unit_code: k.unit_code,
        region_code: k.region_code,
        channel: k.channel,
        service_code: k.service_code,
        service_name: name,
    }, Default)
}

/// Records what a transaction adds to the metrics (ORM path): insert-only rows, so no writer waits on
/// another's; the scheduler folds them into the sums ([`Store::compact_metrics`]).
pub(crate) async fn add_deltas(db: &impl ConnectionTrait, sums: DaySums) -> Result<()> {
    let rows = delta_rows(sums);
    for chunk in rows.chunks(500) {
        metric_delta::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// `ON CONFLICT (key) DO UPDATE SET n = table.n + excluded.n, …`.
fn adding<C: sea_orm::sea_query::IntoIden>(
    table: &str,
    key: impl IntoIterator<Item = C>,
) -> OnConflict {
    let mut conflict = OnConflict::columns(key);
    for name in Counts::NAMES {
        conflict.value(
            Alias::new(*name),
            Expr::cust(format!("{table}.{name} + excluded.{name}")),
        );
    }
    conflict
}

/// Adds sums to `metric_details` and, without channel and service, to `metric_days`.
async fn add_to_sums(db: &impl ConnectionTrait, sums: DaySums) -> Result<()> {
    let mut coarse: BTreeMap<(String, String, String), ((), Counts)> = BTreeMap::new();
    for (k, (_, c)) in &sums {
        coarse
            .entry((k.day.clone(), k.unit_code.clone(), k.region_code.clone()))
            .or_insert(((), Counts::default()))
            .1 += *c;
    }
    let details = rows_of!(metric_detail, sums, |k, name| {
        day: k.day,
        unit_code: k.unit_code,
        region_code: k.region_code,
        channel: k.channel,
        service_code: k.service_code,
        service_name: name,
    });
    for chunk in details.chunks(500) {
        metric_detail::Entity::insert_many(chunk.to_vec())
            .on_conflict(adding(
                "metric_details",
                [
                    metric_detail::Column::Day,
                    metric_detail::Column::UnitCode,
                    metric_detail::Column::RegionCode,
                    metric_detail::Column::Channel,
                    metric_detail::Column::ServiceCode,
                ],
            ))
            .exec_without_returning(db)
            .await?;
    }
    let days = rows_of!(metric_day, coarse, |k, ()| {
        day: k.0,
        unit_code: k.1,
        region_code: k.2,
    });
    for chunk in days.chunks(500) {
        metric_day::Entity::insert_many(chunk.to_vec())
            .on_conflict(adding(
                "metric_days",
                [
                    metric_day::Column::Day,
                    metric_day::Column::UnitCode,
                    metric_day::Column::RegionCode,
                ],
            ))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// A case's event log as the metrics read it.
pub(crate) fn steps_of<'a>(
    events: &'a [event::Model],
    fields: &'a [Map<String, Value>],
) -> Vec<Step<'a>> {
    events
        .iter()
        .zip(fields)
        .map(|(e, f)| Step {
            action: &e.action,
            from: e.from_state.as_deref(),
            to: &e.to_state,
            at: e.at,
            fields: f,
        })
        .collect()
}

/// What a case counts for, from its stored events; `day` is its rating's local day.
pub(crate) fn counts_of_case(
    engine: &Engine,
    def: &WorkflowDefinition,
    events: &[event::Model],
    real_name: bool,
    overdue: bool,
    day: NaiveDate,
) -> Result<CaseCounts> {
    let fields: Vec<Map<String, Value>> = events
        .iter()
        .map(|e| crate::cases::event_fields(e.case_id, e.seq, &e.fields))
        .collect::<Result<_>>()?;
    let steps = steps_of(events, &fields);
    Ok(case_counts(
        def,
        engine.calendar(),
        &CaseRecord {
            steps: &steps,
            real_name,
            overdue,
            day,
        },
    ))
}

/// The service center a case's counts go to while it was never transferred.
fn center_of(case: &case::Model) -> Result<&str> {
    case.center_code.as_deref().ok_or_else(|| {
        StoreError::Corrupt(format!(
            "case {} has no service center recorded (center_code): run `bihuan metrics rebuild`",
            case.id
        ))
    })
}

/// Adds to the sums the difference a change of a case made (its events and overdue mark before and
/// after), in the caller's transaction.
pub(crate) async fn record_case_change(
    db: &impl ConnectionTrait,
    engine: &Engine,
    case: &case::Model,
    rating: &rating::Model,
    before: (&[event::Model], bool),
    after: (&[event::Model], bool),
) -> Result<()> {
    let mut sums = DaySums::new();
    add_case_change(&mut sums, engine, case, rating, before, after)?;
    if sums.is_empty() {
        return Ok(());
    }
    add_deltas(db, sums).await
}

/// Adds the difference a change of a case made to `sums` (to be written with [`add_deltas`], one
/// statement for many cases): its counts after, less its counts before, part by part (a transfer
/// moves the case's counts from the center to the unit).
pub(crate) fn add_case_change(
    sums: &mut DaySums,
    engine: &Engine,
    case: &case::Model,
    rating: &rating::Model,
    before: (&[event::Model], bool),
    after: (&[event::Model], bool),
) -> Result<()> {
    let def = workflow_of(engine, case)?;
    let center = center_of(case)?;
    let rated = DayKey::of_row(engine, rating);
    let day = engine.calendar().local_date(rating.rated_at);
    let real_name = rating.rater_real_name;
    let mut change = DaySums::new();
    let counts_after = counts_of_case(engine, def, after.0, real_name, after.1, day)?;
    let counts_before = counts_of_case(engine, def, before.0, real_name, before.1, day)?;
    add_parts(
        &mut change,
        &rated,
        &rating.service_name,
        center,
        &counts_after,
        false,
    );
    add_parts(
        &mut change,
        &rated,
        &rating.service_name,
        center,
        &counts_before,
        true,
    );
    for (key, (name, counts)) in change {
        if !counts.is_zero() {
            add(sums, key, &name, counts);
        }
    }
    Ok(())
}

/// How the metrics are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row, `"all"`.
    All,
    /// By unit: rating figures by the rated unit, case figures by the unit that owned the step (outside
    /// codes mapped onto a unit count with it).
    Unit,
    /// By month, `YYYY-MM`: of the rating (按期整改率 of the day its deadline fell).
    Month,
    /// By channel.
    Channel,
    /// By service item.
    Service,
}

impl GroupBy {
    /// The grouping named in a query (`unit`, `month`, `channel`, `service`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "all" => Some(GroupBy::All),
            "unit" => Some(GroupBy::Unit),
            "month" => Some(GroupBy::Month),
            "channel" => Some(GroupBy::Channel),
            "service" => Some(GroupBy::Service),
            _ => None,
        }
    }
}

/// A metrics query: ratings of `from..=to` (local dates), in the caller's scope and optionally one
/// unit's subtree, grouped.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub unit: Option<String>,
    pub group_by: GroupBy,
}

/// One group's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRow {
    /// The group's key: `all`, a unit code, `YYYY-MM`, a channel or a service code.
    pub group: String,
    /// Its name for people: the unit's or service's name, the channel's label.
    pub label: String,
    pub counts: Counts,
}

impl Store {
    /// The metrics' counts per group: the per-day sums plus what was added since they were last folded.
    pub async fn metrics(&self, scope: &CaseScope, q: &MetricsQuery) -> Result<Vec<MetricsRow>> {
        let mut merged: BTreeMap<String, (String, Counts)> = BTreeMap::new();
        for deltas in [false, true] {
            for (g, name, counts) in self.grouped_sums(scope, q, deltas).await? {
                let entry = merged.entry(g).or_insert_with(|| (name, Counts::default()));
                entry.1 += counts;
            }
        }
        let rows = merged
            .into_iter()
            .map(|(g, (name, c))| (g, name, c))
            .collect();
        self.label_groups(q.group_by, rows).await
    }

    /// One table's sums per group: `metric_days` (totals, units, months) or `metric_details` (channels,
    /// services), or the deltas not folded yet.
    async fn grouped_sums(
        &self,
        scope: &CaseScope,
        q: &MetricsQuery,
        deltas: bool,
    ) -> Result<Vec<(String, String, Counts)>> {
        let group = match q.group_by {
            GroupBy::All => "'all'",
            GroupBy::Unit => "unit_code",
            GroupBy::Month => "SUBSTR(day, 1, 7)",
            GroupBy::Channel => "channel",
            GroupBy::Service => "service_code",
        };
        // Every table is read under the name `metric_days`, so one set of conditions serves all.
        let detailed = matches!(q.group_by, GroupBy::Channel | GroupBy::Service);
        let mut select = Query::select();
        if deltas {
            select.from_as(metric_delta::Entity, Alias::new("metric_days"));
        } else if detailed {
            select.from_as(metric_detail::Entity, Alias::new("metric_days"));
        } else {
            select.from(metric_day::Entity);
        }
        let service_name = if deltas || detailed {
            "COALESCE(MAX(service_name), '')"
        } else {
            "''"
        };
        select
            .expr_as(Expr::cust(group), Alias::new("g"))
            .expr_as(Expr::cust(service_name), Alias::new("service_name"));
        for name in Counts::NAMES {
            select.expr_as(
                Expr::cust(format!("COALESCE(CAST(SUM({name}) AS BIGINT), 0)")),
                Alias::new(*name),
            );
        }
        if let Some(from) = q.from {
            select.and_where(metric_day::Column::Day.gte(from.format("%Y-%m-%d").to_string()));
        }
        if let Some(to) = q.to {
            select.and_where(metric_day::Column::Day.lte(to.format("%Y-%m-%d").to_string()));
        }
        select.cond_where(scope.metrics_condition());
        if let Some(unit) = &q.unit {
            select.cond_where(self.reach(unit).await?.metrics_condition());
        }
        if q.group_by != GroupBy::All {
            select.add_group_by([Expr::cust(group)]);
        }
        let found = self.db.query_all(&select).await?;
        let mut rows = Vec::with_capacity(found.len());
        for row in found {
            let g: String = row.try_get("", "g")?;
            let name: String = row.try_get("", "service_name")?;
            let mut values = Vec::with_capacity(Counts::NAMES.len());
            for n in Counts::NAMES {
                values.push(row.try_get::<i64>("", n)?);
            }
            rows.push((g, name, Counts::from_values(&values)));
        }
        Ok(rows)
    }

    /// Folds the added rows into `metric_days`, a bounded batch per transaction; returns how many rows
    /// were folded. Each batch is taken with `DELETE … RETURNING`, so two processes folding at once
    /// never count a row twice.
    pub async fn compact_metrics(&self) -> Result<u64> {
        const BATCH: u64 = 20_000;
        let columns = format!(
            "day, unit_code, region_code, channel, service_code, service_name, {}",
            Counts::NAMES.join(", ")
        );
        let sql = format!(
            "DELETE FROM metric_deltas WHERE id IN \
             (SELECT id FROM metric_deltas ORDER BY id LIMIT {BATCH}) RETURNING {columns}"
        );
        let mut folded = 0;
        loop {
            let txn = self.begin_write().await?;
            let taken = txn
                .query_all_raw(sea_orm::Statement::from_string(
                    self.db.get_database_backend(),
                    sql.clone(),
                ))
                .await?;
            if taken.is_empty() {
                drop(txn);
                self.after_fold(folded).await?;
                return Ok(folded);
            }
            let mut sums = DaySums::new();
            for row in &taken {
                let key = DayKey {
                    day: row.try_get("", "day")?,
                    unit_code: row.try_get("", "unit_code")?,
                    region_code: row.try_get("", "region_code")?,
                    channel: row.try_get("", "channel")?,
                    service_code: row.try_get("", "service_code")?,
                };
                let name: String = row.try_get("", "service_name")?;
                let mut values = Vec::with_capacity(Counts::NAMES.len());
                for n in Counts::NAMES {
                    values.push(row.try_get::<i64>("", n)?);
                }
                add(&mut sums, key, &name, Counts::from_values(&values));
            }
            add_to_sums(&txn, sums).await?;
            txn.commit().await?;
            folded += taken.len() as u64;
            if (taken.len() as u64) < BATCH {
                self.after_fold(folded).await?;
                return Ok(folded);
            }
        }
    }

    /// After a large fold (an import's worth) PostgreSQL is left with the deleted deltas and the old
    /// versions of the updated sums until a vacuum; the queries scan those tables, so vacuum them now
    /// rather than whenever autovacuum comes by. Small folds (every scheduler pass) leave it to
    /// autovacuum.
    async fn after_fold(&self, folded: u64) -> Result<()> {
        const LARGE: u64 = 50_000;
        if folded >= LARGE && self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            self.db
                .execute_unprepared("VACUUM (ANALYZE) metric_deltas, metric_days, metric_details")
                .await?;
        }
        Ok(())
    }

    /// Names the groups; by unit, outside codes mapped onto a unit join it.
    async fn label_groups(
        &self,
        group_by: GroupBy,
        rows: Vec<(String, String, Counts)>,
    ) -> Result<Vec<MetricsRow>> {
        let labelled: Vec<(String, String, Counts)> = match group_by {
            GroupBy::All | GroupBy::Month => rows
                .into_iter()
                .map(|(g, _, c)| (g.clone(), g, c))
                .collect(),
            GroupBy::Service => rows,
            GroupBy::Channel => rows
                .into_iter()
                .map(|(g, _, c)| {
                    let label = g
                        .parse::<Channel>()
                        .map_or_else(|_| g.clone(), |ch| ch.label().to_owned());
                    (g, label, c)
                })
                .collect(),
            GroupBy::Unit => {
                let aliases: HashMap<String, String> = unit_alias::Entity::find()
                    .all(&self.db)
                    .await?
                    .into_iter()
                    .map(|a| (a.code, a.unit_code))
                    .collect();
                let names: HashMap<String, String> = unit::Entity::find()
                    .all(&self.db)
                    .await?
                    .into_iter()
                    .map(|u| (u.code, u.name))
                    .collect();
                let mut merged: BTreeMap<String, Counts> = BTreeMap::new();
                for (g, _, c) in rows {
                    let code = aliases.get(&g).cloned().unwrap_or(g);
                    *merged.entry(code).or_default() += c;
                }
                merged
                    .into_iter()
                    .map(|(code, c)| {
                        let label = names
                            .get(&code)
                            .cloned()
                            .unwrap_or_else(|| format!("{code}（未登记单位）"));
                        (code, label, c)
                    })
                    .collect()
            }
        };
        Ok(labelled
            .into_iter()
            .map(|(group, label, counts)| MetricsRow {
                group,
                label,
                counts,
            })
            .collect())
    }

    /// Recomputes `metric_days` from the ratings, cases and events, in one transaction; returns the
    /// number of ratings and cases read.
    pub async fn rebuild_metrics(&self, engine: &Engine) -> Result<(u64, u64)> {
        let txn = self.begin_write().await?;
        txn.execute_raw(Statement::from_string(
            txn.get_database_backend(),
            format!("UPDATE metric_revision SET revision = {METRICS_REVISION} WHERE id = 1"),
        ))
        .await?;
        let org = self.org_in(&txn).await?;
        let read = rebuild_in(&txn, engine, &org).await?;
        txn.commit().await?;
        Ok(read)
    }

    /// Rebuilds the sums when they were counted by an older revision of the counts than this code's
    /// ([`METRICS_REVISION`]); answers whether it did. Of several processes, one rebuilds: the others
    /// find the revision raised once it commits.
    pub async fn rebuild_stale_metrics(&self, engine: &Engine) -> Result<bool> {
        let stale = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT 1 AS stale FROM metric_revision WHERE id = 1 AND revision < {METRICS_REVISION}"),
            ))
            .await?
            .is_some();
        if !stale {
            return Ok(false);
        }
        let txn = self.begin_write().await?;
        let claimed = txn
            .execute_raw(Statement::from_string(
                txn.get_database_backend(),
                format!(
                    "UPDATE metric_revision SET revision = {METRICS_REVISION} \
                     WHERE id = 1 AND revision < {METRICS_REVISION}"
                ),
            ))
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        let org = self.org_in(&txn).await?;
        let (ratings, cases) = rebuild_in(&txn, engine, &org).await?;
        txn.commit().await?;
        tracing::info!(
            ratings,
            cases,
            revision = METRICS_REVISION,
            "the metric sums were rebuilt for the counts of this version"
        );
        Ok(true)
    }
}

/// Marks the sums as counted by no revision, so that the next [`Store::rebuild_stale_metrics`]
/// rebuilds them (the calendar under them changed).
pub(crate) async fn mark_stale(txn: &DatabaseTransaction) -> Result<()> {
    txn.execute_raw(Statement::from_string(
        txn.get_database_backend(),
        "UPDATE metric_revision SET revision = 0 WHERE id = 1".to_owned(),
    ))
    .await?;
    Ok(())
}

/// The revision of the counts the sums hold (`metric_revision`): raised whenever
/// `bihuan_core::metrics::Counts` gains a count, so that sums counted before are rebuilt.
/// 2: `reached_feedback`, `unreachable`, `center_handled` and `center_timely` (migration 14).
/// 3: case figures against the case's owner (its center, then its 承办单位), 按期整改率 on the day its
/// deadline fell, `valid_rated` (migration 16).
pub const METRICS_REVISION: i32 = 3;

/// Recomputes every sum from the raw rows in `txn`, after filling in the center of the cases
/// opened before it was kept; answers the ratings and cases read.
async fn rebuild_in(
    txn: &DatabaseTransaction,
    engine: &Engine,
    org: &OrgTree,
) -> Result<(u64, u64)> {
    const PAGE: u64 = 10_000;
    fill_centers(txn, org).await?;
    metric_delta::Entity::delete_many().exec(txn).await?;
    metric_detail::Entity::delete_many().exec(txn).await?;
    metric_day::Entity::delete_many().exec(txn).await?;
    let mut sums = DaySums::new();
    let mut ratings_read = 0;
    // The negative ratings, which open the cases: their keys, service names, days and raters.
    let mut negatives: HashMap<Uuid, (DayKey, String, NaiveDate, bool)> = HashMap::new();
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = rating::Entity::find()
            .order_by_asc(rating::Column::Id)
            .limit(PAGE);
        if let Some(id) = after {
            query = query.filter(rating::Column::Id.gt(id));
        }
        let page = query.all(txn).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for r in &page {
            let (level, channel) = (*r.level, *r.channel);
            let key = DayKey::of_row(engine, r);
            add(
                &mut sums,
                key.clone(),
                &r.service_name,
                rating_counts(level, channel),
            );
            if r.negative {
                let day = engine.calendar().local_date(r.rated_at);
                negatives.insert(r.id, (key, r.service_name.clone(), day, r.rater_real_name));
            }
            ratings_read += 1;
        }
    }
    let mut cases_read = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = case::Entity::find()
            .order_by_asc(case::Column::Id)
            .limit(PAGE / 10);
        if let Some(id) = after {
            query = query.filter(case::Column::Id.gt(id));
        }
        let page = query.all(txn).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let mut events: HashMap<Uuid, Vec<event::Model>> = HashMap::new();
        for e in event::Entity::find()
            .filter(event::Column::CaseId.is_in(page.iter().map(|c| c.id)))
            .order_by_asc(event::Column::Seq)
            .all(txn)
            .await?
        {
            events.entry(e.case_id).or_default().push(e);
        }
        for c in &page {
            let def = workflow_of(engine, c)?;
            let (key, name, day, real_name) = negatives.get(&c.rating_id).ok_or_else(|| {
                StoreError::Corrupt(format!("case {} has no negative rating", c.id))
            })?;
            let log = events.remove(&c.id).unwrap_or_default();
            let counts = counts_of_case(engine, def, &log, *real_name, c.overdue, *day)?;
            add_parts(&mut sums, key, name, center_of(c)?, &counts, false);
            cases_read += 1;
        }
    }
    add_to_sums(txn, sums).await?;
    Ok((ratings_read, cases_read))
}

/// Fills in the center of the cases opened before it was kept (migration 16), from the organization
/// tree: one statement per origin unit and region.
async fn fill_centers(txn: &DatabaseTransaction, org: &OrgTree) -> Result<()> {
    let origins: Vec<(String, Option<String>)> = case::Entity::find()
        .select_only()
        .column(case::Column::OriginUnit)
        .column(case::Column::RegionCode)
        .distinct()
        .filter(case::Column::CenterCode.is_null())
        .into_tuple()
        .all(txn)
        .await?;
    for (origin, region) in origins {
        let center = org.center_code(&origin, region.as_deref()).to_owned();
        let region_matches = match &region {
            Some(r) => case::Column::RegionCode.eq(r.clone()),
            None => case::Column::RegionCode.is_null(),
        };
        case::Entity::update_many()
            .col_expr(case::Column::CenterCode, Expr::value(center))
            .filter(case::Column::CenterCode.is_null())
            .filter(case::Column::OriginUnit.eq(origin))
            .filter(region_matches)
            .exec(txn)
            .await?;
    }
    Ok(())
}
