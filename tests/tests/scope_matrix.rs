//! Who reaches what (issue 16): every role × every endpoint that answers about a case, a work item
//! or a unit, once for a subject inside the caller's town and once for the same subject in the other
//! town, generated from the one table below. On SQLite and PostgreSQL.
//!
//! The subjects: in each town a rated case now at its social-security office (转办 done, 调查整改 to
//! do) and a work item that office leads. 沙坝镇's users ask about 沙坝镇's subject ("in") and about
//! 马旺镇's ("out").

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_test_support::TestDb;
use bihuan_tests::api::{MAWANG_REGION, TestApp, rating, spawn};
use bihuan_tests::pages::Browser;
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(every_role_reaches_exactly_its_scope);

/// What an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Answered, the subject in it.
    See,
    /// Not there: 404 for the subject's own address, absent from a list or an export.
    Hide,
    /// 403: the role may not do this at all.
    Deny,
    /// Allowed to try: the action reached its checks (422, the fields missing).
    Try,
}
use Expect::{Deny, Hide, See, Try};

/// The roles asked, in the order of the table's columns.
const ROLES: [&str; 5] = ["admin", "sup", "center", "unit", "viewer"];

/// Where to ask.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    CaseGet,
    CaseList,
    CaseAction,
    RatingList,
    LedgerCsv,
    CasePage,
    TaskGet,
    TaskAction,
    PlanList,
    UnitList,
}

