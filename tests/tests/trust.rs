//! The findings of the security review (issue 16), each as a scenario that failed before its fix,
//! on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_test_support::TestDb;
use bihuan_tests::api::{SHABA_REGION, TestApp, rating, spawn};
use bihuan_tests::pages::Browser;
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    a_region_code_never_reaches_the_cases_of_a_registered_unit,
    a_case_is_never_transferred_outside_the_center_s_reach,
    a_supervisor_above_a_co_unit_cannot_accept_or_return_the_item,
    parallel_sign_in_attempts_never_pass_the_throttle,
    a_guesser_locks_out_only_their_own_address,
    forwarded_addresses_are_believed_only_from_trusted_proxies,
    accounts_and_tokens_have_a_life_cycle,
    a_channel_token_writes_only_its_own_source,
    sign_in_leads_only_to_a_path_of_this_site,
    metrics_need_a_metrics_token,
    pages_and_sizes_out_of_range_are_400,
    every_input_is_bounded,
    units_and_the_chain_answer_within_scope,
    every_answer_carries_the_security_headers,
    a_nul_character_is_refused_where_it_comes_in,
    guessing_the_current_password_is_throttled,
);

async fn sign_in(
    app: &TestApp,
    username: &str,
    password: &str,
    forwarded: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = app
        .client
        .post(format!("{}/api/v1/session", app.base))
        .json(&json!({"username": username, "password": password}));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.json().await.unwrap_or(Value::Null), retry)
}

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

/// Finding 3: twenty wrong passwords sent at once: no more than the limit are even checked.
async fn parallel_sign_in_attempts_never_pass_the_throttle(db: &TestDb) {
    let app = app(db).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (app.client.clone(), format!("{}/api/v1/session", app.base));
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .json(&json!({"username": "viewer", "password": "wrong password"}))
                    .send()
                    .await
                    .unwrap();
                let (status, retry) = (resp.status(), resp.headers().contains_key("retry-after"));
                let body: Value = resp.json().await.unwrap();
                (status, body, retry)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for a in attempts {
        answers.push(a.await.unwrap());
    }
    let checked = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|(s, b, retry)| {
            *s == StatusCode::TOO_MANY_REQUESTS && b["error"] == "too_many_attempts" && *retry
        })
        .count();
    assert!(checked <= 5, "{checked} attempts were checked: {answers:?}");
    assert_eq!(checked + throttled, 20, "{answers:?}");
}

