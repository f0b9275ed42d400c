//! The one error type of the store.

use bihuan_core::ActionError;
use sea_orm::DbErr;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the store understands.
    #[error("数据库地址无效（{url}）：应以 sqlite: 或 postgres:// 开头")]
    BadUrl { url: String },
    /// The database could not be reached or opened.
    #[error("无法连接数据库 {url}：{message}")]
    Connect { url: String, message: String },
    /// No such record (or outside the caller's scope).
    #[error("{what} {id} 不存在")]
    NotFound { what: &'static str, id: String },
    /// Someone else acted first: the version the caller saw is stale.
    #[error("内容已被他人更新，请刷新后重试")]
    Conflict { expected: i32, actual: i32 },
    /// The workflow refused the action.
    #[error(transparent)]
    Rejected(#[from] ActionError),
    /// Input that is well-formed but does not fit the data (an unknown unit, say).
    #[error("{field}：{message}")]
    Invalid { field: String, message: String },
    /// The unit named is outside what the caller may reach (a transfer to another town).
    #[error("单位 {unit} 不在您的权限范围内")]
    UnitOutOfScope {
        /// The unit named.
        unit: String,
    },
    /// A record with this key exists already.
    #[error("{what} {key} 已存在")]
    Duplicate { what: &'static str, key: String },
    /// Stored data that cannot be read back (a hand-edited row, a removed workflow).
    #[error("数据不一致：{0}")]
    Corrupt(String),
    /// A new password is too short.
    #[error("密码至少 {min} 个字符")]
    WeakPassword {
        /// The fewest characters allowed.
        min: usize,
    },
    /// The current password given is wrong.
    #[error("当前密码不正确")]
    BadPassword,
    /// Hashing a password failed.
    #[error("密码处理失败：{0}")]
    Password(String),
    /// The database refused the write or could not be reached: a full disk, a read-only file, an I/O
    /// error, a lost connection, a server that is away or did not answer within the time limit.
    /// Nothing of the operation was kept; it may be tried again once the cause is gone.
    #[error("数据库暂时无法写入（{}）：{message}", outage.label())]
    Unavailable {
        /// What kind of outage.
        outage: Outage,
        /// The database's own words (no data values: outages carry none).
        message: String,
    },
    /// The database went away while committing (no answer in time, the connection lost): the write
    /// may or may not have been kept. Read it back before trying again.
    #[error("提交时数据库连接中断（{}），无法确认本次操作是否已保存：{message}", outage.label())]
    CommitUnknown {
        /// What kind of outage.
        outage: Outage,
        /// The database's own words.
        message: String,
    },
    /// Any other database error.
    #[error("数据库错误：{0}")]
    Db(DbErr),
    /// The file store of the evidence (a folder, an S3 bucket) failed or could not be reached:
    /// nothing of the operation was recorded; it may be tried again.
    #[error("佐证材料存储暂时不可用：{0}")]
    FileStore(String),
    /// A file the record cites is not in the file store (removed behind the product's back).
    #[error(
        "佐证材料文件 {sha256} 已不在存储中：请联系管理员（办理记录防篡改校验会指出引用它的记录）"
    )]
    FileMissing {
        /// The file's SHA-256.
        sha256: String,
    },
}

impl From<crate::files::FilesError> for StoreError {
    fn from(e: crate::files::FilesError) -> Self {
        use crate::files::FilesError;
        match e {
            FilesError::Missing { sha256 } => StoreError::FileMissing { sha256 },
            FilesError::Read { .. } | FilesError::Storage { .. } => {
                StoreError::FileStore(e.to_string())
            }
            // A hash, a location or content not as declared: the caller's mistake, not the store's.
            FilesError::BadLocation { .. }
            | FilesError::BadSha256 { .. }
            | FilesError::NotAsDeclared { .. } => StoreError::Corrupt(e.to_string()),
        }
    }
}

/// Why the database could not take an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk (or the database's size limit) is full.
    DiskFull,
    /// The database file or server accepts no writes (read-only file, a standby server).
    ReadOnly,
    /// The disk or file system failed to read or write.
    Io,
    /// The database is locked by another writer for longer than the time limit.
    Busy,
    /// The database ran out of memory or connections.
    Exhausted,
    /// The connection broke, or the server is away or shutting down.
    ConnectionLost,
    /// No answer within the time limit (no free connection, no reply).
    TimedOut,
}

impl Outage {
    /// The outage in words, for messages and logs.
    pub fn label(self) -> &'static str {
        match self {
            Outage::DiskFull => "磁盘空间已满",
            Outage::ReadOnly => "数据库只读",
            Outage::Io => "磁盘读写错误",
            Outage::Busy => "数据库被占用",
            Outage::Exhausted => "数据库资源不足",
            Outage::ConnectionLost => "数据库连接中断",
            Outage::TimedOut => "数据库响应超时",
        }
    }
}

impl From<DbErr> for StoreError {
    /// Every database error passes here: an outage becomes [`StoreError::Unavailable`], whatever
    /// statement met it.
    fn from(e: DbErr) -> Self {
        if refused_text(&e) {
            // The edges refuse a NUL before it gets here; text read from a file may still hold one.
            return StoreError::Invalid {
                field: "text".into(),
                message: "含有数据库不接受的字符（NUL，\\u0000）".into(),
            };
        }
        if let Some(unknown) = crate::code::unknown_code(&e) {
            return StoreError::Corrupt(unknown.to_string());
        }
        match outage_of(&e) {
            Some(outage) => StoreError::Unavailable {
                outage,
                message: e.to_string(),
            },
            None => StoreError::Db(e),
        }
    }
}

