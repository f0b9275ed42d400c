//! An outside unit code mapped onto a registered unit (单位编码映射).

use sea_orm::entity::prelude::*;

/// One row of `unit_aliases`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "unit_aliases")]
pub struct Model {
    /// The code ratings send.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    /// The registered unit it stands for.
    pub unit_code: String,
    /// Who mapped it.
    pub mapped_by: String,
    pub created_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
