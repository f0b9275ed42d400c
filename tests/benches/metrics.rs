//! The metrics query against a naive aggregate over the raw tables, in one run (not a test).
//!
//! `cargo bench -p bihuan-tests --bench metrics` (set `BIHUAN_TEST_PG_URL` for PostgreSQL;
//! `BENCH_RATINGS` ratings, default 10,000,000, in time order over the 365 days of 2021, 50 units of 20
//! services each, every channel; 2 % of them non-default 差评, so 200,000 cases, of which `BENCH_ADVANCED` (default
//! 10,000) are accepted, transferred and rectified). For each database it times the metrics query of
//! the year grouped by unit and by month (the median of five), beside a naive aggregate of the same
//! figures straight from the ratings, cases and events, and prints both and their ratio. Last, on
//! SQLite, the export of every case to xlsx over HTTP: its time and the process's peak memory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::time::{Duration, Instant};

use bihuan_core::rating::{Channel, Level, Rater, RaterType, Rating};
use bihuan_core::{Actor, Engine, Role};
use bihuan_store::{ActionRequest, CaseScope, GroupBy, MetricsQuery, NewUnit};
use bihuan_test_support::TestDb;
use chrono::{DateTime, Duration as Days, NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::{Map, json};

const CHANNELS: [Channel; 7] = [
    Channel::Mobile,
    Channel::Pc,
    Channel::Qr,
    Channel::HallPad,
    Channel::HallOther,
    Channel::Phone,
    Channel::Sms,
];

fn start() -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 1, 1, 9, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// The i-th of `n` ratings of the year, in time order (as a year's file is): 50 units of 20 services
/// each, every channel.
fn nth(i: usize, n: usize) -> Rating {
    let negative = i.is_multiple_of(50);
    let level = if negative {
        Level::Dissatisfied
    } else {
        [
            Level::VerySatisfied,
            Level::Satisfied,
            Level::BasicallySatisfied,
        ][i % 3]
    };
    let channel = if !negative && i % 10 == 1 {
        Channel::Default
    } else {
        CHANNELS[(i / 7) % CHANNELS.len()]
    };
    let unit = (i / 11) % 50;
    let service = unit * 20 + (i / 13) % 20;
    let day = (i as u128 * 365 / n.max(1) as u128) as i64;
    Rating {
        source: "bench".into(),
        source_id: format!("M-{i:09}"),
        project_no: format!("P-{i:09}"),
        service_code: format!("S{service:03}"),
        service_name: format!("事项{service:03}"),
        unit_code: format!("bench-{unit:02}"),
        region_code: "500114112".into(),
        channel,
        level,
        rated_at: start() + Days::days(day) + Days::minutes((i % 480) as i64),
        assess_number: 1,
        rater: Rater {
            kind: RaterType::Individual,
            real_name: !i.is_multiple_of(3),
            name: None,
            phone: None,
            email: None,
        },
        staff: Vec::new(),
        indicators: Map::new(),
        comment: None,
    }
}

fn engine() -> Engine {
    bihuan_store::load_dir(
        &bihuan_tests::root().join("workflows"),
        chrono_tz::Asia::Shanghai,
    )
    .unwrap()
}

async fn fill(db: &TestDb, engine: &Engine, n: usize, advanced: usize) {
    let now = start() + Days::days(366);
    db.store
        .add_unit(
            &NewUnit {
                code: "bench-00".into(),
                name: "基准单位".into(),
                ..NewUnit::default()
            },
            now,
        )
        .await
        .unwrap();
    let began = Instant::now();
    let mut import = db.store.begin_ratings_import(engine, now).await.unwrap();
    let mut chunk = Vec::with_capacity(50_000);
    for i in 0..n {
        chunk.push(nth(i, n));
        if chunk.len() == 50_000 {
            import.add(&chunk).await.unwrap();
            chunk.clear();
        }
    }
    import.add(&chunk).await.unwrap();
    let outcome = import.commit().await.unwrap();
    println!(
        "  stored {} ratings and {} cases in {:.0} s",
        outcome.inserted,
        outcome.cases_opened,
        began.elapsed().as_secs_f64()
    );
    let began = Instant::now();
    let ids: Vec<uuid::Uuid> = db
        .store
        .connection()
        .query_all_raw(Statement::from_string(
            db.store.connection().get_database_backend(),
            format!("SELECT id FROM cases ORDER BY id LIMIT {advanced}"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<uuid::Uuid>("", "id").unwrap())
        .collect();
    // The center staff of the bench's one unit: a transfer must stay within the actor's reach.
    let center = Actor {
        name: "c".into(),
        role: Role::CenterStaff,
        unit: Some("bench-00".into()),
    };
    let unit = Actor {
        name: "u".into(),
        role: Role::UnitStaff,
        unit: Some("bench-00".into()),
    };
    for id in &ids {
        let steps = [
            (&center, "accept", json!({})),
            (&center, "transfer", json!({"unit": "bench-00"})),
            (
                &unit,
                "rectify",
                json!({"finding": "true", "measures": "m", "outcome": "rectified"}),
            ),
        ];
        for (version, (actor, action, fields)) in steps.into_iter().enumerate() {
            let fields = fields.as_object().cloned().unwrap();
            db.store
                .apply_action(
                    engine,
                    &ActionRequest {
                        id: *id,
                        scope: &bihuan_store::CaseScope::All,
                        version: version as i32 + 1,
                        action,
                        fields: &fields,
                        actor,
                        now,
                    },
                )
                .await
                .unwrap();
        }
    }
    db.store.compact_metrics().await.unwrap();
    println!(
        "  advanced {} cases through three actions in {:.0} s",
        ids.len(),
        began.elapsed().as_secs_f64()
    );
}

/// The same figures straight from the raw tables: every rating of the year with its case and the
/// events that count.
fn naive_sql(backend: DatabaseBackend, group_by: GroupBy) -> String {
    let (group, from, to, truthy) = match backend {
        DatabaseBackend::Postgres => (
            match group_by {
                GroupBy::Month => "to_char(r.rated_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')",
                _ => "r.unit_code",
            },
            "'2020-12-31T16:00:00Z'::timestamptz",
            "'2021-12-31T16:00:00Z'::timestamptz",
            "r.negative",
        ),
        _ => (
            match group_by {
                GroupBy::Month => "strftime('%Y-%m', r.rated_at, '+8 hours')",
                _ => "r.unit_code",
            },
            "'2020-12-31T16:00:00'",
            "'2021-12-31T16:00:00'",
            "r.negative = 1",
        ),
    };
    format!(
        "SELECT {group} AS g, COUNT(*) AS ratings, \
         SUM(CASE WHEN {truthy} THEN 1 ELSE 0 END) AS negative, \
         SUM(CASE WHEN r.level IN ('very_satisfied', 'satisfied') THEN 1 ELSE 0 END) AS positive, \
         SUM(CASE WHEN r.channel <> 'default' THEN 1 ELSE 0 END) AS active, \
         COUNT(c.id) AS cases, \
         SUM(CASE WHEN c.state <> 'invalid' THEN 1 ELSE 0 END) AS valid, \
         SUM(CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.case_id = c.id AND e.action = 'rectify') THEN 1 ELSE 0 END) AS rectified, \
         SUM(CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.case_id = c.id AND e.action = 'feedback') THEN 1 ELSE 0 END) AS visited, \
         SUM(CASE WHEN c.state NOT IN ('closed', 'invalid') THEN 1 ELSE 0 END) AS open \
         FROM ratings r LEFT JOIN cases c ON c.rating_id = r.id \
         WHERE r.rated_at >= {from} AND r.rated_at < {to} GROUP BY g ORDER BY g"
    )
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

async fn measure(name: &str, db: &TestDb, engine: &Engine, n: usize, advanced: usize) {
    println!("{name}:");
    fill(db, engine, n, advanced).await;
    let backend = db.store.connection().get_database_backend();
    for (label, group_by) in [("unit", GroupBy::Unit), ("month", GroupBy::Month)] {
        let query = MetricsQuery {
            from: NaiveDate::from_ymd_opt(2021, 1, 1),
            to: NaiveDate::from_ymd_opt(2021, 12, 31),
            unit: None,
            group_by,
        };
        let mut runs = Vec::new();
        let mut groups = 0;
        for _ in 0..5 {
            let began = Instant::now();
            let rows = db.store.metrics(&CaseScope::All, &query).await.unwrap();
            runs.push(began.elapsed());
            groups = rows.len();
        }
        let kept = median(runs);
        let began = Instant::now();
        let naive = db
            .store
            .connection()
            .query_all_raw(Statement::from_string(
                backend,
                naive_sql(backend, group_by),
            ))
            .await
            .unwrap();
        let raw = began.elapsed();
        assert_eq!(naive.len(), groups, "both see the same groups");
        println!(
            "| {name} | one year by {label} | {:.1} ms | {:.0} ms | {:.4} |",
            kept.as_secs_f64() * 1000.0,
            raw.as_secs_f64() * 1000.0,
            kept.as_secs_f64() / raw.as_secs_f64()
        );
    }
}

/// A line of /proc/self/status in MiB (VmRSS, VmHWM).
fn status_mib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The export of every case as xlsx through the HTTP API: time and peak memory (reset first).
async fn export(db: &TestDb) {
    let app = bihuan_tests::api::spawn(db, bihuan_web::WebConfig::default()).await;
    let token = app.token("admin").await;
    // Forget the peak of the fill, so the figure is the export's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_mib("VmRSS:");
    let began = Instant::now();
    let mut resp = app
        .client
        .get(format!("{}/api/v1/export/cases.xlsx", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let mut bytes = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len();
    }
    let took = began.elapsed();
    let show = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |m| format!("{m} MiB"));
    // The store's part alone: every page of the ledger read, nothing written.
    let engine = engine();
    let read_began = Instant::now();
    let (mut after, mut entries) = (None, 0);
    loop {
        let (page, last) = db
            .store
            .ledger_page(
                &engine,
                &CaseScope::All,
                &bihuan_store::LedgerFilter::default(),
                after,
                1000,
                start() + Days::days(366),
            )
            .await
            .unwrap();
        entries += page.len();
        let Some(last) = last else { break };
        after = Some(last);
    }
    let read = read_began.elapsed();
    println!(
        "  export of every case to xlsx: {:.1} s ({:.0} rows/s), {:.1} MiB file; memory before {}, peak during {}",
        took.as_secs_f64(),
        entries as f64 / took.as_secs_f64(),
        bytes as f64 / 1024.0 / 1024.0,
        show(before),
        show(status_mib("VmHWM:"))
    );
    println!(
        "  of which the store's pages alone, read again: {:.1} s ({:.0} rows/s)",
        read.as_secs_f64(),
        entries as f64 / read.as_secs_f64()
    );
}

/// The binary's allocator (crates/bihuan/src/main.rs), so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let number = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = number("BENCH_RATINGS", 10_000_000);
    let advanced = number("BENCH_ADVANCED", 10_000);
    let engine = engine();
    println!(
        "{n} ratings over 2021, 2 % cases; metrics query (median of 5) against a naive aggregate"
    );
    println!("| database | query | metrics | naive | ratio |\n|---|---|---:|---:|---:|");
    // BENCH_ONLY=sqlite or postgres measures one database.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        let db = TestDb::sqlite().await.unwrap();
        measure("SQLite", &db, &engine, n, advanced).await;
        export(&db).await;
        db.finish().await.unwrap();
    }
    if only != "sqlite" && std::env::var(bihuan_test_support::PG_URL_VAR).is_ok() {
        let db = TestDb::postgres().await.unwrap().unwrap();
        measure("PostgreSQL", &db, &engine, n, advanced).await;
        db.finish().await.unwrap();
    }
}
