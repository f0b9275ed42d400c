//! The JSON API over HTTP only, on SQLite and PostgreSQL: every path of the loop, the role × action ×
//! scope matrix, the error model, ratings, sessions and masking.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, rating, spawn};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    the_plain_loop_closes_and_passes_audit,
    an_upheld_appeal_makes_the_case_invalid,
    a_rejected_appeal_resumes_rectification,
    an_explained_case_reopened_by_an_unsatisfied_review_escalates_past_the_limit,
    an_unreachable_rater_closes_only_after_three_attempts,
    an_extension_moves_the_deadline_within_the_cap,
    a_failed_audit_reopens_a_closed_case,
    every_role_and_action_in_and_out_of_scope_gets_its_status,
    stale_versions_missing_fields_and_bad_requests_get_json_errors,
    ratings_are_idempotent_validated_and_need_a_channel_token,
    sessions_expire_and_can_be_revoked_and_failed_sign_ins_are_throttled,
    personal_data_is_masked_for_viewers,
    admins_create_units_users_and_tokens,
    random_bodies_never_cause_a_server_error,
    metrics_count_requests_cases_and_mail,
    the_openapi_document_lists_exactly_the_routes_served,
    the_case_list_filters_and_pages_within_scope,
    a_server_error_says_nothing_internal_and_carries_a_request_id,
    the_scheduler_closes_an_unanswered_review_once,
    admins_list_the_outbox_by_status,
    a_follow_up_rating_answers_the_review_and_shows_on_the_case,
    a_rectification_names_the_cause_of_the_rating_from_the_workflows_codes,
);

const RECTIFY: &str =
    r#"{"finding":"partly_true","measures":"补充一次性告知单","outcome":"rectified"}"#;

fn rectify() -> Value {
    serde_json::from_str(RECTIFY).unwrap()
}

async fn app(db: &TestDb) -> TestApp {
    spawn(db, WebConfig::default()).await
}