impl From<sea_orm::sqlx::Error> for StoreError {
    /// Errors of the few statements that go to sqlx directly (the bulk paths), in sea-orm's shape so
    /// that `DbErr::sql_err` reads them like any other.
    fn from(e: sea_orm::sqlx::Error) -> Self {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(e))).into()
    }
}

impl StoreError {
    /// Whether the database was away or refused the operation (as opposed to the operation being
    /// wrong): trying again later may succeed.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::CommitUnknown { .. }
        )
    }
}

/// Whether PostgreSQL refused a text value for a character it cannot store (a NUL):
/// character_not_in_repertoire, untranslatable_character.
fn refused_text(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                e.as_database_error().and_then(|db| db.code()).as_deref(),
                Some("22021" | "22P05")
            )
        }
        _ => false,
    }
}

/// The outage a database error stands for, if it is one.
fn outage_of(e: &DbErr) -> Option<Outage> {
    use sea_orm::{ConnAcquireErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Some(Outage::TimedOut),
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => Some(Outage::ConnectionLost),
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_outage(e),
        // sea-orm's own wrapping of a lost connection.
        DbErr::Conn(_) => Some(Outage::ConnectionLost),
        _ => None,
    }
}

fn sqlx_outage(e: &sea_orm::sqlx::Error) -> Option<Outage> {
    use sea_orm::sqlx::Error;
    match e {
        Error::Io(_) | Error::Tls(_) | Error::Protocol(_) | Error::WorkerCrashed => {
            Some(Outage::ConnectionLost)
        }
        Error::PoolTimedOut => Some(Outage::TimedOut),
        Error::PoolClosed => Some(Outage::ConnectionLost),
        Error::Database(db) => {
            let code = db.code()?;
            match db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>() {
                Some(_) => postgres_outage(&code),
                None => code.parse::<i32>().ok().and_then(sqlite_outage),
            }
        }
        _ => None,
    }
}

/// SQLite's result codes (the primary code is the low byte of the extended one). A corrupt file
/// (SQLITE_CORRUPT, SQLITE_NOTADB) is no outage: it does not heal by waiting, and answers 500 with
/// its cause in the log.
fn sqlite_outage(extended: i32) -> Option<Outage> {
    match extended & 0xff {
        13 => Some(Outage::DiskFull),     // SQLITE_FULL
        8 => Some(Outage::ReadOnly),      // SQLITE_READONLY
        10 | 14 | 15 => Some(Outage::Io), // SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PROTOCOL
        7 => Some(Outage::Exhausted),     // SQLITE_NOMEM
        4..=6 => Some(Outage::Busy),      // SQLITE_ABORT, SQLITE_BUSY, SQLITE_LOCKED
        _ => None,
    }
}

/// PostgreSQL's SQLSTATE codes of an outage.
fn postgres_outage(sqlstate: &str) -> Option<Outage> {
    match sqlstate {
        "53100" => Some(Outage::DiskFull), // disk_full
        "25006" => Some(Outage::ReadOnly), // read_only_sql_transaction
        "58030" => Some(Outage::Io),       // io_error
        // lock_not_available, query_canceled (a lock or statement time-out), serialization_failure,
        // deadlock_detected: nothing was kept, and trying again may succeed.
        "55P03" | "57014" | "40001" | "40P01" => Some(Outage::Busy),
        // admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout,
        // idle_in_transaction_session_timeout
        "57P01" | "57P02" | "57P03" | "57P05" | "25P03" => Some(Outage::ConnectionLost),
        s if s.starts_with("08") => Some(Outage::ConnectionLost), // connection_exception
        s if s.starts_with("53") => Some(Outage::Exhausted),      // insufficient_resources
        _ => None,
    }
}

pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Shorthand for results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{Outage, postgres_outage, sqlite_outage};

    #[test]
    fn database_error_codes_name_their_outage() {
        let sqlite = [
            (13, Some(Outage::DiskFull)),
            (8, Some(Outage::ReadOnly)),
            (1032, Some(Outage::ReadOnly)), // SQLITE_READONLY_DBMOVED
            (778, Some(Outage::Io)),        // SQLITE_IOERR_WRITE
            (5, Some(Outage::Busy)),
            (517, Some(Outage::Busy)), // SQLITE_BUSY_SNAPSHOT
            (516, Some(Outage::Busy)), // SQLITE_ABORT_ROLLBACK
            (7, Some(Outage::Exhausted)),
            (11, None),   // SQLITE_CORRUPT
            (26, None),   // SQLITE_NOTADB
            (2067, None), // SQLITE_CONSTRAINT_UNIQUE
            (1, None),    // SQLITE_ERROR (a bad statement)
        ];
        for (code, expected) in sqlite {
            assert_eq!(sqlite_outage(code), expected, "SQLite {code}");
        }
        let postgres = [
            ("53100", Some(Outage::DiskFull)),
            ("53300", Some(Outage::Exhausted)),
            ("25006", Some(Outage::ReadOnly)),
            ("57P01", Some(Outage::ConnectionLost)),
            ("08006", Some(Outage::ConnectionLost)),
            ("40001", Some(Outage::Busy)),
            ("55P03", Some(Outage::Busy)),
            ("23505", None), // unique_violation
            ("42P01", None), // undefined_table
            ("22P02", None), // invalid_text_representation
        ];
        for (code, expected) in postgres {
            assert_eq!(postgres_outage(code), expected, "PostgreSQL {code}");
        }
    }
}
