//! 佐证材料 on the pages: the files of a case or work item listed with their download links, offered
//! as boxes to tick in the forms of actions that cite evidence, and the upload form's handler.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use bihuan_store::entity::attachment;
use serde::Serialize;
use uuid::Uuid;

use super::act::ActionPage;
use super::cases::CasePage;
use super::forms::Choice;
use super::plans::TaskPage;
use super::views::{Flash, when};
use super::{PageError, PageResult, PageUser};
use crate::AppState;
use crate::attachments::{keep, may_attach, receive};
use crate::error::ApiError;

/// A file as a page lists it.
#[derive(Debug, Serialize)]
pub(super) struct FileLine {
    id: Uuid,
    name: String,
    size: String,
    uploaded_by: String,
    at: String,
    /// A photo: shown as a thumbnail beside its name.
    image: bool,
}

/// The files as a page lists them.
pub(super) fn file_lines(state: &AppState, files: &[attachment::Model]) -> Vec<FileLine> {
    let cal = state.engine.calendar();
    files
        .iter()
        .map(|f| FileLine {
            id: f.id,
            name: f.name.clone(),
            size: size_text(f.size),
            uploaded_by: f.uploaded_by.clone(),
            at: when(cal, f.uploaded_at),
            image: f.content_type.0.is_image(),
        })
        .collect()
}

/// What a subject's page shows of its files: the list, the choices of the evidence fields, and
/// whether the user may upload (and how large a file may be).
#[derive(Debug, Serialize)]
pub(super) struct FilesView {
    pub lines: Vec<FileLine>,
    #[serde(skip)]
    pub choices: Vec<Choice>,
    pub may_upload: bool,
    pub max_mb: usize,
}

impl FilesView {
    pub(super) fn of(state: &AppState, user: &PageUser, files: &[attachment::Model]) -> Self {
        Self {
            lines: file_lines(state, files),
            choices: files
                .iter()
                .map(|f| Choice {
                    value: f.id.to_string(),
                    label: format!("{}（{}）", f.name, size_text(f.size)),
                })
                .collect(),
            may_upload: may_attach(&user.caller).is_ok(),
            max_mb: state.config.max_upload.div_ceil(1024 * 1024),
        }
    }
}

/// A short text part (a token): read a chunk at a time, `None` past [`SHORT_TEXT`] bytes or when it
/// is not UTF-8, so no large part is held in memory before it is judged.
async fn short_text(
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<Option<String>, ApiError> {
    let mut bytes = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > SHORT_TEXT {
                    return Ok(None);
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(String::from_utf8(bytes).ok()),
            Err(e) => {
                return Err(ApiError::bad_request(
                    "invalid_form",
                    format!("表单无法读取：{e}"),
                ));
            }
        }
    }
}

/// The longest text part an upload form reads (its CSRF token is 64 characters).
const SHORT_TEXT: usize = 256;

/// A size as people read it: 512 B, 3.4 KB, 12.0 MB.
fn size_text(bytes: i64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} B")
    } else if b < KB * KB {
        format!("{:.1} KB", b / KB)
    } else {
        format!("{:.1} MB", b / KB / KB)
    }
}

/// `POST /cases/{id}/attachments`: the case page's upload form.
pub(crate) async fn upload_to_case(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult {
    upload::<CasePage>(&state, &user, id, multipart).await
}

/// `POST /tasks/{id}/attachments`: the work item page's upload form.
pub(crate) async fn upload_to_task(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<Uuid>,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult {
    upload::<TaskPage>(&state, &user, id, multipart).await
}

/// The upload form of a subject's page (multipart: `csrf` first, then `file`): the file kept and the
/// page shown again at its files, or the page with why it was refused (413 too large, 415 a kind not
/// accepted). The CSRF token is checked before the file is read.
async fn upload<P: ActionPage>(
    state: &AppState,
    user: &PageUser,
    id: Uuid,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult {
    let fail = |e: ApiError| PageError::new(e, Some(user));
    let mut multipart = multipart.map_err(|e| {
        fail(ApiError::bad_request(
            "invalid_form",
            format!("上传表单无法读取：{e}"),
        ))
    })?;
    let detail = P::visible(state, user, id).await?;
    let limit = state.config.max_upload as u64;
    let mut csrf_checked = false;
    let mut received = None;
    let refusal = loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break None,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                break Some(crate::attachments::too_large(limit));
            }
            Err(e) => {
                break Some(ApiError::bad_request(
                    "invalid_form",
                    format!("上传内容无法读取：{e}"),
                ));
            }
        };
        match field.name() {
            Some("csrf") => {
                let token = short_text(field).await.map_err(fail)?;
                user.check_csrf(token.as_deref().map(str::trim))?;
                csrf_checked = true;
            }
            // One file a form, as the API takes it.
            Some("file") if received.is_some() => {
                break Some(ApiError::bad_request(
                    "invalid_form",
                    "每次只能上传一个文件",
                ));
            }
            Some("file") if csrf_checked => {
                may_attach(&user.caller).map_err(fail)?;
                match receive(field, limit).await {
                    Ok(r) => received = Some(r),
                    Err(e) => break Some(e),
                }
            }
            // A file before the token (or without one) is never read.
            Some("file") => user.check_csrf(None)?,
            _ => {}
        }
    };
    let refusal = match (refusal, received) {
        (Some(e), _) => e,
        (None, Some(received)) => match keep(state, &user.caller, P::KIND, id, received).await {
            Ok(_) => {
                let to = format!("{}?uploaded=1#files", P::path(id));
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) => e,
        },
        (None, None) if !csrf_checked => {
            user.check_csrf(None)?;
            ApiError::invalid_field("file", "请选择要上传的文件")
        }
        (None, None) => ApiError::invalid_field("file", "请选择要上传的文件"),
    };
    if refusal.status().is_server_error() {
        return Err(fail(refusal));
    }
    let flash = Flash::bad(format!("未上传：{}", refusal.message()));
    P::page(state, user, &detail, refusal.status(), Some(flash), None).await
}
