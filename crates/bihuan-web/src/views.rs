//! The JSON shapes of docs/API.md: a case with its rating, events, audits and the actions the caller may
//! take now. Personal data of the rater is masked for those who do not call raters.

use bihuan_core::rating::{mask_email, mask_name, mask_phone};
use bihuan_core::workflow::{ActionDef, FieldKind};
use bihuan_core::{Engine, Role};
use bihuan_store::entity::{case, event, rating};
use bihuan_store::{CaseDetail, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::extract::SignedIn;

/// A case as docs/API.md describes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    pub id: Uuid,
    pub workflow: String,
    pub state: String,
    pub state_label: String,
    pub version: i32,
    /// The responsible unit (承办单位), null before transfer.
    pub unit: Option<String>,
    /// The unit that handled the rated item.
    pub origin_unit: String,
    pub deadline: Option<DateTime<Utc>>,
    /// True while the deadline's year has no official calendar data.
    pub deadline_provisional: bool,
    pub overdue: bool,
    pub reopen_count: i32,
    pub escalated: bool,
    /// Working days granted by extensions over the case's life (the cap counts these).
    pub extension_days_used: i32,
    /// The working days a unit asked for and a supervisor has not answered yet.
    pub extension_requested_days: Option<i32>,
    /// Appeals filed over the case's life.
    pub appeals_used: i32,
    /// When it was last transferred to its responsible unit (the appeal window starts then).
    pub transferred_at: Option<DateTime<Utc>>,
    /// 整改反馈时限: the overall limit from the opening to feedback (paused while appealing: null
    /// then); kept once met.
    pub overall_deadline: Option<DateTime<Utc>>,
    /// While appealing: the working days of the overall limit that were left when it paused.
    pub overall_paused_days: Option<i32>,
    /// When the case met the overall limit (first reached feedback, or ended).
    pub overall_met_at: Option<DateTime<Utc>>,
    /// Whether the overall limit passed before the case met it.
    pub overall_overdue: bool,
    /// 建立台账、限期整改: the due date of a scheduled rectification (`YYYY-MM-DD`), null without one.
    #[schema(value_type = Option<String>)]
    pub scheduled_due: Option<chrono::NaiveDate>,
    /// When the scheduled rectification was reported done (限期整改完成).
    pub scheduled_done_at: Option<DateTime<Utc>>,
    /// 差评原因: the `category` of its last rectification (in the case's own answer; null in lists).
    pub category: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub rating: RatingView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audits: Option<Vec<AuditView>>,
    /// The 追评 of the handled item (ratings with `assess_number` ≥ 2), oldest first; in the case's
    /// own answer (`GET /api/v1/cases/{id}`), not in lists or action answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_ups: Option<Vec<RatingView>>,
    /// The files attached to it (整改佐证材料), oldest first; in the case's own answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::attachments::AttachmentView>>,
}

/// A rating, masked as the caller's role requires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RatingView {
    pub id: Uuid,
    pub source: String,
    pub source_id: String,
    pub project_no: String,
    pub service_code: String,
    pub service_name: String,
    pub unit_code: String,
    pub region_code: String,
    pub channel: String,
    pub level: String,
    pub rated_at: DateTime<Utc>,
    pub assess_number: i16,
    pub rater: RaterView,
    #[schema(value_type = Vec<String>)]
    pub staff: Value,
    #[schema(value_type = Object)]
    pub indicators: Value,
    pub comment: Option<String>,
}

/// Who rated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RaterView {
    #[serde(rename = "type")]
    pub kind: String,
    pub real_name: bool,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Whether name, phone and email are masked for this caller.
    pub masked: bool,
}

/// One event of the case's log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub fields: Value,
    pub hash: String,
}

/// An action the caller may take now, with the fields it records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    pub id: String,
    pub label: String,
    /// The state it leads to; null for an action that leaves the case where it is.
    pub to: Option<String>,
    pub fields: Vec<FieldView>,
}

/// A field of an action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldView {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub options: Vec<Value>,
    /// Taken only when another field has a value (`{"field","equals"}`): required then (when
    /// `required`), refused otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub when: Option<Value>,
    /// Optional, but required when another field has a value (`{"field","equals"}`): the
    /// evidence of a rectification whose outcome is `rectified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub required_when: Option<Value>,
    /// Required on a case whose rater rated anonymously (the public reply, the only answer such a
    /// rater gets).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub required_if_anonymous: bool,
    /// Written for publication (公开答复): refused (422 `personal_data_in_reply`) when it holds a
    /// known name, a phone number, an email or a certificate number.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

/// An audit of the closed loop.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: Uuid,
    pub verdict: String,
    pub reason: Option<String>,
    pub auditor: String,
    pub at: DateTime<Utc>,
}

/// Whether the caller may see the rater's personal data on this case.
pub fn may_call_rater(caller: &SignedIn, case: &case::Model) -> bool {
    match caller.role {
        Role::Viewer => false,
        Role::UnitStaff => case.unit_code.is_some() && case.unit_code == caller.user.unit_code,
        _ => true,
    }
}

