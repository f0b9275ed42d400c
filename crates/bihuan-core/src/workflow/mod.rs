//! Workflow definitions (流程定义): states, actions, fields, guards, as checked data.
//!
//! Files in `workflows/*.toml` are parsed by [`load`] into a [`WorkflowDefinition`]; after that the
//! types guarantee what was checked (every state an action names exists, every timer names an action
//! leaving its state, every state can reach a terminal one).

mod load;

pub use load::{MAX_EVIDENCE_FILES, Problem, load};

use crate::Role;

/// A checked workflow definition.
#[derive(Debug, Clone)]
pub struct WorkflowDefinition {
    /// Stable identifier, e.g. `negative-rating`.
    pub id: String,
    /// Version of the definition; cases remember the version they were opened under.
    pub version: u32,
    /// Chinese name.
    pub label: String,
    /// English name.
    pub label_en: String,
    /// The state a new case or item starts in.
    pub initial: String,
    /// Deployment settings (reopen limit, reminders).
    pub settings: Settings,
    /// The limit across states (整改反馈时限), when the workflow has one.
    pub overall: Option<OverallLimit>,
    /// Every state, in file order.
    pub states: Vec<StateDef>,
    /// Every action, in file order.
    pub actions: Vec<ActionDef>,
}

/// Per-deployment settings of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How many times the rater may reopen a case before it is escalated (default 1).
    pub reopen_limit: u32,
    /// "Due soon" reminders go out this many working days before a deadline (default 1).
    pub due_soon_working_days: u32,
    /// An overdue case is escalated (督办) after this many further working days (default 1).
    pub escalate_after_working_days: u32,
    /// How many appeals one case may have over its life (default 1).
    pub appeal_limit: u32,
    /// An appeal is filed within this many working days after the transfer (default 3).
    pub appeal_window_working_days: u32,
    /// Whether a case closed as unreachable after the documented attempts counts as visited in
    /// 回访率 (default true).
    pub unreachable_counts_as_visited: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reopen_limit: 1,
            due_soon_working_days: 1,
            escalate_after_working_days: 1,
            appeal_limit: 1,
            appeal_window_working_days: 3,
            unreachable_counts_as_visited: true,
        }
    }
}

/// A limit across states (整改反馈时限): working days from the opening until the case first reaches
/// one of `until` (or a terminal state); the clock pauses while the case is in a pausing state and
/// takes every extension granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverallLimit {
    /// Chinese label, e.g. 整改反馈时限.
    pub label: String,
    /// The working days from the opening.
    pub time_limit_days: u32,
    /// The states that meet it.
    pub until: Vec<String>,
}

/// One state (状态).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDef {
    /// Stable identifier, e.g. `rectifying`.
    pub id: String,
    /// Chinese label, e.g. 核实整改中.
    pub label: String,
    /// English label.
    pub label_en: String,
    /// The time limit in working days, `None` when the state has none.
    pub time_limit_days: Option<u32>,
    /// The most working days extensions may bring the limit to: every extension the case is granted
    /// over its whole life counts against it, whatever states it passed through in between.
    pub max_time_limit_days: Option<u32>,
    /// Whether a case in this state has ended (it may still be reopened by an action).
    pub terminal: bool,
    /// The state whose clock stops while a case is here, resuming with the time that was left.
    pub pauses: Option<String>,
    /// The action the scheduler takes when this state's time runs out.
    pub on_timeout: Option<String>,
}

/// One action (操作).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDef {
    /// Stable identifier, e.g. `transfer`.
    pub id: String,
    /// Chinese label, e.g. 转办.
    pub label: String,
    /// English label.
    pub label_en: String,
    /// The states it may be taken from.
    pub from: Vec<String>,
    /// The state it leads to; empty for an action that [`stays`](Self::stays).
    pub to: String,
    /// Whether it leaves the case in the state it was taken from, whichever of `from` that is (a
    /// 追评 recorded on the case).
    pub stays: bool,
    /// The roles allowed to take it.
    pub roles: Vec<Role>,
    /// The fields it records.
    pub fields: Vec<FieldDef>,
    /// Conditions that must hold.
    pub guards: Vec<Guard>,
    /// What else it changes on the case.
    pub effects: Vec<EffectDef>,
    /// Metric marks (e.g. `rectified`) the metrics count.
    pub marks: Vec<Mark>,
    /// Notifications it queues.
    pub notify: Vec<NotifyDef>,
    /// Whether unit staff of a work item's co-units (配合单位) may take it too, not only its lead units.
    pub co_units: bool,
    /// Whether only unit staff of its co-units take it (报送配合情况); the co-unit is recorded with it
    /// (field `unit`).
    pub co_units_only: bool,
    /// Whether a supervisor takes it only from above the responsible unit: their unit must be an
    /// ancestor of it, never the unit itself (an appeal is not decided by the appealing unit's own
    /// supervisor).
    pub decided_above: bool,
}

impl ActionDef {
    /// The state the action leads to when taken from `from`.
    pub fn target<'a>(&'a self, from: &'a str) -> &'a str {
        if self.stays { from } else { &self.to }
    }

