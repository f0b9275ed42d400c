//! 全量归集 over HTTP, on SQLite and PostgreSQL: the batch contract and the rating list.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_store::entity::{case, outbox, rating as rating_row};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{MAWANG_REGION, TestApp, rating, spawn};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    a_batch_keeps_valid_rows_names_bad_ones_and_counts_duplicates,
    racing_batches_store_each_rating_once,
    a_batch_over_ten_thousand_is_refused_whole,
    the_rating_list_filters_pages_scopes_and_masks,
    ratings_of_unregistered_units_are_kept_and_listed_for_admins,
);

async fn post_batch(app: &TestApp, ratings: &[Value]) -> (StatusCode, Value) {
    app.raw(
        Method::POST,
        "/api/v1/ratings/batch",
        Some(&app.channel_token),
        Some(&json!({ "ratings": ratings })),
    )
    .await
}

async fn count<E>(db: &TestDb) -> u64
where
    E: EntityTrait,
    E::Model: Sync,
{
    E::find().count(db.store.connection()).await.unwrap()
}

async fn a_batch_keeps_valid_rows_names_bad_ones_and_counts_duplicates(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let (status, _) = app.push_rating(&rating("B-0", "dissatisfied", "pc")).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut bad = rating("B-4", "dissatisfied", "pc");
    bad["level"] = json!(4);
    let mut worse = rating("B-5", "satisfied", "pc");
    worse["rated_at"] = json!("yesterday");
    worse["rater"] = json!({"phone": "call me"});
    let batch = vec![
        rating("B-1", "very_dissatisfied", "mobile"),
        rating("B-2", "不满意", "二维码"),
        rating("B-3", "satisfied", "hall_pad"),
        bad,
        rating("B-1", "very_dissatisfied", "mobile"),
        rating("B-0", "dissatisfied", "pc"),
        worse,
        rating("B-6", "dissatisfied", "default"),
    ];
    let (status, body) = post_batch(&app, &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["inserted"].as_u64(), body["duplicates"].as_u64()),
        (Some(4), Some(2)),
        "{body}"
    );
    assert_eq!(
        body["cases_opened"].as_u64(),
        Some(2),
        "B-1 and B-2; B-6 is a system default"
    );
    let errors = body["errors"].as_array().unwrap();
    let named: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named,
        [(3, "level_code_set"), (6, "rated_at"), (6, "rater.phone")],
        "{body}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e["error"] == "invalid_rating" && e["message"].is_string())
    );
    assert_eq!(count::<rating_row::Entity>(db).await, 5);
    assert_eq!(count::<case::Entity>(db).await, 3);
    assert!(db.store.verify_chain().await.unwrap().ok);

    // The same batch again stores nothing.
    let (_, again) = post_batch(&app, &batch).await;
    assert_eq!(
        (again["inserted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(6))
    );
    // A case opened by a batch runs the loop like any other.
    let (_, list) = app
        .call("center", Method::GET, "/api/v1/cases?state=received", None)
        .await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    app.step("center", &id, "accept", json!({})).await;
}

async fn racing_batches_store_each_rating_once(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let make = |range: std::ops::Range<usize>| -> Vec<Value> {
        range
            .map(|i| {
                rating(
                    &format!("RACE-{i:05}"),
                    if i % 12 == 0 {
                        "dissatisfied"
                    } else {
                        "satisfied"
                    },
                    "mobile",
                )
            })
            .collect()
    };
    let (a, b) = (make(0..1200), make(600..1800));
    let ((sa, ba), (sb, bb)) = tokio::join!(post_batch(&app, &a), post_batch(&app, &b));
    assert_eq!((sa, sb), (StatusCode::OK, StatusCode::OK), "{ba} {bb}");
    let inserted = ba["inserted"].as_u64().unwrap() + bb["inserted"].as_u64().unwrap();
    let duplicates = ba["duplicates"].as_u64().unwrap() + bb["duplicates"].as_u64().unwrap();
    assert_eq!((inserted, duplicates), (1800, 600));
    assert_eq!(count::<rating_row::Entity>(db).await, 1800);
    assert_eq!(
        count::<case::Entity>(db).await,
        150,
        "one case per negative rating, never two"
    );
    assert!(db.store.verify_chain().await.unwrap().ok);
}

async fn a_batch_over_ten_thousand_is_refused_whole(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let too_many = vec![json!({}); 10_001];
    let (status, body) = post_batch(&app, &too_many).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ratings"))
    );
    assert_eq!(count::<rating_row::Entity>(db).await, 0);
    let token = app.token("admin").await;
    let (status, _) = app
        .raw(
            Method::POST,
            "/api/v1/ratings/batch",
            Some(&token),
            Some(&json!({"ratings": []})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a user token is not a channel token"
    );
}

async fn the_rating_list_filters_pages_scopes_and_masks(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let mut rows = Vec::new();
    for i in 0..6 {
        let mut r = rating(
            &format!("LR-{i}"),
            if i < 2 {
                "dissatisfied"
            } else {
                "very_satisfied"
            },
            if i % 2 == 0 { "pc" } else { "sms" },
        );
        r["rated_at"] = json!(format!("2021-05-0{}T10:00:00+08:00", i + 1));
        rows.push(r);
    }
    let mut elsewhere = rating("LR-M", "satisfied", "pc");
    elsewhere["unit_code"] = json!("mawang-center");
    elsewhere["region_code"] = json!(MAWANG_REGION);
    rows.push(elsewhere);
    let (status, body) = post_batch(&app, &rows).await;
    assert_eq!(
        (status, body["inserted"].as_u64()),
        (StatusCode::OK, Some(7)),
        "{body}"
    );
    let total = |user: &'static str, query: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(user, Method::GET, &format!("/api/v1/ratings{query}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body["total"].as_u64().unwrap()
        }
    };
    assert_eq!(total("admin", "").await, 7);
    assert_eq!(
        total("center", "").await,
        6,
        "the other town's rating is out of scope"
    );
    assert_eq!(total("o_center", "").await, 1);
    assert_eq!(total("center", "?level=dissatisfied").await, 2);
    assert_eq!(total("center", "?level=非常满意").await, 4);
    assert_eq!(total("center", "?channel=短信").await, 3);
    assert_eq!(total("center", "?from=2021-05-03&to=2021-05-04").await, 2);
    assert_eq!(total("admin", "?unit=mawang").await, 1);
    let (_, page) = app
        .call(
            "center",
            Method::GET,
            "/api/v1/ratings?per_page=4&page=2",
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["items"][0]["rated_at"], "2021-05-02T02:00:00Z",
        "newest first"
    );
    let (_, viewer) = app
        .call("viewer", Method::GET, "/api/v1/ratings?per_page=1", None)
        .await;
    assert_eq!(viewer["items"][0]["rater"]["phone"], "138****1234");
    let (_, center) = app
        .call("center", Method::GET, "/api/v1/ratings?per_page=1", None)
        .await;
    assert_eq!(center["items"][0]["rater"]["phone"], "13800001234");
    let (status, body) = app
        .call("center", Method::GET, "/api/v1/ratings?level=3", None)
        .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("level"))
    );
}

