//! Persistence of Bihuan on sea-orm, SQLite or PostgreSQL: organization, ratings, cases with their
//! transactional actions and hash-chained event log, and the outbox.
//!
//! Every write that belongs together happens in one transaction. On SQLite writes take the write lock
//! at `BEGIN` (`BEGIN IMMEDIATE`), so one writer at a time, across processes too, and the writers of
//! one process queue in order for the one connection that writes; on PostgreSQL rows are guarded by
//! the case's `version`.

mod access;
mod attachments;
mod audits;
mod batch;
mod bulk;
mod cases;
mod chain;
mod clock;
mod code;
pub mod entity;
mod error;
pub mod files;
mod follow_ups;
mod guard;
mod ledger;
mod metrics;
mod org;
mod org_tree;
mod outbox;
mod pipeline;
mod plans;
mod ratings;
mod reminders;
mod review;
mod scope;
mod work_items;
mod workflows;

use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ConnectOptions, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, EntityTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use access::{
    ApiToken, CHANNEL_PREFIX, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, SESSION_PREFIX, SessionUser,
    SignInAttempt, ThrottleKey, TokenScope, check_password, token_hash,
};
pub use attachments::{MAX_ATTACHMENTS_PER_SUBJECT, NewAttachment, evidence_file};
pub use audits::{AUDIT_FAIL_ACTION, Verdict};
pub use batch::{BatchOutcome, RatingsImport};
pub use cases::{ActionRequest, CaseDetail, last_rectification, scheduled_of};
pub use chain::{BrokenEvent, ChainReport, EvidenceCheck, SubjectKind};
pub use clock::{Clock, truncate_to_micros};
pub use code::{Code, StoredCode, UnknownCode};
pub use error::{Outage, Result, StoreError};
pub use files::{FileCheck, Files, FilesError};
pub use follow_ups::FollowUpKind;
pub use ledger::{Choice, LedgerEntry, LedgerFilter, ReviewOutcome};
pub use metrics::{GroupBy, MetricsQuery, MetricsRow};
pub use org::{NewUnit, NewUser, verify_password};
pub use outbox::{
    FailureOutcome, OutboxChannel, OutboxStatus, RetryPolicy, idempotency_key, push_key,
};
pub use plans::{
    DueKind, NewItem, NewPlan, PlanDetail, PlanImport, PlanOptions, PlanSummary, TaskDetail,
    TaskView, UnitRole, is_overdue,
};
pub use ratings::RecordedRating;
pub use reminders::{DIGEST_MAX_ITEMS, ReminderReport};
pub use review::{ReviewAnswer, ReviewLink, ReviewLinkState};
pub use scope::{CaseFilter, CaseScope, RatingFilter, Reach, UnmappedUnit};
pub use work_items::task_event_fields;
pub use workflows::load_dir;

/// The database behind Bihuan.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite has one writer at a time: the writers of this process take turns, in the order they
    /// came, on a pool of one connection of its own, handing over as one commits, instead of
    /// sleeping in SQLite's busy handler (which wakes a waiter after up to 100 ms, in no order).
    /// `None` on PostgreSQL, where writes take connections of the one pool.
    writer: Option<DatabaseConnection>,
    settings: DbSettings,
    readiness: std::sync::Arc<Readiness>,
    /// The organization tree, read again only when `org_revision` changes.
    org: std::sync::Arc<org_tree::OrgCache>,
    /// Whether the steps of a 差评's handling are pushed to the provincial platform (数据回传):
    /// their outbox rows are written with the actions only when a platform is configured.
    upstream: bool,
}

/// Why the database is not ready: the outage when it is one, and the database's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// What kind of outage (`None`: another database error).
    pub outage: Option<Outage>,
    /// What went wrong.
    pub message: String,
}

