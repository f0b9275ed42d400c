//! A work plan (任务分解), imported from its table.

use sea_orm::entity::prelude::*;

/// One row of `plans`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub year: i32,
    /// The file it was imported from (or `api`).
    pub source: String,
    /// How often ongoing and scheduled items report, in months.
    pub report_months: i32,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
