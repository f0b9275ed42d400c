//! A unit leading (牵头) or helping (配合) with a work item.

use crate::code::Code;
use crate::plans::UnitRole;
use sea_orm::entity::prelude::*;

/// One row of `task_units`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_units")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: Uuid,
    /// 牵头 or 配合.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role: Code<UnitRole>,
    #[sea_orm(primary_key, auto_increment = false)]
    pub unit_code: String,
    /// Its place in the table's cell.
    pub position: i32,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
