//! Outage drills against the real `bihuan serve`: a SQLite database on a small file system that fills
//! up, PostgreSQL backends ended under load, and a PostgreSQL server stopped and started under load.
//! Whatever the database does, every answer is a committed change or a JSON error (503
//! `storage_unavailable`, 507 `insufficient_storage`) within the time limit, never a 500;
//! `/readyz` answers within 2 s; serving and the scheduler resume by themselves; nothing acknowledged
//! is lost and no mail is lost or sent twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bihuan_store::Store;
use bihuan_store::entity::outbox;
use bihuan_test_support::TestDb;
use bihuan_tests::api::{PASSWORD, rating, seed_org};
use bihuan_tests::drills::{PgCluster, Tmpfs};
use bihuan_tests::pages::Browser;
use bihuan_tests::smtp::SmtpServer;
use bihuan_tests::{Server, bihuan, text};
use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

/// The drills' clock: the demo clock of `serve` starts here.
const NOW: &str = "2021-05-06T10:00:00+08:00";
/// The time limit the drills give the server (`BIHUAN_DB_TIMEOUT`), in seconds.
const LIMIT_SECS: u64 = 2;

fn now() -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, 6, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// Units, users and a channel token in a fresh database; returns the token.
async fn prepare(url: &str) -> String {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    seed_org(&store, now()).await;
    let token = store
        .add_api_token(
            "yukuaiban",
            bihuan_store::TokenScope::RatingsWrite,
            None,
            now(),
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    token
}

/// `bihuan serve` on `url` with the drills' clock and time limit, and `env`.
fn serve(dir: &std::path::Path, url: &str, env: &[(&str, &str)]) -> Server {
    let mut cmd = bihuan(dir);
    cmd.env("BIHUAN_FAKE_NOW", NOW)
        .env("BIHUAN_DB_TIMEOUT", LIMIT_SECS.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(cmd, &["--db", url])
}

/// One answer of the server, with how long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    took: Duration,
}

/// A client of the running server: the center's clerk and the channel.
#[derive(Debug, Clone)]
struct Town {
    base: String,
    client: reqwest::Client,
    channel: String,
    center: String,
}

impl Town {
    /// Signs the center's clerk in.
    async fn sign_in(base: &str, channel: String) -> Self {
        let client = bihuan_tests::http()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut town = Self {
            base: base.to_owned(),
            client,
            channel,
            center: String::new(),
        };
        let answer = town
            .send(
                reqwest::Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"username": "center", "password": PASSWORD})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        town.center = answer.body["token"].as_str().unwrap().to_owned();
        town
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let started = Instant::now();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            took: started.elapsed(),
        }
    }

    /// Pushes `n` negative ratings; returns their cases.
    async fn open_cases(&self, prefix: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let answer = self
                .send(
                    reqwest::Method::POST,
                    "/api/v1/ratings",
                    Some(&self.channel),
                    Some(rating(&format!("{prefix}{i:03}"), "dissatisfied", "mobile")),
                )
                .await;
            assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
            ids.push(answer.body["case_id"].as_str().unwrap().to_owned());
        }
        ids
    }

    async fn act(&self, id: &str, action: &str, version: i64, fields: Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/cases/{id}/actions"),
            Some(&self.center),
            Some(json!({"action": action, "version": version, "fields": fields})),
        )
        .await
    }

    async fn case(&self, id: &str) -> Answer {
        self.send(
            reqwest::Method::GET,
            &format!("/api/v1/cases/{id}"),
            Some(&self.center),
            None,
        )
        .await
    }

    async fn ready(&self) -> Answer {
        self.send(reqwest::Method::GET, "/readyz", None, None).await
    }
}

