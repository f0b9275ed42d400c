//! Loading workflow files: the shipped ones are clean, broken ones name every problem with its line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_core::workflow::{FieldKind, load};

const NEGATIVE: &str = include_str!("../../../workflows/negative-rating.toml");
const WORK_PLAN: &str = include_str!("../../../workflows/work-plan-task.toml");

#[test]
fn the_shipped_negative_rating_flow_matches_the_domain_tables() {
    let def = load("negative-rating.toml", NEGATIVE).unwrap();
    let states: Vec<(&str, &str, Option<u32>, bool)> = def
        .states
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.label.as_str(),
                s.time_limit_days,
                s.terminal,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("received", "待受理", Some(1), false),
            ("accepted", "已受理待转办", Some(1), false),
            ("rectifying", "核实整改中", Some(5), false),
            ("appealing", "申诉复核中", Some(3), false),
            ("pending_feedback", "待反馈回访", Some(1), false),
            ("pending_review", "待用户评议", Some(5), false),
            ("closed", "已办结", None, true),
            ("invalid", "无效差评", None, true),
        ]
    );
    assert_eq!(
        def.state("rectifying").unwrap().max_time_limit_days,
        Some(15)
    );
    assert_eq!(
        def.state("appealing").unwrap().pauses.as_deref(),
        Some("rectifying")
    );
    assert_eq!(
        def.state("pending_review").unwrap().on_timeout.as_deref(),
        Some("review_timeout")
    );
    assert_eq!(def.settings.reopen_limit, 1);
    assert_eq!(def.settings.appeal_limit, 1);
    assert_eq!(def.settings.appeal_window_working_days, 3);
    let decided_above: Vec<&str> = def
        .actions
        .iter()
        .filter(|a| a.decided_above)
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(decided_above, ["uphold_appeal", "reject_appeal"]);
    let actions: Vec<(&str, &str, Vec<&str>, &str)> = def
        .actions
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                a.label.as_str(),
                a.from.iter().map(String::as_str).collect(),
                a.to.as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("accept", "受理", vec!["received"], "accepted"),
            ("transfer", "转办", vec!["accepted"], "rectifying"),
            ("return", "退回", vec!["rectifying"], "accepted"),
            ("appeal", "申诉", vec!["rectifying"], "appealing"),
            ("uphold_appeal", "申诉成立", vec!["appealing"], "invalid"),
            ("reject_appeal", "申诉驳回", vec!["appealing"], "rectifying"),
            (
                "request_extension",
                "申请延期",
                vec!["rectifying"],
                "rectifying"
            ),
            (
                "deny_extension",
                "不予延期",
                vec!["rectifying"],
                "rectifying"
            ),
            ("extend", "延期", vec!["rectifying"], "rectifying"),
            (
                "rectify",
                "提交整改",
                vec!["rectifying"],
                "pending_feedback"
            ),
            (
                "complete_scheduled",
                "限期整改完成",
                vec!["rectifying", "pending_feedback", "pending_review", "closed"],
                ""
            ),
            (
                "contact_attempt",
                "联系未果",
                vec!["pending_feedback"],
                "pending_feedback"
            ),
            (
                "feedback",
                "反馈回访",
                vec!["pending_feedback"],
                "pending_review"
            ),
            (
                "close_unreachable",
                "无法联系办结",
                vec!["pending_feedback"],
                "closed"
            ),
            (
                "review_satisfied",
                "评议满意",
                vec!["pending_review"],
                "closed"
            ),
            (
                "review_unsatisfied",
                "评议不满意",
                vec!["pending_review"],
                "rectifying"
            ),
            (
                "review_timeout",
                "评议超时",
                vec!["pending_review"],
                "closed"
            ),
            (
                "follow_up",
                "追评",
                vec![
                    "received",
                    "accepted",
                    "rectifying",
                    "appealing",
                    "pending_feedback",
                    "pending_review",
                    "closed",
                    "invalid"
                ],
                ""
            ),
            (
                "conclude",
                "认定办结",
                vec!["rectifying", "pending_feedback", "pending_review"],
                "closed"
            ),
            ("audit_fail", "审核不通过", vec!["closed"], "rectifying"),
        ]
    );
    // The field names of docs/API.md.
    let field_names = |id: &str| -> Vec<String> {
        def.action(id)
            .unwrap()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect()
    };
    assert_eq!(field_names("transfer"), ["unit"]);
    assert_eq!(field_names("appeal"), ["category", "reason", "evidence"]);
    assert_eq!(field_names("extend"), ["days", "reason"]);
    assert_eq!(
        field_names("rectify"),
        [
            "finding", "measures", "outcome", "due", "category", "evidence"
        ]
    );
    // 整改佐证材料: required for an appeal and for 限期整改完成, and for a rectification whose
    // outcome is 已整改 (never for an explanation).
    let evidence = |id: &str| def.action(id).unwrap().field("evidence").unwrap().clone();
    for id in ["appeal", "complete_scheduled"] {
        let e = evidence(id);
        assert!(
            e.required && matches!(e.kind, FieldKind::Evidence { max_files: 20 }),
            "{id}"
        );
    }
    let e = evidence("rectify");
    assert!(!e.required);
    assert_eq!(
        e.required_when
            .as_ref()
            .map(|w| (w.field.as_str(), w.equals.as_str())),
        Some(("outcome", "rectified"))
    );
    // The 差评原因 codes, optional on a rectification.
    let category = def.action("rectify").unwrap().field("category").unwrap();
    assert!(!category.required);
    match &category.kind {
        bihuan_core::workflow::FieldKind::Enum { options } => assert_eq!(
            options.iter().map(|o| o.value.as_str()).collect::<Vec<_>>(),
            [
                "attitude",
                "efficiency",
                "materials",
                "policy",
                "system",
                "facilities",
                "other"
            ]
        ),
        other => panic!("category is {other:?}"),
    }
    assert_eq!(field_names("request_extension"), ["days", "reason"]);
    assert_eq!(field_names("deny_extension"), ["reason"]);
    assert_eq!(field_names("conclude"), ["reason"]);
    assert_eq!(field_names("contact_attempt"), ["method", "at"]);
    assert_eq!(
        field_names("feedback"),
        ["method", "summary", "public_reply", "at"]
    );
    // 公开答复: written for publication, required when the rater was anonymous.
    let reply = def
        .action("feedback")
        .unwrap()
        .field("public_reply")
        .unwrap();
    assert!(matches!(
        reply.kind,
        FieldKind::Text {
            public: true,
            max_chars: 500
        }
    ));
    assert!(!reply.required && reply.required_if_anonymous);
    // `comment` is optional: the rater's words when they answer through their one-time link.
    assert_eq!(field_names("review_satisfied"), ["level", "comment"]);
    for id in [
        "return",
        "uphold_appeal",
        "reject_appeal",
        "review_unsatisfied",
        "audit_fail",
    ] {
        assert_eq!(field_names(id), ["reason"], "{id}");
    }
    let options = |action: &str, field: &str| -> Vec<String> {
        match &def.action(action).unwrap().field(field).unwrap().kind {
            FieldKind::Enum { options } => options.iter().map(|o| o.value.clone()).collect(),
            other => panic!("{action}.{field} is {other:?}"),
        }
    };
    assert_eq!(
        options("appeal", "category"),
        ["malicious", "mistaken", "unrelated"]
    );
    assert_eq!(
        options("rectify", "finding"),
        ["true", "partly_true", "untrue"]
    );
    assert_eq!(
        options("rectify", "outcome"),
        ["rectified", "explained", "scheduled"]
    );
    // The due date goes with 建立台账、限期整改 only.
    let due = def.action("rectify").unwrap().field("due").unwrap();
    assert_eq!(due.kind, FieldKind::Date);
    assert_eq!(
        due.when
            .as_ref()
            .map(|w| (w.field.as_str(), w.equals.as_str())),
        Some(("outcome", "scheduled"))
    );
    assert_eq!(
        options("feedback", "method"),
        ["phone", "sms", "visit", "online"]
    );
    assert_eq!(
        options("review_satisfied", "level"),
        ["satisfied", "basically_satisfied"]
    );
}

