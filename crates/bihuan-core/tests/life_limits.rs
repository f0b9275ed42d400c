//! The rules that keep the loop honest (DOMAIN.md), each at its boundary: the extension cap over a
//! case's whole life, a unit's request for more time and its answer, the appeal limit and window
//! (across the 2021 劳动节 holiday and its make-up working day), appeals decided only from above the
//! responsible unit, and 认定办结 only for an escalated loop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::{
    ActionError, Actor, DeadlineBasis, Decision, Engine, Role, Subject, Timing, decide,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use common::{apply, engine};

fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn actor(who: &str) -> Actor {
    let (role, unit) = match who {
        "center" => (Role::CenterStaff, Some("center")),
        "unit_a" => (Role::UnitStaff, Some("unit-a")),
        // A supervisor above unit-a, one of unit-a itself, and one of a unit beside it.
        "town_supervisor" => (Role::Supervisor, Some("town")),
        "own_supervisor" => (Role::Supervisor, Some("unit-a")),
        "side_supervisor" => (Role::Supervisor, Some("unit-b")),
        other => panic!("no actor {other}"),
    };
    Actor {
        name: who.into(),
        role,
        unit: unit.map(Into::into),
    }
}

/// A case of unit-a (under town) in `state`, transferred at `transferred`, its clock started then.
fn case(engine: &Engine, state: &str, transferred: DateTime<Utc>) -> Subject {
    let def = engine.workflow("negative-rating").unwrap();
    let basis = def
        .state(state)
        .and_then(|s| s.time_limit_days)
        .map(|days| DeadlineBasis {
            start: transferred,
            working_days: days,
        });
    Subject {
        responsible_units: vec!["unit-a".into()],
        responsible_ancestors: vec!["town".into()],
        transferred_at: Some(transferred),
        timing: Timing {
            basis,
            deadline: basis.map(|b| engine.calendar().deadline(b)),
            paused: None,
        },
        ..common::with_evidence(Subject::new(state))
    }
}

fn take(
    engine: &Engine,
    s: &Subject,
    who: &str,
    action: &str,
    fields: Value,
    at: DateTime<Utc>,
) -> Result<Decision, ActionError> {
    let def = engine.workflow("negative-rating").unwrap();
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap();
    decide(def, engine.calendar(), s, &actor(who), action, &fields, at)
}

/// The decision's state, or the error's code (with the guard it names).
fn outcome(r: Result<Decision, ActionError>) -> String {
    match r {
        Ok(d) => d.to,
        Err(ActionError::GuardFailed { guard, .. }) => format!("guard_failed:{guard}"),
        Err(e) => match e.field() {
            Some(f) => format!("{}:{f}", e.code()),
            None => e.code().to_owned(),
        },
    }
}

/// Fri 2021-04-30 10:00, the last working day before 劳动节 (5/1–5/5); 5/8 (Sat) is a make-up
/// working day.
fn before_may_day() -> DateTime<Utc> {
    beijing(2021, 4, 30, 10, 0)
}

#[test]
fn the_extension_cap_holds_over_the_cases_life_for_grants_and_requests() {
    let engine = engine();
    let t = before_may_day();
    let at = beijing(2021, 5, 6, 9, 0);
    let extend = |days: u32| json!({"days": days, "reason": "需协调"});
    // (working days granted before, who, action, days, expected): the cap is 15 with the 5 of the
    // state, so 10 may be granted over the life.
    let table: [(u32, &str, &str, u32, &str); 10] = [
        (0, "town_supervisor", "extend", 10, "rectifying"),
        (0, "town_supervisor", "extend", 11, "invalid_field:days"),
        (5, "town_supervisor", "extend", 5, "rectifying"),
        (5, "town_supervisor", "extend", 6, "extension_limit"),
        (10, "town_supervisor", "extend", 1, "extension_limit"),
        (0, "unit_a", "request_extension", 10, "rectifying"),
        (4, "unit_a", "request_extension", 6, "rectifying"),
        (4, "unit_a", "request_extension", 7, "extension_limit"),
        (10, "unit_a", "request_extension", 1, "extension_limit"),
        (0, "center", "request_extension", 1, "role_not_allowed"),
    ];
    for (used, who, action, days, expected) in table {
        let s = Subject {
            extension_days_used: used,
            ..case(&engine, "rectifying", t)
        };
        let got = outcome(take(&engine, &s, who, action, extend(days), at));
        assert_eq!(got, expected, "{used} used, {who} {action} {days}");
    }
}

