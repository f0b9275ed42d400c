//! Parsing a workflow file into a checked [`WorkflowDefinition`], naming every problem.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ActionDef, Audience, EffectDef, EnumOption, FieldCondition, FieldDef, FieldKind, Guard, Mark,
    NotifyDef, OverallLimit, Settings, StateDef, WorkflowDefinition,
};
use crate::Role;

/// One problem found in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (as given to [`load`]).
    pub file: String,
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

const DEFAULT_TEXT_MAX_CHARS: usize = 2000;
/// How many files an evidence field cites at most, unless the file says (`max`, up to
/// [`MAX_EVIDENCE_FILES`]).
const DEFAULT_EVIDENCE_FILES: usize = 20;
/// The most files one evidence field may cite.
pub const MAX_EVIDENCE_FILES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    workflow: RawWorkflow,
    #[serde(default)]
    settings: RawSettings,
    overall: Option<RawOverall>,
    #[serde(default)]
    states: Vec<RawState>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    id: Spanned<String>,
    version: Spanned<u32>,
    label: String,
    label_en: String,
    initial: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    reopen_limit: Option<u32>,
    due_soon_working_days: Option<u32>,
    escalate_after_working_days: Option<u32>,
    appeal_limit: Option<u32>,
    appeal_window_working_days: Option<u32>,
    unreachable_counts_as_visited: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverall {
    label: String,
    time_limit_days: Spanned<u32>,
    until: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    id: Spanned<String>,
    label: String,
    label_en: String,
    time_limit_days: Option<Spanned<u32>>,
    max_time_limit_days: Option<Spanned<u32>>,
    #[serde(default)]
    terminal: bool,
    pauses: Option<Spanned<String>>,
    on_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    id: Spanned<String>,
    label: String,
    label_en: String,
    from: Spanned<OneOrMany>,
    to: Option<Spanned<String>>,
    #[serde(default)]
    stays: bool,
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    fields: Vec<RawField>,
    #[serde(default)]
    guards: Vec<RawGuard>,
    #[serde(default)]
    effects: Vec<RawEffect>,
    #[serde(default)]
    marks: Vec<Spanned<String>>,
    #[serde(default)]
    notify: Vec<RawNotify>,
    #[serde(default)]
    co_units: bool,
    #[serde(default)]
    decided_above: bool,
    #[serde(default)]
    co_units_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    label: String,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default)]
    options: Vec<RawOption>,
    min: Option<i64>,
    max: Option<i64>,
    max_chars: Option<usize>,
    default: Option<Spanned<String>>,
    when: Option<Spanned<RawCondition>>,
    required_when: Option<Spanned<RawCondition>>,
    /// A text written for publication (公开答复): checked for personal data.
    #[serde(default)]
    public: bool,
    #[serde(default)]
    required_if_anonymous: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: String,
    equals: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    value: String,
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    kind: Spanned<String>,
    action: Option<Spanned<String>>,
    count: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEffect {
    kind: Spanned<String>,
    field: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    kind: Spanned<String>,
    to: Spanned<String>,
}

/// Collects problems with their line numbers.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let line = Some(self.line_of(spanned.span().start));
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line,
            message: message.into(),
        });
    }
}

/// Parses and checks a workflow file. `file` names it in the problems.
pub fn load(file: &str, text: &str) -> Result<WorkflowDefinition, Vec<Problem>> {
    let mut ck = Checker {
        file,
        text,
        problems: Vec::new(),
    };
    let raw = parse(&ck)?;

    if raw.workflow.id.get_ref().trim().is_empty() {
        ck.at(&raw.workflow.id, "the workflow id is empty");
    }
    if *raw.workflow.version.get_ref() == 0 {
        ck.at(&raw.workflow.version, "the workflow version starts at 1");
    }

    let state_ids = unique_ids(&mut ck, "state", raw.states.iter().map(|s| &s.id));
    let action_ids = unique_ids(&mut ck, "action", raw.actions.iter().map(|a| &a.id));
    if raw.states.is_empty() {
        ck.problems.push(Problem {
            file: file.to_owned(),
            line: None,
            message: "the workflow declares no [[states]]".to_owned(),
        });
    }
    if !state_ids.contains(raw.workflow.initial.get_ref()) {
        let initial = &raw.workflow.initial;
        ck.at(
            initial,
            format!("unknown initial state `{}`", initial.get_ref()),
        );
    }

    let states: Vec<StateDef> = raw
        .states
        .iter()
        .map(|s| check_state(&mut ck, s, &state_ids, &raw.actions))
        .collect();
    let actions: Vec<ActionDef> = raw
        .actions
        .iter()
        .map(|a| check_action(&mut ck, a, &state_ids, &action_ids))
        .collect();

    let overall = raw
        .overall
        .as_ref()
        .map(|o| check_overall(&mut ck, o, &state_ids));
    if ck.problems.is_empty() {
        check_graph(&mut ck, &raw, &states, &actions);
    }
    if !ck.problems.is_empty() {
        return Err(ck.problems);
    }

    Ok(WorkflowDefinition {
        id: raw.workflow.id.into_inner(),
        version: raw.workflow.version.into_inner(),
        label: raw.workflow.label,
        label_en: raw.workflow.label_en,
        initial: raw.workflow.initial.into_inner(),
        settings: settings(&raw.settings),
        overall,
        states,
        actions,
    })
}

