//! 任务分解 end to end, on SQLite and PostgreSQL: the seed's table imported by the binary and by the
//! API (CSV in UTF-8 and GB18030, xlsx with merged cells, JSON), bad rows named, the work-item flow
//! allowed and refused by role, unit and state, a missing monthly report becoming overdue with the
//! real `bihuan tick` and mailed through a real SMTP server, targets with live and reported values,
//! and the plan's workbook.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::collections::BTreeMap;

use bihuan_core::Role;
use bihuan_store::{Clock, NewUser};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{PASSWORD, TestApp, spawn_with};
use bihuan_tests::pages::Browser;
use bihuan_tests::smtp::SmtpServer;
use bihuan_web::WebConfig;
use chrono::DateTime;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    the_seed_table_imports_with_its_key_tasks_units_and_deadlines,
    tables_come_as_gb18030_csv_xlsx_with_merged_cells_or_json_and_bad_rows_are_named,
    the_work_item_flow_is_allowed_and_refused_by_role_unit_and_state,
    a_missing_monthly_report_is_overdue_mailed_to_the_lead_unit_and_escalated,
    a_target_bound_to_the_rectification_rate_shows_the_live_value,
    the_plan_pages_import_show_the_board_and_take_the_items_actions,
    a_work_item_whose_stored_due_is_corrupt_is_refused_not_taken_for_ongoing,
);

const SEED: &str = "workflows/plans/shaba-2021.csv";

/// The app, its clock at 2021-05-06 10:00 Beijing time (a Thursday).
async fn app(db: &TestDb) -> TestApp {
    let start = DateTime::parse_from_rfc3339("2021-05-06T10:00:00+08:00")
        .unwrap()
        .to_utc();
    spawn_with(db, WebConfig::default(), Clock::starting_at(start)).await
}