fn actions(case: &Value) -> Vec<String> {
    case["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn event_actions(case: &Value) -> Vec<String> {
    case["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_plain_loop_closes_and_passes_audit(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("P-1").await;
    let case = app.case("center", &id).await;
    assert_eq!(
        (case["state"].as_str(), case["version"].as_i64()),
        (Some("received"), Some(1))
    );
    assert_eq!(actions(&case), ["accept"]);
    assert!(case["deadline"].is_string());
    app.to_rectifying(&id).await;
    assert_eq!(
        actions(&app.case("unit", &id).await),
        ["return", "appeal", "request_extension", "rectify"]
    );
    app.step(
        "unit",
        &id,
        "rectify",
        app.cited(&id, "rectify", rectify()).await,
    )
    .await;
    let case = app
        .step(
            "unit",
            &id,
            "feedback",
            json!({"method": "phone", "summary": "已电话回访"}),
        )
        .await;
    assert_eq!(case["state"], "pending_review");
    let case = app
        .step(
            "center",
            &id,
            "review_satisfied",
            json!({"level": "satisfied"}),
        )
        .await;
    assert_eq!(case["state"], "closed");
    assert!(case["deadline"].is_null() && case["closed_at"].is_string());
    assert_eq!(
        event_actions(&case),
        [
            "open",
            "accept",
            "transfer",
            "rectify",
            "feedback",
            "review_satisfied"
        ]
    );
    let e = &case["events"][3];
    assert_eq!(
        (e["actor"].as_str(), e["from"].as_str(), e["to"].as_str()),
        (Some("unit"), Some("rectifying"), Some("pending_feedback"))
    );
    assert_eq!(e["fields"]["measures"], "补充一次性告知单");

    let (status, sample) = app
        .call("sup", Method::GET, "/api/v1/audit/sample?n=5", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sample["items"][0]["id"], id.as_str());
    let (status, audit) = app
        .call(
            "sup",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "pass"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{audit}");
    let case = app.case("sup", &id).await;
    assert_eq!(
        (
            case["state"].as_str(),
            case["audits"][0]["verdict"].as_str()
        ),
        (Some("closed"), Some("pass"))
    );
    let (_, sample) = app
        .call("sup", Method::GET, "/api/v1/audit/sample?n=5", None)
        .await;
    assert_eq!(
        sample["items"].as_array().unwrap().len(),
        0,
        "an audited case is not sampled again"
    );
    let (status, verify) = app
        .call("sup", Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (verify["ok"].as_bool(), verify["events_checked"].as_u64()),
        (Some(true), Some(6))
    );
}

async fn an_upheld_appeal_makes_the_case_invalid(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("A-1").await;
    app.to_rectifying(&id).await;
    let appeal = json!({"category": "malicious", "reason": "恶意差评"});
    let case = app
        .step(
            "unit",
            &id,
            "appeal",
            app.cited(&id, "appeal", appeal).await,
        )
        .await;
    assert_eq!(case["state"], "appealing");
    assert_eq!(
        actions(&app.case("sup", &id).await),
        ["uphold_appeal", "reject_appeal"]
    );
    let case = app
        .step(
            "sup",
            &id,
            "uphold_appeal",
            json!({"reason": "核实为恶意差评"}),
        )
        .await;
    assert_eq!(case["state"], "invalid");
    assert!(case["deadline"].is_null());
}

async fn a_rejected_appeal_resumes_rectification(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("A-2").await;
    app.to_rectifying(&id).await;
    let appeal = json!({"category": "mistaken", "reason": "误评"});
    app.step(
        "unit",
        &id,
        "appeal",
        app.cited(&id, "appeal", appeal).await,
    )
    .await;
    let case = app
        .step("sup", &id, "reject_appeal", json!({"reason": "证据不足"}))
        .await;
    assert_eq!(case["state"], "rectifying");
    assert!(case["deadline"].is_string());
    let case = app
        .step(
            "unit",
            &id,
            "rectify",
            app.cited(&id, "rectify", rectify()).await,
        )
        .await;
    assert_eq!(case["state"], "pending_feedback");
}

async fn an_explained_case_reopened_by_an_unsatisfied_review_escalates_past_the_limit(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("R-1").await;
    app.to_rectifying(&id).await;
    for round in 1..=2 {
        app.step(
            "unit",
            &id,
            "rectify",
            json!({"finding": "untrue", "measures": "向群众解释政策", "outcome": "explained"}),
        )
        .await;
        app.step(
            "center",
            &id,
            "feedback",
            json!({"method": "visit", "summary": "上门解释"}),
        )
        .await;
        let case = app
            .step(
                "center",
                &id,
                "review_unsatisfied",
                json!({"reason": "仍不满意"}),
            )
            .await;
        assert_eq!(case["state"], "rectifying");
        assert_eq!(case["reopen_count"].as_i64(), Some(round));
        assert_eq!(
            case["escalated"].as_bool(),
            Some(round > 1),
            "escalated only past the reopen limit of 1"
        );
    }
}

async fn an_unreachable_rater_closes_only_after_three_attempts(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("U-1").await;
    app.to_rectifying(&id).await;
    app.step(
        "unit",
        &id,
        "rectify",
        app.cited(&id, "rectify", rectify()).await,
    )
    .await;
    for attempt in 1..=3 {
        let (status, body) = app.act("center", &id, "close_unreachable", json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            (body["error"].as_str(), body["details"]["guard"].as_str()),
            (Some("guard_failed"), Some("min_actions_in_state"))
        );
        let case = app
            .step("unit", &id, "contact_attempt", json!({"method": "phone"}))
            .await;
        assert_eq!(case["state"], "pending_feedback", "attempt {attempt}");
    }
    assert!(actions(&app.case("center", &id).await).contains(&"close_unreachable".to_owned()));
    let case = app
        .step("center", &id, "close_unreachable", json!({}))
        .await;
    assert_eq!(case["state"], "closed");
}

async fn an_extension_moves_the_deadline_within_the_cap(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("X-1").await;
    app.to_rectifying(&id).await;
    let before = app.case("sup", &id).await["deadline"]
        .as_str()
        .unwrap()
        .to_owned();
    let case = app
        .step(
            "sup",
            &id,
            "extend",
            json!({"days": 5, "reason": "需协调多部门"}),
        )
        .await;
    assert!(case["deadline"].as_str().unwrap() > before.as_str());
    let (status, body) = app
        .act("sup", &id, "extend", json!({"days": 6, "reason": "再延"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "5 + 5 + 6 > 15: {body}"
    );
    assert_eq!(body["error"], "extension_limit");
    assert_eq!(
        (
            &body["details"]["cap"],
            &body["details"]["used"],
            &body["details"]["asked"]
        ),
        (&json!(15), &json!(5), &json!(6))
    );
    let case = app
        .step(
            "sup",
            &id,
            "extend",
            json!({"days": 5, "reason": "最后一次"}),
        )
        .await;
    assert_eq!(case["extension_days_used"], 10);
}

async fn a_failed_audit_reopens_a_closed_case(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("F-1").await;
    let (status, body) = app
        .call(
            "sup",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "fail", "reason": "x"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only closed cases are audited: {body}"
    );
    app.to_rectifying(&id).await;
    app.step(
        "unit",
        &id,
        "rectify",
        app.cited(&id, "rectify", rectify()).await,
    )
    .await;
    app.step(
        "unit",
        &id,
        "feedback",
        json!({"method": "phone", "summary": "已回访"}),
    )
    .await;
    app.step(
        "center",
        &id,
        "review_satisfied",
        json!({"level": "basically_satisfied"}),
    )
    .await;
    let (status, body) = app
        .call(
            "sup",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "fail"})),
        )
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason"))
    );
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "pass"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(
            "o_sup",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "pass"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call(
            "sup",
            Method::POST,
            "/api/v1/audits",
            Some(json!({"case_id": id, "verdict": "fail", "reason": "回访记录不实"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let case = app.case("sup", &id).await;
    assert_eq!(case["state"], "rectifying");
    assert_eq!(
        event_actions(&case).last().map(String::as_str),
        Some("audit_fail")
    );
    assert_eq!(
        (
            case["audits"][0]["verdict"].as_str(),
            case["audits"][0]["reason"].as_str()
        ),
        (Some("fail"), Some("回访记录不实"))
    );
}

/// The path from a new case to the state an action starts from, and fields that satisfy it.
fn preparation(action: &str) -> (&'static [(&'static str, &'static str)], Value) {
    const TO_RECTIFYING: &[(&str, &str)] = &[("center", "accept"), ("center", "transfer")];
    const TO_APPEALING: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "appeal"),
    ];
    const TO_FEEDBACK: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify"),
    ];
    const TO_UNREACHABLE: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify"),
        ("center", "contact_attempt"),
        ("center", "contact_attempt"),
        ("center", "contact_attempt"),
    ];
    const TO_REVIEW: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify"),
        ("unit", "feedback"),
    ];
    const TO_REQUESTED: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "request_extension"),
    ];
    // Reopened past the reopen limit (1): escalated, back in rectifying.
    const TO_ESCALATED: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify"),
        ("unit", "feedback"),
        ("center", "review_unsatisfied"),
        ("unit", "rectify"),
        ("unit", "feedback"),
        ("center", "review_unsatisfied"),
    ];
    // Rectified as 建立台账、限期整改 (the step's fields after the colon).
    const TO_SCHEDULED: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify:scheduled"),
    ];
    const TO_CLOSED: &[(&str, &str)] = &[
        ("center", "accept"),
        ("center", "transfer"),
        ("unit", "rectify"),
        ("unit", "feedback"),
        ("center", "review_satisfied"),
    ];
    match action {
        "accept" => (&[], json!({})),
        "transfer" => (&[("center", "accept")], json!({"unit": "shaba-social"})),
        "return" => (TO_RECTIFYING, json!({"reason": "非本单位职责"})),
        "appeal" => (
            TO_RECTIFYING,
            json!({"category": "unrelated", "reason": "与本单位无关"}),
        ),
        "extend" => (TO_RECTIFYING, json!({"days": 2, "reason": "需协调"})),
        "request_extension" => (TO_RECTIFYING, json!({"days": 2, "reason": "需协调"})),
        "deny_extension" => (TO_REQUESTED, json!({"reason": "可按期完成"})),
        "conclude" => (TO_ESCALATED, json!({"reason": "诉求超出政策规定"})),
        "follow_up" => (&[], json!({"rating": "r", "level": "satisfied"})),
        "rectify" => (TO_RECTIFYING, rectify()),
        "complete_scheduled" => (TO_SCHEDULED, json!({"summary": "已完成系统改造"})),
        "uphold_appeal" | "reject_appeal" => (TO_APPEALING, json!({"reason": "复核意见"})),
        "contact_attempt" => (TO_FEEDBACK, json!({"method": "phone"})),
        "feedback" => (TO_FEEDBACK, json!({"method": "phone", "summary": "已回访"})),
        "close_unreachable" => (TO_UNREACHABLE, json!({})),
        "review_satisfied" => (TO_REVIEW, json!({"level": "satisfied"})),
        "review_unsatisfied" => (TO_REVIEW, json!({"reason": "不满意"})),
        "review_timeout" => (TO_REVIEW, json!({})),
        "audit_fail" => (TO_CLOSED, json!({"reason": "回访不实"})),
        other => panic!("no preparation for {other}"),
    }
}