#[test]
fn the_shipped_work_plan_flow_loads() {
    let def = load("work-plan-task.toml", WORK_PLAN).unwrap();
    assert_eq!(def.initial, "not_started");
    assert!(def.state("done").unwrap().terminal);
}

/// A small valid file to break in one place at a time.
const BASE: &str = r#"
[workflow]
id = "t"
version = 1
label = "测试"
label_en = "Test"
initial = "a"

[[states]]
id = "a"
label = "甲"
label_en = "A"
time_limit_days = 2

[[states]]
id = "b"
label = "乙"
label_en = "B"
terminal = true

[[actions]]
id = "go"
label = "走"
label_en = "Go"
from = "a"
to = "b"
roles = ["center_staff"]
[[actions.fields]]
name = "reason"
label = "理由"
type = "text"
"#;

/// Each row: a replacement in BASE (or an addition), and the problem expected, as `line: message part`.
fn check(from: &str, to: &str, expected: &[(Option<usize>, &str)]) {
    assert!(BASE.contains(from), "{from}");
    let text = BASE.replacen(from, to, 1);
    let problems = load("t.toml", &text).unwrap_err();
    for (line, part) in expected {
        assert!(
            problems.iter().any(|p| p.message.contains(part)
                && (line.is_none() || p.line == *line)
                && p.file == "t.toml"),
            "expected {line:?}: {part} in {problems:#?}"
        );
    }
}

