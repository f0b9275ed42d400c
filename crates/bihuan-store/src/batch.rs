//! Storing many ratings at once: one transaction per batch of the API or per imported file, one
//! multi-row statement per chunk (see `bulk`), idempotent on (source, source_id) also within one batch
//! and across racing batches, each negative rating's case opened in the same transaction as the rating.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bihuan_core::metrics::{Counts, rating_counts};

use bihuan_core::rating::{Channel, Rating};
use bihuan_core::{Engine, NEGATIVE_RATING};
use chrono::{DateTime, Utc};
use sea_orm::DbBackend;
use sea_orm::sqlx;
use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::sqlx::sqlite::SqliteArguments;
use uuid::Uuid;

use crate::bulk::{Unnest, insert_values};
use crate::clock::truncate_to_micros;
use crate::entity::{case, event, rating};
use crate::org_tree::OrgTree;
use crate::ratings::{opened_case, opening_event, to_active_model};
use crate::{Result, Store, StoreError, metrics};

/// Rows per statement on SQLite: well under its limit of 32,766 bound parameters.
const SQLITE_CHUNK: usize = 500;
/// Rows per statement on PostgreSQL, whose bulk insert binds one array per column, whatever the rows.
const POSTGRES_CHUNK: usize = 5000;

/// What a batch or an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ratings stored now.
    pub inserted: usize,
    /// Ratings whose (source, source_id) was stored before, or earlier in the same batch.
    pub duplicates: usize,
    /// Cases opened.
    pub cases_opened: usize,
}

impl BatchOutcome {
    fn add(&mut self, offered: usize, inserted: usize, cases: usize) {
        self.inserted += inserted;
        self.duplicates += offered - inserted;
        self.cases_opened += cases;
    }
}

/// The ratings of a slice with the later repeats of a (source, source_id) removed, and how many.
fn first_of_each(ratings: &[Rating]) -> (Vec<&Rating>, usize) {
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(ratings.len());
    let unique: Vec<&Rating> = ratings
        .iter()
        .filter(|r| seen.insert((r.source.as_str(), r.source_id.as_str())))
        .collect();
    let repeats = ratings.len() - unique.len();
    (unique, repeats)
}

impl Store {
    /// Stores checked ratings (a batch of the API: at most 10,000) in one transaction, a multi-row
    /// statement per chunk; then applies their 追评, each in a transaction of its own.
    pub async fn record_ratings_batch(
        &self,
        engine: &Engine,
        ratings: &[Rating],
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome> {
        let mut import = self.begin_ratings_import(engine, now).await?;
        import.add(ratings).await?;
        let outcome = import.commit().await?;
        if ratings.iter().any(Rating::is_follow_up) {
            // Stored: what is left of their 追评 the scheduler applies.
            let limit = u64::try_from(ratings.len()).unwrap_or(u64::MAX);
            if let Err(e) = self.apply_pending_follow_ups(engine, now, limit).await {
                tracing::warn!(error = %e, "the batch is stored; its 追评 wait for the scheduler");
            }
        }
        Ok(outcome)
    }

    /// Starts an import whose rows all commit together, or not at all.
    pub async fn begin_ratings_import<'e>(
        &self,
        engine: &'e Engine,
        now: DateTime<Utc>,
    ) -> Result<RatingsImport<'e>> {
        let org = self.org().await?;
        Ok(RatingsImport {
            txn: self.begin_bulk().await?,
            engine,
            org,
            now: truncate_to_micros(now),
            outcome: BatchOutcome::default(),
            metrics: metrics::DaySums::new(),
        })
    }

    /// A write transaction for many rows, straight on the driver: the bulk statements bind their
    /// values themselves.
    async fn begin_bulk(&self) -> Result<Bulk> {
        Ok(match self.db.get_database_backend() {
            DbBackend::Postgres => {
                Bulk::Postgres(self.db.get_postgres_connection_pool().begin().await?)
            }
            // On the writers' connection, in turn, with the write lock at once, as `begin_write`
            // takes it.
            _ => Bulk::Sqlite(
                self.write_connection()
                    .get_sqlite_connection_pool()
                    .begin_with("BEGIN IMMEDIATE")
                    .await?,
            ),
        })
    }
}

