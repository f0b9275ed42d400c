//! The scheduler's reminder pass against the raw database doing the same writes, in one run (not a
//! test).
//!
//! `cargo bench -p bihuan-tests --bench scheduler` (set `BIHUAN_TEST_PG_URL` for PostgreSQL;
//! `BENCH_CASES` open cases all due at once, default 30,000; `BENCH_LARGE` open cases in all for the
//! pass with nothing new to do, default 1,000,000; `BENCH_ONLY=sqlite|postgres`). For each database:
//! - `BENCH_CASES` cases opened on Thursday 2021-05-06, looked at on Sunday 05-09 when every one is
//!   overdue and escalated: one reminder pass (two reminders a case) and then the day's digest, with
//!   the time and how far the process's peak memory rose;
//! - the raw ceiling: as many other cases given the same writes — the mark of 500 cases a statement
//!   (`UPDATE … FROM (VALUES …)` at their version) and two outbox rows a case like the pass's (the
//!   overdue one listed by the digest, without an HTML part; the escalation with one), in
//!   multi-row inserts, one transaction per 500 — through the same driver, and the ratio;
//! - then open cases up to `BENCH_LARGE` (not yet due) and time a pass with nothing new to do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark fails loudly.

use std::time::Instant;

use bihuan_core::rating::{Channel, Level, Rater, RaterType, Rating};
use bihuan_core::{Engine, Role};
use bihuan_store::entity::outbox;
use bihuan_store::{NewUnit, NewUser};
use bihuan_test_support::TestDb;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, Set,
    Statement, TransactionTrait, Value as Db,
};
use serde_json::Map;
use uuid::Uuid;

const PAGE: u64 = 500;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().unwrap())
}

