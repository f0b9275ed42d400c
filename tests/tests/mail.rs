//! Reminders, escalations, the daily digest, the outbox sender and the rater's link, end to end:
//! the real `bihuan tick` binary drives time with `--now` and sends through a real SMTP server
//! (in-process, see `bihuan_tests::smtp`), on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::path::Path;

use bihuan_store::Clock;
use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, spawn_with};
use bihuan_tests::smtp::{Received, SmtpServer};
use bihuan_web::WebConfig;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(
    reminders_follow_the_working_days_across_a_holiday,
    two_passes_at_once_send_each_mail_once,
    mail_waits_for_a_mail_server_that_is_down_and_goes_out_once,
    the_raters_link_works_once_then_refuses,
    mail_logs_in_to_the_server_or_is_written_as_eml_files,
);

/// A local time of Asia/Shanghai.
fn local(text: &str) -> String {
    format!("{text}+08:00")
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&local(text)).unwrap().to_utc()
}

/// The app, its clock started at 2021-09-29 10:00 (a Wednesday before 国庆 2021, 10/1–7).
async fn app(db: &TestDb) -> TestApp {
    spawn_with(
        db,
        WebConfig::default(),
        Clock::starting_at(instant("2021-09-29T10:00:00")),
    )
    .await
}

/// One `bihuan tick --now NOW` against the test database, mailing through `smtp_url`.
fn tick(db: &TestDb, app: &TestApp, dir: &Path, smtp_url: &str, now: &str) -> String {
    let out = tick_command(db, app, dir, smtp_url, now).output().unwrap();
    let (stdout, stderr) = bihuan_tests::text(&out);
    assert!(out.status.success(), "tick {now}: {stderr}");
    stdout
}

fn tick_command(
    db: &TestDb,
    app: &TestApp,
    dir: &Path,
    smtp_url: &str,
    now: &str,
) -> std::process::Command {
    let mut cmd = bihuan_tests::bihuan(dir);
    cmd.args(["tick", "--now", &local(now), "--db", &db.url, "--workflows"])
        .arg(bihuan_tests::root().join("workflows"))
        .env("BIHUAN_SMTP_URL", smtp_url)
        .env("BIHUAN_PUBLIC_URL", &app.base)
        .env("BIHUAN_MAIL_FROM", "好差评 <noreply@hcp.example.org>");
    cmd
}

fn project(source_id: &str) -> String {
    format!("500114-2021-{source_id}")
}

/// The mails, sorted by recipients then subject, as (recipients, subject).
fn summary(mails: &[Received]) -> Vec<(Vec<String>, String)> {
    let mut list: Vec<_> = mails.iter().map(|m| (m.to.clone(), m.subject())).collect();
    list.sort();
    list
}

fn to(addresses: &[&str]) -> Vec<String> {
    addresses.iter().map(|a| (*a).to_owned()).collect()
}