/// A file import in progress: one transaction for every row of the file.
#[derive(Debug)]
pub struct RatingsImport<'e> {
    txn: Bulk,
    engine: &'e Engine,
    /// The organization when the import began: the centers its cases are owned by at first.
    org: Arc<OrgTree>,
    now: DateTime<Utc>,
    outcome: BatchOutcome,
    /// What the rows added so far add to the metrics, summed per key until written.
    metrics: metrics::DaySums,
}

/// Metric keys an import sums in memory before it writes them out (bounded memory; a file sorted by
/// time repeats its keys, so the sums are far fewer rows than the ratings).
const PENDING_METRIC_KEYS: usize = 50_000;

impl RatingsImport<'_> {
    /// Adds checked ratings; repeats of rows stored before (or added before) count as duplicates.
    pub async fn add(&mut self, ratings: &[Rating]) -> Result<()> {
        let (unique, repeats) = first_of_each(ratings);
        self.outcome.duplicates += repeats;
        let chunks: Vec<&[&Rating]> = unique.chunks(self.txn.chunk_size()).collect();
        for (offered, inserted, cases) in self
            .txn
            .insert_all(self.engine, &self.org, &chunks, self.now, &mut self.metrics)
            .await?
        {
            self.outcome.add(offered, inserted, cases);
        }
        if self.metrics.len() > PENDING_METRIC_KEYS {
            let sums = std::mem::take(&mut self.metrics);
            self.txn.write_metric_deltas(sums).await?;
        }
        Ok(())
    }

    /// Commits every row added.
    pub async fn commit(mut self) -> Result<BatchOutcome> {
        let sums = std::mem::take(&mut self.metrics);
        self.txn.write_metric_deltas(sums).await?;
        self.txn.commit().await?;
        Ok(self.outcome)
    }
}

/// The transaction many ratings are written in. Dropped without a commit, it rolls back.
#[derive(Debug)]
enum Bulk {
    /// SQLite: a multi-row `INSERT … VALUES … ON CONFLICT DO NOTHING RETURNING id` per chunk, then
    /// the cases and events of the rows stored.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    /// PostgreSQL: one `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT DO NOTHING RETURNING id` per
    /// chunk, arrays in binary; cases and events the same way.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Bulk {
    fn chunk_size(&self) -> usize {
        match self {
            Bulk::Sqlite(..) => SQLITE_CHUNK,
            Bulk::Postgres(_) => POSTGRES_CHUNK,
        }
    }

