//! SMS, the outbox's second channel, on SQLite and PostgreSQL: a rater who left a phone and no email
//! gets the review invitation by SMS (one a step), through a real HTTP gateway (a server the test
//! runs) or written as a file, signed; the number is masked everywhere but in the message sent, and
//! the stored copy keeps no link token once it is out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use bihuan_notify::{Mailer, Outlets, Schedule, Scheduler, Sms};
use bihuan_store::RetryPolicy;
use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, rating, spawn};
use bihuan_web::WebConfig;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    a_rater_with_only_a_phone_is_invited_to_review_by_sms_once,
    without_a_gateway_an_sms_is_written_as_a_file,
    staff_who_chose_sms_get_the_daily_digest_by_sms,
    the_public_reply_reaches_an_anonymous_rater_with_the_review_link,
    a_refusing_gateway_gets_each_sms_retried_then_given_up,
);

/// The gateway's log of every message it took.
type Gateway = Arc<Mutex<Vec<Value>>>;

/// A gateway's state: what it took, and how many more messages it refuses (503) before it takes one.
#[derive(Clone, Default)]
struct GatewayState {
    took: Gateway,
    refused: Gateway,
    refuse: Arc<AtomicUsize>,
}

async fn take(
    State(gateway): State<GatewayState>,
    body: String,
) -> (axum::http::StatusCode, &'static str) {
    let message: Value = serde_json::from_str(&body).unwrap();
    let refuse = gateway
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        gateway.refused.lock().unwrap().push(message);
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "gateway busy")
    } else {
        gateway.took.lock().unwrap().push(message);
        (axum::http::StatusCode::OK, "ok")
    }
}

/// An SMS gateway on a free port that takes every message; its log and URL.
async fn gateway() -> (Gateway, String) {
    let (state, url) = refusing_gateway().await;
    (state.took, url)
}

/// An SMS gateway on a free port that refuses as many messages as its `refuse` says; its URL.
async fn refusing_gateway() -> (GatewayState, String) {
    let state = GatewayState::default();
    let app = axum::Router::new()
        .route("/send", axum::routing::post(take))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// A case whose rater left `phone` and `email` (either may be null), taken to the rater's review.
async fn reviewed_by(app: &TestApp, source_id: &str, phone: Value, email: Value) -> String {
    let mut r = rating(source_id, "dissatisfied", "mobile");
    r["rater"]["phone"] = phone;
    r["rater"]["email"] = email;
    let (status, body) = app.push_rating(&r).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["case_id"].as_str().unwrap().to_owned();
    app.to_review(&id).await;
    id
}

fn outlets(dir: &std::path::Path, sms: Sms) -> Outlets {
    Outlets {
        mail: Mailer::files(&dir.join("mail"), "好差评 <noreply@example.org>").unwrap(),
        sms,
        upstream: None,
    }
}

/// The outbox rows of the SMS channel, as admins see them.
async fn sms_rows(app: &TestApp) -> Vec<Value> {
    let (status, body) = app
        .call("admin", Method::GET, "/api/v1/outbox?per_page=500", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["channel"] == "sms")
        .cloned()
        .collect()
}

async fn a_rater_with_only_a_phone_is_invited_to_review_by_sms_once(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let phone_only = reviewed_by(&app, "S-1", json!("13800001234"), Value::Null).await;
    // A rater who gave an address is invited by mail, never by SMS; one who gave neither, not at all.
    reviewed_by(&app, "S-2", json!("13900005678"), json!("s2@example.org")).await;
    reviewed_by(&app, "S-3", Value::Null, Value::Null).await;

    let rows = sms_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["case_id"], phone_only.as_str());
    assert_eq!(
        rows[0]["recipients"],
        json!(["138****1234"]),
        "masked for admins"
    );
    assert!(!rows[0]["subject"].as_str().unwrap().contains("13800001234"));

    let (log, url) = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let outlets = outlets(
        dir.path(),
        Sms::gateway(&url)
            .unwrap()
            .signed("沙坝镇政务服务")
            .unwrap(),
    );
    let store = db.store.clone();
    let mut sender = Scheduler::default();
    let now = app.clock.now() + Duration::minutes(1);
    for at in [0, 5] {
        sender
            .tick(
                &store,
                &app.engine,
                &outlets,
                &Schedule::default(),
                now + Duration::minutes(at),
            )
            .await
            .unwrap();
    }
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one SMS a rater and step: {sent:?}");
    let sms = &sent[0];
    assert_eq!(sms["to"], "13800001234");
    assert!(
        sms["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sms:case:{phone_only}:")),
        "{sms}"
    );
    let text = sms["text"].as_str().unwrap();
    assert!(
        text.starts_with("【沙坝镇政务服务】您对“城乡居民基本养老保险参保登记”的差评"),
        "{text}"
    );
    assert!(text.chars().count() <= 300, "{text}");
    // The link in it is the rater's one-time review page.
    let start = text.find(&format!("{}/r/", app.base)).unwrap();
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("请评价"));
    // Once out, the stored copy keeps no token; the row says it was sent.
    let rows = sms_rows(&app).await;
    assert_eq!(rows[0]["status"], "sent");
    let token = link.rsplit('/').next().unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let stored = db
        .store
        .connection()
        .query_all_raw(Statement::from_string(
            db.store.connection().get_database_backend(),
            "SELECT payload FROM outbox WHERE channel = 'sms'".to_owned(),
        ))
        .await
        .unwrap();
    let payload: String = stored[0].try_get("", "payload").unwrap();
    assert!(!payload.contains(token), "{payload}");
    assert!(
        payload.contains("13800001234"),
        "the number stays for a resend: {payload}"
    );
}

