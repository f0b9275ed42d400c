//! The one error type of the HTTP front: every failure becomes `{"error","message","details"}` with a
//! fitting status. A 500 says nothing internal; its cause goes to the log with the request id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bihuan_core::{ActionError, LimitError};
use bihuan_store::{Outage, StoreError};
use serde_json::{Value, json};

/// When to try again after the database was away.
const STORAGE_RETRY_SECONDS: u64 = 5;

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An answer with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    /// Adds details (e.g. the field a validation error is about).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or bad ones.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: signed in, but not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: not found, or outside the caller's scope.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: well-formed but invalid, naming the field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
            .with_details(json!({ "field": field }))
    }

    /// 413 `payload_too_large`: a request body over `limit` bytes, the limit named.
    pub fn payload_too_large(limit: usize) -> Self {
        let limit_mb = limit.div_ceil(1024 * 1024).max(1);
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("请求内容过大：不能超过 {limit_mb} MB"),
        )
        .with_details(json!({ "limit_mb": limit_mb }))
    }

    /// A file beyond a limit: 413 `too_large` for its size, 422 with the limit's code
    /// (`workbook_too_large`, `too_many_rows`, `too_many_columns`) for what it holds; the message and
    /// the details name the limit.
    pub fn limit(e: LimitError) -> Self {
        let status = match e {
            LimitError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let (name, value) = e.limit();
        Self::new(status, e.code(), e.to_string()).with_details(json!({ name: value }))
    }

    /// 429 with `code`: too many requests or attempts; try again after `seconds`.
    pub fn too_many(code: &'static str, message: impl Into<String>, seconds: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
            .with_details(json!({ "retry_after_seconds": seconds }));
        e.retry_after = Some(seconds);
        e
    }

    /// 500: logs the cause and answers without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "服务器内部错误，请稍后重试",
        )
    }

    /// 503 `storage_unavailable`, or 507 `insufficient_storage` for a full disk: the database refused
    /// the request or could not be reached, and nothing of it was kept. Logged here, once, with its
    /// cause; the answer says to try again and, for 503, when.
    pub fn storage(outage: Outage, cause: &str) -> Self {
        tracing::error!(
            outage = outage.label(),
            cause,
            "the database refused the request"
        );
        if outage == Outage::DiskFull {
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "服务器存储空间已满，本次操作未保存。请联系管理员释放空间后重试。",
            );
        }
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!(
                "数据库暂时不可用（{}），本次操作未保存，请稍后重试。",
                outage.label()
            ),
        )
        .with_details(json!({ "retry_after_seconds": STORAGE_RETRY_SECONDS }));
        e.retry_after = Some(STORAGE_RETRY_SECONDS);
        e
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people, in Chinese.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "message": self.message, "details": self.details });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let status = match e {
            ActionError::RoleNotAllowed { .. }
            | ActionError::NotResponsibleUnit { .. }
            | ActionError::NotCoUnit { .. }
            | ActionError::LeadUnitOutOfScope { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let details = match &e {
            ActionError::GuardFailed { guard, .. } => json!({ "guard": guard }),
            ActionError::NotAllowedFromState { state, action, .. } => {
                json!({ "state": state, "action": action })
            }
            ActionError::UnknownAction { action } => json!({ "action": action }),
            ActionError::ExtensionLimit {
                limit,
                cap,
                used,
                asked,
            } => json!({ "time_limit_days": limit, "cap": cap, "used": used, "asked": asked }),
            ActionError::AppealLimit { limit, used } => json!({ "limit": limit, "used": used }),
            ActionError::AppealWindowClosed { days, .. } => json!({ "working_days": days }),
            ActionError::PersonalDataInReply { field, found, .. } => json!({
                "field": field,
                "found": found
                    .iter()
                    .map(|f| json!({ "kind": f.kind.as_str(), "masked": f.masked }))
                    .collect::<Vec<_>>(),
            }),
            other => other
                .field()
                .map_or_else(|| json!({}), |f| json!({ "field": f })),
        };
        Self::new(status, e.code(), e.to_string()).with_details(details)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict { expected, actual } => {
                Self::new(StatusCode::CONFLICT, "version_conflict", e.to_string())
                    .with_details(json!({ "expected": expected, "actual": actual }))
            }
            StoreError::Rejected(action) => action.into(),
            StoreError::Invalid {
                ref field,
                ref message,
            } => Self::invalid_field(field, message.clone()),
            StoreError::UnitOutOfScope { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unit_out_of_scope",
                e.to_string(),
            )
            .with_details(json!({ "field": "unit" })),
            StoreError::WeakPassword { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                e.to_string(),
            )
            .with_details(json!({ "field": "new" })),
            StoreError::BadPassword => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_password",
                e.to_string(),
            )
            .with_details(json!({ "field": "current" })),
            StoreError::Duplicate { .. } => {
                Self::new(StatusCode::CONFLICT, "duplicate", e.to_string())
            }
            StoreError::Unavailable { outage, message } => Self::storage(outage, &message),
            StoreError::CommitUnknown { outage, message } => {
                tracing::error!(
                    outage = outage.label(),
                    cause = message,
                    "the database went away while committing: the outcome is unknown"
                );
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    format!(
                        "提交时数据库连接中断（{}），无法确认本次操作是否已保存。请刷新查看后再决定是否重试。",
                        outage.label()
                    ),
                )
                .with_details(json!({ "outcome": "unknown", "retry_after_seconds": STORAGE_RETRY_SECONDS }));
                e.retry_after = Some(STORAGE_RETRY_SECONDS);
                e
            }
            StoreError::FileStore(ref cause) => {
                tracing::error!(cause, "the file store refused the request");
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "佐证材料存储暂时不可用，本次操作未保存，请稍后重试。",
                )
                .with_details(json!({ "retry_after_seconds": STORAGE_RETRY_SECONDS }));
                e.retry_after = Some(STORAGE_RETRY_SECONDS);
                e
            }
            StoreError::FileMissing { .. } => {
                tracing::error!(error = %e, "a cited file is missing from the file store");
                Self::new(StatusCode::GONE, "file_missing", e.to_string())
            }
            StoreError::BadUrl { .. }
            | StoreError::Connect { .. }
            | StoreError::Corrupt(_)
            | StoreError::Password(_)
            | StoreError::Db(_) => Self::internal(&e),
        }
    }
}

/// The JSON of every error answer (for the OpenAPI document).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code, e.g. `version_conflict`.
    pub error: String,
    /// What went wrong, in Chinese.
    pub message: String,
    /// More about it, e.g. `{"field": "unit"}`.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
