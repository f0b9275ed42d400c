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
    #[error("版本冲突：您看到的是第 {expected} 版，当前已是第 {actual} 版，请刷新后重试")]
    Conflict { expected: i32, actual: i32 },
    /// The workflow refused the action.
    #[error(transparent)]
    Rejected(#[from] ActionError),
    /// Input that is well-formed but does not fit the data (an unknown unit, say).
    #[error("{field}：{message}")]
    Invalid { field: String, message: String },
    /// A record with this key exists already.
    #[error("{what} {key} 已存在")]
    Duplicate { what: &'static str, key: String },
    /// Stored data that cannot be read back (a hand-edited row, a removed workflow).
    #[error("数据不一致：{0}")]
    Corrupt(String),
    /// Hashing a password failed.
    #[error("密码处理失败：{0}")]
    Password(String),
    /// Any other database error.
    #[error("数据库错误：{0}")]
    Db(#[from] DbErr),
}

impl From<sea_orm::sqlx::Error> for StoreError {
    /// Errors of the few statements that go to sqlx directly (PostgreSQL `COPY`), in sea-orm's shape
    /// so that `DbErr::sql_err` reads them like any other.
    fn from(e: sea_orm::sqlx::Error) -> Self {
        StoreError::Db(DbErr::Exec(sea_orm::RuntimeErr::SqlxError(
            std::sync::Arc::new(e),
        )))
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