#[test]
fn broken_files_name_every_problem_with_its_line() {
    assert!(load("t.toml", BASE).is_ok());
    check(
        "to = \"b\"",
        "to = \"c\"",
        &[(Some(26), "unknown state `c` in `to`")],
    );
    check(
        "from = \"a\"",
        "from = [\"a\", \"z\"]",
        &[(Some(25), "unknown state `z` in `from`")],
    );
    check(
        "roles = [\"center_staff\"]",
        "roles = [\"clerk\"]",
        &[(Some(27), "unknown role `clerk`")],
    );
    check(
        "id = \"b\"",
        "id = \"a\"",
        &[(Some(16), "duplicate state id `a`")],
    );
    check(
        "type = \"text\"",
        "",
        &[(Some(29), "field `reason` has no type")],
    );
    check(
        "type = \"text\"",
        "type = \"blob\"",
        &[(Some(31), "unknown type `blob`")],
    );
    check(
        "initial = \"a\"",
        "initial = \"q\"",
        &[(Some(7), "unknown initial state `q`")],
    );
    check(
        "time_limit_days = 2",
        "time_limit_days = 2\non_timeout = \"vanish\"",
        &[(Some(14), "unknown action `vanish`")],
    );
    check("terminal = true", "", &[(None, "no state is terminal")]);
    // Several problems at once are all named.
    let text = BASE.replacen("to = \"b\"", "to = \"c\"", 1).replacen(
        "roles = [\"center_staff\"]",
        "roles = [\"x\"]",
        1,
    );
    assert_eq!(load("t.toml", &text).unwrap_err().len(), 2);
    // Syntax errors carry their line too.
    let problems = load("t.toml", &BASE.replacen("label = \"乙\"", "label = ", 1)).unwrap_err();
    assert_eq!(problems[0].line, Some(17), "{problems:?}");
}

#[test]
fn unreachable_states_and_dead_ends_are_named() {
    let extra = r#"
[[states]]
id = "orphan"
label = "孤"
label_en = "Orphan"

[[states]]
id = "trap"
label = "陷"
label_en = "Trap"

[[actions]]
id = "fall"
label = "落"
label_en = "Fall"
from = "a"
to = "trap"
roles = ["supervisor"]
"#;
    let text = format!("{BASE}{extra}");
    let problems = load("t.toml", &text).unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("state `orphan` cannot be reached from `a`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("no terminal state can be reached from state `trap`")),
        "{messages:?}"
    );
    assert!(messages.iter().all(|m| m.starts_with("t.toml:")));
}

#[test]
fn guards_effects_and_marks_are_checked() {
    check(
        "type = \"text\"",
        "type = \"text\"\n[[actions.guards]]\nkind = \"min_actions_in_state\"\naction = \"call\"\ncount = 3",
        &[(None, "guard names unknown action `call`")],
    );
    check(
        "roles = [\"center_staff\"]",
        "roles = [\"center_staff\"]\nguards = [{ kind = \"moon_phase\" }]",
        &[(None, "unknown guard kind `moon_phase`")],
    );
    check(
        "roles = [\"center_staff\"]",
        "roles = [\"center_staff\"]\neffects = [{ kind = \"extend_deadline\", field = \"reason\" }]",
        &[(None, "effect extend_deadline needs a field of type integer")],
    );
    check(
        "roles = [\"center_staff\"]",
        "roles = [\"center_staff\"]\nmarks = [\"great\"]",
        &[(None, "unknown mark `great`")],
    );
    check(
        "roles = [\"center_staff\"]",
        "roles = [\"center_staff\"]\nnotify = [{ kind = \"x\", to = \"mayor\" }]",
        &[(None, "unknown audience `mayor`")],
    );
    check(
        "label_en = \"Go\"",
        "label_en = \"Go\"\ncolour = \"red\"",
        &[(Some(25), "unknown field `colour`")],
    );
}
