//! 督查: appeals to decide, escalated and overdue cases, the audit of closed loops by random sample
//! (pass, or fail with a reason, which reopens the case), and the hash chain's state on request.

use std::collections::BTreeSet;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bihuan_core::workflow::Mark;
use bihuan_store::{CaseFilter, StoreError, Verdict};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::views::{CaseRow, Flash, Me, UnitNames, nav, when};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::error::ApiError;
use crate::routes::audit::{closed_state, require_auditor};

/// Cases each list shows at most.
const LIST_LIMIT: u64 = 100;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SuperviseQuery {
    n: Option<u64>,
    verify: Option<String>,
    done: Option<String>,
}

/// A closed case offered for audit, with what was entered when the form comes back.
#[derive(Debug, Serialize)]
struct SampleForm {
    id: Uuid,
    project_no: String,
    service_name: String,
    unit_name: Option<String>,
    closed: String,
    /// Its 佐证材料, to look at before the verdict.
    files: Vec<super::files::FileLine>,
    verdict: String,
    reason: String,
    error: Option<String>,
}

/// A form that came back with an error.
struct Returned {
    case_id: Uuid,
    verdict: String,
    reason: String,
    error: String,
}

/// `GET /supervise`.
pub(crate) async fn page(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<SuperviseQuery>,
) -> PageResult {
    let flash = match q.done.as_deref() {
        Some("pass") => Some(Flash::ok("已记录审核结论：通过。")),
        Some("fail") => Some(Flash::ok(
            "已记录审核结论：不通过，差评工单已退回重新办理。",
        )),
        _ => None,
    };
    let n = q.n.unwrap_or(5).clamp(1, 50);
    supervise(&state, &user, n, q.verify.is_some(), flash, None).await
}

