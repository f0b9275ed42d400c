//! The interpreter: a pure function from a case as it is, an action asked, who asks and when, to the
//! decision (new state, recorded fields, new deadline, effects as values) or a typed refusal.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::Role;
use crate::calendar::{Deadline, DeadlineBasis, WorkingCalendar};
use crate::evidence::EvidenceFile;
use crate::overall::OverallClock;
use crate::personal_data::{self, Found, KnownNames};
use crate::workflow::{
    ActionDef, Audience, EffectDef, FieldCondition, FieldDef, FieldKind, Guard, StateDef,
    WorkflowDefinition,
};

/// The action recorded when a case or item is opened.
pub const OPEN_ACTION: &str = "open";

/// A clock that stopped while the case was in a pausing state (e.g. appealing pauses rectifying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedClock {
    /// The state whose clock stopped.
    pub state: String,
    /// The whole working days that were left when it stopped.
    pub remaining_days: u32,
}

/// A scheduled rectification (建立台账、限期整改): the day the unit committed to, tracked until it
/// reports the rectification done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The due date (整改期限).
    pub due: NaiveDate,
    /// Its end, 24:00 local time: the deadline reminded.
    pub deadline: DateTime<Utc>,
    /// When it was reported done (限期整改完成).
    pub done_at: Option<DateTime<Utc>>,
}

impl Scheduled {
    /// The deadline still to meet: not yet done.
    pub fn open(&self) -> Option<DateTime<Utc>> {
        self.done_at.is_none().then_some(self.deadline)
    }
}

/// The deadline side of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timing {
    /// Where the current state's deadline comes from; `None` when the state has no time limit.
    pub basis: Option<DeadlineBasis>,
    /// The computed deadline of the current state.
    pub deadline: Option<Deadline>,
    /// A paused clock waiting to resume.
    pub paused: Option<PausedClock>,
}

/// A case or work item as it is now: what the interpreter needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The current state.
    pub state: String,
    /// The responsible units (承办单位; a work item's lead units). Empty before transfer.
    pub responsible_units: Vec<String>,
    /// A work item's co-units (配合单位): their staff may take the actions marked `co_units`.
    pub co_units: Vec<String>,
    /// How many times the rater reopened it.
    pub reopen_count: u32,
    /// Whether it has been escalated to supervisors.
    pub escalated: bool,
    /// Working days added by extensions since it entered its current state.
    pub extension_days: u32,
    /// Working days granted by extensions over its whole life (the cap counts these).
    pub extension_days_used: u32,
    /// The working days a unit asked for that wait for a supervisor's answer.
    pub extension_requested: Option<u32>,
    /// Appeals filed over its whole life.
    pub appeals_used: u32,
    /// When it was last transferred to the responsible unit (the appeal window starts then).
    pub transferred_at: Option<DateTime<Utc>>,
    /// The units above the responsible units in the organization (their ancestors, not themselves):
    /// whose supervisors may take the actions `decided_above`.
    pub responsible_ancestors: Vec<String>,
    /// Its deadline and paused clock.
    pub timing: Timing,
    /// Its overall limit (整改反馈时限).
    pub overall: OverallClock,
    /// Its scheduled rectification (限期整改), if its last rectification was one.
    pub scheduled: Option<Scheduled>,
    /// How many times each action was taken since it entered its current state.
    pub actions_in_state: BTreeMap<String, u32>,
    /// The files attached to it that the action asked cites (loaded for the action; empty
    /// otherwise): an evidence field may cite only these.
    pub evidence: Vec<EvidenceFile>,
    /// Whether its rater rated anonymously (a case's; never a work item's): a field
    /// `required_if_anonymous` (the public reply) is required then.
    pub anonymous_rater: bool,
    /// The names a text for publication must not hold (loaded for an action that takes one;
    /// empty otherwise).
    pub known_names: KnownNames,
}

impl Subject {
    /// A subject in `state` with nothing else recorded yet (what a replay starts from, and what
    /// tests build on).
    pub fn new(state: &str) -> Self {
        Self {
            state: state.to_owned(),
            responsible_units: Vec::new(),
            co_units: Vec::new(),
            reopen_count: 0,
            escalated: false,
            extension_days: 0,
            extension_days_used: 0,
            extension_requested: None,
            appeals_used: 0,
            transferred_at: None,
            responsible_ancestors: Vec::new(),
            timing: Timing::default(),
            overall: OverallClock::default(),
            scheduled: None,
            actions_in_state: BTreeMap::new(),
            evidence: Vec::new(),
            anonymous_rater: false,
            known_names: KnownNames::default(),
        }
    }
}

/// Whoever asks for the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The username, or `scheduler`, or `rater`, recorded on the event.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their unit, when they belong to one.
    pub unit: Option<String>,
}