/// Uploads a file's bytes to `POST /api/v1/plans?QUERY` as `user`.
async fn upload(app: &TestApp, user: &str, query: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let token = app.token(user).await;
    let resp = app
        .client
        .post(format!("{}/api/v1/plans?{query}", app.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, user: &str, path: &str) -> Value {
    let (status, body) = app.call(user, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{user} GET {path}: {body}");
    body
}

/// Key tasks with their item counts, in order.
fn key_task_counts(plan: &Value) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for item in plan["items"].as_array().unwrap() {
        let key = item["key_task"].as_str().unwrap().to_owned();
        match counts.last_mut() {
            Some((last, n)) if *last == key => *n += 1,
            _ => counts.push((key, 1)),
        }
    }
    counts
}

fn names(units: &Value) -> Vec<&str> {
    units
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect()
}

/// The seed's attachment has 12 key tasks (numbered （一） to （十三）, with no （四）) and 33 work
/// items: 10 持续推进, 3 按时序推进 and 20 with a date. The binary imports it; the API shows it.
async fn the_seed_table_imports_with_its_key_tasks_units_and_deadlines(db: &TestDb) {
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let import = |extra: &[&str]| {
        let mut cmd = bihuan_tests::bihuan(dir.path());
        cmd.args(["import", "plan"])
            .arg(bihuan_tests::root().join(SEED))
            .args(["--db", &db.url, "--parent", "shaba"])
            .args(extra)
            .env("BIHUAN_FAKE_NOW", "2021-05-06T10:00:00+08:00");
        cmd.output().unwrap()
    };
    let out = import(&["--name", "2021年政务服务工作任务分解"]);
    let (stdout, stderr) = bihuan_tests::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("12 项重点任务，33 项具体工作"), "{stdout}");
    // Every unit the organization lacks is created under the parent and listed.
    for unit in [
        "区政府职转办",
        "区司法局",
        "区行政服务中心",
        "黔江区沙坝镇人民政府",
    ] {
        assert!(stdout.contains(unit), "{unit} in {stdout}");
    }

    let plans = get(&app, "admin", "/api/v1/plans").await;
    assert_eq!(plans["total"], 1, "{plans}");
    let listed = &plans["items"][0];
    assert_eq!(
        (
            listed["name"].as_str(),
            listed["year"].as_i64(),
            listed["items"].as_u64()
        ),
        (Some("2021年政务服务工作任务分解"), Some(2021), Some(33))
    );
    let plan = get(
        &app,
        "admin",
        &format!("/api/v1/plans/{}", listed["id"].as_str().unwrap()),
    )
    .await;
    let items = plan["items"].as_array().unwrap();
    assert_eq!(items.len(), 33);
    let counts: Vec<usize> = key_task_counts(&plan).into_iter().map(|(_, n)| n).collect();
    assert_eq!(counts, [5, 4, 7, 1, 2, 2, 5, 1, 1, 2, 2, 1]);
    assert_eq!(key_task_counts(&plan)[0].0, "（一）深化行政审批制度改革");
    assert_eq!(
        key_task_counts(&plan)[11].0,
        "（十三）积极探索政务服务创新举措"
    );
    let kinds = items.iter().fold(BTreeMap::new(), |mut m, i| {
        *m.entry(i["deadline_kind"].as_str().unwrap()).or_insert(0) += 1;
        m
    });
    assert_eq!(
        kinds,
        BTreeMap::from([("date", 20), ("ongoing", 10), ("scheduled", 3)])
    );
    assert!(
        items
            .iter()
            .all(|i| i["state"] == "not_started" && i["version"] == 1)
    );

    // The first item: two lead units, one co-unit (the town), ongoing.
    let first = &items[0];
    assert_eq!(names(&first["lead_units"]), ["区政府职转办", "区司法局"]);
    assert_eq!(names(&first["co_units"]), ["黔江区沙坝镇人民政府"]);
    assert_eq!(first["deadline_text"], "持续推进");
    assert!(first["deadline"].is_null());
    // A dated item: its date, and what it owes by when.
    let dated = items.iter().find(|i| i["deadline_kind"] == "date").unwrap();
    assert!(
        dated["deadline"].as_str().unwrap().starts_with("2021-"),
        "{dated}"
    );
    assert_eq!(dated["owes"], "completion");
    // The 好差评 item: three lead units, and its two targets read out of its text, bound to the rates.
    let rating_item = items
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains("差评整改率"))
        .unwrap();
    assert_eq!(rating_item["lead_units"].as_array().unwrap().len(), 3);
    let targets: Vec<(&str, &str, Option<&str>)> = rating_item["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["sign"].as_str().unwrap(),
                t["metric"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("差评整改率", "=", Some("rectification_rate")),
            ("回访率", "=", Some("return_visit_rate"))
        ]
    );
    let online = items
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains("全程网办”占比"))
        .unwrap();
    assert_eq!(
        online["targets"][0]["text"],
        "行政许可事项“全程网办”占比 ≥ 80%"
    );

    // The same name and year again: refused, nothing written.
    let out = import(&["--name", "2021年政务服务工作任务分解"]);
    assert!(!out.status.success());
    assert!(bihuan_tests::text(&out).1.contains("已存在"));
    assert_eq!(get(&app, "admin", "/api/v1/plans").await["total"], 1);

    // Scope: the other town's supervisor sees nothing of it; the town's sees the items it co-handles
    // only when the town is one of its units (here the plan's town is a new unit under 沙坝镇).
    let other = get(&app, "o_sup", "/api/v1/plans").await;
    assert_eq!(other["total"], 0, "{other}");
    let (status, _) = app
        .call(
            "o_sup",
            Method::GET,
            &format!("/api/v1/plans/{}", listed["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mine = get(&app, "sup", "/api/v1/plans").await;
    assert_eq!(mine["items"][0]["items"], 33, "{mine}");
}

async fn tables_come_as_gb18030_csv_xlsx_with_merged_cells_or_json_and_bad_rows_are_named(
    db: &TestDb,
) {
    let app = app(db).await;
    let seed = std::fs::read_to_string(bihuan_tests::root().join(SEED)).unwrap();

    // GB18030, as Excel saves CSV on Chinese Windows; name and year from the file's name.
    let (gbk, _, _) = encoding_rs::GB18030.encode(&seed);
    let (status, body) = upload(
        &app,
        "admin",
        "file=shaba-2021.csv&parent=shaba",
        gbk.into_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["plan"]["name"], "shaba-2021");
    assert_eq!(body["plan"]["year"], 2021);
    assert_eq!(body["summary"]["items"], 33);
    assert_eq!(body["summary"]["key_tasks"], 12);
    assert_eq!(
        body["plan"]["items"][6]["key_task"],
        "（二）持续优化网上政务服务效能"
    );
    let created = body["summary"]["created_units"].as_array().unwrap();
    assert!(created.iter().all(|u| u["parent"] == "shaba"), "{body}");
    // Importing again under another name creates no unit twice.
    let (status, again) = upload(
        &app,
        "admin",
        "file=shaba-2021.csv&name=again",
        seed.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["summary"]["created_units"], json!([]));

    // xlsx with a title row and the key-task cells merged over their items.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let plain = rust_xlsxwriter::Format::new();
    sheet
        .merge_range(0, 0, 0, 4, "附件：2022年工作任务分解", &plain)
        .unwrap();
    for (c, h) in ["重点任务", "具体工作", "牵头单位", "配合单位", "完成时限"]
        .iter()
        .enumerate()
    {
        sheet.write_string(1, c as u16, *h).unwrap();
    }
    sheet
        .merge_range(2, 0, 4, 0, "（一）推进好差评", &plain)
        .unwrap();
    let rows = [
        [
            "差评整改率、回访率达到100%。",
            "沙坝镇便民服务中心",
            "沙坝镇社会保障服务所",
            "持续推进",
        ],
        [
            "主动评价率达到90%以上。",
            "沙坝镇便民服务中心",
            "",
            "2022年6月30日",
        ],
        [
            "完善制度。",
            "沙坝镇民政办，沙坝镇社会保障服务所",
            "",
            "2022/12/31",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, text) in row.iter().enumerate() {
            sheet
                .write_string(2 + r as u32, 1 + c as u16, *text)
                .unwrap();
        }
    }
    sheet.write_string(5, 0, "（二）其他").unwrap();
    sheet.write_string(5, 1, "其他工作。").unwrap();
    sheet.write_string(5, 2, "新设单位").unwrap();
    sheet.write_string(5, 4, "按时序推进").unwrap();
    let xlsx = book.save_to_buffer().unwrap();
    let (status, body) = upload(&app, "sup", "file=%E8%AE%A1%E5%88%92-2022.xlsx", xlsx).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["plan"]["name"], "计划-2022");
    let items = body["plan"]["items"].as_array().unwrap();
    let keys: Vec<&str> = items
        .iter()
        .map(|i| i["key_task"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "（一）推进好差评",
            "（一）推进好差评",
            "（一）推进好差评",
            "（二）其他"
        ]
    );
    assert_eq!(
        items[0]["lead_units"][0]["code"], "shaba-center",
        "known units by name"
    );
    assert_eq!(
        names(&items[2]["lead_units"]),
        ["沙坝镇民政办", "沙坝镇社会保障服务所"]
    );
    assert_eq!(items[2]["deadline"], "2022-12-31");
    assert_eq!(items[3]["deadline_kind"], "scheduled");
    assert_eq!(items[1]["targets"][0]["metric"], "active_rate");
    // A supervisor's new units go under their own unit.
    assert_eq!(
        body["summary"]["created_units"],
        json!([{"code": body["summary"]["created_units"][0]["code"], "name": "新设单位", "parent": "shaba"}])
    );

    // Bad cells, each named by its row; nothing is written.
    let bad = "重点任务,具体工作,牵头单位,配合单位,完成时限\n\
               （一）甲,一,沙坝镇民政办,,年底前\n\
               ,二,,,2021年6月30日\n\
               ,三,沙坝镇民政办,,2021年2月30日\n";
    let before = get(&app, "admin", "/api/v1/plans").await["total"].clone();
    let (status, body) = upload(&app, "admin", "file=bad-2021.csv", bad.as_bytes().to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid_plan");
    let errors: Vec<(i64, &str)> = body["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["column"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(2, "完成时限"), (3, "牵头单位"), (4, "完成时限")]);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("第 2 行“完成时限”"),
        "{body}"
    );
    // A missing column, a file without a year, not a workbook, an empty body.
    let (status, body) = upload(
        &app,
        "admin",
        "file=x-2021.csv",
        "重点任务,具体工作\n".into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].as_str().unwrap().contains("牵头单位"),
        "{body}"
    );
    let (status, body) = upload(&app, "admin", "file=plan.csv", seed.clone().into_bytes()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["message"].as_str().unwrap().contains("年份"), "{body}");
    let (status, body) = upload(
        &app,
        "admin",
        "file=x-2021.xlsx",
        b"PK\x03\x04broken".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = upload(&app, "admin", "file=x-2021.csv", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&app, "admin", "/api/v1/plans").await["total"], before);

    // JSON, with explicit targets; only admins and supervisors import.
    let plan = json!({"name": "JSON 计划", "year": 2021, "items": [
        {"key_task": "（一）甲", "title": "一", "lead_units": ["shaba-civil"], "deadline": "持续推进",
         "targets": [{"name": "办件量", "comparison": "≥", "value": 100, "unit": "件"}]}]});
    let (status, body) = app
        .call("unit", Method::POST, "/api/v1/plans", Some(plan.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(plan))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["plan"]["items"][0]["targets"][0]["text"],
        "办件量 ≥ 100件"
    );
    let bad = json!({"name": "坏", "year": 2021, "items": [
        {"key_task": "甲", "title": "一", "lead_units": [], "deadline": "明年"}]});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(bad))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["errors"].as_array().unwrap().len(), 2);
}

