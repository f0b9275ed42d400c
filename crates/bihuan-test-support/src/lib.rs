//! Throw-away databases for the tests and benchmarks of this workspace: a temporary SQLite file, or a
//! fresh database on the PostgreSQL server of `BIHUAN_TEST_PG_URL`. A dev-dependency only: nothing of
//! it is in the binary.

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use bihuan_store::{Result, Store, StoreError};

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_URL_VAR: &str = "BIHUAN_TEST_PG_URL";

/// A migrated database for one test. Call [`TestDb::finish`] at the end to close its store and remove
/// it; a test that panics before that still leaves nothing behind (the database is removed on drop).
#[derive(Debug)]
pub struct TestDb {
    /// The store on it.
    pub store: Store,
    /// Its URL, for running the binary against it.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
    Done,
}

/// Removes a test database from the server.
async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let admin = Store::connect(admin_url).await?;
    admin
        .connection()
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin.close().await
}

impl Drop for TestDb {
    /// A PostgreSQL database left by a test that did not reach [`TestDb::finish`] (it panicked) is
    /// removed from a thread of its own: `drop` cannot wait on the test's runtime.
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } =
            std::mem::replace(&mut self.cleanup, Cleanup::Done)
        {
            let removed = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime
                    .block_on(drop_database(&admin_url, &name))
                    .map_err(|e| e.to_string())
            })
            .join();
            if !matches!(removed, Ok(Ok(()))) {
                eprintln!("a test database could not be removed: {removed:?}");
            }
        }
    }
}

impl TestDb {
    /// A migrated SQLite database in a temporary folder.
    pub async fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Corrupt(format!("temporary folder: {e}")))?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok(Self {
            store,
            url,
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A fresh, migrated database on the server of `BIHUAN_TEST_PG_URL`; `Ok(None)` only when the
    /// variable is not set (when it is set, failing to reach the server is an error, never a skip).
    pub async fn postgres() -> Result<Option<Self>> {
        let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
            eprintln!("{PG_URL_VAR} is not set: this PostgreSQL test did not run");
            return Ok(None);
        };
        let name = format!("bihuan_t_{}", Uuid::new_v4().simple());
        let admin = Store::connect(&admin_url).await?;
        admin
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url, &name);
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok(Some(Self {
            store,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        }))
    }

    /// Closes the store and removes the database.
    pub async fn finish(mut self) -> Result<()> {
        self.store.clone().close().await?;
        if let Cleanup::Postgres { admin_url, name } =
            std::mem::replace(&mut self.cleanup, Cleanup::Done)
        {
            drop_database(&admin_url, &name).await?;
        }
        Ok(())
    }
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Declares `mod sqlite` and `mod postgres`, each with one `#[tokio::test]` per scenario; a scenario is
/// an `async fn(&TestDb)` in the calling module. The PostgreSQL tests run whenever `BIHUAN_TEST_PG_URL`
/// is set (failing if the server cannot be reached) and say so when it is not.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::TestDb::sqlite().await.unwrap();
                    super::$name(&db).await;
                    db.finish().await.unwrap();
                }
            )*
        }
        mod postgres {
            $(
                #[cfg_attr(not(bihuan_pg), ignore = "BIHUAN_TEST_PG_URL is not set")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::TestDb::postgres()
                        .await
                        .unwrap()
                        .expect("BIHUAN_TEST_PG_URL was set when this test was built; set it to run it");
                    super::$name(&db).await;
                    db.finish().await.unwrap();
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://p@h:5432/postgres", "x"),
            "postgres://p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://p@h:5432", "x"),
            "postgres://p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://p@h/db?sslmode=disable", "x"),
            "postgres://p@h/x?sslmode=disable"
        );
    }
}