    /// Inserts chunk after chunk, preparing the next statement while the database executes the
    /// previous one; returns (offered, inserted, cases) of each chunk.
    async fn insert_all(
        &mut self,
        engine: &Engine,
        org: &OrgTree,
        chunks: &[&[&Rating]],
        now: DateTime<Utc>,
        sums: &mut metrics::DaySums,
    ) -> Result<Vec<(usize, usize, usize)>> {
        let postgres = self.is_postgres();
        let mut done = Vec::with_capacity(chunks.len());
        let Some(first) = chunks.first() else {
            return Ok(done);
        };
        let mut next = Some(prepare(postgres, engine, org, first, now)?);
        let mut rest = chunks.iter().skip(1);
        // The sums of the chunk written last, added to the running sums while the next one is written.
        let mut unmerged = metrics::DaySums::new();
        while let Some(current) = next.take() {
            let offered = current.chunk.len();
            let following = rest.next();
            let merging = std::mem::take(&mut unmerged);
            let (written, prepared) =
                tokio::join!(self.execute(engine, org, current, now), async {
                    for (key, (name, counts)) in merging {
                        metrics::add(sums, key, &name, counts);
                    }
                    following
                        .map(|c| prepare(postgres, engine, org, c, now))
                        .transpose()
                });
            let (inserted, cases, chunk_sums) = written?;
            unmerged = chunk_sums;
            done.push((offered, inserted, cases));
            next = prepared?;
        }
        for (key, (name, counts)) in unmerged {
            metrics::add(sums, key, &name, counts);
        }
        Ok(done)
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Bulk::Postgres(_))
    }

    async fn execute<'c>(
        &mut self,
        engine: &Engine,
        org: &OrgTree,
        prepared: Prepared<'c>,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize, metrics::DaySums)> {
        let Prepared {
            chunk,
            ids,
            statement,
            sums: all_new,
        } = prepared;
        match (self, statement) {
            (
                Bulk::Sqlite(txn),
                Statement::Sqlite {
                    ratings: (sql, args),
                    opened: prepared_opened,
                    cases: prepared_cases,
                },
            ) => {
                let inserted = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .execute(&mut **txn)
                    .await?
                    .rows_affected();
                // Usually every row is new: the cases prepared with the statement are the ones to
                // write. Otherwise the ids (ours alone) that are present now are the rows this chunk
                // stored: the write lock is ours, no one else inserts meanwhile.
                let (stored, opened, case_inserts, sums) = if inserted == ids.len() as u64 {
                    (ids.len(), prepared_opened, prepared_cases, all_new)
                } else {
                    let placeholders = vec!["?"; ids.len()].join(", ");
                    let mut lookup = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM ratings WHERE id IN ({placeholders})"
                    )));
                    for id in &ids {
                        lookup = lookup.bind(*id);
                    }
                    let stored: HashSet<Uuid> =
                        lookup.fetch_all(&mut **txn).await?.into_iter().collect();
                    let is_stored = |id: &Uuid| stored.contains(id);
                    let (cases, events) = cases_of(engine, org, chunk, &ids, now, is_stored)?;
                    (
                        stored.len(),
                        cases.len(),
                        sqlite_case_inserts(cases, events)?,
                        metric_sums(engine, org, chunk, &ids, now, is_stored)?,
                    )
                };
                for (sql, args) in case_inserts {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                        .execute(&mut **txn)
                        .await?;
                }
                Ok((stored, opened, sums))
            }
            (
                Bulk::Postgres(txn),
                Statement::Postgres {
                    sql,
                    args,
                    with_case,
                },
            ) => {
                let stored: Vec<Uuid> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
                    .fetch_all(&mut **txn)
                    .await?;
                let opened = stored.iter().filter(|id| with_case.contains(id)).count();
                let sums = if stored.len() == ids.len() {
                    all_new
                } else {
                    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
                    metric_sums(engine, org, chunk, &ids, now, |id| stored_set.contains(id))?
                };
                Ok((stored.len(), opened, sums))
            }
            _ => Err(StoreError::Corrupt(
                "a bulk statement was prepared for the other database".into(),
            )),
        }
    }

    /// Writes what the import adds to the metrics into `metric_deltas`.
    async fn write_metric_deltas(&mut self, sums: metrics::DaySums) -> Result<()> {
        let rows = metrics::delta_rows(sums);
        match self {
            Bulk::Sqlite(txn) => {
                let mut rows = rows.into_iter().peekable();
                while rows.peek().is_some() {
                    let chunk: Vec<_> = rows.by_ref().take(1000).collect();
                    if let Some((sql, args)) = insert_values("metric_deltas", chunk, "")? {
                        sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                            .execute(&mut **txn)
                            .await?;
                    }
                }
            }
            Bulk::Postgres(txn) => {
                let mut rows = rows.into_iter().peekable();
                while rows.peek().is_some() {
                    let chunk: Vec<_> = rows.by_ref().take(POSTGRES_CHUNK).collect();
                    if let Some(deltas) = Unnest::of("metric_deltas", chunk)? {
                        let mut args = PgArguments::default();
                        let (names, source) = deltas.bind("d", &mut args)?;
                        sqlx::query_with(
                            sqlx::AssertSqlSafe(format!(
                                "INSERT INTO metric_deltas ({names}) SELECT * FROM {source}"
                            )),
                            args,
                        )
                        .execute(&mut **txn)
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn commit(self) -> Result<()> {
        match self {
            Bulk::Sqlite(txn) => txn.commit().await?,
            Bulk::Postgres(txn) => txn.commit().await?,
        }
        Ok(())
    }
}

/// A chunk of ratings ready to be written.
struct Prepared<'c> {
    chunk: &'c [&'c Rating],
    /// The ids given to its ratings, in order.
    ids: Vec<Uuid>,
    statement: Statement,
    /// What the chunk adds to the metrics if every rating is new (computed here, off the writer's
    /// path; recomputed for the rows stored when some were duplicates).
    sums: metrics::DaySums,
}

enum Statement {
    /// The ratings' multi-row insert, then the inserts of the cases (and first events) the chunk
    /// opens if every rating is new; rebuilt for the rows stored when some were not.
    Sqlite {
        ratings: (String, SqliteArguments),
        /// Cases opened by the prepared inserts.
        opened: usize,
        cases: Vec<(String, SqliteArguments)>,
    },
    /// One statement storing the ratings and opening the cases of those new.
    Postgres {
        sql: String,
        args: PgArguments,
        /// The ratings that open a case if stored now.
        with_case: HashSet<Uuid>,
    },
}

/// Builds the statement of a chunk (no IO: this runs while the database executes the previous one).
fn prepare<'c>(
    postgres: bool,
    engine: &Engine,
    org: &OrgTree,
    chunk: &'c [&'c Rating],
    now: DateTime<Utc>,
) -> Result<Prepared<'c>> {
    let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
    let sums = metric_sums(engine, org, chunk, &ids, now, |_| true)?;
    let rows: Vec<rating::ActiveModel> = chunk
        .iter()
        .zip(&ids)
        .map(|(r, id)| to_active_model(r, *id, now))
        .collect();
    let statement = if postgres {
        // One statement, one round trip: the ratings, and the cases (with their first events) of
        // those that were not stored before.
        let (cases, events) = cases_of(engine, org, chunk, &ids, now, |_| true)?;
        let with_case: HashSet<Uuid> = cases
            .iter()
            .filter_map(|c| c.rating_id.try_as_ref().copied())
            .collect();
        let mut args = PgArguments::default();
        let mut sql = String::new();
        if let Some(ratings) = Unnest::of("ratings", rows)? {
            let (columns, source) = ratings.bind("r", &mut args)?;
            sql = format!(
                "WITH stored AS (INSERT INTO ratings ({columns}) SELECT * FROM {source} \
                 ON CONFLICT (source, source_id) DO NOTHING RETURNING id)"
            );
        }
        if let (Some(cases), Some(events)) =
            (Unnest::of("cases", cases)?, Unnest::of("events", events)?)
        {
            let (case_columns, case_source) = cases.bind("c", &mut args)?;
            let (event_columns, event_source) = events.bind("e", &mut args)?;
            sql.push_str(&format!(
                ", opened AS (INSERT INTO cases ({case_columns}) SELECT * FROM {case_source} \
                 WHERE c.\"rating_id\" IN (SELECT id FROM stored) RETURNING id), \
                 first_events AS (INSERT INTO events ({event_columns}) \
                 SELECT * FROM {event_source} WHERE e.\"case_id\" IN (SELECT id FROM opened))"
            ));
        }
        sql.push_str(" SELECT id FROM stored");
        Statement::Postgres {
            sql,
            args,
            with_case,
        }
    } else {
        let ratings = insert_values(
            "ratings",
            rows,
            "ON CONFLICT (source, source_id) DO NOTHING",
        )?
        .ok_or_else(|| StoreError::Corrupt("an empty chunk of ratings".into()))?;
        let (cases, events) = cases_of(engine, org, chunk, &ids, now, |_| true)?;
        Statement::Sqlite {
            ratings,
            opened: cases.len(),
            cases: sqlite_case_inserts(cases, events)?,
        }
    };
    Ok(Prepared {
        chunk,
        ids,
        statement,
        sums,
    })
}

