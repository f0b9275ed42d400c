//! The metrics' counts of one day, rated unit and region (统计日汇总).

use sea_orm::entity::prelude::*;

/// One row of `metric_days`; the counts are those of `bihuan_core::metrics::Counts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metric_days")]
pub struct Model {
    /// The local date of the ratings, `YYYY-MM-DD`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub unit_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub region_code: String,
    pub ratings: i64,
    pub negative: i64,
    pub positive: i64,
    pub active: i64,
    pub cases: i64,
    pub valid: i64,
    pub rectified: i64,
    pub due: i64,
    pub on_time: i64,
    pub real_name: i64,
    pub visited: i64,
    pub reviewed: i64,
    pub satisfied: i64,
    pub open: i64,
    pub overdue: i64,
    pub rectify_days: i64,
    pub closed: i64,
    pub close_days: i64,
    pub reached_feedback: i64,
    pub unreachable: i64,
    pub center_handled: i64,
    pub center_timely: i64,
    pub valid_rated: i64,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
