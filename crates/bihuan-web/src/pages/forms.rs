//! The forms of a workflow's actions, generated from the workflow file: one form per action the
//! caller may take now, each field as its kind asks (a select for enums and units, a textarea for
//! text, number and datetime inputs), and a submitted form read back into the action's fields.

use bihuan_core::ActionError;
use bihuan_core::field_problems;
use bihuan_core::workflow::{ActionDef, FieldKind};
use bihuan_store::StoreError;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::views::UnitNames;

/// The form of an action the caller may take now.
#[derive(Debug, Serialize)]
pub(super) struct ActionForm {
    id: String,
    label: String,
    error: Option<String>,
    fields: Vec<FieldForm>,
}

#[derive(Debug, Serialize)]
struct FieldForm {
    name: String,
    label: String,
    kind: &'static str,
    required: bool,
    /// For a field taken only when another has a value: when (“整改结果为“限期整改”时填写”).
    when_note: Option<String>,
    options: Vec<Choice>,
    min: Option<i64>,
    max: Option<i64>,
    default_now: bool,
    /// What the form shows: the value entered when the form comes back with an error.
    value: String,
    /// The choices ticked, for a field of several (the files an evidence field cites).
    values: Vec<String>,
    error: Option<String>,
}

/// One choice of a field: its value and what it is shown as.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Choice {
    pub value: String,
    pub label: String,
}

/// A submitted form's fields by name; a name may come several times (the boxes of an evidence
/// field).
#[derive(Debug, Clone, Copy)]
pub(super) struct FormData<'f>(pub &'f [(String, String)]);

impl<'f> FormData<'f> {
    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&'f str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(super) fn all(&self, name: &str) -> Vec<&'f str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a submitted form brings back to the page: the action, the values entered, and the errors.
#[derive(Debug, Default)]
pub(super) struct Submitted {
    pub action: String,
    pub values: Map<String, Value>,
    /// Errors by field name; "" for the form as a whole.
    pub errors: Vec<(String, String)>,
}

/// The message above a form that comes back with errors.
pub(super) const INVALID_FORM: &str = "提交的内容有误，请按提示修改后重新提交。";

impl Submitted {
    /// What a form submitted for `action` brings: its fields converted, and the problems the core
    /// finds with them — the values then kept as typed, for the form to show again.
    pub(super) fn read(
        action: &ActionDef,
        form: FormData<'_>,
        tz: chrono_tz::Tz,
        now: DateTime<Utc>,
    ) -> Self {
        let values = submitted_values(action, form, tz);
        let errors: Vec<_> = field_problems(action, &values, now)
            .iter()
            .map(error_entry)
            .collect();
        let submitted = Self {
            action: action.id.clone(),
            values,
            errors: Vec::new(),
        };
        if errors.is_empty() {
            submitted
        } else {
            submitted.refused(errors, action, form)
        }
    }

