//! Uploads and exports a hostile file cannot abuse (issue 16), end to end on SQLite and PostgreSQL:
//! a workbook declaring the whole sheet (cells at A1 and XFD1048576), a zip bomb, a body over
//! `BIHUAN_MAX_UPLOAD_MB` and a CSV of too many rows are refused through the API, the upload page
//! and the binary's imports, naming the limit, with nothing stored and the server still answering;
//! and cells that Excel would run as formulas come out of the CSV exports quoted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::io::{Cursor, Write};
use std::path::Path;

use bihuan_store::entity::{plan, rating};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, rating as rating_json, spawn};
use bihuan_tests::pages::Browser;
use bihuan_tests::{bihuan, root, text};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    a_workbook_with_a_cell_at_xfd1048576_is_refused_and_the_server_keeps_answering,
    a_zip_bomb_workbook_is_refused_by_what_it_inflates_to,
    a_body_over_the_upload_limit_is_refused_with_413_naming_the_limit,
    a_csv_of_too_many_rows_is_refused_naming_the_limit,
    the_upload_page_refuses_the_far_cell_workbook_and_the_oversized_file_and_says_why,
    the_imports_of_the_binary_refuse_a_file_over_the_limit_and_the_far_cell_workbook,
    csv_export_cells_that_begin_like_a_formula_are_quoted,
);

const MIB: usize = 1024 * 1024;

/// A workbook with a header cell at A1 and a number at XFD1048576 (row 1048575, column 16383 from
/// 0): its sheet declares A1:XFD1048576, which a dense range would hold as 17 billion cells.
fn far_cell_workbook() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "重点任务").unwrap();
    sheet.write_number(1_048_575, 16_383, 1.0).unwrap();
    workbook.save_to_buffer().unwrap()
}

/// A valid workbook whose sheet1.xml is `mib` MiB of whitespace inside `<sheetData>`, deflated to
/// a few hundred kilobytes: the other parts are copied from a real workbook, and the sheet is
/// written a mebibyte at a time, so the test never holds it.
fn zip_bomb(mib: usize) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    workbook
        .add_worksheet()
        .write_string(0, 0, "重点任务")
        .unwrap();
    let real = workbook.save_to_buffer().unwrap();
    let mut source = zip::ZipArchive::new(Cursor::new(real)).unwrap();
    let mut bomb = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let sheet = "xl/worksheets/sheet1.xml";
    for i in 0..source.len() {
        let entry = source.by_index(i).unwrap();
        if entry.name().unwrap() != sheet {
            bomb.raw_copy_file(entry).unwrap();
        }
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    bomb.start_file(sheet, options).unwrap();
    bomb.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    )
    .unwrap();
    let spaces = vec![b' '; MIB];
    for _ in 0..mib {
        bomb.write_all(&spaces).unwrap();
    }
    bomb.write_all(b"</sheetData></worksheet>").unwrap();
    bomb.finish().unwrap().into_inner()
}

