//! 整改佐证材料 end to end, on SQLite and PostgreSQL with the file store in a folder: files uploaded to
//! a case or a work item (judged by their bytes, within the size limit, names cleaned, kept once per
//! content hash), downloaded in scope only, cited by the actions that need evidence (an appeal, a
//! rectification whose outcome is 已整改, 限期整改完成, a co-unit's share), recorded with their SHA-256
//! in the event, and checked by 办理记录防篡改校验: a cited file removed or replaced is found.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::io::Write;

use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, png, spawn};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    a_file_is_uploaded_kept_once_and_downloaded_in_scope_only,
    a_file_is_judged_by_its_bytes_and_refused_past_the_size_limit,
    the_actions_that_need_evidence_cite_files_of_their_own_case,
    a_cited_file_removed_or_replaced_is_found_by_the_chain_check,
    a_co_unit_reports_its_share_with_evidence_on_a_work_item,
    the_ledger_the_case_page_and_the_audit_sample_show_the_evidence,
    a_photo_gets_a_small_thumbnail_made_once_in_scope_only,
);

async fn app(db: &TestDb) -> TestApp {
    spawn(db, WebConfig::default()).await
}

/// A zip archive holding `entries` (name, content).
fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, content) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

/// A Word document as far as its kind goes: the entries that make a zip a DOCX.
fn docx() -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", "<Types/>"),
        ("word/document.xml", "<w:document/>"),
    ])
}

/// Downloads an attachment: status, content type, disposition, bytes.
async fn download(app: &TestApp, user: &str, id: &str) -> (StatusCode, String, String, Vec<u8>) {
    fetch(
        app,
        user,
        &format!("/api/v1/attachments/{id}"),
        "content-disposition",
    )
    .await
}

/// A GET of `path` as `user`: status, content type, the header `named`, and the body.
async fn fetch(
    app: &TestApp,
    user: &str,
    path: &str,
    named: &str,
) -> (StatusCode, String, String, Vec<u8>) {
    let token = app.token(user).await;
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (kind, other) = (header("content-type"), header(named));
    (
        resp.status(),
        kind,
        other,
        resp.bytes().await.unwrap().to_vec(),
    )
}

/// The stored objects under the app's file store.
fn stored(app: &TestApp) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(app.files.path(), &mut out);
    out.retain(|p| !p.to_string_lossy().contains("#"));
    out
}