fn local(day: u32, hour: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day, hour, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn engine() -> Engine {
    bihuan_store::load_dir(
        &bihuan_tests::root().join("workflows"),
        chrono_tz::Asia::Shanghai,
    )
    .unwrap()
}

fn nth(prefix: &str, i: usize) -> Rating {
    Rating {
        source: "bench".into(),
        source_id: format!("{prefix}-{i:09}"),
        project_no: format!("{prefix}-P-{i:09}"),
        service_code: format!("S{:03}", i % 200),
        service_name: format!("事项{:03}", i % 200),
        unit_code: "bench-center".into(),
        region_code: "500114112".into(),
        channel: Channel::Mobile,
        level: Level::Dissatisfied,
        rated_at: local(6, 9),
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

/// The town: a government over its service center, a center clerk and a supervisor with addresses.
async fn seed(db: &TestDb) {
    let now = local(1, 9);
    for (code, name, parent, region) in [
        ("bench", "基准镇人民政府", None, None),
        (
            "bench-center",
            "基准镇便民服务中心",
            Some("bench"),
            Some("500114112"),
        ),
    ] {
        db.store
            .add_unit(
                &NewUnit {
                    code: code.into(),
                    name: name.into(),
                    parent: parent.map(Into::into),
                    email: None,
                    region: region.map(Into::into),
                },
                now,
            )
            .await
            .unwrap();
    }
    for (username, role, unit) in [
        ("clerk", Role::CenterStaff, "bench-center"),
        ("chief", Role::Supervisor, "bench"),
    ] {
        db.store
            .add_user(
                &NewUser {
                    username: username.into(),
                    role,
                    unit: Some(unit.into()),
                    email: Some(format!("{username}@bench.example")),
                    sms_phone: None,
                },
                "correct horse battery",
                now,
            )
            .await
            .unwrap();
    }
}

/// Opens `n` cases at `opened` (ratings through the import, 50,000 a chunk).
async fn open(db: &TestDb, engine: &Engine, prefix: &str, n: usize, opened: DateTime<Utc>) {
    let mut import = db.store.begin_ratings_import(engine, opened).await.unwrap();
    let mut chunk = Vec::with_capacity(50_000);
    for i in 0..n {
        chunk.push(nth(prefix, i));
        if chunk.len() == 50_000 {
            import.add(&chunk).await.unwrap();
            chunk.clear();
        }
    }
    import.add(&chunk).await.unwrap();
    import.commit().await.unwrap();
}

/// The process's resident memory and its peak so far, in KiB; `reset` starts a new peak.
fn memory(reset: bool) -> (u64, u64) {
    if reset {
        // Linux: writing 5 resets the peak resident set to the current one.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .map_or(0, |v| v.parse().unwrap())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The raw ceiling: the writes of a pass over `ids`, straight through the driver.
async fn raw_ceiling(
    db: &TestDb,
    ids: &[(Uuid, i32)],
    letters: &[outbox::Model; 2],
    now: DateTime<Utc>,
) {
    let conn = db.store.connection();
    let backend = conn.get_database_backend();
    for page in ids.chunks(PAGE as usize) {
        let txn = conn.begin().await.unwrap();
        let mut values: Vec<Db> = Vec::new();
        let mut tuples = Vec::new();
        for (id, version) in page {
            let first = values.len();
            values.extend([
                (*id).into(),
                3i16.into(),
                Option::<DateTime<Utc>>::None.into(),
                (version + 1).into(),
                now.into(),
                true.into(),
                true.into(),
                (*version).into(),
                0i16.into(),
            ]);
            let marks: Vec<String> = (first + 1..=first + 9)
                .map(|i| match backend {
                    DatabaseBackend::Postgres => format!("${i}"),
                    _ => "?".into(),
                })
                .collect();
            tuples.push(format!("({})", marks.join(", ")));
        }
        let marked = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE cases SET remind_stage = v.column2, remind_at = v.column3, \
                     version = v.column4, updated_at = v.column5, overdue = v.column6, \
                     escalated = v.column7 FROM (VALUES {}) AS v WHERE cases.id = v.column1 \
                     AND cases.version = v.column8 AND cases.remind_stage = v.column9",
                    tuples.join(", ")
                ),
                values,
            ))
            .await
            .unwrap();
        assert_eq!(marked.rows_affected(), page.len() as u64);
        let rows: Vec<outbox::ActiveModel> = page
            .iter()
            .flat_map(|(id, _)| {
                letters.clone().map(|letter| outbox::ActiveModel {
                    kind: Set(letter.kind.clone()),
                    case_id: Set(Some(*id)),
                    audience: Set(letter.audience.clone()),
                    recipients: Set(letter.recipients.clone()),
                    subject: Set(letter.subject.clone()),
                    body: Set(letter.body.clone()),
                    html: Set(letter.html.clone()),
                    unique_key: Set(format!("raw:{id}:{}", letter.kind)),
                    status: Set(letter.status),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    last_error: Set(None),
                    created_at: Set(now),
                    sent_at: Set(None),
                    ..Default::default()
                })
            })
            .collect();
        for chunk in rows.chunks(200) {
            outbox::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
    }
}

/// The open cases of `prefix`'s ratings still waiting for a reminder, with their versions.
async fn waiting(db: &TestDb, prefix: &str) -> Vec<(Uuid, i32)> {
    let backend = db.store.backend();
    db.store
        .connection()
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT c.id, c.version FROM cases c JOIN ratings r ON r.id = c.rating_id \
                 WHERE r.source_id LIKE '{prefix}-%' AND c.remind_stage = 0"
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<Uuid>("", "id").unwrap(),
                r.try_get::<i32>("", "version").unwrap(),
            )
        })
        .collect()
}

