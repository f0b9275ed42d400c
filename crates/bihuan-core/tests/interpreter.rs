//! Every action of both shipped workflows: allowed, refused by state, by role, by unit, for a missing or
//! invalid field, and by guards; plus the effects on deadlines, units and escalation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;

use bihuan_core::workflow::Audience;
use bihuan_core::{
    Actor, DeadlineBasis, Engine, Role, Source, Subject, Timing, WorkflowDefinition, decide, open,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};

use common::{apply, engine};

/// 2021-05-06 10:00 Beijing time.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap()
}

fn actor(who: &str) -> Actor {
    let (role, unit) = match who {
        "center" => (Role::CenterStaff, Some("center")),
        "unit_a" => (Role::UnitStaff, Some("unit-a")),
        "unit_b" => (Role::UnitStaff, Some("unit-b")),
        "supervisor" => (Role::Supervisor, Some("town")),
        "viewer" => (Role::Viewer, Some("town")),
        "admin" => (Role::Admin, None),
        "rater" => (Role::Rater, None),
        "scheduler" => (Role::Scheduler, None),
        other => panic!("no actor {other}"),
    };
    Actor {
        name: who.into(),
        role,
        unit: unit.map(Into::into),
    }
}

/// A subject in `state`, with unit-a responsible, a running deadline and the given action counts.
fn subject(
    def: &WorkflowDefinition,
    engine: &Engine,
    state: &str,
    counts: &[(&str, u32)],
) -> Subject {
    let started = Utc.with_ymd_and_hms(2021, 5, 6, 1, 0, 0).unwrap();
    let basis = def
        .state(state)
        .and_then(|s| s.time_limit_days)
        .map(|days| DeadlineBasis {
            start: started,
            working_days: days,
        });
    Subject {
        responsible_units: vec!["unit-a".into()],
        // Transferred an hour ago; the supervisors' unit "town" is above unit-a.
        transferred_at: Some(started),
        responsible_ancestors: vec!["town".into()],
        timing: Timing {
            basis,
            deadline: basis.map(|b| engine.calendar().deadline(b)),
            paused: None,
        },
        actions_in_state: counts
            .iter()
            .map(|(a, n)| ((*a).to_owned(), *n))
            .collect::<BTreeMap<_, _>>(),
        ..common::with_evidence(Subject::new(state))
    }
}

/// One row: in `state`, `who` takes `action` with `fields`; expect the new state or an error code
/// (with the field or guard it names after a colon).
fn check(
    workflow: &str,
    state: &str,
    counts: &[(&str, u32)],
    who: &str,
    action: &str,
    fields: Value,
    expected: &str,
) {
    let engine = engine();
    let def = engine.workflow(workflow).unwrap();
    let subject = subject(def, &engine, state, counts);
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap();
    let got = match decide(
        def,
        engine.calendar(),
        &subject,
        &actor(who),
        action,
        &fields,
        now(),
    ) {
        Ok(d) => d.to,
        Err(e) => match (e.field(), &e) {
            (Some(f), _) => format!("{}:{f}", e.code()),
            (None, bihuan_core::ActionError::GuardFailed { guard, .. }) => {
                format!("{}:{guard}", e.code())
            }
            (None, _) => e.code().to_owned(),
        },
    };
    assert_eq!(
        got, expected,
        "{workflow}: {who} takes {action} in {state} with {fields:?}"
    );
}

/// (state, action counts, who, action, fields, expected).
type Row = (
    &'static str,
    &'static [(&'static str, u32)],
    &'static str,
    &'static str,
    Value,
    &'static str,
);

const STATE: &str = "action_not_allowed_in_state";
const ROLE: &str = "role_not_allowed";
const UNIT: &str = "not_responsible_unit";

