//! A notification waiting to be sent (发件箱).

use crate::code::Code;
use crate::outbox::{OutboxChannel, OutboxStatus};
use sea_orm::entity::prelude::*;

/// One row of `outbox`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub audience: String,
    /// Email addresses, as a JSON array.
    pub recipients: Json,
    pub subject: String,
    /// The plain-text part.
    pub body: String,
    /// One notification per key, however many passes or processes try to create it.
    pub unique_key: String,
    /// `pending`, `sent`, `dead`, or for reminders gathered by the daily digest `digest` (listed while
    /// it holds) and `lapsed` (the case moved on).
    pub status: Code<OutboxStatus>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// The HTML part.
    pub html: Option<String>,
    /// How it goes out: mail, SMS, or a push to the provincial platform.
    pub channel: Code<OutboxChannel>,
    /// What a channel other than mail sends, as JSON (an SMS's number and text, a push's body).
    pub payload: Option<String>,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
