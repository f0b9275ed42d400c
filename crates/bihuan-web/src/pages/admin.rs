//! 管理, for admins: the organization as a tree (and adding units), users, channel tokens, the unit
//! codes ingestion could not place (and mapping them), and mail that could not be delivered (with a
//! button to send it again).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bihuan_core::Role;
use bihuan_store::TokenScope;
use bihuan_store::{NewUnit, NewUser, StoreError};
use serde::{Deserialize, Serialize};

use super::views::{Flash, Me, UnitNames, nav, role_options, when};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::error::ApiError;

/// Dead mails the page lists at most.
const DEAD_LIMIT: u64 = 100;

/// What a form that came back shows again: its values and error.
#[derive(Debug, Default, Serialize)]
struct Returned {
    unit_form: Option<UnitForm>,
    unit_error: Option<String>,
    user_form: Option<UserForm>,
    user_error: Option<String>,
    token_error: Option<String>,
    new_token: Option<String>,
}

fn only_admin(user: &PageUser) -> Result<(), PageError> {
    user.caller
        .require_admin()
        .map_err(|e| PageError::new(e, Some(user)))
}

/// `GET /admin`.
pub(crate) async fn page(State(state): State<AppState>, user: PageUser) -> PageResult {
    admin(&state, &user, StatusCode::OK, None, Returned::default()).await
}

async fn admin(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    flash: Option<Flash>,
    returned: Returned,
) -> PageResult {
    only_admin(user)?;
    let fail = |e: StoreError| PageError::new(e, Some(user));
    let cal = state.engine.calendar();
    let units = UnitNames::new(state.store.units().await.map_err(fail)?);
    let users: Vec<serde_json::Value> = state
        .store
        .users()
        .await
        .map_err(fail)?
        .iter()
        .map(|u| {
            serde_json::json!({
                "username": u.username,
                "role": u.role.label(),
                "unit": u.unit_code.as_deref().map(|c| units.name(c)),
                "email": u.email, "disabled": u.disabled,
            })
        })
        .collect();
    let tokens: Vec<serde_json::Value> = state
        .store
        .api_tokens()
        .await
        .map_err(fail)?
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name, "scope": t.scope, "source": t.source, "created": when(cal, t.created_at),
                "revoked": t.revoked_at.is_some(),
            })
        })
        .collect();
    let unmapped: Vec<serde_json::Value> = state
        .store
        .unmapped_units()
        .await
        .map_err(fail)?
        .iter()
        .map(|u| serde_json::json!({ "code": u.unit_code, "ratings": u.ratings, "negative": u.negative }))
        .collect();
    let (dead_mails, dead_total) = state
        .store
        .list_outbox(None, Some(bihuan_store::OutboxStatus::Dead), 1, DEAD_LIMIT)
        .await
        .map_err(fail)?;
    let dead: Vec<serde_json::Value> = dead_mails
        .iter()
        .map(|m| {
            let recipients = m
                .recipients
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join("、")
                })
                .unwrap_or_default();
            let channel = match *m.channel {
                bihuan_store::OutboxChannel::Mail => "邮件",
                bihuan_store::OutboxChannel::Sms => "短信",
                bihuan_store::OutboxChannel::Upstream => "数据回传",
            };
            serde_json::json!({
                "id": m.id, "channel": channel, "subject": m.subject, "recipients": recipients,
                "attempts": m.attempts, "last_error": m.last_error, "created": when(cal, m.created_at),
            })
        })
        .collect();
    let me = Me::of(user).named(&units);
    Ok(render(
        status,
        "admin.html",
        page_context! {
            title => "管理", nav => nav(&me, "/admin"), me, flash,
            units => units.tree(), unit_options => units.options(), users, tokens, unmapped,
            dead, dead_total, roles => role_options(),
            unit_form => returned.unit_form, unit_error => returned.unit_error,
            user_form => returned.user_form, user_error => returned.user_error,
            token_error => returned.token_error, new_token => returned.new_token,
        },
    ))
}

/// The message of a store error a form caused, or the error page for anything else.
fn form_error(e: StoreError, user: &PageUser) -> Result<String, PageError> {
    let api = ApiError::from(e);
    if api.status().is_client_error() {
        Ok(api.message().to_owned())
    } else {
        Err(PageError::new(api, Some(user)))
    }
}