/// 国庆 2021: due soon when the deadline's day begins, overdue when it ends, escalated one working day
/// later — the first working day after the holiday — and the digest only on working days at 08:30.
async fn reminders_follow_the_working_days_across_a_holiday(db: &TestDb) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let tick = |now: &str| tick(db, &app, dir.path(), &url, now);

    // Two cases wait at the center (received: one working day), one is at the unit (five).
    let waiting = [app.new_case("H-1").await, app.new_case("H-2").await];
    let at_unit = app.new_case("H-3").await;
    app.to_rectifying(&at_unit).await;
    assert_eq!(
        app.case("admin", &waiting[0]).await["deadline"],
        "2021-09-30T16:00:00Z"
    );
    // 9/30, then 10/8, 10/9 (make-up Saturday), 10/11, 10/12.
    assert_eq!(
        app.case("admin", &at_unit).await["deadline"],
        "2021-10-12T16:00:00Z"
    );

    // The assignment goes out at once, to the unit's mailbox and its staff, in Chinese.
    let out = tick("2021-09-29T23:59:00");
    let mails = smtp.take();
    assert_eq!(
        summary(&mails),
        [(
            to(&["shaba-social@example.org", "unit@example.org"]),
            "【好差评】新的差评整改工单：城乡居民基本养老保险参保登记".to_owned()
        )],
        "{out}"
    );
    let assigned = &mails[0];
    assert!(
        assigned.raw_headers().contains("Subject: =?utf-8?"),
        "RFC 2047: {}",
        assigned.raw_headers()
    );
    let text = assigned.text();
    for expected in [
        "沙坝镇社会保障服务所",
        "核实整改中",
        "2021年10月12日（星期二）24:00",
        "剩余 5 个工作日",
        &format!("{}/cases/{at_unit}", app.base),
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(assigned.html().contains("<table"), "{}", assigned.html());
    assert_eq!(assigned.from, "noreply@hcp.example.org");

    // The center's cases become due soon when 9/30 begins; the digest waits for 08:30.
    let out = tick("2021-09-30T00:00:00");
    assert!(out.contains("提醒 2 条"), "{out}");
    assert!(smtp.take().is_empty());
    let out = tick("2021-09-30T08:29:59");
    assert!(out.contains("每日汇总 0 封"), "{out}");
    assert!(smtp.take().is_empty());

    // 08:30: one digest to the center staff gathering both cases.
    let out = tick("2021-09-30T08:30:00");
    let mails = smtp.take();
    assert_eq!(mails.len(), 1, "{out}: {:?}", summary(&mails));
    assert_eq!(mails[0].to, to(&["center@example.org"]));
    assert!(
        mails[0].subject().contains("2 件"),
        "{}",
        mails[0].subject()
    );
    let text = mails[0].text();
    for expected in [project("H-1"), project("H-2")] {
        assert!(text.contains(&expected), "{expected} in {text}");
    }
    assert_eq!(text.matches("【即将到期】").count(), 2, "{text}");
    assert!(text.contains("今日到期"), "{text}");

    // Overdue when 9/30 ends: marked, no mail over the holiday.
    let out = tick("2021-10-01T00:00:00");
    assert!(out.contains("提醒 2 条"), "{out}");
    let case = app.case("admin", &waiting[0]).await;
    assert_eq!(
        (case["overdue"].as_bool(), case["escalated"].as_bool()),
        (Some(true), Some(false))
    );
    tick("2021-10-04T09:00:00");
    tick("2021-10-07T18:00:00");
    assert!(smtp.take().is_empty(), "no mail on holidays");

    // 10/8 (Friday, first working day): the digest lists both as overdue.
    tick("2021-10-08T08:30:00");
    let mails = smtp.take();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, to(&["center@example.org"]));
    let text = mails[0].text();
    assert_eq!(text.matches("【已超期】").count(), 2, "{text}");
    assert!(text.contains("已超期 1 个工作日"), "{text}");

    // One working day overdue (10/8 ended): each case escalates to the supervisor above the center,
    // once; not to the other town's supervisor.
    let out = tick("2021-10-09T00:00:00");
    assert!(out.contains("提醒 2 条"), "{out}");
    let mails = smtp.take();
    assert_eq!(
        summary(&mails),
        vec![
            (
                to(&["sup@example.org"]),
                "【好差评】超期督办：城乡居民基本养老保险参保登记".to_owned()
            );
            2
        ]
    );
    assert!(mails[0].text().contains("请督促承办单位尽快整改"));
    let case = app.case("admin", &waiting[1]).await;
    assert_eq!(
        (case["overdue"].as_bool(), case["escalated"].as_bool()),
        (Some(true), Some(true))
    );
    let out = tick("2021-10-09T00:00:00");
    assert!(
        out.contains("提醒 0 条") && out.contains("发出邮件 0 封"),
        "{out}"
    );
    assert!(smtp.take().is_empty());

    // 10/12 08:30: the unit's case is due soon; each address gets its own digest.
    tick("2021-10-12T08:30:00");
    let mails = smtp.take();
    let mut digests: Vec<(Vec<String>, usize)> = mails
        .iter()
        .map(|m| (m.to.clone(), m.text().matches(&project("H")).count()))
        .collect();
    digests.sort();
    assert_eq!(
        digests,
        [
            (to(&["center@example.org"]), 2),
            (to(&["shaba-social@example.org"]), 1),
            (to(&["unit@example.org"]), 1),
        ]
    );
    let unit_digest = mails
        .iter()
        .find(|m| m.to == to(&["unit@example.org"]))
        .unwrap();
    assert!(unit_digest.text().contains(&project("H-3")));

    // A pass that missed 10/13 finds the unit's case overdue and escalated at once.
    let out = tick("2021-10-14T00:00:00");
    assert!(out.contains("提醒 2 条"), "{out}");
    let mails = smtp.take();
    assert_eq!(
        summary(&mails),
        [(
            to(&["sup@example.org"]),
            "【好差评】超期督办：城乡居民基本养老保险参保登记".to_owned()
        )]
    );
    assert!(mails[0].text().contains("沙坝镇社会保障服务所"));
}