/// What the `stored` ratings of a chunk (and the cases they open, owned by their centers) add to
/// the metrics.
fn metric_sums(
    engine: &Engine,
    org: &OrgTree,
    chunk: &[&Rating],
    ids: &[Uuid],
    now: DateTime<Utc>,
    stored: impl Fn(&Uuid) -> bool,
) -> Result<metrics::DaySums> {
    // The ratings summed under borrowed keys first: a chunk has few distinct keys, so the owned keys
    // are made once per key, not once per rating.
    type Borrowed<'r> = (chrono::NaiveDate, &'r str, &'r str, Channel, &'r str);
    let mut local: HashMap<Borrowed<'_>, (&str, Counts)> = HashMap::new();
    let mut sums = metrics::DaySums::new();
    let cal = engine.calendar();
    for (r, id) in chunk.iter().zip(ids) {
        if !stored(id) {
            continue;
        }
        let key = (
            cal.local_date(r.rated_at),
            r.unit_code.as_str(),
            r.region_code.as_str(),
            r.channel,
            r.service_code.as_str(),
        );
        local
            .entry(key)
            .or_insert((r.service_name.as_str(), Counts::default()))
            .1 += rating_counts(r.level, r.channel);
        if r.opens_case() {
            // Only what the case adds: the rating was summed above.
            let center = org.center_code(&r.unit_code, Some(&r.region_code));
            metrics::add_new_case(&mut sums, engine, r, center, now)?;
        }
    }
    for ((day, unit, region, channel, service), (name, counts)) in local {
        let key = metrics::DayKey::of_day(day, unit, region, channel, service);
        metrics::add(&mut sums, key, name, counts);
    }
    Ok(sums)
}

