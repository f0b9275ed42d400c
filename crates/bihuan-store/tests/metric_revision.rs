//! Sums counted by an older version of the counts are rebuilt once, by one process, when this
//! version counts more (`metric_revision`), on both databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_store::{CaseScope, GroupBy, MetricsQuery, Store};
use bihuan_test_support::TestDb;
use sea_orm::ConnectionTrait;
use serde_json::json;

use common::{act, at, engine, seed_org, transferred};

bihuan_test_support::on_both_databases!(sums_of_an_older_revision_are_rebuilt_once);

async fn reached(store: &Store) -> i64 {
    let rows = store
        .metrics(
            &CaseScope::All,
            &MetricsQuery {
                from: None,
                to: None,
                unit: None,
                group_by: GroupBy::All,
            },
        )
        .await
        .unwrap();
    rows[0].counts.reached_feedback
}

async fn sums_of_an_older_revision_are_rebuilt_once(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "V1").await;
    act(
        store,
        &engine,
        id,
        "li",
        "rectify",
        common::cited(
            store,
            id,
            json!({"finding": "true", "measures": "补正告知", "outcome": "rectified"}),
        )
        .await,
        at(6, 15),
    )
    .await
    .unwrap();
    assert_eq!(reached(store).await, 1);
    assert!(
        !store.rebuild_stale_metrics(&engine).await.unwrap(),
        "a database migrated before its first case holds sums of this revision"
    );
    // Sums as the version before counted them: no such count, revision 1.
    for sql in [
        "UPDATE metric_days SET reached_feedback = 0",
        "UPDATE metric_details SET reached_feedback = 0",
        "UPDATE metric_deltas SET reached_feedback = 0",
        "UPDATE metric_revision SET revision = 1",
    ] {
        store.connection().execute_unprepared(sql).await.unwrap();
    }
    assert_eq!(reached(store).await, 0);
    let (first, second) = tokio::join!(
        store.rebuild_stale_metrics(&engine),
        store.rebuild_stale_metrics(&engine)
    );
    assert_eq!(
        [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|r| **r)
            .count(),
        1,
        "one rebuild"
    );
    assert_eq!(reached(store).await, 1);
    assert!(!store.rebuild_stale_metrics(&engine).await.unwrap());
}