impl Actor {
    /// The name the scheduler's actions are recorded under.
    pub const SCHEDULER: &'static str = "scheduler";
    /// The name the rater's answers through their link are recorded under.
    pub const RATER: &'static str = "rater";

    /// The scheduler (timers such as `review_timeout`).
    pub fn scheduler() -> Self {
        Self {
            name: Self::SCHEDULER.into(),
            role: Role::Scheduler,
            unit: None,
        }
    }

    /// The rater answering through their one-time link.
    pub fn rater() -> Self {
        Self {
            name: Self::RATER.into(),
            role: Role::Rater,
            unit: None,
        }
    }
}

/// A notification to queue, as a value; the store resolves the audience to addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The kind, e.g. `case_assigned`.
    pub kind: String,
    /// Who receives it.
    pub audience: Audience,
}

/// A timer to set: the scheduler takes `action` once `at` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The action to take.
    pub action: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an action does, for the store to carry out atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The action taken (`open` for the opening).
    pub action: String,
    /// The state before, `None` for the opening.
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// The recorded fields, checked and normalised.
    pub fields: Map<String, Value>,
    /// The responsible units after the action.
    pub responsible_units: Vec<String>,
    /// The reopen count after the action.
    pub reopen_count: u32,
    /// Whether the case is escalated after the action.
    pub escalated: bool,
    /// Extension days in the state after the action.
    pub extension_days: u32,
    /// Extension days granted over the case's life after the action.
    pub extension_days_used: u32,
    /// The working days asked for and not yet answered, after the action.
    pub extension_requested: Option<u32>,
    /// Appeals filed over the case's life after the action.
    pub appeals_used: u32,
    /// When it was last transferred, after the action.
    pub transferred_at: Option<DateTime<Utc>>,
    /// The deadline side after the action.
    pub timing: Timing,
    /// The overall limit after the action.
    pub overall: OverallClock,
    /// The scheduled rectification after the action.
    pub scheduled: Option<Scheduled>,
    /// The timer of the new state, if it has one.
    pub timer: Option<Timer>,
    /// Notifications to queue.
    pub notifications: Vec<Notification>,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The workflow has no such action.
    #[error("未知操作 {action}")]
    UnknownAction { action: String },
    /// The action cannot be taken from the current state.
    #[error("当前状态“{state_label}”不能执行操作 {action}")]
    NotAllowedFromState {
        action: String,
        state: String,
        state_label: String,
    },
    /// The actor's role may not take the action.
    #[error("角色 {role} 无权执行操作 {action}")]
    RoleNotAllowed { action: String, role: Role },
    /// A unit staff member acted on a case that is not their unit's.
    #[error("只有承办单位的工作人员可以执行操作 {action}")]
    NotResponsibleUnit { action: String },
    /// An action of the co-units (配合单位) was taken by someone of no co-unit.
    #[error("只有配合单位的工作人员可以执行操作 {action}")]
    NotCoUnit { action: String },
    /// A supervisor acted on a work item led by no unit of their subtree (they see it only as the
    /// supervisor of a co-unit).
    #[error("该工作任务的牵头单位不在您的督查范围内，不能执行操作 {action}")]
    LeadUnitOutOfScope { action: String },
    /// A required field is missing or empty.
    #[error("缺少必填字段 {field}（{label}）")]
    MissingField { field: String, label: String },
    /// Evidence is required and none was cited (upload the files first, then cite their ids).
    #[error("须附佐证材料：{label}（先上传文件，再在 {field} 中列出其编号）")]
    EvidenceRequired { field: String, label: String },
    /// A field has a value that does not fit its type.
    #[error("字段 {field} 无效：{reason}")]
    InvalidField { field: String, reason: String },
    /// A field the action does not take.
    #[error("操作 {action} 不接受字段 {field}")]
    UnknownField { action: String, field: String },
    /// A guard of the action does not hold.
    #[error("条件 {guard} 不满足：{message}")]
    GuardFailed { guard: String, message: String },
    /// Granting the days asked would pass the cap on extensions over the case's life.
    #[error(
        "延期上限为 {cap} 个工作日（含原办理时限 {limit} 个工作日），本工单已延期 {used} 个工作日，不能再延期 {asked} 个工作日"
    )]
    ExtensionLimit {
        limit: u32,
        cap: u32,
        used: u32,
        asked: u32,
    },
    /// The case has had all the appeals it may have.
    #[error("每件差评工单最多申诉 {limit} 次，已申诉 {used} 次")]
    AppealLimit { limit: u32, used: u32 },
    /// The appeal window after the transfer has passed.
    #[error("申诉须在转办后 {days} 个工作日内提出（截至 {closed}）")]
    AppealWindowClosed { days: u32, closed: String },
    /// A text written for publication (公开答复) holds personal data: a known name, a phone number,
    /// an email address or a certificate number (each named masked).
    #[error("{label}将向社会公开，不得含有个人信息：{}", found_words(found))]
    PersonalDataInReply {
        field: String,
        label: String,
        found: Vec<Found>,
    },
    /// A supervisor of the responsible unit itself (or of a unit beside it) decided what only a
    /// supervisor above it may decide.
    #[error("操作 {action} 须由承办单位的上级单位督查人员办理")]
    NotAboveResponsibleUnit { action: String },
}

