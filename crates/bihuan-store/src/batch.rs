//! Storing many ratings at once: multi-row inserts in a few transactions, idempotent on
//! (source, source_id) also within one batch and across racing batches, each negative rating's case
//! opened in the same transaction as the rating.

use std::collections::{HashMap, HashSet};

use bihuan_core::rating::Rating;
use bihuan_core::{Engine, NEGATIVE_RATING};
use chrono::{DateTime, Utc};
use sea_orm::sqlx;
use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::entity::{case, event, rating};
use crate::ratings::{opened_case, opening_event, to_active_model};
use crate::unnest::Unnest;
use crate::{Result, Store, StoreError};

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
    /// Stores checked ratings in chunks; each chunk is one transaction.
    pub async fn record_ratings_batch(
        &self,
        engine: &Engine,
        ratings: &[Rating],
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome> {
        let now = truncate_to_micros(now);
        let (unique, repeats) = first_of_each(ratings);
        let mut outcome = BatchOutcome {
            duplicates: repeats,
            ..BatchOutcome::default()
        };
        let chunk_size = match self.db.get_database_backend() {
            DbBackend::Postgres => POSTGRES_CHUNK,
            _ => SQLITE_CHUNK,
        };
        for chunk in unique.chunks(chunk_size) {
            let mut txn = self.begin_bulk().await?;
            let (inserted, cases) = txn.insert(engine, chunk, now).await?;
            txn.commit().await?;
            outcome.add(chunk.len(), inserted, cases);
        }
        Ok(outcome)
    }

    /// Starts an import whose rows all commit together, or not at all.
    pub async fn begin_ratings_import<'e>(
        &self,
        engine: &'e Engine,
        now: DateTime<Utc>,
    ) -> Result<RatingsImport<'e>> {
        Ok(RatingsImport {
            txn: self.begin_bulk().await?,
            engine,
            now: truncate_to_micros(now),
            outcome: BatchOutcome::default(),
        })
    }

    /// A write transaction for many rows: on PostgreSQL a connection of its own that can `COPY`.
    async fn begin_bulk(&self) -> Result<Bulk> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(Bulk::Orm(self.begin_write().await?));
        }
        let mut txn = self.db.get_postgres_connection_pool().begin().await?;
        // The transaction's own staging table, of the table's shape at this moment.
        sqlx::raw_sql("CREATE TEMP TABLE rating_stage (LIKE ratings) ON COMMIT DROP")
            .execute(&mut *txn)
            .await?;
        Ok(Bulk::Postgres(txn))
    }
}

/// A file import in progress: one transaction for every row of the file.
#[derive(Debug)]
pub struct RatingsImport<'e> {
    txn: Bulk,
    engine: &'e Engine,
    now: DateTime<Utc>,
    outcome: BatchOutcome,
}

impl RatingsImport<'_> {
    /// Adds checked ratings; repeats of rows stored before (or added before) count as duplicates.
    pub async fn add(&mut self, ratings: &[Rating]) -> Result<()> {
        let (unique, repeats) = first_of_each(ratings);
        self.outcome.duplicates += repeats;
        for chunk in unique.chunks(self.txn.chunk_size()) {
            let (inserted, cases) = self.txn.insert(self.engine, chunk, self.now).await?;
            self.outcome.add(chunk.len(), inserted, cases);
        }
        Ok(())
    }

    /// Commits every row added.
    pub async fn commit(self) -> Result<BatchOutcome> {
        self.txn.commit().await?;
        Ok(self.outcome)
    }
}

/// The transaction many ratings are written in. Dropped without a commit, it rolls back.
#[derive(Debug)]
enum Bulk {
    /// SQLite: multi-row `INSERT … ON CONFLICT DO NOTHING` through sea-orm.
    Orm(DatabaseTransaction),
    /// PostgreSQL: one `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT DO NOTHING RETURNING id` per
    /// chunk, arrays in binary; cases and events the same way.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Bulk {
    fn chunk_size(&self) -> usize {
        match self {
            Bulk::Orm(_) => SQLITE_CHUNK,
            Bulk::Postgres(_) => POSTGRES_CHUNK,
        }
    }

    /// Inserts distinct ratings and the cases of the negative ones; returns (inserted, cases).
    async fn insert(
        &mut self,
        engine: &Engine,
        chunk: &[&Rating],
        now: DateTime<Utc>,
    ) -> Result<(usize, usize)> {
        let def = engine.workflow(NEGATIVE_RATING).ok_or_else(|| {
            StoreError::Corrupt(format!("workflow {NEGATIVE_RATING} is not loaded"))
        })?;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let rows: Vec<rating::ActiveModel> = chunk
            .iter()
            .zip(&ids)
            .map(|(r, id)| to_active_model(r, *id, now))
            .collect();
        let opening = bihuan_core::open(def, engine.calendar(), now);
        // The case each rating would open, were it stored now.
        let opens = |stored: &dyn Fn(&Uuid) -> bool| {
            let mut cases = Vec::new();
            let mut events = Vec::new();
            for (r, rating_id) in chunk.iter().zip(&ids) {
                if !r.opens_case() || !stored(rating_id) {
                    continue;
                }
                let case_id = Uuid::now_v7();
                let (hash, first_event) = opening_event(case_id, &opening, now);
                cases.push(opened_case(
                    def, &opening, case_id, *rating_id, r, &hash, now,
                ));
                events.push(first_event);
            }
            (cases, events)
        };
        match self {
            Bulk::Orm(txn) => {
                rating::Entity::insert_many(rows)
                    .on_conflict_do_nothing_on([rating::Column::Source, rating::Column::SourceId])
                    .exec(&*txn)
                    .await?;
                // The ids are ours alone: those present now are the rows this chunk inserted.
                let stored: HashSet<Uuid> = rating::Entity::find()
                    .select_only()
                    .column(rating::Column::Id)
                    .filter(rating::Column::Id.is_in(ids.iter().copied()))
                    .into_tuple::<Uuid>()
                    .all(&*txn)
                    .await?
                    .into_iter()
                    .collect();
                let (cases, events) = opens(&|id| stored.contains(id));
                let opened = cases.len();
                if opened > 0 {
                    case::Entity::insert_many(cases).exec(&*txn).await?;
                    event::Entity::insert_many(events).exec(&*txn).await?;
                }
                Ok((stored.len(), opened))
            }
            Bulk::Postgres(txn) => {
                // One statement, one round trip: the ratings, and the cases (with their first events)
                // of those that were not stored before.
                let (cases, events) = opens(&|_| true);
                let case_of: HashMap<Uuid, Uuid> = cases
                    .iter()
                    .filter_map(|c| Some((*c.rating_id.try_as_ref()?, *c.id.try_as_ref()?)))
                    .collect();
                let mut args = PgArguments::default();
                let Some(ratings) = Unnest::of("ratings", rows)? else {
                    return Ok((0, 0));
                };
                let (columns, source) = ratings.bind("r", &mut args)?;
                let mut sql = format!(
                    "WITH stored AS (INSERT INTO ratings ({columns}) SELECT * FROM {source} \
                     ON CONFLICT (source, source_id) DO NOTHING RETURNING id)"
                );
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
                let stored: Vec<Uuid> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
                    .fetch_all(&mut **txn)
                    .await?;
                let opened = stored.iter().filter(|id| case_of.contains_key(id)).count();
                Ok((stored.len(), opened))
            }
        }
    }

    async fn commit(self) -> Result<()> {
        match self {
            Bulk::Orm(txn) => txn.commit().await?,
            Bulk::Postgres(txn) => txn.commit().await?,
        }
        Ok(())
    }
}
