//! What each case and rating counts for in the metrics, and the figures over those counts: every edge
//! case of docs/DOMAIN.md ("Metrics") written out by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::metrics::{
    CaseCounts, CasePart, CaseRecord, Counts, Owner, case_counts, figures, rating_counts,
};
use bihuan_core::rating::{Channel, Level};
use bihuan_core::{Step, WorkflowDefinition, deadlines_before};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};

use common::engine;

/// May 2021, Beijing time.
fn may(day: u32, hour: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day, hour, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// (action, from, to, day of May, hour, fields)
type Row = (
    &'static str,
    Option<&'static str>,
    &'static str,
    u32,
    u32,
    Value,
);

fn counts_of(rows: &[Row], real_name: bool, overdue: bool) -> Counts {
    let engine = engine();
    counts_in(
        engine.workflow("negative-rating").unwrap(),
        rows,
        real_name,
        overdue,
    )
}

/// What the case of `rows` counts for under workflow `def`, every part summed.
fn counts_in(def: &WorkflowDefinition, rows: &[Row], real_name: bool, overdue: bool) -> Counts {
    parts_in(def, rows, real_name, overdue).total()
}

/// What the case of `rows` (rated on 5/6) counts for under workflow `def`, part by part.
fn parts_in(def: &WorkflowDefinition, rows: &[Row], real_name: bool, overdue: bool) -> CaseCounts {
    let engine = engine();
    let fields: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| r.5.as_object().cloned().unwrap_or_default())
        .collect();
    let steps: Vec<Step<'_>> = rows
        .iter()
        .zip(&fields)
        .map(|(r, f)| Step {
            action: r.0,
            from: r.1,
            to: r.2,
            at: may(r.3, r.4),
            fields: f,
        })
        .collect();
    case_counts(
        def,
        engine.calendar(),
        &CaseRecord {
            steps: &steps,
            real_name,
            overdue,
            day: may_day(6),
        },
    )
}

fn may_day(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 5, day).unwrap()
}

/// Opened Thursday 5/6 10:00, accepted and transferred the same day: the rectification deadline is the
/// end of Wednesday 5/12 (5/7, the make-up Saturday 5/8, 5/10, 5/11, 5/12).
fn to_rectifying() -> Vec<Row> {
    vec![
        ("open", None, "received", 6, 10, json!({})),
        ("accept", Some("received"), "accepted", 6, 11, json!({})),
        (
            "transfer",
            Some("accepted"),
            "rectifying",
            6,
            12,
            json!({"unit": "u"}),
        ),
    ]
}

fn with(mut rows: Vec<Row>, more: &[Row]) -> Vec<Row> {
    rows.extend(more.iter().cloned());
    rows
}

const FEEDBACK: Row = (
    "feedback",
    Some("pending_feedback"),
    "pending_review",
    13,
    9,
    Value::Null,
);