async fn a_file_is_uploaded_kept_once_and_downloaded_in_scope_only(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("F-1").await;
    app.to_rectifying(&id).await;
    let photo = png("F-1");
    let (status, first) = app
        .upload("unit", "cases", &id, "../../整改后 照片.PNG", photo.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["name"], "整改后 照片.png",
        "no folders, its kind's extension"
    );
    assert_eq!(first["content_type"], "image/png");
    assert_eq!(first["size"], photo.len());
    let sha = first["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);
    // The same bytes again (by the center): a second attachment, one stored file.
    let (status, second) = app
        .upload("center", "cases", &id, "副本.png", photo.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["sha256"], sha.as_str());
    assert_ne!(second["id"], first["id"]);
    assert_eq!(stored(&app).len(), 1, "kept once per content hash");

    let case = app.case("sup", &id).await;
    let listed: Vec<&str> = case["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["整改后 照片.png", "副本.png"]);

    let file_id = first["id"].as_str().unwrap();
    for user in ["unit", "center", "sup", "viewer", "admin"] {
        let (status, kind, disposition, bytes) = download(&app, user, file_id).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(kind, "image/png");
        assert!(
            disposition.starts_with("attachment;")
                && disposition.contains("filename*=UTF-8''%E6%95%B4%E6%94%B9"),
            "{disposition}"
        );
        assert_eq!(bytes, photo, "{user}");
    }
    // Outside the scope: the other town sees no such file, nor can it attach one to this case.
    for user in ["o_sup", "o_center", "o_unit", "o_viewer"] {
        let (status, _, _, _) = download(&app, user, file_id).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{user}");
        let (status, body) = app.upload(user, "cases", &id, "x.png", png(user)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{user}: {body}");
    }
    // A viewer looks, never attaches; nothing is kept for a refused upload.
    let (status, body) = app.upload("viewer", "cases", &id, "x.png", png("v")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_not_allowed"))
    );
    assert_eq!(stored(&app).len(), 1);
    // Unit staff reach only the cases transferred to their unit.
    let waiting = app.new_case("F-2").await;
    let (status, _) = app
        .upload("unit", "cases", &waiting, "x.png", png("u"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _, _) = download(&app, "unit", "0190c5e2-0000-7000-8000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_file_is_judged_by_its_bytes_and_refused_past_the_size_limit(db: &TestDb) {
    let app = bihuan_tests::api::spawn(
        db,
        WebConfig {
            max_upload: 64 * 1024,
            ..WebConfig::default()
        },
    )
    .await;
    let id = app.new_case("T-1").await;
    app.to_rectifying(&id).await;
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n".to_vec();
    let kinds: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "通知.pdf",
            pdf.clone(),
            StatusCode::CREATED,
            "application/pdf",
        ),
        (
            "照片.jpg",
            b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec(),
            StatusCode::CREATED,
            "image/jpeg",
        ),
        (
            "版式文件.ofd",
            zip_of(&[("OFD.xml", "<ofd:OFD/>")]),
            StatusCode::CREATED,
            "application/ofd",
        ),
        (
            "整改报告.docx",
            docx(),
            StatusCode::CREATED,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "台账.xlsx",
            zip_of(&[
                ("[Content_Types].xml", "<Types/>"),
                ("xl/workbook.xml", "<workbook/>"),
            ]),
            StatusCode::CREATED,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        // By their bytes, not their names.
        (
            "整改报告.pdf",
            b"#!/bin/sh\necho owned\n".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
        (
            "照片.png",
            b"GIF89a\x01\0\x01\0".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
        (
            "材料.docx",
            zip_of(&[("readme.txt", "not an office file")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
        ("空.pdf", Vec::new(), StatusCode::UNPROCESSABLE_ENTITY, ""),
        // A zip whose directory says it lists 60,000 entries is not read at all.
        (
            "清单.docx",
            {
                let mut b = b"PK\x03\x04".to_vec();
                b.extend(b"PK\x05\x06\0\0\0\0");
                b.extend(60_000u16.to_le_bytes());
                b.extend(60_000u16.to_le_bytes());
                b.extend([0u8; 10]);
                b
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
    ];
    for (name, bytes, expected, kind) in kinds {
        let (status, body) = app.upload("unit", "cases", &id, name, bytes).await;
        assert_eq!(status, expected, "{name}: {body}");
        if expected == StatusCode::CREATED {
            assert_eq!(body["content_type"], kind, "{name}");
        } else if expected == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            assert_eq!(body["error"], "unsupported_type", "{name}");
            assert!(body["message"].as_str().unwrap().contains("PDF"), "{body}");
        }
    }
    // One byte over the limit: 413 naming it, nothing kept.
    let before = stored(&app).len();
    let mut big = pdf.clone();
    big.resize(64 * 1024 + 1, b' ');
    let (status, body) = app.upload("unit", "cases", &id, "大文件.pdf", big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")),
        "{body}"
    );
    assert_eq!(body["details"]["limit_mb"], 1);
    let mut exact = pdf.clone();
    exact.resize(64 * 1024, b' ');
    let (status, body) = app.upload("unit", "cases", &id, "刚好.pdf", exact).await;
    assert_eq!(status, StatusCode::CREATED, "at the limit: {body}");
    assert_eq!(stored(&app).len(), before + 1);
    // Not a multipart body, or one without its file part: 400.
    let (status, body) = app
        .call(
            "unit",
            Method::POST,
            &format!("/api/v1/cases/{id}/attachments"),
            Some(json!({"file": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_multipart")),
        "{body}"
    );
}

async fn the_actions_that_need_evidence_cite_files_of_their_own_case(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("E-1").await;
    app.to_rectifying(&id).await;
    let other = app.new_case("E-2").await;
    app.to_rectifying(&other).await;
    let foreign = app.evidence(&other).await;

    // An appeal without its evidence, or with a file of another case: refused, nothing kept.
    let appeal = json!({"category": "mistaken", "reason": "评价对象为区医保局窗口"});
    let (status, body) = app.act("unit", &id, "appeal", appeal.clone()).await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["details"]["field"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("evidence_required"),
            Some("evidence")
        ),
        "{body}"
    );
    let mut with_foreign = appeal.clone();
    with_foreign["evidence"] = foreign;
    let (status, body) = app.act("unit", &id, "appeal", with_foreign).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("不是本件已上传的材料"),
        "{body}"
    );
    assert_eq!(app.case("admin", &id).await["state"], "rectifying");

    // 已整改 needs its 整改佐证材料; 解释说明 may do without.
    let rectify =
        json!({"finding": "true", "measures": "补充一次性告知单", "outcome": "rectified"});
    let (status, body) = app.act("unit", &id, "rectify", rectify.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("evidence_required")),
        "{body}"
    );
    let mut proved = rectify.clone();
    proved["evidence"] = app.evidence(&id).await;
    let (status, body) = app
        .upload(
            "unit",
            "cases",
            &id,
            "告知单.pdf",
            b"%PDF-1.7\n%%EOF\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    proved["evidence"]
        .as_array_mut()
        .unwrap()
        .push(body["id"].clone());
    let case = app.step("unit", &id, "rectify", proved).await;
    assert_eq!(case["state"], "pending_feedback");
    let recorded = &case["events"][3]["fields"]["evidence"];
    assert_eq!(recorded.as_array().unwrap().len(), 2, "{recorded}");
    assert_eq!(recorded[1]["name"], "告知单.pdf");
    assert_eq!(recorded[1]["sha256"], body["sha256"]);
    assert_eq!(recorded[1]["size"], body["size"]);
    // The form of the action says so: a list of files, required with that outcome.
    let (_, fields) = app
        .call("unit", Method::GET, &format!("/api/v1/cases/{other}"), None)
        .await;
    let rectify_action = fields["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "rectify")
        .unwrap();
    let evidence = rectify_action["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "evidence")
        .unwrap();
    assert_eq!(evidence["type"], "evidence");
    assert_eq!(
        evidence["required_when"],
        json!({"field": "outcome", "equals": "rectified"})
    );

    let explained = app.new_case("E-3").await;
    app.to_rectifying(&explained).await;
    let case = app
        .step(
            "unit",
            &explained,
            "rectify",
            json!({"finding": "untrue", "measures": "已向群众解释政策", "outcome": "explained"}),
        )
        .await;
    assert_eq!(case["state"], "pending_feedback");
}

async fn a_cited_file_removed_or_replaced_is_found_by_the_chain_check(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("V-1").await;
    app.to_review(&id).await;
    let verify = || async {
        let (status, body) = app
            .call("sup", Method::GET, "/api/v1/audit/verify", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let sound = verify().await;
    assert_eq!(
        (sound["ok"].as_bool(), sound["files_checked"].as_i64()),
        (Some(true), Some(1))
    );
    let file = stored(&app).pop().unwrap();
    let kept = std::fs::read(&file).unwrap();
    // Replaced by other bytes under the same name.
    std::fs::write(&file, b"\x89PNG\r\n\x1a\nedited").unwrap();
    let changed = verify().await;
    assert_eq!(changed["ok"], false, "{changed}");
    assert_eq!(changed["first_broken"]["case_id"], id.as_str());
    assert_eq!(
        changed["first_broken"]["seq"], 4,
        "the rectification cites it"
    );
    assert!(
        changed["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer match"),
        "{changed}"
    );
    // Removed.
    std::fs::remove_file(&file).unwrap();
    let missing = verify().await;
    assert!(
        missing["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing from the file store"),
        "{missing}"
    );
    // Put back as it was: sound again, and it downloads as it was uploaded.
    std::fs::write(&file, &kept).unwrap();
    assert_eq!(verify().await["ok"], true);
    let file_id = app.case("sup", &id).await["attachments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _, bytes) = download(&app, "sup", &file_id).await;
    assert_eq!((status, bytes), (StatusCode::OK, kept));
}

async fn a_co_unit_reports_its_share_with_evidence_on_a_work_item(db: &TestDb) {
    use bihuan_store::NewUser;
    let app = app(db).await;
    let civil = NewUser {
        username: "civil".into(),
        role: bihuan_core::Role::UnitStaff,
        unit: Some("shaba-civil".into()),
        email: Some("civil@example.org".into()),
        sms_phone: None,
    };
    db.store
        .add_user(&civil, bihuan_tests::api::PASSWORD, app.clock.now())
        .await
        .unwrap();
    let plan = json!({"name": "小计划", "year": 2021, "items": [
        {"key_task": "（一）甲", "title": "2021年底前，“全程网办”占比不低于80%。",
         "lead_units": "沙坝镇社会保障服务所", "co_units": "沙坝镇民政办", "deadline": "2021年12月31日"}]});
    let (status, body) = app
        .call("admin", Method::POST, "/api/v1/plans", Some(plan))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = body["plan"]["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tasks/{task}");
    let act = |user: &'static str, action: &'static str, fields: Value| {
        let (app, path) = (&app, path.clone());
        async move {
            let (_, item) = app.call("admin", Method::GET, &path, None).await;
            app.call(
                user,
                Method::POST,
                &format!("{path}/actions"),
                Some(json!({"action": action, "version": item["version"], "fields": fields})),
            )
            .await
        }
    };
    let (status, body) = act("unit", "start", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, file) = app
        .upload(
            "civil",
            "tasks",
            &task,
            "低保事项清单.xlsx",
            zip_of(&[
                ("[Content_Types].xml", "<Types/>"),
                ("xl/workbook.xml", "<workbook/>"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let (status, body) = act(
        "civil",
        "report_share",
        json!({"summary": "民政办已梳理低保事项12项", "evidence": [file["id"]]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let share = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "report_share")
        .unwrap();
    assert_eq!(share["fields"]["evidence"][0]["sha256"], file["sha256"]);
    // The item lists its files.
    let (_, item) = app.call("unit", Method::GET, &path, None).await;
    assert_eq!(
        item["attachments"][0]["name"], "低保事项清单.xlsx",
        "{item}"
    );
    // The other town's staff see neither the item nor its file.
    let (status, _, _, _) = download(&app, "o_unit", file["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _, bytes) = download(&app, "unit", file["id"].as_str().unwrap()).await;
    assert_eq!((status, bytes.is_empty()), (StatusCode::OK, false));
}

/// The ledger export names each cited file with its SHA-256; the case page shows a photo as a
/// thumbnail; the supervisor's audit sample lists the files of each closed loop drawn.
async fn the_ledger_the_case_page_and_the_audit_sample_show_the_evidence(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("L-1").await;
    app.to_review(&id).await;
    app.step(
        "center",
        &id,
        "review_satisfied",
        json!({"level": "satisfied"}),
    )
    .await;
    let file = app.case("sup", &id).await["attachments"][0].clone();
    let (name, sha) = (
        file["name"].as_str().unwrap(),
        file["sha256"].as_str().unwrap(),
    );

    let token = app.token("sup").await;
    let csv = app
        .client
        .get(format!("{}/api/v1/export/cases.csv", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let column = rows[0]
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}') == "佐证材料")
        .unwrap();
    assert_eq!(rows[1][column], format!("{name}（SHA-256 {sha}）"));

    let mut sup = bihuan_tests::pages::Browser::signed_in(&app, "sup").await;
    let page = sup.get(&format!("/cases/{id}")).await;
    let thumb = format!(
        "<img class=\"thumb\" src=\"/api/v1/attachments/{}/thumbnail\"",
        file["id"].as_str().unwrap()
    );
    assert!(page.html.contains(&thumb), "{}", page.html);
    let board = sup.get("/supervise?n=5").await;
    assert!(
        board.html.contains(&format!("id=\"audit-{id}\"")) && board.html.contains(name),
        "{}",
        board.html
    );
}

/// A real photo of `width` × `height` pixels, encoded as `format`.
fn photo(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

async fn thumbnail_of(
    app: &TestApp,
    user: &str,
    id: &str,
) -> (StatusCode, String, String, Vec<u8>) {
    fetch(
        app,
        user,
        &format!("/api/v1/attachments/{id}/thumbnail"),
        "cache-control",
    )
    .await
}

/// A photo's thumbnail is a small JPEG (240 pixels on the longer side), made from the stored original
/// once and kept beside it, cacheable, for those who may see the file only; a PDF has none, and a
/// picture that cannot be decoded within the limits gets a clear refusal, not a server error.
async fn a_photo_gets_a_small_thumbnail_made_once_in_scope_only(db: &TestDb) {
    let app = app(db).await;
    let id = app.new_case("T-1").await;
    app.to_rectifying(&id).await;
    let mut ids = Vec::new();
    for (name, bytes) in [
        ("现场照片.png", photo(1000, 600, image::ImageFormat::Png)),
        ("整改后.jpg", photo(300, 900, image::ImageFormat::Jpeg)),
    ] {
        let (status, file) = app.upload("unit", "cases", &id, name, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    let before = stored(&app).len();
    for (file, size) in ids.iter().zip([(240, 144), (80, 240)]) {
        let (status, kind, cache, bytes) = thumbnail_of(&app, "unit", file).await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/jpeg"));
        assert!(
            cache.contains("immutable") && cache.starts_with("private"),
            "{cache}"
        );
        let small = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((small.width(), small.height()), size);
    }
    // Kept once each: asked again, nothing more is stored.
    assert_eq!(stored(&app).len(), before + 2);
    let (status, ..) = thumbnail_of(&app, "unit", &ids[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored(&app).len(), before + 2);
    // Out of scope: not found, as the file itself.
    let (status, ..) = thumbnail_of(&app, "o_unit", &ids[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, pdf) = app
        .upload(
            "unit",
            "cases",
            &id,
            "通知.pdf",
            b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n".to_vec(),
        )
        .await;
    let (status, ..) = thumbnail_of(&app, "unit", pdf["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A PNG whose header claims 50,000 × 50,000 pixels is refused before it is decoded.
    let mut huge = photo(2, 2, image::ImageFormat::Png);
    huge[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let (status, file) = app.upload("unit", "cases", &id, "大图.png", huge).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let (status, _, _, body) = thumbnail_of(&app, "unit", file["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "thumbnail_unavailable", "{body}");
}