#[test]
fn every_negative_rating_action_is_allowed_or_refused_as_the_table_says() {
    let n = "negative-rating";
    let rectify = json!({"finding": "true", "measures": "补充一次性告知单", "outcome": "rectified", "evidence": ["e-1"]});
    let rows: Vec<Row> = vec![
        ("received", &[], "center", "accept", json!({}), "accepted"),
        ("accepted", &[], "center", "accept", json!({}), STATE),
        ("received", &[], "unit_a", "accept", json!({}), ROLE),
        ("received", &[], "viewer", "accept", json!({}), ROLE),
        ("received", &[], "admin", "accept", json!({}), ROLE),
        (
            "accepted",
            &[],
            "center",
            "transfer",
            json!({"unit": "unit-a"}),
            "rectifying",
        ),
        (
            "accepted",
            &[],
            "center",
            "transfer",
            json!({}),
            "missing_field:unit",
        ),
        (
            "accepted",
            &[],
            "center",
            "transfer",
            json!({"unit": "  "}),
            "missing_field:unit",
        ),
        (
            "accepted",
            &[],
            "center",
            "transfer",
            json!({"unit": 7}),
            "invalid_field:unit",
        ),
        (
            "received",
            &[],
            "center",
            "transfer",
            json!({"unit": "unit-a"}),
            STATE,
        ),
        (
            "accepted",
            &[],
            "supervisor",
            "transfer",
            json!({"unit": "unit-a"}),
            ROLE,
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "return",
            json!({"reason": "不属于本单位职责"}),
            "accepted",
        ),
        (
            "rectifying",
            &[],
            "unit_b",
            "return",
            json!({"reason": "x"}),
            UNIT,
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "return",
            json!({}),
            "missing_field:reason",
        ),
        (
            "rectifying",
            &[],
            "center",
            "return",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "accepted",
            &[],
            "unit_a",
            "return",
            json!({"reason": "x"}),
            STATE,
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "malicious", "reason": "恶意", "evidence": ["e-1"]}),
            "appealing",
        ),
        // Without its evidence, or citing a file that is not the case's.
        (
            "rectifying",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "malicious", "reason": "恶意"}),
            "evidence_required:evidence",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "malicious", "reason": "恶意", "evidence": ["e-9"]}),
            "invalid_field:evidence",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "spam", "reason": "x"}),
            "invalid_field:category",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "mistaken", "evidence": ["e-1"]}),
            "missing_field:reason",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "appeal",
            json!({"category": "unrelated", "reason": "x"}),
            ROLE,
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "appeal",
            json!({"category": "unrelated", "reason": "x"}),
            STATE,
        ),
        (
            "appealing",
            &[],
            "supervisor",
            "uphold_appeal",
            json!({"reason": "确属误评"}),
            "invalid",
        ),
        (
            "appealing",
            &[],
            "supervisor",
            "uphold_appeal",
            json!({}),
            "missing_field:reason",
        ),
        (
            "appealing",
            &[],
            "center",
            "uphold_appeal",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "uphold_appeal",
            json!({"reason": "x"}),
            STATE,
        ),
        (
            "appealing",
            &[],
            "supervisor",
            "reject_appeal",
            json!({"reason": "证据不足"}),
            "rectifying",
        ),
        (
            "appealing",
            &[],
            "unit_a",
            "reject_appeal",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "appealing",
            &[],
            "supervisor",
            "reject_appeal",
            json!({"reason": ""}),
            "missing_field:reason",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": 3, "reason": "需协调"}),
            "rectifying",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": "3", "reason": "需协调"}),
            "rectifying",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": 0, "reason": "x"}),
            "invalid_field:days",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": "三", "reason": "x"}),
            "invalid_field:days",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": 3}),
            "missing_field:reason",
        ),
        (
            "rectifying",
            &[],
            "supervisor",
            "extend",
            json!({"days": 10, "reason": "x"}),
            "rectifying",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "extend",
            json!({"days": 3, "reason": "x"}),
            ROLE,
        ),
        (
            "pending_feedback",
            &[],
            "supervisor",
            "extend",
            json!({"days": 3, "reason": "x"}),
            STATE,
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "rectify",
            rectify.clone(),
            "pending_feedback",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "rectify",
            json!({"finding": "true", "outcome": "rectified"}),
            "missing_field:measures",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "rectify",
            json!({"finding": "true", "measures": "x", "outcome": "done"}),
            "invalid_field:outcome",
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "rectify",
            json!({"finding": "yes", "measures": "x", "outcome": "explained"}),
            "invalid_field:finding",
        ),
        (
            "rectifying",
            &[],
            "unit_b",
            "rectify",
            rectify.clone(),
            UNIT,
        ),
        (
            "rectifying",
            &[],
            "center",
            "rectify",
            rectify.clone(),
            ROLE,
        ),
        (
            "appealing",
            &[],
            "unit_a",
            "rectify",
            rectify.clone(),
            STATE,
        ),
        (
            "rectifying",
            &[],
            "unit_a",
            "rectify",
            json!({"finding": "true", "measures": "x", "outcome": "rectified", "evidence": ["e-1"], "note": 1}),
            "unknown_field:note",
        ),
        (
            "pending_feedback",
            &[],
            "center",
            "contact_attempt",
            json!({"method": "phone"}),
            "pending_feedback",
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "contact_attempt",
            json!({"method": "sms", "at": "2021-05-06T09:00:00+08:00"}),
            "pending_feedback",
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "contact_attempt",
            json!({"method": "fax"}),
            "invalid_field:method",
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "contact_attempt",
            json!({"method": "phone", "at": "昨天"}),
            "invalid_field:at",
        ),
        (
            "pending_feedback",
            &[],
            "supervisor",
            "contact_attempt",
            json!({"method": "phone"}),
            ROLE,
        ),
        (
            "pending_review",
            &[],
            "center",
            "contact_attempt",
            json!({"method": "phone"}),
            STATE,
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "feedback",
            json!({"method": "phone", "summary": "已电话告知整改结果"}),
            "pending_review",
        ),
        (
            "pending_feedback",
            &[],
            "center",
            "feedback",
            json!({"method": "visit", "summary": "上门回访"}),
            "pending_review",
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "feedback",
            json!({"method": "phone"}),
            "missing_field:summary",
        ),
        (
            "pending_feedback",
            &[],
            "unit_a",
            "feedback",
            json!({"method": "phone", "summary": "x", "at": "2021-06-01T00:00:00+08:00"}),
            "invalid_field:at",
        ),
        (
            "pending_feedback",
            &[],
            "unit_b",
            "feedback",
            json!({"method": "phone", "summary": "x"}),
            UNIT,
        ),
        (
            "pending_feedback",
            &[],
            "viewer",
            "feedback",
            json!({"method": "phone", "summary": "x"}),
            ROLE,
        ),
        (
            "pending_feedback",
            &[("contact_attempt", 3)],
            "center",
            "close_unreachable",
            json!({}),
            "closed",
        ),
        (
            "pending_feedback",
            &[("contact_attempt", 2)],
            "center",
            "close_unreachable",
            json!({}),
            "guard_failed:min_actions_in_state",
        ),
        (
            "pending_feedback",
            &[],
            "center",
            "close_unreachable",
            json!({}),
            "guard_failed:min_actions_in_state",
        ),
        (
            "pending_feedback",
            &[("contact_attempt", 3)],
            "unit_a",
            "close_unreachable",
            json!({}),
            ROLE,
        ),
        (
            "pending_review",
            &[("contact_attempt", 3)],
            "center",
            "close_unreachable",
            json!({}),
            STATE,
        ),
        (
            "pending_review",
            &[],
            "center",
            "review_satisfied",
            json!({"level": "satisfied"}),
            "closed",
        ),
        (
            "pending_review",
            &[],
            "rater",
            "review_satisfied",
            json!({"level": "basically_satisfied"}),
            "closed",
        ),
        (
            "pending_review",
            &[],
            "rater",
            "review_satisfied",
            json!({"level": "very_satisfied"}),
            "invalid_field:level",
        ),
        (
            "pending_review",
            &[],
            "rater",
            "review_satisfied",
            json!({}),
            "missing_field:level",
        ),
        (
            "pending_review",
            &[],
            "unit_a",
            "review_satisfied",
            json!({"level": "satisfied"}),
            ROLE,
        ),
        (
            "closed",
            &[],
            "rater",
            "review_satisfied",
            json!({"level": "satisfied"}),
            STATE,
        ),
        (
            "pending_review",
            &[],
            "rater",
            "review_unsatisfied",
            json!({"reason": "问题依旧"}),
            "rectifying",
        ),
        (
            "pending_review",
            &[],
            "center",
            "review_unsatisfied",
            json!({"reason": "问题依旧"}),
            "rectifying",
        ),
        (
            "pending_review",
            &[],
            "rater",
            "review_unsatisfied",
            json!({}),
            "missing_field:reason",
        ),
        (
            "pending_review",
            &[],
            "supervisor",
            "review_unsatisfied",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "pending_review",
            &[],
            "scheduler",
            "review_timeout",
            json!({}),
            "closed",
        ),
        (
            "pending_review",
            &[],
            "center",
            "review_timeout",
            json!({}),
            ROLE,
        ),
        (
            "pending_feedback",
            &[],
            "scheduler",
            "review_timeout",
            json!({}),
            STATE,
        ),
        (
            "closed",
            &[],
            "supervisor",
            "audit_fail",
            json!({"reason": "回访记录不实"}),
            "rectifying",
        ),
        (
            "closed",
            &[],
            "supervisor",
            "audit_fail",
            json!({}),
            "missing_field:reason",
        ),
        (
            "closed",
            &[],
            "center",
            "audit_fail",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "invalid",
            &[],
            "supervisor",
            "audit_fail",
            json!({"reason": "x"}),
            STATE,
        ),
        (
            "received",
            &[],
            "center",
            "delete",
            json!({}),
            "unknown_action",
        ),
    ];
    for (state, counts, who, action, fields, expected) in rows {
        check(n, state, counts, who, action, fields, expected);
    }
}

