//! A target (考核指标) of a work item.

use sea_orm::entity::prelude::*;

/// One row of `task_targets`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "task_targets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub task_id: Uuid,
    pub position: i32,
    pub name: String,
    /// `at_least`, `at_most` or `equal`.
    pub comparison: String,
    pub value: f64,
    pub unit: String,
    /// The computed metric it is bound to.
    pub metric: Option<String>,
    pub reported_value: Option<f64>,
    pub reported_at: Option<DateTimeUtc>,
    pub reported_by: Option<String>,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