/// Two `bihuan tick` processes at the same moment: every reminder, escalation and digest once.
async fn two_passes_at_once_send_each_mail_once(db: &TestDb) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.new_case(&format!("C-{i}")).await);
    }
    let both = |now: &str| {
        let children: Vec<_> = (0..2)
            .map(|_| {
                tick_command(db, &app, dir.path(), &url, now)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", bihuan_tests::text(&out).1);
        }
    };
    // 10/9 00:00: all twelve are overdue and escalated.
    both("2021-10-09T00:00:00");
    let mails = smtp.take();
    assert_eq!(mails.len(), 12, "{:?}", summary(&mails));
    let mut ids_seen: Vec<String> = mails.iter().map(Received::message_id).collect();
    ids_seen.sort();
    ids_seen.dedup();
    assert_eq!(ids_seen.len(), 12);
    assert!(mails.iter().all(|m| m.to == to(&["sup@example.org"])));
    for id in &ids {
        let case = app.case("admin", id).await;
        assert_eq!(case["escalated"], true);
    }
    // 10/9 is a make-up working day: at 08:30 one digest with all twelve.
    both("2021-10-09T08:30:00");
    let mails = smtp.take();
    assert_eq!(mails.len(), 1, "{:?}", summary(&mails));
    assert_eq!(mails[0].text().matches("【已超期】").count(), 12);
    // And a third pass later that day adds nothing.
    tick(db, &app, dir.path(), &url, "2021-10-09T17:00:00");
    assert!(smtp.take().is_empty());
    let (_, sent) = app
        .call(
            "admin",
            Method::GET,
            "/api/v1/outbox?status=sent&per_page=100",
            None,
        )
        .await;
    assert_eq!(sent["total"], 13, "{sent}");
}

