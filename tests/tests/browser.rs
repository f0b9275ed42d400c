//! The whole loop in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver, with the fantoccini crate). Center staff accept and transfer, the unit rectifies (first
//! with a field left out, and sees the error) and records the return visit, the rater's link closes the
//! case, a supervisor audits it, uploads the town's work plan and sees its board, and the unit reports
//! progress on a work item. A screenshot of every page goes to `target/browser-artifacts/`.
//!
//! Without chromedriver the test says so and passes, so `cargo test` works on a machine with only the
//! Rust toolchain; with `BIHUAN_TEST_BROWSER=1` (set by `.ci/run`, which installs chromium) it must run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bihuan_test_support::TestDb;
use bihuan_tests::api::{PASSWORD, TestApp, spawn};
use bihuan_web::WebConfig;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Where the screenshots go.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bihuan_tests::root().join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Session {
    client: Client,
    base: String,
    shots: PathBuf,
    count: usize,
}

impl Session {
    async fn shot(&mut self, name: &str) {
        self.count += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(
            self.shots.join(format!("{:02}-{name}.png", self.count)),
            png,
        )
        .unwrap();
    }

    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn click(&self, locator: Locator<'_>) {
        self.client
            .find(locator)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Clicks and waits for the next page to show `expect`.
    async fn click_until(&self, css: &str, expect: &str) {
        self.click(Locator::Css(css)).await;
        self.wait_for_text(expect).await;
    }

    async fn wait_for_text(&self, expect: &str) {
        for _ in 0..100 {
            if self.source().await.contains(expect) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("“{expect}” never showed: {}", self.source().await);
    }

    async fn fill(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    async fn sign_in(&mut self, user: &str) {
        self.open("/").await;
        self.wait_for_text("登录").await;
        self.fill("#username", user).await;
        self.fill("#password", PASSWORD).await;
        self.click_until("form.stack button", "我的待办").await;
    }

    async fn sign_out(&self) {
        self.click_until("form.who button", "密码").await;
    }
}

async fn state(app: &TestApp, id: &str) -> String {
    app.case("admin", id).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[cfg_attr(
    not(bihuan_browser),
    ignore = "BIHUAN_TEST_BROWSER is not set (it needs chromium and chromedriver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_in_a_real_browser() {
    let (Some(chromedriver), Some(chromium)) = (
        find_program("chromedriver"),
        find_program("chromium").or_else(|| find_program("chromium-browser")),
    ) else {
        panic!(
            "BIHUAN_TEST_BROWSER is set but chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
        );
    };
    let db = TestDb::sqlite().await.unwrap();
    let app = spawn(&db, WebConfig::default()).await;
    let id = app.new_case("B-1").await;
    let project = "500114-2021-B-1";

    let port = bihuan_tests::smtp::SmtpServer::free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let mut s = Session {
        client: client.expect("chromedriver did not start a browser session"),
        base: app.base.clone(),
        shots: artifacts(),
        count: 0,
    };

    // Center staff: sign in, open the case from 我的待办, accept, transfer.
    s.open("/").await;
    s.wait_for_text("登录").await;
    s.shot("sign-in").await;
    s.sign_in("center").await;
    assert!(s.source().await.contains(project));
    s.shot("todo-center").await;
    s.click(Locator::LinkText(project)).await;
    s.wait_for_text("差评工单详情").await;
    s.shot("case-received").await;
    s.click_until("#action-accept button", "已完成“受理”").await;
    s.select("#transfer-unit", "shaba-social").await;
    s.click_until("#action-transfer button", "已完成“转办”")
        .await;
    s.shot("case-transferred").await;
    assert_eq!(state(&app, &id).await, "rectifying");
    s.sign_out().await;

    // The unit: rectify, first leaving out the outcome and seeing the error beside it.
    s.sign_in("unit").await;
    s.click(Locator::LinkText(project)).await;
    s.wait_for_text("提交整改").await;
    s.select("#rectify-finding", "partly_true").await;
    s.fill("#rectify-measures", "补充一次性告知单，窗口人员再培训")
        .await;
    s.click_until("#action-rectify button", "请填写整改结果")
        .await;
    s.shot("rectify-missing-field").await;
    let kept = s
        .client
        .find(Locator::Css("#rectify-measures"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("补充一次性告知单，窗口人员再培训"));
    assert!(
        s.client
            .find(Locator::Css("#rectify-outcome-error"))
            .await
            .is_ok()
    );
    assert_eq!(state(&app, &id).await, "rectifying");
    // 已整改 needs its 整改佐证材料: the photo is uploaded through the page's form, then ticked.
    let photo_dir = tempfile::tempdir().unwrap();
    let photo = photo_dir.path().join("整改后窗口照片.png");
    std::fs::write(&photo, bihuan_tests::api::png("browser")).unwrap();
    s.fill("#upload-file", photo.to_str().unwrap()).await;
    s.click_until("#upload button", "已上传").await;
    s.wait_for_text("整改后窗口照片.png").await;
    s.shot("case-evidence-uploaded").await;
    s.select("#rectify-finding", "partly_true").await;
    s.fill("#rectify-measures", "补充一次性告知单，窗口人员再培训")
        .await;
    s.select("#rectify-outcome", "rectified").await;
    s.click(Locator::Css("#rectify-evidence input[type=checkbox]"))
        .await;
    s.click_until("#action-rectify button", "已完成“提交整改”")
        .await;
    s.select("#feedback-method", "phone").await;
    s.fill("#feedback-summary", "已电话回访，群众表示认可")
        .await;
    s.click_until("#action-feedback button", "已完成“反馈回访”")
        .await;
    s.shot("case-fed-back").await;
    assert_eq!(state(&app, &id).await, "pending_review");
    // An appeal on another case comes with its evidence: uploaded, then ticked in the appeal's form.
    let appealed = app.new_case("B-APPEAL").await;
    app.to_rectifying(&appealed).await;
    s.open(&format!("/cases/{appealed}")).await;
    s.wait_for_text("申诉").await;
    let proof = photo_dir.path().join("窗口登记表.png");
    std::fs::write(&proof, bihuan_tests::api::png("appeal")).unwrap();
    s.fill("#upload-file", proof.to_str().unwrap()).await;
    s.click_until("#upload button", "已上传").await;
    s.select("#appeal-category", "mistaken").await;
    s.fill("#appeal-reason", "评价对象为区医保局窗口").await;
    s.click(Locator::Css("#appeal-evidence input[type=checkbox]"))
        .await;
    s.click_until("#action-appeal button", "已完成“申诉”").await;
    s.shot("case-appealed").await;
    assert_eq!(state(&app, &appealed).await, "appealing");
    s.sign_out().await;

    // The rater: the one-time link from the mail closes the loop.
    let (mails, _) = db.store.list_outbox(None, None, 1, 100).await.unwrap();
    let link = mails
        .iter()
        .find_map(|m| {
            let start = m.body.find(&format!("{}/r/", app.base))?;
            m.body[start..].split_whitespace().next().map(str::to_owned)
        })
        .expect("the rater's invitation with its link");
    s.client.goto(&link).await.unwrap();
    s.wait_for_text("请评价整改结果").await;
    s.client.set_window_size(390, 844).await.unwrap();
    s.shot("rater-link-phone").await;
    s.click(Locator::Css("input[value=satisfied]")).await;
    s.click_until("form button[type=submit]", "感谢您的评价")
        .await;
    s.shot("rater-thanks").await;
    s.client.set_window_size(1280, 1000).await.unwrap();
    assert_eq!(state(&app, &id).await, "closed");

    // A supervisor audits the closed loop from the sample, and sees the ledger and the figures.
    s.sign_in("sup").await;
    s.open("/supervise").await;
    s.wait_for_text("闭环抽查").await;
    s.wait_for_text("申诉待复核（1）").await;
    s.shot("supervise").await;
    // The appeal is decided on its case page, where its evidence is listed.
    s.open(&format!("/cases/{appealed}")).await;
    s.wait_for_text("窗口登记表.png").await;
    s.fill("#reject_appeal-reason", "窗口受理属本单位职责，请继续整改")
        .await;
    s.click_until("#action-reject_appeal button", "已完成“申诉驳回”")
        .await;
    assert_eq!(state(&app, &appealed).await, "rectifying");
    s.open("/supervise").await;
    s.wait_for_text("闭环抽查").await;
    s.click_until("form[action='/supervise'] button", "哈希链未被篡改")
        .await;
    s.click(Locator::Css(&format!("#audit-{id} input[value=pass]")))
        .await;
    s.click_until(&format!("#audit-{id} button"), "已记录审核结论：通过")
        .await;
    s.shot("audited").await;
    let (_, audits) = app
        .call(
            "sup",
            reqwest::Method::GET,
            &format!("/api/v1/cases/{id}"),
            None,
        )
        .await;
    assert_eq!(audits["audits"][0]["verdict"], "pass", "{audits}");
    s.open("/ledger").await;
    s.wait_for_text("导出 Excel").await;
    s.shot("ledger").await;
    s.open("/stats?from=2021-01-01&to=2021-12-31&group_by=unit")
        .await;
    s.wait_for_text("差评整改率").await;
    s.shot("stats").await;
    s.open(&format!("/cases/{id}")).await;
    s.wait_for_text("督查审核").await;
    s.client.set_window_size(390, 844).await.unwrap();
    s.shot("case-closed-phone").await;
    s.client.set_window_size(1280, 1000).await.unwrap();

    // 任务分解: the supervisor uploads the town's plan and sees its board.
    s.open("/plans").await;
    s.wait_for_text("导入任务分解表").await;
    let seed = bihuan_tests::root().join("workflows/plans/shaba-2021.csv");
    s.fill("#plan-file", seed.to_str().unwrap()).await;
    s.fill("#plan-name", "2021年政务服务工作任务分解").await;
    s.click_until("form[action='/plans'] button", "已导入 33 项工作")
        .await;
    assert!(
        s.source()
            .await
            .contains("（十三）积极探索政务服务创新举措")
    );
    s.shot("plan-board").await;
    s.sign_out().await;

    // The lead unit's staff start an item and report progress through its page.
    let plan = json!({"name": "浏览器测试计划", "year": 2021, "items": [
        {"key_task": "（一）推进好差评", "title": "差评整改率、回访率达到100%。",
         "lead_units": "沙坝镇社会保障服务所", "deadline": "持续推进"}]});
    let (_, body) = app
        .call("admin", reqwest::Method::POST, "/api/v1/plans", Some(plan))
        .await;
    let task = body["plan"]["items"][0]["id"].as_str().unwrap().to_owned();
    s.sign_in("unit").await;
    s.open(&format!("/tasks/{task}")).await;
    s.wait_for_text("开始推进").await;
    s.click_until("#action-start button", "已完成“开始推进”")
        .await;
    s.fill("#report_progress-summary", "已逐件回访，整改台账已建立")
        .await;
    s.fill("#report_progress-percent", "50").await;
    s.click_until("#action-report_progress button", "已完成“报告进展”")
        .await;
    assert!(s.source().await.contains("<strong>50%</strong>"));
    s.client.set_window_size(390, 844).await.unwrap();
    s.shot("task-phone").await;
    let (_, item) = app
        .call(
            "unit",
            reqwest::Method::GET,
            &format!("/api/v1/tasks/{task}"),
            None,
        )
        .await;
    assert_eq!(item["percent"], 50, "{item}");
    s.client.close().await.unwrap();
    db.finish().await.unwrap();
}
