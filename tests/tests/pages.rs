//! The web pages at the HTML level, for every page and role, on SQLite and PostgreSQL: what is shown,
//! what is hidden (another unit's cases, unmasked phones), forms refused without their CSRF token.
//! `browser.rs` runs the same loop in a real browser.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_test_support::TestDb;
use bihuan_tests::api::{PASSWORD, TestApp, spawn};
use bihuan_tests::pages::{Browser, hidden};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

bihuan_test_support::on_both_databases!(
    the_loop_runs_through_the_pages,
    each_role_sees_only_its_own,
    forms_without_their_csrf_token_are_refused,
    supervisors_audit_and_admins_manage,
    ledger_stats_and_exports_work_with_the_session,
    a_request_for_more_time_goes_through_the_pages_to_the_supervisor,
    a_scheduled_rectification_is_filed_and_reported_done_on_the_case_page,
    an_appeal_a_refused_extension_and_a_concluded_loop_go_through_the_case_page,
);

/// The form of an action on a case page, from `id="action-NAME"` to its end.
fn action_form<'h>(html: &'h str, action: &str) -> Option<&'h str> {
    let start = html.find(&format!("id=\"action-{action}\""))?;
    let end = html[start..].find("</form>")?;
    Some(&html[start..start + end])
}

/// Takes an action through its form on the case page; returns the answer.
async fn act(
    browser: &mut Browser<'_>,
    id: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> bihuan_tests::pages::Page {
    let page = browser.get(&format!("/cases/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let form = action_form(&page.html, action)
        .unwrap_or_else(|| panic!("no form for {action} on {}", page.html));
    let version = hidden(form, "version").unwrap();
    let mut body = vec![
        ("csrf".to_owned(), page.csrf()),
        ("action".to_owned(), action.to_owned()),
        ("version".to_owned(), version),
    ];
    body.extend(
        fields
            .iter()
            .map(|(k, v)| (format!("f.{k}"), (*v).to_owned())),
    );
    let pairs: Vec<(&str, &str)> = body.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post(&format!("/cases/{id}"), &pairs).await
}

/// Uploads a photo through the case page's upload form; answers the new file's id (the last one the
/// page lists).
async fn upload(browser: &mut Browser<'_>, id: &str, name: &str) -> String {
    let page = browser.get(&format!("/cases/{id}")).await;
    let done = browser
        .post_file(
            &format!("/cases/{id}/attachments"),
            &[("csrf", &page.csrf())],
            ("file", name, &bihuan_tests::api::png(name)),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let page = browser.get(&format!("/cases/{id}")).await;
    let link = "href=\"/api/v1/attachments/";
    let start = page.html.rfind(link).unwrap() + link.len();
    page.html[start..start + 36].to_owned()
}

async fn state(app: &TestApp, id: &str) -> String {
    app.case("admin", id).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_loop_runs_through_the_pages(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("P-1").await;

    // Not signed in: every page leads to the sign-in page, which brings the user back.
    let mut anonymous = Browser::new(&app);
    let page = anonymous.get(&format!("/cases/{id}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let to = page.location.unwrap();
    assert!(to.starts_with("/login?next=%2Fcases%2F"), "{to}");
    // A wrong password says so and keeps the username.
    let login = anonymous.get(&to).await;
    assert!(login.html.contains("登录"), "{}", login.html);
    let wrong = anonymous
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", "center"),
                ("password", "wrong"),
                ("next", &format!("/cases/{id}")),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.html.contains("用户名或密码错误"), "{}", wrong.html);
    assert!(wrong.html.contains("value=\"center\""), "{}", wrong.html);
    let right = anonymous
        .post(
            "/login",
            &[
                ("csrf", &wrong.csrf()),
                ("username", "center"),
                ("password", PASSWORD),
                ("next", &format!("/cases/{id}")),
            ],
        )
        .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.html);
    assert_eq!(
        right.location.as_deref(),
        Some(format!("/cases/{id}").as_str())
    );
    let mut center = anonymous;

    // 我的待办 lists the new case with its deadline in working days.
    let todo = center.get("/").await;
    assert_eq!(todo.status, StatusCode::OK);
    assert!(todo.html.contains(&format!("/cases/{id}")), "{}", todo.html);
    assert!(todo.html.contains("500114-2021-P-1"));
    assert!(
        todo.html.contains("个工作日") || todo.html.contains("今日到期"),
        "{}",
        todo.html
    );

    // Accept, then transfer with the unit picked from the organization.
    let accepted = act(&mut center, &id, "accept", &[]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.html);
    let shown = center.get(accepted.location.as_deref().unwrap()).await;
    assert!(shown.html.contains("已完成“受理”"), "{}", shown.html);
    let form = action_form(&shown.html, "transfer").unwrap();
    assert!(
        form.contains("<select") && form.contains("沙坝镇社会保障服务所"),
        "{form}"
    );
    let transferred = act(&mut center, &id, "transfer", &[("unit", "shaba-social")]).await;
    assert_eq!(
        transferred.status,
        StatusCode::SEE_OTHER,
        "{}",
        transferred.html
    );
    assert_eq!(state(&app, &id).await, "rectifying");

    // The unit rectifies: a missing field comes back beside the field, with the values entered kept.
    let mut unit = Browser::signed_in(&app, "unit").await;
    assert!(unit.get("/").await.html.contains(&format!("/cases/{id}")));
    let missing = act(
        &mut unit,
        &id,
        "rectify",
        &[("finding", "partly_true"), ("measures", "补充一次性告知单")],
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = action_form(&missing.html, "rectify").unwrap();
    assert!(form.contains("rectify-outcome-error"), "{form}");
    assert!(form.contains("请填写整改结果"), "{form}");
    assert!(form.contains("补充一次性告知单</textarea>"), "{form}");
    assert!(form.contains("value=\"partly_true\" selected"), "{form}");
    assert_eq!(state(&app, &id).await, "rectifying", "nothing was written");
    // 已整改 needs its 整改佐证材料: none uploaded yet, the form says so beside the field.
    let rectified = [
        ("finding", "partly_true"),
        ("measures", "补充一次性告知单"),
        ("outcome", "rectified"),
    ];
    let unproved = act(&mut unit, &id, "rectify", &rectified).await;
    assert_eq!(unproved.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = action_form(&unproved.html, "rectify").unwrap();
    assert!(
        form.contains("请先上传并勾选整改佐证材料") && form.contains("尚未上传佐证材料"),
        "{form}"
    );
    // A file judged by its bytes: a script named .jpg is refused, a photo kept and offered.
    let page = unit.get(&format!("/cases/{id}")).await;
    let upload = format!("/cases/{id}/attachments");
    let refused = unit
        .post_file(
            &upload,
            &[("csrf", &page.csrf())],
            ("file", "现场照片.jpg", b"#!/bin/sh\nrm -rf /\n"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(refused.html.contains("文件类型不支持"), "{}", refused.html);
    let photo = bihuan_tests::api::png("整改后现场");
    let uploaded = unit
        .post_file(
            &upload,
            &[("csrf", &page.csrf())],
            ("file", "整改后现场.png", &photo),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::SEE_OTHER, "{}", uploaded.html);
    let page = unit.get(uploaded.location.as_deref().unwrap()).await;
    assert!(page.html.contains("已上传"), "{}", page.html);
    let form = action_form(&page.html, "rectify").unwrap();
    let start = form.find("name=\"f.evidence\" value=\"").unwrap() + 25;
    let file_id = form[start..start + 36].to_owned();
    assert!(form.contains("整改后现场.png"), "{form}");
    let (status, kind, bytes) = unit.fetch(&format!("/api/v1/attachments/{file_id}")).await;
    assert_eq!(
        (status, kind.as_str(), bytes),
        (StatusCode::OK, "image/png", photo)
    );
    let mut with_file = rectified.to_vec();
    with_file.push(("evidence", &file_id));
    let done = act(&mut unit, &id, "rectify", &with_file).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let case = app.case("admin", &id).await;
    assert_eq!(
        case["events"][3]["fields"]["evidence"][0]["name"],
        "整改后现场.png"
    );

    // A stale form (someone acted meanwhile) says so and shows the fresh case.
    let stale = unit.get(&format!("/cases/{id}")).await;
    let stale_version = hidden(action_form(&stale.html, "feedback").unwrap(), "version").unwrap();
    app.step("unit", &id, "contact_attempt", json!({"method": "phone"}))
        .await;
    let conflict = unit
        .post(
            &format!("/cases/{id}"),
            &[
                ("csrf", &stale.csrf()),
                ("action", "feedback"),
                ("version", &stale_version),
                ("f.method", "phone"),
                ("f.summary", "已电话回访"),
            ],
        )
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(
        conflict.html.contains("其他人已先处理"),
        "{}",
        conflict.html
    );
    assert!(
        conflict.html.contains("联系未果"),
        "the fresh timeline: {}",
        conflict.html
    );
    let visited = act(
        &mut unit,
        &id,
        "feedback",
        &[("method", "phone"), ("summary", "已电话回访")],
    )
    .await;
    assert_eq!(visited.status, StatusCode::SEE_OTHER, "{}", visited.html);
    assert_eq!(state(&app, &id).await, "pending_review");

    // The timeline shows who did what, with the recorded fields in words.
    let page = unit.get(&format!("/cases/{id}")).await;
    for text in [
        "生成差评工单",
        "受理",
        "转办",
        "提交整改",
        "反馈回访",
        "部分属实",
        "已电话回访",
        "center",
        "unit",
    ] {
        assert!(page.html.contains(text), "{text} in {}", page.html);
    }

    // Signing out ends the session: the old cookie no longer opens pages.
    let cookie = unit.cookie("bihuan_session").unwrap().to_owned();
    let csrf = page.csrf();
    let out = unit.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(unit.cookie("bihuan_session").is_none());
    let replayed = bihuan_tests::http()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", app.base))
        .header("cookie", format!("bihuan_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replayed.status(),
        StatusCode::SEE_OTHER,
        "a revoked session goes back to the sign-in page"
    );
}

async fn each_role_sees_only_its_own(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("R-1").await;

    // The center sees the rater's phone; the viewer sees it masked and has no forms.
    let mut center = Browser::signed_in(&app, "center").await;
    let page = center.get(&format!("/cases/{id}")).await;
    assert!(page.html.contains("13800001234"), "{}", page.html);
    assert!(page.html.contains("id=\"action-accept\""));
    let mut viewer = Browser::signed_in(&app, "viewer").await;
    let page = viewer.get(&format!("/cases/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains("138****1234") && !page.html.contains("13800001234"),
        "{}",
        page.html
    );
    assert!(page.html.contains("张*"), "{}", page.html);
    assert!(
        !page.html.contains("<form method=\"post\" action=\"/cases/"),
        "{}",
        page.html
    );
    assert!(
        viewer
            .get("/")
            .await
            .html
            .contains("目前没有需要您处理的差评工单")
    );

    // Unit staff see the case only once it is theirs, with the phone (they call the rater).
    let mut unit = Browser::signed_in(&app, "unit").await;
    assert_eq!(
        unit.get(&format!("/cases/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    app.to_rectifying(&id).await;
    let page = unit.get(&format!("/cases/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("13800001234"));
    assert!(page.html.contains("id=\"action-rectify\""));
    assert!(!page.html.contains("id=\"action-accept\""));

    // The other town sees nothing of it: not the page, not in its lists.
    for user in ["o_center", "o_unit", "o_sup", "o_viewer"] {
        let mut other = Browser::signed_in(&app, user).await;
        let page = other.get(&format!("/cases/{id}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{user}");
        assert!(
            page.html.contains("不存在或不在您的权限范围内"),
            "{}",
            page.html
        );
        for list in ["/", "/ledger"] {
            let html = other.get(list).await.html;
            assert!(
                !html.contains(&id) && !html.contains("500114-2021-R-1"),
                "{user} {list}"
            );
        }
    }

    // The navigation and the pages follow the role.
    let html = center.get("/").await.html;
    assert!(
        html.contains(">差评台账</a>")
            && !html.contains(">督查</a>")
            && !html.contains(">管理</a>"),
        "{html}"
    );
    assert_eq!(center.get("/supervise").await.status, StatusCode::FORBIDDEN);
    assert_eq!(center.get("/admin").await.status, StatusCode::FORBIDDEN);
    let mut sup = Browser::signed_in(&app, "sup").await;
    let html = sup.get("/").await.html;
    assert!(
        html.contains(">督查</a>") && !html.contains(">管理</a>"),
        "{html}"
    );
    assert_eq!(sup.get("/supervise").await.status, StatusCode::OK);
    assert_eq!(sup.get("/admin").await.status, StatusCode::FORBIDDEN);
    let mut admin = Browser::signed_in(&app, "admin").await;
    assert!(admin.get("/").await.html.contains(">管理</a>"));

    // Personal data in forms comes back escaped, never as markup.
    let (status, _) = app
        .push_rating(&json!({"source":"yukuaiban","source_id":"R-2","project_no":"<script>x</script>",
            "service_code":"S","service_name":"<b>事项</b>","unit_code":"shaba-center","region_code":"500114112",
            "channel":"pc","level":"dissatisfied","rated_at":"2021-05-06T10:00:00+08:00","assess_number":1,
            "rater":{"type":"individual","real_name":false,"name":null,"phone":null,"email":null},
            "staff":[],"indicators":{},"comment":"<img src=x onerror=alert(1)>"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let html = center.get("/").await.html;
    assert!(
        html.contains("&lt;b&gt;事项") && !html.contains("<b>事项"),
        "{html}"
    );
    assert!(!html.contains("<script>x</script>"));
}

async fn forms_without_their_csrf_token_are_refused(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("C-1").await;
    let mut center = Browser::signed_in(&app, "center").await;
    let page = center.get(&format!("/cases/{id}")).await;
    let version = hidden(action_form(&page.html, "accept").unwrap(), "version").unwrap();
    for csrf in [None, Some("0".repeat(64)), Some(String::new())] {
        let mut form = vec![("action", "accept"), ("version", version.as_str())];
        if let Some(c) = &csrf {
            form.push(("csrf", c.as_str()));
        }
        let refused = center.post(&format!("/cases/{id}"), &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{csrf:?}");
        assert!(refused.html.contains("CSRF"), "{}", refused.html);
    }
    assert_eq!(state(&app, &id).await, "received", "nothing was done");

    // Another user's token does not pass either: tokens belong to their session.
    let mut sup = Browser::signed_in(&app, "sup").await;
    let sup_csrf = sup.get("/").await.csrf();
    let refused = center
        .post(
            &format!("/cases/{id}"),
            &[
                ("csrf", &sup_csrf),
                ("action", "accept"),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Signing out and in need theirs too.
    assert_eq!(
        center.post("/logout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(center.cookie("bihuan_session").is_some());
    let mut fresh = Browser::new(&app);
    let login = fresh.get("/login").await;
    fresh.drop_cookie("bihuan_login");
    let refused = fresh
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", "center"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(fresh.cookie("bihuan_session").is_none());

    // The session cookie reads the API (exports, charts) but never changes anything through it.
    let cookie = center.cookie("bihuan_session").unwrap().to_owned();
    let client = bihuan_tests::http().build().unwrap();
    let answer = client
        .request(
            Method::POST,
            format!("{}/api/v1/cases/{id}/actions", app.base),
        )
        .header("cookie", format!("bihuan_session={cookie}"))
        .json(&json!({"action": "accept", "version": 1, "fields": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let read = client
        .get(format!("{}/api/v1/cases/{id}", app.base))
        .header("cookie", format!("bihuan_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(state(&app, &id).await, "received");

    // The session cookie is HttpOnly and SameSite=Lax (and Secure behind https).
    let login = Browser::new(&app).get("/login").await;
    let form = [
        ("csrf", login.csrf()),
        ("username", "center".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let login_cookie = format!("bihuan_login={}", login.csrf());
    for (proto, secure) in [(None, false), (Some("https"), true)] {
        let mut req = bihuan_tests::http()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/login", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &login_cookie)
            .body(serde_urlencoded::to_string(form.clone()).unwrap());
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("bihuan_session="))
            .unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        assert_eq!(set.contains("Secure"), secure, "{set}");
    }
}

async fn supervisors_audit_and_admins_manage(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("S-1").await;
    app.to_review(&id).await;
    app.step(
        "center",
        &id,
        "review_satisfied",
        json!({"level": "satisfied"}),
    )
    .await;
    assert_eq!(state(&app, &id).await, "closed");
    let appeal = app.new_case("S-2").await;
    app.to_rectifying(&appeal).await;
    let fields = json!({"category": "mistaken", "reason": "非本单位办理"});
    app.step(
        "unit",
        &appeal,
        "appeal",
        app.cited(&appeal, "appeal", fields).await,
    )
    .await;

    let mut sup = Browser::signed_in(&app, "sup").await;
    let page = sup.get("/supervise").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("申诉待复核（1）"), "{}", page.html);
    assert!(page.html.contains(&format!("/cases/{appeal}")));
    assert!(
        page.html.contains(&format!("id=\"audit-{id}\"")),
        "the closed case is sampled"
    );
    // The chain on request.
    let verified = sup.get("/supervise?verify=1").await;
    assert!(verified.html.contains("完好"), "{}", verified.html);

    // A fail without a reason comes back with the error; with one it reopens the case.
    let csrf = page.csrf();
    let back = sup
        .post(
            "/supervise/audits",
            &[
                ("csrf", &csrf),
                ("case_id", &id),
                ("verdict", "fail"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(back.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(back.html.contains("须写明理由"), "{}", back.html);
    assert_eq!(state(&app, &id).await, "closed");
    let failed = sup
        .post(
            "/supervise/audits",
            &[
                ("csrf", &csrf),
                ("case_id", &id),
                ("verdict", "fail"),
                ("reason", "回访记录与群众反映不符"),
            ],
        )
        .await;
    assert_eq!(failed.status, StatusCode::SEE_OTHER, "{}", failed.html);
    assert_eq!(
        state(&app, &id).await,
        "rectifying",
        "a failed audit reopens the case"
    );
    let case = sup.get(&format!("/cases/{id}")).await;
    assert!(
        case.html.contains("回访记录与群众反映不符") && case.html.contains("不通过"),
        "{}",
        case.html
    );

    // Admins: units as a tree, users, tokens (shown once), unmapped codes, dead mail retried.
    let mut admin = Browser::signed_in(&app, "admin").await;
    let page = admin.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("沙坝镇社会保障服务所") && page.html.contains("class=\"tree\""));
    let csrf = page.csrf();
    let added = admin
        .post(
            "/admin/units",
            &[
                ("csrf", &csrf),
                ("code", "shaba-agri"),
                ("name", "沙坝镇农业服务中心"),
                ("parent", "shaba"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    assert!(added.html.contains("已新增单位“沙坝镇农业服务中心”"));
    let duplicate = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "center"),
                ("role", "center_staff"),
                ("password", "another long password"),
            ],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        duplicate.html.contains("value=\"center\""),
        "the value is kept"
    );
    let token = admin
        .post("/admin/tokens", &[("csrf", &csrf), ("name", "赣服通")])
        .await;
    assert_eq!(token.status, StatusCode::OK);
    let shown = token
        .html
        .split("id=\"new-token\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(shown.starts_with("bhc_"), "{shown}");
    assert!(
        !admin.get("/admin").await.html.contains(&shown),
        "shown once"
    );

    let (status, _) = app
        .push_rating(&json!({"source":"yukuaiban","source_id":"S-3","project_no":"P","service_code":"S",
            "service_name":"事项","unit_code":"qianjiang-tax","region_code":"500114112","channel":"pc",
            "level":"satisfied","rated_at":"2021-05-06T10:00:00+08:00","assess_number":1,
            "rater":{"type":"individual","real_name":false,"name":null,"phone":null,"email":null},
            "staff":[],"indicators":{},"comment":null}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let page = admin.get("/admin").await;
    assert!(
        page.html.contains("<code>qianjiang-tax</code>"),
        "{}",
        page.html
    );

    let dead = bihuan_store::entity::outbox::ActiveModel {
        kind: sea_orm::Set("case_assigned".into()),
        case_id: sea_orm::Set(None),
        audience: sea_orm::Set("responsible_unit".into()),
        recipients: sea_orm::Set(json!(["shaba-social@example.org"])),
        subject: sea_orm::Set("【好差评】无法投递的提醒".into()),
        body: sea_orm::Set("正文".into()),
        unique_key: sea_orm::Set("dead-1".into()),
        status: sea_orm::Set(bihuan_store::OutboxStatus::Dead.into()),
        attempts: sea_orm::Set(8),
        next_attempt_at: sea_orm::Set(app.clock.now()),
        last_error: sea_orm::Set(Some("connection refused".into())),
        created_at: sea_orm::Set(app.clock.now()),
        sent_at: sea_orm::Set(None),
        html: sea_orm::Set(None),
        ..Default::default()
    };
    let dead = sea_orm::ActiveModelTrait::insert(dead, db.store.connection())
        .await
        .unwrap();
    let page = admin.get("/admin").await;
    assert!(page.html.contains("无法投递的提醒") && page.html.contains("connection refused"));
    let retried = admin
        .post(
            &format!("/admin/outbox/{}/retry", dead.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.html);
    let (_, pending) = app
        .call("admin", Method::GET, "/api/v1/outbox?status=pending", None)
        .await;
    assert!(
        pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == dead.id && m["attempts"] == 0)
    );
    let again = admin
        .post(
            &format!("/admin/outbox/{}/retry", dead.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "only dead mail is retried"
    );
}

async fn ledger_stats_and_exports_work_with_the_session(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let first = app.new_case("L-1").await;
    let second = app.new_case("L-2").await;
    app.to_rectifying(&second).await;
    let mut center = Browser::signed_in(&app, "center").await;

    let all = center.get("/ledger").await;
    assert!(all.html.contains(&first) && all.html.contains(&second));
    assert!(
        all.html.contains("href=\"/api/v1/export/cases.xlsx\""),
        "{}",
        all.html
    );
    let filtered = center.get("/ledger?state=rectifying").await;
    assert!(filtered.html.contains(&second) && !filtered.html.contains(&first));
    assert!(
        filtered
            .html
            .contains("href=\"/api/v1/export/cases.xlsx?state=rectifying\""),
        "{}",
        filtered.html
    );
    let period = center.get("/ledger?from=2021-05-01&to=2021-05-31").await;
    assert!(period.html.contains(&first));
    let none = center.get("/ledger?from=2022-01-01").await;
    assert!(!none.html.contains(&first) && none.html.contains("没有符合条件的差评工单"));
    let bad = center.get("/ledger?from=2021-13-01").await;
    assert!(bad.html.contains("日期无效"), "{}", bad.html);

    // The export takes the same filters, with the session cookie.
    let (status, kind, bytes) = center
        .fetch("/api/v1/export/cases.csv?state=rectifying")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"));
    let csv = String::from_utf8(bytes).unwrap();
    assert_eq!(csv.lines().count(), 2, "the header and the one case: {csv}");
    let (status, kind, _) = center.fetch("/api/v1/export/cases.xlsx").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.contains("spreadsheetml"));

    // 统计分析: the table with definitions, the pickers, the charts (served with the cookie).
    let stats = center
        .get("/stats?from=2021-01-01&to=2021-12-31&group_by=month")
        .await;
    assert_eq!(stats.status, StatusCode::OK);
    for text in [
        "差评整改率",
        "回访率",
        "title=\"",
        "2021-05",
        "trend.svg?from=2021-01-01",
        "指标说明",
    ] {
        assert!(stats.html.contains(text), "{text} in {}", stats.html);
    }
    let (status, kind, _) = center
        .fetch("/api/v1/charts/trend.svg?from=2021-01-01&to=2021-12-31")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("image/svg+xml"), "{kind}");
    let wrong = center.get("/stats?from=2021-12-31&to=2021-01-01").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.html.contains("结束日期早于开始日期"),
        "{}",
        wrong.html
    );

    // Static parts and unknown pages.
    let (status, kind, _) = center.fetch("/static/style.css").await;
    assert_eq!(
        (status, kind.starts_with("text/css")),
        (StatusCode::OK, true)
    );
    let missing = bihuan_tests::http()
        .build()
        .unwrap()
        .get(format!("{}/no-such-page", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("没有这个页面"));
}

/// A unit asks for more time on the case page; the 督查 page lists the request until a supervisor
/// answers it there, and the case page says what was asked and granted, never a version number.
async fn a_request_for_more_time_goes_through_the_pages_to_the_supervisor(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("X-1").await;
    app.to_rectifying(&id).await;
    let mut unit = Browser::signed_in(&app, "unit").await;
    let asked = act(
        &mut unit,
        &id,
        "request_extension",
        &[("days", "3"), ("reason", "需区医保局协助核实")],
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.html);
    let page = unit.get(&format!("/cases/{id}")).await;
    assert!(
        page.html.contains("申请延期 3 个工作日，待督查审批"),
        "{}",
        page.html
    );
    assert!(
        action_form(&page.html, "request_extension").is_none(),
        "one request at a time"
    );
    assert!(
        !page.html.contains("<dt>版本</dt>"),
        "no version number shown"
    );

    let mut sup = Browser::signed_in(&app, "sup").await;
    let board = sup.get("/supervise").await;
    assert!(
        board.html.contains("待审批的延期申请（1）")
            && board.html.contains(&format!("/cases/{id}")),
        "{}",
        board.html
    );
    let case_page = sup.get(&format!("/cases/{id}")).await;
    assert!(action_form(&case_page.html, "deny_extension").is_some());
    let granted = act(
        &mut sup,
        &id,
        "extend",
        &[("days", "2"), ("reason", "同意延期两个工作日")],
    )
    .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER, "{}", granted.html);
    let board = sup.get("/supervise").await;
    assert!(
        board.html.contains("待审批的延期申请（0）"),
        "{}",
        board.html
    );
    let page = sup.get(&format!("/cases/{id}")).await;
    assert!(page.html.contains("已延期 2 个工作日"), "{}", page.html);
    assert!(action_form(&page.html, "deny_extension").is_none());
}

async fn a_scheduled_rectification_is_filed_and_reported_done_on_the_case_page(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("S-1").await;
    app.to_rectifying(&id).await;
    let mut unit = Browser::signed_in(&app, "unit").await;
    let page = unit.get(&format!("/cases/{id}")).await;
    // The overall limit beside the state's own, and the date field with when it is taken.
    assert!(page.html.contains("<dt>整改反馈时限</dt>"), "{}", page.html);
    let form = action_form(&page.html, "rectify").unwrap();
    assert!(form.contains(r#"type="date""#), "{form}");
    assert!(
        form.contains("整改结果为“建立台账、限期整改”时填写"),
        "{form}"
    );
    assert!(action_form(&page.html, "complete_scheduled").is_none());

    // A due date with another outcome is named beside its field, and nothing is kept.
    let fields = |outcome| {
        [
            ("finding", "true"),
            ("measures", "自助终端改造列入年度台账"),
            ("outcome", outcome),
            ("due", "2021-06-30"),
        ]
    };
    let refused = act(&mut unit, &id, "rectify", &fields("rectified")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .html
            .contains("仅在“整改结果”为“建立台账、限期整改”时填写"),
        "{}",
        refused.html
    );
    assert_eq!(state(&app, &id).await, "rectifying");

    let filed = act(&mut unit, &id, "rectify", &fields("scheduled")).await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER, "{}", filed.html);
    let page = unit.get(&format!("/cases/{id}")).await;
    assert!(
        page.html.contains("<dt>限期整改</dt>") && page.html.contains("期限 2021年6月30日"),
        "{}",
        page.html
    );
    let proof = upload(&mut unit, &id, "终端上线验收单.png").await;
    let done = act(
        &mut unit,
        &id,
        "complete_scheduled",
        &[("summary", "终端已改造上线"), ("evidence", &proof)],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let page = unit.get(&format!("/cases/{id}")).await;
    assert!(page.html.contains("已完成"), "{}", page.html);
    assert!(action_form(&page.html, "complete_scheduled").is_none());
    assert_eq!(state(&app, &id).await, "pending_feedback");
    let case = app.case("admin", &id).await;
    assert_eq!(case["scheduled_due"], "2021-06-30");
    assert!(case["scheduled_done_at"].is_string(), "{case}");
}

/// An appeal filed on the case page reaches the 督查 page and is decided on the case page; a request
/// for more time is refused there; a loop reopened by repeated 不满意 reviews is concluded (认定办结)
/// there, and only such a loop.
async fn an_appeal_a_refused_extension_and_a_concluded_loop_go_through_the_case_page(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let id = app.new_case("A-1").await;
    app.to_rectifying(&id).await;
    let mut unit = Browser::signed_in(&app, "unit").await;
    let proof = upload(&mut unit, &id, "窗口登记表.png").await;
    let appealed = act(
        &mut unit,
        &id,
        "appeal",
        &[
            ("category", "mistaken"),
            ("reason", "评价对象为区医保局窗口"),
            ("evidence", &proof),
        ],
    )
    .await;
    assert_eq!(appealed.status, StatusCode::SEE_OTHER, "{}", appealed.html);
    assert_eq!(state(&app, &id).await, "appealing");

    let mut sup = Browser::signed_in(&app, "sup").await;
    let board = sup.get("/supervise").await;
    assert!(
        board.html.contains("申诉待复核（1）") && board.html.contains(&format!("/cases/{id}")),
        "{}",
        board.html
    );
    let page = sup.get(&format!("/cases/{id}")).await;
    assert!(
        action_form(&page.html, "uphold_appeal").is_some(),
        "{}",
        page.html
    );
    assert!(
        action_form(&page.html, "conclude").is_none(),
        "not escalated"
    );
    // A decision without its reason comes back with the form; nothing is kept.
    let refused = act(&mut sup, &id, "reject_appeal", &[("reason", "")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(state(&app, &id).await, "appealing");
    let rejected = act(
        &mut sup,
        &id,
        "reject_appeal",
        &[("reason", "经核实系本单位窗口办理")],
    )
    .await;
    assert_eq!(rejected.status, StatusCode::SEE_OTHER, "{}", rejected.html);
    assert_eq!(state(&app, &id).await, "rectifying");
    let board = sup.get("/supervise").await;
    assert!(board.html.contains("申诉待复核（0）"), "{}", board.html);
    // One appeal per case: the unit is not offered a second.
    let page = unit.get(&format!("/cases/{id}")).await;
    assert!(action_form(&page.html, "appeal").is_none(), "{}", page.html);
    assert!(
        page.html.contains("经核实系本单位窗口办理"),
        "{}",
        page.html
    );

    // More time asked, and refused with a reason the unit reads on its page.
    let asked = act(
        &mut unit,
        &id,
        "request_extension",
        &[("days", "5"), ("reason", "需协调区医保局")],
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.html);
    let denied = act(
        &mut sup,
        &id,
        "deny_extension",
        &[("reason", "可在原时限内答复群众")],
    )
    .await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER, "{}", denied.html);
    let board = sup.get("/supervise").await;
    assert!(
        board.html.contains("待审批的延期申请（0）"),
        "{}",
        board.html
    );
    let page = unit.get(&format!("/cases/{id}")).await;
    assert!(
        page.html.contains("不予延期") && page.html.contains("可在原时限内答复群众"),
        "{}",
        page.html
    );
    assert!(action_form(&page.html, "request_extension").is_some());

    // A loop the rater twice finds unsatisfying: reopened once within the limit, escalated the second
    // time, and the supervisor concludes it.
    let loop_id = app.new_case("A-2").await;
    app.to_review(&loop_id).await;
    let unsatisfied = json!({"reason": "诉求仍未解决"});
    app.step(
        "center",
        &loop_id,
        "review_unsatisfied",
        unsatisfied.clone(),
    )
    .await;
    let explained = json!({"finding": "true", "measures": "再次说明政策", "outcome": "explained"});
    app.step("unit", &loop_id, "rectify", explained).await;
    let visited = json!({"method": "phone", "summary": "再次回访"});
    app.step("unit", &loop_id, "feedback", visited).await;
    assert_eq!(app.case("admin", &loop_id).await["escalated"], false);
    app.step("center", &loop_id, "review_unsatisfied", unsatisfied)
        .await;
    assert_eq!(app.case("admin", &loop_id).await["escalated"], true);
    let page = sup.get(&format!("/cases/{loop_id}")).await;
    assert!(
        action_form(&page.html, "conclude").is_some_and(|f| f.contains("认定办结")),
        "{}",
        page.html
    );
    let refused = act(&mut sup, &loop_id, "conclude", &[("reason", "")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let concluded = act(
        &mut sup,
        &loop_id,
        "conclude",
        &[("reason", "已两次整改答复，诉求超出政策规定")],
    )
    .await;
    assert_eq!(
        concluded.status,
        StatusCode::SEE_OTHER,
        "{}",
        concluded.html
    );
    assert_eq!(state(&app, &loop_id).await, "closed");
    let page = sup.get(&format!("/cases/{loop_id}")).await;
    assert!(
        page.html.contains("认定办结") && page.html.contains("已两次整改答复，诉求超出政策规定"),
        "{}",
        page.html
    );
}
