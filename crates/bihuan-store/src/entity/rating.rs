//! A stored rating (评价), immutable once written.

use bihuan_core::rating::{Channel, Level, RaterType};

use crate::code::Code;
use sea_orm::entity::prelude::*;

/// One row of `ratings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ratings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub source: String,
    pub source_id: String,
    pub project_no: String,
    pub service_code: String,
    pub service_name: String,
    pub unit_code: String,
    pub region_code: String,
    pub channel: Code<Channel>,
    pub level: Code<Level>,
    pub negative: bool,
    pub rated_at: DateTimeUtc,
    pub assess_number: i16,
    pub rater_type: Code<RaterType>,
    pub rater_real_name: bool,
    pub rater_name: Option<String>,
    pub rater_phone: Option<String>,
    pub rater_email: Option<String>,
    pub staff: Json,
    pub indicators: Json,
    pub comment: Option<String>,
    pub created_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