/// Uploads bytes to `POST /api/v1/plans?QUERY` as the admin.
async fn upload(app: &TestApp, query: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let token = app.token("admin").await;
    let resp = app
        .client
        .post(format!("{}/api/v1/plans?{query}", app.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        // A refused upload's connection is closed by the server (it did not read the whole body):
        // never hand it back to the pool for the next request.
        .header("connection", "close")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The server still serves, and no plan was stored.
async fn still_serving_with_no_plan(app: &TestApp, db: &TestDb) {
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (status, plans) = app.call("admin", Method::GET, "/api/v1/plans", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plans["total"], 0, "{plans}");
    assert_eq!(
        plan::Entity::find()
            .count(db.store.connection())
            .await
            .unwrap(),
        0
    );
}

fn assert_refusal(status: StatusCode, body: &Value, expected: (StatusCode, &str, &str)) {
    let (want_status, code, says) = expected;
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
}

/// calamine's `worksheet_range` builds a dense range from A1 to the last cell: the old reader
/// asked for rows × columns cells and the allocation aborted the whole process. Now the cell at
/// XFD1048576 is refused as it is read; nothing is stored and the server answers the next request.
async fn a_workbook_with_a_cell_at_xfd1048576_is_refused_and_the_server_keeps_answering(
    db: &TestDb,
) {
    let app = spawn(db, WebConfig::default()).await;
    let (status, body) = upload(&app, "file=计划2021.xlsx&year=2021", far_cell_workbook()).await;
    assert_refusal(
        status,
        &body,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_rows",
            "不能超过 2000 行",
        ),
    );
    assert_eq!(body["details"]["limit"], 2000, "{body}");
    still_serving_with_no_plan(&app, db).await;
}

/// A sheet of 300 MiB of whitespace, deflated to a few hundred kilobytes, passes the upload limit;
/// what it inflates to is counted before calamine parses it and passes the cap (10 × 20 MB).
async fn a_zip_bomb_workbook_is_refused_by_what_it_inflates_to(db: &TestDb) {
    let bomb = zip_bomb(300);
    assert!(bomb.len() < MIB, "the bomb is {} bytes", bomb.len());
    let app = spawn(db, WebConfig::default()).await;
    let (status, body) = upload(&app, "file=计划2021.xlsx&year=2021", bomb).await;
    assert_refusal(
        status,
        &body,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "workbook_too_large",
            "不能超过 200 MB",
        ),
    );
    assert_eq!(body["details"]["limit_mb"], 200, "{body}");
    still_serving_with_no_plan(&app, db).await;
}

/// The upload route has its own limit, `BIHUAN_MAX_UPLOAD_MB`: over it, 413 `too_large` naming it.
/// It replaces the limit of other requests' bodies: a table larger than that but within the upload
/// limit is read (and here refused for its rows, not its size).
async fn a_body_over_the_upload_limit_is_refused_with_413_naming_the_limit(db: &TestDb) {
    let app = spawn(
        db,
        WebConfig {
            body_limit: MIB / 2,
            max_upload: MIB,
            ..WebConfig::default()
        },
    )
    .await;
    let header = "重点任务,具体工作,牵头单位,配合单位,完成时限\n";
    let big = header.repeat(MIB * 3 / 2 / header.len()).into_bytes();
    let (status, body) = upload(&app, "file=计划2021.csv", big).await;
    assert_refusal(
        status,
        &body,
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large", "不能超过 1 MB"),
    );
    assert_eq!(
        body,
        json!({"error": "too_large", "message": "文件过大：不能超过 1 MB", "details": {"limit_mb": 1}})
    );
    still_serving_with_no_plan(&app, db).await;

    let line = "（一）甲,第一项,区司法局,,持续推进\n";
    let between = format!("{header}{}", line.repeat(MIB * 3 / 4 / line.len()));
    assert!((MIB / 2..MIB).contains(&between.len()));
    let (status, body) = upload(&app, "file=计划2021.csv", between.into_bytes()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_many_rows")),
        "{body}"
    );
    // Other routes keep theirs.
    let resp = app
        .client
        .post(format!("{}/api/v1/ratings/batch", app.base))
        .bearer_auth(&app.channel_token)
        .header("content-type", "application/json")
        .body(vec![b' '; MIB * 3 / 4])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (&body["error"], &body["details"]["limit_mb"]),
        (&json!("payload_too_large"), &json!(1)),
        "{body}"
    );
    still_serving_with_no_plan(&app, db).await;
}

async fn a_csv_of_too_many_rows_is_refused_naming_the_limit(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let mut csv = String::from("重点任务,具体工作,牵头单位,配合单位,完成时限\n");
    for i in 0..2_500 {
        csv.push_str(&format!("（一）甲,第{i}项,沙坝镇民政办,,持续推进\n"));
    }
    let (status, body) = upload(&app, "file=计划2021.csv", csv.into_bytes()).await;
    assert_refusal(
        status,
        &body,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_rows",
            "不能超过 2000 行",
        ),
    );
    // And a table of 2,000 rows (the header and 1,999 items) is within the limit.
    let mut csv = String::from("重点任务,具体工作,牵头单位,配合单位,完成时限\n");
    for i in 0..1_999 {
        csv.push_str(&format!("（一）甲,第{i}项,沙坝镇民政办,,持续推进\n"));
    }
    let (status, body) = upload(&app, "file=计划2021.csv", csv.into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["summary"]["items"], 1_999, "{body}");
}

async fn the_upload_page_refuses_the_far_cell_workbook_and_the_oversized_file_and_says_why(
    db: &TestDb,
) {
    let app = spawn(
        db,
        WebConfig {
            max_upload: MIB,
            ..WebConfig::default()
        },
    )
    .await;
    let mut admin = Browser::signed_in(&app, "admin").await;
    let csrf = admin.get("/plans").await.csrf();
    let fields = [("csrf", csrf.as_str()), ("year", "2021")];
    let page = admin
        .post_file(
            "/plans",
            &fields,
            ("file", "计划2021.xlsx", &far_cell_workbook()),
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    assert!(
        page.html.contains("未导入") && page.html.contains("表格行数过多：不能超过 2000 行"),
        "{}",
        page.html
    );
    let big = vec![b'x'; MIB + MIB / 2];
    let page = admin
        .post_file("/plans", &fields, ("file", "计划2021.csv", &big))
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.html);
    assert!(
        page.html.contains("文件过大：不能超过 1 MB"),
        "{}",
        page.html
    );
    still_serving_with_no_plan(&app, db).await;
}

/// Runs `bihuan import KIND FILE` with `BIHUAN_MAX_UPLOAD_MB=1`: exit code and standard error.
fn import(dir: &Path, db: &TestDb, kind: &str, file: &Path) -> (Option<i32>, String) {
    let mut cmd = bihuan(dir);
    cmd.args(["import", kind])
        .arg(file)
        .args(["--db", &db.url, "--workflows"])
        .arg(root().join("workflows"))
        .env("BIHUAN_MAX_UPLOAD_MB", "1");
    if kind == "plan" {
        cmd.args(["--year", "2021"]);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), text(&out).1)
}