#[test]
fn each_case_counts_once_with_its_edge_cases() {
    let rectify = |day, hour| -> Row {
        (
            "rectify",
            Some("rectifying"),
            "pending_feedback",
            day,
            hour,
            json!({}),
        )
    };
    let satisfied: Row = (
        "review_satisfied",
        Some("pending_review"),
        "closed",
        14,
        9,
        json!({"level": "satisfied"}),
    );
    let unsatisfied: Row = (
        "review_unsatisfied",
        Some("pending_review"),
        "rectifying",
        14,
        9,
        json!({"reason": "x"}),
    );
    // (name, rows, real name, overdue mark, expected)
    let table: Vec<(&str, Vec<Row>, bool, bool, Counts)> = vec![
        (
            "just opened",
            vec![("open", None, "received", 6, 10, json!({}))],
            true,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                open: 1,
                ..Counts::default()
            },
        ),
        (
            "open and past its deadline: due, late",
            to_rectifying(),
            true,
            true,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                open: 1,
                overdue: 1,
                due: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "rectified on the last day, visited, satisfied, closed",
            with(
                to_rectifying(),
                &[rectify(12, 20), FEEDBACK, satisfied.clone()],
            ),
            true,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                rectified: 1,
                due: 1,
                on_time: 1,
                rectify_days: 5,
                reached_feedback: 1,
                visited: 1,
                reviewed: 1,
                satisfied: 1,
                closed: 1,
                close_days: 7,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "rectified a day late",
            with(to_rectifying(), &[rectify(13, 9)]),
            true,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                rectified: 1,
                due: 1,
                rectify_days: 6,
                // Waiting for its visit: due for one, not yet visited.
                reached_feedback: 1,
                open: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "an extension of 3 working days makes 5/13 on time",
            with(
                to_rectifying(),
                &[
                    (
                        "extend",
                        Some("rectifying"),
                        "rectifying",
                        10,
                        9,
                        json!({"days": 3, "reason": "r"}),
                    ),
                    rectify(13, 9),
                ],
            ),
            true,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                rectified: 1,
                due: 1,
                on_time: 1,
                rectify_days: 6,
                reached_feedback: 1,
                open: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "anonymous: out of the return-visit denominator",
            with(to_rectifying(), &[rectify(12, 9), FEEDBACK]),
            false,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                rectified: 1,
                due: 1,
                on_time: 1,
                rectify_days: 5,
                open: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "appeal upheld: invalid, out of every denominator",
            with(
                to_rectifying(),
                &[
                    (
                        "appeal",
                        Some("rectifying"),
                        "appealing",
                        7,
                        9,
                        json!({"category": "malicious", "reason": "r"}),
                    ),
                    (
                        "uphold_appeal",
                        Some("appealing"),
                        "invalid",
                        7,
                        15,
                        json!({"reason": "r"}),
                    ),
                ],
            ),
            true,
            false,
            Counts {
                cases: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
        (
            "reopened by an unsatisfied review and rectified again: counted once, by the first",
            with(
                to_rectifying(),
                &[
                    rectify(12, 9),
                    FEEDBACK,
                    unsatisfied,
                    (
                        "rectify",
                        Some("rectifying"),
                        "pending_feedback",
                        25,
                        9,
                        json!({}),
                    ),
                ],
            ),
            true,
            false,
            Counts {
                cases: 1,
                valid: 1,
                valid_rated: 1,
                real_name: 1,
                rectified: 1,
                due: 1,
                on_time: 1,
                rectify_days: 5,
                reached_feedback: 1,
                visited: 1,
                reviewed: 1,
                open: 1,
                center_handled: 1,
                center_timely: 1,
                ..Counts::default()
            },
        ),
    ];
    for (name, rows, real_name, overdue, expected) in table {
        assert_eq!(counts_of(&rows, real_name, overdue), expected, "{name}");
    }
}

#[test]
fn a_paused_clock_resumes_with_what_was_left() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let none = Map::new();
    let step = |action, from, to, day, hour| Step {
        action,
        from,
        to,
        at: may(day, hour),
        fields: &none,
    };
    let steps = [
        step("open", None, "received", 6, 10),
        step("accept", Some("received"), "accepted", 6, 11),
        step("transfer", Some("accepted"), "rectifying", 6, 12),
        // Appealed on Monday 5/10 with 5/11 and 5/12 left; rejected on 5/12: two days from then.
        step("appeal", Some("rectifying"), "appealing", 10, 9),
        step("reject_appeal", Some("appealing"), "rectifying", 12, 9),
        step("rectify", Some("rectifying"), "pending_feedback", 14, 9),
    ];
    let before = deadlines_before(def, engine.calendar(), &steps);
    assert_eq!(
        before,
        [
            None,
            Some(may(8, 0)),
            Some(may(8, 0)),
            Some(may(13, 0)),
            Some(may(14, 0)),
            Some(may(15, 0))
        ]
    );
}

#[test]
fn ratings_count_by_level_and_channel_and_figures_divide_safely() {
    let mut sum = Counts::default();
    for (level, channel) in [
        (Level::VerySatisfied, Channel::Mobile),
        (Level::Satisfied, Channel::Default),
        (Level::BasicallySatisfied, Channel::Pc),
        (Level::Dissatisfied, Channel::HallPad),
    ] {
        sum += rating_counts(level, channel);
    }
    assert_eq!(
        sum,
        Counts {
            ratings: 4,
            negative: 1,
            positive: 2,
            active: 3,
            ..Counts::default()
        }
    );
    let f = figures(&sum);
    assert_eq!(
        (f.negative_rate, f.positive_rate, f.active_rate),
        (Some(0.25), Some(0.5), Some(0.75))
    );
    assert_eq!(
        (f.rectification_rate, f.on_time_rate, f.return_visit_rate),
        (None, None, None)
    );
    // A difference of counts is counts: what an action changes.
    let before = counts_of(&to_rectifying(), true, false);
    let after = counts_of(
        &with(
            to_rectifying(),
            &[(
                "rectify",
                Some("rectifying"),
                "pending_feedback",
                7,
                9,
                json!({}),
            )],
        ),
        true,
        false,
    );
    assert_eq!(
        after - before,
        Counts {
            rectified: 1,
            due: 1,
            on_time: 1,
            rectify_days: 1,
            reached_feedback: 1,
            ..Counts::default()
        }
    );
    assert_eq!(Counts::from_values(&after.values()), after);
}

