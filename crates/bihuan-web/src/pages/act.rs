//! The one handler of an action form, for every subject a page acts on (差评工单, 工作任务): read the
//! form, check its CSRF token and fields, take the action through the store's one pipeline, and
//! answer with a redirect, the fields' errors beside them, or the fresh subject after a conflict.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use bihuan_core::{ActionError, WorkflowDefinition};
use bihuan_store::{ActionRequest, StoreError, SubjectKind};
use uuid::Uuid;

use super::forms::{FormData, INVALID_FORM, Submitted, form_errors};
use super::views::Flash;
use super::{PageError, PageResult, PageUser};
use crate::AppState;
use crate::error::ApiError;

/// A subject whose page carries action forms.
pub(crate) trait ActionPage {
    /// The subject as its page shows it.
    type Detail: Send + Sync;
    /// What the store answers after the action.
    type Done: Send;
    /// The notice after a conflict (另一人已先处理).
    const CONFLICT: &'static str;
    /// The error of a form without its version.
    const NO_VERSION: &'static str;
    /// What its files are attached to.
    const KIND: SubjectKind;

    /// Its page's address.
    fn path(id: Uuid) -> String;

    /// The subject, if the user may see it.
    fn visible(
        state: &AppState,
        user: &PageUser,
        id: Uuid,
    ) -> impl Future<Output = Result<Self::Detail, PageError>> + Send;

    /// The workflow it runs.
    fn workflow<'s>(state: &'s AppState, detail: &Self::Detail) -> Option<&'s WorkflowDefinition>;

    /// Its page, with a notice and the submitted form.
    fn page(
        state: &AppState,
        user: &PageUser,
        detail: &Self::Detail,
        status: StatusCode,
        flash: Option<Flash>,
        submitted: Option<&Submitted>,
    ) -> impl Future<Output = PageResult> + Send;

    /// Takes the action.
    fn apply(
        state: &AppState,
        req: &ActionRequest<'_>,
    ) -> impl Future<Output = Result<Self::Done, StoreError>> + Send;

    /// Where to go once the action committed.
    fn done_at(user: &PageUser, id: Uuid, action: &str, done: &Self::Done) -> String;
}

/// `POST` of a subject's page: takes the action of one of its forms. Field errors come back beside
/// their fields with the values kept; a stale version shows the fresh subject.
pub(crate) async fn act<P: ActionPage>(
    state: &AppState,
    user: &PageUser,
    id: Uuid,
    form: &[(String, String)],
) -> PageResult {
    let form = FormData(form);
    let get = |name: &str| form.get(name);
    user.check_csrf(get("csrf"))?;
    let detail = P::visible(state, user, id).await?;
    let action_id = get("action").unwrap_or_default().to_owned();
    let def = P::workflow(state, &detail).ok_or_else(|| {
        PageError::new(
            ApiError::internal(&"the subject's workflow is not loaded"),
            Some(user),
        )
    })?;
    let Some(action) = def.action(&action_id) else {
        return Err(PageError::new(
            ActionError::UnknownAction { action: action_id },
            Some(user),
        ));
    };
    let now = state.clock.now();
    let submitted = Submitted::read(action, form, state.engine.calendar().tz(), now);
    let invalid = || Some(Flash::bad(INVALID_FORM));
    if !submitted.is_valid() {
        return P::page(
            state,
            user,
            &detail,
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid(),
            Some(&submitted),
        )
        .await;
    }
    let Some(version) = get("version").and_then(|v| v.trim().parse().ok()) else {
        return Err(PageError::new(
            ApiError::bad_request("invalid_form", P::NO_VERSION),
            Some(user),
        ));
    };
    let result = P::apply(
        state,
        &ActionRequest {
            id,
            scope: &user.caller.scope,
            version,
            action: &action_id,
            fields: &submitted.values,
            actor: &user.caller.actor,
            now,
        },
    )
    .await;
    match result {
        Ok(done) => Ok(Redirect::to(&P::done_at(user, id, &action_id, &done)).into_response()),
        Err(StoreError::Conflict { .. }) => {
            let fresh = P::visible(state, user, id).await?;
            let flash = Some(Flash::warn(P::CONFLICT));
            P::page(state, user, &fresh, StatusCode::CONFLICT, flash, None).await
        }
        Err(e) => match form_errors(&e) {
            Some(errors) => {
                let submitted = submitted.refused(errors, action, form);
                P::page(
                    state,
                    user,
                    &detail,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    invalid(),
                    Some(&submitted),
                )
                .await
            }
            None => Err(PageError::new(e, Some(user))),
        },
    }
}
