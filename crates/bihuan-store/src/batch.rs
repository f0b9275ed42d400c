//! Storing many ratings at once: multi-row inserts in a few transactions, idempotent on
//! (source, source_id) also within one batch and across racing batches, each negative rating's case
//! opened in the same transaction as the rating.

use std::collections::HashSet;

use bihuan_core::chain::{ChainedEvent, GENESIS_HASH, canonical_json, event_hash};
use bihuan_core::rating::Rating;
use bihuan_core::{Engine, NEGATIVE_RATING};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::entity::{case, event, rating};
use crate::ratings::{SYSTEM_ACTOR, to_active_model};
use crate::{Result, Store, StoreError};

/// Rows per transaction: well under both databases' limits on bound parameters.
const CHUNK: usize = 500;

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ratings stored now.
    pub inserted: usize,
    /// Ratings whose (source, source_id) was stored before, or earlier in the same batch.
    pub duplicates: usize,
    /// Cases opened.
    pub cases_opened: usize,
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
        let mut outcome = BatchOutcome::default();
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(ratings.len());
        let mut unique = Vec::with_capacity(ratings.len());
        for r in ratings {
            if seen.insert((r.source.as_str(), r.source_id.as_str())) {
                unique.push(r);
            } else {
                outcome.duplicates += 1;
            }
        }
        for chunk in unique.chunks(CHUNK) {
            let (inserted, cases) = self.insert_chunk(engine, chunk, now).await?;
            outcome.inserted += inserted;
            outcome.duplicates += chunk.len() - inserted;
            outcome.cases_opened += cases;
        }
        Ok(outcome)
    }

    async fn insert_chunk(
        &self,
        engine: &Engine,
        chunk: &[&Rating],
        now: DateTime<Utc>,
    ) -> Result<(usize, usize)> {
        let def = engine.workflow(NEGATIVE_RATING).ok_or_else(|| {
            StoreError::Corrupt(format!("workflow {NEGATIVE_RATING} is not loaded"))
        })?;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let txn = self.begin_write().await?;
        rating::Entity::insert_many(
            chunk
                .iter()
                .zip(&ids)
                .map(|(r, id)| to_active_model(r, *id, now)),
        )
        .on_conflict_do_nothing_on([rating::Column::Source, rating::Column::SourceId])
        .exec(&txn)
        .await?;
        // The ids are ours alone: those present now are the rows this chunk inserted.
        let stored: HashSet<Uuid> = rating::Entity::find()
            .select_only()
            .column(rating::Column::Id)
            .filter(rating::Column::Id.is_in(ids.iter().copied()))
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        let opening = bihuan_core::open(def, engine.calendar(), now);
        let fields = Map::new();
        let fields_text = canonical_json(&Value::Object(fields.clone()));
        let mut cases = Vec::new();
        let mut events = Vec::new();
        for (r, rating_id) in chunk.iter().zip(&ids) {
            if !stored.contains(rating_id) || !r.opens_case() {
                continue;
            }
            let case_id = Uuid::now_v7();
            let hash = event_hash(
                GENESIS_HASH,
                &ChainedEvent {
                    subject_id: &case_id.to_string(),
                    seq: 1,
                    action: &opening.action,
                    from: None,
                    to: &opening.to,
                    actor: SYSTEM_ACTOR,
                    at: now,
                    fields: &fields,
                },
            );
            cases.push(crate::ratings::opened_case(
                def,
                &opening,
                case_id,
                *rating_id,
                &r.unit_code,
                &hash,
                now,
            ));
            events.push(event::ActiveModel {
                case_id: Set(case_id),
                seq: Set(1),
                action: Set(opening.action.clone()),
                from_state: Set(None),
                to_state: Set(opening.to.clone()),
                actor: Set(SYSTEM_ACTOR.to_owned()),
                at: Set(now),
                fields: Set(fields_text.clone()),
                prev_hash: Set(GENESIS_HASH.to_owned()),
                hash: Set(hash),
                ..Default::default()
            });
        }
        let opened = cases.len();
        if !cases.is_empty() {
            case::Entity::insert_many(cases).exec(&txn).await?;
            event::Entity::insert_many(events).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok((stored.len(), opened))
    }
}