/// Parses the TOML into the file's raw shape; a syntax or shape error is the one problem named.
fn parse(ck: &Checker<'_>) -> Result<RawFile, Vec<Problem>> {
    toml::from_str(ck.text).map_err(|e| {
        vec![Problem {
            file: ck.file.to_owned(),
            line: e.span().map(|s| ck.line_of(s.start)),
            message: e.message().trim().to_owned(),
        }]
    })
}

/// The set of ids of one kind (`what`: state or action), naming each id declared twice.
fn unique_ids<'a>(
    ck: &mut Checker<'_>,
    what: &str,
    ids: impl Iterator<Item = &'a Spanned<String>>,
) -> BTreeSet<String> {
    let mut unique = BTreeSet::new();
    for id in ids {
        if !unique.insert(id.get_ref().clone()) {
            ck.at(id, format!("duplicate {what} id `{}`", id.get_ref()));
        }
    }
    unique
}

/// The file's settings, each one it leaves out taken from [`Settings::default`].
fn settings(raw: &RawSettings) -> Settings {
    let defaults = Settings::default();
    Settings {
        reopen_limit: raw.reopen_limit.unwrap_or(defaults.reopen_limit),
        due_soon_working_days: raw
            .due_soon_working_days
            .unwrap_or(defaults.due_soon_working_days),
        escalate_after_working_days: raw
            .escalate_after_working_days
            .unwrap_or(defaults.escalate_after_working_days),
        appeal_limit: raw.appeal_limit.unwrap_or(defaults.appeal_limit),
        appeal_window_working_days: raw
            .appeal_window_working_days
            .unwrap_or(defaults.appeal_window_working_days),
        unreachable_counts_as_visited: raw
            .unreachable_counts_as_visited
            .unwrap_or(defaults.unreachable_counts_as_visited),
    }
}

/// The limit across states: at least one working day, met by at least one declared state.
fn check_overall(
    ck: &mut Checker<'_>,
    o: &RawOverall,
    state_ids: &BTreeSet<String>,
) -> OverallLimit {
    if *o.time_limit_days.get_ref() == 0 {
        ck.at(
            &o.time_limit_days,
            "[overall]: time_limit_days must be at least 1",
        );
    }
    if o.until.get_ref().is_empty() {
        ck.at(&o.until, "[overall]: `until` names no state");
    }
    for state in o.until.get_ref() {
        if !state_ids.contains(state) {
            ck.at(
                &o.until,
                format!("[overall]: unknown state `{state}` in `until`"),
            );
        }
    }
    OverallLimit {
        label: o.label.clone(),
        time_limit_days: *o.time_limit_days.get_ref(),
        until: o.until.get_ref().clone(),
    }
}

fn check_state(
    ck: &mut Checker<'_>,
    s: &RawState,
    state_ids: &BTreeSet<String>,
    actions: &[RawAction],
) -> StateDef {
    let id = s.id.get_ref();
    if let Some(limit) = &s.time_limit_days {
        if *limit.get_ref() == 0 {
            ck.at(
                limit,
                format!("state `{id}`: time_limit_days must be at least 1"),
            );
        }
        if s.terminal {
            ck.at(
                limit,
                format!("terminal state `{id}` cannot have a time limit"),
            );
        }
    }
    if let Some(max) = &s.max_time_limit_days {
        match &s.time_limit_days {
            None => ck.at(
                max,
                format!("state `{id}`: max_time_limit_days needs time_limit_days"),
            ),
            Some(limit) if max.get_ref() < limit.get_ref() => ck.at(
                max,
                format!("state `{id}`: max_time_limit_days is below time_limit_days"),
            ),
            Some(_) => {}
        }
    }
    if let Some(paused) = &s.pauses {
        if !state_ids.contains(paused.get_ref()) {
            ck.at(
                paused,
                format!("state `{id}` pauses unknown state `{}`", paused.get_ref()),
            );
        } else if paused.get_ref() == id {
            ck.at(paused, format!("state `{id}` cannot pause its own clock"));
        }
    }
    if let Some(timer) = &s.on_timeout {
        match actions.iter().find(|a| a.id.get_ref() == timer.get_ref()) {
            None => ck.at(
                timer,
                format!(
                    "state `{id}`: on_timeout names unknown action `{}`",
                    timer.get_ref()
                ),
            ),
            Some(a) if !from_list(&a.from).contains(&id) => ck.at(
                timer,
                format!(
                    "state `{id}`: timer action `{}` cannot be taken from `{id}`",
                    timer.get_ref()
                ),
            ),
            Some(a) if !a.fields.iter().all(|f| !f.required || has_default(f)) => ck.at(
                timer,
                format!(
                    "state `{id}`: timer action `{}` has required fields the scheduler cannot fill",
                    timer.get_ref()
                ),
            ),
            Some(_) => {}
        }
        if s.time_limit_days.is_none() {
            ck.at(
                timer,
                format!("state `{id}` has a timer but no time_limit_days"),
            );
        }
    }
    StateDef {
        id: id.clone(),
        label: s.label.clone(),
        label_en: s.label_en.clone(),
        time_limit_days: s.time_limit_days.as_ref().map(|v| *v.get_ref()),
        max_time_limit_days: s.max_time_limit_days.as_ref().map(|v| *v.get_ref()),
        terminal: s.terminal,
        pauses: s.pauses.as_ref().map(|v| v.get_ref().clone()),
        on_timeout: s.on_timeout.as_ref().map(|v| v.get_ref().clone()),
    }
}

