//! A work item (具体工作) of a plan, running the work-plan workflow.

use bihuan_core::plan::Owed;

use crate::code::Code;
use crate::plans::DueKind;
use sea_orm::entity::prelude::*;

/// One row of `tasks`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub plan_id: Uuid,
    /// Its place in the plan, from 1.
    pub position: i32,
    /// The row of the imported table it came from.
    pub source_row: i32,
    pub key_task: String,
    pub title: String,
    pub due_kind: Code<DueKind>,
    pub due_date: Option<Date>,
    pub workflow_id: String,
    pub workflow_version: i32,
    pub state: String,
    /// Optimistic concurrency, as for cases.
    pub version: i32,
    pub state_entered_at: DateTimeUtc,
    /// What it owes next, by when (core `plan::next_deadline`).
    pub deadline: Option<DateTimeUtc>,
    /// `completion`, `report` or `acceptance`.
    pub owed: Option<Code<Owed>>,
    /// The deadline its workflow state sets (a submitted item's acceptance).
    pub state_deadline: Option<DateTimeUtc>,
    pub deadline_start: Option<DateTimeUtc>,
    pub deadline_days: Option<i32>,
    pub deadline_provisional: bool,
    pub escalated: bool,
    pub overdue: bool,
    pub remind_at: Option<DateTimeUtc>,
    pub remind_stage: i16,
    pub last_report_at: Option<DateTimeUtc>,
    /// 完成百分比 of the last report.
    pub percent: Option<i32>,
    /// The last progress report's or note's text.
    pub last_progress: Option<String>,
    pub event_count: i64,
    pub head_hash: String,
    pub created_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