    /// Whether the fields may go to the store.
    pub(super) fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The form to show again with these errors and the values as typed.
    pub(super) fn refused(
        mut self,
        errors: Vec<(String, String)>,
        action: &ActionDef,
        form: FormData<'_>,
    ) -> Self {
        self.errors = errors;
        self.values = action
            .fields
            .iter()
            .filter_map(|f| {
                let name = format!("f.{}", f.name);
                let value = match f.kind {
                    FieldKind::Evidence { .. } => Value::from(
                        form.all(&name)
                            .into_iter()
                            .map(Value::from)
                            .collect::<Vec<_>>(),
                    ),
                    _ => Value::from(form.get(&name)?),
                };
                Some((f.name.clone(), value))
            })
            .collect();
        self
    }
}

/// The errors of an action the store refused that belong beside the form's fields (a field's
/// value, a guard); `None` when the refusal is not about what was typed.
pub(super) fn form_errors(e: &StoreError) -> Option<Vec<(String, String)>> {
    match e {
        StoreError::Invalid { field, message } => Some(vec![(field.clone(), message.clone())]),
        StoreError::UnitOutOfScope { .. } => Some(vec![("unit".to_owned(), e.to_string())]),
        StoreError::Rejected(e)
            if e.field().is_some() || matches!(e, ActionError::GuardFailed { .. }) =>
        {
            Some(vec![error_entry(e)])
        }
        _ => None,
    }
}

impl ActionForm {
    /// The form with a field offered as a choice among `values` (each its own label).
    pub(super) fn with_choices(mut self, field: &str, values: &[String]) -> Self {
        for f in self.fields.iter_mut().filter(|f| f.name == field) {
            f.kind = "enum";
            f.options = values
                .iter()
                .map(|v| Choice {
                    value: v.clone(),
                    label: v.clone(),
                })
                .collect();
        }
        self
    }
}

/// The form of one action, with what was submitted and its errors when it comes back.
pub(super) fn action_form(
    a: &ActionDef,
    units: &UnitNames,
    files: &[Choice],
    submitted: Option<&Submitted>,
) -> ActionForm {
    let error_of = |name: &str| {
        submitted.and_then(|s| {
            s.errors
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, m)| m.clone())
        })
    };
    ActionForm {
        id: a.id.clone(),
        label: a.label.clone(),
        error: error_of(""),
        fields: a
            .fields
            .iter()
            .map(|f| {
                let (kind, options, min, max, default_now) = match &f.kind {
                    FieldKind::Text { .. } => ("text", Vec::new(), None, None, false),
                    FieldKind::Enum { options } => (
                        "enum",
                        options
                            .iter()
                            .map(|o| Choice {
                                value: o.value.clone(),
                                label: o.label.clone(),
                            })
                            .collect(),
                        None,
                        None,
                        false,
                    ),
                    FieldKind::Integer { min, max } => {
                        ("integer", Vec::new(), Some(*min), Some(*max), false)
                    }
                    FieldKind::Unit => (
                        "unit",
                        units
                            .options()
                            .into_iter()
                            .map(|u| Choice {
                                value: u.code,
                                label: u.label,
                            })
                            .collect(),
                        None,
                        None,
                        false,
                    ),
                    FieldKind::DateTime { default_now } => {
                        ("datetime", Vec::new(), None, None, *default_now)
                    }
                    FieldKind::Date => ("date", Vec::new(), None, None, false),
                    FieldKind::Evidence { .. } => ("evidence", files.to_vec(), None, None, false),
                };
                let when_note = match (&f.when, &f.required_when) {
                    (Some(w), _) => {
                        let (other, choice) = a.condition_words(w);
                        Some(format!("{other}为“{choice}”时填写"))
                    }
                    (None, Some(w)) => {
                        let (other, choice) = a.condition_words(w);
                        Some(format!("{other}为“{choice}”时必填"))
                    }
                    (None, None) if f.required_if_anonymous => Some("评价人匿名时必填".to_owned()),
                    (None, None) => None,
                };
                // A text for publication says so beside the field, before it is refused.
                let when_note = match (&f.kind, when_note) {
                    (FieldKind::Text { public: true, .. }, note) => Some(
                        note.map_or_else(String::new, |n| format!("{n}；"))
                            + "将向社会公开，不得含姓名、电话号码、电子邮箱、证件号码",
                    ),
                    (_, note) => note,
                };
                let entered = submitted.and_then(|s| s.values.get(&f.name));
                let value = entered
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default();
                let values = entered
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                FieldForm {
                    name: f.name.clone(),
                    label: f.label.clone(),
                    kind,
                    required: f.required && f.when.is_none(),
                    when_note,
                    options,
                    min,
                    max,
                    default_now,
                    value,
                    values,
                    error: error_of(&f.name),
                }
            })
            .collect(),
    }
}

/// An error keyed by its field ("" when it is about the whole form), in words for the form.
fn error_entry(e: &ActionError) -> (String, String) {
    let message = match e {
        ActionError::MissingField { label, .. } => format!("请填写{label}"),
        ActionError::EvidenceRequired { label, .. } => {
            format!("请先上传并勾选{label}")
        }
        ActionError::InvalidField { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    (e.field().unwrap_or_default().to_owned(), message)
}

/// The fields a submitted form gives for an action (`f.NAME` inputs; empty ones left out), integers
/// and local datetimes converted, an evidence field's ticked boxes as a list; what cannot be
/// converted stays text for the checks to name.
fn submitted_values(
    action: &ActionDef,
    form: FormData<'_>,
    tz: chrono_tz::Tz,
) -> Map<String, Value> {
    let mut values = Map::new();
    for f in &action.fields {
        let name = format!("f.{}", f.name);
        if matches!(f.kind, FieldKind::Evidence { .. }) {
            let ticked: Vec<Value> = form
                .all(&name)
                .into_iter()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(Value::from)
                .collect();
            if !ticked.is_empty() {
                values.insert(f.name.clone(), Value::Array(ticked));
            }
            continue;
        }
        let Some(raw) = form.get(&name).map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = match f.kind {
            FieldKind::Integer { .. } => raw
                .parse::<i64>()
                .map_or_else(|_| Value::from(raw), Value::from),
            FieldKind::DateTime { .. } => NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
                .ok()
                .and_then(|t| tz.from_local_datetime(&t).earliest())
                .map_or_else(|| Value::from(raw), |t| Value::from(t.to_rfc3339())),
            _ => Value::from(raw),
        };
        values.insert(f.name.clone(), value);
    }
    values
}