fn has_default(f: &RawField) -> bool {
    f.default.as_ref().is_some_and(|d| d.get_ref() == "now")
}

fn from_list(from: &Spanned<OneOrMany>) -> Vec<&String> {
    match from.get_ref() {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many.iter().collect(),
    }
}

/// Checks one action and builds its definition; the checks run in a fixed order, so its problems are named in that order.
fn check_action(
    ck: &mut Checker<'_>,
    a: &RawAction,
    state_ids: &BTreeSet<String>,
    action_ids: &BTreeSet<String>,
) -> ActionDef {
    let from = check_transition(ck, a, state_ids);
    let roles = check_roles(ck, a);
    let fields = check_fields(ck, a);
    let guards = check_guards(ck, a, action_ids);
    let effects = check_effects(ck, a);
    let marks = check_marks(ck, a);
    let notify = check_notify(ck, a);
    ActionDef {
        id: a.id.get_ref().clone(),
        label: a.label.clone(),
        label_en: a.label_en.clone(),
        from,
        to: a
            .to
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default(),
        stays: a.stays,
        roles,
        fields,
        guards,
        effects,
        marks,
        notify,
        co_units: a.co_units,
        decided_above: a.decided_above,
        co_units_only: a.co_units_only,
    }
}

/// The states an action is taken from: at least one, each declared, and its `to` declared too.
fn check_transition(
    ck: &mut Checker<'_>,
    a: &RawAction,
    state_ids: &BTreeSet<String>,
) -> Vec<String> {
    let id = a.id.get_ref();
    let from = from_list(&a.from);
    if from.is_empty() {
        ck.at(&a.id, format!("action `{id}` has an empty `from`"));
    }
    for f in &from {
        if !state_ids.contains(*f) {
            ck.at(
                &a.from,
                format!("action `{id}`: unknown state `{f}` in `from`"),
            );
        }
    }
    match (&a.to, a.stays) {
        (Some(to), false) if !state_ids.contains(to.get_ref()) => ck.at(
            to,
            format!("action `{id}`: unknown state `{}` in `to`", to.get_ref()),
        ),
        (Some(to), true) => ck.at(
            to,
            format!("action `{id}`: an action that stays has no `to`"),
        ),
        (None, false) => ck.at(
            &a.id,
            format!("action `{id}` has no `to` (or `stays = true`)"),
        ),
        _ => {}
    }
    from.into_iter().cloned().collect()
}

/// The roles allowed to take an action: at least one, each a known role.
fn check_roles(ck: &mut Checker<'_>, a: &RawAction) -> Vec<Role> {
    let id = a.id.get_ref();
    let mut roles = Vec::new();
    if a.roles.is_empty() {
        ck.at(&a.id, format!("action `{id}` allows no role"));
    }
    for r in &a.roles {
        match r.get_ref().parse::<Role>() {
            Ok(role) => roles.push(role),
            Err(e) => ck.at(r, format!("action `{id}`: {e}")),
        }
    }
    roles
}

