//! `bihuan import ratings` on real files: GB18030 and UTF-8-BOM CSV with Chinese headers, a JSON array,
//! an xlsx workbook; all or nothing, and `--partial`; on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::path::Path;

use bihuan_store::entity::{case, rating};
use bihuan_test_support::TestDb;
use bihuan_tests::{bihuan, root, text};
use sea_orm::{EntityTrait, PaginatorTrait};

bihuan_test_support::on_both_databases!(
    a_gb18030_csv_with_chinese_headers_imports_and_opens_cases,
    a_utf8_bom_csv_and_a_json_array_import_and_repeat_as_duplicates,
    an_xlsx_workbook_imports,
    one_bad_row_stops_the_whole_import_naming_line_and_field,
    partial_keeps_the_good_rows_and_writes_the_bad_ones_beside_the_input,
);

const CHINESE_HEADER: &str = "来源,来源编号,办件编号,事项编码,事项名称,单位编码,区划代码,评价渠道,评价等级,评价时间,评价次数,实名,评价人,联系电话,电子邮箱,文字评价";

fn chinese_row(id: &str, channel: &str, level: &str, at: &str) -> String {
    format!(
        "渝快办,{id},500114-2021-{id},11500114MB1234567X4000117001,城乡居民基本养老保险参保登记,shaba-center,500114112,{channel},{level},{at},1,是,张三,138 0000 1234,,材料要求反复变化"
    )
}

async fn count<E>(db: &TestDb) -> u64
where
    E: EntityTrait,
    E::Model: Sync,
{
    E::find().count(db.store.connection()).await.unwrap()
}

fn import(dir: &Path, db: &TestDb, file: &Path, partial: bool) -> (Option<i32>, String, String) {
    let mut cmd = bihuan(dir);
    cmd.args(["import", "ratings"])
        .arg(file)
        .args(["--db", &db.url, "--workflows"])
        .arg(root().join("workflows"));
    if partial {
        cmd.arg("--partial");
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

async fn a_gb18030_csv_with_chinese_headers_imports_and_opens_cases(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let csv = [
        CHINESE_HEADER.to_owned(),
        chinese_row("G-1", "移动端", "不满意", "2021-05-06 10:00:00"),
        chinese_row(
            "G-2",
            "政务大厅平板电脑",
            "非常满意",
            "2021-05-06T11:00:00+08:00",
        ),
        chinese_row("G-3", "二维码", "满意", "2021/05/07 09:30:00"),
    ]
    .join("\r\n");
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&csv);
    assert!(!unmappable);
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the file really is GB18030"
    );
    let file = dir.path().join("好差评.csv");
    std::fs::write(&file, &bytes).unwrap();
    let (code, stdout, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("新增 3 条评价") && stdout.contains("开立差评工单 1 件"),
        "{stdout}"
    );
    let stored = rating::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    let g1 = stored.iter().find(|r| r.source_id == "G-1").unwrap();
    assert_eq!(
        (
            g1.service_name.as_str(),
            g1.channel.as_str(),
            g1.level.as_str()
        ),
        ("城乡居民基本养老保险参保登记", "mobile", "dissatisfied")
    );
    assert_eq!(
        g1.rater_phone.as_deref(),
        Some("13800001234"),
        "phone normalised"
    );
    assert_eq!(
        g1.rated_at.to_rfc3339(),
        "2021-05-06T02:00:00+00:00",
        "a time without offset is Beijing time"
    );
    assert_eq!(count::<case::Entity>(db).await, 1);
    assert!(db.store.verify_chain().await.unwrap().ok);
}

async fn a_utf8_bom_csv_and_a_json_array_import_and_repeat_as_duplicates(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let header = "source,source_id,project_no,service_code,service_name,unit_code,region_code,channel,level,level_code_set,rated_at,real_name,rater_phone";
    let csv = format!(
        "\u{feff}{header}\nykb,U-1,p1,s1,临时救助,shaba-center,500114112,pc,5,upload,2021-05-06T10:00:00+08:00,true,13800001234\nykb,U-2,p2,s1,临时救助,shaba-center,500114112,sms,1,upload,2021-05-06T10:00:00+08:00,false,\n"
    );
    let file = dir.path().join("bom.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, stdout, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("新增 2 条评价") && stdout.contains("开立差评工单 1 件"),
        "upload code 1 is 非常不满意: {stdout}"
    );

    let json = serde_json::json!([
        {"source":"ykb","source_id":"J-1","project_no":"p","service_code":"s","service_name":"临时救助","unit_code":"shaba-center",
         "region_code":"500114112","channel":"qr","level":"very_dissatisfied","rated_at":"2021-05-06T10:00:00+08:00",
         "rater":{"type":"legal_person","real_name":true,"phone":"13800001234"}},
        {"source":"ykb","source_id":"U-1","project_no":"p","service_code":"s","service_name":"临时救助","unit_code":"shaba-center",
         "region_code":"500114112","channel":"pc","level":"very_satisfied","rated_at":"2021-05-06T10:00:00+08:00","rater_phone":"13800001234","real_name":true}
    ]);
    let file = dir.path().join("ratings.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let (code, stdout, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("新增 1 条评价，重复 1 条"), "{stdout}");
    let (code, stdout, _) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("新增 0 条评价，重复 2 条"),
        "importing twice stores nothing twice: {stdout}"
    );
    assert_eq!(count::<rating::Entity>(db).await, 3);
}