/// Fields of a preparation step.
fn step_fields(action: &str) -> Value {
    match action {
        "transfer" => json!({"unit": "shaba-social"}),
        "appeal" => json!({"category": "malicious", "reason": "恶意"}),
        "rectify" => rectify(),
        "rectify:scheduled" => json!({
            "finding": "true",
            "measures": "列入台账限期改造",
            "outcome": "scheduled",
            "due": "2021-12-31",
        }),
        "contact_attempt" => json!({"method": "phone"}),
        "feedback" => json!({"method": "phone", "summary": "已回访"}),
        "review_satisfied" => json!({"level": "satisfied"}),
        "review_unsatisfied" => json!({"reason": "仍不满意"}),
        "request_extension" => json!({"days": 2, "reason": "需协调"}),
        _ => json!({}),
    }
}

async fn every_role_and_action_in_and_out_of_scope_gets_its_status(db: &TestDb) {
    let app = app(db).await;
    // Who may take each action (docs/DOMAIN.md's table); the responsible unit's staff for unit_staff.
    let allowed: &[(&str, &[&str])] = &[
        ("accept", &["center"]),
        ("transfer", &["center"]),
        ("return", &["unit"]),
        ("appeal", &["unit"]),
        ("uphold_appeal", &["sup"]),
        ("reject_appeal", &["sup"]),
        ("request_extension", &["unit"]),
        ("deny_extension", &["sup"]),
        ("extend", &["sup"]),
        ("rectify", &["unit"]),
        ("contact_attempt", &["unit", "center"]),
        ("feedback", &["unit", "center"]),
        ("close_unreachable", &["center"]),
        ("review_satisfied", &["center"]),
        ("review_unsatisfied", &["center"]),
        ("review_timeout", &[]),
        ("follow_up", &[]),
        ("conclude", &["sup"]),
        ("audit_fail", &["sup"]),
        ("complete_scheduled", &["unit"]),
    ];
    let def = app.engine.workflow("negative-rating").unwrap();
    assert_eq!(
        def.actions.len(),
        allowed.len(),
        "every action of negative-rating.toml is in the matrix"
    );
    let mut n = 0;
    for (action, who) in allowed {
        let (path, fields) = preparation(action);
        for user in [
            "admin", "sup", "center", "unit", "viewer", "o_sup", "o_center", "o_unit", "o_viewer",
        ] {
            n += 1;
            let id = app.new_case(&format!("M-{n}")).await;
            for (actor, step) in path {
                let action = step.split(':').next().unwrap_or(step);
                let f = app.cited(&id, action, step_fields(step)).await;
                app.step(actor, &id, action, f).await;
            }
            let fields = app.cited(&id, action, fields.clone()).await;
            let before_transfer = path.iter().all(|(_, s)| *s != "transfer");
            let expected = if user.starts_with("o_") || (user == "unit" && before_transfer) {
                StatusCode::NOT_FOUND
            } else if who.contains(&user) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            let (status, body) = app.act(user, &id, action, fields.clone()).await;
            assert_eq!(status, expected, "{user} takes {action}: {body}");
            if expected == StatusCode::FORBIDDEN {
                assert!(
                    matches!(
                        body["error"].as_str(),
                        Some("role_not_allowed" | "not_responsible_unit")
                    ),
                    "{body}"
                );
            }
            // An allowed role without its required fields is 422 naming the field.
            if expected == StatusCode::OK
                && let Some(first) = def
                    .action(action)
                    .unwrap()
                    .fields
                    .iter()
                    .find(|f| f.required)
            {
                let id = app.new_case(&format!("M-{n}-f")).await;
                for (actor, step) in path {
                    let action = step.split(':').next().unwrap_or(step);
                    let f = app.cited(&id, action, step_fields(step)).await;
                    app.step(actor, &id, action, f).await;
                }
                let (status, body) = app.act(user, &id, action, json!({})).await;
                assert_eq!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{user} takes {action} without fields: {body}"
                );
                assert_eq!(body["details"]["field"], first.name.as_str());
            }
        }
        // Not from this state: 422.
        if !path.is_empty() {
            let id = app.new_case(&format!("M-{n}-s")).await;
            let user = who.first().copied().unwrap_or("center");
            let user = if user == "unit" { "center" } else { user };
            let (status, body) = app.act(user, &id, action, fields.clone()).await;
            assert!(
                matches!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY | StatusCode::FORBIDDEN
                ),
                "{action} in received: {body}"
            );
            if who.contains(&user) {
                assert_eq!(body["error"], "action_not_allowed_in_state", "{body}");
            }
        }
    }
}