/// The multi-row inserts of cases and their first events (none when there are no cases).
fn sqlite_case_inserts(
    cases: Vec<case::ActiveModel>,
    events: Vec<event::ActiveModel>,
) -> Result<Vec<(String, SqliteArguments)>> {
    Ok([
        insert_values("cases", cases, "")?,
        insert_values("events", events, "")?,
    ]
    .into_iter()
    .flatten()
    .collect())
}

/// The case rows (and first events) of the ratings of a chunk that open a case and are `stored`.
fn cases_of(
    engine: &Engine,
    org: &OrgTree,
    chunk: &[&Rating],
    ids: &[Uuid],
    now: DateTime<Utc>,
    stored: impl Fn(&Uuid) -> bool,
) -> Result<(Vec<case::ActiveModel>, Vec<event::ActiveModel>)> {
    let def = engine
        .workflow(NEGATIVE_RATING)
        .ok_or_else(|| StoreError::Corrupt(format!("workflow {NEGATIVE_RATING} is not loaded")))?;
    let opening = bihuan_core::open(def, engine.calendar(), now);
    let remind_at =
        crate::cases::first_reminder(engine, def, opening.timing.deadline.map(|d| d.at));
    let mut cases = Vec::new();
    let mut events = Vec::new();
    for (r, rating_id) in chunk.iter().zip(ids) {
        if !r.opens_case() || !stored(rating_id) {
            continue;
        }
        let case_id = Uuid::now_v7();
        let (hash, first_event) = opening_event(case_id, &opening, now);
        let center = org.center_code(&r.unit_code, Some(&r.region_code));
        cases.push(opened_case(
            engine, def, &opening, remind_at, case_id, *rating_id, r, center, &hash, now,
        ));
        events.push(first_event);
    }
    Ok((cases, events))
}