#[test]
fn an_appeal_does_not_reset_the_extension_cap() {
    let engine = engine();
    let t = before_may_day();
    let mut s = case(&engine, "rectifying", t);
    let d = take(
        &engine,
        &s,
        "town_supervisor",
        "extend",
        json!({"days": 10, "reason": "协调"}),
        beijing(2021, 5, 6, 9, 0),
    )
    .unwrap();
    assert_eq!(d.extension_days_used, 10);
    s = apply(&s, &d);
    let d = take(
        &engine,
        &s,
        "unit_a",
        "appeal",
        json!({"category": "unrelated", "reason": "非本单位事项", "evidence": ["e-1"]}),
        beijing(2021, 5, 6, 10, 0),
    )
    .unwrap();
    assert_eq!(d.appeals_used, 1);
    s = apply(&s, &d);
    let d = take(
        &engine,
        &s,
        "town_supervisor",
        "reject_appeal",
        json!({"reason": "属本单位职责"}),
        beijing(2021, 5, 7, 10, 0),
    )
    .unwrap();
    s = apply(&s, &d);
    assert_eq!((s.state.as_str(), s.extension_days), ("rectifying", 0));
    let again = take(
        &engine,
        &s,
        "town_supervisor",
        "extend",
        json!({"days": 1, "reason": "再协调"}),
        beijing(2021, 5, 7, 11, 0),
    );
    assert_eq!(outcome(again), "extension_limit");
    // Nor does a second appeal come with the reset.
    let second = take(
        &engine,
        &s,
        "unit_a",
        "appeal",
        json!({"category": "mistaken", "reason": "误评", "evidence": ["e-1"]}),
        beijing(2021, 5, 7, 12, 0),
    );
    assert_eq!(outcome(second), "appeal_limit");
    let def = engine.workflow("negative-rating").unwrap();
    let offered: Vec<&str> = bihuan_core::available_actions(
        def,
        engine.calendar(),
        &s,
        &actor("unit_a"),
        beijing(2021, 5, 7, 12, 0),
    )
    .iter()
    .map(|a| a.id.as_str())
    .collect();
    assert_eq!(offered, ["return", "rectify"]);
}

#[test]
fn a_request_for_more_time_waits_for_one_answer() {
    let engine = engine();
    let t = before_may_day();
    let at = |h| beijing(2021, 5, 6, h, 0);
    let s = case(&engine, "rectifying", t);
    assert_eq!(
        outcome(take(
            &engine,
            &s,
            "town_supervisor",
            "deny_extension",
            json!({"reason": "无"}),
            at(9)
        )),
        "guard_failed:extension_requested"
    );
    let d = take(
        &engine,
        &s,
        "unit_a",
        "request_extension",
        json!({"days": 3, "reason": "需上级部门配合"}),
        at(9),
    )
    .unwrap();
    assert_eq!(d.extension_requested, Some(3));
    assert_eq!(d.timing, s.timing, "a request alone moves no deadline");
    let asked = apply(&s, &d);
    assert_eq!(
        outcome(take(
            &engine,
            &asked,
            "unit_a",
            "request_extension",
            json!({"days": 2, "reason": "再申请"}),
            at(10)
        )),
        "guard_failed:no_extension_requested"
    );
    // Refused: the request is answered, nothing granted.
    let denied = take(
        &engine,
        &asked,
        "town_supervisor",
        "deny_extension",
        json!({"reason": "可按期完成"}),
        at(11),
    )
    .unwrap();
    assert_eq!(
        (denied.extension_requested, denied.extension_days_used),
        (None, 0)
    );
    // Granted (perhaps fewer days than asked): answered and counted.
    let granted = take(
        &engine,
        &asked,
        "town_supervisor",
        "extend",
        json!({"days": 2, "reason": "同意延期两个工作日"}),
        at(11),
    )
    .unwrap();
    assert_eq!(
        (granted.extension_requested, granted.extension_days_used),
        (None, 2)
    );
    // Leaving the state lets the request lapse.
    let rectified = take(
        &engine,
        &asked,
        "unit_a",
        "rectify",
        json!({"finding": "true", "measures": "已整改", "outcome": "rectified", "evidence": ["e-1"]}),
        at(12),
    )
    .unwrap();
    assert_eq!(rectified.extension_requested, None);
}

