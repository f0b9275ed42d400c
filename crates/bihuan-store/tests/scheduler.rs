//! The reminder scanner works in sets: a page of cases is marked in one statement and its reminders
//! written in a few, each once; a pass with nothing due reads one index range and writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::rating::{Channel, Level};
use bihuan_store::OutboxStatus;
use bihuan_store::entity::{case, outbox};
use bihuan_test_support::TestDb;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, Statement, TransactionTrait,
};

use common::{at, engine, observed, rating, seed_org, taken};

bihuan_test_support::on_both_databases!(
    one_pass_reminds_every_case_once_a_page_at_a_time,
    the_due_scan_reads_the_partial_index,
);

/// 00:00 of a day of May 2021 in Shanghai, plus `minutes`.
fn local(day: u32, minutes: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day, minutes / 60, minutes % 60, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// 1,200 cases opened Thursday 5/6 (due when Friday 5/7 ends, escalated when the make-up working
/// Saturday 5/8 ends), looked at on Sunday 5/9: every one is overdue and escalated at once.
async fn one_pass_reminds_every_case_once_a_page_at_a_time(db: &TestDb) {
    const CASES: usize = 1_200;
    const PAGE: u64 = 500;
    let engine = engine();
    seed_org(&db.store).await;
    let ratings: Vec<_> = (0..CASES)
        .map(|i| {
            rating(
                &format!("SCAN-{i:05}"),
                Level::Dissatisfied,
                Channel::Mobile,
            )
        })
        .collect();
    db.store
        .record_ratings_batch(&engine, &ratings, at(6, 10))
        .await
        .unwrap();
    let (store, seen) = observed(db).await;
    let now = local(9, 10 * 60);

    let report = store.find_reminders(&engine, now, now, PAGE).await.unwrap();
    assert_eq!(report.found, 2 * CASES, "overdue and escalated, each case");
    assert_eq!(report.overtaken, 0);
    let statements = taken(&seen);
    let pages = CASES.div_ceil(PAGE as usize);
    let marks = statements
        .iter()
        .filter(|s| s.starts_with("UPDATE cases SET remind_stage"))
        .count();
    assert_eq!(marks, pages, "one mark a page");
    // A page: its read, BEGIN, the mark, the tree's revision, ratings, people, events, the metric
    // sums, lapsing, the outbox rows (200 a statement), COMMIT; plus the work items' empty read and
    // the other clocks' (overall limits not yet due, no scheduled rectification).
    let bound = pages * (11 + (2 * PAGE as usize).div_ceil(200)) + 4;
    assert!(
        statements.len() <= bound,
        "{} statements for {CASES} cases (at most {bound}):\n{}",
        statements.len(),
        statements.join("\n")
    );

    let cases = case::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert!(cases.iter().all(|c| {
        (
            c.remind_stage,
            c.overdue,
            c.escalated,
            c.version,
            c.remind_at,
        ) == (3, true, true, 2, None)
    }));
    let rows = outbox::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2 * CASES);
    let digest = rows
        .iter()
        .filter(|r| *r.status == OutboxStatus::Digest)
        .count();
    let pending = rows
        .iter()
        .filter(|r| *r.status == OutboxStatus::Pending)
        .count();
    assert_eq!(
        (digest, pending),
        (CASES, CASES),
        "overdue to the digest, 督办 at once"
    );
    assert!(
        rows.iter()
            .filter(|r| r.kind == "escalated")
            .all(|r| r.recipients == serde_json::json!(["wang@shaba.example"]))
    );
    // What the digest gathers is listed (subject and text), never sent by itself: no HTML part is
    // rendered or stored for it; a mail sent at once has one.
    assert!(rows.iter().all(|r| {
        let listed = *r.status == OutboxStatus::Digest;
        !r.subject.is_empty() && !r.body.is_empty() && r.html.is_some() != listed
    }));

    // Nothing new: one read of each clock's due range (cases, work items, overall limits, scheduled
    // rectifications), no write.
    let again = store.find_reminders(&engine, now, now, PAGE).await.unwrap();
    assert_eq!((again.found, again.overtaken), (0, 0));
    let statements = taken(&seen);
    assert_eq!(statements.len(), 4, "{}", statements.join("\n"));
    assert!(statements.iter().all(|s| s.starts_with("SELECT")));
    assert_eq!(
        outbox::Entity::find()
            .count(db.store.connection())
            .await
            .unwrap(),
        2 * CASES as u64
    );

    // The next morning's digest lists the 50 most urgent of the 1,200 and counts the rest, built
    // from the waiting rows a page at a time.
    let day = chrono::NaiveDate::from_ymd_opt(2021, 5, 10).unwrap();
    let made = store
        .queue_digests(&engine, day, local(10, 8 * 60 + 30))
        .await
        .unwrap();
    let digests: Vec<_> = outbox::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "digest")
        .collect();
    assert_eq!(made, digests.len());
    assert!(!digests.is_empty());
    for d in &digests {
        assert!(
            d.subject
                .contains("1200 件即将到期或超期（其中超期 1200 件）"),
            "{}",
            d.subject
        );
        let listed = d.body.matches("办件编号：").count();
        assert_eq!(listed, bihuan_store::DIGEST_MAX_ITEMS, "{}", d.body);
        assert!(d.body.contains("另有 1150 件未列出"), "{}", d.body);
        // Most urgent first, then by case: every one is as overdue as the others.
        assert!(d.body.contains("1. 【已超期】"), "{}", d.body);
    }
    store.close().await.unwrap();
}

/// The scan is a range of the partial index `(remind_at, id) WHERE remind_stage < 3`, not a walk
/// of the open cases, read in its order (PostgreSQL is told to avoid table and bitmap scans, so a
/// small test table proves the index can serve it).
async fn the_due_scan_reads_the_partial_index(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let now = local(9, 600);
    let store = &db.store;
    store.find_reminders(&engine, now, now, 10).await.unwrap();
    let backend = store.backend();
    let query = match backend {
        DatabaseBackend::Postgres => {
            "EXPLAIN SELECT id FROM cases WHERE remind_stage < 3 AND remind_at <= $1 \
             ORDER BY remind_at, id LIMIT 500"
        }
        _ => {
            "EXPLAIN QUERY PLAN SELECT id FROM cases WHERE remind_stage < 3 AND remind_at <= ? \
             ORDER BY remind_at, id LIMIT 500"
        }
    };
    let txn = store.connection().begin().await.unwrap();
    if backend == DatabaseBackend::Postgres {
        for setting in ["enable_seqscan", "enable_bitmapscan"] {
            txn.execute_unprepared(&format!("SET LOCAL {setting} = off"))
                .await
                .unwrap();
        }
    }
    let plan: Vec<String> = txn
        .query_all_raw(Statement::from_sql_and_values(backend, query, [now.into()]))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            row.try_get_by_index::<String>(if backend == DatabaseBackend::Postgres {
                0
            } else {
                3
            })
            .unwrap()
        })
        .collect();
    txn.rollback().await.unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("idx_cases_due"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "sorted by the index: {plan}");
    assert!(!plan.contains("Sort"), "sorted by the index: {plan}");
}
