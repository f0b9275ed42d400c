//! The test databases themselves: one a test leaves behind by panicking is removed all the same.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_store::Store;
use bihuan_test_support::{PG_URL_VAR, TestDb};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

/// How many databases of that name the server has.
async fn databases_named(admin: &Store, name: &str) -> i64 {
    let row = admin
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[cfg_attr(not(bihuan_pg), ignore = "BIHUAN_TEST_PG_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_test_database_is_removed_even_without_finish() {
    let db = TestDb::postgres()
        .await
        .unwrap()
        .expect("BIHUAN_TEST_PG_URL is set");
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let admin = Store::connect(&std::env::var(PG_URL_VAR).unwrap())
        .await
        .unwrap();
    assert_eq!(databases_named(&admin, &name).await, 1);
    // What a panicking test does: the value goes out of scope, `finish` never runs.
    let task = tokio::spawn(async move {
        let _db = db;
        panic!("a failing test");
    });
    assert!(task.await.is_err());
    assert_eq!(
        databases_named(&admin, &name).await,
        0,
        "{name} was removed"
    );
    admin.close().await.unwrap();
}
