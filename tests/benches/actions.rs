//! Case actions over HTTP against the raw database doing the same writes, in one run (not a test).
//!
//! `cargo bench -p bihuan-tests --bench actions` (set `BIHUAN_TEST_PG_URL` for PostgreSQL;
//! `BENCH_CASES` cases per path, default 3,000; `BENCH_CLIENTS` concurrent clients, default 32;
//! `BENCH_ONLY=sqlite|postgres` for one database). For each database it opens 2 × N cases (negative
//! ratings through the batch API), then:
//! - `accept` and then `transfer` on N of them over HTTP, every client taking the next case, and prints
//!   actions/s with the median and 99th-percentile latency;
//! - the raw ceiling on the other N: the three-row write an action makes — UPDATE the case at its
//!   version, INSERT the event, INSERT an outbox row holding the very letter a transfer queued (its
//!   subject, text and HTML as the product wrote them, so the rows weigh what the product's weigh) —
//!   in one transaction per case through the same driver and the store's write connections (on
//!   SQLite its one writer connection, which writers wait for in turn), as many at once as there are
//!   clients (what pgbench would run);
//! - the ratio of the two, which is what is compared from run to run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bihuan_store::{DbSettings, Store};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{TestApp, rating, spawn};
use bihuan_web::WebConfig;
use reqwest::{Method, StatusCode};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, Statement, TransactionTrait, Value as Db,
};
use serde_json::json;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().unwrap())
}

/// Throughput and latencies of one path.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn summarise(n: usize, took: Duration, mut latencies: Vec<Duration>) -> Run {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run {
        per_second: n as f64 / took.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Opens `n` cases through the batch API; answers every case id of the database.