async fn an_xlsx_workbook_imports(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (col, header) in CHINESE_HEADER.split(',').enumerate() {
        sheet.write_string(0, col as u16, header).unwrap();
    }
    for (row, (id, level)) in [("X-1", "非常不满意"), ("X-2", "满意")].iter().enumerate() {
        let row = row as u32 + 1;
        let cells = chinese_row(id, "短信", level, "2021-06-01 08:00:00");
        for (col, value) in cells.split(',').enumerate() {
            match col {
                // Numbers as Excel keeps them: the count and the phone.
                10 => sheet.write_number(row, col as u16, 1.0).unwrap(),
                13 => sheet.write_number(row, col as u16, 13800001234.0).unwrap(),
                _ => sheet.write_string(row, col as u16, value).unwrap(),
            };
        }
    }
    book.save(&file).unwrap();
    let (code, stdout, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("新增 2 条评价") && stdout.contains("开立差评工单 1 件"),
        "{stdout}"
    );
    let x1 = rating::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.source_id == "X-1")
        .unwrap();
    assert_eq!(
        (
            x1.channel.as_str(),
            x1.rater_phone.as_deref(),
            x1.assess_number
        ),
        ("sms", Some("13800001234"), 1)
    );
}

async fn one_bad_row_stops_the_whole_import_naming_line_and_field(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let csv = [
        CHINESE_HEADER.to_owned(),
        chinese_row("B-1", "移动端", "不满意", "2021-05-06 10:00:00"),
        chinese_row("B-2", "传真", "满意", "2021-05-06 10:00:00"),
        chinese_row("B-3", "PC端", "满意", "2021-05-06 10:00:00"),
        chinese_row("B-4", "PC端", "3", "昨天"),
    ]
    .join("\n");
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, _, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("bad.csv:3: channel"), "{stderr}");
    assert!(
        stderr.contains("bad.csv:5: level_code_set") && stderr.contains("bad.csv:5: rated_at"),
        "{stderr}"
    );
    assert!(stderr.contains("2 行有误，未导入任何数据"), "{stderr}");
    assert_eq!(count::<rating::Entity>(db).await, 0, "all or nothing");
    // A bad row after thousands of good ones (written already, in batches) still leaves nothing behind.
    let mut long = vec![CHINESE_HEADER.to_owned()];
    for i in 0..4500 {
        long.push(chinese_row(
            &format!("L-{i}"),
            "移动端",
            if i % 10 == 0 { "不满意" } else { "满意" },
            "2021-05-06 10:00:00",
        ));
    }
    long.push(chinese_row("L-bad", "PC端", "满意", "昨天"));
    let file = dir.path().join("long.csv");
    std::fs::write(&file, long.join("\n")).unwrap();
    let (code, _, stderr) = import(dir.path(), db, &file, false);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("long.csv:4502: rated_at"), "{stderr}");
    assert_eq!(count::<rating::Entity>(db).await, 0, "rolled back");
    assert_eq!(count::<case::Entity>(db).await, 0, "rolled back");
    let missing = dir.path().join("missing.csv");
    std::fs::write(&missing, "来源,来源编号\nykb,1\n").unwrap();
    let (code, _, stderr) = import(dir.path(), db, &missing, false);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("办件编号（project_no）"), "{stderr}");
}

async fn partial_keeps_the_good_rows_and_writes_the_bad_ones_beside_the_input(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let csv = [
        CHINESE_HEADER.to_owned(),
        chinese_row("P-1", "移动端", "不满意", "2021-05-06 10:00:00"),
        chinese_row("P-2", "传真", "满意", "2021-05-06 10:00:00"),
        chinese_row("P-3", "PC端", "满意", "2021-05-06 10:00:00"),
    ]
    .join("\n");
    let file = dir.path().join("mixed.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, stdout, stderr) = import(dir.path(), db, &file, true);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("新增 2 条评价") && stdout.contains("1 行有误未导入"),
        "{stdout}"
    );
    let rejected = std::fs::read_to_string(dir.path().join("mixed.rejected.csv")).unwrap();
    let lines: Vec<&str> = rejected.lines().collect();
    assert_eq!(lines.len(), 2, "{rejected}");
    assert!(
        lines[0].contains("行号")
            && lines[1].starts_with("3,channel,")
            && lines[1].contains("传真"),
        "{rejected}"
    );
    assert_eq!(count::<rating::Entity>(db).await, 2);
}
