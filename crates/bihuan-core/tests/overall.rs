//! The overall limit (整改反馈时限, DOMAIN.md "Rules that keep the loop honest"): 15 working days
//! from the opening until feedback, counted across the 2021 劳动节 holiday and its make-up working
//! days (Sun 4/25, Sat 5/8), paused while appealing, lengthened by every extension granted, met
//! once and for good. Each script is decided step by step, and the replay of its steps (what fills
//! in a case opened before the limit existed) must come to the same clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::interpreter::Step;
use bihuan_core::{Actor, OverallClock, Role, Subject, decide, open};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use common::{apply, beijing, engine};

fn actor(who: &str) -> Actor {
    let (role, unit) = match who {
        "center" => (Role::CenterStaff, "center"),
        "unit" => (Role::UnitStaff, "unit-a"),
        "supervisor" => (Role::Supervisor, "town"),
        other => panic!("no actor {other}"),
    };
    Actor {
        name: who.into(),
        role,
        unit: Some(unit.into()),
    }
}

/// What a script ends with: the deadline still to meet (its last day), paused with days left, or
/// met at an instant with the deadline it had.
#[derive(Debug, PartialEq, Eq)]
enum Ends {
    Running(NaiveDate),
    Paused(u32),
    Met(DateTime<Utc>, Option<NaiveDate>),
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, m, d).unwrap()
}

/// One step of a script: who, which action, its fields, when.
type Take<'a> = (&'a str, &'a str, Value, DateTime<Utc>);

/// A step as recorded: action, from, to, when, fields.
type Recorded = (
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    Map<String, Value>,
);

/// Opens a case at 4/19 10:00 and takes the script's steps; answers the clock decided and the
/// clock replayed from the recorded steps.
fn run(script: &[Take<'_>]) -> (OverallClock, OverallClock) {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let cal = engine.calendar();
    let opened = beijing(4, 19, 10);
    let first = open(def, cal, opened);
    let mut subject = Subject {
        timing: first.timing.clone(),
        overall: first.overall.clone(),
        ..common::with_evidence(Subject::new(&first.to))
    };
    let mut recorded: Vec<Recorded> = vec![(
        first.action.clone(),
        None,
        first.to.clone(),
        opened,
        Map::new(),
    )];
    for (who, action, fields, at) in script {
        let fields = fields.as_object().cloned().unwrap();
        let d = decide(def, cal, &subject, &actor(who), action, &fields, *at)
            .unwrap_or_else(|e| panic!("{action} at {at}: {e}"));
        subject = apply(&subject, &d);
        subject.responsible_ancestors = vec!["town".into()];
        recorded.push((
            d.action.clone(),
            d.from.clone(),
            d.to.clone(),
            *at,
            d.fields,
        ));
    }
    let steps: Vec<Step<'_>> = recorded
        .iter()
        .map(|(action, from, to, at, fields)| Step {
            action,
            from: from.as_deref(),
            to,
            at: *at,
            fields,
        })
        .collect();
    (
        subject.overall,
        bihuan_core::overall::replay(def, cal, &steps),
    )
}

fn ends(clock: &OverallClock) -> Ends {
    let cal = engine().calendar().clone();
    if let Some(days) = clock.paused_days {
        return Ends::Paused(days);
    }
    let last = clock.deadline.map(|d| cal.last_day(d.at));
    match clock.met_at {
        Some(at) => Ends::Met(at, last),
        None => Ends::Running(last.expect("a running clock has a deadline")),
    }
}

#[test]
fn the_overall_limit_runs_pauses_lengthens_and_is_met_once() {
    let accept = ("center", "accept", json!({}), beijing(4, 19, 11));
    let transfer = (
        "center",
        "transfer",
        json!({"unit": "unit-a"}),
        beijing(4, 20, 9),
    );
    let rectify = |at| {
        (
            "unit",
            "rectify",
            json!({"finding": "true", "measures": "已改", "outcome": "rectified", "evidence": ["e-1"]}),
            at,
        )
    };
    let feedback = |at| {
        (
            "unit",
            "feedback",
            json!({"method": "phone", "summary": "已回访"}),
            at,
        )
    };
    let appeal = |at| {
        (
            "unit",
            "appeal",
            json!({"category": "mistaken", "reason": "误评", "evidence": ["e-1"]}),
            at,
        )
    };
    let reason = json!({"reason": "理由"});
    let cases: Vec<(&str, Vec<Take<'_>>, Ends)> = vec![
        (
            // 15 working days after Mon 4/19: the make-up Sunday 4/25 counts, 5/1–5/5 do not,
            // the make-up Saturday 5/8 counts: the last day is Tue 5/11.
            "opened",
            vec![],
            Ends::Running(day(5, 11)),
        ),
        (
            "states come and go, the clock runs on",
            vec![accept.clone(), transfer.clone()],
            Ends::Running(day(5, 11)),
        ),
        (
            // Appealing on Wed 4/21: 13 working days were left (4/22 … 5/11).
            "paused while appealing",
            vec![accept.clone(), transfer.clone(), appeal(beijing(4, 21, 10))],
            Ends::Paused(13),
        ),
        (
            // Rejected on Fri 4/23: 13 working days from then, 4/25 counted, the holiday not.
            "resumed with what was left",
            vec![
                accept.clone(),
                transfer.clone(),
                appeal(beijing(4, 21, 10)),
                (
                    "supervisor",
                    "reject_appeal",
                    reason.clone(),
                    beijing(4, 23, 15),
                ),
            ],
            Ends::Running(day(5, 13)),
        ),
        (
            "an extension granted lengthens it",
            vec![
                accept.clone(),
                transfer.clone(),
                (
                    "supervisor",
                    "extend",
                    json!({"days": 3, "reason": "需协调"}),
                    beijing(4, 22, 9),
                ),
            ],
            Ends::Running(day(5, 14)),
        ),
        (
            "feedback meets it, and a reopening does not start it again",
            vec![
                accept.clone(),
                transfer.clone(),
                rectify(beijing(4, 22, 9)),
                feedback(beijing(4, 23, 9)),
                (
                    "center",
                    "review_unsatisfied",
                    json!({"reason": "未解决"}),
                    beijing(4, 26, 9),
                ),
            ],
            Ends::Met(beijing(4, 23, 9), Some(day(5, 11))),
        ),
        (
            "an upheld appeal ends it",
            vec![
                accept.clone(),
                transfer.clone(),
                appeal(beijing(4, 21, 10)),
                (
                    "supervisor",
                    "uphold_appeal",
                    reason.clone(),
                    beijing(4, 22, 10),
                ),
            ],
            Ends::Met(beijing(4, 22, 10), None),
        ),
        (
            // The center transferred on 5/12, a day past the limit: an appeal does not stop a
            // clock that has run out.
            "a limit already missed is not paused",
            vec![
                accept.clone(),
                (
                    "center",
                    "transfer",
                    json!({"unit": "unit-a"}),
                    beijing(5, 12, 9),
                ),
                appeal(beijing(5, 12, 10)),
            ],
            Ends::Running(day(5, 11)),
        ),
    ];
    for (name, script, expected) in cases {
        let (decided, replayed) = run(&script);
        assert_eq!(ends(&decided), expected, "{name}");
        assert_eq!(
            decided, replayed,
            "{name}: the replay differs from the decisions"
        );
    }
}