async fn ratings_of_unregistered_units_are_kept_and_listed_for_admins(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let mut rows = Vec::new();
    for (i, level) in ["dissatisfied", "satisfied", "very_dissatisfied"]
        .iter()
        .enumerate()
    {
        let mut r = rating(&format!("UN-{i}"), level, "pc");
        r["unit_code"] = json!("shaba-police");
        rows.push(r);
    }
    let mut other = rating("UN-8", "satisfied", "pc");
    other["unit_code"] = json!("shaba-tax");
    rows.push(other);
    let mut elsewhere = rating("UN-9", "dissatisfied", "pc");
    elsewhere["unit_code"] = json!("mawang-police");
    elsewhere["region_code"] = json!(MAWANG_REGION);
    rows.push(elsewhere);
    let (_, body) = post_batch(&app, &rows).await;
    assert_eq!(
        body["inserted"].as_u64(),
        Some(5),
        "nothing is refused for an unknown unit: {body}"
    );
    assert_eq!(body["cases_opened"].as_u64(), Some(3));
    let (status, list) = app
        .call("admin", Method::GET, "/api/v1/units/unmapped", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["items"],
        json!([
            {"unit_code": "shaba-police", "ratings": 3, "negative": 2},
            {"unit_code": "mawang-police", "ratings": 1, "negative": 1},
            {"unit_code": "shaba-tax", "ratings": 1, "negative": 0},
        ])
    );
    let (status, _) = app
        .call("center", Method::GET, "/api/v1/units/unmapped", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The negative ones wait at the center of their region: its staff and the supervisors above see
    // them and move them on; the other town, and unit staff, do not.
    let ids_of = |body: &Value, unit: &str| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["origin_unit"] == unit)
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, seen) = app.call("center", Method::GET, "/api/v1/cases", None).await;
    let police = ids_of(&seen, "shaba-police");
    assert_eq!(police.len(), 2, "{seen}");
    assert!(ids_of(&seen, "mawang-police").is_empty());
    let (_, seen) = app.call("sup", Method::GET, "/api/v1/cases", None).await;
    assert_eq!(ids_of(&seen, "shaba-police").len(), 2);
    let (_, seen) = app
        .call("o_center", Method::GET, "/api/v1/cases", None)
        .await;
    assert_eq!(ids_of(&seen, "mawang-police").len(), 1);
    for user in ["o_center", "o_sup", "unit"] {
        let (status, _) = app
            .call(
                user,
                Method::GET,
                &format!("/api/v1/cases/{}", police[0]),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{user}");
    }
    let (_, ratings) = app
        .call("center", Method::GET, "/api/v1/ratings?per_page=100", None)
        .await;
    let units: Vec<&str> = ratings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unit_code"].as_str().unwrap())
        .collect();
    assert!(units.contains(&"shaba-police") && !units.contains(&"mawang-police"));
    app.step("center", &police[0], "accept", json!({})).await;
    app.step(
        "center",
        &police[0],
        "transfer",
        json!({"unit": "shaba-social"}),
    )
    .await;
    app.step(
        "unit",
        &police[0],
        "return",
        json!({"reason": "不属于本所职责"}),
    )
    .await;
    // The return is announced to the center the case waits at.
    let returned = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("case_returned"))
        .all(db.store.connection())
        .await
        .unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].recipients, json!(["center@example.org"]));

    // Mapping the code onto a registered unit: admins only, onto a unit that exists, once.
    let map = |code: &str, unit: &str| json!({"code": code, "unit": unit});
    let (status, _) = app
        .call(
            "sup",
            Method::POST,
            "/api/v1/units/aliases",
            Some(map("shaba-police", "shaba-social")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (map("shaba-police", "nowhere"), "unit"),
        (map("shaba-social", "shaba-civil"), "code"),
        (map("  ", "shaba-civil"), "code"),
    ] {
        let (status, answer) = app
            .call("admin", Method::POST, "/api/v1/units/aliases", Some(body))
            .await;
        assert_eq!(
            (status, answer["details"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{answer}"
        );
    }
    let (status, mapped) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/units/aliases",
            Some(map(" shaba-police ", "shaba-social")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mapped}");
    assert_eq!(
        (mapped["code"].as_str(), mapped["unit"].as_str()),
        (Some("shaba-police"), Some("shaba-social"))
    );
    let (status, _) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/units/aliases",
            Some(map("shaba-police", "shaba-civil")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, aliases) = app
        .call("admin", Method::GET, "/api/v1/units/aliases", None)
        .await;
    assert_eq!(aliases["items"].as_array().unwrap().len(), 1);
    assert_eq!(aliases["items"][0]["mapped_by"], "admin");
    let (_, by_unit) = app
        .call(
            "admin",
            Method::GET,
            "/api/v1/ratings?unit=shaba-social",
            None,
        )
        .await;
    assert_eq!(by_unit["total"].as_u64(), Some(3), "{by_unit}");

    // Registering the other code takes it off the list too.
    let (status, _) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/units",
            Some(json!({"code": "shaba-tax", "name": "沙坝税务所", "parent": "shaba"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = app
        .call("admin", Method::GET, "/api/v1/units/unmapped", None)
        .await;
    assert_eq!(
        list["items"],
        json!([{"unit_code": "mawang-police", "ratings": 1, "negative": 1}])
    );
    // A region code on a unit must look like one.
    let (status, answer) = app
        .call(
            "admin",
            Method::POST,
            "/api/v1/units",
            Some(json!({"code": "x-center", "name": "某中心", "region_code": "50A1"})),
        )
        .await;
    assert_eq!(
        (status, answer["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("region_code")),
        "{answer}"
    );
}