impl ActionError {
    /// A stable snake_case code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::UnknownAction { .. } => "unknown_action",
            ActionError::NotAllowedFromState { .. } => "action_not_allowed_in_state",
            ActionError::RoleNotAllowed { .. } => "role_not_allowed",
            ActionError::NotResponsibleUnit { .. } => "not_responsible_unit",
            ActionError::NotCoUnit { .. } => "not_co_unit",
            ActionError::LeadUnitOutOfScope { .. } => "lead_unit_out_of_scope",
            ActionError::MissingField { .. } => "missing_field",
            ActionError::EvidenceRequired { .. } => "evidence_required",
            ActionError::InvalidField { .. } => "invalid_field",
            ActionError::UnknownField { .. } => "unknown_field",
            ActionError::GuardFailed { .. } => "guard_failed",
            ActionError::ExtensionLimit { .. } => "extension_limit",
            ActionError::AppealLimit { .. } => "appeal_limit",
            ActionError::AppealWindowClosed { .. } => "appeal_window_closed",
            ActionError::NotAboveResponsibleUnit { .. } => "unit_out_of_scope",
            ActionError::PersonalDataInReply { .. } => "personal_data_in_reply",
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ActionError::MissingField { field, .. }
            | ActionError::EvidenceRequired { field, .. }
            | ActionError::InvalidField { field, .. }
            | ActionError::PersonalDataInReply { field, .. }
            | ActionError::UnknownField { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// What personal data was found, in words: 电话号码 138****1234、姓名 张*.
fn found_words(found: &[Found]) -> String {
    found
        .iter()
        .map(|f| format!("{} {}", f.kind.label(), f.masked))
        .collect::<Vec<_>>()
        .join("、")
}

/// How a case or item starts: its initial state with the initial deadline.
pub fn open(def: &WorkflowDefinition, cal: &WorkingCalendar, now: DateTime<Utc>) -> Decision {
    let initial = def.state(&def.initial);
    let timing = fresh_timing(cal, initial, now);
    Decision {
        action: OPEN_ACTION.to_owned(),
        from: None,
        to: def.initial.clone(),
        fields: Map::new(),
        responsible_units: Vec::new(),
        reopen_count: 0,
        escalated: false,
        extension_days: 0,
        extension_days_used: 0,
        extension_requested: None,
        appeals_used: 0,
        transferred_at: None,
        timer: timer_for(initial, &timing),
        timing,
        overall: OverallClock::start(def, cal, now),
        scheduled: None,
        notifications: Vec::new(),
    }
}

/// Decides an action. Pure: everything it needs comes in as arguments.
pub fn decide(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    subject: &Subject,
    actor: &Actor,
    action_id: &str,
    fields: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Decision, ActionError> {
    let action = def
        .action(action_id)
        .ok_or_else(|| ActionError::UnknownAction {
            // Named back as sent, but no longer than an action's name can be.
            action: action_id.chars().take(64).collect(),
        })?;
    check_permitted(def, subject, actor, action)?;
    let mut recorded = check_fields(action, fields, subject, now)?;
    if action.co_units_only
        && let Some(unit) = &actor.unit
    {
        // Which co-unit reported: the field is the interpreter's, never the caller's.
        recorded.insert("unit".to_owned(), Value::String(unit.clone()));
    }
    check_guards(def, subject, action)?;
    check_limits(def, cal, subject, action, Some(&recorded), now)?;

    let target = action.target(&subject.state);
    let from_state = def.state(&subject.state);
    let to_state = def.state(target);
    let mut decision = Decision {
        action: action.id.clone(),
        from: Some(subject.state.clone()),
        to: target.to_owned(),
        fields: Map::new(),
        responsible_units: subject.responsible_units.clone(),
        reopen_count: subject.reopen_count,
        escalated: subject.escalated,
        extension_days: subject.extension_days,
        extension_days_used: subject.extension_days_used,
        extension_requested: subject.extension_requested,
        appeals_used: subject.appeals_used,
        transferred_at: subject.transferred_at,
        timing: next_timing(cal, subject, from_state, to_state, now),
        overall: OverallClock::default(),
        scheduled: subject.scheduled.clone(),
        timer: None,
        notifications: action
            .notify
            .iter()
            .map(|n| Notification {
                kind: n.kind.clone(),
                audience: n.audience,
            })
            .collect(),
    };
    if subject.state != target {
        // A new state starts its own clock; a request for more time on the old one lapses.
        decision.extension_days = 0;
        decision.extension_requested = None;
    }

    for effect in &action.effects {
        match effect {
            EffectDef::SetResponsibleUnit { field } => {
                if let Some(Value::String(unit)) = recorded.get(field) {
                    decision.responsible_units = vec![unit.clone()];
                    decision.transferred_at = Some(now);
                }
            }
            EffectDef::ClearResponsibleUnit => {
                decision.responsible_units.clear();
                decision.transferred_at = None;
            }
            EffectDef::ExtendDeadline { field } => {
                let days = days_of(&recorded, field)?;
                extend(cal, &mut decision, to_state, days)?;
                decision.extension_requested = None;
            }
            EffectDef::RequestExtension { field } => {
                decision.extension_requested = Some(days_of(&recorded, field)?);
            }
            EffectDef::DenyExtension => decision.extension_requested = None,
            EffectDef::Appeal => decision.appeals_used += 1,
            EffectDef::Schedule { field } => {
                decision.scheduled = scheduled_of(cal, &recorded, field, now)?;
            }
            EffectDef::CompleteScheduled => {
                if let Some(scheduled) = decision.scheduled.as_mut() {
                    scheduled.done_at = Some(now);
                }
            }
            EffectDef::Reopen => {
                decision.reopen_count += 1;
                if decision.reopen_count > def.settings.reopen_limit && !decision.escalated {
                    decision.escalated = true;
                    decision.notifications.push(Notification {
                        kind: "reopen_limit_exceeded".to_owned(),
                        audience: Audience::Supervisors,
                    });
                }
            }
        }
    }
    let granted = decision
        .extension_days_used
        .saturating_sub(subject.extension_days_used);
    decision.overall = subject.overall.after(def, cal, to_state, granted, now);
    decision.timer = timer_for(to_state, &decision.timing);
    decision.fields = std::mem::take(&mut recorded);
    Ok(decision)
}

/// One recorded step of a case, as its event log has it.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The action (`open` for the opening).
    pub action: &'a str,
    /// The state before; `None` for the opening.
    pub from: Option<&'a str>,
    /// The state after.
    pub to: &'a str,
    /// When.
    pub at: DateTime<Utc>,
    /// The recorded fields.
    pub fields: &'a Map<String, Value>,
}

/// Replays a case's recorded steps with the calendar: the deadline in force just before each step
/// (`None` before the opening and in states without a time limit). Pure, like [`decide`], whose
/// timing rules it follows: a new state starts its clock, a pausing state keeps what was left,
/// `extend` adds its working days.
pub fn deadlines_before(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    steps: &[Step<'_>],
) -> Vec<Option<DateTime<Utc>>> {
    let mut before = Vec::with_capacity(steps.len());
    replay_deadlines(def, cal, steps, |d| before.push(d));
    before
}

/// The deadline in force after the last of the recorded steps (`None` in a state without a time
/// limit, or paused), by the rules of [`deadlines_before`].
pub fn deadline_after(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    steps: &[Step<'_>],
) -> Option<DateTime<Utc>> {
    replay_deadlines(def, cal, steps, |_| ())
}

/// Replays the steps' timing: `before` is given the deadline in force just before each step; answers
/// the one in force after the last.
fn replay_deadlines(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    steps: &[Step<'_>],
    mut before: impl FnMut(Option<DateTime<Utc>>),
) -> Option<DateTime<Utc>> {
    let mut subject = Subject::new("");
    for step in steps {
        before(subject.timing.deadline.map(|d| d.at));
        let to_state = def.state(step.to);
        subject.timing = match step.from {
            None => fresh_timing(cal, to_state, step.at),
            Some(from) => next_timing(cal, &subject, def.state(from), to_state, step.at),
        };
        if step.from != Some(step.to) {
            subject.extension_days = 0;
        }
        let days = def
            .action(step.action)
            .map_or(0, |a| a.granted_days(step.fields));
        if let (true, Some(basis)) = (days > 0, subject.timing.basis.as_mut()) {
            basis.working_days += days;
            subject.extension_days += days;
            subject.timing.deadline = Some(cal.deadline(*basis));
        }
        subject.state = step.to.to_owned();
    }
    subject.timing.deadline.map(|d| d.at)
}

/// The actions `actor` may take at `now`, judged by state, role, unit, guards and the limits over
/// the case's life (fields aside).
pub fn available_actions<'a>(
    def: &'a WorkflowDefinition,
    cal: &WorkingCalendar,
    subject: &Subject,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Vec<&'a ActionDef> {
    def.actions
        .iter()
        .filter(|a| a.from.contains(&subject.state))
        .filter(|a| check_permitted(def, subject, actor, a).is_ok())
        .filter(|a| check_guards(def, subject, a).is_ok())
        .filter(|a| check_limits(def, cal, subject, a, None, now).is_ok())
        .collect()
}

fn check_permitted(
    def: &WorkflowDefinition,
    subject: &Subject,
    actor: &Actor,
    action: &ActionDef,
) -> Result<(), ActionError> {
    if !action.from.contains(&subject.state) {
        return Err(ActionError::NotAllowedFromState {
            action: action.id.clone(),
            state: subject.state.clone(),
            state_label: def
                .state(&subject.state)
                .map_or_else(|| subject.state.clone(), |s| s.label.clone()),
        });
    }
    if !action.roles.contains(&actor.role) {
        return Err(ActionError::RoleNotAllowed {
            action: action.id.clone(),
            role: actor.role,
        });
    }
    if actor.role == Role::UnitStaff && action.co_units_only {
        if !actor
            .unit
            .as_ref()
            .is_some_and(|u| subject.co_units.contains(u))
        {
            return Err(ActionError::NotCoUnit {
                action: action.id.clone(),
            });
        }
    } else if actor.role == Role::UnitStaff {
        let own = actor.unit.as_ref().is_some_and(|u| {
            subject.responsible_units.contains(u)
                || (action.co_units && subject.co_units.contains(u))
        });
        if !own {
            return Err(ActionError::NotResponsibleUnit {
                action: action.id.clone(),
            });
        }
    }
    if action.decided_above
        && actor.role == Role::Supervisor
        && !actor
            .unit
            .as_ref()
            .is_some_and(|u| subject.responsible_ancestors.contains(u))
    {
        return Err(ActionError::NotAboveResponsibleUnit {
            action: action.id.clone(),
        });
    }
    Ok(())
}

fn check_guards(
    def: &WorkflowDefinition,
    subject: &Subject,
    action: &ActionDef,
) -> Result<(), ActionError> {
    for guard in &action.guards {
        match guard {
            Guard::MinActionsInState {
                action: counted,
                count,
            } => {
                let done = subject.actions_in_state.get(counted).copied().unwrap_or(0);
                if done < *count {
                    let label = def
                        .action(counted)
                        .map_or(counted.as_str(), |a| a.label.as_str());
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: format!("需要至少 {count} 次“{label}”记录，目前 {done} 次"),
                    });
                }
            }
            Guard::ReopenCountBelowLimit => {
                if subject.reopen_count >= def.settings.reopen_limit {
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: format!(
                            "已重新办理 {} 次，达到上限 {}",
                            subject.reopen_count, def.settings.reopen_limit
                        ),
                    });
                }
            }
            Guard::ReopenLimitExceeded => {
                if subject.reopen_count <= def.settings.reopen_limit {
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: "工单尚未因多次评议不满意升级督办".to_owned(),
                    });
                }
            }
            Guard::ExtensionRequested => {
                if subject.extension_requested.is_none() {
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: "没有待审批的延期申请".to_owned(),
                    });
                }
            }
            Guard::ScheduledOpen => {
                if subject
                    .scheduled
                    .as_ref()
                    .and_then(Scheduled::open)
                    .is_none()
                {
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: "没有待完成的限期整改".to_owned(),
                    });
                }
            }
            Guard::NoExtensionRequested => {
                if let Some(days) = subject.extension_requested {
                    return Err(ActionError::GuardFailed {
                        guard: guard.name().to_owned(),
                        message: format!("已有一项延期 {days} 个工作日的申请待审批"),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The limits over a case's life: the extension cap (for a grant and for a request alike) and the
/// appeal limit and window. With the `recorded` fields, for the days asked; without (the actions
/// offered before anything is filled in), for the least that can be asked, one working day.
fn check_limits(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    subject: &Subject,
    action: &ActionDef,
    recorded: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    for effect in &action.effects {
        match effect {
            EffectDef::ExtendDeadline { field } | EffectDef::RequestExtension { field } => {
                let asked = recorded.map_or(Ok(1), |r| days_of(r, field))?;
                check_extension_cap(def.state(action.target(&subject.state)), subject, asked)?;
            }
            EffectDef::Appeal => check_appeal(def, cal, subject, now)?,
            _ => {}
        }
    }
    Ok(())
}

/// The scheduled rectification a `schedule` effect makes of its date field: `None` without one
/// (another outcome); a date that is not after today is refused.
fn scheduled_of(
    cal: &WorkingCalendar,
    recorded: &Map<String, Value>,
    field: &str,
    now: DateTime<Utc>,
) -> Result<Option<Scheduled>, ActionError> {
    let Some(due) = recorded.get(field).and_then(Value::as_str) else {
        return Ok(None);
    };
    let invalid = |reason: String| ActionError::InvalidField {
        field: field.to_owned(),
        reason,
    };
    let due = NaiveDate::parse_from_str(due, "%Y-%m-%d")
        .map_err(|_| invalid(format!("“{due}”不是 YYYY-MM-DD 日期")))?;
    let today = cal.local_date(now);
    if due <= today {
        return Err(invalid(format!(
            "整改期限应晚于今天（{}）",
            today.format("%Y-%m-%d")
        )));
    }
    let next = due
        .succ_opt()
        .ok_or_else(|| invalid("日期超出范围".to_owned()))?;
    Ok(Some(Scheduled {
        due,
        deadline: cal.start_of_day(next),
        done_at: None,
    }))
}

/// The working days of an action's integer field (0 when absent).
fn days_of(recorded: &Map<String, Value>, field: &str) -> Result<u32, ActionError> {
    let days = recorded.get(field).and_then(Value::as_u64).unwrap_or(0);
    u32::try_from(days).map_err(|_| ActionError::InvalidField {
        field: field.to_owned(),
        reason: "延期天数过大".to_owned(),
    })
}

/// Whether `asked` more working days fit the state's cap, counting every extension the case was
/// granted over its life.
fn check_extension_cap(
    state: Option<&StateDef>,
    subject: &Subject,
    asked: u32,
) -> Result<(), ActionError> {
    let Some(state) = state else {
        return Ok(());
    };
    let (Some(limit), Some(cap)) = (state.time_limit_days, state.max_time_limit_days) else {
        return Ok(());
    };
    let total = u64::from(limit) + u64::from(subject.extension_days_used) + u64::from(asked);
    if total > u64::from(cap) {
        return Err(ActionError::ExtensionLimit {
            limit,
            cap,
            used: subject.extension_days_used,
            asked,
        });
    }
    Ok(())
}

/// Whether the case may still appeal: under the limit, and within the window after its transfer
/// (the window ends at 24:00 of its last working day).
fn check_appeal(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    let limit = def.settings.appeal_limit;
    if subject.appeals_used >= limit {
        return Err(ActionError::AppealLimit {
            limit,
            used: subject.appeals_used,
        });
    }
    let days = def.settings.appeal_window_working_days;
    let closed = |last_day: Option<chrono::NaiveDate>| ActionError::AppealWindowClosed {
        days,
        closed: last_day.map_or_else(
            || "未转办".to_owned(),
            |d| format!("{} 24:00", d.format("%Y-%m-%d")),
        ),
    };
    let Some(transferred) = subject.transferred_at else {
        return Err(closed(None));
    };
    let window = cal.deadline(DeadlineBasis {
        start: transferred,
        working_days: days,
    });
    if now >= window.at {
        return Err(closed(Some(cal.last_day(window.at))));
    }
    Ok(())
}

fn check_fields(
    action: &ActionDef,
    given: &Map<String, Value>,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ActionError> {
    if let Some(unknown) = given.keys().find(|k| action.field(k).is_none()) {
        return Err(ActionError::UnknownField {
            action: action.id.clone(),
            field: unknown.chars().take(64).collect(),
        });
    }
    let mut recorded = Map::new();
    for field in &action.fields {
        let value = given.get(&field.name).filter(|v| !v.is_null());
        if let Some(value) = check_field(field, value, Some(subject), now)? {
            recorded.insert(field.name.clone(), value);
        } else if (field.required && field.when.is_none())
            || (field.required_if_anonymous && subject.anonymous_rater)
        {
            return Err(missing(field));
        }
    }
    if let Some(problem) = conditional_problems(action, &recorded).into_iter().next() {
        return Err(problem);
    }
    Ok(recorded)
}

/// A required field left out: evidence is named as such (`evidence_required`).
fn missing(field: &FieldDef) -> ActionError {
    let (field_name, label) = (field.name.clone(), field.label.clone());
    match field.kind {
        FieldKind::Evidence { .. } => ActionError::EvidenceRequired {
            field: field_name,
            label,
        },
        _ => ActionError::MissingField {
            field: field_name,
            label,
        },
    }
}

/// The fields taken only `when` another has a value: missing while it has, or given while it has
/// not; and the fields `required_when` another has a value, missing while it has.
fn conditional_problems(action: &ActionDef, recorded: &Map<String, Value>) -> Vec<ActionError> {
    let mut problems = Vec::new();
    let holds =
        |c: &FieldCondition| recorded.get(&c.field).and_then(Value::as_str) == Some(&c.equals);
    for field in &action.fields {
        if let Some(required_when) = &field.required_when
            && holds(required_when)
            && !recorded.contains_key(&field.name)
        {
            problems.push(missing(field));
        }
        let Some(when) = &field.when else { continue };
        let holds = holds(when);
        let given = recorded.contains_key(&field.name);
        if holds && !given && field.required {
            problems.push(missing(field));
        } else if !holds && given {
            let (other, choice) = action.condition_words(when);
            problems.push(ActionError::InvalidField {
                field: field.name.clone(),
                reason: format!("仅在“{other}”为“{choice}”时填写"),
            });
        }
    }
    problems
}

/// Every problem with the fields given for an action, not only the first (forms show each beside its
/// field): unknown fields, values that do not fit, required fields missing.
pub fn field_problems(
    action: &ActionDef,
    given: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Vec<ActionError> {
    let mut problems: Vec<ActionError> = given
        .keys()
        .filter(|k| action.field(k).is_none())
        .map(|k| ActionError::UnknownField {
            action: action.id.clone(),
            field: k.clone(),
        })
        .collect();
    let mut recorded = Map::new();
    for field in &action.fields {
        let value = given.get(&field.name).filter(|v| !v.is_null());
        match check_field(field, value, None, now) {
            Err(e) => problems.push(e),
            Ok(None) if field.required && field.when.is_none() => {
                problems.push(missing(field));
            }
            Ok(Some(v)) => {
                recorded.insert(field.name.clone(), v);
            }
            Ok(None) => {}
        }
    }
    // A field already named (a value that does not fit) is not named again as missing.
    let named: BTreeSet<String> = problems
        .iter()
        .filter_map(|e| e.field().map(str::to_owned))
        .collect();
    problems.extend(
        conditional_problems(action, &recorded)
            .into_iter()
            .filter(|e| e.field().is_none_or(|f| !named.contains(f))),
    );
    problems
}

/// Checks one field; `Ok(None)` means absent (or empty text). Evidence is resolved against the
/// subject's files, and a text for publication checked against the names it knows (without the
/// subject, as for a form not yet sent, only the shape and the patterns are checked).
fn check_field(
    field: &FieldDef,
    value: Option<&Value>,
    subject: Option<&Subject>,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ActionError> {
    let attached = subject.map(|s| s.evidence.as_slice());
    let invalid = |reason: String| ActionError::InvalidField {
        field: field.name.clone(),
        reason,
    };
    let Some(value) = value else {
        return Ok(match field.kind {
            FieldKind::DateTime { default_now: true } => Some(Value::String(rfc3339(now))),
            _ => None,
        });
    };
    match &field.kind {
        FieldKind::Text { max_chars, public } => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid("应为文本".to_owned()))?
                .trim();
            if text.is_empty() {
                return Ok(None);
            }
            let chars = text.chars().count();
            if chars > *max_chars {
                return Err(invalid(format!("最多 {max_chars} 个字符，实际 {chars} 个")));
            }
            if *public {
                let nobody = KnownNames::default();
                let names = subject.map_or(&nobody, |s| &s.known_names);
                let found = personal_data::find(text, names);
                if !found.is_empty() {
                    return Err(ActionError::PersonalDataInReply {
                        field: field.name.clone(),
                        label: field.label.clone(),
                        found,
                    });
                }
            }
            Ok(Some(Value::String(text.to_owned())))
        }
        FieldKind::Enum { options } => {
            let text = value.as_str().map(str::trim).unwrap_or_default();
            if text.is_empty() && value.is_string() {
                return Ok(None);
            }
            if options.iter().any(|o| o.value == text) {
                Ok(Some(Value::String(text.to_owned())))
            } else {
                let allowed: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
                Err(invalid(format!("取值应为 {} 之一", allowed.join("、"))))
            }
        }
        FieldKind::Integer { min, max } => {
            let number = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) if s.trim().is_empty() => return Ok(None),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid("应为整数".to_owned()))?;
            if number < *min || number > *max {
                return Err(invalid(format!("应在 {min} 到 {max} 之间")));
            }
            Ok(Some(Value::from(number)))
        }
        FieldKind::Unit => {
            let code = value
                .as_str()
                .ok_or_else(|| invalid("应为单位编码".to_owned()))?
                .trim();
            if code.is_empty() {
                return Ok(None);
            }
            if code.chars().count() > 64 {
                return Err(invalid("单位编码过长".to_owned()));
            }
            Ok(Some(Value::String(code.to_owned())))
        }
        FieldKind::Date => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid("应为 YYYY-MM-DD 日期".to_owned()))?
                .trim();
            if text.is_empty() {
                return Ok(None);
            }
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| invalid(format!("“{}”不是 YYYY-MM-DD 日期", clip(text))))?;
            if !(2000..=2100).contains(&chrono::Datelike::year(&date)) {
                return Err(invalid("日期应在 2000 年到 2100 年之间".to_owned()));
            }
            Ok(Some(Value::String(date.format("%Y-%m-%d").to_string())))
        }
        FieldKind::DateTime { default_now } => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid("应为 RFC 3339 时间".to_owned()))?
                .trim();
            if text.is_empty() {
                return Ok(default_now.then(|| Value::String(rfc3339(now))));
            }
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|_| invalid(format!("“{text}”不是带时区的 RFC 3339 时间")))?
                .with_timezone(&Utc);
            if at > now + chrono::Duration::minutes(5) {
                return Err(invalid("时间不能晚于当前时间".to_owned()));
            }
            Ok(Some(Value::String(rfc3339(at))))
        }
        FieldKind::Evidence { max_files } => {
            let ids = cited_ids(value).ok_or_else(|| invalid("应为附件编号的列表".to_owned()))?;
            if ids.is_empty() {
                return Ok(None);
            }
            if ids.len() > *max_files {
                return Err(invalid(format!(
                    "最多列出 {max_files} 个附件，实际 {} 个",
                    ids.len()
                )));
            }
            let mut seen = BTreeSet::new();
            if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
                return Err(invalid(format!("附件 {} 重复列出", clip(twice))));
            }
            let Some(attached) = attached else {
                return Ok(Some(Value::Array(
                    ids.iter()
                        .map(|id| Value::String((*id).to_owned()))
                        .collect(),
                )));
            };
            let files = ids
                .iter()
                .map(|id| {
                    attached
                        .iter()
                        .find(|f| f.id.eq_ignore_ascii_case(id))
                        .map(EvidenceFile::recorded)
                        .ok_or_else(|| invalid(format!("附件 {} 不是本件已上传的材料", clip(id))))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(Value::Array(files)))
        }
    }
}

