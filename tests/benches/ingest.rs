//! Ingestion speed against the raw ceiling of each database, in one run (not a test).
//!
//! `cargo bench -p bihuan-tests --bench ingest` (set `BIHUAN_TEST_PG_URL` for PostgreSQL; `BENCH_N`
//! ratings, default 200,000, 8 % negative). For each database it measures: the batch API over HTTP with
//! four concurrent clients (batches of 1,000, their bodies written before the clock starts), the file import of the same rows as CSV through the
//! release binary, and the raw ceiling — the same rows written by the database's fastest path
//! (PostgreSQL `COPY`, SQLite one transaction of one prepared insert) — and prints rows/s and the
//! ratio to the ceiling. Last, the peak memory of the SQLite file import of N and of 5 N rows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bihuan_test_support::TestDb;
use bihuan_tests::api::{rating, spawn};
use bihuan_web::WebConfig;
use sea_orm::sqlx::{self, Connection};
use serde_json::Value;

const CLIENTS: usize = 4;
const BATCH: usize = 1000;

/// The i-th generated rating: 8 % negative, channels in turn.
fn nth_rating(i: usize, tag: &str) -> Value {
    let level = if i % 25 < 2 {
        "dissatisfied"
    } else {
        ["very_satisfied", "satisfied", "basically_satisfied"][i % 3]
    };
    let channel = ["mobile", "pc", "qr", "hall_pad", "phone", "sms"][i % 6];
    rating(&format!("{tag}-{i:08}"), level, channel)
}

fn ratings(n: usize, tag: &str) -> Vec<Value> {
    (0..n).map(|i| nth_rating(i, tag)).collect()
}

const CSV_HEADER: &str = "source,source_id,project_no,service_code,service_name,unit_code,region_code,channel,level,rated_at,assess_number,real_name,rater_name,rater_phone,rater_email,comment";

fn csv_line(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    [
        s(&r["source"]),
        s(&r["source_id"]),
        s(&r["project_no"]),
        s(&r["service_code"]),
        s(&r["service_name"]),
        s(&r["unit_code"]),
        s(&r["region_code"]),
        s(&r["channel"]),
        s(&r["level"]),
        s(&r["rated_at"]),
        "1".into(),
        "true".into(),
        s(&r["rater"]["name"]),
        s(&r["rater"]["phone"]),
        s(&r["rater"]["email"]),
        s(&r["comment"]),
    ]
    .join(",")
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

async fn batch_api(db: &TestDb, rows: Vec<Value>) -> Duration {
    let app = Arc::new(spawn(db, WebConfig::default()).await);
    // The request bodies are written before the clock starts, as the ceiling's rows are.
    let bodies: Vec<String> = rows
        .chunks(BATCH)
        .map(|chunk| serde_json::json!({ "ratings": chunk }).to_string())
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (app, queue) = (app.clone(), queue.clone());
        clients.spawn(async move {
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    break;
                };
                let response = app
                    .client
                    .post(format!("{}/api/v1/ratings/batch", app.base))
                    .bearer_auth(&app.channel_token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
        });
    }
    clients.join_all().await;
    started.elapsed()
}

