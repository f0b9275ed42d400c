//! Persistence of Bihuan on sea-orm, SQLite or PostgreSQL: organization, ratings, cases with their
//! transactional actions and hash-chained event log, and the outbox.
//!
//! Every write that belongs together happens in one transaction. On SQLite writes take the write lock
//! at `BEGIN` (`BEGIN IMMEDIATE`), so one writer at a time, across processes too; on PostgreSQL rows are
//! guarded by the case's `version`.

mod access;
mod audits;
mod batch;
mod bulk;
mod cases;
mod chain;
mod clock;
pub mod entity;
mod error;
mod ledger;
mod metrics;
mod org;
mod outbox;
mod plans;
mod ratings;
mod reminders;
mod review;
mod scope;
pub mod testing;
mod workflows;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use access::{CHANNEL_PREFIX, SCOPE_RATINGS_WRITE, SESSION_PREFIX, token_hash};
pub use audits::{AUDIT_FAIL_ACTION, Verdict};
pub use batch::{BatchOutcome, RatingsImport};
pub use cases::{ActionRequest, CaseDetail};
pub use chain::{BrokenEvent, ChainOf, ChainReport};
pub use clock::{Clock, truncate_to_micros};
pub use error::{Result, StoreError};
pub use ledger::{LEDGER_HEADERS, LedgerFilter, LedgerRow};
pub use metrics::{GroupBy, MetricsQuery, MetricsRow};
pub use org::{NewUnit, NewUser, verify_password};
pub use outbox::{DEAD, FailureOutcome, OUTBOX_STATUSES, RetryPolicy};
pub use plans::{
    CO, LEAD, NewItem, NewPlan, PlanDetail, PlanImport, PlanOptions, PlanSummary, TaskDetail,
    TaskView, is_overdue,
};
pub use ratings::RecordedRating;
pub use reminders::ReminderReport;
pub use review::{ReviewAnswer, ReviewLink, ReviewLinkState};
pub use scope::{CaseFilter, CaseScope, RatingFilter, Reach, UnmappedUnit};
pub use workflows::load_dir;

/// The database behind Bihuan.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite has one writer at a time: bulk writers of this process queue here, handing over at once,
    /// instead of sleeping in SQLite's busy handler.
    bulk_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Connects to `sqlite:…` or `postgres://…`. SQLite runs in WAL mode with a busy timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(30));
        if url.starts_with("sqlite:") {
            options.max_connections(4).map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(15))
                    .foreign_keys(true)
            });
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            options.max_connections(16);
            probe_postgres(url, &shown).await?;
        } else {
            return Err(StoreError::BadUrl { url: shown });
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| StoreError::Connect {
                url: shown.clone(),
                message: one_line(&e.to_string()),
            })?;
        db.ping().await.map_err(|e| StoreError::Connect {
            url: shown,
            message: one_line(&e.to_string()),
        })?;
        Ok(Self {
            db,
            bulk_writer: Default::default(),
        })
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let pending = bihuan_migration::Migrator::get_pending_migrations(&self.db)
            .await?
            .len();
        bihuan_migration::Migrator::up(&self.db, None).await?;
        Ok(pending)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    /// The underlying connection, for tests and tools (handlers never touch it; queries live in this
    /// crate).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<()> {
        Ok(self.db.close().await?)
    }

    /// Begins a write transaction: on SQLite it takes the write lock at once, so two writers never
    /// both read and then fail to write; on PostgreSQL a plain `BEGIN`.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let txn = match self.backend() {
            DatabaseBackend::Sqlite => {
                self.db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await?
            }
            _ => self.db.begin().await?,
        };
        Ok(txn)
    }
}

/// One direct connection before the pool, so an unreachable server answers at once with its real
/// reason instead of the pool's time-out.
async fn probe_postgres(url: &str, shown: &str) -> Result<()> {
    use sea_orm::sqlx::Connection;
    let failed = |message: String| StoreError::Connect {
        url: shown.to_owned(),
        message,
    };
    let attempt = sea_orm::sqlx::PgConnection::connect(url);
    let conn = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| failed("10 秒内无应答".to_owned()))?
        .map_err(|e| failed(one_line(&e.to_string())))?;
    conn.close()
        .await
        .map_err(|e| failed(one_line(&e.to_string())))
}

/// Hides the password of a database URL in messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("sqlite://bihuan.db?mode=rwc"),
            "sqlite://bihuan.db?mode=rwc"
        );
    }
}