/// The table: for each endpoint, for each role of [`ROLES`], the answer about the subject (in its
/// town, in the other town).
const MATRIX: [(Endpoint, [(Expect, Expect); 5]); 10] = [
    //                         admin         sup           center        unit          viewer
    (
        Endpoint::CaseGet,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    (
        Endpoint::CaseList,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    // 调查整改 is the unit's: the others may not take it; out of reach it is not there at all.
    (
        Endpoint::CaseAction,
        [
            (Deny, Deny),
            (Deny, Hide),
            (Deny, Hide),
            (Try, Hide),
            (Deny, Hide),
        ],
    ),
    // A unit's staff see the ratings of their own unit, not those of the cases sent to them.
    (
        Endpoint::RatingList,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (Hide, Hide),
            (See, Hide),
        ],
    ),
    (
        Endpoint::LedgerCsv,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    (
        Endpoint::CasePage,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    // The work plan is the lead and co-units' and those above them: not the center's.
    (
        Endpoint::TaskGet,
        [
            (See, See),
            (See, Hide),
            (Hide, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    // Reporting progress is the lead unit's.
    (
        Endpoint::TaskAction,
        [
            (Deny, Deny),
            (Deny, Hide),
            (Hide, Hide),
            (Try, Hide),
            (Deny, Hide),
        ],
    ),
    (
        Endpoint::PlanList,
        [
            (See, See),
            (See, Hide),
            (Hide, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
    (
        Endpoint::UnitList,
        [
            (See, See),
            (See, Hide),
            (See, Hide),
            (See, Hide),
            (See, Hide),
        ],
    ),
];

/// One town's subject.
#[derive(Debug)]
struct Subject {
    case: String,
    source_id: String,
    project_no: String,
    task: String,
    plan: String,
    unit: &'static str,
}

async fn subjects(app: &TestApp) -> [Subject; 2] {
    // 沙坝镇: rated at its center, transferred to its social-security office.
    let shaba = app.new_case("M-SHABA").await;
    app.to_rectifying(&shaba).await;
    // 马旺镇: the same, by its own staff.
    let mut r = rating("M-MAWANG", "dissatisfied", "mobile");
    r["unit_code"] = json!("mawang-center");
    r["region_code"] = json!(MAWANG_REGION);
    let (status, body) = app.push_rating(&r).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mawang = body["case_id"].as_str().unwrap().to_owned();
    app.step("o_center", &mawang, "accept", json!({})).await;
    app.step(
        "o_center",
        &mawang,
        "transfer",
        json!({"unit": "mawang-social"}),
    )
    .await;
    let mut out = Vec::new();
    for (case, source_id, lead, unit, supervisor, staff) in [
        (
            shaba,
            "M-SHABA",
            "沙坝镇社会保障服务所",
            "shaba-social",
            "sup",
            "unit",
        ),
        (
            mawang,
            "M-MAWANG",
            "马旺镇社会保障服务所",
            "mawang-social",
            "o_sup",
            "o_unit",
        ),
    ] {
        let plan = json!({"name": format!("{unit} 计划"), "year": 2021, "items": [
            {"key_task": "（一）推进好差评", "title": "差评整改率、回访率达到100%。",
             "lead_units": lead, "deadline": "持续推进"}]});
        let (status, body) = app
            .call(supervisor, Method::POST, "/api/v1/plans", Some(plan))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let task = body["plan"]["items"][0]["id"].as_str().unwrap().to_owned();
        let plan = body["plan"]["id"].as_str().unwrap().to_owned();
        // Under way, so that reporting progress is the action at hand.
        let (status, body) = app
            .call(
                staff,
                Method::POST,
                &format!("/api/v1/tasks/{task}/actions"),
                Some(json!({"action": "start", "version": version_of(app, "tasks", &task).await, "fields": {}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.push(Subject {
            case,
            source_id: source_id.to_owned(),
            project_no: format!("500114-2021-{source_id}"),
            task,
            plan,
            unit,
        });
    }
    out.try_into().unwrap()
}

/// The current version of a case or a work item.
async fn version_of(app: &TestApp, kind: &str, id: &str) -> i64 {
    let (status, body) = app
        .call("admin", Method::GET, &format!("/api/v1/{kind}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("{kind} {id}: {body}"))
}

/// Whether `items` (a list answer) holds an item whose `key` is `value`.
fn lists(body: &Value, key: &str, value: &str) -> bool {
    let items = body["items"].as_array().or(body.as_array()).unwrap();
    items.iter().any(|i| i[key] == value)
}

/// Asks `endpoint` about `subject` as `user`; answers what was found.
async fn ask(app: &TestApp, user: &str, endpoint: Endpoint, subject: &Subject) -> Expect {
    let visible = |status: StatusCode, seen: bool| match status {
        StatusCode::OK if seen => See,
        StatusCode::OK | StatusCode::NOT_FOUND => Hide,
        StatusCode::FORBIDDEN => Deny,
        StatusCode::UNPROCESSABLE_ENTITY => Try,
        other => panic!("{user} {endpoint:?}: unexpected {other}"),
    };
    let get = |path: String| async move { app.call(user, Method::GET, &path, None).await };
    match endpoint {
        Endpoint::CaseGet => {
            let (status, _) = get(format!("/api/v1/cases/{}", subject.case)).await;
            visible(status, true)
        }
        Endpoint::CaseList => {
            let (status, body) = get("/api/v1/cases?per_page=200".into()).await;
            visible(status, lists(&body, "id", &subject.case))
        }
        Endpoint::CaseAction | Endpoint::TaskAction => {
            let (kind, id, action) = match endpoint {
                Endpoint::CaseAction => ("cases", &subject.case, "rectify"),
                _ => ("tasks", &subject.task, "report_progress"),
            };
            let version = version_of(app, kind, id).await;
            let (status, body) = app
                .call(
                    user,
                    Method::POST,
                    &format!("/api/v1/{kind}/{id}/actions"),
                    Some(json!({"action": action, "version": version, "fields": {}})),
                )
                .await;
            assert_ne!(status, StatusCode::OK, "empty fields never pass: {body}");
            visible(status, true)
        }
        Endpoint::RatingList => {
            let (status, body) = get("/api/v1/ratings?per_page=200".into()).await;
            visible(status, lists(&body, "source_id", &subject.source_id))
        }
        Endpoint::LedgerCsv => {
            let token = app.token(user).await;
            let resp = app
                .client
                .get(format!("{}/api/v1/export/cases.csv", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            visible(status, text.contains(&subject.project_no))
        }
        Endpoint::CasePage => {
            let mut browser = Browser::signed_in(app, user).await;
            let page = browser.get(&format!("/cases/{}", subject.case)).await;
            visible(page.status, page.html.contains(&subject.project_no))
        }
        Endpoint::TaskGet => {
            let (status, _) = get(format!("/api/v1/tasks/{}", subject.task)).await;
            visible(status, true)
        }
        Endpoint::PlanList => {
            let (status, body) = get("/api/v1/plans".into()).await;
            visible(status, lists(&body, "id", &subject.plan))
        }
        Endpoint::UnitList => {
            let (status, body) = get("/api/v1/units".into()).await;
            visible(status, lists(&body, "code", subject.unit))
        }
    }
}

async fn every_role_reaches_exactly_its_scope(db: &TestDb) {
    let app = spawn(db, WebConfig::default()).await;
    let [own, other] = subjects(&app).await;
    let mut wrong = Vec::new();
    for (endpoint, expected) in MATRIX {
        for (user, (inside, outside)) in ROLES.iter().zip(expected) {
            for (subject, want, place) in [(&own, inside, "in"), (&other, outside, "out")] {
                let got = ask(&app, user, endpoint, subject).await;
                if got != want {
                    wrong.push(format!(
                        "{endpoint:?} as {user}, {place} of scope: {got:?}, not {want:?}"
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers differ from the table:\n{}",
        wrong.len(),
        MATRIX.len() * ROLES.len() * 2,
        wrong.join("\n")
    );
}
