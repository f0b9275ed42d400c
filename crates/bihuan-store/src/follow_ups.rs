//! 追评: a rating with `assess_number` ≥ 2 of a handled item (the same `project_no` from the same
//! source) is the rater's later word on it, never a second case. While the case waits for the
//! rater's review it is that review (a satisfied level 评议满意, a negative one 评议不满意); otherwise
//! it is recorded on the case as a `follow_up` event. `follow_ups` keeps where each went, written in
//! the transaction that took the action; a 追评 stored by a batch is applied after it, by
//! [`Store::apply_pending_follow_ups`], which the scheduler also runs.

use bihuan_core::rating::Level;
use bihuan_core::workflow::Mark;
use bihuan_core::{Actor, Engine};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cases::{ActionRequest, CaseDetail, rating_of_case, workflow_of};
use crate::clock::truncate_to_micros;
use crate::code::{Code, StoredCode};
use crate::entity::{case, follow_up, rating};
use crate::review::{ReviewAnswer, review_actions, review_step};
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// Where a 追评 went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpKind {
    /// The rater's review of the case that waited for it.
    Review,
    /// A `follow_up` event on the case.
    FollowUp,
    /// Nowhere: the handled item has no case (its first rating was not a 差评), or its workflow
    /// records no 追评 in the case's state.
    Unmatched,
}

impl StoredCode for FollowUpKind {
    const WHAT: &'static str = "follow-up kind";

    fn code(self) -> &'static str {
        match self {
            FollowUpKind::Review => "review",
            FollowUpKind::FollowUp => "follow_up",
            FollowUpKind::Unmatched => "unmatched",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            FollowUpKind::Review,
            FollowUpKind::FollowUp,
            FollowUpKind::Unmatched,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A stored 追评, as it is applied.
#[derive(Debug, Clone)]
pub(crate) struct LaterRating<'a> {
    pub id: Uuid,
    pub source: &'a str,
    pub project_no: &'a str,
    pub level: Level,
    pub comment: Option<&'a str>,
}

impl<'a> LaterRating<'a> {
    pub(crate) fn of_row(r: &'a rating::Model) -> Self {
        Self {
            id: r.id,
            source: &r.source,
            project_no: &r.project_no,
            level: *r.level,
            comment: r.comment.as_deref(),
        }
    }

    /// The review it makes: a negative level is 不满意 with the rater's words as the reason.
    fn answer(&self) -> ReviewAnswer {
        let comment = self.comment.map(str::trim).unwrap_or_default().to_owned();
        match self.level {
            Level::VerySatisfied | Level::Satisfied => ReviewAnswer::Satisfied { comment },
            Level::BasicallySatisfied => ReviewAnswer::BasicallySatisfied { comment },
            Level::Dissatisfied | Level::VeryDissatisfied => ReviewAnswer::Unsatisfied {
                reason: if comment.is_empty() {
                    format!("追评：{}", self.level.label())
                } else {
                    comment
                },
            },
        }
    }
}

impl Store {
    /// Applies a 追评 stored in `txn`, in `txn`: the review, the `follow_up` event or nothing, and
    /// its `follow_ups` row.
    pub(crate) async fn apply_follow_up(
        &self,
        txn: &DatabaseTransaction,
        engine: &Engine,
        later: &LaterRating<'_>,
        now: DateTime<Utc>,
    ) -> Result<FollowUpKind> {
        let now = truncate_to_micros(now);
        let case = first_case_of(txn, later.source, later.project_no).await?;
        let kind = match &case {
            None => FollowUpKind::Unmatched,
            Some(case) => self.record_on_case(txn, engine, case, later, now).await?,
        };
        follow_up::ActiveModel {
            rating_id: Set(later.id),
            case_id: Set(case.map(|c| c.id)),
            kind: Set(Code(kind)),
            negative: Set(later.level.is_negative()),
            at: Set(now),
        }
        .insert(txn)
        .await?;
        Ok(kind)
    }

