//! `field_problems` names every wrong field of a form at once (the pages show each beside its field),
//! where `decide` stops at the first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bihuan_core::{ActionError, NEGATIVE_RATING, field_problems};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use common::engine;

/// When the forms are filled in: a fixed day of 2021, never the system clock.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 6, 1, 2, 0, 0).unwrap()
}

fn problems(action: &str, fields: Value) -> Vec<(String, &'static str)> {
    let engine = engine();
    let def = engine.workflow(NEGATIVE_RATING).unwrap();
    let action = def.action(action).unwrap();
    let given: Map<String, Value> = serde_json::from_value(fields).unwrap();
    field_problems(action, &given, now())
        .iter()
        .map(|e| (e.field().unwrap_or_default().to_owned(), e.code()))
        .collect()
}

/// An action, the fields given, and the (field, code) of every problem expected.
type Row = (&'static str, Value, Vec<(&'static str, &'static str)>);

#[test]
fn every_wrong_field_is_named() {
    let table: [Row; 11] = [
        (
            "rectify",
            json!({}),
            vec![
                ("finding", "missing_field"),
                ("measures", "missing_field"),
                ("outcome", "missing_field"),
            ],
        ),
        (
            "rectify",
            json!({"finding": "partly_true", "measures": "补充告知单"}),
            vec![("outcome", "missing_field")],
        ),
        (
            "rectify",
            json!({"finding": "maybe", "measures": "  ", "outcome": "rectified"}),
            vec![
                ("finding", "invalid_field"),
                ("measures", "missing_field"),
                ("evidence", "evidence_required"),
            ],
        ),
        (
            "rectify",
            json!({"finding": "partly_true", "measures": "x", "outcome": "rectified", "evidence": ["e-1"], "extra": 1}),
            vec![("extra", "unknown_field")],
        ),
        // 已整改 needs its 整改佐证材料; an explanation may do without.
        (
            "rectify",
            json!({"finding": "partly_true", "measures": "x", "outcome": "rectified"}),
            vec![("evidence", "evidence_required")],
        ),
        (
            "rectify",
            json!({"finding": "partly_true", "measures": "x", "outcome": "rectified", "evidence": ["e-1", "e-2"]}),
            vec![],
        ),
        (
            "rectify",
            json!({"finding": "untrue", "measures": "已向群众解释政策", "outcome": "explained"}),
            vec![],
        ),
        (
            "rectify",
            json!({"finding": "true", "measures": "x", "outcome": "rectified", "evidence": 7}),
            vec![("evidence", "invalid_field")],
        ),
        (
            "rectify",
            json!({"finding": "true", "measures": "x", "outcome": "rectified", "evidence": ["e-1", "e-1"]}),
            vec![("evidence", "invalid_field")],
        ),
        // An appeal comes with its evidence.
        (
            "appeal",
            json!({"category": "mistaken", "reason": "误评"}),
            vec![("evidence", "evidence_required")],
        ),
        (
            "feedback",
            json!({"method": "phone", "summary": "已回访", "at": "yesterday"}),
            vec![("at", "invalid_field")],
        ),
    ];
    for (action, fields, expected) in table {
        let got = problems(action, fields.clone());
        let expected: Vec<(String, &str)> = expected
            .into_iter()
            .map(|(f, c)| (f.to_owned(), c))
            .collect();
        assert_eq!(got, expected, "{action} {fields}");
    }
}

#[test]
fn a_missing_field_is_named_by_its_label() {
    let engine = engine();
    let def = engine.workflow(NEGATIVE_RATING).unwrap();
    let found = field_problems(def.action("feedback").unwrap(), &Map::new(), now());
    assert!(
        found
            .iter()
            .any(|e| matches!(e, ActionError::MissingField { label, .. } if label == "反馈内容")),
        "{found:?}"
    );
}
