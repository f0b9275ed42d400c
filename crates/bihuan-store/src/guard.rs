//! The transaction guard: a pooled connection goes back to the pool only outside any transaction.
//!
//! A transaction that ends in an error is rolled back when sea-orm drops it: the `ROLLBACK` is queued
//! on the connection and the connection returns to the pool. sqlx counts the transactions it opened
//! and lowers the count only when the `ROLLBACK` succeeds. SQLite, though, rolls a transaction back by
//! itself on a full disk or an I/O error and then refuses that `ROLLBACK` ("no transaction is
//! active"): sqlx still counts one transaction open, so the next `BEGIN` on the connection becomes a
//! `SAVEPOINT`, which SQLite runs as a real transaction that the matching `RELEASE` may never end —
//! later requests then answer 200 from writes nobody commits, holding the write lock until the process
//! restarts. These checks, run by the pool as each connection is released, close such a connection.

use sea_orm::sqlx::pool::PoolConnectionMetadata;
use sea_orm::sqlx::{self, Connection, PgConnection, SqliteConnection};

type Check<'c> = std::pin::Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// SQLite: after a transaction that ended in an error, lets the queued rollback run and then proves
/// that sqlx and SQLite both see no transaction (`BEGIN` fails inside one); otherwise the connection
/// is closed. A connection that committed needs no check (sqlx counts a commit only once it is done).
pub(crate) fn sqlite_released(conn: &mut SqliteConnection, _: PoolConnectionMetadata) -> Check<'_> {
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        // The worker takes commands in order: once this answers, the queued rollback has run.
        conn.ping().await?;
        if conn.is_in_transaction() {
            tracing::debug!("a connection whose transaction could not be rolled back is closed");
            return Ok(false);
        }
        // An error here (SQLite still in a transaction) makes the pool close the connection.
        sqlx::raw_sql("BEGIN; ROLLBACK").execute(&mut *conn).await?;
        Ok(true)
    })
}

/// PostgreSQL: sqlx queues the `ROLLBACK` of a dropped transaction and sends it with the pool's own
/// check of the released connection, which closes the connection when it fails; that check is the
/// real guard here. A transaction still counted open at this point never had its rollback queued
/// (sea-orm could not reach the connection to queue it), so the connection is closed.
pub(crate) fn postgres_released(conn: &mut PgConnection, _: PoolConnectionMetadata) -> Check<'_> {
    Box::pin(async move { Ok(!conn.is_in_transaction()) })
}
