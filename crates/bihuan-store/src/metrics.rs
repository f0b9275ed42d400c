//! The metrics' per-day sums (`metric_days`): kept up to date by every stored rating and every action
//! in its own transaction (the difference of the case's counts before and after), queried by period,
//! scope and grouping, and recomputed from the raw rows by [`Store::rebuild_metrics`].

use std::collections::{BTreeMap, HashMap};

use bihuan_core::metrics::{CaseRecord, Counts, case_counts, rating_counts};
use bihuan_core::rating::{Channel, Rating};
use bihuan_core::{Engine, Step, WorkflowDefinition};
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

/// What a checked rating counts for, and (when it opens one) its case at opening.
pub(crate) fn counts_of_new_rating(r: &Rating, opens_case: bool) -> Counts {
    let mut counts = rating_counts(r.level, r.channel);
    if opens_case {
        counts += opened_case_counts(r.rater.real_name);
    }
    counts
}

/// What a case just opened counts for (it has only its opening step).
fn opened_case_counts(real_name: bool) -> Counts {
    Counts {
        cases: 1,
        valid: 1,
        real_name: i64::from(real_name),
        open: 1,
        ..Counts::default()
    }
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

/// What a case counts for, from its stored events.
pub(crate) fn counts_of_case(
    engine: &Engine,
    def: &WorkflowDefinition,
    events: &[event::Model],
    real_name: bool,
    overdue: bool,
) -> Result<Counts> {
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
        },
    ))
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
/// statement for many cases).
pub(crate) fn add_case_change(
    sums: &mut DaySums,
    engine: &Engine,
    case: &case::Model,
    rating: &rating::Model,
    before: (&[event::Model], bool),
    after: (&[event::Model], bool),
) -> Result<()> {
    let def = workflow_of(engine, case)?;
    let delta = counts_of_case(engine, def, after.0, rating.rater_real_name, after.1)?
        - counts_of_case(engine, def, before.0, rating.rater_real_name, before.1)?;
    if !delta.is_zero() {
        add(
            sums,
            DayKey::of_row(engine, rating),
            &rating.service_name,
            delta,
        );
    }
    Ok(())
}

/// How the metrics are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row, `"all"`.
    All,
    /// By rated unit (outside codes mapped onto their unit count with it).
    Unit,
    /// By month of rating, `YYYY-MM`.
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
        let read = rebuild_in(&txn, engine).await?;
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
        let (ratings, cases) = rebuild_in(&txn, engine).await?;
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

/// The revision of the counts the sums hold (`metric_revision`): raised whenever
/// `bihuan_core::metrics::Counts` gains a count, so that sums counted before are rebuilt.
/// 2: `reached_feedback`, `unreachable`, `center_handled` and `center_timely` (migration 14).
pub const METRICS_REVISION: i32 = 2;

/// Recomputes every sum from the raw rows in `txn`; answers the ratings and cases read.
async fn rebuild_in(txn: &DatabaseTransaction, engine: &Engine) -> Result<(u64, u64)> {
    const PAGE: u64 = 10_000;
    metric_delta::Entity::delete_many().exec(txn).await?;
    metric_detail::Entity::delete_many().exec(txn).await?;
    metric_day::Entity::delete_many().exec(txn).await?;
    let mut sums = DaySums::new();
    let mut ratings_read = 0;
    let mut real_names: HashMap<Uuid, (DayKey, String, bool)> = HashMap::new();
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
                real_names.insert(r.id, (key, r.service_name.clone(), r.rater_real_name));
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
            let (key, name, real_name) =
                real_names.get(&c.rating_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("case {} has no negative rating", c.id))
                })?;
            let log = events.remove(&c.id).unwrap_or_default();
            add(
                &mut sums,
                key,
                &name,
                counts_of_case(engine, def, &log, real_name, c.overdue)?,
            );
            cases_read += 1;
        }
    }
    add_to_sums(txn, sums).await?;
    Ok((ratings_read, cases_read))
}