/// The readiness checks of one store: one probe at a time, its answer shared for a second.
#[derive(Debug, Default)]
struct Readiness {
    last: std::sync::Mutex<Option<(std::time::Instant, std::result::Result<(), NotReady>)>>,
    probing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// How the store deals with its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSettings {
    /// The longest a caller waits on the database (`BIHUAN_DB_TIMEOUT`, default 5 s): for a pooled
    /// connection, for SQLite's write lock, for a row lock on PostgreSQL, and for a whole interactive
    /// write (an action, a rating, a sign-in) from its `BEGIN` to its `COMMIT`. Past it the answer is
    /// [`StoreError::Unavailable`], never a hang.
    pub timeout: Duration,
    /// The most connections of the pool (default 4 on SQLite, 16 on PostgreSQL).
    pub max_connections: Option<u32>,
    /// SQLite only: the most pages the database file may grow to (`PRAGMA max_page_count`), a quota
    /// under the disk's own size. `None`: SQLite's own limit.
    pub sqlite_max_pages: Option<u32>,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_connections: None,
            sqlite_max_pages: None,
        }
    }
}

impl Store {
    /// Connects to `sqlite:…` or `postgres://…` with the default [`DbSettings`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DbSettings::default()).await
    }

    /// Connects to `sqlite:…` or `postgres://…`. SQLite runs in WAL mode with a busy timeout.
    ///
    /// Every connection goes back to the pool only outside any transaction: a connection whose
    /// transaction could not be rolled back (SQLite rolls a transaction back by itself on a full disk
    /// or an I/O error, and then refuses the `ROLLBACK` sqlx sends) is closed instead, so nothing of
    /// one request's transaction can reach the next request on that connection.
    pub async fn connect_with(url: &str, settings: DbSettings) -> Result<Self> {
        let shown = redact(url);
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(settings.timeout)
            .acquire_timeout(settings.timeout);
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            let max_pages = settings.sqlite_max_pages;
            options
                .max_connections(settings.max_connections.unwrap_or(4))
                .map_sqlx_sqlite_opts(move |o| {
                    let o = o
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .busy_timeout(settings.timeout)
                        .foreign_keys(true);
                    match max_pages {
                        Some(pages) => o.pragma("max_page_count", pages.to_string()),
                        None => o,
                    }
                })
                .map_sqlx_sqlite_pool_opts(|o| o.after_release(guard::sqlite_released));
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let lock_timeout = format!("{}ms", settings.timeout.as_millis());
            options
                .max_connections(settings.max_connections.unwrap_or(16))
                .map_sqlx_postgres_opts(move |o| {
                    o.options([("lock_timeout", lock_timeout.as_str())])
                })
                .map_sqlx_postgres_pool_opts(|o| o.after_release(guard::postgres_released));
            probe_postgres(url, &shown).await?;
        } else {
            return Err(StoreError::BadUrl { url: shown });
        }
        let writer = if sqlite {
            let mut one = options.clone();
            one.max_connections(1).min_connections(0);
            Some(open(one, &shown).await?)
        } else {
            None
        };
        let db = open(options, &shown).await?;
        Ok(Self {
            db,
            writer,
            settings,
            readiness: Default::default(),
            org: Default::default(),
            upstream: false,
        })
    }

    /// The same store, pushing (or not) each step of a 差评's handling to the provincial platform
    /// (数据回传, `BIHUAN_UPSTREAM_URL`): with it on, every action the engine's mapping names writes
    /// its push into the outbox in its own transaction.
    pub fn pushing_upstream(mut self, on: bool) -> Self {
        self.upstream = on;
        self
    }

    /// Calls `observe` with every statement this store runs (on its pool and in its transactions),
    /// after it ran: for counting what a path costs in a benchmark or a test. The statement carries
    /// its bound values, which may be personal data: never log them.
    pub fn observe_statements(
        &mut self,
        observe: impl Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
    ) {
        let observe = std::sync::Arc::new(observe);
        if let Some(writer) = &mut self.writer {
            let observe = observe.clone();
            writer.set_metric_callback(move |info| observe(info));
        }
        self.db.set_metric_callback(move |info| observe(info));
    }

    /// The time limit of every wait on the database.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Runs one interactive read within the time limit; past it the read is abandoned and the answer
    /// is an outage.
    pub(crate) async fn bounded<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        within(self.settings.timeout, work).await
    }

    /// The one path of an interactive write: `body` in a write transaction, then the commit. The
    /// `BEGIN` and the body have the time limit; past it, or on any error, the transaction is rolled
    /// back (it is dropped) and nothing was kept. The commit is never cut off by that limit: it gets
    /// one of its own, and a commit the database refused kept nothing, while one that got no answer
    /// (the connection lost, the limit passed) may have been kept: [`StoreError::CommitUnknown`].
    pub(crate) async fn write<T>(
        &self,
        body: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T>,
    ) -> Result<T> {
        let limit = self.settings.timeout;
        let (txn, out) = within(limit, async {
            let txn = self.begin_write().await?;
            let out = body(&txn).await?;
            Ok((txn, out))
        })
        .await?;
        match tokio::time::timeout(limit, txn.commit()).await {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(match StoreError::from(e) {
                StoreError::Unavailable {
                    outage: outage @ (Outage::ConnectionLost | Outage::TimedOut),
                    message,
                } => StoreError::CommitUnknown { outage, message },
                refused => refused,
            }),
            Err(_) => Err(StoreError::CommitUnknown {
                outage: Outage::TimedOut,
                message: format!("提交在 {} 毫秒内没有应答", limit.as_millis()),
            }),
        }
    }

    /// Whether a write would succeed now, for `/readyz`: answers within `within` whatever the
    /// database does. One probe ([`Store::check_writable`]) runs at a time, in a task of its own that
    /// is never cut off (so a probe waiting on a lock holds one connection, not one per request), and
    /// its answer is shared for a second; a request arriving while a probe is out waits for that
    /// probe's answer (within the same `within`) instead of starting another.
    /// A change of answer is logged, once.
    pub async fn ready(&self, within: Duration) -> std::result::Result<(), NotReady> {
        const FRESH: Duration = Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + within;
        let timed_out = || NotReady {
            outage: Some(Outage::TimedOut),
            message: format!("{} 毫秒内未能写入", within.as_millis()),
        };
        loop {
            let last = self
                .readiness
                .last
                .lock()
                .map(|l| l.clone())
                .unwrap_or(None);
            if let Some((at, answer)) = &last
                && at.elapsed() < FRESH
            {
                return answer.clone();
            }
            let probing = match self.readiness.probing.clone().try_lock_owned() {
                Ok(probing) => probing,
                Err(_) => {
                    // Another request's probe is out: share its answer rather than start a second.
                    let probing = self.readiness.probing.clone();
                    match tokio::time::timeout_at(deadline, probing.lock_owned()).await {
                        Ok(done) => {
                            drop(done);
                            continue;
                        }
                        Err(_) => return Err(timed_out()),
                    }
                }
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let store = self.clone();
            tokio::spawn(async move {
                let answer = store
                    .check_writable(store.settings.timeout)
                    .await
                    .map_err(|e| NotReady {
                        outage: match &e {
                            StoreError::Unavailable { outage, .. }
                            | StoreError::CommitUnknown { outage, .. } => Some(*outage),
                            _ => None,
                        },
                        message: e.to_string(),
                    });
                let before = store
                    .readiness
                    .last
                    .lock()
                    .ok()
                    .and_then(|mut l| l.replace((std::time::Instant::now(), answer.clone())))
                    .map(|(_, a)| a.is_ok());
                match (&answer, before) {
                    (Ok(()), Some(false)) => tracing::info!("ready again: a write succeeds"),
                    (Err(e), Some(true) | None) => {
                        tracing::error!(cause = %e.message, "not ready: a write would not succeed")
                    }
                    _ => {}
                }
                drop(probing);
                let _ = tx.send(answer);
            });
            return match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answer,
                _ => Err(timed_out()),
            };
        }
    }

    /// Proves that a write would succeed now (for `/readyz`): inserts a row the size of a database
    /// page and deletes it in one write transaction, and commits — the database must find room for
    /// a fresh page and write its log, as an action would. Gives up after `limit`.
    pub async fn check_writable(&self, limit: Duration) -> Result<()> {
        let probe = async {
            let txn = self.begin_write().await?;
            let id = uuid::Uuid::new_v4();
            entity::readiness_probe::ActiveModel {
                id: sea_orm::Set(id),
                filler: sea_orm::Set(vec![0; PROBE_BYTES]),
            }
            .insert(&txn)
            .await?;
            entity::readiness_probe::Entity::delete_by_id(id)
                .exec(&txn)
                .await?;
            txn.commit().await?;
            Ok(())
        };
        within(limit, probe).await
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let pending = bihuan_migration::Migrator::get_pending_migrations(self.write_connection())
            .await?
            .len();
        bihuan_migration::Migrator::up(self.write_connection(), None).await?;
        Ok(pending)
    }

    /// The underlying connection, for tests and tools (handlers never touch it; queries live in this
    /// crate).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection writes take: on SQLite a pool of one, which writers wait for in the order they
    /// came; on PostgreSQL the one pool. For tools and benchmarks that write as the store does.
    pub fn write_connection(&self) -> &DatabaseConnection {
        self.writer.as_ref().unwrap_or(&self.db)
    }

    /// Which database this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// Closes the pool. A connection dropped by its user goes back to the pool from a task of its
    /// own (sqlx), and `close` can miss one that lands after it emptied the idle queue and then wait
    /// for it forever: so this first waits for the connections still on their way back, then
    /// closes; each step bounded by the store's time limit (at least 5 s), past which the pool is
    /// left to the process's end, with one line in the log.
    pub async fn close(self) -> Result<()> {
        let limit = self.settings.timeout.max(Duration::from_secs(5));
        let settled = tokio::time::Instant::now() + limit;
        while self.checked_out() > 0 && tokio::time::Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let closing = async {
            if let Some(writer) = self.writer {
                writer.close().await?;
            }
            self.db.close().await
        };
        match tokio::time::timeout(limit, closing).await {
            Ok(closed) => Ok(closed?),
            Err(_) => {
                tracing::warn!(
                    "the database pool did not close within {} s",
                    limit.as_secs()
                );
                Ok(())
            }
        }
    }

    /// Connections of the pools in use (or on their way back).
    fn checked_out(&self) -> usize {
        let in_use = |db: &DatabaseConnection| {
            let (size, idle) = match db.get_database_backend() {
                DatabaseBackend::Sqlite => {
                    let pool = db.get_sqlite_connection_pool();
                    (pool.size(), pool.num_idle())
                }
                _ => {
                    let pool = db.get_postgres_connection_pool();
                    (pool.size(), pool.num_idle())
                }
            };
            (size as usize).saturating_sub(idle)
        };
        in_use(&self.db) + self.writer.as_ref().map_or(0, in_use)
    }

    /// Begins a write transaction: on SQLite on the writers' connection, in turn, taking the write
    /// lock at once, so two writers never both read and then fail to write; on PostgreSQL a plain
    /// `BEGIN`.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let txn = match self.backend() {
            DatabaseBackend::Sqlite => {
                self.write_connection()
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

/// `work`, or an outage when it takes longer than `limit`.
async fn within<T>(limit: Duration, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable {
            outage: Outage::TimedOut,
            message: format!("{} 毫秒内未完成", limit.as_millis()),
        })
    })
}

/// The bytes of the readiness probe's row: SQLite's default page, so the row needs a page of its own.
const PROBE_BYTES: usize = 4096;

/// Opens a pool with `options` and proves it answers.
async fn open(options: ConnectOptions, shown: &str) -> Result<DatabaseConnection> {
    let failed = |e: sea_orm::DbErr| StoreError::Connect {
        url: shown.to_owned(),
        message: one_line(&e.to_string()),
    };
    let db = Database::connect(options).await.map_err(failed)?;
    db.ping().await.map_err(failed)?;
    Ok(db)
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