/// A plan with one item led by 沙坝镇社会保障服务所 and co-handled by 沙坝镇民政办, with one reported
/// target; returns the item's id.
async fn small_plan(app: &TestApp, deadline: &str) -> String {
    let plan = json!({"name": format!("小计划 {deadline}"), "year": 2021, "items": [
        {"key_task": "（一）甲", "title": "2021年底前，“全程网办”占比不低于80%。",
         "lead_units": "沙坝镇社会保障服务所", "co_units": "沙坝镇民政办", "deadline": deadline}]});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(plan))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["plan"]["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn act(
    app: &TestApp,
    user: &str,
    id: &str,
    action: &str,
    fields: Value,
) -> (StatusCode, Value) {
    let version = get(app, "admin", &format!("/api/v1/tasks/{id}")).await["version"].clone();
    app.call(
        user,
        Method::POST,
        &format!("/api/v1/tasks/{id}/actions"),
        Some(json!({"action": action, "version": version, "fields": fields})),
    )
    .await
}

async fn step(app: &TestApp, user: &str, id: &str, action: &str, fields: Value) -> Value {
    let (status, body) = act(app, user, id, action, fields).await;
    assert_eq!(status, StatusCode::OK, "{user} {action}: {body}");
    body
}

fn action_ids(task: &Value) -> Vec<&str> {
    task["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

async fn the_work_item_flow_is_allowed_and_refused_by_role_unit_and_state(db: &TestDb) {
    let app = app(db).await;
    let now = app.clock.now();
    let civil = NewUser {
        username: "civil".into(),
        role: Role::UnitStaff,
        unit: Some("shaba-civil".into()),
        email: Some("civil@example.org".into()),
        sms_phone: None,
    };
    db.store.add_user(&civil, PASSWORD, now).await.unwrap();
    let id = small_plan(&app, "2021年12月31日").await;
    let path = format!("/api/v1/tasks/{id}");

    // Who sees it, and what each may do.
    assert_eq!(action_ids(&get(&app, "unit", &path).await), ["start"]);
    assert_eq!(
        action_ids(&get(&app, "civil", &path).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        action_ids(&get(&app, "sup", &path).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        action_ids(&get(&app, "viewer", &path).await),
        Vec::<&str>::new()
    );
    // Outside: the other town, and the center (neither its unit nor below it leads or helps).
    for outsider in ["o_unit", "o_sup", "center"] {
        let (status, _) = app.call(outsider, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{outsider}");
    }

    // Refused: a supervisor cannot start it, a co-unit cannot, nothing before it starts.
    let (status, body) = act(&app, "sup", &id, "start", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = act(&app, "civil", &id, "start", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = act(&app, "unit", &id, "submit", json!({"report": "已完成"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = act(&app, "o_unit", &id, "start", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let started = step(&app, "unit", &id, "start", json!({})).await;
    assert_eq!(
        (started["state"].as_str(), started["state_label"].as_str()),
        (Some("in_progress"), Some("推进中"))
    );
    // A stale version is a conflict.
    let (status, _) = app
        .call("unit", Method::POST, &format!("{path}/actions"),
            Some(json!({"action": "report_progress", "version": 1, "fields": {"summary": "x", "percent": 1}})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Progress: fields checked, the last report shown.
    let (status, body) = act(
        &app,
        "unit",
        &id,
        "report_progress",
        json!({"summary": "已梳理事项"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = act(
        &app,
        "unit",
        &id,
        "report_progress",
        json!({"summary": "x", "percent": 120}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reported = step(
        &app,
        "unit",
        &id,
        "report_progress",
        json!({"summary": "已梳理事项清单", "percent": 40}),
    )
    .await;
    assert_eq!(reported["percent"], 40);
    assert_eq!(reported["last_progress"], "已梳理事项清单");
    assert!(reported["last_report_at"].is_string());
    // The co-unit adds notes and reports its share (报送配合情况), and nothing else.
    assert_eq!(
        action_ids(&get(&app, "civil", &path).await),
        ["add_note", "report_share"]
    );
    let shared = step(
        &app,
        "civil",
        &id,
        "report_share",
        json!({"summary": "民政办已梳理低保、临时救助事项12项"}),
    )
    .await;
    assert_eq!(shared["state"], "in_progress");
    let (status, body) = act(
        &app,
        "unit",
        &id,
        "report_share",
        json!({"summary": "牵头单位不报送配合情况"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_co_unit")),
        "{body}"
    );
    // The lead unit, about to submit, sees what the co-unit reported.
    let seen_by_lead = get(&app, "unit", &path).await;
    assert_eq!(seen_by_lead["shares"].as_array().map(Vec::len), Some(1));
    assert_eq!(seen_by_lead["shares"][0]["unit"], "shaba-civil");
    assert_eq!(seen_by_lead["shares"][0]["actor"], "civil");
    assert_eq!(
        seen_by_lead["shares"][0]["summary"],
        "民政办已梳理低保、临时救助事项12项"
    );
    // A share whose recorded fields are corrupt is an error (its cause logged), never a blank share.
    {
        use sea_orm::ConnectionTrait;
        let conn = db.store.connection();
        conn.execute_unprepared(
            "UPDATE task_events SET fields = 'x' || fields WHERE action = 'report_share'",
        )
        .await
        .unwrap();
        let (status, body) = app.call("unit", Method::GET, &path, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_error")),
            "{body}"
        );
        conn.execute_unprepared(
            "UPDATE task_events SET fields = SUBSTR(fields, 2) WHERE action = 'report_share'",
        )
        .await
        .unwrap();
        assert_eq!(
            get(&app, "unit", &path).await["shares"][0]["actor"],
            "civil"
        );
    }
    let noted = step(
        &app,
        "civil",
        &id,
        "add_note",
        json!({"note": "民政办已配合梳理低保事项"}),
    )
    .await;
    assert_eq!(noted["last_progress"], "民政办已配合梳理低保事项");
    assert_eq!(noted["percent"], 40);
    let (status, _) = act(
        &app,
        "civil",
        &id,
        "report_progress",
        json!({"summary": "x", "percent": 50}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = act(&app, "civil", &id, "submit", json!({"report": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A reported target value: a number for one of the item's targets.
    let target = "“全程网办”占比";
    let (status, body) = act(
        &app,
        "unit",
        &id,
        "report_target",
        json!({"target": target, "value": "很多"}),
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("value")),
        "{body}"
    );
    let (status, body) = act(
        &app,
        "unit",
        &id,
        "report_target",
        json!({"target": "好评率", "value": "90"}),
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("target")),
        "{body}"
    );
    let with_value = step(
        &app,
        "unit",
        &id,
        "report_target",
        json!({"target": "1", "value": "85.5%"}),
    )
    .await;
    let t = &with_value["targets"][0];
    assert_eq!(
        (
            t["actual"].as_f64(),
            t["actual_source"].as_str(),
            t["met"].as_bool()
        ),
        (Some(85.5), Some("reported"), Some(true)),
        "{t}"
    );
    assert_eq!(t["reported_by"], "unit");
    assert!(t["reported_at"].is_string());

    // Submit, return with a reason, submit again, accept: done.
    let (status, _) = act(&app, "sup", &id, "accept", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not from in_progress"
    );
    let submitted = step(&app, "unit", &id, "submit", json!({"report": "清单已公布"})).await;
    assert_eq!(submitted["state"], "submitted");
    assert_eq!(submitted["owes"], "acceptance");
    assert_eq!(
        action_ids(&get(&app, "sup", &path).await),
        ["accept", "return"]
    );
    let (status, _) = act(&app, "unit", &id, "accept", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = act(&app, "sup", &id, "return", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a return needs its reason"
    );
    let returned = step(
        &app,
        "sup",
        &id,
        "return",
        json!({"reason": "请补充公布网址"}),
    )
    .await;
    assert_eq!(
        (returned["state"].as_str(), returned["owes"].as_str()),
        (Some("in_progress"), Some("completion"))
    );
    step(&app, "unit", &id, "submit", json!({"report": "已补充"})).await;
    let done = step(&app, "sup", &id, "accept", json!({"comment": "同意"})).await;
    assert_eq!(done["state"], "done");
    assert!(done["closed_at"].is_string() && done["next_deadline"].is_null());
    assert_eq!(
        action_ids(&get(&app, "unit", &path).await),
        Vec::<&str>::new()
    );

    // The timeline, hash-chained from the import.
    let events = get(&app, "admin", &path).await["events"]
        .as_array()
        .unwrap()
        .clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "open",
            "start",
            "report_progress",
            "report_share",
            "add_note",
            "report_target",
            "submit",
            "return",
            "submit",
            "accept"
        ]
    );
    assert_eq!(events[3]["actor"], "civil");
    assert_eq!(events[4]["actor"], "civil");
    let (_, verified) = app
        .call("admin", Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(
        (
            verified["ok"].as_bool(),
            verified["events_checked"].as_u64()
        ),
        (Some(true), Some(10)),
        "{verified}"
    );
    // An edited work-item event is found like an edited case event.
    use sea_orm::ConnectionTrait;
    db.store
        .connection()
        .execute_unprepared("UPDATE task_events SET actor = 'someone-else' WHERE seq = 4")
        .await
        .unwrap();
    let (_, verified) = app
        .call("admin", Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(verified["ok"], false);
    assert_eq!(
        (
            verified["first_broken"]["task_id"].as_str(),
            verified["first_broken"]["seq"].as_i64()
        ),
        (Some(id.as_str()), Some(4)),
        "{verified}"
    );

    // The board counts it done; the workbook carries the original columns plus the status.
    let plan_id = get(&app, "admin", &path).await["plan_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plans = get(&app, "unit", "/api/v1/plans").await;
    assert_eq!(
        (
            plans["items"][0]["items"].as_u64(),
            plans["items"][0]["done"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let token = app.token("sup").await;
    let resp = app
        .client
        .get(format!("{}/api/v1/plans/{plan_id}/export.xlsx", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    let row = |r: usize| -> Vec<String> {
        range
            .rows()
            .nth(r)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        row(1)[..6],
        [
            "重点任务",
            "具体工作",
            "牵头单位",
            "配合单位",
            "完成时限",
            "状态"
        ]
    );
    let item = row(2);
    assert_eq!(
        item[..6],
        [
            "（一）甲",
            "2021年底前，“全程网办”占比不低于80%。",
            "沙坝镇社会保障服务所",
            "沙坝镇民政办",
            "2021年12月31日",
            "已完成"
        ]
    );
    assert!(item.iter().any(|c| c.contains("≥ 80% / 85.5%")), "{item:?}");
}

/// An ongoing item imported on 2021-05-06 owes May's report by the end of May 31 (a Monday): due soon
/// that day, overdue when it ends, escalated one working day later; a report settles it.
async fn a_missing_monthly_report_is_overdue_mailed_to_the_lead_unit_and_escalated(db: &TestDb) {
    let smtp = SmtpServer::start();
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let id = small_plan(&app, "持续推进").await;
    let path = format!("/api/v1/tasks/{id}");
    let task = get(&app, "admin", &path).await;
    assert_eq!(
        (task["owes"].as_str(), task["next_deadline"].as_str()),
        (Some("report"), Some("2021-05-31T16:00:00Z"))
    );
    let tick = |now: &str| {
        let mut cmd = bihuan_tests::bihuan(dir.path());
        cmd.args([
            "tick",
            "--now",
            &format!("{now}+08:00"),
            "--db",
            &db.url,
            "--workflows",
        ])
        .arg(bihuan_tests::root().join("workflows"))
        .env("BIHUAN_SMTP_URL", smtp.url())
        .env("BIHUAN_PUBLIC_URL", &app.base);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", bihuan_tests::text(&out).1);
        let mut mails: Vec<(Vec<String>, String)> = smtp
            .take()
            .into_iter()
            .map(|m| (m.to.clone(), m.subject()))
            .collect();
        mails.sort();
        mails
    };
    let lead = vec![
        "shaba-social@example.org".to_owned(),
        "unit@example.org".to_owned(),
    ];
    assert_eq!(
        tick("2021-05-28T12:00:00"),
        vec![],
        "nothing before the last working day"
    );
    // Due soon when May 31 begins; the mail waits for the working day's mail time (08:30).
    assert_eq!(tick("2021-05-31T00:10:00"), vec![], "not at night");
    let mails = tick("2021-05-31T09:00:00");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, lead);
    assert!(mails[0].1.contains("即将到期（进展报告）"), "{mails:?}");
    assert!(
        !get(&app, "admin", &path).await["overdue"]
            .as_bool()
            .unwrap()
    );

    let mails = tick("2021-06-01T09:00:00");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, lead);
    assert!(mails[0].1.contains("已超期（进展报告）"), "{mails:?}");
    let task = get(&app, "unit", &path).await;
    assert_eq!(
        (task["overdue"].as_bool(), task["escalated"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        get(&app, "admin", "/api/v1/plans").await["items"][0]["overdue"],
        1
    );

    // June 1 ends: escalated to the supervisor above the unit, once.
    let mails = tick("2021-06-02T09:00:00");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, ["sup@example.org"]);
    assert!(mails[0].1.contains("超期督办"), "{mails:?}");
    assert_eq!(tick("2021-06-02T10:00:00"), vec![]);
    assert!(
        get(&app, "admin", &path).await["escalated"]
            .as_bool()
            .unwrap()
    );

    // A report in June settles it until the end of June (Wednesday the 30th).
    step(&app, "unit", &id, "start", json!({})).await;
    let reported = step(
        &app,
        "unit",
        &id,
        "report_progress",
        json!({"summary": "五月工作已完成", "percent": 20}),
    )
    .await;
    assert_eq!(
        (
            reported["overdue"].as_bool(),
            reported["escalated"].as_bool(),
            reported["next_deadline"].as_str()
        ),
        (Some(false), Some(false), Some("2021-06-30T16:00:00Z"))
    );
    assert_eq!(tick("2021-06-03T09:00:00"), vec![]);
}

/// The 好差评 item of the seed carries 差评整改率 = 100%: its value is the live rate of the year.
async fn a_target_bound_to_the_rectification_rate_shows_the_live_value(db: &TestDb) {
    let app = app(db).await;
    let seed = std::fs::read(bihuan_tests::root().join(SEED)).unwrap();
    let (status, body) = upload(&app, "admin", "file=shaba-2021.csv&parent=shaba", seed).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let plan_id = body["plan"]["id"].as_str().unwrap().to_owned();
    let target = |plan: &Value| -> Value {
        let item = plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"].as_str().unwrap().contains("差评整改率"))
            .unwrap();
        item["targets"][0].clone()
    };
    let t = target(&body["plan"]);
    assert_eq!(
        (t["name"].as_str(), t["actual"].as_f64(), t["met"].as_bool()),
        (Some("差评整改率"), None, None),
        "no negative rating yet: {t}"
    );

    // Two negative ratings: none rectified, 0%.
    let cases = [app.new_case("T-1").await, app.new_case("T-2").await];
    let plan = get(&app, "admin", &format!("/api/v1/plans/{plan_id}")).await;
    let t = target(&plan);
    assert_eq!(
        (
            t["actual"].as_f64(),
            t["actual_source"].as_str(),
            t["met"].as_bool()
        ),
        (Some(0.0), Some("metric"), Some(false)),
        "{t}"
    );
    // One rectified: 50%; both: 100%, met.
    let rectify =
        json!({"finding": "partly_true", "measures": "补充一次性告知单", "outcome": "rectified"});
    for (i, case) in cases.iter().enumerate() {
        app.to_rectifying(case).await;
        let fields = app.cited(case, "rectify", rectify.clone()).await;
        app.step("unit", case, "rectify", fields).await;
        let t = target(&get(&app, "admin", &format!("/api/v1/plans/{plan_id}")).await);
        let expected = if i == 0 { 50.0 } else { 100.0 };
        assert_eq!(
            (t["actual"].as_f64(), t["met"].as_bool()),
            (Some(expected), Some(i == 1)),
            "{t}"
        );
    }
}

/// The pages: an admin uploads the seed's table (a bad one first, its rows listed), the board shows
/// the key tasks with their items, and the lead unit's staff take the item's actions through its
/// forms (a missing field named beside itself, the text kept).
async fn the_plan_pages_import_show_the_board_and_take_the_items_actions(db: &TestDb) {
    let app = app(db).await;
    let mut admin = Browser::signed_in(&app, "admin").await;
    let page = admin.get("/plans").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains(">任务分解</a>") && page.html.contains("导入任务分解表"),
        "{}",
        page.html
    );
    let csrf = page.csrf();

    let bad = "重点任务,具体工作,牵头单位,配合单位,完成时限\n（一）甲,一,沙坝镇民政办,,年底前\n"
        .as_bytes();
    let page = admin
        .post_file(
            "/plans",
            &[("csrf", &csrf), ("year", "2021")],
            ("file", "bad.csv", bad),
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.html.contains("第 2 行") && page.html.contains("“年底前”不是完成时限"),
        "{}",
        page.html
    );
    // Without the CSRF token: refused.
    let page = admin
        .post_file("/plans", &[], ("file", "bad.csv", bad))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let seed = std::fs::read(bihuan_tests::root().join(SEED)).unwrap();
    let page = admin
        .post_file(
            "/plans",
            &[
                ("csrf", &csrf),
                ("name", "沙坝镇2021年任务分解"),
                ("parent", "shaba"),
                ("report_months", "1"),
            ],
            ("file", "shaba-2021.csv", &seed),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let board_path = page.location.unwrap();
    assert!(board_path.contains("imported=33"), "{board_path}");
    let board = admin.get(&board_path).await;
    assert_eq!(board.status, StatusCode::OK);
    for expected in [
        "沙坝镇2021年任务分解",
        "已导入 33 项工作",
        "（一）深化行政审批制度改革",
        "（十三）积极探索政务服务创新举措",
        "持续推进",
        "按时序推进",
        "2021年12月31日",
        "差评整改率 = 100%",
        "export.xlsx",
    ] {
        assert!(board.html.contains(expected), "{expected} in board");
    }
    assert_eq!(
        board.html.matches("<h2>（").count(),
        12,
        "one section per key task"
    );
    assert_eq!(board.html.matches("href=\"/tasks/").count(), 33);
    assert!(
        admin
            .get("/plans")
            .await
            .html
            .contains("沙坝镇2021年任务分解")
    );

    // The lead unit's staff work an item through its page.
    let id = small_plan(&app, "持续推进").await;
    let mut unit = Browser::signed_in(&app, "unit").await;
    let page = unit.get(&format!("/tasks/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains("开始推进") && page.html.contains("沙坝镇社会保障服务所"),
        "{}",
        page.html
    );
    let csrf = page.csrf();
    let version = bihuan_tests::pages::hidden(&page.html, "version").unwrap();
    let page = unit
        .post(
            &format!("/tasks/{id}"),
            &[("csrf", &csrf), ("action", "start"), ("version", &version)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = unit.get(page.location.as_deref().unwrap()).await;
    assert!(page.html.contains("已完成“开始推进”"), "{}", page.html);
    assert!(
        page.html.contains("填报指标值"),
        "the item has a reported target"
    );
    let version = bihuan_tests::pages::hidden(&page.html, "version").unwrap();
    let page = unit
        .post(
            &format!("/tasks/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "report_progress"),
                ("version", &version),
                ("f.summary", "已完成事项梳理"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.html.contains("请填写完成百分比") && page.html.contains("已完成事项梳理"),
        "{}",
        page.html
    );
    let page = unit
        .post(
            &format!("/tasks/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "report_progress"),
                ("version", &version),
                ("f.summary", "已完成事项梳理"),
                ("f.percent", "60"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = unit.get(&format!("/tasks/{id}")).await;
    assert!(
        page.html.contains("<strong>60%</strong>") && page.html.contains("推进记录"),
        "{}",
        page.html
    );
    assert!(page.html.contains("配合单位报送情况（0）"), "{}", page.html);
    assert!(
        !page.html.contains("id=\"action-report_share\""),
        "the lead unit reports progress, not a share"
    );
    // The co-unit reports its share on the item's page; the lead unit sees it there.
    let civil_staff = NewUser {
        username: "civil".into(),
        role: Role::UnitStaff,
        unit: Some("shaba-civil".into()),
        email: None,
        sms_phone: None,
    };
    db.store
        .add_user(&civil_staff, PASSWORD, app.clock.now())
        .await
        .unwrap();
    let mut civil = Browser::signed_in(&app, "civil").await;
    let shared = civil.get(&format!("/tasks/{id}")).await;
    assert!(
        shared.html.contains("id=\"action-report_share\""),
        "{}",
        shared.html
    );
    let share_version = bihuan_tests::pages::hidden(&shared.html, "version").unwrap();
    let posted = civil
        .post(
            &format!("/tasks/{id}"),
            &[
                ("csrf", &shared.csrf()),
                ("action", "report_share"),
                ("version", &share_version),
                ("f.summary", "民政办已完成低保事项梳理"),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.html);
    let page = unit.get(&format!("/tasks/{id}")).await;
    assert!(
        page.html.contains("配合单位报送情况（1）")
            && page.html.contains("民政办已完成低保事项梳理")
            && page.html.contains("沙坝镇民政办"),
        "{}",
        page.html
    );
    // A stale version: the fresh item, nothing done.
    let page = unit
        .post(
            &format!("/tasks/{id}"),
            &[
                ("csrf", &csrf),
                ("action", "add_note"),
                ("version", &version),
                ("f.note", "迟到的备注"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    // The other town's staff: not found.
    let mut other = Browser::signed_in(&app, "o_unit").await;
    assert_eq!(
        other.get(&format!("/tasks/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!other.get("/plans").await.html.contains("小计划"));
}

/// A dated item whose date is gone, or whose stored due kind names nothing known, is an error when
/// read (a 500 whose cause is logged), never shown as 持续推进 with reports owed instead of a date.
async fn a_work_item_whose_stored_due_is_corrupt_is_refused_not_taken_for_ongoing(db: &TestDb) {
    use sea_orm::ConnectionTrait;
    let app = app(db).await;
    let id = small_plan(&app, "2021年6月30日").await;
    let path = format!("/api/v1/tasks/{id}");
    let item = get(&app, "admin", &path).await;
    assert_eq!(item["deadline_kind"], "date", "{item}");
    let conn = db.store.connection();
    for corruption in [
        "UPDATE tasks SET due_date = NULL",
        "UPDATE tasks SET due_kind = 'someday', due_date = '2021-06-30'",
        "UPDATE task_units SET role = 'boss' WHERE role = 'co'",
    ] {
        conn.execute_unprepared(corruption).await.unwrap();
        let (status, body) = app.call("admin", Method::GET, &path, None).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{corruption}: {body}"
        );
        assert_eq!(body["error"], "internal_error", "{corruption}: {body}");
        conn.execute_unprepared("UPDATE tasks SET due_kind = 'date', due_date = '2021-06-30'")
            .await
            .unwrap();
        conn.execute_unprepared("UPDATE task_units SET role = 'co' WHERE role = 'boss'")
            .await
            .unwrap();
        assert_eq!(get(&app, "admin", &path).await["id"], id.as_str());
    }
}
