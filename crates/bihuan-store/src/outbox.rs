//! Queuing notifications in the outbox, in the transaction of the action that causes them.

use bihuan_core::workflow::Audience;
use bihuan_core::{Decision, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use crate::entity::{case, outbox, rating, unit, user};
use crate::org::{home_units, self_and_ancestors};
use crate::{Result, Store, StoreError};

/// Outbox status of a row waiting to be sent.
pub const PENDING: &str = "pending";

/// Writes one outbox row per notification of the decision. The unique key (case, event, kind,
/// audience) makes the write idempotent.
pub(crate) async fn queue_notifications(
    txn: &impl ConnectionTrait,
    def: &WorkflowDefinition,
    case: &case::Model,
    decision: &Decision,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    if decision.notifications.is_empty() {
        return Ok(());
    }
    let rating = rating::Entity::find_by_id(case.rating_id)
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", case.id)))?;
    let action_label = def
        .action(&decision.action)
        .map_or(decision.action.as_str(), |a| a.label.as_str());
    let state_label = def
        .state(&case.state)
        .map_or(case.state.as_str(), |s| s.label.as_str());
    for note in &decision.notifications {
        let recipients = recipients(txn, note.audience, case).await?;
        let subject = format!("【好差评】{action_label}：{}", rating.service_name);
        let deadline = case
            .deadline
            .map_or_else(|| "无".to_owned(), |d| d.to_rfc3339());
        let body = format!(
            "事项：{}\n办件编号：{}\n承办单位：{}\n当前状态：{state_label}\n办理期限：{deadline}\n操作：{action_label}\n案件编号：{}\n",
            rating.service_name,
            rating.project_no,
            case.unit_code.as_deref().unwrap_or("（待转办）"),
            case.id,
        );
        let row = outbox::ActiveModel {
            kind: Set(note.kind.clone()),
            case_id: Set(Some(case.id)),
            audience: Set(note.audience.as_str().to_owned()),
            recipients: Set(Value::from(recipients)),
            subject: Set(subject),
            body: Set(body),
            unique_key: Set(format!(
                "case:{}:{seq}:{}:{}",
                case.id,
                note.kind,
                note.audience.as_str()
            )),
            status: Set(PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
            ..Default::default()
        };
        outbox::Entity::insert(row)
            .on_conflict_do_nothing_on([outbox::Column::UniqueKey])
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The mail addresses of an audience, deduplicated and sorted.
async fn recipients(
    txn: &impl ConnectionTrait,
    audience: Audience,
    case: &case::Model,
) -> Result<Vec<String>> {
    let mut addresses = Vec::new();
    match audience {
        Audience::ResponsibleUnit => {
            if let Some(code) = &case.unit_code {
                if let Some(u) = unit::Entity::find_by_id(code.clone()).one(txn).await? {
                    addresses.extend(u.email);
                }
                addresses.extend(emails_of(txn, "unit_staff", std::slice::from_ref(code)).await?);
            }
        }
        Audience::Center => {
            let chain = home_units(txn, &case.origin_unit, case.region_code.as_deref()).await?;
            addresses.extend(emails_of(txn, "center_staff", &chain).await?);
        }
        Audience::Supervisors => {
            let chain = match &case.unit_code {
                Some(unit) => self_and_ancestors(txn, unit).await?,
                None => home_units(txn, &case.origin_unit, case.region_code.as_deref()).await?,
            };
            addresses.extend(emails_of(txn, "supervisor", &chain).await?);
        }
    }
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

async fn emails_of(
    txn: &impl ConnectionTrait,
    role: &str,
    units: &[String],
) -> Result<Vec<String>> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq(role))
        .filter(user::Column::UnitCode.is_in(units.iter().cloned()))
        .filter(user::Column::Disabled.eq(false))
        .all(txn)
        .await?
        .into_iter()
        .filter_map(|u| u.email)
        .collect())
}

/// The outbox statuses: waiting to be sent, sent, given up after the last retry.
pub const OUTBOX_STATUSES: [&str; 3] = ["pending", "sent", "dead"];

impl Store {
    /// One page of the outbox, newest first, optionally of one status, and the total count.
    pub async fn list_outbox(
        &self,
        status: Option<&str>,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<outbox::Model>, u64)> {
        use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
        let mut query = outbox::Entity::find();
        if let Some(status) = status {
            query = query.filter(outbox::Column::Status.eq(status));
        }
        let total = query.clone().count(&self.db).await?;
        let per_page = per_page.clamp(1, 500);
        let items = query
            .order_by_desc(outbox::Column::Id)
            .offset(page.saturating_sub(1) * per_page)
            .limit(per_page)
            .all(&self.db)
            .await?;
        Ok((items, total))
    }
}
