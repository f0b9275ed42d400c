//! `GET /api/v1/metrics` over a hand-built dataset whose every figure is written out below, on SQLite
//! and PostgreSQL: invalid cases leave the denominators, anonymous ones the 回访率 denominator, default
//! ratings are not active, an open case overdue at the unit lowers 按期整改率 (one overdue at the center
//! does not), a reopened case counts once, grouped by unit each figure goes to the party that owned its
//! step, and scope limits the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_store::Clock;
use bihuan_test_support::TestDb;
use bihuan_tests::api::{MAWANG_REGION, TestApp, rating, spawn_with};
use bihuan_web::WebConfig;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    every_figure_of_a_hand_built_dataset_is_exact,
    bad_metric_queries_are_named,
    the_ledger_and_the_metrics_table_export_as_xlsx_and_csv,
    the_report_command_prints_an_aligned_table_json_or_xlsx,
    charts_are_svg_drawn_on_the_server,
);

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A rating of the dataset: `rated` a local date-time, the rest as named.
fn rated(source_id: &str, level: &str, channel: &str, rated: &str) -> Value {
    let mut r = rating(source_id, level, channel);
    r["rated_at"] = json!(format!("{rated}+08:00"));
    r
}

async fn push(app: &TestApp, r: &Value) -> Option<String> {
    let (status, body) = app.push_rating(r).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["case_id"].as_str().map(str::to_owned)
}

/// Builds the dataset; returns the app.
async fn dataset(db: &TestDb) -> TestApp {
    let app = spawn_with(
        db,
        WebConfig::default(),
        Clock::starting_at(instant("2021-05-06T10:00:00+08:00")),
    )
    .await;
    let day = "2021-05-06T09:00:00";
    // Four ratings without cases: two good ones (one default), a 基本满意, a default 差评.
    push(&app, &rated("R1", "very_satisfied", "mobile", day)).await;
    push(&app, &rated("R2", "satisfied", "default", day)).await;
    push(&app, &rated("R3", "basically_satisfied", "pc", day)).await;
    assert_eq!(
        push(&app, &rated("R4", "dissatisfied", "default", day)).await,
        None
    );
    // June: outside a May period.
    push(
        &app,
        &rated("R5", "satisfied", "mobile", "2021-06-01T09:00:00"),
    )
    .await;

    // C1: the whole loop, rectified the same day, visited, satisfied.
    let c1 = push(&app, &rated("C1", "dissatisfied", "mobile", day))
        .await
        .unwrap();
    app.to_review(&c1).await;
    app.step(
        "center",
        &c1,
        "review_satisfied",
        json!({"level": "satisfied"}),
    )
    .await;
    // C2: appeal upheld — invalid.
    let c2 = push(&app, &rated("C2", "very_dissatisfied", "pc", day))
        .await
        .unwrap();
    app.to_rectifying(&c2).await;
    let appeal = json!({"category": "malicious", "reason": "恶意"});
    app.step(
        "unit",
        &c2,
        "appeal",
        app.cited(&c2, "appeal", appeal).await,
    )
    .await;
    app.step("sup", &c2, "uphold_appeal", json!({"reason": "属实"}))
        .await;
    // C3: anonymous, rectified and answered with a published reply, waiting for review.
    let mut anonymous = rated("C3", "dissatisfied", "mobile", day);
    anonymous["rater"] = json!({"type": "individual", "real_name": false, "name": null, "phone": null, "email": null});
    let c3 = push(&app, &anonymous).await.unwrap();
    app.to_review(&c3).await;
    // C4: at the unit, never rectified; overdue by 5/20.
    let c4 = push(&app, &rated("C4", "dissatisfied", "mobile", day))
        .await
        .unwrap();
    app.to_rectifying(&c4).await;
    // C5: reopened by an unsatisfied review, rectified again, then satisfied: counts once.
    let c5 = push(&app, &rated("C5", "dissatisfied", "mobile", day))
        .await
        .unwrap();
    app.to_review(&c5).await;
    app.step(
        "center",
        &c5,
        "review_unsatisfied",
        json!({"reason": "没解决"}),
    )
    .await;
    let again = json!({"finding": "true", "measures": "再次整改", "outcome": "rectified"});
    app.step(
        "unit",
        &c5,
        "rectify",
        app.cited(&c5, "rectify", again).await,
    )
    .await;
    app.step(
        "unit",
        &c5,
        "feedback",
        json!({"method": "phone", "summary": "再次回访"}),
    )
    .await;
    app.step(
        "center",
        &c5,
        "review_satisfied",
        json!({"level": "basically_satisfied"}),
    )
    .await;
    // M1: the other town's case, left waiting at its center.
    let mut other = rated("M1", "dissatisfied", "mobile", day);
    other["unit_code"] = json!("mawang-center");
    other["region_code"] = json!(MAWANG_REGION);
    push(&app, &other).await.unwrap();
    // The scheduler's pass of 5/20 marks the open cases past their deadline (C3, C4, M1).
    let found = db
        .store
        .find_reminders(
            &app.engine,
            instant("2021-05-20T00:00:00+08:00"),
            instant("2021-05-20T08:30:00+08:00"),
            100,
        )
        .await
        .unwrap();
    assert!(found.found >= 3, "{found:?}");
    app
}