#[test]
fn a_rater_unreachable_after_the_attempts_counts_as_visited_unless_the_deployment_says_not() {
    let attempt = |hour| -> Row {
        (
            "contact_attempt",
            Some("pending_feedback"),
            "pending_feedback",
            13,
            hour,
            json!({"method": "phone"}),
        )
    };
    let rows = with(
        to_rectifying(),
        &[
            (
                "rectify",
                Some("rectifying"),
                "pending_feedback",
                12,
                9,
                json!({}),
            ),
            attempt(9),
            attempt(11),
            attempt(15),
            (
                "close_unreachable",
                Some("pending_feedback"),
                "closed",
                13,
                16,
                json!({}),
            ),
        ],
    );
    let counted = counts_of(&rows, true, false);
    assert_eq!(
        (
            counted.reached_feedback,
            counted.visited,
            counted.unreachable,
            counted.closed
        ),
        (1, 1, 1, 1)
    );
    let f = figures(&counted);
    assert_eq!((f.return_visit_rate, f.unreachable), (Some(1.0), 1));
    // A deployment that does not count them: due for a visit, not visited, still shown beside.
    let text = include_str!("../../../workflows/negative-rating.toml").replacen(
        "unreachable_counts_as_visited = true",
        "unreachable_counts_as_visited = false",
        1,
    );
    let strict = bihuan_core::workflow::load("negative-rating.toml", &text).unwrap();
    let strictly = counts_in(&strict, &rows, true, false);
    assert_eq!(
        (
            strictly.reached_feedback,
            strictly.visited,
            strictly.unreachable
        ),
        (1, 0, 1)
    );
    assert_eq!(figures(&strictly).return_visit_rate, Some(0.0));
    // Anonymous: no visit is due, the closing still shown.
    let anonymous = counts_of(&rows, false, false);
    assert_eq!(
        (
            anonymous.reached_feedback,
            anonymous.visited,
            anonymous.unreachable
        ),
        (0, 0, 1)
    );
}

#[test]
fn the_center_is_judged_on_its_stage_and_the_unit_on_its_own() {
    let rectify = |day| -> Row {
        (
            "rectify",
            Some("rectifying"),
            "pending_feedback",
            day,
            9,
            json!({}),
        )
    };
    // The center late, the unit not: opened Thu 5/6, accepted Mon 5/10 (the 1 working day of
    // 待受理 ended with Fri 5/7), transferred at once; rectified Tue 5/11, well within the unit's
    // 5 working days counted from the transfer.
    let center_late = vec![
        ("open", None, "received", 6, 10, json!({})),
        ("accept", Some("received"), "accepted", 10, 9, json!({})),
        (
            "transfer",
            Some("accepted"),
            "rectifying",
            10,
            10,
            json!({"unit": "u"}),
        ),
        rectify(11),
    ];
    let c = counts_of(&center_late, true, false);
    assert_eq!(
        (c.center_handled, c.center_timely, c.due, c.on_time),
        (1, 0, 1, 1)
    );
    let f = figures(&c);
    assert_eq!(
        (f.center_timely_rate, f.on_time_rate),
        (Some(0.0), Some(1.0))
    );
    // The unit late, the center not: transferred the day it opened, rectified Thu 5/13, a day after
    // its deadline (Wed 5/12 24:00).
    let unit_late = with(to_rectifying(), &[rectify(13)]);
    let c = counts_of(&unit_late, true, false);
    assert_eq!(
        (c.center_handled, c.center_timely, c.due, c.on_time),
        (1, 1, 1, 0)
    );
    let f = figures(&c);
    assert_eq!(
        (f.center_timely_rate, f.on_time_rate),
        (Some(1.0), Some(0.0))
    );
    // Both, summed: each party's figure is its own.
    let mut both = counts_of(&center_late, true, false);
    both += counts_of(&unit_late, true, false);
    let f = figures(&both);
    assert_eq!(
        (f.center_timely_rate, f.on_time_rate),
        (Some(0.5), Some(0.5))
    );
    // A case still waiting at the center is not yet judged.
    let waiting = counts_of(&to_rectifying()[..2], true, false);
    assert_eq!((waiting.center_handled, waiting.center_timely), (0, 0));
}