/// With the mail server down a mail stays queued, its attempts and error recorded; it goes out once
/// the server is back, and after the last retry it is dead and listed for admins.
async fn mail_waits_for_a_mail_server_that_is_down_and_goes_out_once(db: &TestDb) {
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    // The server works, then stops.
    let smtp = SmtpServer::start();
    let (port, url) = (smtp.port, smtp.url());
    let warmup = app.new_case("D-0").await;
    app.to_rectifying(&warmup).await;
    tick(db, &app, dir.path(), &url, "2021-09-29T10:30:00");
    assert_eq!(smtp.take().len(), 1);
    smtp.stop();
    let first = app.new_case("D-1").await;
    app.to_rectifying(&first).await;
    let also = app.new_case("D-1b").await;
    app.to_rectifying(&also).await;

    // The first attempt fails; the other mail is handed back untried rather than waiting for its own
    // failure.
    let out = tick(db, &app, dir.path(), &url, "2021-09-29T11:00:00");
    assert!(out.contains("待重试 1 封"), "{out}");
    let queued = |status: &'static str| {
        let app = &app;
        async move {
            let (code, list) = app
                .call(
                    "admin",
                    Method::GET,
                    &format!("/api/v1/outbox?status={status}"),
                    None,
                )
                .await;
            assert_eq!(code, StatusCode::OK);
            list["items"].as_array().unwrap().clone()
        }
    };
    let pending = queued("pending").await;
    let mut attempts: Vec<i64> = pending
        .iter()
        .map(|m| m["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, [0, 1], "{pending:?}");
    let tried = pending.iter().find(|m| m["attempts"] == 1).unwrap();
    assert!(
        tried["last_error"].as_str().unwrap().contains("SMTP"),
        "{tried}"
    );
    assert!(
        pending
            .iter()
            .all(|m| m["next_attempt_at"] == "2021-09-29T03:01:00Z"),
        "{pending:?}"
    );

    // Not yet due: no attempt.
    let out = tick(db, &app, dir.path(), &url, "2021-09-29T11:00:30");
    assert!(
        out.contains("发出邮件 0 封") && out.contains("待重试 0 封"),
        "{out}"
    );
    assert_eq!(queued("pending").await.len(), 2);

    // The server is back on the same port: each mail goes out once.
    let smtp = SmtpServer::start_on(port, None);
    let out = tick(db, &app, dir.path(), &url, "2021-09-29T11:01:00");
    assert!(out.contains("发出邮件 2 封"), "{out}");
    tick(db, &app, dir.path(), &url, "2021-09-29T11:30:00");
    let mails = smtp.take();
    assert_eq!(mails.len(), 2);
    let mut sent_for: Vec<usize> = mails
        .iter()
        .map(|m| {
            assert!(m.subject().contains("新的差评整改工单"));
            usize::from(m.text().contains(&project("D-1b")))
        })
        .collect();
    sent_for.sort();
    assert_eq!(sent_for, [0, 1], "one mail for each case");
    let sent = queued("sent").await;
    let mut attempts: Vec<i64> = sent
        .iter()
        .map(|m| m["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [1, 1, 2],
        "the warm-up once, the handed-back mail once, the failed one twice"
    );

    // Another server that stays down: after eight attempts (the waits double from one minute to 64),
    // the mail is dead.
    let second = app.new_case("D-2").await;
    app.to_rectifying(&second).await;
    let down = format!("smtp://127.0.0.1:{}", SmtpServer::free_port());
    let start = instant("2021-09-29T12:00:00");
    for k in 0..8 {
        let at = (start + chrono::Duration::hours(2 * k)).with_timezone(&chrono_tz::Asia::Shanghai);
        let out = tick(
            db,
            &app,
            dir.path(),
            &down,
            &at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        );
        let expected = if k < 7 {
            "待重试 1 封"
        } else {
            "放弃 1 封"
        };
        assert!(out.contains(expected), "attempt {}: {out}", k + 1);
    }
    let dead = queued("dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["attempts"], 8);
    assert_eq!(dead[0]["case_id"].as_str(), Some(second.as_str()));
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("SMTP"),
        "{dead:?}"
    );
    assert!(queued("pending").await.is_empty());
    // A dead mail is not retried.
    tick(db, &app, dir.path(), &url, "2021-10-08T12:00:00");
    assert!(smtp.take().is_empty());
}

/// Percent-encodes a form value.
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn page(
    app: &TestApp,
    method: Method,
    url: &str,
    form: Option<&str>,
) -> (StatusCode, String) {
    let mut req = app.client.request(method, url);
    if let Some(body) = form {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "an HTML page"
    );
    (status, resp.text().await.unwrap())
}

fn last_event(case: &Value) -> Value {
    case["events"].as_array().unwrap().last().unwrap().clone()
}

/// The rater's one-time link: mailed when the case reaches review, answers once, then refuses; a link
/// whose review timed out says it expired.
async fn the_raters_link_works_once_then_refuses(db: &TestDb) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let answered = app.new_case("R-1").await;
    let silent = app.new_case("R-2").await;
    let explained = app.new_case("R-3").await;
    app.to_review(&answered).await;
    app.to_review(&silent).await;
    app.to_rectifying(&explained).await;
    let explain =
        json!({"finding": "untrue", "measures": "已向群众说明政策规定", "outcome": "explained"});
    app.step("unit", &explained, "rectify", explain).await;
    let feedback = json!({"method": "phone", "summary": "已电话说明"});
    app.step("unit", &explained, "feedback", feedback).await;
    tick(db, &app, dir.path(), &url, "2021-09-29T12:00:00");
    let invitations: Vec<Received> = smtp
        .take()
        .into_iter()
        .filter(|m| m.to == to(&["zhangsan@example.org"]))
        .collect();
    assert_eq!(invitations.len(), 3);
    let link_of = |mail: &Received| -> String {
        let text = mail.text();
        let start = text.find(&format!("{}/r/", app.base)).expect("a link");
        text[start..].split_whitespace().next().unwrap().to_owned()
    };
    let find = |project_no: &str| {
        invitations
            .iter()
            .find(|m| m.text().contains(project_no))
            .unwrap()
    };
    // What the unit did, in its words: an explanation is never called a rectification.
    let told = find(&project("R-3"));
    assert!(told.text().contains("与事实不符"), "{}", told.text());
    assert!(
        !told.text().contains("整改") && !told.subject().contains("整改"),
        "{}",
        told.text()
    );
    let mail = find(&project("R-1"));
    assert!(mail.subject().contains("请评价"), "{}", mail.subject());
    assert!(mail.text().contains("已核实整改"), "{}", mail.text());
    let link = link_of(mail);
    let expired_link = link_of(find(&project("R-2")));
    assert_ne!(link, expired_link);
    assert!(
        link.len() > app.base.len() + 3 + 60,
        "an unguessable token: {link}"
    );
    // Once sent, the stored copies keep no token.
    let token = link.rsplit('/').next().unwrap().to_owned();
    let stored = <bihuan_store::entity::outbox::Entity as sea_orm::EntityTrait>::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert!(stored.iter().any(|m| m.body.contains("链接已随邮件发出")));
    assert!(
        stored
            .iter()
            .all(|m| !m.body.contains(&token) && !m.html.as_deref().unwrap_or("").contains(&token)),
        "a sent mail keeps its link's token: {:?}",
        stored
            .iter()
            .filter(|m| m.body.contains(&token))
            .map(|m| (&m.status, &m.kind, &m.subject, &m.body))
            .collect::<Vec<_>>()
    );

    let (status, html) = page(&app, Method::GET, &link, None).await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "viewport",
        "满意",
        "基本满意",
        "不满意",
        "城乡居民基本养老保险参保登记",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    // 不满意 needs a reason; the link stays usable.
    let (status, html) = page(
        &app,
        Method::POST,
        &link,
        Some("choice=unsatisfied&comment="),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请写明不满意的原因"), "{html}");
    let (status, html) = page(&app, Method::POST, &link, Some("choice=maybe")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请选择"), "{html}");
    assert_eq!(
        app.case("admin", &answered).await["state"],
        "pending_review"
    );

    let body = format!(
        "choice=basically_satisfied&comment={}",
        form_value("窗口态度很好 & 快")
    );
    let (status, html) = page(&app, Method::POST, &link, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("感谢"), "{html}");
    let case = app.case("admin", &answered).await;
    assert_eq!(case["state"], "closed");
    let event = last_event(&case);
    assert_eq!(
        (event["action"].as_str(), event["actor"].as_str()),
        (Some("review_satisfied"), Some("rater"))
    );
    assert_eq!(
        event["fields"],
        json!({"level": "basically_satisfied", "comment": "窗口态度很好 & 快"})
    );

    // Used: the page and the form refuse, nothing changes.
    let (status, html) = page(&app, Method::GET, &link, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("已使用"), "{html}");
    let (status, _) = page(
        &app,
        Method::POST,
        &link,
        Some("choice=unsatisfied&comment=x"),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        app.case("admin", &answered).await["version"],
        case["version"]
    );

    // The other review times out after five working days (10/12 24:00): its link has expired.
    tick(db, &app, dir.path(), &url, "2021-10-13T00:00:00");
    let case = app.case("admin", &silent).await;
    assert_eq!(last_event(&case)["action"], "review_timeout");
    let (status, html) = page(&app, Method::GET, &expired_link, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("已过期"), "{html}");

    let (status, html) = page(
        &app,
        Method::GET,
        &format!("{}/r/not-a-token", app.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("链接无效"), "{html}");
}

/// `BIHUAN_SMTP_URL` with a user and password logs in; a wrong password keeps the mail queued with the
/// server's answer; without `BIHUAN_SMTP_URL` mail is written as .eml files under `./outbox/`.
async fn mail_logs_in_to_the_server_or_is_written_as_eml_files(db: &TestDb) {
    let smtp = SmtpServer::start_on(0, Some(("clerk", "s3cret")));
    let app = app(db).await;
    let dir = tempfile::tempdir().unwrap();
    let first = app.new_case("L-1").await;
    app.to_rectifying(&first).await;

    // STARTTLS required by the URL and not offered by the server: nothing goes out in clear text.
    let tls = format!("smtp://clerk:s3cret@127.0.0.1:{}?tls=required", smtp.port);
    let out = tick(db, &app, dir.path(), &tls, "2021-09-29T10:50:00");
    assert!(out.contains("待重试 1 封"), "{out}");
    assert!(smtp.take().is_empty());

    let wrong = format!("smtp://clerk:guess@127.0.0.1:{}", smtp.port);
    let out = tick(db, &app, dir.path(), &wrong, "2021-09-29T10:52:00");
    assert!(out.contains("待重试 1 封"), "{out}");
    assert!(smtp.take().is_empty());
    let (_, pending) = app
        .call("admin", Method::GET, "/api/v1/outbox?status=pending", None)
        .await;
    let error = pending["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("535"), "{error}");
    assert!(
        !error.contains("guess"),
        "no password in the error: {error}"
    );

    let right = format!("smtp://clerk:s3cret@127.0.0.1:{}", smtp.port);
    let out = tick(db, &app, dir.path(), &right, "2021-09-29T11:00:00");
    assert!(out.contains("发出邮件 1 封"), "{out}");
    let mails = smtp.take();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].user.as_deref(), Some("clerk"));

    // No mail server: the next mail becomes a file a clerk can open.
    let second = app.new_case("L-2").await;
    app.to_rectifying(&second).await;
    let out = bihuan_tests::bihuan(dir.path())
        .args([
            "tick",
            "--now",
            &local("2021-09-29T12:00:00"),
            "--db",
            &db.url,
            "--workflows",
        ])
        .arg(bihuan_tests::root().join("workflows"))
        .env("BIHUAN_PUBLIC_URL", &app.base)
        .output()
        .unwrap();
    let (stdout, stderr) = bihuan_tests::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("发出邮件 1 封"), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let eml = Received {
        from: String::new(),
        to: Vec::new(),
        user: None,
        raw: std::fs::read(&files[0]).unwrap(),
    };
    assert_eq!(
        eml.subject(),
        "【好差评】新的差评整改工单：城乡居民基本养老保险参保登记"
    );
    assert!(eml.text().contains(&project("L-2")), "{}", eml.text());
}