/// The page after a form: with a message when it was done (200), with the form, its values and its
/// error when it was refused (422).
async fn after_form(
    state: &AppState,
    user: &PageUser,
    outcome: Result<Flash, Returned>,
) -> PageResult {
    match outcome {
        Ok(flash) => {
            admin(
                state,
                user,
                StatusCode::OK,
                Some(flash),
                Returned::default(),
            )
            .await
        }
        Err(returned) => {
            admin(
                state,
                user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                returned,
            )
            .await
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct UnitForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    parent: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    region_code: String,
}

fn optional(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `POST /admin/units`.
pub(crate) async fn add_unit(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<UnitForm>,
) -> Result<Response, PageError> {
    user.check_csrf(Some(&form.csrf))?;
    only_admin(&user)?;
    let new = NewUnit {
        code: form.code.trim().to_owned(),
        name: form.name.trim().to_owned(),
        parent: optional(&form.parent),
        email: optional(&form.email),
        region: optional(&form.region_code),
    };
    let outcome = match state.store.add_unit(&new, state.clock.now()).await {
        Ok(u) => Ok(Flash::ok(format!("已新增单位“{}”。", u.name))),
        Err(e) => Err(Returned {
            unit_error: Some(form_error(e, &user)?),
            unit_form: Some(form),
            ..Returned::default()
        }),
    };
    after_form(&state, &user, outcome).await
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct UserForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    sms_phone: String,
    #[serde(default, skip_serializing)]
    password: String,
}

/// `POST /admin/users`.
pub(crate) async fn add_user(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<UserForm>,
) -> Result<Response, PageError> {
    user.check_csrf(Some(&form.csrf))?;
    only_admin(&user)?;
    let added = match form.role.parse::<Role>() {
        Ok(role) => {
            let new = NewUser {
                username: form.username.trim().to_owned(),
                role,
                unit: optional(&form.unit),
                email: optional(&form.email),
                sms_phone: optional(&form.sms_phone),
            };
            match state
                .store
                .add_user(&new, &form.password, state.clock.now())
                .await
            {
                Ok(u) => Ok(u),
                Err(e) => Err(form_error(e, &user)?),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let outcome = match added {
        Ok(u) => Ok(Flash::ok(format!("已新增用户“{}”。", u.username))),
        Err(message) => Err(Returned {
            user_form: Some(form),
            user_error: Some(message),
            ..Returned::default()
        }),
    };
    after_form(&state, &user, outcome).await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    source: String,
}

/// `POST /admin/tokens`: the new token is shown once, on the page that answers.
pub(crate) async fn add_token(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    user.check_csrf(Some(&form.csrf))?;
    only_admin(&user)?;
    let scope = if form.scope.is_empty() {
        Ok(TokenScope::RatingsWrite)
    } else {
        form.scope.parse::<TokenScope>()
    };
    let source = Some(form.source.trim()).filter(|s| !s.is_empty());
    let created = match scope {
        Ok(scope) => {
            state
                .store
                .add_api_token(&form.name, scope, source, state.clock.now())
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(token) => {
            let returned = Returned {
                new_token: Some(token),
                ..Returned::default()
            };
            let mut page = admin(&state, &user, StatusCode::OK, None, returned).await?;
            // A page holding a secret is not kept by the browser or any cache.
            page.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(page)
        }
        Err(e) => {
            let returned = Returned {
                token_error: Some(form_error(e, &user)?),
                ..Returned::default()
            };
            after_form(&state, &user, Err(returned)).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AliasForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    unit: String,
}

/// `POST /admin/aliases`: places an outside unit code under a unit.
pub(crate) async fn map_code(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<AliasForm>,
) -> Result<Response, PageError> {
    user.check_csrf(Some(&form.csrf))?;
    only_admin(&user)?;
    let result = state
        .store
        .map_unit_code(
            &form.code,
            &form.unit,
            &user.caller.user.username,
            state.clock.now(),
        )
        .await;
    let flash = match result {
        Ok(a) => Flash::ok(format!("已将编码 {} 对应到单位 {}。", a.code, a.unit_code)),
        Err(e) => Flash::bad(form_error(e, &user)?),
    };
    admin(
        &state,
        &user,
        StatusCode::OK,
        Some(flash),
        Returned::default(),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RetryForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/outbox/{id}/retry`: sends a dead mail again with a fresh round of attempts.
pub(crate) async fn retry_mail(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<i64>,
    Form(form): Form<RetryForm>,
) -> Result<Response, PageError> {
    user.check_csrf(Some(&form.csrf))?;
    only_admin(&user)?;
    let retried = state
        .store
        .retry_mail(id, state.clock.now())
        .await
        .map_err(|e| PageError::new(e, Some(&user)))?;
    if !retried {
        return Err(PageError::new(
            ApiError::not_found(format!("没有投递失败的通知 {id}（可能已在重新发送）")),
            Some(&user),
        ));
    }
    Ok(Redirect::to("/admin").into_response())
}