#[test]
fn an_appeal_comes_within_its_window_after_the_transfer_across_a_holiday_and_a_make_up_day() {
    let engine = engine();
    let appeal = json!({"category": "malicious", "reason": "恶意差评", "evidence": ["e-1"]});
    // (transferred, appealed, appeals used before, expected): three working days after the
    // transfer, the transfer day not counted, ending at 24:00.
    let table = [
        // Fri 4/30 → 5/6, 5/7 and the make-up Sat 5/8: open until Sat 24:00, across 劳动节.
        (before_may_day(), beijing(2021, 5, 3, 10, 0), 0, "appealing"),
        (
            before_may_day(),
            beijing(2021, 5, 8, 23, 59),
            0,
            "appealing",
        ),
        (
            before_may_day(),
            beijing(2021, 5, 9, 0, 0),
            0,
            "appeal_window_closed",
        ),
        // Thu 4/22 → Fri 4/23, the make-up Sun 4/25, Mon 4/26.
        (
            beijing(2021, 4, 22, 15, 0),
            beijing(2021, 4, 26, 23, 59),
            0,
            "appealing",
        ),
        (
            beijing(2021, 4, 22, 15, 0),
            beijing(2021, 4, 27, 0, 0),
            0,
            "appeal_window_closed",
        ),
        // Within the window, but the one appeal was used.
        (
            before_may_day(),
            beijing(2021, 5, 6, 10, 0),
            1,
            "appeal_limit",
        ),
    ];
    for (transferred, at, used, expected) in table {
        let s = Subject {
            appeals_used: used,
            ..case(&engine, "rectifying", transferred)
        };
        let got = outcome(take(&engine, &s, "unit_a", "appeal", appeal.clone(), at));
        assert_eq!(got, expected, "transferred {transferred}, appealed {at}");
    }
    let closed = take(
        &engine,
        &case(&engine, "rectifying", before_may_day()),
        "unit_a",
        "appeal",
        appeal,
        beijing(2021, 5, 9, 0, 0),
    )
    .unwrap_err();
    assert!(closed.to_string().contains("2021-05-08"), "{closed}");
}

#[test]
fn an_appeal_is_decided_only_from_above_the_responsible_unit() {
    let engine = engine();
    let s = case(&engine, "appealing", before_may_day());
    let at = beijing(2021, 5, 6, 10, 0);
    let reason = json!({"reason": "经核实"});
    let table = [
        ("town_supervisor", "uphold_appeal", "invalid"),
        ("town_supervisor", "reject_appeal", "rectifying"),
        ("own_supervisor", "uphold_appeal", "unit_out_of_scope"),
        ("own_supervisor", "reject_appeal", "unit_out_of_scope"),
        ("side_supervisor", "uphold_appeal", "unit_out_of_scope"),
    ];
    for (who, action, expected) in table {
        let got = outcome(take(&engine, &s, who, action, reason.clone(), at));
        assert_eq!(got, expected, "{who} {action}");
    }
}

#[test]
fn only_a_loop_escalated_by_repeated_unsatisfied_reviews_is_concluded_by_a_supervisor_with_a_reason()
 {
    let engine = engine();
    let at = beijing(2021, 5, 6, 10, 0);
    let reason = json!({"reason": "已多次整改并答复，群众诉求超出政策规定"});
    // (state, reopen count, escalated, who, fields, expected): the reopen limit is 1, so a second
    // 不满意 review escalates the loop; a case escalated by 督办 for a passed deadline still owes its
    // rectification and is never concluded.
    let table = [
        (
            "rectifying",
            2,
            true,
            "town_supervisor",
            reason.clone(),
            "closed",
        ),
        (
            "pending_feedback",
            2,
            true,
            "town_supervisor",
            reason.clone(),
            "closed",
        ),
        (
            "pending_review",
            2,
            true,
            "town_supervisor",
            reason.clone(),
            "closed",
        ),
        (
            "pending_review",
            1,
            false,
            "town_supervisor",
            reason.clone(),
            "guard_failed:reopen_limit_exceeded",
        ),
        (
            "rectifying",
            0,
            true,
            "town_supervisor",
            reason.clone(),
            "guard_failed:reopen_limit_exceeded",
        ),
        (
            "pending_review",
            2,
            true,
            "town_supervisor",
            json!({}),
            "missing_field:reason",
        ),
        (
            "pending_review",
            2,
            true,
            "unit_a",
            reason.clone(),
            "role_not_allowed",
        ),
        (
            "accepted",
            2,
            true,
            "town_supervisor",
            reason.clone(),
            "action_not_allowed_in_state",
        ),
    ];
    for (state, reopen_count, escalated, who, fields, expected) in table {
        let s = Subject {
            reopen_count,
            escalated,
            ..case(&engine, state, before_may_day())
        };
        let got = outcome(take(&engine, &s, who, "conclude", fields, at));
        assert_eq!(
            got, expected,
            "{state} reopened {reopen_count} escalated={escalated} {who}"
        );
    }
}

#[test]
fn a_workflow_file_that_still_names_the_guard_escalated_gets_the_reopen_limit() {
    let text = include_str!("../../../workflows/negative-rating.toml").replacen(
        "guards = [{ kind = \"reopen_limit_exceeded\" }]",
        "guards = [{ kind = \"escalated\" }]",
        1,
    );
    assert!(text.contains("kind = \"escalated\""));
    let def = bihuan_core::workflow::load("negative-rating.toml", &text).unwrap();
    assert_eq!(
        def.action("conclude").unwrap().guards,
        [bihuan_core::workflow::Guard::ReopenLimitExceeded]
    );
}
