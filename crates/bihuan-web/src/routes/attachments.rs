//! 整改佐证材料 over the API: upload to a case or a work item, download in scope.

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use bihuan_store::SubjectKind;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::attachments::{AttachmentView, keep, may_attach, receive};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, SignedIn};

/// What a multipart body adds around the file itself (boundaries, part headers), above the upload
/// limit: the body limit of the upload routes.
pub(crate) const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// `/api/v1/cases/{id}/attachments`, `/api/v1/tasks/{id}/attachments`, `/api/v1/attachments/{id}`;
/// an upload takes a file of up to `max_upload` bytes.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload_to_case))
        .routes(routes!(upload_to_task))
        .layer(DefaultBodyLimit::max(
            max_upload.saturating_add(MULTIPART_OVERHEAD),
        ));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(download))
        .routes(routes!(thumbnail))
}

/// A multipart upload form (one part named `file`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body for the OpenAPI document only.
pub struct UploadForm {
    /// The file: JPEG, PNG, PDF, OFD, DOCX or XLSX (judged by its bytes).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Attaches a file to a case (整改佐证材料, 申诉材料): cite its `id` in an action's `evidence`.
#[utoipa::path(post, path = "/api/v1/cases/{id}/attachments", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "差评工单编号")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentView), (status = 400, description = "不是含 file 部分的 multipart 请求", body = ErrorBody),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 403, description = "角色无权上传", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody),
        (status = 413, description = "文件过大（too_large）", body = ErrorBody),
        (status = 415, description = "文件类型不支持（unsupported_type，按内容判断）", body = ErrorBody),
        (status = 422, description = "文件为空或附件数已达上限", body = ErrorBody)))]
async fn upload_to_case(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    upload(&state, &caller, SubjectKind::Case, id, multipart).await
}

/// Attaches a file to a work item (a co-unit's or the lead unit's evidence).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/attachments", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "工作任务编号")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentView), (status = 400, description = "不是含 file 部分的 multipart 请求", body = ErrorBody),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 403, description = "角色无权上传", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody),
        (status = 413, description = "文件过大（too_large）", body = ErrorBody),
        (status = 415, description = "文件类型不支持（unsupported_type，按内容判断）", body = ErrorBody),
        (status = 422, description = "文件为空或附件数已达上限", body = ErrorBody)))]
async fn upload_to_task(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    upload(&state, &caller, SubjectKind::Task, id, multipart).await
}

/// The one upload path: rights and scope before a byte is read, then the one `file` part.
async fn upload(
    state: &AppState,
    caller: &SignedIn,
    kind: SubjectKind,
    id: Uuid,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    // Out of reach is not found, whatever the role: nothing is said of a subject the caller cannot see.
    state.store.attachable(&caller.scope, kind, id).await?;
    may_attach(caller)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(
            "invalid_multipart",
            format!("应为 multipart/form-data 请求，含一个名为 file 的部分：{e}"),
        )
    })?;
    let limit = state.config.max_upload as u64;
    let mut received = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(crate::attachments::too_large(limit));
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    "invalid_multipart",
                    format!("上传内容无法读取：{e}"),
                ));
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        if received.is_some() {
            return Err(ApiError::bad_request(
                "invalid_multipart",
                "每次只能上传一个文件（一个名为 file 的部分）",
            ));
        }
        received = Some(receive(field, limit).await?);
    }
    let received = received
        .ok_or_else(|| ApiError::bad_request("invalid_multipart", "缺少名为 file 的文件部分"))?;
    let row = keep(state, caller, kind, id, received).await?;
    Ok((StatusCode::CREATED, Json(AttachmentView::from(&row))))
}

/// Downloads an attachment of a case or work item the caller may see.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "附件编号")),
    responses((status = 200, description = "文件内容（Content-Disposition: attachment）", content_type = "application/octet-stream"),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn download(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    crate::attachments::download(&state, &caller, id).await
}

/// The thumbnail of a photo (JPEG or PNG) the caller may see: a JPEG at most 240 pixels on its longer
/// side, made once and kept.
#[utoipa::path(get, path = "/api/v1/attachments/{id}/thumbnail", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "附件编号")),
    responses((status = 200, description = "缩略图（JPEG）", content_type = "image/jpeg"),
        (status = 401, description = "未登录或令牌无效", body = ErrorBody),
        (status = 404, description = "不存在或不在权限范围内", body = ErrorBody),
        (status = 415, description = "不是 JPEG、PNG 图片（unsupported_type）", body = ErrorBody),
        (status = 422, description = "图片无法解码或过大（thumbnail_unavailable）", body = ErrorBody)))]
async fn thumbnail(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    crate::thumbnails::thumbnail(&state, &caller, id).await
}