/// The fields of an action's form: each name once, each field checked on its own.
fn check_fields(ck: &mut Checker<'_>, a: &RawAction) -> Vec<FieldDef> {
    let id = a.id.get_ref();
    let mut fields = Vec::new();
    let mut names = BTreeSet::new();
    for f in &a.fields {
        if !names.insert(f.name.get_ref().clone()) {
            ck.at(
                &f.name,
                format!("action `{id}`: duplicate field `{}`", f.name.get_ref()),
            );
        }
        if let Some(field) = check_field(ck, id, f) {
            fields.push(field);
        }
    }
    for f in &a.fields {
        for (key, condition) in [("when", &f.when), ("required_when", &f.required_when)] {
            let Some(when) = condition else { continue };
            let cond = when.get_ref();
            let other = fields.iter().find(|o| o.name == cond.field);
            let known = match other.map(|o| &o.kind) {
                Some(FieldKind::Enum { options }) => options.iter().any(|o| o.value == cond.equals),
                _ => false,
            };
            if !known {
                ck.at(
                    when,
                    format!(
                        "action `{id}`: field `{}` has {key} `{}` = `{}`, which is no option of an enum field of the action",
                        f.name.get_ref(),
                        cond.field,
                        cond.equals
                    ),
                );
            }
        }
        if let (Some(when), Some(_)) = (&f.when, &f.required_when) {
            ck.at(
                when,
                format!(
                    "action `{id}`: field `{}` has both `when` (taken only then) and `required_when` (always taken, required then): choose one",
                    f.name.get_ref()
                ),
            );
        }
        if let Some(when) = &f.required_when
            && f.required
        {
            ck.at(
                when,
                format!(
                    "action `{id}`: field `{}` is required always; `required_when` needs `required = false`",
                    f.name.get_ref()
                ),
            );
        }
    }
    fields
}

/// The guards an action must pass: each of a known kind, with what that kind needs.
fn check_guards(ck: &mut Checker<'_>, a: &RawAction, action_ids: &BTreeSet<String>) -> Vec<Guard> {
    a.guards
        .iter()
        .filter_map(|g| check_guard(ck, a.id.get_ref(), g, action_ids))
        .collect()
}

/// One guard: `min_actions_in_state` names a declared action and a count; the other kind needs nothing.
fn check_guard(
    ck: &mut Checker<'_>,
    id: &str,
    g: &RawGuard,
    action_ids: &BTreeSet<String>,
) -> Option<Guard> {
    match g.kind.get_ref().as_str() {
        "min_actions_in_state" => match (&g.action, g.count) {
            (Some(action), Some(count)) => {
                if !action_ids.contains(action.get_ref()) {
                    ck.at(
                        action,
                        format!(
                            "action `{id}`: guard names unknown action `{}`",
                            action.get_ref()
                        ),
                    );
                }
                Some(Guard::MinActionsInState {
                    action: action.get_ref().clone(),
                    count,
                })
            }
            _ => {
                ck.at(
                    &g.kind,
                    format!("action `{id}`: guard min_actions_in_state needs `action` and `count`"),
                );
                None
            }
        },
        "reopen_count_below_limit" => Some(Guard::ReopenCountBelowLimit),
        // `escalated` was this guard's first name (it read the escalated mark, which a passed
        // deadline's 督办 sets too): a file that still says so gets the guard it meant.
        "reopen_limit_exceeded" | "escalated" => Some(Guard::ReopenLimitExceeded),
        "extension_requested" => Some(Guard::ExtensionRequested),
        "no_extension_requested" => Some(Guard::NoExtensionRequested),
        "scheduled_open" => Some(Guard::ScheduledOpen),
        other => {
            ck.at(
                &g.kind,
                format!(
                    "action `{id}`: unknown guard kind `{other}` (known: min_actions_in_state, reopen_count_below_limit, reopen_limit_exceeded, extension_requested, no_extension_requested, scheduled_open)"
                ),
            );
            None
        }
    }
}

/// The effects of an action: each of a known kind, on a field of the action where it needs one.
fn check_effects(ck: &mut Checker<'_>, a: &RawAction) -> Vec<EffectDef> {
    a.effects
        .iter()
        .filter_map(|e| check_effect(ck, a, e))
        .collect()
}

/// One effect: its kind known, and the field it acts on checked when the kind needs one.
fn check_effect(ck: &mut Checker<'_>, a: &RawAction, e: &RawEffect) -> Option<EffectDef> {
    let kind = e.kind.get_ref().as_str();
    let wanted = match kind {
        "set_responsible_unit" => Some("unit"),
        "extend_deadline" | "request_extension" => Some("integer"),
        "schedule" => Some("date"),
        "reopen"
        | "clear_responsible_unit"
        | "deny_extension"
        | "appeal"
        | "complete_scheduled" => None,
        other => {
            let id = a.id.get_ref();
            ck.at(
                &e.kind,
                format!(
                    "action `{id}`: unknown effect kind `{other}` (known: set_responsible_unit, clear_responsible_unit, extend_deadline, request_extension, deny_extension, appeal, reopen, schedule, complete_scheduled)"
                ),
            );
            return None;
        }
    };
    let field = wanted.and_then(|ty| check_effect_field(ck, a, e, ty));
    match (kind, field) {
        ("set_responsible_unit", Some(field)) => Some(EffectDef::SetResponsibleUnit { field }),
        ("extend_deadline", Some(field)) => Some(EffectDef::ExtendDeadline { field }),
        ("request_extension", Some(field)) => Some(EffectDef::RequestExtension { field }),
        ("schedule", Some(field)) => Some(EffectDef::Schedule { field }),
        ("complete_scheduled", _) => Some(EffectDef::CompleteScheduled),
        ("deny_extension", _) => Some(EffectDef::DenyExtension),
        ("appeal", _) => Some(EffectDef::Appeal),
        ("reopen", _) => Some(EffectDef::Reopen),
        ("clear_responsible_unit", _) => Some(EffectDef::ClearResponsibleUnit),
        _ => None,
    }
}

