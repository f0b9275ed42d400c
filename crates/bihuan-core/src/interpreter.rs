//! The interpreter: a pure function from a case as it is, an action asked, who asks and when, to the
//! decision (new state, recorded fields, new deadline, effects as values) or a typed refusal.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::Role;
use crate::calendar::{Deadline, DeadlineBasis, WorkingCalendar};
use crate::workflow::{
    ActionDef, Audience, EffectDef, FieldDef, FieldKind, Guard, StateDef, WorkflowDefinition,
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
    /// Its deadline and paused clock.
    pub timing: Timing,
    /// How many times each action was taken since it entered its current state.
    pub actions_in_state: BTreeMap<String, u32>,
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
    /// The deadline side after the action.
    pub timing: Timing,
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
    /// A supervisor acted on a work item led by no unit of their subtree (they see it only as the
    /// supervisor of a co-unit).
    #[error("该工作任务的牵头单位不在您的督查范围内，不能执行操作 {action}")]
    LeadUnitOutOfScope { action: String },
    /// A required field is missing or empty.
    #[error("缺少必填字段 {field}（{label}）")]
    MissingField { field: String, label: String },
    /// A field has a value that does not fit its type.
    #[error("字段 {field} 无效：{reason}")]
    InvalidField { field: String, reason: String },
    /// A field the action does not take.
    #[error("操作 {action} 不接受字段 {field}")]
    UnknownField { action: String, field: String },
    /// A guard of the action does not hold.
    #[error("条件 {guard} 不满足：{message}")]
    GuardFailed { guard: String, message: String },
}

impl ActionError {
    /// A stable snake_case code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::UnknownAction { .. } => "unknown_action",
            ActionError::NotAllowedFromState { .. } => "action_not_allowed_in_state",
            ActionError::RoleNotAllowed { .. } => "role_not_allowed",
            ActionError::NotResponsibleUnit { .. } => "not_responsible_unit",
            ActionError::LeadUnitOutOfScope { .. } => "lead_unit_out_of_scope",
            ActionError::MissingField { .. } => "missing_field",
            ActionError::InvalidField { .. } => "invalid_field",
            ActionError::UnknownField { .. } => "unknown_field",
            ActionError::GuardFailed { .. } => "guard_failed",
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ActionError::MissingField { field, .. }
            | ActionError::InvalidField { field, .. }
            | ActionError::UnknownField { field, .. } => Some(field),
            _ => None,
        }
    }
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
        timer: timer_for(initial, &timing),
        timing,
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
    let mut recorded = check_fields(action, fields, now)?;
    check_guards(def, subject, action)?;

    let from_state = def.state(&subject.state);
    let to_state = def.state(&action.to);
    let mut decision = Decision {
        action: action.id.clone(),
        from: Some(subject.state.clone()),
        to: action.to.clone(),
        fields: Map::new(),
        responsible_units: subject.responsible_units.clone(),
        reopen_count: subject.reopen_count,
        escalated: subject.escalated,
        extension_days: subject.extension_days,
        timing: next_timing(cal, subject, from_state, to_state, now),
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
    if subject.state != action.to {
        decision.extension_days = 0;
    }

    for effect in &action.effects {
        match effect {
            EffectDef::SetResponsibleUnit { field } => {
                if let Some(Value::String(unit)) = recorded.get(field) {
                    decision.responsible_units = vec![unit.clone()];
                }
            }
            EffectDef::ClearResponsibleUnit => decision.responsible_units.clear(),
            EffectDef::ExtendDeadline { field } => {
                let days = recorded.get(field).and_then(Value::as_u64).unwrap_or(0);
                extend(cal, &mut decision, to_state, days, field)?;
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
    let mut subject = Subject {
        state: String::new(),
        responsible_units: Vec::new(),
        co_units: Vec::new(),
        reopen_count: 0,
        escalated: false,
        extension_days: 0,
        timing: Timing::default(),
        actions_in_state: BTreeMap::new(),
    };
    for step in steps {
        before.push(subject.timing.deadline.map(|d| d.at));
        let to_state = def.state(step.to);
        subject.timing = match step.from {
            None => fresh_timing(cal, to_state, step.at),
            Some(from) => next_timing(cal, &subject, def.state(from), to_state, step.at),
        };
        if step.from != Some(step.to) {
            subject.extension_days = 0;
        }
        let extension = def.action(step.action).and_then(|a| {
            a.effects.iter().find_map(|e| match e {
                EffectDef::ExtendDeadline { field } => {
                    step.fields.get(field).and_then(Value::as_u64)
                }
                _ => None,
            })
        });
        if let (Some(days), Some(basis)) = (extension, subject.timing.basis.as_mut()) {
            let days = u32::try_from(days).unwrap_or(0);
            basis.working_days += days;
            subject.extension_days += days;
            subject.timing.deadline = Some(cal.deadline(*basis));
        }
        subject.state = step.to.to_owned();
    }
    before
}

/// The actions `actor` may take now, judged by state, role, unit and guards (fields aside).
pub fn available_actions<'a>(
    def: &'a WorkflowDefinition,
    subject: &Subject,
    actor: &Actor,
) -> Vec<&'a ActionDef> {
    def.actions
        .iter()
        .filter(|a| a.from.contains(&subject.state))
        .filter(|a| check_permitted(def, subject, actor, a).is_ok())
        .filter(|a| check_guards(def, subject, a).is_ok())
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
    if actor.role == Role::UnitStaff {
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
        }
    }
    Ok(())
}

fn check_fields(
    action: &ActionDef,
    given: &Map<String, Value>,
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
        if let Some(value) = check_field(field, value, now)? {
            recorded.insert(field.name.clone(), value);
        } else if field.required {
            return Err(ActionError::MissingField {
                field: field.name.clone(),
                label: field.label.clone(),
            });
        }
    }
    Ok(recorded)
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
    for field in &action.fields {
        let value = given.get(&field.name).filter(|v| !v.is_null());
        match check_field(field, value, now) {
            Err(e) => problems.push(e),
            Ok(None) if field.required => problems.push(ActionError::MissingField {
                field: field.name.clone(),
                label: field.label.clone(),
            }),
            Ok(_) => {}
        }
    }
    problems
}

/// Checks one field; `Ok(None)` means absent (or empty text).
fn check_field(
    field: &FieldDef,
    value: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ActionError> {
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
        FieldKind::Text { max_chars } => {
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
    }
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

fn extend(
    cal: &WorkingCalendar,
    decision: &mut Decision,
    state: Option<&StateDef>,
    days: u64,
    field: &str,
) -> Result<(), ActionError> {
    let guard = |message: String| ActionError::GuardFailed {
        guard: "max_time_limit_days".to_owned(),
        message,
    };
    let Some(state) = state else {
        return Err(guard("状态不存在".to_owned()));
    };
    let (Some(limit), Some(basis)) = (state.time_limit_days, decision.timing.basis.as_mut()) else {
        return Err(guard(format!(
            "状态“{}”没有办理时限，无法延期",
            state.label
        )));
    };
    let days = u32::try_from(days).map_err(|_| ActionError::InvalidField {
        field: field.to_owned(),
        reason: "延期天数过大".to_owned(),
    })?;
    let total = u64::from(limit) + u64::from(decision.extension_days) + u64::from(days);
    if let Some(max) = state.max_time_limit_days
        && total > u64::from(max)
    {
        return Err(guard(format!(
            "延期后共 {total} 个工作日，超过上限 {max} 个工作日"
        )));
    }
    basis.working_days += days;
    decision.extension_days += days;
    decision.timing.deadline = Some(cal.deadline(*basis));
    Ok(())
}
