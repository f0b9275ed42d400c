//! An event of a work item's hash-chained log.

use sea_orm::entity::prelude::*;

/// One row of `task_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub task_id: Uuid,
    pub seq: i64,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub at: DateTimeUtc,
    /// The recorded fields as canonical JSON text: exactly the bytes that were hashed.
    pub fields: String,
    pub prev_hash: String,
    pub hash: String,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
