//! A rater's one-time review link (评议链接).

use sea_orm::entity::prelude::*;

/// One row of `review_links`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "review_links")]
pub struct Model {
    /// SHA-256 of the token, hex; the token itself is only in the mail.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub case_id: Uuid,
    /// The event that put the case into review; the link answers that review only.
    pub event_seq: i64,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
