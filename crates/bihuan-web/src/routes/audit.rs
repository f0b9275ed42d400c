//! The tamper-evident record and supervisors' audits of closed loops.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bihuan_core::Role;
use bihuan_store::{AUDIT_FAIL_ACTION, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, SignedIn};
use crate::views::case_summary;

/// `/api/v1/audit/verify`, `/api/v1/audit/sample`, `/api/v1/audits`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(sample))
        .routes(routes!(record))
}

/// Auditors are whoever the workflow lets take `audit_fail`, and admins.
pub(crate) fn require_auditor(state: &AppState, caller: &SignedIn) -> ApiResult<()> {
    let allowed = caller.role == Role::Admin
        || state
            .engine
            .workflow(bihuan_core::NEGATIVE_RATING)
            .and_then(|d| d.action(AUDIT_FAIL_ACTION))
            .is_some_and(|a| a.roles.contains(&caller.role));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "role_not_allowed",
            "只有督查人员可以审核闭环",
        ))
    }
}

/// The state closed loops are audited in: the one the audit's fail action starts from.
pub(crate) fn closed_state(engine: &bihuan_core::Engine) -> String {
    engine
        .workflow(bihuan_core::NEGATIVE_RATING)
        .and_then(|d| d.action(AUDIT_FAIL_ACTION))
        .and_then(|a| a.from.first().cloned())
        .unwrap_or_else(|| "closed".to_owned())
}

/// Recomputes the event hash chain of the cases and work items in the caller's scope, and reads back
/// and hashes again every file their events cite.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "{ok, events_checked, files_checked, first_broken}", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn verify(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    require_auditor(&state, &caller)?;
    let report = state
        .store
        .verify_chain_and_files(
            &caller.scope,
            bihuan_store::EvidenceCheck {
                engine: &state.engine,
                files: &state.files,
            },
        )
        .await?;
    Ok(Json(json!({
        "ok": report.ok,
        "events_checked": report.events_checked,
        "files_checked": report.files_checked,
        "first_broken": report.first_broken.map(|b| match b.of {
            bihuan_store::SubjectKind::Case => json!({"case_id": b.case_id, "seq": b.seq, "reason": b.reason}),
            bihuan_store::SubjectKind::Task => json!({"task_id": b.case_id, "seq": b.seq, "reason": b.reason}),
        }),
    })))
}

/// How many cases to sample.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SampleQuery {
    n: Option<u64>,
}

/// Random closed cases in scope that no one has audited yet.
#[utoipa::path(get, path = "/api/v1/audit/sample", tag = "audit", security(("bearer" = [])), params(SampleQuery),
    responses((status = 200, description = "{items}", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn sample(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<SampleQuery>,
) -> ApiResult<Json<Value>> {
    require_auditor(&state, &caller)?;
    let n = q.n.unwrap_or(10);
    if !(1..=100).contains(&n) {
        return Err(ApiError::invalid_field("n", "抽查数量应在 1 到 100 之间"));
    }
    let closed = closed_state(&state.engine);
    let now = state.clock.now();
    let items: Vec<_> = state
        .store
        .audit_sample(&caller.scope, &closed, n)
        .await?
        .iter()
        .map(|(case, rating)| case_summary(&state.engine, case, rating, &caller, now))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// An audit verdict.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AuditBody {
    case_id: Uuid,
    verdict: String,
    reason: Option<String>,
}

/// Records an audit; a fail (with its reason) reopens the case.
#[utoipa::path(post, path = "/api/v1/audits", tag = "audit", security(("bearer" = [])), request_body = AuditBody,
    responses((status = 201, description = "the audit", body = Object), (status = 401, description = "未登录或令牌无效", body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn record(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiJson(body): ApiJson<AuditBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_auditor(&state, &caller)?;
    let verdict = match body.verdict.as_str() {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        _ => {
            return Err(ApiError::invalid_field(
                "verdict",
                "审核结论应为 pass 或 fail",
            ));
        }
    };
    let case = state.store.case(body.case_id).await?;
    if !caller.scope.contains(&case.case) {
        return Err(ApiError::not_found(format!(
            "差评工单 {} 不存在",
            body.case_id
        )));
    }
    let audit = state
        .store
        .record_audit(
            &state.engine,
            body.case_id,
            verdict,
            body.reason.as_deref(),
            &caller.actor,
            state.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": audit.id, "case_id": audit.case_id, "verdict": audit.verdict, "reason": audit.reason, "auditor": audit.auditor, "at": audit.at}),
        ),
    ))
}