async fn bench(name: &str, db: &TestDb) {
    let engine = engine();
    let n = env_usize("BENCH_CASES", 30_000);
    let large = env_usize("BENCH_LARGE", 1_000_000).max(2 * n);
    seed(db).await;
    let began = Instant::now();
    open(db, &engine, "DUE", n, local(6, 10)).await;
    println!(
        "  {name}: opened {n} cases in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // Sunday 5/9: every case is overdue and escalated.
    let now = local(9, 10);
    let (rss, _) = memory(true);
    let began = Instant::now();
    let report = db
        .store
        .find_reminders(&engine, now, now, PAGE)
        .await
        .unwrap();
    let pass = began.elapsed();
    let (_, peak) = memory(false);
    assert_eq!(report.found, 2 * n);
    let began = Instant::now();
    let digests = db
        .store
        .queue_digests(&engine, NaiveDate::from_ymd_opt(2021, 5, 10).unwrap(), now)
        .await
        .unwrap();
    let digest = began.elapsed();
    let (_, digest_peak) = memory(false);
    assert_eq!(digests, 1, "one clerk gets the digest");

    // The rows the pass wrote for its first case, one of each kind: the ceiling writes their like.
    let first = |kind: &'static str| {
        outbox::Entity::find()
            .filter(outbox::Column::Kind.eq(kind))
            .order_by_asc(outbox::Column::Id)
            .one(db.store.connection())
    };
    let letters = [
        first("overdue").await.unwrap().unwrap(),
        first("escalated").await.unwrap().unwrap(),
    ];
    open(db, &engine, "RAW", n, local(6, 10)).await;
    let ids = waiting(db, "RAW").await;
    assert_eq!(ids.len(), n);
    let began = Instant::now();
    raw_ceiling(db, &ids, &letters, now).await;
    let ceiling = began.elapsed();

    let began = Instant::now();
    let idle = db
        .store
        .find_reminders(&engine, now, now, PAGE)
        .await
        .unwrap();
    let idle_small = began.elapsed();
    assert_eq!((idle.found, idle.overtaken), (0, 0));

    // Up to `large` open cases, opened Monday 5/10: none is due on Sunday 5/9.
    let began = Instant::now();
    open(db, &engine, "LATER", large - 2 * n, local(10, 10)).await;
    println!(
        "  {name}: opened {} more cases in {:.1} s",
        large - 2 * n,
        began.elapsed().as_secs_f64()
    );
    let began = Instant::now();
    let idle = db
        .store
        .find_reminders(&engine, now, now, PAGE)
        .await
        .unwrap();
    let idle_large = began.elapsed();
    assert_eq!((idle.found, idle.overtaken), (0, 0));

    let per_second = |count: usize, took: std::time::Duration| count as f64 / took.as_secs_f64();
    let mib = |kib: u64| kib.saturating_sub(rss) as f64 / 1024.0;
    println!(
        "| {name} | reminder pass, {n} cases due | {:.2} s | {:.0} | +{:.0} MiB | {:.2} |",
        pass.as_secs_f64(),
        per_second(n, pass),
        mib(peak),
        ceiling.as_secs_f64() / pass.as_secs_f64(),
    );
    println!(
        "| {name} | raw ceiling, the same writes | {:.2} s | {:.0} | | 1.00 |",
        ceiling.as_secs_f64(),
        per_second(n, ceiling),
    );
    println!(
        "| {name} | daily digest of {} reminders | {:.2} s | | +{:.0} MiB | |",
        n,
        digest.as_secs_f64(),
        mib(digest_peak),
    );
    println!(
        "| {name} | nothing new, {} open cases | {:.3} s | | | |",
        2 * n,
        idle_small.as_secs_f64()
    );
    println!(
        "| {name} | nothing new, {large} open cases | {:.3} s | | | |",
        idle_large.as_secs_f64()
    );
}

/// The binary's allocator (crates/bihuan/src/main.rs), so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = std::env::var("BENCH_ONLY").ok();
    println!("| database | pass | time | cases/s | memory | ratio to ceiling |");
    println!("|---|---|---:|---:|---:|---:|");
    if only.as_deref().is_none_or(|o| o == "sqlite") {
        let db = TestDb::sqlite().await.unwrap();
        bench("SQLite", &db).await;
        db.finish().await.unwrap();
    }
    if only.as_deref().is_none_or(|o| o == "postgres") {
        match TestDb::postgres().await.unwrap() {
            Some(db) => {
                bench("PostgreSQL", &db).await;
                db.finish().await.unwrap();
            }
            None => println!("PostgreSQL skipped: BIHUAN_TEST_PG_URL is not set"),
        }
    }
}