/// The attachment ids an evidence field's value cites: a list of ids (a single id is a list of
/// one), trimmed, empty ones left out; `None` when the value is no such thing.
pub fn cited_ids(value: &Value) -> Option<Vec<&str>> {
    fn one(v: &Value) -> Option<Option<&str>> {
        let text = v.as_str()?.trim();
        Some((!text.is_empty()).then_some(text))
    }
    match value {
        Value::Array(items) => items
            .iter()
            .map(one)
            .collect::<Option<Vec<_>>>()
            .map(|ids| ids.into_iter().flatten().collect()),
        Value::String(_) => one(value).map(|id| id.into_iter().collect()),
        _ => None,
    }
}

/// The start of a value named back in an error (a value is bounded by the request, not by this).
fn clip(text: &str) -> String {
    text.chars().take(32).collect()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The deadline side after moving from `from` to `to`.
fn next_timing(
    cal: &WorkingCalendar,
    subject: &Subject,
    from: Option<&StateDef>,
    to: Option<&StateDef>,
    now: DateTime<Utc>,
) -> Timing {
    let (Some(from), Some(to)) = (from, to) else {
        return fresh_timing(cal, to, now);
    };
    if from.id == to.id {
        // Staying in the state (contact attempts, extensions) keeps its clock running.
        return subject.timing.clone();
    }
    if to.pauses.as_deref() == Some(from.id.as_str()) {
        // Entering a pausing state: stop the clock of the state left, keeping what was left of it.
        let remaining = subject
            .timing
            .deadline
            .map_or(0, |d| cal.working_days_left(now, d.at));
        let mut timing = fresh_timing(cal, Some(to), now);
        timing.paused = Some(PausedClock {
            state: from.id.clone(),
            remaining_days: remaining,
        });
        return timing;
    }
    if let Some(paused) = subject.timing.paused.as_ref().filter(|p| p.state == to.id) {
        // Leaving the pausing state back to the paused one: the clock resumes with the time left.
        let basis = DeadlineBasis {
            start: now,
            working_days: paused.remaining_days,
        };
        return Timing {
            basis: Some(basis),
            deadline: Some(cal.deadline(basis)),
            paused: None,
        };
    }
    fresh_timing(cal, Some(to), now)
}

fn fresh_timing(cal: &WorkingCalendar, state: Option<&StateDef>, now: DateTime<Utc>) -> Timing {
    let basis = state
        .and_then(|s| s.time_limit_days)
        .map(|days| DeadlineBasis {
            start: now,
            working_days: days,
        });
    Timing {
        basis,
        deadline: basis.map(|b| cal.deadline(b)),
        paused: None,
    }
}

fn timer_for(state: Option<&StateDef>, timing: &Timing) -> Option<Timer> {
    let action = state?.on_timeout.clone()?;
    Some(Timer {
        action,
        at: timing.deadline?.at,
    })
}

/// Adds `days` to the deadline of the state the case stays in (the cap was checked before).
fn extend(
    cal: &WorkingCalendar,
    decision: &mut Decision,
    state: Option<&StateDef>,
    days: u32,
) -> Result<(), ActionError> {
    let guard = |message: String| ActionError::GuardFailed {
        guard: "max_time_limit_days".to_owned(),
        message,
    };
    let Some(state) = state else {
        return Err(guard("状态不存在".to_owned()));
    };
    let Some(basis) = decision.timing.basis.as_mut() else {
        return Err(guard(format!(
            "状态“{}”没有办理时限，无法延期",
            state.label
        )));
    };
    basis.working_days += days;
    decision.extension_days += days;
    decision.extension_days_used += days;
    decision.timing.deadline = Some(cal.deadline(*basis));
    Ok(())
}