/// The one line that names the problem, amid whatever else went to standard error (logs).
fn the_line<'a>(stderr: &'a str, says: &str) -> &'a str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(says)).collect();
    assert_eq!(lines.len(), 1, "one line saying {says}: {stderr}");
    lines[0]
}

async fn the_imports_of_the_binary_refuse_a_file_over_the_limit_and_the_far_cell_workbook(
    db: &TestDb,
) {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    let header =
        "来源,来源编号,办件编号,事项编码,事项名称,单位编码,区划代码,评价渠道,评价等级,评价时间\n";
    std::fs::write(&big, header.repeat(MIB / header.len() + 100)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > MIB as u64);
    for kind in ["ratings", "plan"] {
        let (code, stderr) = import(dir.path(), db, kind, &big);
        assert_eq!(code, Some(1), "{kind}: {stderr}");
        let line = the_line(&stderr, "不能超过 1 MB");
        assert!(
            line.contains("big.csv") && line.contains("BIHUAN_MAX_UPLOAD_MB"),
            "{line}"
        );
    }
    let far = dir.path().join("far.xlsx");
    std::fs::write(&far, far_cell_workbook()).unwrap();
    // A ratings sheet may have as many rows as Excel allows, not 16,384 columns.
    let (code, stderr) = import(dir.path(), db, "ratings", &far);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        the_line(&stderr, "不能超过 100 列").contains("far.xlsx"),
        "{stderr}"
    );
    let (code, stderr) = import(dir.path(), db, "plan", &far);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        the_line(&stderr, "不能超过 2000 行").contains("far.xlsx"),
        "{stderr}"
    );
    let conn = db.store.connection();
    assert_eq!(rating::Entity::find().count(conn).await.unwrap(), 0);
    assert_eq!(plan::Entity::find().count(conn).await.unwrap(), 0);
}

/// The CSV cells of the ledger and the metrics that begin with = + - @ come out with a leading `'`,
/// so Excel shows them as text instead of running them; plain figures stay numbers.
async fn csv_export_cells_that_begin_like_a_formula_are_quoted(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let hyperlink = "=HYPERLINK(\"http://evil.example/\",\"点击查看\")";
    let attacks = [
        hyperlink,
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
    ];
    let mut ids = Vec::new();
    for (i, name) in attacks.iter().enumerate() {
        let mut rating = rating_json(&format!("F-{i}"), "dissatisfied", "mobile");
        rating["service_name"] = json!(name);
        rating["service_code"] = json!(format!("11500114MB1234567X40001170{i:02}"));
        rating["comment"] = json!("+cmd|' /C calc'!A0");
        let (status, body) = app.push_rating(&rating).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["case_id"].as_str().unwrap().to_owned());
    }
    app.to_rectifying(&ids[0]).await;
    let measures = "+cmd|' /C calc'!A0";
    let fields = json!({"finding": "partly_true", "measures": measures, "outcome": "rectified"});
    app.step(
        "unit",
        &ids[0],
        "rectify",
        app.cited(&ids[0], "rectify", fields).await,
    )
    .await;

    let ledger = csv_rows(&app, "/api/v1/export/cases.csv").await;
    let header = &ledger[0];
    let column = |title: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == title)
            .unwrap()
    };
    let (service, measure) = (column("事项名称"), column("整改措施"));
    let mut services: Vec<&str> = ledger[1..].iter().map(|r| r[service].as_str()).collect();
    services.sort_unstable();
    let mut expected: Vec<String> = attacks.iter().map(|a| format!("'{a}")).collect();
    expected.sort_unstable();
    assert_eq!(services, expected);
    assert!(
        ledger[1..]
            .iter()
            .any(|r| r[measure] == format!("'{measures}")),
        "{ledger:?}"
    );
    for row in &ledger[1..] {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '@', '\t', '\r'])
                    && (!cell.starts_with('-') || cell.parse::<f64>().is_ok()),
                "{cell:?} in {row:?}"
            );
        }
    }

    let metrics = csv_rows(&app, "/api/v1/export/metrics.csv?group_by=service").await;
    let labels: Vec<&str> = metrics[1..].iter().map(|r| r[0].as_str()).collect();
    assert!(
        labels.contains(&format!("'{hyperlink}").as_str()),
        "{metrics:?}"
    );
    // The figures are untouched: one rating, one negative, rates in per cent or "—".
    let row = metrics[1..]
        .iter()
        .find(|r| r[0] == format!("'{hyperlink}"))
        .unwrap();
    assert_eq!((row[1].as_str(), row[2].as_str()), ("1", "1"), "{row:?}");
    assert!(row[1..].iter().all(|c| !c.starts_with('\'')), "{row:?}");
}

/// A CSV export's rows as the admin downloads it.
async fn csv_rows(app: &TestApp, path: &str) -> Vec<Vec<String>> {
    let token = app.token("admin").await;
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let bytes = resp.bytes().await.unwrap().to_vec();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}
