//! 数据回传: each step of a 差评's handling as the provincial (or national) 好差评 platform expects it
//! back. Which of our actions is which of the platform's steps, the names it gives the fields, and its
//! code sets are data (`workflows/upstream/*.toml`), so a province whose interface differs is served
//! by another file, not other code. Pure: the store writes what [`UpstreamMap::push`] answers into the
//! outbox in the action's transaction; the sender delivers it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::workflow::{Problem, WorkflowDefinition};

/// A step of a 差评's handling as the platform knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UpStep {
    Accepted,
    Transferred,
    Rectified,
    Replied,
    Reviewed,
    Closed,
    Invalid,
}

impl UpStep {
    /// Every step.
    pub const ALL: [UpStep; 7] = [
        UpStep::Accepted,
        UpStep::Transferred,
        UpStep::Rectified,
        UpStep::Replied,
        UpStep::Reviewed,
        UpStep::Closed,
        UpStep::Invalid,
    ];

    /// Its name in docs/API.md (`step`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpStep::Accepted => "accepted",
            UpStep::Transferred => "transferred",
            UpStep::Rectified => "rectified",
            UpStep::Replied => "replied",
            UpStep::Reviewed => "reviewed",
            UpStep::Closed => "closed",
            UpStep::Invalid => "invalid",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A field of a push, by our name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UpField {
    ProjectNo,
    Source,
    SourceId,
    CaseId,
    Step,
    At,
    Unit,
    Finding,
    Measures,
    Outcome,
    Reply,
    ReviewLevel,
}

impl UpField {
    /// Every field, in the order docs/API.md lists them.
    pub const ALL: [UpField; 12] = [
        UpField::ProjectNo,
        UpField::Source,
        UpField::SourceId,
        UpField::CaseId,
        UpField::Step,
        UpField::At,
        UpField::Unit,
        UpField::Finding,
        UpField::Measures,
        UpField::Outcome,
        UpField::Reply,
        UpField::ReviewLevel,
    ];