async fn stale_versions_missing_fields_and_bad_requests_get_json_errors(db: &TestDb) {
    let app = spawn(
        db,
        WebConfig {
            body_limit: 4096,
            ..WebConfig::default()
        },
    )
    .await;
    let id = app.new_case("E-1").await;
    let path = format!("/api/v1/cases/{id}/actions");
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &path,
            Some(json!({"action": "accept", "version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &path,
            Some(json!({"action": "transfer", "version": 1, "fields": {"unit": "shaba-social"}})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("version_conflict"))
    );
    assert_eq!(
        (
            body["details"]["expected"].as_i64(),
            body["details"]["actual"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &path,
            Some(json!({"action": "transfer", "version": 2, "fields": {}})),
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["details"]["field"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("missing_field"),
            Some("unit")
        )
    );
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &path,
            Some(json!({"action": "transfer", "version": 2, "fields": {"unit": "nowhere"}})),
        )
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unit")),
        "{body}"
    );
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &path,
            Some(json!({"action": "teleport", "version": 2})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_action"))
    );

    // 401 without a token, with a bad one, with a channel token where a user is needed (403).
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("bhs_nonsense"), StatusCode::UNAUTHORIZED),
        (Some("garbage"), StatusCode::UNAUTHORIZED),
        (Some(app.channel_token.as_str()), StatusCode::FORBIDDEN),
    ] {
        let (status, body) = app.raw(Method::GET, "/api/v1/cases", token, None).await;
        assert_eq!(status, expected, "{token:?}: {body}");
        assert!(
            body["error"].is_string() && body["message"].is_string() && body["details"].is_object(),
            "{body}"
        );
    }

    // Axum's own rejections come back as the JSON error body.
    let token = app.token("center").await;
    let send = |builder: reqwest::RequestBuilder| async move {
        let r = builder.send().await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, ct, r.json::<Value>().await.unwrap())
    };
    let url = format!("{}{path}", app.base);
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"action\":"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"action\":1,\"version\":\"x\"}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.client
                .get(format!("{}/api/v1/cases/not-a-uuid", app.base))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            app.client
                .get(format!("{}/api/v1/cases?per_page=lots", app.base))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            app.client
                .get(format!("{}/api/v1/cases?from=yesterday", app.base))
                .bearer_auth(&token),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            app.client
                .delete(format!("{}/api/v1/cases", app.base))
                .bearer_auth(&token),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            app.client.get(format!("{}/api/v1/nothing-here", app.base)),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.client
                .get(format!("{}/api/v1/cases/{}", app.base, uuid_like()))
                .bearer_auth(&token),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (builder, status, code) in cases {
        let (got, content_type, body) = send(builder).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(content_type.unwrap().starts_with("application/json"));
    }
}

fn uuid_like() -> String {
    "0192f3c4-0000-7000-8000-000000000000".to_owned()
}

