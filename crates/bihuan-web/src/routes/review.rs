//! The rater's one-time review page (`/r/{token}`): no login, Chinese, fit for a phone. The answer
//! takes `review_satisfied` or `review_unsatisfied` as the rater; a used, expired or settled link says so.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bihuan_store::{ReviewAnswer, ReviewLink, ReviewLinkState, StoreError};
use minijinja::context;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// `/r/{token}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, answer))
}

/// The form the page posts.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewForm {
    /// `satisfied`, `basically_satisfied` or `unsatisfied`.
    choice: Option<String>,
    /// The rater's words; required for `unsatisfied`.
    comment: Option<String>,
}

/// The rater's review page.
#[utoipa::path(get, path = "/r/{token}", tag = "review",
    params(("token" = String, Path, description = "邮件中的一次性评议链接")),
    responses(
        (status = 200, description = "评议页面（HTML）", content_type = "text/html"),
        (status = 404, description = "链接无效（HTML）", content_type = "text/html"),
        (status = 410, description = "链接已使用、已过期或评议已结束（HTML）", content_type = "text/html")))]
async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = state.clock.now();
    match state.store.review_link(&state.engine, &token, now).await {
        Ok(Some(link)) if link.state == ReviewLinkState::Open => {
            form_page(&state, &link, StatusCode::OK, None, "", "")
        }
        Ok(Some(link)) => closed_page(&link),
        Ok(None) => unknown_page(),
        Err(e) => failure_page(e),
    }
}

/// Answers the review.
#[utoipa::path(post, path = "/r/{token}", tag = "review",
    params(("token" = String, Path, description = "邮件中的一次性评议链接")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "choice=satisfied|basically_satisfied|unsatisfied&comment=…"),
    responses(
        (status = 200, description = "已记录评价（HTML）", content_type = "text/html"),
        (status = 404, description = "链接无效（HTML）", content_type = "text/html"),
        (status = 410, description = "链接已使用、已过期或评议已结束（HTML）", content_type = "text/html"),
        (status = 422, description = "未选择评价结果，或选择不满意却未写原因（HTML）", content_type = "text/html")))]
async fn answer(
    State(state): State<AppState>,
    Path(token): Path<String>,
    form: Result<Form<ReviewForm>, FormRejection>,
) -> Response {
    let now = state.clock.now();
    let link = match state.store.review_link(&state.engine, &token, now).await {
        Ok(Some(link)) => link,
        Ok(None) => return unknown_page(),
        Err(e) => return failure_page(e),
    };
    if link.state != ReviewLinkState::Open {
        return closed_page(&link);
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let choice = form.choice.as_deref().unwrap_or("").trim().to_owned();
    let comment = form.comment.unwrap_or_default().trim().to_owned();
    let answer = match choice.as_str() {
        "satisfied" => ReviewAnswer::Satisfied {
            comment: comment.clone(),
        },
        "basically_satisfied" => ReviewAnswer::BasicallySatisfied {
            comment: comment.clone(),
        },
        "unsatisfied" if comment.is_empty() => {
            return form_page(
                &state,
                &link,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("选择“不满意”时，请写明不满意的原因。"),
                &choice,
                &comment,
            );
        }
        "unsatisfied" => ReviewAnswer::Unsatisfied {
            reason: comment.clone(),
        },
        _ => {
            return form_page(
                &state,
                &link,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("请选择满意、基本满意或不满意。"),
                &choice,
                &comment,
            );
        }
    };
    match state
        .store
        .answer_review(&state.engine, &token, &answer, now)
        .await
    {
        Ok(Ok(())) => page(
            StatusCode::OK,
            context! { title => "感谢您的评价", message => "您的评价已记录。感谢您对政务服务工作的监督！", link => link_view(&link) },
        ),
        Ok(Err(refused)) => closed_page(&ReviewLink {
            state: refused,
            ..link
        }),
        Err(StoreError::Rejected(e)) => form_page(
            &state,
            &link,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&e.to_string()),
            &choice,
            &comment,
        ),
        Err(e) => failure_page(e),
    }
}

fn link_view(link: &ReviewLink) -> minijinja::Value {
    context! {
        service => &link.service,
        project_no => &link.project_no,
        unit => &link.unit,
        reply => &link.reply,
    }
}

fn form_page(
    state: &AppState,
    link: &ReviewLink,
    status: StatusCode,
    error: Option<&str>,
    choice: &str,
    comment: &str,
) -> Response {
    let expires = bihuan_core::mail::chinese_deadline(state.engine.calendar(), link.expires_at);
    page(
        status,
        context! {
            title => "请评价整改结果",
            message => error.unwrap_or("您反映的问题已整改并反馈，请评价整改结果。"),
            error => error.is_some(),
            link => link_view(link),
            form => true,
            choice,
            comment,
            expires,
        },
    )
}

fn closed_page(link: &ReviewLink) -> Response {
    let message = match link.state {
        ReviewLinkState::Used => "此链接已使用过，您的评价已记录。感谢您的反馈！",
        ReviewLinkState::Expired => "此链接已过期：评议期限已过，评议已结束。",
        ReviewLinkState::Closed | ReviewLinkState::Open => "此评议已结束，链接已失效。",
    };
    page(
        StatusCode::GONE,
        context! { title => "链接已失效", message, error => true, link => link_view(link) },
    )
}

fn unknown_page() -> Response {
    page(
        StatusCode::NOT_FOUND,
        context! { title => "链接无效", message => "没有找到这个评议链接，请检查邮件中的链接是否完整。", error => true },
    )
}

/// The database failed: 503/507 when it refused or was away (nothing was saved), 500 otherwise; the
/// cause is logged once, by `ApiError`.
fn failure_page(e: StoreError) -> Response {
    let status = crate::error::ApiError::from(e).status();
    page(
        status,
        context! { title => "暂时无法处理", message => "系统暂时无法处理，请稍后再试。", error => true },
    )
}

/// The review page in the pages' layout (narrow, no navigation: the rater has no account).
fn page(status: StatusCode, ctx: minijinja::Value) -> Response {
    crate::pages::render(status, "review.html", ctx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_page_escapes_what_it_shows() {
        let response = page(
            StatusCode::OK,
            context! { title => "t", message => "<b>x</b>", error => true },
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            html.contains("&lt;b&gt;x") && !html.contains("<b>x"),
            "{html}"
        );
        assert!(html.contains("/static/style.css"), "{html}");
    }
}
