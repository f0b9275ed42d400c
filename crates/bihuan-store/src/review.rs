//! The rater's one-time link (`/r/{token}`): it answers the review the case entered when the link was
//! mailed, once, until the review's time limit.

use bihuan_core::workflow::{ActionDef, Mark};
use bihuan_core::{Actor, Engine, Role, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::token_hash;
use crate::cases::{ActionRequest, CaseDetail, workflow_of};
use crate::entity::{case, event, review_link};
use crate::outbox::rating_of;
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// The state the review waits in, and the actions a link answers with.
/// The rater's two answers: the actions the rater may take marked review_satisfied and
/// review_unsatisfied (their fields `level`, `comment` and `reason` are the review page's contract).
pub(crate) fn review_actions(def: &WorkflowDefinition) -> Result<(&ActionDef, &ActionDef)> {
    let by_rater = |mark: Mark| {
        def.actions_marked(mark)
            .find(|a| a.roles.contains(&Role::Rater))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "workflow {} has no action for the rater marked {mark:?}",
                    def.id
                ))
            })
    };
    Ok((
        by_rater(Mark::ReviewSatisfied)?,
        by_rater(Mark::ReviewUnsatisfied)?,
    ))
}

/// The action and fields that record `answer`.
pub(crate) fn review_step<'d>(
    satisfied: &'d ActionDef,
    unsatisfied: &'d ActionDef,
    answer: &ReviewAnswer,
) -> (&'d str, Map<String, Value>) {
    let mut fields = Map::new();
    let action = match answer {
        ReviewAnswer::Satisfied { comment } | ReviewAnswer::BasicallySatisfied { comment } => {
            let level = if matches!(answer, ReviewAnswer::Satisfied { .. }) {
                "satisfied"
            } else {
                "basically_satisfied"
            };
            fields.insert("level".into(), Value::from(level));
            if !comment.trim().is_empty() {
                fields.insert("comment".into(), Value::from(comment.trim()));
            }
            satisfied.id.as_str()
        }
        ReviewAnswer::Unsatisfied { reason } => {
            fields.insert("reason".into(), Value::from(reason.trim()));
            unsatisfied.id.as_str()
        }
    };
    (action, fields)
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewLinkState {
    /// It can be answered.
    Open,
    /// It was answered.
    Used,
    /// The review's time limit passed.
    Expired,
    /// The review was settled another way (recorded by the center, or timed out).
    Closed,
}

/// What the rater's page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewLink {
    /// Where the link stands.
    pub state: ReviewLinkState,
    /// 事项名称.
    pub service: String,
    /// 办件编号.
    pub project_no: String,
    /// The unit that rectified.
    pub unit: String,
    /// Until when the link works.
    pub expires_at: DateTime<Utc>,
    /// The public reply (公开答复) written with the return visit the link came with, if any: the
    /// page shows it whole (an SMS carries it clipped).
    pub reply: Option<String>,
}

/// The rater's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewAnswer {
    /// 满意.
    Satisfied { comment: String },
    /// 基本满意.
    BasicallySatisfied { comment: String },
    /// 不满意, with the reason.
    Unsatisfied { reason: String },
}