    /// Our name of it (the mapping file's keys).
    pub fn as_str(self) -> &'static str {
        match self {
            UpField::ProjectNo => "project_no",
            UpField::Source => "source",
            UpField::SourceId => "source_id",
            UpField::CaseId => "case_id",
            UpField::Step => "step",
            UpField::At => "at",
            UpField::Unit => "unit",
            UpField::Finding => "finding",
            UpField::Measures => "measures",
            UpField::Outcome => "outcome",
            UpField::Reply => "reply",
            UpField::ReviewLevel => "review_level",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The fields a step's event supplies from what it recorded (the others come from the case).
    fn recorded(self) -> bool {
        matches!(
            self,
            UpField::Finding
                | UpField::Measures
                | UpField::Outcome
                | UpField::Reply
                | UpField::ReviewLevel
        )
    }
}

/// The checked mapping: which action is which step, what each field is called, where its value
/// comes from, and the platform's code sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamMap {
    /// Action id → its step, and values the step sets whatever was recorded (e.g. a review the rater
    /// found unsatisfying: `review_level` = `dissatisfied`).
    steps: BTreeMap<String, (UpStep, BTreeMap<UpField, String>)>,
    /// The platform's name of each field.
    names: BTreeMap<UpField, String>,
    /// The recorded fields a value comes from, the first one present.
    from: BTreeMap<UpField, Vec<String>>,
    /// Our value → the platform's, per field; a value not listed goes as it is.
    codes: BTreeMap<UpField, BTreeMap<String, String>>,
}

/// What one event of a case is, for its push.
#[derive(Debug, Clone)]
pub struct PushFacts<'a> {
    pub project_no: &'a str,
    pub source: &'a str,
    pub source_id: &'a str,
    pub case_id: &'a str,
    /// The action taken.
    pub action: &'a str,
    pub at: DateTime<Utc>,
    /// The responsible unit after the action (none before the transfer).
    pub unit: Option<&'a str>,
    /// What the event recorded.
    pub fields: &'a Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    steps: BTreeMap<String, RawStep>,
    names: BTreeMap<String, String>,
    #[serde(default)]
    from: BTreeMap<String, RawFrom>,
    #[serde(default)]
    codes: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStep {
    Step(String),
    WithValues {
        step: String,
        #[serde(default)]
        set: BTreeMap<String, String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFrom {
    One(String),
    FirstOf(Vec<String>),
}

impl UpstreamMap {
    /// Parses and checks a mapping file against the negative-rating workflow `def` (every action it
    /// names exists, every step and field is known, every field is named); `file` names it in the
    /// problems.
    pub fn parse(file: &str, text: &str, def: &WorkflowDefinition) -> Result<Self, Vec<Problem>> {
        let problem = |message: String| Problem {
            file: file.to_owned(),
            line: None,
            message,
        };
        let raw: RawMap = toml::from_str(text).map_err(|e| vec![problem(e.to_string())])?;
        let mut problems = Vec::new();
        let field_of = |key: &str, problems: &mut Vec<Problem>, place: &str| {
            let field = UpField::parse(key);
            if field.is_none() {
                let known: Vec<&str> = UpField::ALL.iter().map(|f| f.as_str()).collect();
                problems.push(problem(format!(
                    "{place}: unknown field `{key}` (known: {})",
                    known.join(", ")
                )));
            }
            field
        };
        let mut steps = BTreeMap::new();
        for (action, raw_step) in &raw.steps {
            if def.action(action).is_none() {
                problems.push(problem(format!(
                    "[steps]: `{action}` is no action of the workflow `{}`",
                    def.id
                )));
            }
            let (name, set) = match raw_step {
                RawStep::Step(name) => (name, None),
                RawStep::WithValues { step, set } => (step, Some(set)),
            };
            let Some(step) = UpStep::parse(name) else {
                let known: Vec<&str> = UpStep::ALL.iter().map(|s| s.as_str()).collect();
                problems.push(problem(format!(
                    "[steps] {action}: unknown step `{name}` (known: {})",
                    known.join(", ")
                )));
                continue;
            };
            let mut values = BTreeMap::new();
            for (key, value) in set.into_iter().flatten() {
                if let Some(field) = field_of(key, &mut problems, &format!("[steps.{action}] set"))
                {
                    values.insert(field, value.clone());
                }
            }
            steps.insert(action.clone(), (step, values));
        }
        let mut names = BTreeMap::new();
        for (key, name) in &raw.names {
            if let Some(field) = field_of(key, &mut problems, "[names]") {
                if name.trim().is_empty() {
                    problems.push(problem(format!("[names] {key}: the name is empty")));
                }
                names.insert(field, name.clone());
            }
        }
        for field in UpField::ALL {
            if !names.contains_key(&field) {
                problems.push(problem(format!(
                    "[names]: the field `{}` has no name",
                    field.as_str()
                )));
            }
        }
        let mut from = BTreeMap::new();
        for (key, source) in &raw.from {
            let Some(field) = field_of(key, &mut problems, "[from]") else {
                continue;
            };
            if !field.recorded() {
                problems.push(problem(format!(
                    "[from] {key}: this field comes from the case, not from what a step recorded"
                )));
            }
            let list = match source {
                RawFrom::One(name) => vec![name.clone()],
                RawFrom::FirstOf(names) => names.clone(),
            };
            from.insert(field, list);
        }
        let mut codes = BTreeMap::new();
        for (key, set) in &raw.codes {
            if let Some(field) = field_of(key, &mut problems, "[codes]") {
                codes.insert(field, set.clone());
            }
        }
        if problems.is_empty() {
            Ok(Self {
                steps,
                names,
                from,
                codes,
            })
        } else {
            Err(problems)
        }
    }

    /// The push of one event: its step and the JSON body, `None` when the action is no step the
    /// platform hears of. Fields that do not apply to the step are null.
    pub fn push(&self, facts: &PushFacts<'_>) -> Option<(UpStep, Value)> {
        let (step, set) = self.steps.get(facts.action)?;
        let mut body = Map::new();
        for field in UpField::ALL {
            let value = match field {
                UpField::ProjectNo => Some(facts.project_no.to_owned()),
                UpField::Source => Some(facts.source.to_owned()),
                UpField::SourceId => Some(facts.source_id.to_owned()),
                UpField::CaseId => Some(facts.case_id.to_owned()),
                UpField::Step => Some(step.as_str().to_owned()),
                UpField::At => Some(facts.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                UpField::Unit => facts.unit.map(str::to_owned),
                _ => set.get(&field).cloned().or_else(|| {
                    self.from
                        .get(&field)?
                        .iter()
                        .find_map(|name| match facts.fields.get(name)? {
                            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                }),
            };
            let value = value.map(|v| {
                self.codes
                    .get(&field)
                    .and_then(|codes| codes.get(&v))
                    .cloned()
                    .unwrap_or(v)
            });
            let name = self
                .names
                .get(&field)
                .cloned()
                .unwrap_or_else(|| field.as_str().to_owned());
            body.insert(name, value.map_or(Value::Null, Value::String));
        }
        Some((*step, Value::Object(body)))
    }
}
