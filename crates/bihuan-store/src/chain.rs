//! Verifying the hash chain of every case's events.

use std::collections::HashMap;

use bihuan_core::chain::{ChainedEvent, GENESIS_HASH, event_hash};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::entity::{case, event};
use crate::{Result, Store};

/// How many cases are verified per round trip.
const PAGE: u64 = 500;

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// True when every event matches.
    pub ok: bool,
    /// Events recomputed.
    pub events_checked: u64,
    /// The first event that does not match, if any.
    pub first_broken: Option<BrokenEvent>,
}

/// An event whose hash, link or position is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenEvent {
    /// The case.
    pub case_id: Uuid,
    /// The event's position in the case's chain (or where one is missing).
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

impl Store {
    /// Recomputes every event's hash, case by case, and names the first event that does not match.
    pub async fn verify_chain(&self) -> Result<ChainReport> {
        let mut checked = 0;
        let mut after: Option<Uuid> = None;
        loop {
            let mut query = case::Entity::find()
                .order_by_asc(case::Column::Id)
                .limit(PAGE);
            if let Some(last) = after {
                query = query.filter(case::Column::Id.gt(last));
            }
            let cases = query.all(&self.db).await?;
            let Some(last) = cases.last() else { break };
            after = Some(last.id);
            let mut events: HashMap<Uuid, Vec<event::Model>> = HashMap::new();
            for e in event::Entity::find()
                .filter(event::Column::CaseId.is_in(cases.iter().map(|c| c.id)))
                .order_by_asc(event::Column::CaseId)
                .order_by_asc(event::Column::Seq)
                .all(&self.db)
                .await?
            {
                events.entry(e.case_id).or_default().push(e);
            }
            for case in &cases {
                let list = events.remove(&case.id).unwrap_or_default();
                checked += list.len() as u64;
                if let Some(broken) = verify_case(case, &list) {
                    return Ok(ChainReport {
                        ok: false,
                        events_checked: checked,
                        first_broken: Some(broken),
                    });
                }
            }
        }
        Ok(ChainReport {
            ok: true,
            events_checked: checked,
            first_broken: None,
        })
    }
}

fn verify_case(case: &case::Model, events: &[event::Model]) -> Option<BrokenEvent> {
    let broken = |seq: i64, reason: String| {
        Some(BrokenEvent {
            case_id: case.id,
            seq,
            reason,
        })
    };
    let mut prev = GENESIS_HASH.to_owned();
    let case_id = case.id.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return broken(
                expected_seq,
                format!("event {expected_seq} is missing (found {})", e.seq),
            );
        }
        if e.prev_hash != prev {
            return broken(
                e.seq,
                "its previous hash does not match the event before it".into(),
            );
        }
        let fields: Map<String, Value> = match serde_json::from_str(&e.fields) {
            Ok(f) => f,
            Err(_) => return broken(e.seq, "its fields are not a JSON object".into()),
        };
        let hash = event_hash(
            &prev,
            &ChainedEvent {
                subject_id: &case_id,
                seq: e.seq,
                action: &e.action,
                from: e.from_state.as_deref(),
                to: &e.to_state,
                actor: &e.actor,
                at: e.at,
                fields: &fields,
            },
        );
        if hash != e.hash {
            return broken(
                e.seq,
                "its content does not match its hash (edited after it was written)".into(),
            );
        }
        prev = hash;
    }
    let count = events.len() as i64;
    if count != case.event_count {
        return broken(
            count + 1,
            format!(
                "the case records {} events but {count} are stored",
                case.event_count
            ),
        );
    }
    if prev != case.head_hash {
        return broken(
            count,
            "the case's head hash does not match its last event".into(),
        );
    }
    None
}