/// A case without its events (for lists).
pub fn case_summary(
    engine: &Engine,
    case: &case::Model,
    rating: &rating::Model,
    caller: &SignedIn,
    now: DateTime<Utc>,
) -> CaseView {
    let def = engine.workflow(&case.workflow_id);
    CaseView {
        id: case.id,
        workflow: case.workflow_id.clone(),
        state: case.state.clone(),
        state_label: def
            .and_then(|d| d.state(&case.state))
            .map_or_else(|| case.state.clone(), |s| s.label.clone()),
        version: case.version,
        unit: case.unit_code.clone(),
        origin_unit: case.origin_unit.clone(),
        deadline: case.deadline,
        deadline_provisional: case.deadline_provisional,
        overdue: bihuan_core::reminder::is_overdue(case.overdue, case.deadline, now),
        reopen_count: case.reopen_count,
        escalated: case.escalated,
        extension_days_used: case.extension_days_used,
        extension_requested_days: case.extension_requested_days,
        appeals_used: case.appeals_used,
        transferred_at: case.transferred_at,
        overall_deadline: case.overall_deadline,
        overall_paused_days: case.overall_paused_days,
        overall_met_at: case.overall_met_at,
        overall_overdue: case
            .overall_deadline
            .is_some_and(|d| case.overall_met_at.unwrap_or(now) > d),
        scheduled_due: case.scheduled_due,
        scheduled_done_at: case.scheduled_done_at,
        category: None,
        opened_at: case.opened_at,
        closed_at: case.closed_at,
        rating: rating_view(rating, !may_call_rater(caller, case)),
        events: None,
        actions: None,
        audits: None,
        follow_ups: None,
        attachments: None,
    }
}

/// A case with its events, the caller's actions and its audits.
pub fn case_detail(
    engine: &Engine,
    detail: &CaseDetail,
    caller: &SignedIn,
    now: DateTime<Utc>,
) -> Result<CaseView, StoreError> {
    let mut view = case_summary(engine, &detail.case, &detail.rating, caller, now);
    view.events = Some(detail.events.iter().map(event_view).collect());
    // A corrupt rectification is an error naming its event, never a case without its category.
    view.category = match engine.workflow(&detail.case.workflow_id) {
        Some(def) => bihuan_store::last_rectification(def, &detail.events)?
            .and_then(|fields| fields.get("category")?.as_str().map(str::to_owned)),
        None => None,
    };
    view.actions = Some(match engine.workflow(&detail.case.workflow_id) {
        Some(def) => bihuan_core::available_actions(
            def,
            engine.calendar(),
            &detail.subject(),
            &caller.actor,
            now,
        )
        .into_iter()
        .map(action_view)
        .collect(),
        None => Vec::new(),
    });
    view.audits = Some(
        detail
            .audits
            .iter()
            .map(|a| AuditView {
                id: a.id,
                verdict: a.verdict.as_str().to_owned(),
                reason: a.reason.clone(),
                auditor: a.auditor.clone(),
                at: a.at,
            })
            .collect(),
    );
    Ok(view)
}

/// A rating for a caller; `masked` hides the rater's personal data.
pub fn rating_view(r: &rating::Model, masked: bool) -> RatingView {
    let mask = |v: &Option<String>, f: fn(&str) -> String| {
        v.as_deref()
            .map(|s| if masked { f(s) } else { s.to_owned() })
    };
    RatingView {
        id: r.id,
        source: r.source.clone(),
        source_id: r.source_id.clone(),
        project_no: r.project_no.clone(),
        service_code: r.service_code.clone(),
        service_name: r.service_name.clone(),
        unit_code: r.unit_code.clone(),
        region_code: r.region_code.clone(),
        channel: r.channel.as_str().to_owned(),
        level: r.level.as_str().to_owned(),
        rated_at: r.rated_at,
        assess_number: r.assess_number,
        rater: RaterView {
            kind: r.rater_type.as_str().to_owned(),
            real_name: r.rater_real_name,
            name: mask(&r.rater_name, mask_name),
            phone: mask(&r.rater_phone, mask_phone),
            email: mask(&r.rater_email, mask_email),
            masked,
        },
        staff: r.staff.clone(),
        indicators: r.indicators.clone(),
        comment: r.comment.clone(),
    }
}

fn event_view(e: &event::Model) -> EventView {
    EventView {
        seq: e.seq,
        action: e.action.clone(),
        from: e.from_state.clone(),
        to: e.to_state.clone(),
        actor: e.actor.clone(),
        at: e.at,
        fields: serde_json::from_str::<Map<String, Value>>(&e.fields)
            .map_or(Value::Null, Value::Object),
        hash: e.hash.clone(),
    }
}

/// An action with its fields, as forms and clients need it.
pub fn action_view(a: &ActionDef) -> ActionView {
    ActionView {
        id: a.id.clone(),
        label: a.label.clone(),
        to: (!a.stays).then(|| a.to.clone()),
        fields: a
            .fields
            .iter()
            .map(|f| {
                let (kind, options) = match &f.kind {
                    FieldKind::Text { .. } => ("text", Vec::new()),
                    FieldKind::Enum { options } => (
                        "enum",
                        options
                            .iter()
                            .map(|o| serde_json::json!({ "value": o.value, "label": o.label }))
                            .collect(),
                    ),
                    FieldKind::Integer { .. } => ("integer", Vec::new()),
                    FieldKind::Unit => ("unit", Vec::new()),
                    FieldKind::DateTime { .. } => ("datetime", Vec::new()),
                    FieldKind::Date => ("date", Vec::new()),
                    FieldKind::Evidence { .. } => ("evidence", Vec::new()),
                };
                FieldView {
                    name: f.name.clone(),
                    label: f.label.clone(),
                    kind,
                    required: f.required,
                    options,
                    when: f
                        .when
                        .as_ref()
                        .map(|w| serde_json::json!({ "field": w.field, "equals": w.equals })),
                    required_when: f
                        .required_when
                        .as_ref()
                        .map(|w| serde_json::json!({ "field": w.field, "equals": w.equals })),
                    required_if_anonymous: f.required_if_anonymous,
                    public: matches!(f.kind, FieldKind::Text { public: true, .. }),
                }
            })
            .collect(),
    }
}
