//! 数据回传 against a real HTTP receiver (an axum server on a free port that can be told to refuse),
//! on SQLite and PostgreSQL: each step of a 差评's handling is written to the outbox with its action,
//! pushed once with its `Idempotency-Key`, retried with backoff while the platform refuses, given up
//! after the limit and listed for admins, sent again when an admin says so; two senders on one
//! database deliver each push once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use bihuan_notify::{Mailer, Outlets, Schedule, Scheduler, Sms, Upstream};
use bihuan_store::{RetryPolicy, Store};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, spawn_pushing};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    each_step_is_pushed_once_retried_while_refused_and_listed_when_given_up,
    two_senders_on_one_database_deliver_each_push_once,
);

/// What the platform received: every request (refused or not), and how many more to refuse.
#[derive(Debug, Default)]
struct Platform {
    requests: Mutex<Vec<(String, Value, bool)>>,
    refuse: AtomicUsize,
}

impl Platform {
    /// The pushes accepted: (Idempotency-Key, body).
    fn accepted(&self) -> Vec<(String, Value)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(k, b, _)| (k.clone(), b.clone()))
            .collect()
    }

    fn refused(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| !*ok)
            .count()
    }
}

async fn receive(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    body: String,
) -> (AxumStatus, &'static str) {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let refuse = platform
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    platform.requests.lock().unwrap().push((key, body, !refuse));
    if refuse {
        (AxumStatus::SERVICE_UNAVAILABLE, "platform busy")
    } else {
        (AxumStatus::OK, "ok")
    }
}

/// A platform listening on a free port; its push URL.
async fn platform() -> (Arc<Platform>, String) {
    let platform = Arc::new(Platform::default());
    let app = axum::Router::new()
        .route("/push", axum::routing::post(receive))
        .with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (platform, format!("http://{addr}/push"))
}

/// The outlets of a sender pushing to `url` (mail and SMS into files of `dir`), retrying three times.
fn outlets(dir: &std::path::Path, url: &str) -> (Outlets, Schedule) {
    let outlets = Outlets {
        mail: Mailer::files(&dir.join("mail"), "好差评 <noreply@example.org>").unwrap(),
        sms: Sms::files(&dir.join("sms")).unwrap(),
        upstream: Some(Upstream::new(url).unwrap()),
    };
    let schedule = Schedule {
        retry: RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::minutes(1),
            max_delay: Duration::minutes(10),
            lease: Duration::minutes(10),
        },
        ..Schedule::default()
    };
    (outlets, schedule)
}

/// Takes a case from its opening to the rater's satisfied review.
async fn closed_loop(app: &TestApp, source_id: &str) -> String {
    let id = app.new_case(source_id).await;
    app.to_review(&id).await;
    app.step(
        "center",
        &id,
        "review_satisfied",
        json!({"level": "satisfied"}),
    )
    .await;
    id
}