#[test]
fn every_work_plan_action_is_allowed_or_refused_as_the_table_says() {
    let w = "work-plan-task";
    let progress = json!({"summary": "已完成导航图初稿", "percent": 60});
    let rows: Vec<(&str, &str, &str, Value, &str)> = vec![
        ("not_started", "unit_a", "start", json!({}), "in_progress"),
        ("not_started", "unit_b", "start", json!({}), UNIT),
        ("not_started", "supervisor", "start", json!({}), ROLE),
        ("in_progress", "unit_a", "start", json!({}), STATE),
        (
            "in_progress",
            "unit_a",
            "report_progress",
            progress.clone(),
            "in_progress",
        ),
        (
            "in_progress",
            "unit_a",
            "report_progress",
            json!({"summary": "x", "percent": 60, "attachments": "导航图.pdf"}),
            "in_progress",
        ),
        (
            "in_progress",
            "unit_a",
            "report_progress",
            json!({"summary": "x", "percent": 101}),
            "invalid_field:percent",
        ),
        (
            "in_progress",
            "unit_a",
            "report_progress",
            json!({"percent": 10}),
            "missing_field:summary",
        ),
        (
            "in_progress",
            "unit_b",
            "report_progress",
            progress.clone(),
            UNIT,
        ),
        (
            "not_started",
            "unit_a",
            "report_progress",
            progress.clone(),
            STATE,
        ),
        (
            "in_progress",
            "unit_a",
            "submit",
            json!({"report": "已完成"}),
            "submitted",
        ),
        (
            "in_progress",
            "unit_a",
            "submit",
            json!({}),
            "missing_field:report",
        ),
        (
            "in_progress",
            "center",
            "submit",
            json!({"report": "x"}),
            ROLE,
        ),
        ("submitted", "supervisor", "accept", json!({}), "done"),
        (
            "submitted",
            "supervisor",
            "accept",
            json!({"comment": "同意"}),
            "done",
        ),
        ("submitted", "unit_a", "accept", json!({}), ROLE),
        ("in_progress", "supervisor", "accept", json!({}), STATE),
        (
            "submitted",
            "supervisor",
            "return",
            json!({"reason": "材料不全"}),
            "in_progress",
        ),
        (
            "submitted",
            "supervisor",
            "return",
            json!({}),
            "missing_field:reason",
        ),
        (
            "submitted",
            "unit_a",
            "return",
            json!({"reason": "x"}),
            ROLE,
        ),
        (
            "done",
            "supervisor",
            "return",
            json!({"reason": "x"}),
            STATE,
        ),
    ];
    for (state, who, action, fields, expected) in rows {
        check(w, state, &[], who, action, fields, expected);
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn last_day(engine: &Engine, s: &Subject) -> NaiveDate {
    engine.calendar().last_day(s.timing.deadline.unwrap().at)
}

#[test]
fn a_full_loop_sets_units_deadlines_timers_and_notifications() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let cal = engine.calendar();
    let opened = open(def, cal, beijing(2021, 2, 5, 10));
    assert_eq!(opened.to, "received");
    let mut s = Subject {
        timing: opened.timing.clone(),
        responsible_ancestors: vec!["town".into()],
        ..common::with_evidence(Subject::new(&opened.to))
    };
    assert_eq!(
        last_day(&engine, &s),
        "2021-02-07".parse::<NaiveDate>().unwrap()
    );

    let step = |s: &Subject, who: &str, action: &str, f: Value, at: DateTime<Utc>| {
        decide(def, cal, s, &actor(who), action, &fields(f), at).unwrap()
    };
    let d = step(&s, "center", "accept", json!({}), beijing(2021, 2, 5, 11));
    s = apply(&s, &d);
    let d = step(
        &s,
        "center",
        "transfer",
        json!({"unit": "unit-a"}),
        beijing(2021, 2, 5, 12),
    );
    assert_eq!(d.responsible_units, vec!["unit-a".to_owned()]);
    assert_eq!(d.notifications.len(), 1);
    assert_eq!(d.notifications[0].audience, Audience::ResponsibleUnit);
    s = apply(&s, &d);
    // Friday 2021-02-05 + 5 working days = Thursday 2021-02-18 (春节 in between, 02-07 worked).
    assert_eq!(
        last_day(&engine, &s),
        "2021-02-18".parse::<NaiveDate>().unwrap()
    );
    assert!(!s.timing.deadline.unwrap().provisional);

    // Appeal on Monday 02-08 with 3 working days left (09, 10, 18): the rectifying clock pauses.
    let d = step(
        &s,
        "unit_a",
        "appeal",
        json!({"category": "mistaken", "reason": "误评", "evidence": ["e-1"]}),
        beijing(2021, 2, 8, 9),
    );
    assert_eq!(d.timing.paused.as_ref().unwrap().remaining_days, 3);
    s = apply(&s, &d);
    // Rejected on Monday 02-22: rectifying resumes with the 3 days: 23, 24, 25.
    let d = step(
        &s,
        "supervisor",
        "reject_appeal",
        json!({"reason": "驳回"}),
        beijing(2021, 2, 22, 9),
    );
    assert!(d.timing.paused.is_none());
    s = apply(&s, &d);
    assert_eq!(
        last_day(&engine, &s),
        "2021-02-25".parse::<NaiveDate>().unwrap()
    );
    // Extension adds working days to that deadline: 26 (Fri), 03-01 (Mon).
    let d = step(
        &s,
        "supervisor",
        "extend",
        json!({"days": 2, "reason": "协调"}),
        beijing(2021, 2, 23, 9),
    );
    assert_eq!(d.extension_days, 2);
    s = apply(&s, &d);
    assert_eq!(
        last_day(&engine, &s),
        "2021-03-01".parse::<NaiveDate>().unwrap()
    );
    // The extension cap over the case's life: 5 + 2 + 9 > 15.
    let err = decide(
        def,
        cal,
        &s,
        &actor("supervisor"),
        "extend",
        &fields(json!({"days": 9, "reason": "x"})),
        beijing(2021, 2, 23, 10),
    )
    .unwrap_err();
    assert_eq!(err.code(), "extension_limit");

    let d = step(
        &s,
        "unit_a",
        "rectify",
        json!({"finding": "partly_true", "measures": "整改", "outcome": "rectified", "evidence": ["e-1"]}),
        beijing(2021, 2, 24, 9),
    );
    assert_eq!(d.extension_days, 0);
    s = apply(&s, &d);
    let d = step(
        &s,
        "unit_a",
        "feedback",
        json!({"method": "phone", "summary": "已回访"}),
        beijing(2021, 2, 24, 15),
    );
    assert_eq!(
        d.fields["at"],
        json!("2021-02-24T07:00:00Z"),
        "`at` defaults to the action's time"
    );
    let timer = d.timer.clone().unwrap();
    assert_eq!(timer.action, "review_timeout");
    assert_eq!(timer.at, d.timing.deadline.unwrap().at);
    s = apply(&s, &d);

    // First unsatisfied review reopens without escalation, the second escalates (limit 1).
    let d = step(
        &s,
        "rater",
        "review_unsatisfied",
        json!({"reason": "问题依旧"}),
        beijing(2021, 2, 25, 9),
    );
    assert_eq!((d.reopen_count, d.escalated), (1, false));
    assert!(d.timer.is_none());
    s = apply(&s, &d);
    for (action, f) in [
        (
            "rectify",
            json!({"finding": "true", "measures": "再整改", "outcome": "rectified", "evidence": ["e-1"]}),
        ),
        ("feedback", json!({"method": "phone", "summary": "再回访"})),
    ] {
        let d = step(&s, "unit_a", action, f, beijing(2021, 2, 26, 9));
        s = apply(&s, &d);
    }
    let d = step(
        &s,
        "rater",
        "review_unsatisfied",
        json!({"reason": "仍不满意"}),
        beijing(2021, 3, 1, 9),
    );
    assert_eq!((d.reopen_count, d.escalated), (2, true));
    assert!(
        d.notifications
            .iter()
            .any(|n| n.kind == "reopen_limit_exceeded" && n.audience == Audience::Supervisors)
    );
}

#[test]
fn a_returned_case_leaves_its_unit_and_an_upheld_appeal_drops_the_paused_clock() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let s = subject(def, &engine, "rectifying", &[]);
    let d = decide(
        def,
        engine.calendar(),
        &s,
        &actor("unit_a"),
        "return",
        &fields(json!({"reason": "非本单位"})),
        now(),
    )
    .unwrap();
    assert!(d.responsible_units.is_empty());
    assert_eq!(d.notifications[0].audience, Audience::Center);

    let d = decide(
        def,
        engine.calendar(),
        &s,
        &actor("unit_a"),
        "appeal",
        &fields(json!({"category": "unrelated", "reason": "x", "evidence": ["e-1"]})),
        now(),
    )
    .unwrap();
    let s = apply(&s, &d);
    let d = decide(
        def,
        engine.calendar(),
        &s,
        &actor("supervisor"),
        "uphold_appeal",
        &fields(json!({"reason": "成立"})),
        now(),
    )
    .unwrap();
    assert_eq!(d.to, "invalid");
    assert_eq!(
        d.timing,
        Timing::default(),
        "a terminal state has no deadline and no paused clock"
    );
}

