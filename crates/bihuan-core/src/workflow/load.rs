//! Parsing a workflow file into a checked [`WorkflowDefinition`], naming every problem.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ActionDef, Audience, EffectDef, EnumOption, FieldDef, FieldKind, Guard, Mark, NotifyDef,
    Settings, StateDef, WorkflowDefinition,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    workflow: RawWorkflow,
    #[serde(default)]
    settings: RawSettings,
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
    to: Spanned<String>,
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
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| ck.line_of(s.start));
            return Err(vec![Problem {
                file: file.to_owned(),
                line,
                message: e.message().trim().to_owned(),
            }]);
        }
    };

    if raw.workflow.id.get_ref().trim().is_empty() {
        ck.at(&raw.workflow.id, "the workflow id is empty");
    }
    if *raw.workflow.version.get_ref() == 0 {
        ck.at(&raw.workflow.version, "the workflow version starts at 1");
    }

    let mut state_ids = BTreeSet::new();
    for s in &raw.states {
        if !state_ids.insert(s.id.get_ref().clone()) {
            ck.at(&s.id, format!("duplicate state id `{}`", s.id.get_ref()));
        }
    }
    let mut action_ids = BTreeSet::new();
    for a in &raw.actions {
        if !action_ids.insert(a.id.get_ref().clone()) {
            ck.at(&a.id, format!("duplicate action id `{}`", a.id.get_ref()));
        }
    }
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

    if ck.problems.is_empty() {
        check_graph(&mut ck, &raw, &states, &actions);
    }
    if !ck.problems.is_empty() {
        return Err(ck.problems);
    }

    let defaults = Settings::default();
    Ok(WorkflowDefinition {
        id: raw.workflow.id.into_inner(),
        version: raw.workflow.version.into_inner(),
        label: raw.workflow.label,
        label_en: raw.workflow.label_en,
        initial: raw.workflow.initial.into_inner(),
        settings: Settings {
            reopen_limit: raw.settings.reopen_limit.unwrap_or(defaults.reopen_limit),
            due_soon_working_days: raw
                .settings
                .due_soon_working_days
                .unwrap_or(defaults.due_soon_working_days),
            escalate_after_working_days: raw
                .settings
                .escalate_after_working_days
                .unwrap_or(defaults.escalate_after_working_days),
        },
        states,
        actions,
    })
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

fn check_action(
    ck: &mut Checker<'_>,
    a: &RawAction,
    state_ids: &BTreeSet<String>,
    action_ids: &BTreeSet<String>,
) -> ActionDef {
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
    if !state_ids.contains(a.to.get_ref()) {
        ck.at(
            &a.to,
            format!("action `{id}`: unknown state `{}` in `to`", a.to.get_ref()),
        );
    }
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

    let mut guards = Vec::new();
    for g in &a.guards {
        match g.kind.get_ref().as_str() {
            "min_actions_in_state" => match (&g.action, g.count) {
                (Some(action), Some(count)) => {
                    if !action_ids.contains(action.get_ref()) {
                        ck.at(
                            action,
                            format!("action `{id}`: guard names unknown action `{}`", action.get_ref()),
                        );
                    }
                    guards.push(Guard::MinActionsInState {
                        action: action.get_ref().clone(),
                        count,
                    });
                }
                _ => ck.at(
                    &g.kind,
                    format!("action `{id}`: guard min_actions_in_state needs `action` and `count`"),
                ),
            },
            "reopen_count_below_limit" => guards.push(Guard::ReopenCountBelowLimit),
            other => ck.at(
                &g.kind,
                format!(
                    "action `{id}`: unknown guard kind `{other}` (known: min_actions_in_state, reopen_count_below_limit)"
                ),
            ),
        }
    }

    let mut effects = Vec::new();
    for e in &a.effects {
        let kind = e.kind.get_ref().as_str();
        let wanted = match kind {
            "set_responsible_unit" => Some("unit"),
            "extend_deadline" => Some("integer"),
            "reopen" | "clear_responsible_unit" => None,
            other => {
                ck.at(
                    &e.kind,
                    format!(
                        "action `{id}`: unknown effect kind `{other}` (known: set_responsible_unit, clear_responsible_unit, extend_deadline, reopen)"
                    ),
                );
                continue;
            }
        };
        let field = match (wanted, &e.field) {
            (None, _) => None,
            (Some(ty), Some(field)) => {
                let declared = a
                    .fields
                    .iter()
                    .find(|f| f.name.get_ref() == field.get_ref());
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
            (Some(_), None) => {
                ck.at(
                    &e.kind,
                    format!("action `{id}`: effect {kind} needs `field`"),
                );
                None
            }
        };
        match (kind, field) {
            ("set_responsible_unit", Some(field)) => {
                effects.push(EffectDef::SetResponsibleUnit { field })
            }
            ("extend_deadline", Some(field)) => effects.push(EffectDef::ExtendDeadline { field }),
            ("reopen", _) => effects.push(EffectDef::Reopen),
            ("clear_responsible_unit", _) => effects.push(EffectDef::ClearResponsibleUnit),
            _ => {}
        }
    }

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

    let mut notify = Vec::new();
    for n in &a.notify {
        match Audience::ALL.iter().find(|(_, s)| s == n.to.get_ref()) {
            Some((audience, _)) => notify.push(NotifyDef {
                kind: n.kind.get_ref().clone(),
                audience: *audience,
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

    ActionDef {
        id: id.clone(),
        label: a.label.clone(),
        label_en: a.label_en.clone(),
        from: from.iter().map(|f| (*f).clone()).collect(),
        to: a.to.get_ref().clone(),
        roles,
        fields,
        guards,
        effects,
        marks,
        notify,
        co_units: a.co_units,
    }
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
                    "action `{action}`: field `{name}` has unknown type `{other}` (known: text, enum, integer, unit, datetime)"
                ),
            );
            return None;
        }
    };
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
    })
}

/// Reachability: every state reachable from the initial one, and a terminal state reachable from each.
fn check_graph(ck: &mut Checker<'_>, raw: &RawFile, states: &[StateDef], actions: &[ActionDef]) {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut reverse: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in actions {
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
