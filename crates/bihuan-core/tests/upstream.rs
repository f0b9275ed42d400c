//! 数据回传: the shipped mapping pushes each step of the loop as docs/API.md says, a province's file
//! renames fields and maps codes without code, and a mapping file's mistakes are named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bihuan_core::upstream::{PushFacts, UpStep, UpstreamMap};
use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};

use common::engine;

const SHIPPED: &str = include_str!("../../../workflows/upstream/platform.toml");

fn map(text: &str) -> UpstreamMap {
    let engine = engine();
    UpstreamMap::parse(
        "platform.toml",
        text,
        engine.workflow("negative-rating").unwrap(),
    )
    .unwrap()
}

fn push(
    map: &UpstreamMap,
    action: &str,
    unit: Option<&str>,
    fields: Value,
) -> Option<(UpStep, Value)> {
    let fields: Map<String, Value> = fields.as_object().cloned().unwrap();
    map.push(&PushFacts {
        project_no: "500114-2021-0001",
        source: "yukuaiban",
        source_id: "YKB-1",
        case_id: "0190c5e2-0000-7000-8000-000000000001",
        action,
        at: Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap(),
        unit,
        fields: &fields,
    })
}

/// The body of docs/API.md with `step` and the fields that apply.
fn body(step: &str, unit: Option<&str>, more: Value) -> Value {
    let mut b = json!({
        "projectNo": "500114-2021-0001", "source": "yukuaiban", "sourceId": "YKB-1",
        "caseId": "0190c5e2-0000-7000-8000-000000000001", "step": step, "at": "2021-05-06T02:00:00Z",
        "unit": unit, "finding": null, "measures": null, "outcome": null, "reply": null,
        "reviewLevel": null,
    });
    for (k, v) in more.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[test]
fn each_step_of_the_loop_is_pushed_as_the_api_says() {
    let m = map(SHIPPED);
    let social = Some("shaba-social");
    let table: Vec<(&str, Option<&str>, Value, Option<Value>)> = vec![
        (
            "accept",
            None,
            json!({}),
            Some(body("accepted", None, json!({}))),
        ),
        (
            "transfer",
            social,
            json!({"unit": "shaba-social"}),
            Some(body("transferred", social, json!({}))),
        ),
        (
            "rectify",
            social,
            json!({"finding": "partly_true", "measures": "一次性告知", "outcome": "rectified", "evidence": []}),
            Some(body(
                "rectified",
                social,
                json!({"finding": "partly_true", "measures": "一次性告知", "outcome": "rectified"}),
            )),
        ),
        (
            "feedback",
            social,
            json!({"method": "phone", "summary": "已电话回访"}),
            Some(body("replied", social, json!({"reply": "已电话回访"}))),
        ),
        (
            "feedback",
            social,
            json!({"method": "online", "summary": "内部记录", "public_reply": "已简化材料"}),
            Some(body("replied", social, json!({"reply": "已简化材料"}))),
        ),
        (
            "review_satisfied",
            social,
            json!({"level": "basically_satisfied"}),
            Some(body(
                "reviewed",
                social,
                json!({"reviewLevel": "basically_satisfied"}),
            )),
        ),
        (
            "review_unsatisfied",
            social,
            json!({"reason": "仍不满意"}),
            Some(body(
                "reviewed",
                social,
                json!({"reviewLevel": "dissatisfied"}),
            )),
        ),
        (
            "review_timeout",
            social,
            json!({}),
            Some(body("closed", social, json!({}))),
        ),
        (
            "conclude",
            social,
            json!({"reason": "认定办结"}),
            Some(body("closed", social, json!({}))),
        ),
        (
            "uphold_appeal",
            social,
            json!({"reason": "恶意差评"}),
            Some(body("invalid", social, json!({}))),
        ),
        // Not a step the platform hears of.
        ("contact_attempt", social, json!({"method": "phone"}), None),
        ("extend", social, json!({"days": 2, "reason": "协调"}), None),
    ];
    for (action, unit, fields, expected) in table {
        let got = push(&m, action, unit, fields).map(|(_, b)| b);
        assert_eq!(got, expected, "{action}");
    }
}

#[test]
fn a_province_renames_fields_and_maps_codes_in_its_file() {
    let text = SHIPPED
        .replace("project_no = \"projectNo\"", "project_no = \"bjbh\"")
        .replace(
            "\n[codes]\n",
            "\n[codes]\nfinding = { true = \"1\", partly_true = \"2\", untrue = \"3\" }\n",
        );
    let m = map(&text);
    let (step, b) = push(
        &m,
        "rectify",
        Some("u"),
        json!({"finding": "partly_true", "measures": "m", "outcome": "explained"}),
    )
    .unwrap();
    assert_eq!(step, UpStep::Rectified);
    assert_eq!(
        (b["bjbh"].clone(), b["finding"].clone()),
        (json!("500114-2021-0001"), json!("2"))
    );
    assert!(b.get("projectNo").is_none());
}

#[test]
fn a_mapping_files_mistakes_are_each_named() {
    let table = [
        (
            "accept = \"accepted\"",
            "accept = \"received\"",
            "unknown step `received`",
        ),
        (
            "accept = \"accepted\"",
            "approve = \"accepted\"",
            "`approve` is no action",
        ),
        ("unit = \"unit\"\n", "", "the field `unit` has no name"),
        (
            "reply = \"reply\"",
            "reply = \"reply\"\ncolour = \"c\"",
            "unknown field `colour`",
        ),
        (
            "review_level = \"level\"",
            "review_level = \"level\"\nunit = \"x\"",
            "comes from the case",
        ),
    ];
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    for (from, to, expected) in table {
        assert!(SHIPPED.contains(from), "{from}");
        let problems =
            UpstreamMap::parse("p.toml", &SHIPPED.replacen(from, to, 1), def).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
}