async fn without_a_gateway_an_sms_is_written_as_a_file(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    reviewed_by(&app, "F-1", json!("13800001234"), Value::Null).await;
    let dir = tempfile::tempdir().unwrap();
    let sms_dir = dir.path().join("sms");
    let outlets = outlets(dir.path(), Sms::files(&sms_dir).unwrap());
    bihuan_notify::tick(
        &db.store,
        &app.engine,
        &outlets,
        &Schedule::default(),
        app.clock.now() + Duration::minutes(1),
    )
    .await
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(&sms_dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap())
            .unwrap();
    assert_eq!(written["to"], "13800001234");
    assert!(
        written["text"]
            .as_str()
            .unwrap()
            .starts_with(bihuan_notify::DEFAULT_SMS_SIGNATURE),
        "{written}"
    );
}

/// A member of 社保所's staff who gave a mobile number gets the day's count of due and overdue cases
/// by SMS beside the digest mail; one who did not, only the mail.
async fn staff_who_chose_sms_get_the_daily_digest_by_sms(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let add = |sms_phone: Value| {
        json!({"username": "wu", "role": "unit_staff", "unit": "shaba-social",
               "email": "wu@example.org", "sms_phone": sms_phone, "password": "a-long-password-2021"})
    };
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/users",
            Some(add(json!("138-0000-9999x"))),
        )
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sms_phone")),
        "{body}"
    );
    let (status, body) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/users",
            Some(add(json!("+86 138 0000 9999"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sms_phone"], "138****9999");
    // One who chose SMS and has no mailbox gets it by SMS alone; a disabled one, nothing.
    for (name, phone) in [("zhao", "13700007777"), ("qian", "13600006666")] {
        let (status, body) = app
            .call(
                "admin",
                Method::POST,
                "/api/v1/users",
                Some(
                    json!({"username": name, "role": "unit_staff", "unit": "shaba-social",
                            "sms_phone": phone, "password": "a-long-password-2021"}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/users/qian/disable", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Transferred on Thu 5/6: its 5 working days end with Wed 5/12, due soon that morning.
    let id = app.new_case("D-1").await;
    app.to_rectifying(&id).await;
    let (log, url) = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let outlets = outlets(dir.path(), Sms::gateway(&url).unwrap());
    let morning = chrono::DateTime::parse_from_rfc3339("2021-05-12T09:00:00+08:00")
        .unwrap()
        .to_utc();
    let mut sender = Scheduler::default();
    for at in [0, 30] {
        sender
            .tick(
                &db.store,
                &app.engine,
                &outlets,
                &Schedule::default(),
                morning + Duration::minutes(at),
            )
            .await
            .unwrap();
    }
    let mut sent = log.lock().unwrap().clone();
    sent.sort_by_key(|m| m["to"].as_str().unwrap().to_owned());
    assert_eq!(
        sent.iter()
            .map(|m| m["to"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["13700007777", "13800009999"],
        "one a day, to each enabled one who chose it, mailbox or not: {sent:?}"
    );
    for sms in &sent {
        let text = sms["text"].as_str().unwrap();
        assert!(
            text.contains("您有 1 件差评工单即将到期或已超期") && text.contains(&app.base),
            "{text}"
        );
    }
    let mut shown: Vec<Value> = sms_rows(&app)
        .await
        .into_iter()
        .map(|r| r["recipients"].clone())
        .collect();
    shown.sort_by_key(Value::to_string);
    assert_eq!(shown, [json!(["137****7777"]), json!(["138****9999"])]);
}

/// An anonymous rater who left only a phone: the return visit cannot go without a public reply, a
/// reply holding personal data is refused naming what it found (masked), and the one that goes out
/// reaches the rater in the review SMS (clipped), whole on the link's page.
async fn the_public_reply_reaches_an_anonymous_rater_with_the_review_link(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let mut r = rating("P-1", "dissatisfied", "sms");
    r["rater"] = json!({"type": "individual", "real_name": false, "name": null,
                        "phone": "13800001234", "email": null});
    let (status, body) = app.push_rating(&r).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["case_id"].as_str().unwrap().to_owned();
    app.to_rectifying(&id).await;
    let mut rectify = json!({"finding": "true", "measures": "优化告知单", "outcome": "rectified"});
    rectify["evidence"] = app.evidence(&id).await;
    app.step("unit", &id, "rectify", rectify).await;

    let feedback = |reply: Option<&str>| {
        let mut f = json!({"method": "sms", "summary": "已短信告知"});
        if let Some(reply) = reply {
            f["public_reply"] = json!(reply);
        }
        f
    };
    let (status, body) = app.act("unit", &id, "feedback", feedback(None)).await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["details"]["field"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("missing_field"),
            Some("public_reply")
        ),
        "{body}"
    );
    let (status, body) = app
        .act(
            "unit",
            &id,
            "feedback",
            feedback(Some("如有疑问请致电 139-0000-1111")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "personal_data_in_reply");
    assert_eq!(
        body["details"],
        json!({"field": "public_reply", "found": [{"kind": "phone", "masked": "139****1111"}]})
    );
    assert!(!body.to_string().contains("13900001111"), "{body}");
    // The staff member the rater rated is named in the rating; a user's login is a name too.
    for (reply, masked) in [
        ("窗口工作人员李四已作检讨", "李*"),
        ("已由 center 核实", "c***"),
    ] {
        let (status, body) = app
            .act("unit", &id, "feedback", feedback(Some(reply)))
            .await;
        assert_eq!(
            (status, &body["details"]["found"]),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!([{"kind": "name", "masked": masked}])
            ),
            "{body}"
        );
    }

    let reply = "经核实，窗口已优化城乡居民基本养老保险参保登记的一次性告知单，明确所需材料和办理时限，\
                 并对窗口人员开展服务规范培训，今后将持续改进服务。";
    let case = app
        .step("unit", &id, "feedback", feedback(Some(reply)))
        .await;
    assert_eq!(case["state"], "pending_review");

    let (log, url) = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let outlets = outlets(dir.path(), Sms::gateway(&url).unwrap());
    bihuan_notify::tick(
        &db.store,
        &app.engine,
        &outlets,
        &Schedule::default(),
        app.clock.now() + Duration::minutes(1),
    )
    .await
    .unwrap();
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one SMS for the step: {sent:?}");
    let text = sent[0]["text"].as_str().unwrap();
    let brief: String = reply
        .chars()
        .take(bihuan_core::mail::SMS_REPLY_CHARS - 1)
        .collect();
    assert!(text.contains(&format!("答复：{brief}…请评价")), "{text}");
    assert!(!text.contains(reply), "clipped in the SMS: {text}");
    let start = text.find(&format!("{}/r/", app.base)).unwrap();
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(reply), "whole on the page: {html}");
}

/// A gateway that is down: each SMS is tried again with backoff and sent exactly once when the gateway
/// is back (the same idempotency key every time); one that stays down ends as a dead letter after the
/// last attempt, listed for admins with the gateway's answer, the number still masked.
async fn a_refusing_gateway_gets_each_sms_retried_then_given_up(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let first = reviewed_by(&app, "R-1", json!("13800001234"), Value::Null).await;
    let (gateway, url) = refusing_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let outlets = outlets(dir.path(), Sms::gateway(&url).unwrap());
    let schedule = Schedule {
        retry: RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::minutes(1),
            max_delay: Duration::minutes(10),
            lease: Duration::minutes(10),
        },
        ..Schedule::default()
    };
    let mut sender = Scheduler::default();
    let t0 = app.clock.now() + Duration::minutes(1);
    let mut tick = async |at: chrono::DateTime<chrono::Utc>| {
        sender
            .tick(&db.store, &app.engine, &outlets, &schedule, at)
            .await
            .unwrap();
    };

    // Busy twice: one attempt a pass, 1 then 2 minutes apart; the third goes through.
    gateway.refuse.store(2, Ordering::SeqCst);
    for (at, took) in [(0, 0), (1, 0), (3, 1), (10, 1)] {
        tick(t0 + Duration::minutes(at)).await;
        assert_eq!(
            gateway.took.lock().unwrap().len(),
            took,
            "after the pass at +{at} min"
        );
    }
    let refused = gateway.refused.lock().unwrap().clone();
    let took = gateway.took.lock().unwrap().clone();
    assert_eq!(refused.len(), 2);
    let key = took[0]["idempotency_key"].as_str().unwrap();
    assert!(key.starts_with(&format!("sms:case:{first}:")), "{key}");
    assert!(
        refused.iter().all(|m| m["idempotency_key"] == key),
        "one message, tried again under its key: {refused:?}"
    );

    // Down for good: given up after the third attempt, and never tried again.
    let second = reviewed_by(&app, "R-2", json!("13900005678"), Value::Null).await;
    gateway.refuse.store(usize::MAX, Ordering::SeqCst);
    let t1 = t0 + Duration::minutes(30);
    for at in [0, 1, 3, 30] {
        tick(t1 + Duration::minutes(at)).await;
    }
    assert_eq!(gateway.refused.lock().unwrap().len(), 2 + 3);
    assert_eq!(gateway.took.lock().unwrap().len(), 1);
    let rows = sms_rows(&app).await;
    let dead = rows
        .iter()
        .find(|r| r["case_id"] == second.as_str())
        .unwrap();
    assert_eq!(
        (dead["status"].as_str(), dead["attempts"].as_i64()),
        (Some("dead"), Some(3)),
        "{dead}"
    );
    assert!(
        dead["last_error"].as_str().unwrap().contains("503"),
        "{dead}"
    );
    assert_eq!(dead["recipients"], json!(["139****5678"]));
    assert!(!dead.to_string().contains("13900005678"), "{dead}");
}
