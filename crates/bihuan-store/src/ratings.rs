//! Storing ratings, and opening the case of a negative one in the same transaction.

use bihuan_core::chain::{ChainedEvent, GENESIS_HASH, canonical_json, event_hash};
use bihuan_core::rating::Rating;
use bihuan_core::{Engine, NEGATIVE_RATING};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::code::Code;
use crate::entity::{case, event, rating};
use crate::error::is_unique_violation;
use crate::follow_ups::LaterRating;
use crate::{Result, Store, StoreError, metrics};

/// The answer to storing a rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRating {
    /// The stored rating.
    pub rating_id: Uuid,
    /// The case it opened, if it is a non-default negative rating.
    pub case_id: Option<Uuid>,
    /// True when (source, source_id) was stored before: nothing was written this time.
    pub duplicate: bool,
}

/// Who is recorded on the event that opens a case.
pub const SYSTEM_ACTOR: &str = "system";

impl Store {
    /// Stores a rating, idempotently on (source, source_id); a non-default 差评 opens its case in the
    /// same transaction, with the case's first event, and a 追评 is applied to the case of its
    /// handled item ([`crate::follow_ups`]).
    pub async fn record_rating(
        &self,
        engine: &Engine,
        rating: &Rating,
        now: DateTime<Utc>,
    ) -> Result<RecordedRating> {
        let recorded = self
            .write(async |txn| {
                let now = truncate_to_micros(now);
                if let Some(found) = find_existing(txn, rating).await? {
                    return Ok(found);
                }
                let rating_id = Uuid::now_v7();
                let inserted = to_active_model(rating, rating_id, now).insert(txn).await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        // Another writer stored the same rating between our read and our insert: its
                        // answer is read once this transaction is rolled back.
                        return Err(StoreError::Duplicate {
                            what: "评价",
                            key: rating.source_id.clone(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
                let center = if rating.opens_case() {
                    let org = self.org_in(txn).await?;
                    Some(
                        org.center_code(&rating.unit_code, Some(&rating.region_code))
                            .to_owned(),
                    )
                } else {
                    None
                };
                let case_id = match &center {
                    Some(center) => {
                        Some(open_case(txn, engine, rating_id, rating, center, now).await?)
                    }
                    None => None,
                };
                if rating.is_follow_up() {
                    let later = LaterRating {
                        id: rating_id,
                        source: &rating.source,
                        project_no: &rating.project_no,
                        level: rating.level,
                        comment: rating.comment.as_deref(),
                    };
                    self.apply_follow_up(txn, engine, &later, now).await?;
                }
                let mut sums = metrics::DaySums::new();
                metrics::add_new_rating(
                    &mut sums,
                    engine,
                    rating,
                    center.as_deref().map(|c| (c, now)),
                )?;
                metrics::add_deltas(txn, sums).await?;
                Ok(RecordedRating {
                    rating_id,
                    case_id,
                    duplicate: false,
                })
            })
            .await;
        match recorded {
            Err(StoreError::Duplicate { .. }) => find_existing(&self.db, rating)
                .await?
                .ok_or_else(|| StoreError::Corrupt("评价唯一约束冲突但找不到已有评价".into())),
            other => other,
        }
    }
}

async fn find_existing(
    db: &impl ConnectionTrait,
    rating: &Rating,
) -> Result<Option<RecordedRating>> {
    let Some(found) = rating::Entity::find()
        .filter(rating::Column::Source.eq(&rating.source))
        .filter(rating::Column::SourceId.eq(&rating.source_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let case_id = case::Entity::find()
        .filter(case::Column::RatingId.eq(found.id))
        .one(db)
        .await?
        .map(|c| c.id);
    Ok(Some(RecordedRating {
        rating_id: found.id,
        case_id,
        duplicate: true,
    }))
}

pub(crate) fn to_active_model(r: &Rating, id: Uuid, now: DateTime<Utc>) -> rating::ActiveModel {
    rating::ActiveModel {
        id: Set(id),
        source: Set(r.source.clone()),
        source_id: Set(r.source_id.clone()),
        project_no: Set(r.project_no.clone()),
        service_code: Set(r.service_code.clone()),
        service_name: Set(r.service_name.clone()),
        unit_code: Set(r.unit_code.clone()),
        region_code: Set(r.region_code.clone()),
        channel: Set(Code(r.channel)),
        level: Set(Code(r.level)),
        negative: Set(r.level.is_negative()),
        rated_at: Set(truncate_to_micros(r.rated_at)),
        assess_number: Set(i16::from(r.assess_number)),
        rater_type: Set(Code(r.rater.kind)),
        rater_real_name: Set(r.rater.real_name),
        rater_name: Set(r.rater.name.clone()),
        rater_phone: Set(r.rater.phone.clone()),
        rater_email: Set(r.rater.email.clone()),
        staff: Set(Value::from(r.staff.clone())),
        indicators: Set(Value::Object(r.indicators.clone())),
        comment: Set(r.comment.clone()),
        created_at: Set(now),
    }
}

/// Opens the case of a rating: the case row in the workflow's initial state and its first event.
async fn open_case(
    txn: &impl ConnectionTrait,
    engine: &Engine,
    rating_id: Uuid,
    rating: &Rating,
    center: &str,
    now: DateTime<Utc>,
) -> Result<Uuid> {
    let def = engine
        .workflow(NEGATIVE_RATING)
        .ok_or_else(|| StoreError::Corrupt(format!("workflow {NEGATIVE_RATING} is not loaded")))?;
    let opening = bihuan_core::open(def, engine.calendar(), now);
    let case_id = Uuid::now_v7();
    let (hash, first_event) = opening_event(case_id, &opening, now);
    let remind_at =
        crate::cases::first_reminder(engine, def, opening.timing.deadline.map(|d| d.at));
    opened_case(
        engine, def, &opening, remind_at, case_id, rating_id, rating, center, &hash, now,
    )
    .insert(txn)
    .await?;
    first_event.insert(txn).await?;
    if opening.timing.deadline.is_some_and(|d| d.provisional) {
        tracing::warn!(case = %case_id, "deadline is provisional: the calendar has no official data for its year");
    }
    Ok(case_id)
}

/// The first event of a case just opened (action `open`, by the system), and its hash.
pub(crate) fn opening_event(
    case_id: Uuid,
    opening: &bihuan_core::Decision,
    now: DateTime<Utc>,
) -> (String, event::ActiveModel) {
    let fields = Map::new();
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
    let row = event::ActiveModel {
        case_id: Set(case_id),
        seq: Set(1),
        action: Set(opening.action.clone()),
        from_state: Set(None),
        to_state: Set(opening.to.clone()),
        actor: Set(SYSTEM_ACTOR.to_owned()),
        at: Set(now),
        fields: Set(canonical_json(&Value::Object(fields))),
        prev_hash: Set(GENESIS_HASH.to_owned()),
        hash: Set(hash.clone()),
        ..Default::default()
    };
    (hash, row)
}

/// The row of a case just opened in the workflow's initial state.
#[allow(clippy::too_many_arguments)]
pub(crate) fn opened_case(
    engine: &Engine,
    def: &bihuan_core::WorkflowDefinition,
    opening: &bihuan_core::Decision,
    remind_at: Option<DateTime<Utc>>,
    case_id: Uuid,
    rating_id: Uuid,
    rating: &Rating,
    center: &str,
    head_hash: &str,
    now: DateTime<Utc>,
) -> case::ActiveModel {
    let timing = &opening.timing;
    let mut row = case::ActiveModel {
        id: Set(case_id),
        rating_id: Set(rating_id),
        workflow_id: Set(def.id.clone()),
        workflow_version: Set(i32::try_from(def.version).unwrap_or(i32::MAX)),
        state: Set(opening.to.clone()),
        version: Set(1),
        unit_code: Set(None),
        origin_unit: Set(rating.unit_code.clone()),
        region_code: Set(Some(rating.region_code.clone())),
        center_code: Set(Some(center.to_owned())),
        state_entered_at: Set(now),
        deadline: Set(timing.deadline.map(|d| d.at)),
        deadline_start: Set(timing.basis.map(|b| b.start)),
        deadline_days: Set(timing
            .basis
            .map(|b| i32::try_from(b.working_days).unwrap_or(i32::MAX))),
        deadline_provisional: Set(timing.deadline.is_some_and(|d| d.provisional)),
        paused_state: Set(None),
        paused_remaining_days: Set(None),
        extension_days: Set(0),
        reopen_count: Set(0),
        escalated: Set(false),
        overdue: Set(false),
        timer_action: Set(opening.timer.as_ref().map(|t| t.action.clone())),
        timer_at: Set(opening.timer.as_ref().map(|t| t.at)),
        event_count: Set(1),
        head_hash: Set(head_hash.to_owned()),
        opened_at: Set(now),
        closed_at: Set(None),
        updated_at: Set(now),
        remind_at: Set(remind_at),
        remind_stage: Set(crate::cases::first_stage(timing.deadline.map(|d| d.at))),
        extension_days_used: Set(0),
        extension_requested_days: Set(None),
        appeals_used: Set(0),
        transferred_at: Set(None),
        ..Default::default()
    };
    crate::cases::put_overall(&mut row, engine, def, &opening.overall, None);
    crate::cases::put_scheduled(&mut row, engine, def, None, None);
    row
}