#[test]
fn every_count_goes_against_the_party_that_owned_its_step_on_its_day() {
    let unit = |code: &str| Owner::Unit(code.to_owned());
    let rectify = |day| -> Row {
        (
            "rectify",
            Some("rectifying"),
            "pending_feedback",
            day,
            9,
            json!({}),
        )
    };
    let rated = || CasePart {
        day: may_day(6),
        owner: Owner::Rated,
        counts: Counts {
            valid_rated: 1,
            ..Counts::default()
        },
    };
    let center_stage = |timely| CasePart {
        day: may_day(6),
        owner: Owner::Center,
        counts: Counts {
            center_handled: 1,
            center_timely: timely,
            ..Counts::default()
        },
    };
    let case_itself = |owner: Owner, more: Counts| CasePart {
        day: may_day(6),
        owner,
        counts: Counts {
            cases: 1,
            valid: 1,
            real_name: 1,
            ..more
        },
    };
    let judged = |day, owner: Owner, on_time| CasePart {
        day: may_day(day),
        owner,
        counts: Counts {
            due: 1,
            on_time,
            ..Counts::default()
        },
    };
    let returned: Row = (
        "return",
        Some("rectifying"),
        "accepted",
        7,
        9,
        json!({"reason": "不属本单位职责"}),
    );
    let to_v: Row = (
        "transfer",
        Some("accepted"),
        "rectifying",
        7,
        10,
        json!({"unit": "v"}),
    );
    // (name, rows, overdue mark, expected parts)
    let table: Vec<(&str, Vec<Row>, bool, Vec<CasePart>)> = vec![
        (
            "past its deadline at the center: the center's, and never the unit's to rectify in time",
            to_rectifying()[..2].to_vec(),
            true,
            vec![
                rated(),
                case_itself(
                    Owner::Center,
                    Counts {
                        open: 1,
                        overdue: 1,
                        ..Counts::default()
                    },
                ),
            ],
        ),
        (
            "past the unit's deadline (Wed 5/12): late for the unit, on that day",
            to_rectifying(),
            true,
            vec![
                rated(),
                center_stage(1),
                judged(12, unit("u"), 0),
                case_itself(
                    unit("u"),
                    Counts {
                        open: 1,
                        overdue: 1,
                        ..Counts::default()
                    },
                ),
            ],
        ),
        (
            "rectified a day late: judged on 5/12, the day its deadline fell",
            with(to_rectifying(), &[rectify(13)]),
            false,
            vec![
                rated(),
                center_stage(1),
                judged(12, unit("u"), 0),
                case_itself(
                    unit("u"),
                    Counts {
                        rectified: 1,
                        rectify_days: 6,
                        reached_feedback: 1,
                        open: 1,
                        ..Counts::default()
                    },
                ),
            ],
        ),
        (
            "returned by u and sent to v on Fri 5/7: v owns the case and its deadline (Thu 5/13, past the make-up Saturday 5/8)",
            with(to_rectifying(), &[returned, to_v, rectify(13)]),
            false,
            vec![
                rated(),
                center_stage(1),
                judged(13, unit("v"), 1),
                case_itself(
                    unit("v"),
                    Counts {
                        rectified: 1,
                        rectify_days: 6,
                        reached_feedback: 1,
                        open: 1,
                        ..Counts::default()
                    },
                ),
            ],
        ),
    ];
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let key = |p: &CasePart| (p.day, p.owner.clone());
    for (name, rows, overdue, mut expected) in table {
        let mut parts = parts_in(def, &rows, true, overdue).parts;
        parts.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(parts, expected, "{name}");
    }
}