#[test]
fn a_deadline_in_an_unannounced_year_is_provisional() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let opened = open(def, engine.calendar(), beijing(2027, 3, 1, 10));
    assert!(opened.timing.deadline.unwrap().provisional);
    let opened = open(def, engine.calendar(), beijing(2026, 3, 2, 10));
    assert!(!opened.timing.deadline.unwrap().provisional);
}

#[test]
fn available_actions_follow_state_role_unit_and_guards() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let ids = |s: &Subject, who: &str| -> Vec<String> {
        bihuan_core::available_actions(def, engine.calendar(), s, &actor(who), now())
            .iter()
            .map(|a| a.id.clone())
            .collect()
    };
    let s = subject(def, &engine, "pending_feedback", &[("contact_attempt", 2)]);
    assert_eq!(ids(&s, "center"), ["contact_attempt", "feedback"]);
    let s = subject(def, &engine, "pending_feedback", &[("contact_attempt", 3)]);
    assert_eq!(
        ids(&s, "center"),
        ["contact_attempt", "feedback", "close_unreachable"]
    );
    assert_eq!(ids(&s, "unit_b"), Vec::<String>::new());
    let s = subject(def, &engine, "rectifying", &[]);
    assert_eq!(
        ids(&s, "unit_a"),
        ["return", "appeal", "request_extension", "rectify"]
    );
    assert_eq!(ids(&s, "supervisor"), ["extend"]);
    assert!(ids(&s, "viewer").is_empty());
}