/// The field an effect acts on: given, declared by the action with a type, and that type `ty`.
fn check_effect_field(
    ck: &mut Checker<'_>,
    a: &RawAction,
    e: &RawEffect,
    ty: &str,
) -> Option<String> {
    let id = a.id.get_ref();
    let kind = e.kind.get_ref();
    let Some(field) = &e.field else {
        ck.at(
            &e.kind,
            format!("action `{id}`: effect {kind} needs `field`"),
        );
        return None;
    };
    let declared = a
        .fields
        .iter()
        .find(|f| f.name.get_ref() == field.get_ref());
    // A declared field without a type counts as undeclared: it was already named as untyped.
    match declared.and_then(|f| f.kind.as_ref()) {
        Some(k) if k.get_ref() == ty => Some(field.get_ref().clone()),
        Some(_) => {
            ck.at(
                field,
                format!("action `{id}`: effect {kind} needs a field of type {ty}"),
            );
            None
        }
        None => {
            ck.at(
                field,
                format!(
                    "action `{id}`: effect {kind} names undeclared field `{}`",
                    field.get_ref()
                ),
            );
            None
        }
    }
}

/// The marks an action leaves on a case: each one of [`Mark::ALL`].
fn check_marks(ck: &mut Checker<'_>, a: &RawAction) -> Vec<Mark> {
    let id = a.id.get_ref();
    let mut marks = Vec::new();
    for m in &a.marks {
        match Mark::ALL.iter().find(|(_, s)| s == m.get_ref()) {
            Some((mark, _)) => marks.push(*mark),
            None => {
                let known: Vec<&str> = Mark::ALL.iter().map(|(_, s)| *s).collect();
                ck.at(
                    m,
                    format!(
                        "action `{id}`: unknown mark `{}` (known: {})",
                        m.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
    }
    marks
}

/// The notices an action sends: each to a known audience.
fn check_notify(ck: &mut Checker<'_>, a: &RawAction) -> Vec<NotifyDef> {
    let id = a.id.get_ref();
    let mut notify = Vec::new();
    for n in &a.notify {
        match Audience::parse(n.to.get_ref()) {
            Some(audience) => notify.push(NotifyDef {
                kind: n.kind.get_ref().clone(),
                audience,
            }),
            None => ck.at(
                &n.to,
                format!(
                    "action `{id}`: unknown audience `{}` (known: responsible_unit, center, supervisors)",
                    n.to.get_ref()
                ),
            ),
        }
    }
    notify
}

fn check_field(ck: &mut Checker<'_>, action: &str, f: &RawField) -> Option<FieldDef> {
    let name = f.name.get_ref();
    let Some(kind) = &f.kind else {
        ck.at(
            &f.name,
            format!("action `{action}`: field `{name}` has no type"),
        );
        return None;
    };
    let kind = match kind.get_ref().as_str() {
        "text" => FieldKind::Text {
            max_chars: f.max_chars.unwrap_or(DEFAULT_TEXT_MAX_CHARS),
            public: f.public,
        },
        "enum" => {
            if f.options.is_empty() {
                ck.at(
                    &f.name,
                    format!("action `{action}`: enum field `{name}` has no options"),
                );
            }
            let mut seen = BTreeSet::new();
            for o in &f.options {
                if !seen.insert(o.value.as_str()) {
                    ck.at(
                        &f.name,
                        format!(
                            "action `{action}`: field `{name}` repeats option `{}`",
                            o.value
                        ),
                    );
                }
            }
            FieldKind::Enum {
                options: f
                    .options
                    .iter()
                    .map(|o| EnumOption {
                        value: o.value.clone(),
                        label: o.label.clone(),
                    })
                    .collect(),
            }
        }
        "integer" => {
            let (min, max) = (f.min.unwrap_or(i64::MIN), f.max.unwrap_or(i64::MAX));
            if min > max {
                ck.at(
                    &f.name,
                    format!("action `{action}`: field `{name}` has min above max"),
                );
            }
            FieldKind::Integer { min, max }
        }
        "unit" => FieldKind::Unit,
        "date" => FieldKind::Date,
        "evidence" => {
            let max_files = match f.max.map(|n| (n, usize::try_from(n))) {
                None => DEFAULT_EVIDENCE_FILES,
                Some((_, Ok(k))) if (1..=MAX_EVIDENCE_FILES).contains(&k) => k,
                Some((n, _)) => {
                    ck.at(
                        &f.name,
                        format!(
                            "action `{action}`: evidence field `{name}`: max {n} is not between 1 and {MAX_EVIDENCE_FILES}"
                        ),
                    );
                    DEFAULT_EVIDENCE_FILES
                }
            };
            FieldKind::Evidence { max_files }
        }
        "datetime" => FieldKind::DateTime {
            default_now: match &f.default {
                None => false,
                Some(d) if d.get_ref() == "now" => true,
                Some(d) => {
                    ck.at(
                        d,
                        format!("action `{action}`: field `{name}`: the only default is \"now\""),
                    );
                    false
                }
            },
        },
        other => {
            ck.at(
                kind,
                format!(
                    "action `{action}`: field `{name}` has unknown type `{other}` (known: text, enum, integer, unit, datetime, date, evidence)"
                ),
            );
            return None;
        }
    };
    if f.public && !matches!(kind, FieldKind::Text { .. }) {
        ck.at(
            &f.name,
            format!("action `{action}`: field `{name}`: only text fields are `public`"),
        );
    }
    if f.required_if_anonymous && f.required {
        ck.at(
            &f.name,
            format!(
                "action `{action}`: field `{name}` is required always; `required_if_anonymous` needs `required = false`"
            ),
        );
    }
    if f.default.is_some() && !matches!(kind, FieldKind::DateTime { .. }) {
        ck.at(
            &f.name,
            format!("action `{action}`: field `{name}`: only datetime fields take a default"),
        );
    }
    Some(FieldDef {
        name: name.clone(),
        label: f.label.clone(),
        required: f.required,
        kind,
        when: f.when.as_ref().map(|w| FieldCondition {
            field: w.get_ref().field.clone(),
            equals: w.get_ref().equals.clone(),
        }),
        required_when: f.required_when.as_ref().map(|w| FieldCondition {
            field: w.get_ref().field.clone(),
            equals: w.get_ref().equals.clone(),
        }),
        required_if_anonymous: f.required_if_anonymous,
    })
}

/// Reachability: every state reachable from the initial one, and a terminal state reachable from each.
fn check_graph(ck: &mut Checker<'_>, raw: &RawFile, states: &[StateDef], actions: &[ActionDef]) {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut reverse: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in actions.iter().filter(|a| !a.stays) {
        for f in &a.from {
            edges.entry(f).or_default().insert(&a.to);
            reverse.entry(&a.to).or_default().insert(f);
        }
    }
    let reachable = closure([raw.workflow.initial.get_ref().as_str()], &edges);
    let terminals: Vec<&str> = states
        .iter()
        .filter(|s| s.terminal)
        .map(|s| s.id.as_str())
        .collect();
    if terminals.is_empty() {
        ck.problems.push(Problem {
            file: ck.file.to_owned(),
            line: None,
            message: "no state is terminal".to_owned(),
        });
        return;
    }
    let can_finish = closure(terminals, &reverse);
    for (s, raw_state) in states.iter().zip(&raw.states) {
        if !reachable.contains(s.id.as_str()) {
            ck.at(
                &raw_state.id,
                format!(
                    "state `{}` cannot be reached from `{}`",
                    s.id,
                    raw.workflow.initial.get_ref()
                ),
            );
        } else if !can_finish.contains(s.id.as_str()) {
            ck.at(
                &raw_state.id,
                format!("no terminal state can be reached from state `{}`", s.id),
            );
        }
    }
}

fn closure<'a>(
    start: impl IntoIterator<Item = &'a str>,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
) -> BTreeSet<&'a str> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&str> = start.into_iter().collect();
    while let Some(s) = queue.pop_front() {
        if seen.insert(s)
            && let Some(next) = edges.get(s)
        {
            queue.extend(next.iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid file with one action, to break in one place at a time.
    const BASE: &str = r#"[workflow]
id = "t"
version = 1
label = "测试"
label_en = "Test"
initial = "a"

[[states]]
id = "a"
label = "甲"
label_en = "A"

[[states]]
id = "b"
label = "乙"
label_en = "B"
terminal = true

[[actions]]
id = "go"
label = "走"
label_en = "Go"
from = "a"
to = "b"
roles = ["center_staff"]
[[actions.fields]]
name = "days"
label = "天数"
type = "integer"
"#;

    /// BASE with each `(from, to)` replaced once.
    fn edited(edits: &[(&str, &str)]) -> String {
        edits.iter().fold(BASE.to_owned(), |text, (from, to)| {
            assert!(text.contains(from), "{from}");
            text.replacen(from, to, 1)
        })
    }

    /// A row of a table: the edits to BASE, and every problem expected, in order, as (line, message).
    type Row<'a> = (Vec<(&'a str, &'a str)>, Vec<(usize, &'a str)>);

    /// The problems of a file as (line, message), in the order they are named; none if it loads.
    fn problems(text: &str) -> Vec<(Option<usize>, String)> {
        match load("t.toml", text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| (p.line, p.message)).collect(),
        }
    }

    #[test]
    fn each_check_of_an_action_names_its_problems_in_order() {
        let roles = "roles = [\"center_staff\"]";
        let known_marks: Vec<&str> = Mark::ALL.iter().map(|(_, s)| *s).collect();
        let unknown_mark = format!(
            "action `go`: unknown mark `great` (known: {})",
            known_marks.join(", ")
        );
        // The role's own parse error is the message, so it is taken from there, not copied.
        let unknown_role = |name: &str| match name.parse::<Role>() {
            Ok(role) => panic!("{name} is the role {role:?}"),
            Err(e) => format!("action `go`: {e}"),
        };
        let (clerk, janitor) = (unknown_role("clerk"), unknown_role("janitor"));
        let table: Vec<Row<'_>> = vec![
            (
                vec![("from = \"a\"", "from = []")],
                vec![(20, "action `go` has an empty `from`")],
            ),
            (
                vec![
                    ("from = \"a\"", "from = [\"z\", \"a\", \"y\"]"),
                    ("to = \"b\"", "to = \"c\""),
                ],
                vec![
                    (23, "action `go`: unknown state `z` in `from`"),
                    (23, "action `go`: unknown state `y` in `from`"),
                    (24, "action `go`: unknown state `c` in `to`"),
                ],
            ),
            (
                vec![(roles, "roles = []")],
                vec![(20, "action `go` allows no role")],
            ),
            (
                vec![(roles, "roles = [\"clerk\", \"center_staff\", \"janitor\"]")],
                vec![(25, clerk.as_str()), (25, janitor.as_str())],
            ),
            (
                vec![(
                    "type = \"integer\"",
                    "type = \"integer\"\n[[actions.fields]]\nname = \"days\"\nlabel = \"又\"\ntype = \"text\"",
                )],
                vec![(31, "action `go`: duplicate field `days`")],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\nguards = [{ kind = \"min_actions_in_state\", action = \"go\" }]",
                )],
                vec![(
                    26,
                    "action `go`: guard min_actions_in_state needs `action` and `count`",
                )],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\nguards = [{ kind = \"min_actions_in_state\", action = \"go\", count = 2 }, { kind = \"reopen_count_below_limit\" }]",
                )],
                vec![],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\neffects = [{ kind = \"teleport\" }, { kind = \"extend_deadline\", field = \"reason\" }]",
                )],
                vec![
                    (
                        26,
                        "action `go`: unknown effect kind `teleport` (known: set_responsible_unit, clear_responsible_unit, extend_deadline, request_extension, deny_extension, appeal, reopen, schedule, complete_scheduled)",
                    ),
                    (
                        26,
                        "action `go`: effect extend_deadline names undeclared field `reason`",
                    ),
                ],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\neffects = [{ kind = \"set_responsible_unit\", field = \"days\" }]",
                )],
                vec![(
                    26,
                    "action `go`: effect set_responsible_unit needs a field of type unit",
                )],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\neffects = [{ kind = \"extend_deadline\" }]",
                )],
                vec![(26, "action `go`: effect extend_deadline needs `field`")],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\neffects = [{ kind = \"extend_deadline\", field = \"days\" }, { kind = \"reopen\", field = \"days\" }, { kind = \"clear_responsible_unit\" }]",
                )],
                vec![],
            ),
            (
                vec![(
                    roles,
                    "roles = [\"center_staff\"]\nmarks = [\"rectified\", \"great\"]\nnotify = [{ kind = \"x\", to = \"center\" }, { kind = \"y\", to = \"mayor\" }]",
                )],
                vec![
                    (26, unknown_mark.as_str()),
                    (
                        27,
                        "action `go`: unknown audience `mayor` (known: responsible_unit, center, supervisors)",
                    ),
                ],
            ),
            // A field without a type is undeclared to an effect too, and the field is named first.
            (
                vec![
                    (
                        roles,
                        "roles = [\"center_staff\"]\neffects = [{ kind = \"extend_deadline\", field = \"days\" }]",
                    ),
                    ("type = \"integer\"\n", ""),
                ],
                vec![
                    (28, "action `go`: field `days` has no type"),
                    (
                        26,
                        "action `go`: effect extend_deadline names undeclared field `days`",
                    ),
                ],
            ),
            // Every kind of problem in one action at once: named in the order the checks run.
            (
                vec![
                    ("from = \"a\"", "from = [\"z\"]"),
                    ("to = \"b\"", "to = \"c\""),
                    (
                        roles,
                        "roles = [\"clerk\"]\nguards = [{ kind = \"moon_phase\" }]\neffects = [{ kind = \"teleport\" }]\nmarks = [\"great\"]\nnotify = [{ kind = \"x\", to = \"mayor\" }]",
                    ),
                    ("type = \"integer\"", "type = \"blob\""),
                ],
                vec![
                    (23, "action `go`: unknown state `z` in `from`"),
                    (24, "action `go`: unknown state `c` in `to`"),
                    (25, clerk.as_str()),
                    (
                        33,
                        "action `go`: field `days` has unknown type `blob` (known: text, enum, integer, unit, datetime, date, evidence)",
                    ),
                    (
                        26,
                        "action `go`: unknown guard kind `moon_phase` (known: min_actions_in_state, reopen_count_below_limit, reopen_limit_exceeded, extension_requested, no_extension_requested, scheduled_open)",
                    ),
                    (
                        27,
                        "action `go`: unknown effect kind `teleport` (known: set_responsible_unit, clear_responsible_unit, extend_deadline, request_extension, deny_extension, appeal, reopen, schedule, complete_scheduled)",
                    ),
                    (28, unknown_mark.as_str()),
                    (
                        29,
                        "action `go`: unknown audience `mayor` (known: responsible_unit, center, supervisors)",
                    ),
                ],
            ),
        ];
        assert_eq!(problems(BASE), []);
        for (edits, expected) in table {
            let expected: Vec<(Option<usize>, String)> = expected
                .into_iter()
                .map(|(line, message)| (Some(line), message.to_owned()))
                .collect();
            assert_eq!(problems(&edited(&edits)), expected, "{edits:?}");
        }
    }

    #[test]
    fn an_id_declared_twice_is_named_for_states_and_actions() {
        let again = "[[actions]]\nid = \"go\"\nlabel = \"再\"\nlabel_en = \"Again\"\nfrom = \"a\"\nto = \"b\"\nroles = [\"center_staff\"]\n";
        let table: [(String, Vec<(usize, &str)>); 2] = [
            (
                edited(&[("id = \"b\"", "id = \"a\"")]),
                vec![
                    (14, "duplicate state id `a`"),
                    (24, "action `go`: unknown state `b` in `to`"),
                ],
            ),
            (
                format!("{BASE}{again}"),
                vec![(31, "duplicate action id `go`")],
            ),
        ];
        for (text, expected) in table {
            let expected: Vec<(Option<usize>, String)> = expected
                .into_iter()
                .map(|(line, message)| (Some(line), message.to_owned()))
                .collect();
            assert_eq!(problems(&text), expected, "{text}");
        }
    }

    #[test]
    fn settings_left_out_of_the_file_take_their_defaults() {
        let table = [
            ("", Settings::default()),
            (
                "[settings]\nreopen_limit = 3\n",
                Settings {
                    reopen_limit: 3,
                    ..Settings::default()
                },
            ),
            (
                "[settings]\nreopen_limit = 0\ndue_soon_working_days = 2\nescalate_after_working_days = 4\nappeal_limit = 2\nappeal_window_working_days = 5\nunreachable_counts_as_visited = false\n",
                Settings {
                    reopen_limit: 0,
                    due_soon_working_days: 2,
                    escalate_after_working_days: 4,
                    appeal_limit: 2,
                    appeal_window_working_days: 5,
                    unreachable_counts_as_visited: false,
                },
            ),
        ];
        for (extra, expected) in table {
            let def = load("t.toml", &format!("{BASE}{extra}")).unwrap();
            assert_eq!(def.settings, expected, "{extra}");
        }
    }

    #[test]
    fn the_overall_limit_names_what_is_wrong_and_is_absent_unless_declared() {
        assert_eq!(load("t.toml", BASE).unwrap().overall, None);
        let good = "[overall]\nlabel = \"整改反馈时限\"\ntime_limit_days = 15\nuntil = [\"b\"]\n";
        assert_eq!(
            load("t.toml", &format!("{BASE}{good}")).unwrap().overall,
            Some(OverallLimit {
                label: "整改反馈时限".into(),
                time_limit_days: 15,
                until: vec!["b".into()],
            })
        );
        let table = [
            (
                "[overall]\nlabel = \"x\"\ntime_limit_days = 0\nuntil = [\"b\"]\n",
                "[overall]: time_limit_days must be at least 1",
            ),
            (
                "[overall]\nlabel = \"x\"\ntime_limit_days = 5\nuntil = []\n",
                "[overall]: `until` names no state",
            ),
            (
                "[overall]\nlabel = \"x\"\ntime_limit_days = 5\nuntil = [\"nowhere\"]\n",
                "[overall]: unknown state `nowhere` in `until`",
            ),
        ];
        for (extra, message) in table {
            let found = problems(&format!("{BASE}{extra}"));
            assert!(
                found.iter().any(|(line, m)| m == message && line.is_some()),
                "{extra}: {found:?}"
            );
        }
    }
}
