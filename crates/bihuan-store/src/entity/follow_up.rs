//! Where a 追评 went (the rater's later rating of a handled item already rated).

use crate::code::Code;
use crate::follow_ups::FollowUpKind;
use sea_orm::entity::prelude::*;

/// One row of `follow_ups`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "follow_ups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub rating_id: Uuid,
    /// The case of the handled item; `None` when the item has none (its first rating was good).
    pub case_id: Option<Uuid>,
    pub kind: Code<FollowUpKind>,
    /// Whether the 追评 is a 差评.
    pub negative: bool,
    pub at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