impl Store {
    /// The link of a token, `None` when no link has it.
    pub async fn review_link(
        &self,
        engine: &Engine,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ReviewLink>> {
        let Some(link) = find(&self.db, token).await? else {
            return Ok(None);
        };
        let case = case_of(&self.db, link.case_id).await?;
        let def = workflow_of(engine, &case)?;
        let (satisfied, _) = review_actions(def)?;
        let rating = rating_of(&self.db, &case).await?;
        let reply = reply_of(&self.db, def, &link).await?;
        Ok(Some(ReviewLink {
            state: state_of(&self.db, &link, &case, satisfied, now).await?,
            service: rating.service_name,
            project_no: rating.project_no,
            unit: self
                .org()
                .await?
                .name_of(case.unit_code.as_deref().unwrap_or(&case.origin_unit)),
            expires_at: link.expires_at,
            reply,
        }))
    }

    /// Answers the review through a link: the link is used and the action taken in one transaction.
    /// `Ok(Err(state))` when the link cannot be used (used, expired, settled otherwise); a missing
    /// reason for 不满意 is [`StoreError::Rejected`] and leaves the link unused.
    pub async fn answer_review(
        &self,
        engine: &Engine,
        token: &str,
        answer: &ReviewAnswer,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), ReviewLinkState>> {
        let answered = self
            .write(async |txn| {
                let link = find(txn, token)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: "评议链接",
                        id: "…".into(),
                    })?;
                let case = case_of(txn, link.case_id).await?;
                let (satisfied, unsatisfied) = review_actions(workflow_of(engine, &case)?)?;
                let state = state_of(txn, &link, &case, satisfied, now).await?;
                if state != ReviewLinkState::Open {
                    return Ok(Err(state));
                }
                let used = review_link::Entity::update_many()
                    .col_expr(review_link::Column::UsedAt, Expr::value(now))
                    .filter(review_link::Column::TokenHash.eq(link.token_hash.clone()))
                    .filter(review_link::Column::UsedAt.is_null())
                    .exec(txn)
                    .await?;
                if used.rows_affected == 0 {
                    return Ok(Err(ReviewLinkState::Used));
                }
                let (action, fields) = review_step(satisfied, unsatisfied, answer);
                let actor = Actor::rater();
                let request = ActionRequest {
                    id: case.id,
                    scope: &CaseScope::All,
                    version: case.version,
                    action,
                    fields: &fields,
                    actor: &actor,
                    now,
                };
                self.act_in::<CaseDetail>(txn, engine, &request).await?;
                Ok(Ok(()))
            })
            .await;
        match answered {
            // The case moved on between the page and the answer: the link is left unused.
            Err(StoreError::Conflict { .. }) => Ok(Err(ReviewLinkState::Closed)),
            other => other,
        }
    }
}

/// The public reply recorded by the step that sent the link.
async fn reply_of(
    db: &impl ConnectionTrait,
    def: &WorkflowDefinition,
    link: &review_link::Model,
) -> Result<Option<String>> {
    let Some(sent) = event::Entity::find()
        .filter(event::Column::CaseId.eq(link.case_id))
        .filter(event::Column::Seq.eq(link.event_seq))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(action) = def.action(&sent.action) else {
        return Ok(None);
    };
    let fields = crate::cases::event_fields(sent.case_id, sent.seq, &sent.fields)?;
    Ok(action.public_text(&fields).map(str::to_owned))
}

async fn find(db: &impl ConnectionTrait, token: &str) -> Result<Option<review_link::Model>> {
    Ok(review_link::Entity::find_by_id(token_hash(token))
        .one(db)
        .await?)
}

async fn case_of(db: &impl ConnectionTrait, id: Uuid) -> Result<case::Model> {
    case::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("review link of missing case {id}")))
}

async fn state_of(
    db: &impl ConnectionTrait,
    link: &review_link::Model,
    case: &case::Model,
    answer: &ActionDef,
    now: DateTime<Utc>,
) -> Result<ReviewLinkState> {
    if link.used_at.is_some() {
        return Ok(ReviewLinkState::Used);
    }
    if now >= link.expires_at {
        return Ok(ReviewLinkState::Expired);
    }
    if answer.from.contains(&case.state) && case.event_count == link.event_seq {
        return Ok(ReviewLinkState::Open);
    }
    // Settled since: by the scheduler when the review's time ran out, else by staff.
    let next = event::Entity::find()
        .filter(event::Column::CaseId.eq(case.id))
        .filter(event::Column::Seq.eq(link.event_seq + 1))
        .one(db)
        .await?;
    Ok(match next {
        Some(e) if e.actor == Actor::SCHEDULER => ReviewLinkState::Expired,
        _ => ReviewLinkState::Closed,
    })
}