    /// The field of this name, if the action has one.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The text written for publication (公开答复) among `recorded`, if the action takes one and it
    /// was given.
    pub fn public_text<'f>(
        &self,
        recorded: &'f serde_json::Map<String, serde_json::Value>,
    ) -> Option<&'f str> {
        self.fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Text { public: true, .. }))
            .find_map(|f| recorded.get(&f.name)?.as_str())
    }
}

/// One field an action records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// The name in the API's `fields` object.
    pub name: String,
    /// Chinese label for forms.
    pub label: String,
    /// Whether it must be given (for a field taken only `when` a choice is made: whether it must be
    /// given then).
    pub required: bool,
    /// Its type.
    pub kind: FieldKind,
    /// Taken only when another field of the action has a value (限期整改's `due` only with the
    /// outcome `scheduled`): required then, refused otherwise.
    pub when: Option<FieldCondition>,
    /// Optional, but required when another field of the action has a value (the evidence of a
    /// rectification with the outcome `rectified`).
    pub required_when: Option<FieldCondition>,
    /// Optional, but required on a case whose rater rated anonymously (the public reply: the only
    /// answer such a rater can get).
    pub required_if_anonymous: bool,
}

/// A condition on another field of the same action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCondition {
    /// The other field (an enum).
    pub field: String,
    /// The value it must have.
    pub equals: String,
}

/// The type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text, trimmed, not empty when given, at most `max_chars` characters. A `public` text is
    /// written for publication (公开答复): refused when it holds personal data (a known name, a
    /// phone number, an email address, a certificate number).
    Text { max_chars: usize, public: bool },
    /// One of a fixed set of values.
    Enum { options: Vec<EnumOption> },
    /// A whole number in a range.
    Integer { min: i64, max: i64 },
    /// The code of a unit of the organization.
    Unit,
    /// An instant in RFC 3339; when `default_now`, a missing value records the action's time.
    DateTime { default_now: bool },
    /// A calendar day, `YYYY-MM-DD` (a due date).
    Date,
    /// Files attached to the subject (整改佐证材料), cited by their ids, at most `max_files`; recorded
    /// in the event with each file's name, size and SHA-256, so the hash chain covers the evidence.
    Evidence { max_files: usize },
}

/// One allowed value of an enum field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumOption {
    /// The value sent in the API.
    pub value: String,
    /// The Chinese label.
    pub label: String,
}

/// A condition an action needs besides its state and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// At least `count` `action` events since the case entered its current state.
    MinActionsInState { action: String, count: u32 },
    /// The reopen count is still under the workflow's reopen limit.
    ReopenCountBelowLimit,
    /// The case was reopened by 不满意 reviews past the workflow's reopen limit (and so escalated):
    /// 认定办结 only ends a loop that would not close, never one merely overdue (督办 escalates those
    /// too, and they still owe their rectification).
    ReopenLimitExceeded,
    /// A unit's request for more time waits for a supervisor's answer.
    ExtensionRequested,
    /// No request for more time is waiting (a unit asks once at a time).
    NoExtensionRequested,
    /// A scheduled rectification (限期整改) waits to be reported done.
    ScheduledOpen,
}

impl Guard {
    /// The guard's identifier, named in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Guard::MinActionsInState { .. } => "min_actions_in_state",
            Guard::ReopenCountBelowLimit => "reopen_count_below_limit",
            Guard::ReopenLimitExceeded => "reopen_limit_exceeded",
            Guard::ExtensionRequested => "extension_requested",
            Guard::NoExtensionRequested => "no_extension_requested",
            Guard::ScheduledOpen => "scheduled_open",
        }
    }
}

/// A change an action makes besides moving the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectDef {
    /// The unit named in the field becomes the responsible unit (承办单位).
    SetResponsibleUnit { field: String },
    /// The case goes back to the center: it has no responsible unit any more.
    ClearResponsibleUnit,
    /// The field's working days are added to the current deadline, within the state's maximum
    /// counted over the case's life; a waiting request for more time is answered by it.
    ExtendDeadline { field: String },
    /// A unit asks for the field's working days more (申请延期): the request waits for a supervisor,
    /// and is refused at once when granting it would pass the cap.
    RequestExtension { field: String },
    /// A waiting request for more time is refused (不予延期).
    DenyExtension,
    /// An appeal (申诉): counted over the case's life against the appeal limit, and only within the
    /// appeal window after the transfer.
    Appeal,
    /// The reopen count rises; past the reopen limit the case is escalated to supervisors.
    Reopen,
    /// 建立台账、限期整改: with the field's date (a day after today) the rectification is tracked
    /// until done, with its own reminders; without it (another outcome) a scheduled one before is
    /// superseded.
    Schedule { field: String },
    /// The scheduled rectification is reported done (限期整改完成).
    CompleteScheduled,
}