/// Finding 4: failures at one username and address throttle that pair; the same user from another
/// address, and another user, sign in. Behind a trusted proxy the address is the client's.
async fn a_guesser_locks_out_only_their_own_address(db: &TestDb) {
    let proxies = bihuan_web::parse_trusted_proxies("127.0.0.1/32").unwrap();
    let app = spawn(
        db,
        WebConfig {
            trusted_proxies: proxies,
            ..WebConfig::default()
        },
    )
    .await;
    let password = bihuan_tests::api::PASSWORD;
    for _ in 0..5 {
        let (status, _, _) = sign_in(&app, "admin", "guess", Some("203.0.113.9")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, retry) = sign_in(&app, "admin", password, Some("203.0.113.9")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_attempts");
    let seconds: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=600).contains(&seconds), "{seconds}");
    // The real admin, elsewhere, is not locked out; nor is another user at the guesser's address.
    let (status, body, _) = sign_in(&app, "admin", password, Some("198.51.100.7")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = sign_in(&app, "center", password, Some("203.0.113.9")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One address trying many names is stopped by the per-address limit.
    let mut last = StatusCode::OK;
    for i in 0..40 {
        last = sign_in(&app, &format!("nobody{i}"), "guess", Some("192.0.2.1"))
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// Finding 4: `X-Forwarded-For` from a peer that is not a trusted proxy is ignored, so a guesser
/// cannot pick a fresh address per attempt.
async fn forwarded_addresses_are_believed_only_from_trusted_proxies(db: &TestDb) {
    let app = app(db).await;
    for i in 0..5 {
        let forged = format!("203.0.113.{i}");
        let (status, _, _) = sign_in(&app, "viewer", "guess", Some(&forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = sign_in(&app, "viewer", "guess", Some("203.0.113.99")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The rule itself, from the right: trusted hops are skipped, the first other one is the client.
    let trusted = bihuan_web::parse_trusted_proxies("10.0.0.0/8, 192.168.1.1").unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let table = [
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),
        ("10.0.0.2", "1.2.3.4, 10.0.0.9", "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", "1.2.3.4"),
        ("192.168.1.1", "garbage, 5.6.7.8", "5.6.7.8"),
        ("10.0.0.2", "", "10.0.0.2"),
    ];
    for (peer, forwarded, client) in table {
        assert_eq!(
            bihuan_web::client_ip(ip(peer), forwarded, &trusted),
            ip(client),
            "{peer} {forwarded}"
        );
    }
    assert!(bihuan_web::parse_trusted_proxies("10.0.0.0/33").is_err());
}

/// Finding 6: disable, enable, password change, revocation; every change takes effect at once.
async fn accounts_and_tokens_have_a_life_cycle(db: &TestDb) {
    let app = app(db).await;
    let password = bihuan_tests::api::PASSWORD;
    let (_, first, _) = sign_in(&app, "viewer", password, None).await;
    let (_, second, _) = sign_in(&app, "viewer", password, None).await;
    let (first, second) = (
        first["token"].as_str().unwrap().to_owned(),
        second["token"].as_str().unwrap().to_owned(),
    );
    let get = |token: String| {
        let app = &app;
        async move {
            app.raw(Method::GET, "/api/v1/cases", Some(&token), None)
                .await
                .0
        }
    };
    // A new password needs 12 characters; the current one must be right.
    let change = |current: &str, new: &str| json!({"current": current, "new": new});
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/session/password",
            Some(&first),
            Some(&change(password, "short")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/session/password",
            Some(&first),
            Some(&change("wrong one here", "a new long password")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_password"))
    );
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/session/password",
            Some(&first),
            Some(&change(password, "a new long password")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The other session ended; this one goes on; the old password no longer signs in.
    assert_eq!(get(second.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(first.clone()).await, StatusCode::OK);
    assert_eq!(
        sign_in(&app, "viewer", password, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, fresh, _) = sign_in(&app, "viewer", "a new long password", None).await;
    assert_eq!(status, StatusCode::OK);
    // An admin disables the account: every session answers 401 at once; enabled, it signs in again.
    let (status, body) = app
        .call("sup", Method::POST, "/api/v1/users/viewer/disable", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app
        .call("admin", Method::POST, "/api/v1/users/viewer/disable", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(get(first.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(fresh["token"].as_str().unwrap().to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, "viewer", "a new long password", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .call("admin", Method::POST, "/api/v1/users/admin/disable", None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an admin cannot lock themselves out"
    );
    let (status, _) = app
        .call("admin", Method::POST, "/api/v1/users/nobody/disable", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call("admin", Method::POST, "/api/v1/users/viewer/enable", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sign_in(&app, "viewer", "a new long password", None).await.0,
        StatusCode::OK
    );
    // Signing out ends this session only.
    let (_, a, _) = sign_in(&app, "center", password, None).await;
    let a = a["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.raw(Method::DELETE, "/api/v1/session", Some(&a), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(a).await, StatusCode::UNAUTHORIZED);
    // A user added with a short password is refused.
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "short", "role": "viewer", "unit": "shaba", "password": "elevenchars"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    // A revoked channel token answers 401 at once.
    db.store
        .revoke_api_token("yukuaiban", app.clock.now())
        .await
        .unwrap();
    let (status, _) = app
        .push_rating(&rating("REV-1", "satisfied", "mobile"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Finding 7: a channel's token sends its own source only, singly and in a batch.
async fn a_channel_token_writes_only_its_own_source(db: &TestDb) {
    let app = app(db).await;
    let mut other = rating("SQ-1", "dissatisfied", "mobile");
    other["source"] = json!("12345");
    let (status, body) = app.push_rating(&other).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("source_mismatch")),
        "{body}"
    );
    let batch = json!({"ratings": [rating("SQ-2", "satisfied", "mobile"), other]});
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/ratings/batch",
            Some(&app.channel_token),
            Some(&batch),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("source_mismatch")),
        "{body}"
    );
    assert_eq!(body["details"]["index"], 1);
    let (_, listed) = app
        .call("admin", Method::GET, "/api/v1/ratings", None)
        .await;
    assert_eq!(
        listed["total"], 0,
        "nothing of the refused batch was stored: {listed}"
    );
    let (status, _) = app
        .push_rating(&rating("SQ-3", "satisfied", "mobile"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Finding 9: after signing in, only a path of this site is followed, as the browser would read it.
async fn sign_in_leads_only_to_a_path_of_this_site(db: &TestDb) {
    let app = app(db).await;
    let table = [
        ("/cases", "/cases"),
        (
            "/cases?state=received&page=2",
            "/cases?state=received&page=2",
        ),
        ("/%09/evil.example", "/"),
        ("/%0a/evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("/%2F/evil.example", "/"),
        ("https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/%zz", "/"),
    ];
    for (next, expected) in table {
        let mut browser = Browser::new(&app);
        let login = browser.get("/login").await;
        let answer = browser
            .post(
                "/login",
                &[
                    ("csrf", &login.csrf()),
                    ("username", "viewer"),
                    ("password", bihuan_tests::api::PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(answer.location.as_deref(), Some(expected), "{next}");
    }
}

/// Finding 12: `/metrics` answers a `metrics:read` token only (or anyone where made public).
async fn metrics_need_a_metrics_token(db: &TestDb) {
    let app = app(db).await;
    let get = |token: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.client.get(format!("{}/metrics", app.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status()
        }
    };
    assert_eq!(get(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some(app.channel_token.clone())).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(Some(app.token("admin").await)).await,
        StatusCode::UNAUTHORIZED
    );
    let token = db
        .store
        .add_api_token(
            "prometheus",
            bihuan_store::TokenScope::MetricsRead,
            None,
            app.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(get(Some(token)).await, StatusCode::OK);
    // A metrics token pushes no ratings.
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/ratings",
            Some(
                &db.store
                    .add_api_token(
                        "grafana",
                        bihuan_store::TokenScope::MetricsRead,
                        None,
                        app.clock.now(),
                    )
                    .await
                    .unwrap(),
            ),
            Some(&rating("M-1", "satisfied", "mobile")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let public = bihuan_tests::api::spawn_again(
        db,
        WebConfig {
            metrics_public: true,
            ..WebConfig::default()
        },
        "second",
    )
    .await;
    let status = public
        .client
        .get(format!("{}/metrics", public.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
}

/// Finding 13: a page or a page size out of range is 400, never an overflow.
async fn pages_and_sizes_out_of_range_are_400(db: &TestDb) {
    let app = app(db).await;
    for query in [
        "page=0",
        "page=18446744073709551615",
        "page=1000001",
        "per_page=0",
        "per_page=501",
        "page=-1",
    ] {
        for path in ["/api/v1/cases", "/api/v1/ratings", "/api/v1/outbox"] {
            let (status, body) = app
                .call("admin", Method::GET, &format!("{path}?{query}"), None)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}: {body}");
        }
    }
    let (status, _) = app
        .call(
            "admin",
            Method::GET,
            "/api/v1/cases?page=1000000&per_page=500",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut browser = Browser::signed_in(&app, "center").await;
    let page = browser.get("/ledger?page=18446744073709551615").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

/// Finding 14: no input is stored, looked up or echoed beyond its bound.
async fn every_input_is_bounded(db: &TestDb) {
    let app = app(db).await;
    let huge = "x".repeat(16 * 1024);
    let (status, body, _) = sign_in(&app, &huge, "whatever", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().len() < 1000, "the answer does not echo it");
    let (status, _, _) = sign_in(&app, "viewer", &huge, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/units",
            Some(json!({"code": "long", "name": huge})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .call(
            "admin",
            Method::GET,
            &format!("/api/v1/cases?unit={huge}"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::URI_TOO_LONG, Some("uri_too_long"))
    );
    let id = app.new_case("B-1").await;
    let (status, body) = app
        .call(
            "center",
            Method::POST,
            &format!("/api/v1/cases/{id}/actions"),
            Some(json!({"action": huge, "version": 1, "fields": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.to_string().len() < 1000, "{}", body.to_string().len());
    let (status, _) = app
        .raw(Method::GET, "/api/v1/cases", Some(&huge), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let plan = json!({"name": "长", "year": 2021, "items": [
        {"key_task": "甲", "title": huge, "lead_units": ["shaba-civil"], "deadline": "持续推进"}]});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(plan))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Nothing of the long username reached the throttle's table.
    let stored = <bihuan_store::entity::login_failure::Entity as sea_orm::EntityTrait>::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert!(stored.iter().all(|r| r.key.len() < 200), "{}", stored.len());
}

/// Finding 15: the unit list and the chain's check answer within the caller's scope.
async fn units_and_the_chain_answer_within_scope(db: &TestDb) {
    let app = app(db).await;
    let codes = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = app.call("admin", Method::GET, "/api/v1/units", None).await;
    assert_eq!(codes(&all).len(), 7);
    let (_, sup) = app.call("sup", Method::GET, "/api/v1/units", None).await;
    assert!(codes(&sup).iter().all(|c| c.starts_with("shaba")), "{sup}");
    assert_eq!(codes(&sup).len(), 4);
    let (_, unit) = app.call("unit", Method::GET, "/api/v1/units", None).await;
    assert_eq!(codes(&unit), ["shaba-social"]);
    // A broken chain in 马旺镇 is no business of 沙坝镇's supervisor.
    let ours = app.new_case("V-1").await;
    let mut theirs = rating("V-2", "dissatisfied", "mobile");
    theirs["unit_code"] = json!("mawang-center");
    theirs["region_code"] = json!(bihuan_tests::api::MAWANG_REGION);
    let (_, body) = app.push_rating(&theirs).await;
    let theirs = body["case_id"].as_str().unwrap().to_owned();
    let edit = match db.store.backend() {
        sea_orm::DatabaseBackend::Sqlite => format!(
            "UPDATE events SET actor = 'forged' WHERE case_id = X'{}'",
            theirs.replace('-', "")
        ),
        _ => format!("UPDATE events SET actor = 'forged' WHERE case_id = '{theirs}'"),
    };
    sea_orm::ConnectionTrait::execute_unprepared(db.store.connection(), &edit)
        .await
        .unwrap();
    let (_, report) = app
        .call("sup", Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events_checked"], 1, "{report}");
    let (_, report) = app
        .call("o_sup", Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken"]["case_id"], theirs, "{report}");
    let _ = ours;
}

/// Hardening: the security headers on pages and API answers; no-store where personal data is.
async fn every_answer_carries_the_security_headers(db: &TestDb) {
    let app = app(db).await;
    let token = app.token("center").await;
    for (path, bearer) in [
        ("/login", None),
        ("/api/v1/cases", Some(&token)),
        ("/nowhere", None),
    ] {
        let mut req = app.client.get(format!("{}{path}", app.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let css = app
        .client
        .get(format!("{}/static/style.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["cache-control"], "public, max-age=3600");
    // The time limit's answer too: a JSON error with the headers (before: an empty body without
    // them). A limit of zero cuts a sign-in, whose password check alone takes many milliseconds.
    let hasty = bihuan_tests::api::spawn_again(
        db,
        WebConfig {
            request_timeout: std::time::Duration::ZERO,
            ..WebConfig::default()
        },
        "hasty",
    )
    .await;
    let resp = hasty
        .client
        .post(format!("{}/api/v1/session", hasty.base))
        .json(&json!({"username": "admin", "password": bihuan_tests::api::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let h = resp.headers().clone();
    assert!(h.contains_key("content-security-policy"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "timeout", "{body}");
}

/// Found by the fuzz test: PostgreSQL refuses a NUL in text, so `?unit=%00` or a rating naming its
/// service "a\u0000b" answered 500 there (and SQLite stored it). Refused at the edge, by name, on
/// both databases.
async fn a_nul_character_is_refused_where_it_comes_in(db: &TestDb) {
    let app = app(db).await;
    let (status, body) = app
        .call("admin", Method::GET, "/api/v1/ratings?unit=%00", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_text"))
    );
    let mut r = rating("NUL-1", "dissatisfied", "mobile");
    r["service_name"] = json!("城乡居民\u{0}养老保险");
    let (status, body) = app.push_rating(&r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_text")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("service_name"),
        "{body}"
    );
    let (_, listed) = app
        .call("admin", Method::GET, "/api/v1/ratings", None)
        .await;
    assert_eq!(listed["total"], 0, "nothing stored");
    let mut browser = Browser::new(&app);
    let login = browser.get("/login").await;
    let answer = browser
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", "a\u{0}b"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.html);
}

/// The password change checks the current password: through a stolen session it was an unthrottled
/// oracle. It counts as sign-in attempts do (the same keys), and a right answer clears the count.
async fn guessing_the_current_password_is_throttled(db: &TestDb) {
    let app = app(db).await;
    let change = |current: &str| json!({"current": current, "new": "a-new-password-2021"});
    for _ in 0..5 {
        let (status, body) = app
            .call(
                "viewer",
                Method::POST,
                "/api/v1/session/password",
                Some(change("not-the-password")),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (status, body) = app
        .call(
            "viewer",
            Method::POST,
            "/api/v1/session/password",
            Some(change(bihuan_tests::api::PASSWORD)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
        "even the right password waits: {body}"
    );
    // Another user from the same address is not held up.
    let (status, body) = app
        .call(
            "unit",
            Method::POST,
            "/api/v1/session/password",
            Some(change(bihuan_tests::api::PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
