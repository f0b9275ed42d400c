//! A supervisor's audit of a closed loop (审核).

use crate::audits::Verdict;
use crate::code::Code;
use sea_orm::entity::prelude::*;

/// One row of `audits`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub case_id: Uuid,
    pub verdict: Code<Verdict>,
    pub reason: Option<String>,
    pub auditor: String,
    pub at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