async fn ratings_are_idempotent_validated_and_need_a_channel_token(db: &TestDb) {
    let app = app(db).await;
    let (status, first) = app
        .push_rating(&rating("R-1", "very_dissatisfied", "qr"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(first["case_id"].is_string());
    let (status, again) = app
        .push_rating(&rating("R-1", "very_dissatisfied", "qr"))
        .await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "the same (source, source_id) answers the first answer"
    );
    let (status, body) = app
        .push_rating(&rating("R-2", "dissatisfied", "default"))
        .await;
    assert_eq!(
        (status, body["case_id"].clone()),
        (StatusCode::CREATED, Value::Null),
        "a system default rating opens no case"
    );
    let (status, body) = app.push_rating(&rating("R-3", "satisfied", "pc")).await;
    assert_eq!(
        (status, body["case_id"].clone()),
        (StatusCode::CREATED, Value::Null)
    );
    let mut bad = rating("R-4", "meh", "pc");
    bad["rater"]["phone"] = json!("call me");
    let (status, body) = app.push_rating(&bad).await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["details"]["field"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_rating"),
            Some("level")
        )
    );
    assert_eq!(
        body["details"]["errors"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/ratings",
            None,
            Some(&rating("R-5", "satisfied", "pc")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let user = app.token("admin").await;
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/ratings",
            Some(&user),
            Some(&rating("R-5", "satisfied", "pc")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("channel_token_required"))
    );
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/ratings",
            Some("bhc_revoked_or_never_issued"),
            Some(&rating("R-5", "satisfied", "pc")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn sessions_expire_and_can_be_revoked_and_failed_sign_ins_are_throttled(db: &TestDb) {
    let app = app(db).await;
    let user = db.store.user_by_name("center").await.unwrap().unwrap();
    let (expired, _) = db
        .store
        .create_session(
            user.id,
            app.clock.now() - chrono::Duration::hours(13),
            chrono::Duration::hours(12),
        )
        .await
        .unwrap();
    let (status, _) = app
        .raw(Method::GET, "/api/v1/cases", Some(&expired), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a session older than 12 hours has expired"
    );

    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/session",
            None,
            Some(&json!({"username": "center", "password": bihuan_tests::api::PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["user"]["role"].as_str(), body["user"]["unit"].as_str()),
        (Some("center_staff"), Some("shaba-center"))
    );
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.raw(Method::GET, "/api/v1/cases", Some(&token), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.raw(Method::DELETE, "/api/v1/session", Some(&token), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.raw(Method::GET, "/api/v1/cases", Some(&token), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    for _ in 0..5 {
        let (status, body) = app
            .raw(
                Method::POST,
                "/api/v1/session",
                None,
                Some(&json!({"username": "viewer", "password": "wrong"})),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
    }
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/session",
            None,
            Some(&json!({"username": "viewer", "password": bihuan_tests::api::PASSWORD})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
        "even the right password waits"
    );
}

async fn personal_data_is_masked_for_viewers(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("PII-1").await;
    let rater = |case: &Value| case["rating"]["rater"].clone();
    let center = rater(&app.case("center", &id).await);
    assert_eq!(
        (
            center["phone"].as_str(),
            center["name"].as_str(),
            center["masked"].as_bool()
        ),
        (Some("13800001234"), Some("张三"), Some(false))
    );
    let viewer = rater(&app.case("viewer", &id).await);
    assert_eq!(
        (
            viewer["phone"].as_str(),
            viewer["name"].as_str(),
            viewer["email"].as_str()
        ),
        (Some("138****1234"), Some("张*"), Some("z***@example.org"))
    );
    let (_, list) = app.call("viewer", Method::GET, "/api/v1/cases", None).await;
    assert_eq!(list["items"][0]["rating"]["rater"]["phone"], "138****1234");
    app.to_rectifying(&id).await;
    assert_eq!(
        rater(&app.case("unit", &id).await)["phone"],
        "13800001234",
        "the responsible unit calls the rater"
    );
    assert!(
        app.case("viewer", &id).await["actions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn admins_create_units_users_and_tokens(db: &TestDb) {
    let app = app(db).await;
    let unit = json!({"code": "shaba-agri", "name": "沙坝镇农业服务中心", "parent": "shaba"});
    let (status, body) = app
        .call("sup", Method::POST, "/api/v1/units", Some(unit.clone()))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_only"))
    );
    let (status, _) = app
        .call("admin", Method::POST, "/api/v1/units", Some(unit.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/units", Some(unit))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    let user = json!({"username": "nongye", "role": "unit_staff", "unit": "shaba-agri", "password": "another long one"});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/users", Some(user))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "x", "role": "king", "password": "another long one"})),
        )
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role"))
    );
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/session",
            None,
            Some(&json!({"username": "nongye", "password": "another long one"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "12345", "scope": "ratings:write", "source": "yukuaiban"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = body["token"].as_str().unwrap();
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/ratings",
            Some(token),
            Some(&rating("T-1", "satisfied", "phone")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "x", "scope": "everything"})),
        )
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scope"))
    );
}

async fn random_bodies_never_cause_a_server_error(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("Z-1").await;
    let token = app.token("center").await;
    let routes: Vec<(Method, String)> = vec![
        (Method::POST, "/api/v1/session".into()),
        (Method::POST, "/api/v1/ratings".into()),
        (Method::POST, "/api/v1/ratings/batch".into()),
        (Method::GET, "/api/v1/ratings".into()),
        (Method::GET, "/api/v1/cases".into()),
        (Method::GET, format!("/api/v1/cases/{id}")),
        (Method::POST, format!("/api/v1/cases/{id}/actions")),
        (Method::GET, "/api/v1/audit/sample".into()),
        (Method::POST, "/api/v1/audits".into()),
        (Method::GET, "/api/v1/audit/verify".into()),
        (Method::POST, "/api/v1/units".into()),
        (Method::POST, "/api/v1/users".into()),
        (Method::POST, "/api/v1/tokens".into()),
        (Method::DELETE, "/api/v1/session".into()),
    ];
    let mut seed = 0x2021_0506_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let atoms = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("\u{0}"),
        json!("中文"),
        json!([]),
        json!({}),
        json!("shaba-social"),
        json!(i64::MAX),
        json!(2),
    ];
    let keys = [
        "action",
        "version",
        "fields",
        "unit",
        "username",
        "password",
        "case_id",
        "verdict",
        "reason",
        "level",
        "source",
        "source_id",
        "channel",
        "code",
        "name",
        "role",
        "scope",
        "rater",
        "rated_at",
    ];
    for round in 0..300 {
        let mut body = serde_json::Map::new();
        for _ in 0..(next() % 8) {
            let key = keys[(next() % keys.len() as u64) as usize];
            let mut value = atoms[(next() % atoms.len() as u64) as usize].clone();
            if next() % 4 == 0 {
                value = json!({ keys[(next() % keys.len() as u64) as usize]: value });
            }
            body.insert(key.to_owned(), value);
        }
        let (method, path) = &routes[round % routes.len()];
        let bearer = match next() % 3 {
            0 => None,
            1 => Some(token.as_str()),
            _ => Some(app.channel_token.as_str()),
        };
        let (status, response) = app
            .raw(
                method.clone(),
                path,
                bearer,
                Some(&Value::Object(body.clone())),
            )
            .await;
        assert!(
            status.as_u16() < 500,
            "{method} {path} with {body:?} answered {status}: {response}"
        );
        assert!(
            response["error"].is_string() || status.is_success(),
            "{method} {path}: {response}"
        );
    }
}

async fn metrics_count_requests_cases_and_mail(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("MET-1").await;
    app.new_case("MET-2").await;
    app.to_rectifying(&id).await;
    app.case("center", &id).await;
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "prometheus", "scope": "metrics:read"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(r#"http_requests_total{route="/api/v1/cases/{id}",method="GET",status="200"}"#),
        "{text}"
    );
    assert!(
        has(r#"http_requests_total{route="/api/v1/ratings",method="POST",status="201"} 2"#),
        "{text}"
    );
    assert!(
        has(
            "http_request_duration_seconds_bucket{route=\"/api/v1/cases/{id}/actions\",le=\"0.005\"}"
        ),
        "{text}"
    );
    assert!(
        has(r#"bihuan_cases{state="received"} 1"#) && has(r#"bihuan_cases{state="rectifying"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"bihuan_outbox{status="pending"} 1"#),
        "the transfer queued one mail: {text}"
    );
}

/// The routes the router serves (docs/API.md's contract so far).
const SERVED: [(&str, &str); 49] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("post", "/api/v1/session/password"),
    ("post", "/api/v1/users/{username}/disable"),
    ("post", "/api/v1/users/{username}/enable"),
    ("post", "/api/v1/ratings"),
    ("get", "/api/v1/ratings"),
    ("post", "/api/v1/ratings/batch"),
    ("get", "/api/v1/cases"),
    ("get", "/api/v1/cases/{id}"),
    ("post", "/api/v1/cases/{id}/actions"),
    ("get", "/api/v1/audit/verify"),
    ("get", "/api/v1/audit/sample"),
    ("post", "/api/v1/audits"),
    ("get", "/api/v1/units"),
    ("get", "/api/v1/units/unmapped"),
    ("get", "/api/v1/units/aliases"),
    ("post", "/api/v1/units/aliases"),
    ("post", "/api/v1/units"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/outbox"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/export/cases.xlsx"),
    ("get", "/api/v1/export/cases.csv"),
    ("get", "/api/v1/export/metrics.xlsx"),
    ("get", "/api/v1/export/metrics.csv"),
    ("get", "/api/v1/charts/{name}"),
    ("post", "/api/v1/plans"),
    ("get", "/api/v1/plans"),
    ("get", "/api/v1/plans/{id}"),
    ("get", "/api/v1/plans/{id}/export.xlsx"),
    ("get", "/api/v1/tasks/{id}"),
    ("post", "/api/v1/tasks/{id}/actions"),
    ("post", "/api/v1/cases/{id}/attachments"),
    ("post", "/api/v1/tasks/{id}/attachments"),
    ("get", "/api/v1/attachments/{id}"),
    ("get", "/api/v1/attachments/{id}/thumbnail"),
    ("get", "/api/v1/upstream"),
    ("post", "/api/v1/upstream/{id}/retry"),
    ("get", "/r/{token}"),
    ("post", "/r/{token}"),
    // Not served: the probe below must tell an unknown route apart.
    ("get", "/api/v1/not-a-route"),
    ("put", "/api/v1/cases"),
    ("patch", "/healthz"),
];

async fn the_openapi_document_lists_exactly_the_routes_served(db: &TestDb) {
    let app = app(db).await;
    let (status, doc) = app
        .raw(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(
        doc["components"]["schemas"]["CaseView"].is_object()
            && doc["components"]["schemas"]["ErrorBody"].is_object()
    );
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let token = app.token("admin").await;
    let mut served = Vec::new();
    for (method, path) in SERVED {
        let url = path
            .replace("{id}", "0192f3c4-0000-7000-8000-000000000000")
            .replace("{token}", "no-such-link")
            .replace("{username}", "no-such-user")
            .replace("{name}", "trend.svg");
        let (status, body) = app
            .raw(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                &url,
                Some(&token),
                None,
            )
            .await;
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND && body["message"] == "没有这个地址");
        if !unrouted {
            served.push((method.to_owned(), path.to_owned()));
        }
    }
    served.sort();
    assert_eq!(
        served.len(),
        SERVED.len() - 3,
        "the probe found the served routes: {served:?}"
    );
    assert_eq!(
        documented, served,
        "the OpenAPI document and the router list the same routes"
    );
    assert_eq!(
        bihuan_web::openapi().paths.paths.len(),
        doc["paths"].as_object().unwrap().len()
    );
}

async fn the_case_list_filters_and_pages_within_scope(db: &TestDb) {
    let app = app(db).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.new_case(&format!("L-{i}")).await);
    }
    app.to_rectifying(&ids[0]).await;
    app.to_rectifying(&ids[1]).await;
    let list = |user: &'static str, query: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(user, Method::GET, &format!("/api/v1/cases{query}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let all = list("center", "").await;
    assert_eq!(all["total"], 5);
    assert_eq!(list("center", "?state=rectifying").await["total"], 2);
    assert_eq!(list("center", "?state=received").await["total"], 3);
    assert_eq!(list("center", "?unit=shaba-social").await["total"], 2);
    assert_eq!(list("center", "?unit=mawang").await["total"], 0);
    let page = list("center", "?per_page=2&page=3").await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(5), 1)
    );
    assert!(
        page["items"][0].get("events").is_none(),
        "lists carry no events"
    );
    // Cases opened today fall inside a period that ends today, not inside one that ended yesterday.
    let today = app
        .clock
        .now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let (_, inside) = app
        .call(
            "center",
            Method::GET,
            &format!("/api/v1/cases?from={today}&to={today}"),
            None,
        )
        .await;
    assert_eq!(inside["total"], 5);
    let yesterday = today.pred_opt().unwrap();
    let (_, before) = app
        .call(
            "center",
            Method::GET,
            &format!("/api/v1/cases?to={yesterday}"),
            None,
        )
        .await;
    assert_eq!(before["total"], 0);
    // Fresh deadlines have not passed.
    assert_eq!(list("center", "?overdue=true").await["total"], 0);
    assert_eq!(list("center", "?overdue=false").await["total"], 5);
    // Scope: the unit sees what was transferred to it; the other town sees nothing.
    assert_eq!(list("unit", "").await["total"], 2);
    assert_eq!(list("o_center", "").await["total"], 0);
    assert_eq!(list("admin", "").await["total"], 5);
    let (status, body) = app
        .call("center", Method::GET, "/api/v1/cases?per_page=0", None)
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("per_page"))
    );
}