async fn open_cases(app: &TestApp, db: &TestDb, n: usize) -> Vec<Uuid> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let ratings: Vec<_> = chunk
            .iter()
            .map(|i| rating(&format!("BENCH-{i:07}"), "dissatisfied", "mobile"))
            .collect();
        let (status, body) = app
            .raw(
                Method::POST,
                "/api/v1/ratings/batch",
                Some(&app.channel_token),
                Some(&json!({ "ratings": ratings })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    bihuan_store::entity::case::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// One action on every case of `ids` over HTTP, `clients` at a time.
async fn over_http(
    app: &Arc<TestApp>,
    ids: &[Uuid],
    clients: usize,
    action: &'static str,
    version: i64,
    fields: serde_json::Value,
) -> Run {
    let token = app.token("center").await;
    let queue = Arc::new(Mutex::new(ids.to_vec()));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(ids.len())));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (app, queue, latencies, token, fields) = (
            app.clone(),
            queue.clone(),
            latencies.clone(),
            token.clone(),
            fields.clone(),
        );
        tasks.spawn(async move {
            loop {
                let Some(id) = queue.lock().unwrap().pop() else {
                    break;
                };
                let body = json!({"action": action, "version": version, "fields": fields});
                let began = Instant::now();
                let (status, answer) = app
                    .raw(
                        Method::POST,
                        &format!("/api/v1/cases/{id}/actions"),
                        Some(&token),
                        Some(&body),
                    )
                    .await;
                latencies.lock().unwrap().push(began.elapsed());
                assert_eq!(status, StatusCode::OK, "{action}: {answer}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let took = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    summarise(ids.len(), took, latencies)
}

/// The statement's placeholders as the backend writes them.
fn sql(backend: DatabaseBackend, text: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => {
            let mut out = String::new();
            let mut n = 0;
            for c in text.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => text.to_owned(),
    }
}

/// The letter of an outbox row as the product wrote it.
#[derive(Debug, Clone)]
struct Letter {
    recipients: serde_json::Value,
    subject: String,
    body: String,
    html: Option<String>,
}

/// A letter the transfers over HTTP queued.
async fn letter_written(db: &TestDb) -> Letter {
    use bihuan_store::entity::outbox;
    use sea_orm::{ColumnTrait, QueryFilter};
    let row = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("case_assigned"))
        .one(db.store.connection())
        .await
        .unwrap()
        .expect("the transfers queued letters");
    Letter {
        recipients: row.recipients,
        subject: row.subject,
        body: row.body,
        html: row.html,
    }
}

/// The raw ceiling: per case, in one transaction, the rows an action writes.
async fn raw_writes(
    url: &str,
    ids: &[Uuid],
    clients: usize,
    (to_state, version): (&'static str, i32),
    letter: &Letter,
) -> Run {
    let store = Store::connect_with(
        url,
        DbSettings {
            max_connections: Some(clients as u32),
            ..DbSettings::default()
        },
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    let backend = store.backend();
    let update = sql(
        backend,
        "UPDATE cases SET state = ?, version = version + 1, event_count = event_count + 1, \
         head_hash = ?, state_entered_at = ?, updated_at = ? WHERE id = ? AND version = ?",
    );
    let event = sql(
        backend,
        "INSERT INTO events (case_id, seq, action, from_state, to_state, actor, at, fields, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let outbox = sql(
        backend,
        "INSERT INTO outbox (kind, case_id, audience, recipients, subject, body, html, unique_key, status, \
         attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let statements = Arc::new((update, event, outbox, letter.clone()));
    let queue = Arc::new(Mutex::new(ids.to_vec()));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(ids.len())));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (store, queue, latencies, statements) = (
            store.clone(),
            queue.clone(),
            latencies.clone(),
            statements.clone(),
        );
        tasks.spawn(async move {
            let (update, event, outbox, letter) = &*statements;
            loop {
                let Some(id) = queue.lock().unwrap().pop() else {
                    break;
                };
                let began = Instant::now();
                let now = chrono::Utc::now();
                let hash = format!("{:064x}", id.as_u128());
                let txn = match backend {
                    DatabaseBackend::Sqlite => store
                        .write_connection()
                        .begin_with_options(sea_orm::TransactionOptions {
                            sqlite_transaction_mode: Some(
                                sea_orm::SqliteTransactionMode::Immediate,
                            ),
                            ..Default::default()
                        })
                        .await
                        .unwrap(),
                    _ => store.connection().begin().await.unwrap(),
                };
                let values: Vec<Db> = vec![
                    to_state.into(),
                    hash.clone().into(),
                    now.into(),
                    now.into(),
                    id.into(),
                    version.into(),
                ];
                let done = txn
                    .execute_raw(Statement::from_sql_and_values(backend, update, values))
                    .await
                    .unwrap();
                assert_eq!(done.rows_affected(), 1);
                let values: Vec<Db> = vec![
                    id.into(),
                    i64::from(version + 1).into(),
                    "accept".into(),
                    "submitted".into(),
                    to_state.into(),
                    "center".into(),
                    now.into(),
                    r#"{"note":"已受理"}"#.into(),
                    hash.clone().into(),
                    hash.clone().into(),
                ];
                txn.execute_raw(Statement::from_sql_and_values(backend, event, values))
                    .await
                    .unwrap();
                let values: Vec<Db> = vec![
                    "case_assigned".into(),
                    id.into(),
                    "responsible_unit".into(),
                    letter.recipients.clone().into(),
                    letter.subject.clone().into(),
                    letter.body.clone().into(),
                    letter.html.clone().into(),
                    format!("bench:{id}:{version}").into(),
                    "pending".into(),
                    0i32.into(),
                    now.into(),
                    now.into(),
                ];
                txn.execute_raw(Statement::from_sql_and_values(backend, outbox, values))
                    .await
                    .unwrap();
                txn.commit().await.unwrap();
                latencies.lock().unwrap().push(began.elapsed());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let took = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    let run = summarise(ids.len(), took, latencies);
    Arc::try_unwrap(store).unwrap().close().await.unwrap();
    run
}

fn line(database: &str, path: &str, run: &Run, ceiling: Option<&Run>) {
    let ratio = ceiling.map_or_else(
        || "1.00".to_owned(),
        |c| format!("{:.2}", run.per_second / c.per_second),
    );
    println!(
        "| {database} | {path} | {:.0} | {:.1} | {:.1} | {ratio} |",
        run.per_second,
        run.p50.as_secs_f64() * 1000.0,
        run.p99.as_secs_f64() * 1000.0,
    );
}

async fn bench(name: &str, db: TestDb, n: usize, clients: usize) {
    let app = Arc::new(spawn(&db, WebConfig::default()).await);
    let mut ids = open_cases(&app, &db, 2 * n).await;
    let raw_ids = ids.split_off(n);
    let accept = over_http(&app, &ids, clients, "accept", 1, json!({})).await;
    let transfer = over_http(
        &app,
        &ids,
        clients,
        "transfer",
        2,
        json!({"unit": "shaba-social"}),
    )
    .await;
    let letter = letter_written(&db).await;
    let raw_accept = raw_writes(&db.url, &raw_ids, clients, ("accepted", 1), &letter).await;
    let raw_transfer = raw_writes(&db.url, &raw_ids, clients, ("rectifying", 2), &letter).await;
    line(name, "raw ceiling, first write", &raw_accept, None);
    line(name, "accept over HTTP", &accept, Some(&raw_accept));
    line(name, "raw ceiling, second write", &raw_transfer, None);
    line(name, "transfer over HTTP", &transfer, Some(&raw_transfer));
    db.finish().await.unwrap();
}

/// The binary's allocator (crates/bihuan/src/main.rs), so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let n = env_usize("BENCH_CASES", 3_000);
    let clients = env_usize("BENCH_CLIENTS", 32);
    let only = std::env::var("BENCH_ONLY").ok();
    println!("{n} cases per path, {clients} clients\n");
    println!("| database | path | actions/s | p50 ms | p99 ms | ratio |");
    println!("|---|---|---:|---:|---:|---:|");
    if only.as_deref() != Some("postgres") {
        bench("SQLite", TestDb::sqlite().await.unwrap(), n, clients).await;
    }
    if only.as_deref() != Some("sqlite") {
        match TestDb::postgres().await.unwrap() {
            Some(db) => bench("PostgreSQL", db, n, clients).await,
            None => println!("(PostgreSQL: BIHUAN_TEST_PG_URL is not set)"),
        }
    }
}