/// Imports `n` generated rows from a CSV file through the release binary; returns the time taken and
/// the peak resident memory of the import process in MiB (Linux: read from /proc while it runs).
fn file_import(db: &TestDb, n: usize, tag: &str) -> (Duration, Option<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    writeln!(out, "{CSV_HEADER}").unwrap();
    for i in 0..n {
        writeln!(out, "{}", csv_line(&nth_rating(i, tag))).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let mut import = bihuan_tests::bihuan(dir.path());
    import
        .args(["import", "ratings"])
        .arg(&file)
        .args(["--db", &db.url, "--workflows"])
        .arg(bihuan_tests::root().join("workflows"))
        // The benchmark's file is far over the 20 MB an upload may be by default; its rows (5 N
        // with the default N) stay within the 1,048,576 a ratings file may have.
        .env("BIHUAN_MAX_UPLOAD_MB", "100000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = import.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // VmHWM is the process's peak so far: the last reading before it exits is its peak.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = Some(kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "{stderr}");
    (took, peak_kib.map(|k| k / 1024))
}

/// The same rows through the database's fastest path, timed from the moment the rows are ready to
/// be written: PostgreSQL `COPY` of a CSV already formatted, SQLite one transaction of one prepared
/// insert (rusqlite, no driver thread in between).
async fn raw_ceiling(db: &TestDb, rows: &[Value]) -> Duration {
    const COLS: &str = "id, source, source_id, project_no, service_code, service_name, unit_code, region_code, channel, level, negative, rated_at, assess_number, rater_type, rater_real_name, rater_name, rater_phone, rater_email, staff, indicators, comment, created_at";
    let now = chrono::Utc::now();
    let fields = |r: &Value| -> Vec<String> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let rated_at = chrono::DateTime::parse_from_rfc3339(r["rated_at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        vec![
            uuid::Uuid::now_v7().to_string(),
            s(&r["source"]),
            s(&r["source_id"]),
            s(&r["project_no"]),
            s(&r["service_code"]),
            s(&r["service_name"]),
            s(&r["unit_code"]),
            s(&r["region_code"]),
            s(&r["channel"]),
            s(&r["level"]),
            (r["level"] == "dissatisfied").to_string(),
            rated_at.to_rfc3339(),
            "1".into(),
            "individual".into(),
            "true".into(),
            s(&r["rater"]["name"]),
            s(&r["rater"]["phone"]),
            s(&r["rater"]["email"]),
            r["staff"].to_string(),
            r["indicators"].to_string(),
            s(&r["comment"]),
            now.to_rfc3339(),
        ]
    };
    let rows: Vec<Vec<String>> = rows.iter().map(fields).collect();
    if db.url.starts_with("postgres") {
        let mut buf = Vec::with_capacity(rows.len() * 400);
        let mut writer = csv::Writer::from_writer(&mut buf);
        for r in &rows {
            writer.write_record(r).unwrap();
        }
        drop(writer);
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let started = Instant::now();
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY ratings ({COLS}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .unwrap();
        copy.send(buf).await.unwrap();
        copy.finish().await.unwrap();
        started.elapsed()
    } else {
        let path = db
            .url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
            .unwrap()
            .to_owned();
        tokio::task::spawn_blocking(move || {
            let mut conn = rusqlite::Connection::open(path).unwrap();
            let placeholders = vec!["?"; 22].join(", ");
            let sql = format!("INSERT INTO ratings ({COLS}) VALUES ({placeholders})");
            let started = Instant::now();
            let txn = conn.transaction().unwrap();
            {
                let mut insert = txn.prepare(&sql).unwrap();
                for r in &rows {
                    insert
                        .execute(rusqlite::params_from_iter(r.iter()))
                        .unwrap();
                }
            }
            txn.commit().unwrap();
            started.elapsed()
        })
        .await
        .unwrap()
    }
}

/// Measures one database and prints each figure as soon as it is known.
async fn run(name: &str, fresh: impl AsyncFn() -> TestDb, n: usize) -> Option<u64> {
    // Build (or check) the release binary before any clock starts.
    let _ = bihuan_tests::bin();
    let db = fresh().await;
    let c = rate(n, raw_ceiling(&db, &ratings(n, "RAW")).await);
    db.finish().await.unwrap();
    println!("| {name} | raw ceiling | {c:>9.0} | 1.00 |");
    let db = fresh().await;
    let api = rate(n, batch_api(&db, ratings(n, "API")).await);
    db.finish().await.unwrap();
    println!(
        "| {name} | batch API, {CLIENTS} clients | {api:>9.0} | {:.2} |",
        api / c
    );
    let db = fresh().await;
    let (took, peak) = file_import(&db, n, "FILE");
    db.finish().await.unwrap();
    let import = rate(n, took);
    println!(
        "| {name} | file import (CSV) | {import:>9.0} | {:.2} |",
        import / c
    );
    peak
}

/// The import's peak memory for `n` rows (measured with the rates) and for five times as many: a
/// streamed import stays flat.
async fn memory(n: usize, peak_n: Option<u64>) {
    let db = TestDb::sqlite().await.unwrap();
    let (_, peak_5n) = file_import(&db, 5 * n, "MEM");
    db.finish().await.unwrap();
    let show = |p: Option<u64>| p.map_or_else(|| "unknown".to_owned(), |p| format!("{p} MiB"));
    println!(
        "\nPeak memory of the file import (SQLite): {n} rows {}, {} rows {}",
        show(peak_n),
        5 * n,
        show(peak_5n)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("{n} ratings, 8 % negative");
    println!("| database | path | ratings/s | ratio to ceiling |\n|---|---|---:|---:|");
    let peak = run("SQLite", async || TestDb::sqlite().await.unwrap(), n).await;
    if std::env::var(bihuan_test_support::PG_URL_VAR).is_ok() {
        run(
            "PostgreSQL",
            async || TestDb::postgres().await.unwrap().unwrap(),
            n,
        )
        .await;
    }
    memory(n, peak).await;
}
