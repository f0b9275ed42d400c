//! The `bihuan` binary as an operator uses it, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_core::rating::{Channel, Level, Rater, RaterType, Rating};
use bihuan_store::entity::{event, rating};
use bihuan_test_support::TestDb;
use bihuan_tests::{Server, bihuan, root, run_with_input, text};
use chrono::{TimeZone, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

bihuan_test_support::on_both_databases!(
    units_and_users_are_added_from_the_command_line,
    accounts_and_tokens_are_managed_from_the_command_line,
    no_secret_reaches_the_log,
    audit_verify_passes_then_names_the_first_edited_event,
    serve_migrates_fills_the_demo_once_and_answers_health_checks,
);

async fn units_and_users_are_added_from_the_command_line(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let ok = bihuan(dir.path())
        .args(["migrate", "--db", &db.url])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{:?}", text(&ok));
    assert!(text(&ok).0.contains("本次应用 0 个迁移"), "{:?}", text(&ok));

    let unit = |args: &[&str]| {
        bihuan(dir.path())
            .args(["unit", "add", "--db", &db.url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = unit(&["--code", "shaba", "--name", "黔江区沙坝镇人民政府"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = unit(&[
        "--code",
        "shaba-social",
        "--name",
        "沙坝镇社会保障服务所",
        "--parent",
        "shaba",
        "--email",
        "social@shaba.example",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = unit(&["--code", "x", "--name", "某所", "--parent", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, err) = text(&out);
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("上级单位 nowhere 不存在"), "{err}");
    let out = unit(&[
        "--code",
        "shaba-center",
        "--name",
        "沙坝镇便民服务中心",
        "--parent",
        "shaba",
        "--region",
        "500114112",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let center = db.store.unit("shaba-center").await.unwrap().unwrap();
    assert_eq!(center.region_code.as_deref(), Some("500114112"));
    let out = unit(&["--code", "y", "--name", "某中心", "--region", "沙坝"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("行政区划代码"), "{:?}", text(&out));

    // An outside unit code mapped onto a registered unit.
    let map = |args: &[&str]| {
        bihuan(dir.path())
            .args(["unit", "map", "--db", &db.url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = map(&["--code", "500114-ybj-hall", "--to", "shaba-social"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let aliases = db.store.unit_aliases().await.unwrap();
    assert_eq!(
        (
            aliases.len(),
            aliases[0].unit_code.as_str(),
            aliases[0].mapped_by.as_str()
        ),
        (1, "shaba-social", "cli")
    );
    let out = map(&["--code", "500114-ybj-hall", "--to", "shaba"]);
    assert_eq!(out.status.code(), Some(1), "mapped once");
    let out = map(&["--code", "other", "--to", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("单位 nowhere 不存在"),
        "{:?}",
        text(&out)
    );

    // The environment variable works like --db.
    let mut cmd = bihuan(dir.path());
    cmd.env("BIHUAN_DATABASE_URL", &db.url).args([
        "user",
        "add",
        "--username",
        "li",
        "--role",
        "unit_staff",
        "--unit",
        "shaba-social",
        "--email",
        "li@shaba.example",
        "--password-stdin",
    ]);
    let out = run_with_input(cmd, "a long passphrase\n");
    assert!(out.status.success(), "{:?}", text(&out));
    let user = db.store.user_by_name("li").await.unwrap().unwrap();
    assert_eq!(
        (user.role.as_str(), user.unit_code.as_deref()),
        ("unit_staff", Some("shaba-social"))
    );
    assert!(bihuan_store::verify_password(
        &user.password_hash,
        "a long passphrase"
    ));

    let mut cmd = bihuan(dir.path());
    cmd.args([
        "user",
        "add",
        "--db",
        &db.url,
        "--username",
        "q",
        "--role",
        "clerk",
        "--password-stdin",
    ]);
    let (_, err) = text(&run_with_input(cmd, "a long passphrase\n"));
    assert!(err.contains("unknown role `clerk`"), "{err}");
    let mut cmd = bihuan(dir.path());
    cmd.args([
        "user",
        "add",
        "--db",
        &db.url,
        "--username",
        "li",
        "--role",
        "viewer",
        "--password-stdin",
    ]);
    let (_, err) = text(&run_with_input(cmd, "a long passphrase\n"));
    assert!(err.contains("用户 li 已存在"), "{err}");
    let mut cmd = bihuan(dir.path());
    cmd.args([
        "user",
        "add",
        "--db",
        &db.url,
        "--username",
        "q",
        "--role",
        "viewer",
        "--password-stdin",
    ]);
    let out = run_with_input(cmd, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no password on standard input"),
        "{:?}",
        text(&out)
    );
    let out = bihuan(dir.path())
        .args([
            "user",
            "add",
            "--db",
            &db.url,
            "--username",
            "q",
            "--role",
            "viewer",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--password-stdin is required");
}

async fn audit_verify_passes_then_names_the_first_edited_event(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        bihuan_store::load_dir(&root().join("workflows"), chrono_tz::Asia::Shanghai).unwrap();
    let at = Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap();
    let rating = Rating {
        source: "yukuaiban".into(),
        source_id: "YKB-2021-000123".into(),
        project_no: "500114-2021-0001".into(),
        service_code: "11500114MB1234567X4000117001".into(),
        service_name: "城乡居民基本养老保险参保登记".into(),
        unit_code: "shaba-center".into(),
        region_code: "500114112".into(),
        channel: Channel::Mobile,
        level: Level::Dissatisfied,
        rated_at: at,
        assess_number: 1,
        rater: Rater {
            kind: RaterType::Individual,
            real_name: true,
            name: None,
            phone: None,
            email: None,
        },
        staff: vec![],
        indicators: serde_json::Map::new(),
        comment: None,
    };
    let case_id = db
        .store
        .record_rating(&engine, &rating, at)
        .await
        .unwrap()
        .case_id
        .unwrap();
    let actor = bihuan_core::Actor {
        name: "zhang".into(),
        role: bihuan_core::Role::CenterStaff,
        unit: Some("shaba-center".into()),
    };
    let fields = serde_json::Map::new();
    db.store
        .apply_action(
            &engine,
            &bihuan_store::ActionRequest {
                id: case_id,
                scope: &bihuan_store::CaseScope::All,
                version: 1,
                action: "accept",
                fields: &fields,
                actor: &actor,
                now: at,
            },
        )
        .await
        .unwrap();

    let out = bihuan(dir.path())
        .args(["audit", "verify", "--db", &db.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("2 条事件的哈希链完整"),
        "{:?}",
        text(&out)
    );

    let accept = db.store.case(case_id).await.unwrap().events[1].id;
    db.store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE events SET actor = 'someone-else' WHERE id = {accept}"
        ))
        .await
        .unwrap();
    let out = bihuan(dir.path())
        .args(["audit", "verify", "--db", &db.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, err) = text(&out);
    assert!(
        err.contains(&format!("差评工单 {case_id} 的第 2 条事件")),
        "{err}"
    );
}

async fn serve_migrates_fills_the_demo_once_and_answers_health_checks(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bihuan(dir.path());
    cmd.env("BIHUAN_FAKE_NOW", "2021-06-30T09:00:00+08:00");
    let server = Server::start(cmd, &["--db", &db.url, "--demo"]);
    let banner = server.banner.join("\n");
    assert!(banner.contains("已填充演示数据"), "{banner}");
    assert!(
        banner.contains("zhongxin") && banner.contains("bihuan-demo"),
        "{banner}"
    );
    let health: serde_json::Value = bihuan_tests::http()
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = bihuan_tests::http()
        .build()
        .unwrap()
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let log = server.stop();
    assert!(log.contains("BIHUAN_FAKE_NOW is set"), "{log}");

    // The fake clock was honoured: every demo rating lies before 2021-06-30.
    let cutoff = Utc.with_ymd_and_hms(2021, 6, 30, 1, 5, 0).unwrap();
    let ratings = rating::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert!(ratings.len() >= 200);
    assert!(
        ratings
            .iter()
            .all(|r| r.rated_at < cutoff && r.rated_at > cutoff - chrono::Duration::days(130))
    );
    let latest = event::Entity::find()
        .order_by_desc(event::Column::At)
        .one(db.store.connection())
        .await
        .unwrap()
        .unwrap();
    assert!(latest.at < cutoff, "{}", latest.at);
    assert!(db.store.verify_chain().await.unwrap().ok);

    // A second start finds the demo and does not fill it again.
    let server = Server::start(bihuan(dir.path()), &["--db", &db.url, "--demo"]);
    assert!(
        server.banner.join("\n").contains("演示数据已存在"),
        "{:?}",
        server.banner
    );
    drop(server);
}

#[test]
fn workflows_check_accepts_the_shipped_files_and_names_each_problem_of_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = bihuan(dir.path())
        .args(["workflows", "check"])
        .arg(root().join("workflows"))
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        stdout.contains("negative-rating v1") && stdout.contains("work-plan-task v1"),
        "{stdout}"
    );

    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("calendars")).unwrap();
    std::fs::copy(
        root().join("workflows/calendars/cn-mainland-2021-2026.toml"),
        broken.join("calendars/cn.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("workflows/work-plan-task.toml"),
        broken.join("work-plan-task.toml"),
    )
    .unwrap();
    let text_in = std::fs::read_to_string(root().join("workflows/negative-rating.toml")).unwrap();
    let bad = text_in
        .replacen("roles = [\"center_staff\"]", "roles = [\"clerk\"]", 1)
        .replacen(
            "on_timeout = \"review_timeout\"",
            "on_timeout = \"vanish\"",
            1,
        );
    std::fs::write(broken.join("negative-rating.toml"), bad).unwrap();
    let out = bihuan(dir.path())
        .args(["workflows", "check"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, err) = text(&out);
    assert!(
        err.contains("negative-rating.toml:") && err.contains("unknown role `clerk`"),
        "{err}"
    );
    assert!(err.contains("unknown action `vanish`"), "{err}");
    assert!(err.contains("2 个问题"), "{err}");
}

#[test]
fn workflows_check_warns_while_next_year_has_no_calendar_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = bihuan(dir.path())
        .env("BIHUAN_FAKE_NOW", "2026-11-27T09:00:00+08:00")
        .args(["workflows", "check"])
        .arg(root().join("workflows"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out).1.contains("没有 2027 年的节假日安排"),
        "{:?}",
        text(&out)
    );
    let out = bihuan(dir.path())
        .env("BIHUAN_FAKE_NOW", "2024-06-01T09:00:00+08:00")
        .args(["workflows", "check"])
        .arg(root().join("workflows"))
        .output()
        .unwrap();
    assert!(!text(&out).1.contains("警告"), "{:?}", text(&out));
}

/// (arguments, environment, what the one error line must say).
type BadConfig = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_configuration_is_one_clear_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // `tick` on the default database, bihuan.db in the working folder.
    let tick: &[&str] = &["tick"];
    let cases: [BadConfig; 9] = [
        (
            &["migrate", "--db", "mysql://root@localhost/x"],
            &[],
            "数据库地址无效",
        ),
        (
            &["migrate", "--db", "postgres://postgres@127.0.0.1:1/nothing"],
            &[],
            "无法连接数据库 postgres://postgres@127.0.0.1:1/nothing",
        ),
        (
            &["migrate", "--db", "postgres://u:secret@127.0.0.1:1/x"],
            &[],
            "postgres://u:***@127.0.0.1:1/x",
        ),
        (
            &["migrate"],
            &[("BIHUAN_FAKE_NOW", "yesterday")],
            "BIHUAN_FAKE_NOW=yesterday is not an RFC 3339 time",
        ),
        (
            &["serve", "--workflows", "/nonexistent"],
            &[],
            "workflow folder /nonexistent does not exist",
        ),
        (
            tick,
            &[("BIHUAN_DIGEST_AT", "8点半")],
            "BIHUAN_DIGEST_AT=8点半 should be a time of day such as 08:30",
        ),
        (
            tick,
            &[("BIHUAN_SMTP_URL", "mail://u:secret@example.org")],
            "BIHUAN_SMTP_URL mail://u:***@example.org",
        ),
        (
            tick,
            &[("BIHUAN_MAIL_FROM", "not an address")],
            "BIHUAN_MAIL_FROM not an address",
        ),
        (
            tick,
            &[("BIHUAN_PUBLIC_URL", "hcp.example.org")],
            "BIHUAN_PUBLIC_URL=hcp.example.org should start with http:// or https://",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = bihuan(dir.path());
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            !err.contains("secret"),
            "{args:?} leaks the password: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
        let error_lines = err.lines().filter(|l| l.starts_with("错误")).count();
        assert_eq!(error_lines, 1, "{args:?}: {err}");
    }
}

#[test]
fn a_broken_workflow_folder_stops_serve_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("wf");
    std::fs::create_dir_all(broken.join("calendars")).unwrap();
    std::fs::copy(
        root().join("workflows/calendars/cn-mainland-2021-2026.toml"),
        broken.join("calendars/cn.toml"),
    )
    .unwrap();
    std::fs::write(broken.join("negative-rating.toml"), "[workflow]\nid = 3\n").unwrap();
    let out = bihuan(dir.path())
        .args(["serve", "--db", "sqlite://x.db?mode=rwc", "--workflows"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, err) = text(&out);
    assert!(err.contains("negative-rating.toml:2"), "{err}");
    assert!(
        !dir.path().join("x.db").exists(),
        "nothing is created before the workflows are checked"
    );
}

/// `bihuan user disable|enable|password`, `token add --source|revoke|list`; passwords of fewer than
/// 12 characters exit 2 before anything is written.
async fn accounts_and_tokens_are_managed_from_the_command_line(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: Option<&str>| {
        let mut cmd = bihuan(dir.path());
        cmd.env("BIHUAN_DATABASE_URL", &db.url).args(args);
        match input {
            Some(i) => run_with_input(cmd, i),
            None => cmd.output().unwrap(),
        }
    };
    let out = run(
        &["unit", "add", "--code", "shaba", "--name", "沙坝镇"],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let add = [
        "user",
        "add",
        "--username",
        "wu",
        "--role",
        "viewer",
        "--unit",
        "shaba",
        "--password-stdin",
    ];
    let out = run(&add, Some("elevenchars\n"));
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("密码至少 12 个字符"),
        "{:?}",
        text(&out)
    );
    assert!(db.store.user_by_name("wu").await.unwrap().is_none());
    let out = run(&add, Some("twelve chars\n"));
    assert!(out.status.success(), "{:?}", text(&out));

    let out = run(&["user", "disable", "--username", "wu"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(db.store.user_by_name("wu").await.unwrap().unwrap().disabled);
    let out = run(&["user", "enable", "--username", "wu"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!db.store.user_by_name("wu").await.unwrap().unwrap().disabled);
    let out = run(&["user", "disable", "--username", "nobody"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &["user", "password", "--username", "wu", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        &["user", "password", "--username", "wu", "--password-stdin"],
        Some("another twelve\n"),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let user = db.store.user_by_name("wu").await.unwrap().unwrap();
    assert!(bihuan_store::verify_password(
        &user.password_hash,
        "another twelve"
    ));

    let out = run(
        &["token", "add", "--name", "hall", "--source", "yukuaiban"],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let token = text(&out).0.trim().to_owned();
    let known = db.store.api_token(&token).await.unwrap().unwrap();
    assert_eq!(known.source.as_deref(), Some("yukuaiban"));
    let out = run(
        &["token", "add", "--name", "prom", "--scope", "metrics:read"],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let out = run(
        &[
            "token",
            "add",
            "--name",
            "x",
            "--scope",
            "metrics:read",
            "--source",
            "y",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &["token", "add", "--name", "x", "--scope", "everything"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("未知的权限范围"), "{:?}", text(&out));
    let out = run(&["token", "revoke", "--name", "hall"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(db.store.api_token(&token).await.unwrap().is_none());
    let out = run(&["token", "revoke", "--name", "hall"], None);
    assert_eq!(out.status.code(), Some(1), "a second revocation names it");
    let out = run(&["token", "list"], None);
    let (listed, _) = text(&out);
    assert!(
        listed.contains("hall") && listed.contains("已吊销") && listed.contains("prom"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token),
        "the token itself is never shown again"
    );
}

/// No secret and no contact reaches the log: the rater's link is logged without its token, a
/// password never is, and a sent mail keeps no token in its stored copy.
async fn no_secret_reaches_the_log(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bihuan(dir.path());
    cmd.env("RUST_LOG", "debug,sqlx=error,sea_orm=warn,hyper=info");
    let server = Server::start(cmd, &["--db", &db.url, "--demo"]);
    let client = bihuan_tests::http().build().unwrap();
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let resp = client
        .get(format!("{}/r/{token}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client
        .post(format!("{}/api/v1/session", server.base))
        .json(&serde_json::json!({"username": "zhongxin", "password": "a secret password 13800001234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let log = server.stop();
    assert!(log.contains("/r/…"), "the request was logged: {log}");
    for secret in [token, "a secret password", "13800001234"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