async fn a_server_error_says_nothing_internal_and_carries_a_request_id(db: &TestDb) {
    use sea_orm::ConnectionTrait;
    let app = app(db).await;
    let id = app.new_case("ISE-1").await;
    let token = app.token("center").await;
    // A real failure underneath: the audits table is gone.
    db.store
        .connection()
        .execute_unprepared("DROP TABLE audits")
        .await
        .unwrap();
    let response = app
        .client
        .get(format!("{}/api/v1/cases/{id}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        request_id.is_some_and(|id| id.len() >= 32),
        "the answer names its request id for the log"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal_error");
    let text = body.to_string().to_lowercase();
    for secret in ["audits", "sql", "table", "relation", "select"] {
        assert!(!text.contains(secret), "{body}");
    }
    // Everything else still answers.
    assert_eq!(
        app.raw(Method::GET, "/api/v1/cases", Some(&token), None)
            .await
            .0,
        StatusCode::OK
    );
}

/// `bihuan tick`: a review nobody answers closes as 评议超时 once its five working days have passed,
/// by the scheduler, once however many passes run.
async fn the_scheduler_closes_an_unanswered_review_once(db: &TestDb) {
    let app = app(db).await;
    let waiting = app.new_case("TICK-1").await;
    let answered = app.new_case("TICK-2").await;
    for id in [&waiting, &answered] {
        app.to_review(id).await;
    }
    app.step(
        "center",
        &answered,
        "review_satisfied",
        json!({"level": "satisfied"}),
    )
    .await;
    let deadline = app.case("admin", &waiting).await["deadline"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let tick = |now: &str| {
        let out = bihuan_tests::bihuan(dir.path())
            .args(["tick", "--now", now, "--db", &db.url, "--workflows"])
            .arg(bihuan_tests::root().join("workflows"))
            .output()
            .unwrap();
        let (stdout, stderr) = bihuan_tests::text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
    };
    // Before the deadline: nothing.
    let before = (chrono::DateTime::parse_from_rfc3339(&deadline).unwrap()
        - chrono::Duration::minutes(1))
    .to_rfc3339();
    assert!(tick(&before).contains("触发定时动作 0 件"));
    assert_eq!(app.case("admin", &waiting).await["state"], "pending_review");
    // At the deadline: closed by the scheduler, the mark recorded; a second pass does nothing.
    assert!(tick(&deadline).contains("触发定时动作 1 件"));
    let case = app.case("admin", &waiting).await;
    assert_eq!(case["state"], "closed", "{case}");
    let last = case["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str()),
        (Some("review_timeout"), Some("scheduler"))
    );
    assert!(tick(&deadline).contains("触发定时动作 0 件"));
    assert_eq!(
        event_actions(&app.case("admin", &waiting).await).len(),
        event_actions(&case).len()
    );
    assert_eq!(
        event_actions(&app.case("admin", &answered).await)
            .last()
            .map(String::as_str),
        Some("review_satisfied")
    );
    let out = bihuan_tests::bihuan(dir.path())
        .args(["tick", "--now", "明天", "--db", &db.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(bihuan_tests::text(&out).1.contains("--now 明天"));
}

/// `GET /api/v1/outbox`: admins see the queued mail, by status; a dead row carries its last error.
async fn admins_list_the_outbox_by_status(db: &TestDb) {
    use bihuan_store::entity::outbox;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let app = app(db).await;
    let id = app.new_case("OUT-1").await;
    app.to_rectifying(&id).await;
    let (status, list) = app.call("admin", Method::GET, "/api/v1/outbox", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    let row = &list["items"][0];
    assert_eq!(
        (
            row["kind"].as_str(),
            row["status"].as_str(),
            row["case_id"].as_str()
        ),
        (Some("case_assigned"), Some("pending"), Some(id.as_str()))
    );
    let stored = outbox::Entity::find()
        .one(db.store.connection())
        .await
        .unwrap()
        .unwrap();
    let mut dead = stored.into_active_model();
    dead.status = Set(bihuan_store::OutboxStatus::Dead.into());
    dead.attempts = Set(8);
    dead.last_error = Set(Some("550 mailbox unavailable".into()));
    dead.update(db.store.connection()).await.unwrap();
    let (_, pending) = app
        .call("admin", Method::GET, "/api/v1/outbox?status=pending", None)
        .await;
    assert_eq!(pending["total"], 0);
    let (_, dead) = app
        .call("admin", Method::GET, "/api/v1/outbox?status=dead", None)
        .await;
    assert_eq!(dead["total"], 1);
    assert_eq!(dead["items"][0]["last_error"], "550 mailbox unavailable");
    let (status, body) = app
        .call("admin", Method::GET, "/api/v1/outbox?status=lost", None)
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
    );
    let (status, _) = app.call("sup", Method::GET, "/api/v1/outbox", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A 追评 (assess_number 2) of the handled item is the rater's review, opens no case, and the case
/// lists it under `follow_ups`, masked like the rating for those who do not call raters.
async fn a_follow_up_rating_answers_the_review_and_shows_on_the_case(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("FU-1").await;
    app.to_review(&id).await;
    let mut later = bihuan_tests::api::rating("FU-1-2", "very_dissatisfied", "mobile");
    later["project_no"] = json!("500114-2021-FU-1");
    later["assess_number"] = json!(2);
    later["comment"] = json!("整改后仍要求重复提交材料");
    let (status, body) = app.push_rating(&later).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["case_id"], Value::Null, "a 追评 opens no case: {body}");
    let case = app.case("center", &id).await;
    assert_eq!(case["state"], "rectifying", "不满意 sends it back: {case}");
    assert_eq!(case["reopen_count"], 1);
    assert_eq!(
        event_actions(&case).last().map(String::as_str),
        Some("review_unsatisfied")
    );
    let follow_ups = case["follow_ups"].as_array().unwrap();
    assert_eq!(follow_ups.len(), 1, "{case}");
    assert_eq!(follow_ups[0]["level"], "very_dissatisfied");
    assert_eq!(follow_ups[0]["assess_number"], 2);
    let seen_by_viewer = app.case("viewer", &id).await;
    let phone = seen_by_viewer["follow_ups"][0]["rater"]["phone"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(phone.is_empty() || phone.contains('*'), "masked: {phone}");
}

/// `category` (差评原因) on a rectification: one of the workflow's codes, optional, shown on the case.
async fn a_rectification_names_the_cause_of_the_rating_from_the_workflows_codes(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("CAT-1").await;
    app.to_rectifying(&id).await;
    let mut fields = app.cited(&id, "rectify", rectify()).await;
    fields["category"] = json!("queueing");
    let (status, body) = app.act("unit", &id, "rectify", fields.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        (body["error"].as_str(), body["details"]["field"].as_str()),
        (Some("invalid_field"), Some("category"))
    );
    fields["category"] = json!("materials");
    app.step("unit", &id, "rectify", fields).await;
    assert_eq!(app.case("center", &id).await["category"], "materials");
    // Without one, none is recorded.
    let other = app.new_case("CAT-2").await;
    app.to_rectifying(&other).await;
    app.step(
        "unit",
        &other,
        "rectify",
        app.cited(&other, "rectify", rectify()).await,
    )
    .await;
    assert_eq!(app.case("center", &other).await["category"], Value::Null);
    // A rectification whose recorded fields are corrupt is an error (its cause logged), never a case
    // shown without its category.
    use sea_orm::ConnectionTrait;
    let conn = db.store.connection();
    conn.execute_unprepared("UPDATE events SET fields = 'x' || fields WHERE action = 'rectify'")
        .await
        .unwrap();
    let (status, body) = app
        .call("center", Method::GET, &format!("/api/v1/cases/{id}"), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_error")),
        "{body}"
    );
}
