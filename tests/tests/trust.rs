//! The findings of the security review (issue 16), each as a scenario that failed before its fix,
//! on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_store::testing::TestDb;
use bihuan_tests::api::{SHABA_REGION, TestApp, rating, spawn};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_store::on_both_databases!(
    a_region_code_never_reaches_the_cases_of_a_registered_unit,
    a_case_is_never_transferred_outside_the_center_s_reach,
    a_supervisor_above_a_co_unit_cannot_accept_or_return_the_item,
);

async fn app(db: &TestDb) -> TestApp {
    spawn(db, WebConfig::default()).await
}

/// A negative rating of `unit` sent with region code `region`; returns its case.
async fn case_of(app: &TestApp, source_id: &str, unit: &str, region: &str) -> String {
    let mut r = rating(source_id, "dissatisfied", "mobile");
    r["unit_code"] = json!(unit);
    r["region_code"] = json!(region);
    let (status, body) = app.push_rating(&r).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["case_id"].as_str().unwrap().to_owned()
}

async fn visible(app: &TestApp, user: &str, id: &str) -> StatusCode {
    app.call(user, Method::GET, &format!("/api/v1/cases/{id}"), None)
        .await
        .0
}

async fn listed(app: &TestApp, user: &str, path: &str) -> Vec<Value> {
    let (status, body) = app.call(user, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// Finding 5: 马旺镇's own unit sending 沙坝镇's region code stays 马旺镇's; only a unit nobody
/// registered is routed by its region, to the center that answers for it.
async fn a_region_code_never_reaches_the_cases_of_a_registered_unit(db: &TestDb) {
    let app = app(db).await;
    let foreign = case_of(&app, "R1", "mawang-social", SHABA_REGION).await;
    let unknown = case_of(&app, "R2", "500114-unregistered-hall", SHABA_REGION).await;
    for user in ["center", "sup", "viewer"] {
        assert_eq!(
            visible(&app, user, &foreign).await,
            StatusCode::NOT_FOUND,
            "{user}"
        );
        assert_eq!(
            visible(&app, user, &unknown).await,
            StatusCode::OK,
            "{user}"
        );
    }
    for user in ["o_center", "o_sup"] {
        assert_eq!(
            visible(&app, user, &foreign).await,
            StatusCode::OK,
            "{user}"
        );
        assert_eq!(
            visible(&app, user, &unknown).await,
            StatusCode::NOT_FOUND,
            "{user}"
        );
    }
    // Nor can the other town's center act on it.
    let (status, _) = app
        .call(
            "center",
            Method::POST,
            &format!("/api/v1/cases/{foreign}/actions"),
            Some(json!({"action": "accept", "version": 1, "fields": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Lists, ratings and figures follow the same rule.
    let cases: Vec<String> = listed(&app, "center", "/api/v1/cases")
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        cases.contains(&unknown) && !cases.contains(&foreign),
        "{cases:?}"
    );
    let ratings = listed(&app, "center", "/api/v1/ratings").await;
    assert!(
        ratings.iter().all(|r| r["unit_code"] != "mawang-social"),
        "{ratings:?}"
    );
    let ratings = listed(&app, "o_center", "/api/v1/ratings").await;
    assert!(
        ratings.iter().any(|r| r["unit_code"] == "mawang-social"),
        "{ratings:?}"
    );
    let (_, figures) = app
        .call(
            "center",
            Method::GET,
            "/api/v1/metrics?from=2021-05-01&to=2021-05-31",
            None,
        )
        .await;
    assert_eq!(figures["rows"][0]["ratings"], 1, "{figures}");
    let (_, figures) = app
        .call(
            "o_center",
            Method::GET,
            "/api/v1/metrics?from=2021-05-01&to=2021-05-31",
            None,
        )
        .await;
    assert_eq!(figures["rows"][0]["ratings"], 1, "{figures}");
}

/// Finding 10: a transfer names only a unit the center answers for.
async fn a_case_is_never_transferred_outside_the_center_s_reach(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("T1").await;
    app.step("center", &id, "accept", json!({})).await;
    let (status, body) = app
        .act("center", &id, "transfer", json!({"unit": "mawang-social"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "unit_out_of_scope", "{body}");
    assert_eq!(body["details"]["field"], "unit", "{body}");
    let case = app.case("admin", &id).await;
    assert_eq!(
        (case["state"].as_str(), case["version"].as_i64()),
        (Some("accepted"), Some(2))
    );
    assert_eq!(case["events"].as_array().unwrap().len(), 2);
    // Within the town it goes.
    let case = app
        .step("center", &id, "transfer", json!({"unit": "shaba-civil"}))
        .await;
    assert_eq!(case["unit"], "shaba-civil");
}

/// A plan item led by 马旺镇社会保障服务所 and co-handled by 沙坝镇民政办, submitted; returns its id
/// and version.
async fn submitted_item_led_by_the_other_town(app: &TestApp) -> (String, i64) {
    let plan = json!({"name": "跨镇计划", "year": 2021, "items": [
        {"key_task": "（一）甲", "title": "共同推进", "lead_units": ["mawang-social"],
         "co_units": ["shaba-civil"], "deadline": "2021-12-31"}]});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(plan))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["plan"]["items"][0]["id"].as_str().unwrap().to_owned();
    let mut version = body["plan"]["items"][0]["version"].as_i64().unwrap();
    for (action, fields) in [
        ("start", json!({})),
        ("submit", json!({"report": "已完成"})),
    ] {
        let (status, body) = app
            .call(
                "o_unit",
                Method::POST,
                &format!("/api/v1/tasks/{id}/actions"),
                Some(json!({"action": action, "version": version, "fields": fields})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        version = body["version"].as_i64().unwrap();
    }
    (id, version)
}

/// Finding 11: the supervisor of a co-unit sees the item but neither accepts nor returns it.
async fn a_supervisor_above_a_co_unit_cannot_accept_or_return_the_item(db: &TestDb) {
    let app = app(db).await;
    let (id, version) = submitted_item_led_by_the_other_town(&app).await;
    let (status, item) = app
        .call("sup", Method::GET, &format!("/api/v1/tasks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["actions"], json!([]), "{item}");
    for (action, fields) in [
        ("accept", json!({})),
        ("return", json!({"reason": "不合格"})),
    ] {
        let (status, body) = app
            .call(
                "sup",
                Method::POST,
                &format!("/api/v1/tasks/{id}/actions"),
                Some(json!({"action": action, "version": version, "fields": fields})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
        assert_eq!(body["error"], "lead_unit_out_of_scope", "{body}");
    }
    // The lead unit's own supervisor does.
    let (status, body) = app
        .call(
            "o_sup",
            Method::POST,
            &format!("/api/v1/tasks/{id}/actions"),
            Some(json!({"action": "accept", "version": version, "fields": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "done");
}
