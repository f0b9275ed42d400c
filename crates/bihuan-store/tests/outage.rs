//! When the database refuses a write: every answer is an error or a committed change, nothing is
//! half-written, no connection carries a transaction into the next request, and the same pool serves
//! again as soon as the cause is gone. On SQLite (a size cap filled by `PRAGMA max_page_count`) and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bihuan_store::{ActionRequest, DbSettings, Outage, Store, StoreError};
use bihuan_test_support::TestDb;
use sea_orm::sqlx::{self, Connection};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};
use serde_json::{Map, json};

use common::{act, actor, at, engine, open_case, seed_org};

bihuan_test_support::on_both_databases!(
    a_statement_failing_inside_an_action_leaves_the_next_action_outside_any_transaction,
    a_write_waits_on_a_lock_no_longer_than_the_time_limit,
    readiness_asked_many_times_at_once_is_ready,
);

/// One pooled connection, so that "the next action" runs on the connection the failure left.
fn one_connection() -> DbSettings {
    DbSettings {
        max_connections: Some(1),
        ..DbSettings::default()
    }
}

/// Whether the pooled connection is outside any transaction, as sqlx counts it and as the database
/// itself sees it.
async fn outside_any_transaction(store: &Store, url: &str) -> bool {
    match store.backend() {
        DatabaseBackend::Sqlite => {
            let pool = store.connection().get_sqlite_connection_pool();
            let mut conn = pool.acquire().await.unwrap();
            // `BEGIN` fails inside a transaction.
            !conn.is_in_transaction()
                && sqlx::raw_sql("BEGIN; ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .is_ok()
        }
        _ => {
            let pool = store.connection().get_postgres_connection_pool();
            let mut conn = pool.acquire().await.unwrap();
            let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            // The server's own word on that backend, between two of its statements, asked from
            // another connection: "idle", or "idle in transaction".
            let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
            let (state,): (String,) =
                sqlx::query_as("SELECT state FROM pg_stat_activity WHERE pid = $1")
                    .bind(pid)
                    .fetch_one(&mut watcher)
                    .await
                    .unwrap();
            watcher.close().await.unwrap();
            !conn.is_in_transaction() && state == "idle"
        }
    }
}

async fn a_statement_failing_inside_an_action_leaves_the_next_action_outside_any_transaction(
    db: &TestDb,
) {
    let engine = engine();
    seed_org(&db.store).await;
    let failing = open_case(&db.store, &engine, "G1").await;
    let stale = open_case(&db.store, &engine, "G2").await;
    let good = open_case(&db.store, &engine, "G3").await;
    // The failing case's event insert fails. On SQLite `RAISE(ROLLBACK)` rolls the whole transaction
    // back inside SQLite, as a full disk does, so the `ROLLBACK` sent afterwards is refused.
    let install: Vec<String> = match db.store.backend() {
        DatabaseBackend::Sqlite => vec![format!(
            "CREATE TRIGGER fail_event BEFORE INSERT ON events WHEN NEW.case_id = X'{}' \
             BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END",
            failing.simple()
        )],
        _ => vec![
            "CREATE FUNCTION fail_event() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END; $$ LANGUAGE plpgsql".to_owned(),
            format!("CREATE TRIGGER fail_event BEFORE INSERT ON events FOR EACH ROW WHEN (NEW.case_id = '{failing}') EXECUTE FUNCTION fail_event()"),
        ],
    };
    for sql in install {
        db.store
            .connection()
            .execute_unprepared(&sql)
            .await
            .unwrap();
    }
    let store = Store::connect_with(&db.url, one_connection())
        .await
        .unwrap();

    let err = act(
        &store,
        &engine,
        failing,
        "zhang",
        "accept",
        json!({}),
        at(6, 11),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(
        outside_any_transaction(&store, &db.url).await,
        "after a failed statement"
    );

    // A refusal inside the transaction (a stale version) on the same connection.
    let refused = store
        .apply_action(
            &engine,
            &ActionRequest {
                id: stale,
                scope: &bihuan_store::CaseScope::All,
                version: 7,
                action: "accept",
                fields: &Map::new(),
                actor: &actor("zhang"),
                now: at(6, 11),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { .. }), "{refused}");
    assert!(
        outside_any_transaction(&store, &db.url).await,
        "after a refusal"
    );

    // The next action commits for real: another pool sees it at once, and so does a reopened file.
    let done = act(
        &store,
        &engine,
        good,
        "zhang",
        "accept",
        json!({}),
        at(6, 12),
    )
    .await
    .unwrap();
    assert_eq!((done.state.as_str(), done.version), ("accepted", 2));
    assert!(
        outside_any_transaction(&store, &db.url).await,
        "after a commit"
    );
    store.close().await.unwrap();
    let other = Store::connect(&db.url).await.unwrap();
    for (id, state, version) in [
        (failing, "received", 1),
        (stale, "received", 1),
        (good, "accepted", 2),
    ] {
        let detail = other.case(id).await.unwrap();
        assert_eq!(
            (detail.case.state.as_str(), detail.case.version),
            (state, version),
            "case {id}"
        );
        assert_eq!(detail.events.len() as i32, version, "events of {id}");
    }
    assert!(other.verify_chain().await.unwrap().ok);
    other.close().await.unwrap();
}

async fn a_write_waits_on_a_lock_no_longer_than_the_time_limit(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let id = open_case(&db.store, &engine, "L1").await;
    // Another writer holds the lock the action needs and does not let go: SQLite's write lock, the
    // case's row on PostgreSQL.
    let holder = Store::connect(&db.url).await.unwrap();
    let txn = match holder.backend() {
        DatabaseBackend::Sqlite => holder
            .connection()
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .unwrap(),
        backend => {
            let txn = holder.connection().begin().await.unwrap();
            txn.execute_raw(Statement::from_string(
                backend,
                format!("SELECT id FROM cases WHERE id = '{id}' FOR UPDATE"),
            ))
            .await
            .unwrap();
            txn
        }
    };
    let limited = Store::connect_with(
        &db.url,
        DbSettings {
            timeout: Duration::from_millis(800),
            ..DbSettings::default()
        },
    )
    .await
    .unwrap();
    // Bounded by the test too, so that a hang fails it instead of stalling the suite.
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        act(
            &limited,
            &engine,
            id,
            "zhang",
            "accept",
            json!({}),
            at(6, 11),
        ),
    )
    .await
    .expect("the action answers within the time limit, not after the lock is released")
    .unwrap_err();
    // Well inside three times the limit (the default limit, 5 s, would not be).
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            answer,
            StoreError::Unavailable {
                outage: Outage::Busy | Outage::TimedOut,
                ..
            }
        ),
        "{answer}"
    );
    txn.rollback().await.unwrap();
    // The lock gone, the same pool takes the action.
    let done = act(
        &limited,
        &engine,
        id,
        "zhang",
        "accept",
        json!({}),
        at(6, 12),
    )
    .await
    .unwrap();
    assert_eq!(done.version, 2);
    limited.close().await.unwrap();
    holder.close().await.unwrap();
}

