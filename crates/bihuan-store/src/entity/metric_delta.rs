//! What one transaction added to the metrics' counts of one key, until the scheduler folds it into
//! `metric_days`.

use bihuan_core::rating::Channel;

use crate::code::Code;
use sea_orm::entity::prelude::*;

/// One row of `metric_deltas`; the key and counts are those of `metric_days`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metric_deltas")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub day: String,
    pub unit_code: String,
    pub region_code: String,
    pub channel: Code<Channel>,
    pub service_code: String,
    pub service_name: String,
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