async fn supervise(
    state: &AppState,
    user: &PageUser,
    n: u64,
    verify: bool,
    flash: Option<Flash>,
    returned: Option<Returned>,
) -> PageResult {
    require_auditor(state, &user.caller).map_err(|e| PageError::new(e, Some(user)))?;
    let fail = |e: StoreError| PageError::new(e, Some(user));
    let scope = &user.caller.scope;
    let now = state.clock.now();
    let units = UnitNames::in_scope(state.store.units().await.map_err(fail)?, &user.caller.scope);
    let rows = |cases: Vec<(
        bihuan_store::entity::case::Model,
        bihuan_store::entity::rating::Model,
    )>| {
        cases
            .iter()
            .map(|(c, r)| CaseRow::new(&state.engine, &units, c, r, now))
            .collect::<Vec<_>>()
    };
    // Appeals: the states an action marking the appeal upheld starts from.
    let appeal_states: BTreeSet<(String, String)> = state
        .engine
        .workflows()
        .flat_map(|d| {
            d.actions
                .iter()
                .filter(|a| a.marks.contains(&Mark::AppealUpheld))
                .flat_map(move |a| a.from.iter().map(move |s| (d.id.clone(), s.clone())))
        })
        .collect();
    let (appeals, _) = state
        .store
        .todo_cases(scope, &appeal_states, LIST_LIMIT)
        .await
        .map_err(fail)?;
    let listed =
        |filter: CaseFilter| async move { state.store.list_cases(scope, &filter, now).await };
    let (escalated, _) = listed(CaseFilter {
        escalated: Some(true),
        open: true,
        page: 1,
        per_page: LIST_LIMIT,
        ..CaseFilter::default()
    })
    .await
    .map_err(fail)?;
    let (extension_requests, _) = listed(CaseFilter {
        extension_requested: Some(true),
        open: true,
        page: 1,
        per_page: LIST_LIMIT,
        ..CaseFilter::default()
    })
    .await
    .map_err(fail)?;
    let (overdue, overdue_total) = listed(CaseFilter {
        overdue: Some(true),
        open: true,
        page: 1,
        per_page: LIST_LIMIT,
        ..CaseFilter::default()
    })
    .await
    .map_err(fail)?;
    let closed = closed_state(&state.engine);
    let mut sample_cases = state
        .store
        .audit_sample(scope, &closed, n)
        .await
        .map_err(fail)?;
    // A form that came back keeps its case at the top, whatever the new draw.
    if let Some(r) = &returned {
        sample_cases.retain(|(c, _)| c.id != r.case_id);
        let detail = state.store.case(r.case_id).await.map_err(fail)?;
        sample_cases.insert(0, (detail.case, detail.rating));
    }
    let cal = state.engine.calendar();
    let ids: Vec<Uuid> = sample_cases.iter().map(|(c, _)| c.id).collect();
    let mut files = state
        .store
        .attachments_of_each(bihuan_store::SubjectKind::Case, &ids)
        .await
        .map_err(fail)?;
    let sample: Vec<SampleForm> = sample_cases
        .iter()
        .map(|(c, r)| {
            let back = returned.as_ref().filter(|x| x.case_id == c.id);
            SampleForm {
                files: super::files::file_lines(state, &files.remove(&c.id).unwrap_or_default()),
                id: c.id,
                project_no: r.project_no.clone(),
                service_name: r.service_name.clone(),
                unit_name: c.unit_code.as_deref().map(|u| units.name(u)),
                closed: c.closed_at.map(|t| when(cal, t)).unwrap_or_default(),
                verdict: back.map(|b| b.verdict.clone()).unwrap_or_default(),
                reason: back.map(|b| b.reason.clone()).unwrap_or_default(),
                error: back.map(|b| b.error.clone()),
            }
        })
        .collect();
    let chain = if verify {
        let report = state
            .store
            .verify_chain_and_files(
                &user.caller.scope,
                bihuan_store::EvidenceCheck {
                    engine: &state.engine,
                    files: &state.files,
                },
            )
            .await
            .map_err(fail)?;
        Some(serde_json::json!({
            "ok": report.ok,
            "events_checked": report.events_checked,
            "files_checked": report.files_checked,
            "first_broken": report.first_broken.map(|b| format!("{} {} 第 {} 条：{}", b.of.what(), b.case_id, b.seq, b.reason)),
        }))
    } else {
        None
    };
    let status = if returned.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let me = Me::of(user).named(&units);
    Ok(render(
        status,
        "supervise.html",
        page_context! {
            title => "督查", nav => nav(&me, "/supervise"), me, flash, chain, n,
            appeals => rows(appeals), escalated => rows(escalated),
            extension_requests => rows(extension_requests),
            overdue_more => overdue_total > LIST_LIMIT, overdue => rows(overdue), sample,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditForm {
    csrf: Option<String>,
    case_id: Option<String>,
    verdict: Option<String>,
    reason: Option<String>,
}

/// `POST /supervise/audits`: records a verdict on a sampled case.
pub(crate) async fn audit(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<AuditForm>,
) -> Result<Response, PageError> {
    user.check_csrf(form.csrf.as_deref())?;
    require_auditor(&state, &user.caller).map_err(|e| PageError::new(e, Some(&user)))?;
    let not_found = || PageError::new(ApiError::not_found("没有这个差评工单"), Some(&user));
    let case_id: Uuid = form
        .case_id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .ok_or_else(not_found)?;
    let case = match state.store.case(case_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(PageError::new(e, Some(&user))),
    };
    if !user.caller.scope.contains(&case.case) {
        return Err(not_found());
    }
    let verdict_text = form.verdict.unwrap_or_default();
    let reason = form.reason.unwrap_or_default();
    let back = |error: String| Returned {
        case_id,
        verdict: verdict_text.clone(),
        reason: reason.clone(),
        error,
    };
    let verdict = match verdict_text.as_str() {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        _ => {
            let flash = Flash::bad("请选择审核结论。");
            return supervise(
                &state,
                &user,
                5,
                false,
                Some(flash),
                Some(back("请选择“通过”或“不通过”。".into())),
            )
            .await;
        }
    };
    let result = state
        .store
        .record_audit(
            &state.engine,
            case_id,
            verdict,
            Some(&reason),
            &user.caller.actor,
            state.clock.now(),
        )
        .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/supervise?done={verdict_text}")).into_response()),
        Err(StoreError::Rejected(e)) if e.field().is_some() => {
            let flash = Flash::bad("审核未记录，请按提示修改。");
            supervise(
                &state,
                &user,
                5,
                false,
                Some(flash),
                Some(back("审核不通过时须写明理由。".into())),
            )
            .await
        }
        Err(e) => Err(PageError::new(e, Some(&user))),
    }
}