/// What an action counts as in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// 已整改: counts in 差评整改率.
    Rectified,
    /// 已回访: counts in 回访率.
    ReturnVisited,
    /// 评议满意.
    ReviewSatisfied,
    /// 评议不满意.
    ReviewUnsatisfied,
    /// 评议超时.
    ReviewTimedOut,
    /// 申诉成立: the case leaves the denominators.
    AppealUpheld,
    /// 审核不通过.
    AuditFailed,
    /// A work item's target value reported (fields `target` and `value`).
    TargetReported,
    /// A work item's periodic progress report (进展报告): it settles the period's report.
    ProgressReported,
    /// A 追评 recorded on the case (the rater's later rating of the same handled item).
    FollowUp,
    /// A co-unit's report of its share of a work item (报送配合情况).
    ShareReported,
    /// 无法联系办结: closed after the documented attempts to reach the rater.
    Unreachable,
}

impl Mark {
    /// Every mark with its identifier.
    pub const ALL: [(Mark, &'static str); 12] = [
        (Mark::Rectified, "rectified"),
        (Mark::ReturnVisited, "return_visited"),
        (Mark::ReviewSatisfied, "review_satisfied"),
        (Mark::ReviewUnsatisfied, "review_unsatisfied"),
        (Mark::ReviewTimedOut, "review_timed_out"),
        (Mark::AppealUpheld, "appeal_upheld"),
        (Mark::AuditFailed, "audit_failed"),
        (Mark::TargetReported, "target_reported"),
        (Mark::ProgressReported, "progress_reported"),
        (Mark::FollowUp, "follow_up"),
        (Mark::ShareReported, "share_reported"),
        (Mark::Unreachable, "unreachable"),
    ];

    /// The identifier used in files.
    pub fn as_str(self) -> &'static str {
        Mark::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("", |(_, s)| s)
    }
}

/// A notification an action queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyDef {
    /// The notification's kind, e.g. `case_assigned`; mail templates are chosen by it.
    pub kind: String,
    /// Who receives it.
    pub audience: Audience,
}

/// Who a notification goes to; the store resolves it to addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The responsible units and their unit staff.
    ResponsibleUnit,
    /// The center staff of the organization the case belongs to.
    Center,
    /// The supervisors of the responsible unit's ancestors.
    Supervisors,
    /// The rater, when they left an email: a one-time link to answer the review.
    Rater,
}

impl Audience {
    /// Every audience with its identifier.
    pub const ALL: [(Audience, &'static str); 4] = [
        (Audience::ResponsibleUnit, "responsible_unit"),
        (Audience::Center, "center"),
        (Audience::Supervisors, "supervisors"),
        (Audience::Rater, "rater"),
    ];

    /// The audience of an identifier, if it names one.
    pub fn parse(name: &str) -> Option<Audience> {
        Audience::ALL
            .into_iter()
            .find(|(_, s)| *s == name)
            .map(|(a, _)| a)
    }

    /// The identifier used in files and outbox rows.
    pub fn as_str(self) -> &'static str {
        Audience::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("", |(_, s)| s)
    }
}

impl WorkflowDefinition {
    /// The state of this id.
    pub fn state(&self, id: &str) -> Option<&StateDef> {
        self.states.iter().find(|s| s.id == id)
    }

    /// The action of this id.
    pub fn action(&self, id: &str) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.id == id)
    }

    /// The actions carrying a mark, in file order: code finds "the rectification" or "the rater's
    /// review" by what an action counts as, never by its id.
    pub fn actions_marked(&self, mark: Mark) -> impl Iterator<Item = &ActionDef> {
        self.actions.iter().filter(move |a| a.marks.contains(&mark))
    }
}

impl FieldDef {
    /// The label of one of an enum field's values; `None` for another kind or an unknown value.
    pub fn option_label(&self, value: &str) -> Option<&str> {
        match &self.kind {
            FieldKind::Enum { options } => options
                .iter()
                .find(|o| o.value == value)
                .map(|o| o.label.as_str()),
            _ => None,
        }
    }
}

impl ActionDef {
    /// The working days an extension recorded with `fields` granted (the field of its
    /// `extend_deadline` effect); 0 for an action that grants none.
    pub fn granted_days(&self, fields: &serde_json::Map<String, serde_json::Value>) -> u32 {
        self.effects
            .iter()
            .find_map(|e| match e {
                EffectDef::ExtendDeadline { field } => {
                    fields.get(field).and_then(serde_json::Value::as_u64)
                }
                _ => None,
            })
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(0)
    }

    /// How a field taken only `when` another has a value says so: the other field's label and the
    /// value's (their names where the file has no label).
    pub fn condition_words<'a>(&'a self, when: &'a FieldCondition) -> (&'a str, &'a str) {
        let other = self.field(&when.field);
        (
            other.map_or(when.field.as_str(), |o| o.label.as_str()),
            other
                .and_then(|o| o.option_label(&when.equals))
                .unwrap_or(&when.equals),
        )
    }

    /// Whether the action carries a mark.
    pub fn has_mark(&self, mark: Mark) -> bool {
        self.marks.contains(&mark)
    }

    /// The first field of a kind (`text`, `enum`, …) as `FieldKind` names it.
    pub fn first_field(&self, kind: fn(&FieldKind) -> bool) -> Option<&FieldDef> {
        self.fields.iter().find(|f| kind(&f.kind))
    }
}
