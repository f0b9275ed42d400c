//! Storing many ratings at once: multi-row inserts in a few transactions, idempotent on
//! (source, source_id) also within one batch and across racing batches, each negative rating's case
//! opened in the same transaction as the rating.

use std::collections::HashSet;

use bihuan_core::rating::Rating;
use bihuan_core::{Engine, NEGATIVE_RATING};
use chrono::{DateTime, Utc};
use sea_orm::sqlx;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::copy::copy_in;
use crate::entity::{case, event, rating};
use crate::ratings::{opened_case, opening_event, to_active_model};
use crate::{Result, Store, StoreError};

/// Rows per statement: well under both databases' limits on bound parameters.
const CHUNK: usize = 500;

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
        for chunk in unique.chunks(CHUNK) {
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
        for chunk in unique.chunks(CHUNK) {
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
    /// PostgreSQL: `COPY` into a staging table, then one `INSERT … SELECT … ON CONFLICT DO NOTHING
    /// RETURNING id`; cases and events by `COPY`.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Bulk {
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
        let rows = chunk
            .iter()
            .zip(&ids)
            .map(|(r, id)| to_active_model(r, *id, now));
        let stored: HashSet<Uuid> = match self {
            Bulk::Orm(txn) => {
                rating::Entity::insert_many(rows)
                    .on_conflict_do_nothing_on([rating::Column::Source, rating::Column::SourceId])
                    .exec(txn)
                    .await?;
                // The ids are ours alone: those present now are the rows this chunk inserted.
                rating::Entity::find()
                    .select_only()
                    .column(rating::Column::Id)
                    .filter(rating::Column::Id.is_in(ids.iter().copied()))
                    .into_tuple::<Uuid>()
                    .all(&*txn)
                    .await?
                    .into_iter()
                    .collect()
            }
            Bulk::Postgres(txn) => {
                let rows: Vec<rating::ActiveModel> = rows.collect();
                let columns = copy_in(txn, "rating_stage", &rows).await?;
                let inserted: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO ratings ({columns}) SELECT {columns} FROM rating_stage \
                     ON CONFLICT (source, source_id) DO NOTHING RETURNING id"
                )))
                .fetch_all(&mut **txn)
                .await?;
                sqlx::raw_sql("TRUNCATE rating_stage")
                    .execute(&mut **txn)
                    .await?;
                inserted.into_iter().collect()
            }
        };
        let opening = bihuan_core::open(def, engine.calendar(), now);
        let mut cases = Vec::new();
        let mut events = Vec::new();
        for (r, rating_id) in chunk.iter().zip(&ids) {
            if !stored.contains(rating_id) || !r.opens_case() {
                continue;
            }
            let case_id = Uuid::now_v7();
            let (hash, first_event) = opening_event(case_id, &opening, now);
            cases.push(opened_case(
                def, &opening, case_id, *rating_id, r, &hash, now,
            ));
            events.push(first_event);
        }
        let opened = cases.len();
        match self {
            Bulk::Orm(txn) if !cases.is_empty() => {
                case::Entity::insert_many(cases).exec(&*txn).await?;
                event::Entity::insert_many(events).exec(&*txn).await?;
            }
            Bulk::Orm(_) => {}
            Bulk::Postgres(txn) => {
                copy_in(txn, "cases", &cases).await?;
                copy_in(txn, "events", &events).await?;
            }
        }
        Ok((stored.len(), opened))
    }

    async fn commit(self) -> Result<()> {
        match self {
            Bulk::Orm(txn) => txn.commit().await?,
            Bulk::Postgres(txn) => txn.commit().await?,
        }
        Ok(())
    }
}
