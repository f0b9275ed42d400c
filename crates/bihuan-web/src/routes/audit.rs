//! The tamper-evident record and supervisors' audits of closed loops.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bihuan_core::Role;
use bihuan_store::{AUDIT_FAIL_ACTION, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, SignedIn};
use crate::views::case_summary;

/// `/api/v1/audit/verify`, `/api/v1/audit/sample`, `/api/v1/audits`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/audit/sample", get(sample))
        .route("/api/v1/audits", post(record))
}

/// Auditors are whoever the workflow lets take `audit_fail`, and admins.
fn require_auditor(state: &AppState, caller: &SignedIn) -> ApiResult<()> {
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

async fn verify(State(state): State<AppState>, caller: SignedIn) -> ApiResult<Json<Value>> {
    require_auditor(&state, &caller)?;
    let report = state.store.verify_chain().await?;
    Ok(Json(json!({
        "ok": report.ok,
        "events_checked": report.events_checked,
        "first_broken": report.first_broken.map(|b| json!({"case_id": b.case_id, "seq": b.seq, "reason": b.reason})),
    })))
}

#[derive(Debug, Deserialize)]
struct SampleQuery {
    n: Option<u64>,
}

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
    let closed = state
        .engine
        .workflow(bihuan_core::NEGATIVE_RATING)
        .and_then(|d| d.action(AUDIT_FAIL_ACTION))
        .and_then(|a| a.from.first().cloned())
        .unwrap_or_else(|| "closed".to_owned());
    let cases = state.store.audit_sample(&caller.scope, &closed, n).await?;
    let now = state.clock.now();
    let mut items = Vec::new();
    for case in cases {
        let detail = state.store.case(case.id).await?;
        items.push(case_summary(
            &state.engine,
            &detail.case,
            &detail.rating,
            &caller,
            now,
        ));
    }
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
struct AuditBody {
    case_id: Uuid,
    verdict: String,
    reason: Option<String>,
}

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
        return Err(ApiError::not_found(format!("案件 {} 不存在", body.case_id)));
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
