//! A negative-rating case (差评整改工单).

use sea_orm::entity::prelude::*;

/// One row of `cases`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub rating_id: Uuid,
    pub workflow_id: String,
    pub workflow_version: i32,
    pub state: String,
    /// Optimistic concurrency: every action bumps it and checks it.
    pub version: i32,
    /// The responsible unit (承办单位), `None` before transfer.
    pub unit_code: Option<String>,
    /// The unit that handled the rated item; the case belongs to its organization.
    pub origin_unit: String,
    /// The rating's 行政区划: while the origin unit is unknown the case waits at this region's center.
    pub region_code: Option<String>,
    pub state_entered_at: DateTimeUtc,
    pub deadline: Option<DateTimeUtc>,
    pub deadline_start: Option<DateTimeUtc>,
    pub deadline_days: Option<i32>,
    pub deadline_provisional: bool,
    pub paused_state: Option<String>,
    pub paused_remaining_days: Option<i32>,
    pub extension_days: i32,
    pub reopen_count: i32,
    pub escalated: bool,
    pub overdue: bool,
    pub timer_action: Option<String>,
    pub timer_at: Option<DateTimeUtc>,
    pub event_count: i64,
    pub head_hash: String,
    pub opened_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    /// When the scheduler next looks at the deadline (the next reminder's time); `None` when nothing
    /// is left to remind of, or not yet computed.
    pub remind_at: Option<DateTimeUtc>,
    /// How far the reminders of the current deadline went: 0 none, 1 due soon, 2 overdue, 3 escalated.
    pub remind_stage: i16,
    /// Working days granted by extensions over the case's life (the cap counts these).
    pub extension_days_used: i32,
    /// A unit's request for more time waiting for a supervisor: the working days asked.
    pub extension_requested_days: Option<i32>,
    /// Appeals filed over the case's life.
    pub appeals_used: i32,
    /// When the case was last transferred to its responsible unit.
    pub transferred_at: Option<DateTimeUtc>,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