#[test]
fn a_province_changes_limits_labels_roles_and_adds_a_state_in_the_file_alone() {
    let text = include_str!("../../../workflows/negative-rating.toml")
        .replacen("label = \"待受理\"", "label = \"待签收\"", 1)
        .replacen(
            "time_limit_days = 5\nmax_time_limit_days = 15",
            "time_limit_days = 7\nmax_time_limit_days = 20",
            1,
        )
        .replacen(
            "from = \"received\"\nto = \"accepted\"\nroles = [\"center_staff\"]",
            "from = \"received\"\nto = \"accepted\"\nroles = [\"center_staff\", \"supervisor\"]",
            1,
        )
        + r#"
[[states]]
id = "supervised"
label = "挂牌督办中"
label_en = "Under supervision"
time_limit_days = 2

[[actions]]
id = "supervise"
label = "挂牌督办"
label_en = "Put under supervision"
from = "rectifying"
to = "supervised"
roles = ["supervisor"]
notify = [{ kind = "case_supervised", to = "responsible_unit" }]

[[actions]]
id = "resume"
label = "解除督办"
label_en = "Lift supervision"
from = "supervised"
to = "rectifying"
roles = ["supervisor"]
[[actions.fields]]
name = "reason"
label = "理由"
type = "text"
"#;
    let src = |name: &str, text: &str| Source {
        name: name.into(),
        text: text.into(),
    };
    let engine = Engine::build(
        &[
            src("negative-rating.toml", &text),
            src(
                "work-plan-task.toml",
                include_str!("../../../workflows/work-plan-task.toml"),
            ),
        ],
        &[src(
            "cn.toml",
            include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml"),
        )],
        chrono_tz::Asia::Shanghai,
    )
    .unwrap();
    let def = engine.workflow("negative-rating").unwrap();
    assert_eq!(def.state("received").unwrap().label, "待签收");
    let cal = engine.calendar();

    let s = subject(def, &engine, "received", &[]);
    assert_eq!(
        decide(
            def,
            cal,
            &s,
            &actor("supervisor"),
            "accept",
            &Map::new(),
            now()
        )
        .unwrap()
        .to,
        "accepted"
    );

    let s = subject(def, &engine, "accepted", &[]);
    let d = decide(
        def,
        cal,
        &s,
        &actor("center"),
        "transfer",
        &fields(json!({"unit": "unit-a"})),
        now(),
    )
    .unwrap();
    // Thursday 2021-05-06 + 7 working days: 07, 08 (make-up), 10, 11, 12, 13, 14.
    assert_eq!(
        cal.last_day(d.timing.deadline.unwrap().at),
        "2021-05-14".parse::<NaiveDate>().unwrap()
    );

    let s = apply(&s, &d);
    let d = decide(
        def,
        cal,
        &s,
        &actor("supervisor"),
        "supervise",
        &Map::new(),
        now(),
    )
    .unwrap();
    assert_eq!(
        (d.to.as_str(), d.notifications[0].kind.as_str()),
        ("supervised", "case_supervised")
    );
    let s = apply(&s, &d);
    let err = decide(
        def,
        cal,
        &s,
        &actor("supervisor"),
        "resume",
        &Map::new(),
        now(),
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("reason"));
    assert_eq!(
        decide(
            def,
            cal,
            &s,
            &actor("supervisor"),
            "resume",
            &fields(json!({"reason": "已整改到位"})),
            now()
        )
        .unwrap()
        .to,
        "rectifying"
    );
}

