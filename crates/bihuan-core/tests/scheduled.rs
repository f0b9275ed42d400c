//! 建立台账、限期整改 (DOMAIN.md "Rules that keep the loop honest"): `rectify` with the outcome
//! `scheduled` takes a due date — required with that outcome, refused with any other, after today —
//! and the case tracks it until the unit reports it done (`complete_scheduled`), once; a later
//! rectification with another outcome supersedes it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::{ActionError, Actor, Decision, Role, Subject, decide};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use common::{apply, beijing, engine};

fn unit() -> Actor {
    Actor {
        name: "li".into(),
        role: Role::UnitStaff,
        unit: Some("unit-a".into()),
    }
}

fn take(
    s: &Subject,
    action: &str,
    fields: Value,
    at: DateTime<Utc>,
) -> Result<Decision, ActionError> {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let fields = fields.as_object().cloned().unwrap();
    decide(def, engine.calendar(), s, &unit(), action, &fields, at)
}

fn rectifying() -> Subject {
    Subject {
        responsible_units: vec!["unit-a".into()],
        ..common::with_evidence(Subject::new("rectifying"))
    }
}

fn rectify(outcome: &str, due: Option<&str>) -> Value {
    let mut f = json!({"finding": "true", "measures": "窗口系统改造列入台账", "outcome": outcome, "evidence": ["e-1"]});
    if let Some(due) = due {
        f["due"] = json!(due);
    }
    f
}

fn code(r: Result<Decision, ActionError>) -> String {
    match r {
        Ok(d) => d.to,
        Err(e) => format!("{} {}", e.code(), e.field().unwrap_or_default()),
    }
}

#[test]
fn a_due_date_goes_with_the_scheduled_outcome_only_and_after_today() {
    let now = beijing(4, 30, 10);
    let table = [
        ("scheduled", None, "missing_field due"),
        ("rectified", Some("2021-06-30"), "invalid_field due"),
        ("scheduled", Some("2021-04-30"), "invalid_field due"),
        ("scheduled", Some("30/06/2021"), "invalid_field due"),
        ("scheduled", Some("2021-05-01"), "pending_feedback"),
        ("rectified", None, "pending_feedback"),
    ];
    for (outcome, due, expected) in table {
        let got = code(take(&rectifying(), "rectify", rectify(outcome, due), now));
        assert_eq!(got, expected, "{outcome} {due:?}");
    }
}

#[test]
fn a_scheduled_rectification_is_tracked_until_done_once() {
    let d = take(
        &rectifying(),
        "rectify",
        rectify("scheduled", Some("2021-06-30")),
        beijing(4, 30, 10),
    )
    .unwrap();
    let scheduled = d.scheduled.clone().expect("tracked");
    assert_eq!(scheduled.due, NaiveDate::from_ymd_opt(2021, 6, 30).unwrap());
    // Its end is 24:00 of the due date.
    assert_eq!(scheduled.deadline, beijing(7, 1, 0));
    assert_eq!(scheduled.open(), Some(beijing(7, 1, 0)));
    let s = apply(&rectifying(), &d);

    // Not before it is done: nothing to report on a case without one.
    assert_eq!(
        code(take(
            &rectifying(),
            "complete_scheduled",
            json!({"summary": "x", "evidence": ["e-1"]}),
            beijing(5, 6, 9)
        )),
        "guard_failed "
    );
    let done = take(
        &s,
        "complete_scheduled",
        json!({"summary": "系统已改造上线", "evidence": ["e-1"]}),
        beijing(6, 20, 9),
    )
    .unwrap();
    assert_eq!(done.to, "pending_feedback", "it stays where the loop is");
    assert_eq!(
        done.scheduled.as_ref().unwrap().done_at,
        Some(beijing(6, 20, 9))
    );
    assert_eq!(done.scheduled.as_ref().unwrap().open(), None);
    let s = apply(&s, &done);
    assert_eq!(
        code(take(
            &s,
            "complete_scheduled",
            json!({"summary": "again", "evidence": ["e-1"]}),
            beijing(6, 21, 9)
        )),
        "guard_failed "
    );

    // A rectification with another outcome after a reopening supersedes a scheduled one.
    let again = take(
        &Subject {
            state: "rectifying".into(),
            ..apply(&rectifying(), &d)
        },
        "rectify",
        rectify("rectified", None),
        beijing(5, 10, 9),
    )
    .unwrap();
    assert_eq!(again.scheduled, None);
}
