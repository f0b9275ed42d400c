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
    /// The service center that owns the case until it is transferred (the rated unit where the
    /// organization has none for it); `None` only for a case opened before it was kept, until the
    /// store fills it in.
    pub center_code: Option<String>,
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
    /// The overall limit (整改反馈时限): where its deadline comes from, `None` while paused or
    /// without one.
    pub overall_start: Option<DateTimeUtc>,
    pub overall_days: Option<i32>,
    /// Its deadline; `None` while paused. Kept once met.
    pub overall_deadline: Option<DateTimeUtc>,
    pub overall_provisional: bool,
    /// While paused (appealing): the working days that were left.
    pub overall_paused_days: Option<i32>,
    /// When the case met it (first reached feedback, or ended).
    pub overall_met_at: Option<DateTimeUtc>,
    /// The scheduler's next look at it, like `remind_at`.
    pub overall_remind_at: Option<DateTimeUtc>,
    /// How far its reminders went, like `remind_stage`; `None` until filled in for a case opened
    /// before the limit existed.
    pub overall_remind_stage: Option<i16>,
    /// A scheduled rectification (建立台账、限期整改): the due date the unit committed to.
    pub scheduled_due: Option<Date>,
    /// Its end (24:00 local), the deadline reminded.
    pub scheduled_deadline: Option<DateTimeUtc>,
    /// When the unit reported it done (限期整改完成).
    pub scheduled_done_at: Option<DateTimeUtc>,
    /// The scheduler's next look at it, like `remind_at`.
    pub scheduled_remind_at: Option<DateTimeUtc>,
    /// How far its reminders went, like `remind_stage` (3 without one).
    pub scheduled_remind_stage: i16,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