/// An answer that is no committed change must be one of the outage errors, in the API's JSON.
fn assert_outage_error(answer: &Answer) {
    let code = answer.body["error"].as_str().unwrap_or_default();
    assert!(
        matches!(
            (answer.status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                | (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
        ),
        "an answer that is neither a committed change nor an outage error: {answer:?}"
    );
    assert!(answer.body["message"].is_string(), "{answer:?}");
    assert!(
        answer.took < Duration::from_secs(LIMIT_SECS + 3),
        "answered after {:?}, past the time limit",
        answer.took
    );
}

/// Waits (a few seconds at most: its answer is shared for a second) until `/readyz` answers
/// `expected`, each answer within 2 s; returns that answer.
async fn until_ready(town: &Town, expected: StatusCode) -> Answer {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = town.ready().await;
        assert!(
            answer.took < Duration::from_secs(2),
            "/readyz took {:?}",
            answer.took
        );
        if answer.status == expected {
            return answer;
        }
        assert!(Instant::now() < until, "/readyz still answers {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg_attr(
    not(bihuan_mount),
    ignore = "BIHUAN_TEST_MOUNT is not set (mounting a tmpfs needs root)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_errors_or_committed_changes_and_heals_without_a_restart() {
    let fs = Tmpfs::mount(16);
    let work = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bihuan.db?mode=rwc", fs.path().display());
    let channel = prepare(&url).await;
    let server = serve(work.path(), &url, &[]);
    let town = Town::sign_in(&server.base, channel).await;
    let ids = town.open_cases("FULL", 40).await;
    until_ready(&town, StatusCode::OK).await;
    // The last case is taken through the pages, by a clerk signed in before the disk fills.
    let by_page = &ids[39];
    let mut clerk = Browser::signed_in_at(&server.base, "center").await;

    // The log is emptied into the database file, so the next write has to grow the log on the full
    // disk, as in an office whose disk filled overnight.
    let checkpoint = Store::connect(&url).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        checkpoint.connection(),
        "PRAGMA wal_checkpoint(TRUNCATE)",
    )
    .await
    .unwrap();
    checkpoint.close().await.unwrap();
    let filler = fs.fill();

    let mut sent = Vec::new();
    for id in ids[..20].iter().cloned() {
        let town = town.clone();
        sent.push(tokio::spawn(async move {
            let answer = town.act(&id, "accept", 1, json!({})).await;
            (id, answer)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for task in sent {
        let (id, answer) = task.await.unwrap();
        if answer.status == StatusCode::OK {
            assert_eq!(
                (
                    answer.body["state"].as_str(),
                    answer.body["version"].as_i64()
                ),
                (Some("accepted"), Some(2)),
                "a 200 is the committed change: {answer:?}"
            );
            acknowledged.push(id);
        } else {
            assert_outage_error(&answer);
            refused.push(id);
        }
    }
    assert!(!refused.is_empty(), "the full disk refused some accepts");
    // Seen from another connection while the disk is still full: what was answered 200 is committed,
    // what was refused is untouched.
    let other = Store::connect(&url).await.unwrap();
    for (ids, expected) in [
        (&acknowledged, ("accepted", 2)),
        (&refused, ("received", 1)),
    ] {
        for id in ids {
            let case = other.case(id.parse().unwrap()).await.unwrap().case;
            assert_eq!((case.state.as_str(), case.version), expected, "case {id}");
        }
    }
    other.close().await.unwrap();
    let not_ready = until_ready(&town, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        not_ready.body["error"], "insufficient_storage",
        "{not_ready:?}"
    );
    // Reading still works, and a refused case is as it was.
    let unchanged = town.case(&refused[0]).await;
    assert_eq!(unchanged.status, StatusCode::OK, "{unchanged:?}");
    assert_eq!(unchanged.body["version"], 1);
    // The page says in Chinese that nothing was saved.
    let page = clerk.get(&format!("/cases/{by_page}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let accept = [
        ("csrf", page.csrf()),
        ("action", "accept".into()),
        ("version", "1".into()),
    ];
    let form: Vec<(&str, &str)> = accept.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused_page = clerk.post(&format!("/cases/{by_page}"), &form).await;
    assert_eq!(refused_page.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(
        refused_page.html.contains("暂时无法保存"),
        "{}",
        refused_page.html
    );
    assert!(
        refused_page.html.contains("本次操作未保存"),
        "{}",
        refused_page.html
    );

    // Room again: the same process serves again.
    std::fs::remove_file(filler).unwrap();
    until_ready(&town, StatusCode::OK).await;
    for id in refused.iter().chain(&ids[20..39]) {
        let answer = town.act(id, "accept", 1, json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body["version"], 2);
    }
    let done = clerk.post(&format!("/cases/{by_page}"), &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let log = server.stop();
    assert!(!log.contains("internal error"), "{log}");
    assert!(log.contains("the database refused the request"), "{log}");

    // Read back from the file after the process is gone: every accept that was answered 200 is there.
    let store = Store::connect(&url).await.unwrap();
    for id in &ids {
        let detail = store.case(id.parse().unwrap()).await.unwrap();
        assert_eq!(
            (detail.case.state.as_str(), detail.case.version),
            ("accepted", 2),
            "case {id}"
        );
        assert_eq!(detail.events.len(), 2, "events of {id}");
    }
    store.close().await.unwrap();
    let verify = bihuan(work.path())
        .args(["audit", "verify", "--db", &url])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{:?}", text(&verify));
}

/// What the workers of a load saw.
#[derive(Debug, Default)]
struct Load {
    /// Per case, the actions and versions answered 200.
    acknowledged: Mutex<BTreeMap<String, Vec<(String, i64)>>>,
    /// How many answers were outage errors.
    outages: std::sync::atomic::AtomicUsize,
}

type Seen = Arc<Load>;

/// Takes each case from received through accept and transfer, retrying what an outage refused, as a
/// clerk would: a 409 after an outage means the refused-looking request had committed after all
/// (the answer was lost with the connection), so the case is read again.
async fn work_through(town: Town, ids: Vec<String>, seen: Seen) {
    // Bounded, so that a database that never comes back fails the drill instead of stalling it.
    let until = Instant::now() + Duration::from_secs(120);
    for id in ids {
        let mut version = 1;
        let mut steps = vec![
            ("accept", json!({})),
            ("transfer", json!({"unit": "shaba-social"})),
        ];
        steps.reverse();
        let mut after_outage = false;
        while let Some((action, fields)) = steps.last().cloned() {
            assert!(Instant::now() < until, "case {id} is still not through");
            let answer = town.act(&id, action, version, fields).await;
            match answer.status {
                StatusCode::OK => {
                    let v = answer.body["version"].as_i64().unwrap();
                    assert_eq!(v, version + 1, "{answer:?}");
                    seen.acknowledged
                        .lock()
                        .unwrap()
                        .entry(id.clone())
                        .or_default()
                        .push((action.to_owned(), v));
                    version = v;
                    steps.pop();
                    after_outage = false;
                }
                StatusCode::CONFLICT if after_outage => {
                    let case = town.case(&id).await;
                    if case.status != StatusCode::OK {
                        assert_outage_error(&case);
                        seen.outages
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    version = case.body["version"].as_i64().unwrap();
                    if version >= 3 {
                        steps.clear();
                    } else if version == 2 {
                        steps.truncate(1);
                    }
                }
                _ => {
                    assert_outage_error(&answer);
                    seen.outages
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    after_outage = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Paced, so that the load outlasts the outage a drill makes however fast actions become.
        tokio::time::sleep(PACE).await;
    }
}

/// The pause of a drill's client between two cases.
const PACE: Duration = Duration::from_millis(50);

/// After a drill: every case went through, every version answered 200 is the event the database
/// holds at that place, and the chain verifies.
async fn assert_kept(url: &str, ids: &[String], seen: &Seen) {
    let store = Store::connect(url).await.unwrap();
    let seen = seen.acknowledged.lock().unwrap().clone();
    for id in ids {
        let detail = store.case(id.parse::<Uuid>().unwrap()).await.unwrap();
        assert_eq!(
            (detail.case.state.as_str(), detail.case.version),
            ("rectifying", 3),
            "case {id}"
        );
        for (action, version) in seen.get(id).into_iter().flatten() {
            let event = &detail.events[usize::try_from(*version - 1).unwrap()];
            assert_eq!(
                (event.seq, event.action.as_str()),
                (*version, action.as_str()),
                "the acknowledged {action} of {id} is kept"
            );
        }
    }
    let chain = store.verify_chain().await.unwrap();
    assert!(chain.ok, "{:?}", chain.first_broken);
    store.close().await.unwrap();
}

/// Runs `workers` clients over `ids` (split between them) until all are through.
fn load(
    town: &Town,
    ids: &[String],
    workers: usize,
    seen: &Seen,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let mine: Vec<String> = ids.iter().skip(w).step_by(workers).cloned().collect();
            tokio::spawn(work_through(town.clone(), mine, seen.clone()))
        })
        .collect()
}

#[cfg_attr(not(bihuan_pg), ignore = "BIHUAN_TEST_PG_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backends_ended_under_load_lose_no_acknowledged_write() {
    let db = TestDb::postgres()
        .await
        .unwrap()
        .expect("BIHUAN_TEST_PG_URL was set when this test was built; set it to run it");
    let work = tempfile::tempdir().unwrap();
    let channel = prepare(&db.url).await;
    let server = serve(work.path(), &db.url, &[]);
    let town = Town::sign_in(&server.base, channel).await;
    let ids = town.open_cases("KILL", 60).await;
    let seen: Seen = Arc::default();
    let workers = load(&town, &ids, 6, &seen);
    // End every backend of the server's database, again and again, while the load runs.
    let killer = Store::connect(&db.url).await.unwrap();
    let mut ready = Vec::new();
    let mut ended = 0;
    for round in 0..20 {
        let row = sea_orm::ConnectionTrait::query_one_raw(
            killer.connection(),
            sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            ),
        )
        .await
        .unwrap()
        .unwrap();
        ended += row.try_get_by_index::<i64>(0).unwrap();
        if round % 4 == 0 {
            let answer = town.ready().await;
            assert!(
                answer.took < Duration::from_secs(2),
                "/readyz took {:?}",
                answer.took
            );
            ready.push(answer.status);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    killer.close().await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    assert!(ended > 0, "backends of the server were ended");
    eprintln!(
        "{ended} backends ended; {} answers were outage errors",
        seen.outages.load(std::sync::atomic::Ordering::Relaxed)
    );
    // The pool recovered: ready, and serving.
    until_ready(&town, StatusCode::OK).await;
    assert!(
        ready
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE)
    );
    let log = server.stop();
    assert!(!log.contains("internal error"), "{log}");
    assert_kept(&db.url, &ids, &seen).await;
    db.finish().await.unwrap();
}

fn log_count(server: &Server, text: &str) -> usize {
    server.log().matches(text).count()
}

async fn outbox_rows(url: &str) -> Vec<outbox::Model> {
    let store = Store::connect(url).await.unwrap();
    let rows = outbox::Entity::find()
        .all(store.connection())
        .await
        .unwrap();
    store.close().await.unwrap();
    rows
}

/// Waits until no mail is pending; panics after a minute.
async fn until_all_sent(url: &str) -> Vec<outbox::Model> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let store = Store::connect(url).await.unwrap();
        let pending = outbox::Entity::find()
            .filter(outbox::Column::Status.ne("sent"))
            .count(store.connection())
            .await
            .unwrap();
        store.close().await.unwrap();
        if pending == 0 {
            return outbox_rows(url).await;
        }
        assert!(Instant::now() < until, "{pending} mails still pending");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg_attr(not(bihuan_pg), ignore = "BIHUAN_TEST_PG_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_stopped_started_and_frozen_under_load_loses_and_doubles_nothing() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("bihuan_drill").await;
    let work = tempfile::tempdir().unwrap();
    let channel = prepare(&url).await;
    let smtp = SmtpServer::start();
    let server = serve(work.path(), &url, &[("BIHUAN_SMTP_URL", &smtp.url())]);
    let town = Town::sign_in(&server.base, channel).await;
    // 30 cases a client, paced: the load runs well past the stop at 0.5 s.
    let ids = town.open_cases("STOP", 120).await;

    let seen: Seen = Arc::default();
    let workers = load(&town, &ids, 4, &seen);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop();
    // While the server is away: not ready within 2 s, and requests answer outage errors (the workers
    // check theirs) within the time limit.
    let away = until_ready(&town, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(away.body["error"], "storage_unavailable", "{away:?}");
    let read = town.case(&ids[0]).await;
    assert_outage_error(&read);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_again();
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        seen.outages.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the workers met the stopped server"
    );
    until_ready(&town, StatusCode::OK).await;
    assert_kept(&url, &ids, &seen).await;

    // Every transfer's mail went out once the scheduler resumed.
    let rows = until_all_sent(&url).await;
    assert_eq!(rows.len(), ids.len(), "one assignment mail per transfer");

    // A server that stops answering without closing its connections (a hung machine, a cut
    // network): reads and writes answer 503 within the limit instead of hanging, and serving resumes
    // when it answers again.
    let frozen = town.open_cases("FROZEN", 1).await.remove(0);
    cluster.freeze();
    let read = town.case(&frozen).await;
    assert_outage_error(&read);
    let write = town.act(&frozen, "accept", 1, json!({})).await;
    assert_outage_error(&write);
    until_ready(&town, StatusCode::SERVICE_UNAVAILABLE).await;
    cluster.thaw();
    until_ready(&town, StatusCode::OK).await;
    let accepted = town.act(&frozen, "accept", 1, json!({})).await;
    assert_eq!(
        accepted.status,
        StatusCode::OK,
        "the frozen write was not kept: {accepted:?}"
    );
    let transferred = town
        .act(&frozen, "transfer", 2, json!({"unit": "shaba-social"}))
        .await;
    assert_eq!(transferred.status, StatusCode::OK, "{transferred:?}");
    let rows = until_all_sent(&url).await;
    assert_eq!(rows.len(), ids.len() + 1);

    // A mail the mail server takes while the database goes away is marked sent once it is back, not
    // sent again.
    let (arrived, release) = smtp.hold_next();
    let last = town.open_cases("LAST", 1).await.remove(0);
    let accept = town.act(&last, "accept", 1, json!({})).await;
    assert_eq!(accept.status, StatusCode::OK, "{accept:?}");
    let transfer = town
        .act(&last, "transfer", 2, json!({"unit": "shaba-social"}))
        .await;
    assert_eq!(transfer.status, StatusCode::OK, "{transfer:?}");
    tokio::task::spawn_blocking(move || arrived.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the scheduler sends the mail");
    cluster.stop();
    release.send(()).unwrap();
    // The sender now fails to mark it (the server is away), keeps it, and the scheduler says so.
    let paused_before = log_count(&server, "scheduler paused");
    let until = Instant::now() + Duration::from_secs(30);
    while log_count(&server, "scheduler paused") == paused_before {
        assert!(
            Instant::now() < until,
            "the scheduler did not meet the stopped server"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.log().contains("unmarked=1"), "{}", server.log());
    cluster.start_again();
    let rows = until_all_sent(&url).await;
    assert_eq!(rows.len(), ids.len() + 2);
    // One more pass after the mark, to see that nothing goes twice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = server.stop();
    assert!(!log.contains("internal error"), "{log}");
    assert_eq!(
        log.matches("scheduler paused").count(),
        log.matches("scheduler passes resume").count(),
        "each pause is said once and so is its end: {log}"
    );
    assert!(log.contains("marked sent"), "{log}");
    let received = smtp.take();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &received {
        *per_id.entry(mail.message_id()).or_default() += 1;
    }
    assert_eq!(received.len(), rows.len(), "{per_id:?}");
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    for row in &rows {
        assert!(
            per_id.contains_key(&format!("outbox-{}@bihuan", row.id)),
            "mail {} was received",
            row.id
        );
    }
}