    async fn record_on_case(
        &self,
        txn: &DatabaseTransaction,
        engine: &Engine,
        case: &case::Model,
        later: &LaterRating<'_>,
        now: DateTime<Utc>,
    ) -> Result<FollowUpKind> {
        let def = workflow_of(engine, case)?;
        let actor = Actor::rater();
        let answer = later.answer();
        if let Ok((satisfied, unsatisfied)) = review_actions(def)
            && satisfied.from.contains(&case.state)
        {
            let (action, fields) = review_step(satisfied, unsatisfied, &answer);
            match self
                .act_in::<CaseDetail>(
                    txn,
                    engine,
                    &rater_request(case, action, &fields, &actor, now),
                )
                .await
            {
                Ok(_) => return Ok(FollowUpKind::Review),
                // Refused before anything was written: recorded as a follow-up instead.
                Err(StoreError::Rejected(e)) => tracing::info!(
                    case = %case.id,
                    refused = e.code(),
                    "a 追评 could not be taken as the review; it is recorded on the case"
                ),
                Err(e) => return Err(e),
            }
        }
        let Some(action) = def
            .actions_marked(Mark::FollowUp)
            .find(|a| a.from.contains(&case.state))
        else {
            return Ok(FollowUpKind::Unmatched);
        };
        let mut fields = Map::new();
        fields.insert("rating".into(), Value::from(later.id.to_string()));
        fields.insert("level".into(), Value::from(later.level.as_str()));
        if let Some(comment) = later.comment.map(str::trim).filter(|c| !c.is_empty()) {
            fields.insert("comment".into(), Value::from(comment));
        }
        self.act_in::<CaseDetail>(
            txn,
            engine,
            &rater_request(case, &action.id, &fields, &actor, now),
        )
        .await?;
        Ok(FollowUpKind::FollowUp)
    }

    /// Applies the 追评 stored without being applied (a batch's, or one whose transaction was cut
    /// short), at most `limit`, each in a transaction of its own; answers how many were applied.
    pub async fn apply_pending_follow_ups(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<usize> {
        let applied = Query::select()
            .column(follow_up::Column::RatingId)
            .from(follow_up::Entity)
            .to_owned();
        let pending = rating::Entity::find()
            .filter(rating::Column::AssessNumber.gte(2))
            .filter(rating::Column::Id.not_in_subquery(applied))
            .order_by_asc(rating::Column::CreatedAt)
            .order_by_asc(rating::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut done = 0;
        for r in &pending {
            let later = LaterRating::of_row(r);
            let outcome = self
                .write(async |txn| self.apply_follow_up(txn, engine, &later, now).await)
                .await;
            match outcome {
                Ok(_) => done += 1,
                // Another process applied it first.
                Err(StoreError::Db(e)) if crate::error::is_unique_violation(&e) => {}
                Err(e) if e.is_outage() => return Err(e),
                // Not the database's state: the next 追评 need not wait behind this one, which is
                // tried again in the next pass.
                Err(e) => tracing::error!(rating = %r.id, error = %e, "a 追评 cannot be applied"),
            }
        }
        Ok(done)
    }

    /// The 追评 of a case, oldest first.
    pub async fn follow_ups_of(&self, case_id: Uuid) -> Result<Vec<rating::Model>> {
        Ok(rating::Entity::find()
            .join(
                JoinType::InnerJoin,
                rating::Entity::belongs_to(follow_up::Entity)
                    .from(rating::Column::Id)
                    .to(follow_up::Column::RatingId)
                    .into(),
            )
            .filter(follow_up::Column::CaseId.eq(case_id))
            .order_by_asc(rating::Column::RatedAt)
            .all(&self.db)
            .await?)
    }
}

/// The rater's action on `case` at its current version.
fn rater_request<'a>(
    case: &case::Model,
    action: &'a str,
    fields: &'a Map<String, Value>,
    actor: &'a Actor,
    now: DateTime<Utc>,
) -> ActionRequest<'a> {
    ActionRequest {
        id: case.id,
        scope: &CaseScope::All,
        version: case.version,
        action,
        fields,
        actor,
        now,
    }
}

/// The case of a handled item: the one its first rating opened.
async fn first_case_of(
    db: &impl ConnectionTrait,
    source: &str,
    project_no: &str,
) -> Result<Option<case::Model>> {
    Ok(case::Entity::find()
        .join(JoinType::InnerJoin, rating_of_case())
        .filter(rating::Column::Source.eq(source))
        .filter(rating::Column::ProjectNo.eq(project_no))
        .filter(rating::Column::AssessNumber.lt(2))
        .order_by_asc(case::Column::OpenedAt)
        .order_by_asc(case::Column::Id)
        .one(db)
        .await?)
}