#[test]
fn only_a_co_unit_reports_its_share_and_the_share_names_it() {
    let engine = engine();
    let def = engine.workflow("work-plan-task").unwrap();
    let s = Subject {
        co_units: vec!["unit-b".into()],
        ..subject(def, &engine, "in_progress", &[])
    };
    let take = |who: &str, action: &str, fields: Value| {
        decide(
            def,
            engine.calendar(),
            &s,
            &actor(who),
            action,
            fields.as_object().unwrap(),
            now(),
        )
    };
    let share = json!({"summary": "已完成辖区内宣传点位布设"});
    let d = take("unit_b", "report_share", share.clone()).unwrap();
    assert_eq!(d.to, "in_progress");
    assert_eq!(d.fields["unit"], "unit-b", "the co-unit is recorded");
    assert_eq!(d.fields["summary"], "已完成辖区内宣传点位布设");
    // The lead unit reports its own progress, not a share; nobody names the unit by hand.
    let lead = take("unit_a", "report_share", share).unwrap_err();
    assert_eq!(lead.code(), "not_co_unit");
    let forged = take(
        "unit_b",
        "report_share",
        json!({"summary": "x", "unit": "unit-a"}),
    )
    .unwrap_err();
    assert_eq!(forged.code(), "unknown_field");
    // A co-unit still may not move the item on.
    let submit = take("unit_b", "submit", json!({"report": "已完成"})).unwrap_err();
    assert_eq!(submit.code(), "not_responsible_unit");
    let offered: Vec<String> =
        bihuan_core::available_actions(def, engine.calendar(), &s, &actor("unit_b"), now())
            .iter()
            .map(|a| a.id.clone())
            .collect();
    assert_eq!(offered, ["add_note", "report_share"]);
}