async fn each_step_is_pushed_once_retried_while_refused_and_listed_when_given_up(db: &TestDb) {
    let app = spawn_pushing(db).await;
    let (platform, url) = platform().await;
    let dir = tempfile::tempdir().unwrap();
    let (outlets, schedule) = outlets(dir.path(), &url);
    let store = db.store.clone().pushing_upstream(true);
    let mut sender = Scheduler::default();
    let t0: DateTime<Utc> = app.clock.now() + Duration::minutes(1);
    let id = closed_loop(&app, "U-1").await;

    // The platform is busy twice: one attempt a pass, the backoff between them (1, then 2 minutes).
    platform.refuse.store(2, Ordering::SeqCst);
    for (at, accepted) in [(0, 0), (1, 0), (3, 5), (10, 5)] {
        sender
            .tick(
                &store,
                &app.engine,
                &outlets,
                &schedule,
                t0 + Duration::minutes(at),
            )
            .await
            .unwrap();
        assert_eq!(
            platform.accepted().len(),
            accepted,
            "after the pass at +{at} min"
        );
    }
    assert_eq!(platform.refused(), 2);
    let accepted = platform.accepted();
    let keys: Vec<&str> = accepted.iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<String> = (2..=6).map(|seq| format!("{id}:{seq}")).collect();
    assert_eq!(keys, expected, "each event's push once, in order");
    let steps: Vec<&str> = accepted
        .iter()
        .map(|(_, b)| b["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "accepted",
            "transferred",
            "rectified",
            "replied",
            "reviewed"
        ]
    );
    let rectified = &accepted[2].1;
    assert_eq!(
        (
            rectified["projectNo"].as_str(),
            rectified["source"].as_str(),
            rectified["sourceId"].as_str(),
            rectified["caseId"].as_str(),
            rectified["unit"].as_str(),
            rectified["finding"].as_str(),
            rectified["measures"].as_str(),
            rectified["outcome"].as_str(),
        ),
        (
            Some("500114-2021-U-1"),
            Some("yukuaiban"),
            Some("U-1"),
            Some(id.as_str()),
            Some("shaba-social"),
            Some("partly_true"),
            Some("补充一次性告知单"),
            Some("rectified"),
        )
    );
    assert_eq!(accepted[4].1["reviewLevel"], "satisfied");
    assert!(accepted[0].1["reviewLevel"].is_null() && accepted[0].1["unit"].is_null());

    // A platform that keeps refusing: given up after the third attempt, listed for admins with its
    // last answer, sent again when an admin says so.
    platform.refuse.store(usize::MAX, Ordering::SeqCst);
    let other = app.new_case("U-2").await;
    app.step("center", &other, "accept", json!({})).await;
    let t1 = t0 + Duration::minutes(20);
    for at in [0, 1, 3] {
        sender
            .tick(
                &store,
                &app.engine,
                &outlets,
                &schedule,
                t1 + Duration::minutes(at),
            )
            .await
            .unwrap();
    }
    let (status, dead) = app
        .call("admin", Method::GET, "/api/v1/upstream?status=dead", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    assert_eq!(dead["total"], 1, "{dead}");
    let item = &dead["items"][0];
    assert_eq!(
        (
            item["step"].as_str(),
            item["attempts"].as_i64(),
            item["idempotency_key"].as_str()
        ),
        (
            Some("accepted"),
            Some(3),
            Some(format!("{other}:2").as_str())
        )
    );
    assert!(
        item["last_error"].as_str().unwrap().contains("503"),
        "{item}"
    );
    assert_eq!(item["body"]["projectNo"], "500114-2021-U-2");
    let (status, _) = app.call("sup", Method::GET, "/api/v1/upstream", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
    let (status, body) = app
        .call("admin", Method::GET, "/api/v1/upstream?status=digest", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    platform.refuse.store(0, Ordering::SeqCst);
    let path = format!("/api/v1/upstream/{}/retry", item["id"]);
    let (status, _) = app.call("admin", Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call("admin", Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer dead");
    sender
        .tick(
            &store,
            &app.engine,
            &outlets,
            &schedule,
            t1 + Duration::minutes(30),
        )
        .await
        .unwrap();
    let last = platform.accepted().pop().unwrap();
    assert_eq!(last.0, format!("{other}:2"));
    let (_, sent) = app
        .call("admin", Method::GET, "/api/v1/upstream?status=sent", None)
        .await;
    assert_eq!(sent["total"], 6);
    // Nothing is pushed twice, however many passes come.
    sender
        .tick(
            &store,
            &app.engine,
            &outlets,
            &schedule,
            t1 + Duration::hours(3),
        )
        .await
        .unwrap();
    assert_eq!(platform.accepted().len(), 6);
}

async fn two_senders_on_one_database_deliver_each_push_once(db: &TestDb) {
    let app = spawn_pushing(db).await;
    let (platform, url) = platform().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let id = app.new_case(&format!("P-{n}")).await;
        app.step("center", &id, "accept", json!({})).await;
        ids.push(id);
    }
    let dir = tempfile::tempdir().unwrap();
    let (one, schedule) = outlets(&dir.path().join("one"), &url);
    let (two, _) = outlets(&dir.path().join("two"), &url);
    let first = Store::connect(&db.url)
        .await
        .unwrap()
        .pushing_upstream(true);
    let second = Store::connect(&db.url)
        .await
        .unwrap()
        .pushing_upstream(true);
    let now = app.clock.now() + Duration::minutes(1);
    let (mut a, mut b) = (Scheduler::default(), Scheduler::default());
    let (x, y) = tokio::join!(
        a.tick(&first, &app.engine, &one, &schedule, now),
        b.tick(&second, &app.engine, &two, &schedule, now)
    );
    x.unwrap();
    y.unwrap();
    let mut keys: Vec<String> = platform.accepted().into_iter().map(|(k, _)| k).collect();
    keys.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("{id}:2")).collect();
    expected.sort();
    assert_eq!(keys, expected, "each push once, by one sender or the other");
}