/// SQLite's pages in use.
async fn page_count(store: &Store) -> u32 {
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA page_count",
        ))
        .await
        .unwrap()
        .unwrap();
    u32::try_from(row.try_get_by_index::<i64>(0).unwrap()).unwrap()
}

/// A database capped at its size (`PRAGMA max_page_count`, a quota filled as a disk fills): 20 accepts
/// at once each answer an error or a committed change; freeing room (deleting old rows) lets the same
/// pool take the rest; a reopened file holds every acknowledged action and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_database_answers_every_write_with_an_error_or_a_committed_change() {
    let db = TestDb::sqlite().await.unwrap();
    let engine = Arc::new(engine());
    seed_org(&db.store).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(open_case(&db.store, &engine, &format!("D{i:02}")).await);
    }
    // Old rows to delete later, as a clerk frees room by removing old exports.
    let conn = db.store.connection();
    conn.execute_unprepared("CREATE TABLE old_files (content BLOB NOT NULL)")
        .await
        .unwrap();
    conn.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) \
         INSERT INTO old_files SELECT zeroblob(4000) FROM n",
    )
    .await
    .unwrap();
    let full_at = page_count(&db.store).await;
    let store = Store::connect_with(
        &db.url,
        DbSettings {
            sqlite_max_pages: Some(full_at),
            ..DbSettings::default()
        },
    )
    .await
    .unwrap();

    let mut answers = Vec::new();
    for &id in &ids[..20] {
        let (store, engine) = (store.clone(), engine.clone());
        answers.push(tokio::spawn(async move {
            (
                id,
                act(&store, &engine, id, "zhang", "accept", json!({}), at(6, 11)).await,
            )
        }));
    }
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for answer in answers {
        let (id, answer) = answer.await.unwrap();
        match answer {
            Ok(case) => {
                assert_eq!((case.state.as_str(), case.version), ("accepted", 2));
                acknowledged.push(id);
            }
            Err(StoreError::Unavailable {
                outage: Outage::DiskFull,
                ..
            }) => refused.push(id),
            Err(other) => panic!("an accept answered {other}"),
        }
    }
    assert!(!refused.is_empty(), "the cap was reached");
    let not_ready = store
        .check_writable(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_ready,
            StoreError::Unavailable {
                outage: Outage::DiskFull,
                ..
            }
        ),
        "{not_ready}"
    );

    // Room again: the same pool, no reconnect.
    store
        .connection()
        .execute_unprepared("DELETE FROM old_files")
        .await
        .unwrap();
    store.check_writable(Duration::from_secs(2)).await.unwrap();
    for &id in refused.iter().chain(&ids[20..]) {
        let case = act(&store, &engine, id, "zhang", "accept", json!({}), at(6, 12))
            .await
            .unwrap();
        assert_eq!(case.version, 2);
    }
    store.close().await.unwrap();

    let reopened = Store::connect(&db.url).await.unwrap();
    for &id in &ids {
        let detail = reopened.case(id).await.unwrap();
        assert_eq!(
            (detail.case.state.as_str(), detail.case.version),
            ("accepted", 2),
            "case {id}"
        );
        assert_eq!(detail.events.len(), 2, "events of {id}");
        let accepted_at = detail.events[1].at;
        let expected = if acknowledged.contains(&id) {
            at(6, 11)
        } else {
            at(6, 12)
        };
        assert_eq!(
            accepted_at, expected,
            "case {id} was accepted when its answer said"
        );
    }
    let report = reopened.verify_chain().await.unwrap();
    assert!(report.ok, "{:?}", report.first_broken);
    reopened.close().await.unwrap();
    db.finish().await.unwrap();
}

/// Sixteen `/readyz` at once on a healthy database: one probe runs and every caller shares its
/// answer (before, the callers arriving while it ran were told "not ready").
async fn readiness_asked_many_times_at_once_is_ready(db: &TestDb) {
    let mut asked = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = db.store.clone();
        asked.spawn(async move { store.ready(Duration::from_secs(5)).await });
    }
    while let Some(answer) = asked.join_next().await {
        assert!(answer.unwrap().is_ok(), "a healthy database is ready");
    }
}