async fn metrics(app: &TestApp, user: &str, query: &str) -> Value {
    let (status, body) = app
        .call(user, Method::GET, &format!("/api/v1/metrics{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// The figures the dataset fixes, in a fixed order.
const FIGURES: [&str; 16] = [
    "ratings",
    "negative",
    "valid_negative",
    "rectified",
    "negative_rate",
    "valid_negative_rate",
    "positive_rate",
    "active_rate",
    "rectification_rate",
    "on_time_rate",
    "return_visit_rate",
    "review_satisfaction_rate",
    "avg_days_to_rectify",
    "avg_days_to_close",
    "open",
    "overdue",
];

/// A row's figures, by name.
fn figures(row: &Value) -> Vec<(&'static str, Value)> {
    FIGURES.into_iter().map(|k| (k, row[k].clone())).collect()
}

/// Expected figures, by name.
fn expect(values: [Value; 16]) -> Vec<(&'static str, Value)> {
    FIGURES.into_iter().zip(values).collect()
}

fn ratio(n: f64, d: f64) -> Value {
    json!(n / d)
}

async fn every_figure_of_a_hand_built_dataset_is_exact(db: &TestDb) {
    let app = dataset(db).await;
    let may = "?from=2021-05-01&to=2021-05-31";

    // 沙坝镇's supervisor, May: 9 ratings (R1–R4, C1–C5); 6 差评 (R4, C1–C5); 2 good (R1, R2);
    // 7 active (all but the default R2, R4). Cases C1–C5: C2 invalid, so 4 valid; rectified C1, C3,
    // C5 (C5 once) = 3 of 4; due = those 3 + the overdue open C4 = 4, on time 3; real-name valid C1,
    // C4, C5 (C3 anonymous), of which C1 and C5 reached the return visit and had it = 2 of 2 (C4, not
    // rectified, is not due for one: it counts against the rectification rate); reviewed C1, C5, both last satisfied; open
    // C3, C4, both overdue; everything rectified and closed on its opening day: 0 working days.
    let body = metrics(&app, "sup", may).await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["group"], "all");
    assert_eq!(
        figures(&rows[0]),
        expect([
            json!(9),
            json!(6),
            json!(4),
            json!(3),
            ratio(6.0, 9.0),
            ratio(4.0, 9.0),
            ratio(2.0, 9.0),
            ratio(7.0, 9.0),
            json!(0.75),
            json!(0.75),
            json!(1.0),
            json!(1.0),
            json!(0.0),
            json!(0.0),
            json!(2),
            json!(2),
        ])
    );
    // Every figure comes with its definition, in Chinese and English.
    let definitions = body["definitions"].as_object().unwrap();
    for key in [
        "rectification_rate",
        "on_time_rate",
        "return_visit_rate",
        "active_rate",
    ] {
        let d = &definitions[key];
        assert!(
            d["label"].is_string() && d["definition"].is_string() && d["definition_en"].is_string(),
            "{key}: {d}"
        );
    }
    assert_eq!(definitions["rectification_rate"]["label"], "差评整改率");
    // The center accepted and transferred C1–C5 the day they opened: its own figure, 5 of 5; nothing
    // was closed as unreachable.
    assert_eq!(rows[0]["center_timely_rate"], json!(1.0));
    assert_eq!(rows[0]["unreachable"], json!(0));
    assert_eq!(definitions["center_timely_rate"]["label"], "受理转办及时率");
    assert_eq!(definitions["unreachable"]["label"], "无法联系办结");
    assert_eq!(definitions["valid_negative_rate"]["label"], "有效差评率");

    // Without a period: R5 (June, satisfied) joins.
    let all_time = metrics(&app, "sup", "").await;
    assert_eq!(
        (
            all_time["rows"][0]["ratings"].as_i64(),
            all_time["rows"][0]["positive_rate"].clone()
        ),
        (Some(10), ratio(3.0, 10.0))
    );

    // The other town's supervisor sees only M1: one open, overdue, unrectified case. Overdue while
    // waiting at its center, it lowers no unit's 按期整改率: no case is judged on time or late yet.
    let other = metrics(&app, "o_sup", may).await;
    assert_eq!(
        figures(&other["rows"][0]),
        expect([
            json!(1),
            json!(1),
            json!(1),
            json!(0),
            json!(1.0),
            json!(1.0),
            json!(0.0),
            json!(1.0),
            json!(0.0),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!(1),
            json!(1),
        ])
    );

    // The admin sees both towns; by unit, each center is a row with its ratings and its own stage,
    // and 社保所, the 承办单位 of C1–C5, a row with their cases.
    let by_unit = metrics(&app, "admin", &format!("{may}&group_by=unit")).await;
    let groups: Vec<(String, String, i64)> = by_unit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["label"].as_str().unwrap().to_owned(),
                r["ratings"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (
                "mawang-center".to_owned(),
                "马旺镇便民服务中心".to_owned(),
                1
            ),
            (
                "shaba-center".to_owned(),
                "沙坝镇便民服务中心".to_owned(),
                9
            ),
            (
                "shaba-social".to_owned(),
                "沙坝镇社会保障服务所".to_owned(),
                0
            ),
        ]
    );
    let row = |code: &str| {
        by_unit["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == code)
            .unwrap()
            .clone()
    };
    // The center: the rating figures of its 9 ratings and its own stage (C1–C5 in time); no case of
    // its own to rectify, M1 aside in 马旺镇.
    let center = row("shaba-center");
    assert_eq!(
        (
            center["negative_rate"].clone(),
            center["valid_negative_rate"].clone(),
            center["center_timely_rate"].clone(),
            center["rectification_rate"].clone(),
            center["on_time_rate"].clone(),
        ),
        (
            ratio(6.0, 9.0),
            ratio(4.0, 9.0),
            json!(1.0),
            Value::Null,
            Value::Null
        )
    );
    // 社保所: the case figures of C1–C5, no rating of its own.
    let social = row("shaba-social");
    assert_eq!(
        (
            social["valid_negative"].clone(),
            social["rectification_rate"].clone(),
            social["on_time_rate"].clone(),
            social["return_visit_rate"].clone(),
            social["negative_rate"].clone(),
            social["center_timely_rate"].clone(),
        ),
        (
            json!(4),
            json!(0.75),
            json!(0.75),
            json!(1.0),
            Value::Null,
            Value::Null
        )
    );
    let all = metrics(&app, "admin", may).await;
    assert_eq!(
        figures(&all["rows"][0])[..11],
        expect([
            json!(10),
            json!(7),
            json!(5),
            json!(3),
            ratio(7.0, 10.0),
            json!(0.5),
            json!(0.2),
            json!(0.8),
            json!(0.6),
            json!(0.75),
            json!(1.0),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ])[..11]
    );

    // By month and by channel.
    let by_month = metrics(&app, "sup", "?group_by=month").await;
    let months: Vec<(&str, i64)> = by_month["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap(), r["ratings"].as_i64().unwrap()))
        .collect();
    assert_eq!(months, [("2021-05", 9), ("2021-06", 1)]);
    let by_channel = metrics(&app, "sup", &format!("{may}&group_by=channel")).await;
    let channels: Vec<(&str, &str, i64)> = by_channel["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap(),
                r["label"].as_str().unwrap(),
                r["ratings"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        channels,
        [
            ("default", "系统默认评价", 2),
            ("mobile", "移动服务端", 5),
            ("pc", "PC端", 2)
        ]
    );

    // The unit filter: 马旺镇's subtree from the admin's view.
    let mawang = metrics(&app, "admin", &format!("{may}&unit=mawang")).await;
    assert_eq!(mawang["rows"][0]["ratings"], 1);

    // The sums kept by each transaction equal a recomputation from the raw rows.
    let before = metrics(&app, "admin", &format!("{may}&group_by=service")).await;
    db.store.rebuild_metrics(&app.engine).await.unwrap();
    assert_eq!(
        metrics(&app, "admin", &format!("{may}&group_by=service")).await,
        before
    );
}

async fn bad_metric_queries_are_named(db: &TestDb) {
    let app = dataset(db).await;
    for (query, field) in [
        ("?from=2021-13-01", "from"),
        ("?to=yesterday", "to"),
        ("?from=2021-06-01&to=2021-05-01", "to"),
        ("?group_by=week", "group_by"),
        ("?unit=nowhere", "unit"),
    ] {
        let (status, body) = app
            .call("sup", Method::GET, &format!("/api/v1/metrics{query}"), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["details"]["field"], field, "{query}: {body}");
    }
    let (status, _) = app.raw(Method::GET, "/api/v1/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn download(app: &TestApp, user: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let token = app.token(user).await;
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.bytes().await.unwrap().to_vec())
}

/// The rows of a ledger by 办件编号, each as header → value.
fn by_project(
    rows: Vec<Vec<String>>,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut rows = rows.into_iter();
    let header = rows.next().unwrap();
    assert_eq!(header[0], "办件编号");
    assert_eq!(header.len(), 20, "{header:?}");
    rows.map(|r| {
        let row: std::collections::BTreeMap<String, String> =
            header.iter().cloned().zip(r).collect();
        (row["办件编号"].clone(), row)
    })
    .collect()
}

async fn the_ledger_and_the_metrics_table_export_as_xlsx_and_csv(db: &TestDb) {
    use calamine::{DataType, Reader};
    let app = dataset(db).await;
    let (status, content_type, bytes) = download(&app, "sup", "/api/v1/export/cases.xlsx").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/vnd.openxmlformats"),
        "{content_type}"
    );
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range("差评整改台账").unwrap();
    // Times are date cells (they sort and filter as dates in Excel), shown to the minute.
    let time_columns = [4, 7, 8, 9, 13, 17];
    let rated = &range.rows().nth(1).unwrap()[4];
    assert!(
        matches!(rated, calamine::Data::DateTime(_)),
        "评价时间 is a date cell: {rated:?}"
    );
    let rows: Vec<Vec<String>> = range
        .rows()
        .enumerate()
        .map(|(n, r)| {
            (0..r.len())
                .zip(r)
                .map(|(col, c)| match c.as_datetime() {
                    Some(at) if n > 0 && time_columns.contains(&col) => {
                        at.format("%Y-%m-%d %H:%M").to_string()
                    }
                    _ => c.to_string(),
                })
                .collect()
        })
        .collect();
    let ledger = by_project(rows);
    let projects: Vec<&str> = ledger.keys().map(String::as_str).collect();
    assert_eq!(
        projects,
        [
            "500114-2021-C1",
            "500114-2021-C2",
            "500114-2021-C3",
            "500114-2021-C4",
            "500114-2021-C5"
        ],
        "every case of 沙坝镇, none of 马旺镇"
    );
    let c1 = &ledger["500114-2021-C1"];
    for (column, value) in [
        ("事项名称", "城乡居民基本养老保险参保登记"),
        ("评价等级", "不满意"),
        ("评价渠道", "移动服务端"),
        ("评价时间", "2021-05-06 09:00"),
        ("承办单位", "沙坝镇社会保障服务所"),
        ("当前状态", "已办结"),
        ("整改措施", "补充一次性告知单"),
        ("限期整改", ""),
        ("回访方式", "电话"),
        ("评议结果", "满意"),
        ("是否超期", "否"),
        ("评价单位", "沙坝镇便民服务中心"),
    ] {
        assert_eq!(c1[column], value, "C1 {column}");
    }
    assert!(
        c1["佐证材料"].starts_with("整改后现场照片.png（SHA-256 "),
        "the rectification's evidence by name and hash: {c1:?}"
    );
    assert!(c1["受理时间"].starts_with("2021-05-06 "), "{c1:?}");
    assert!(!c1["办结时间"].is_empty());
    assert_eq!(ledger["500114-2021-C2"]["当前状态"], "无效差评");
    assert_eq!(ledger["500114-2021-C4"]["是否超期"], "是");
    assert_eq!(ledger["500114-2021-C5"]["评议结果"], "基本满意");

    // CSV: the same rows, with the byte-order mark Excel needs for Chinese.
    let (status, content_type, bytes) = download(&app, "sup", "/api/v1/export/cases.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(bytes.starts_with("\u{feff}".as_bytes()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[3..]);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(by_project(rows), ledger);

    // Scope and filters: the other town sees its one case; a period without ratings, none.
    let (_, _, bytes) = download(&app, "o_sup", "/api/v1/export/cases.csv").await;
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("500114-2021-M1"));
    let (_, _, bytes) = download(&app, "admin", "/api/v1/export/cases.csv?from=2021-06-01").await;
    assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 1);
    let (status, _, _) = download(&app, "admin", "/api/v1/export/cases.csv?unit=nowhere").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The metrics table: rates as percentages, one row per group.
    let (status, _, bytes) = download(
        &app,
        "sup",
        "/api/v1/export/metrics.xlsx?from=2021-05-01&to=2021-05-31&group_by=unit",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range("统计报表").unwrap();
    let rows: Vec<Vec<calamine::Data>> = range.rows().map(<[calamine::Data]>::to_vec).collect();
    assert_eq!(rows.len(), 3, "the center and 社保所");
    assert_eq!(rows[0][0].to_string(), "分组");
    assert_eq!(rows[0][6].to_string(), "有效差评率");
    assert_eq!(rows[0][9].to_string(), "差评整改率");
    assert_eq!(rows[1][0].to_string(), "沙坝镇便民服务中心");
    assert_eq!(rows[1][1], calamine::Data::Float(9.0));
    assert_eq!(rows[2][0].to_string(), "沙坝镇社会保障服务所");
    assert_eq!(rows[2][9], calamine::Data::Float(0.75));
    let (_, _, bytes) = download(
        &app,
        "sup",
        "/api/v1/export/metrics.csv?from=2021-05-01&to=2021-05-31",
    )
    .await;
    let text = String::from_utf8(bytes).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.starts_with(
            "all,9,6,4,3,66.7%,44.4%,22.2%,77.8%,75.0%,75.0%,100.0%,100.0%,0.0,0.0,2,2,0,100.0%"
        ),
        "{line}"
    );
}

async fn the_report_command_prints_an_aligned_table_json_or_xlsx(db: &TestDb) {
    use calamine::Reader;
    let _app = dataset(db).await;
    let dir = tempfile::tempdir().unwrap();
    let report = |extra: &[&str]| {
        let out = bihuan_tests::bihuan(dir.path())
            .args([
                "report",
                "--from",
                "2021-05-01",
                "--to",
                "2021-05-31",
                "--db",
                &db.url,
            ])
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = bihuan_tests::text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, table, stderr) = report(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("2021-05-01 至 2021-05-31"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("沙坝镇便民服务中心")),
        "{table}"
    );
    let social = lines
        .iter()
        .find(|l| l.starts_with("沙坝镇社会保障服务所"))
        .unwrap();
    assert!(social.contains("75.0%"), "{table}");
    let total = lines.last().unwrap();
    assert!(total.starts_with("合计"), "{table}");
    // The figures end at the same display column on every line.
    use unicode_width::UnicodeWidthStr;
    let widths: Vec<usize> = lines[1..]
        .iter()
        .filter(|l| !l.starts_with('-'))
        .map(|l| l.width())
        .collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");

    let (code, json, stderr) = report(&["--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let value: Value = serde_json::from_str(&json).unwrap();
    let rows = value["rows"].as_array().unwrap();
    assert_eq!(rows.last().unwrap()["label"], "合计");
    assert_eq!(rows.last().unwrap()["ratings"], 10);
    assert_eq!(value["definitions"]["return_visit_rate"]["label"], "回访率");

    let path = dir.path().join("报表.xlsx");
    let (code, _, stderr) = report(&["--format", "xlsx", "--out", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
    let range = book.worksheet_range("统计报表").unwrap();
    assert_eq!(
        range.rows().count(),
        5,
        "header, two centers, 社保所, total"
    );

    for (args, expected) in [
        (&["--format", "pdf"][..], "--format pdf"),
        (&["--format", "xlsx"][..], "needs --out"),
        (&["--unit", "nowhere"][..], "--unit nowhere"),
    ] {
        let (code, _, stderr) = report(args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

async fn charts_are_svg_drawn_on_the_server(db: &TestDb) {
    let app = dataset(db).await;
    let (status, content_type, bytes) = download(&app, "sup", "/api/v1/charts/trend.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("image/svg+xml"), "{content_type}");
    let svg = String::from_utf8(bytes).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    for expected in [
        "差评整改率",
        "回访率",
        "差评率",
        "2021-05",
        "2021-06",
        "<circle",
        "<polyline",
    ] {
        assert!(svg.contains(expected), "{expected} in the trend");
    }
    assert!(!svg.contains("<script"), "no script in a chart");

    let (status, _, bytes) = download(
        &app,
        "admin",
        "/api/v1/charts/units.svg?from=2021-05-01&to=2021-05-31",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let svg = String::from_utf8(bytes).unwrap();
    for expected in ["沙坝镇便民服务中心", "马旺镇便民服务中心", "<rect"] {
        assert!(svg.contains(expected), "{expected} in the bars");
    }
    // Scope: the other town's supervisor does not see 沙坝镇's bar.
    let (_, _, bytes) = download(&app, "o_sup", "/api/v1/charts/units.svg").await;
    assert!(!String::from_utf8(bytes).unwrap().contains("沙坝镇"));

    let (status, _, _) = download(&app, "sup", "/api/v1/charts/pie.svg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = download(&app, "sup", "/api/v1/charts/trend.svg?from=May").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
