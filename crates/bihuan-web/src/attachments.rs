//! 整改佐证材料 in and out, for the API and the pages alike: an upload is streamed into a temporary
//! file (hashed on the way, refused past the limit: memory stays flat whatever the size), judged by
//! its bytes, kept in the file store under its SHA-256 and recorded on its subject; a download streams
//! the stored bytes to a caller who may see the subject.

use std::io::{Read, Seek, SeekFrom};

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bihuan_core::Role;
use bihuan_core::evidence::{
    FileType, MAX_ZIP_ENTRIES, SNIFF_BYTES, Sniffed, ZIP_TAIL_BYTES, sanitize_name, sniff,
    zip_entry_count, zip_type,
};
use bihuan_store::entity::attachment;
use bihuan_store::{NewAttachment, SubjectKind};
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::SignedIn;

/// An attachment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    /// The name it is offered under.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its media type, judged from its bytes.
    pub content_type: String,
    /// Who uploaded it, and when.
    pub uploaded_by: String,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

impl From<&attachment::Model> for AttachmentView {
    fn from(a: &attachment::Model) -> Self {
        Self {
            id: a.id,
            name: a.name.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            content_type: a.content_type.0.content_type().to_owned(),
            uploaded_by: a.uploaded_by.clone(),
            uploaded_at: a.uploaded_at,
        }
    }
}

/// Whether the caller's role may attach files (viewers only look).
pub(crate) fn may_attach(caller: &SignedIn) -> Result<(), ApiError> {
    if caller.role == Role::Viewer {
        return Err(ApiError::forbidden(
            "role_not_allowed",
            "查看人员不能上传佐证材料",
        ));
    }
    Ok(())
}

/// An upload received into a temporary file: its hash, size and kind, and the name it will be kept
/// under.
#[derive(Debug)]
pub(crate) struct Received {
    file: tempfile::NamedTempFile,
    pub sha256: String,
    pub size: u64,
    pub kind: FileType,
    pub name: String,
}

/// 413 `too_large`: a file over the upload limit, the limit named (as for an uploaded table).
pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::limit(bihuan_core::LimitError::TooLarge { limit })
}

/// 415 `unsupported_type`: a file of a kind not accepted, judged by its bytes.
fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_type",
        format!(
            "文件类型不支持（按文件内容判断，不看扩展名）：仅接受 {}",
            FileType::ACCEPTED
        ),
    )
    .with_details(json!({ "accepted": ["jpeg", "png", "pdf", "ofd", "docx", "xlsx"] }))
}

/// Streams one multipart part into a temporary file, at most `limit` bytes, then judges it.
pub(crate) async fn receive(mut field: Field<'_>, limit: u64) -> Result<Received, ApiError> {
    let sent_name = field.file_name().unwrap_or_default().to_owned();
    let file = tempfile::NamedTempFile::new().map_err(|e| ApiError::internal(&e))?;
    let mut writer = tokio::fs::File::from_std(file.reopen().map_err(|e| ApiError::internal(&e))?);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The body limit of the route (a little above `limit`) cut the stream.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(limit)),
            Err(e) => {
                return Err(ApiError::bad_request(
                    "invalid_multipart",
                    format!("上传内容无法读取：{e}"),
                ));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        writer
            .write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    writer.flush().await.map_err(|e| ApiError::internal(&e))?;
    drop(writer);
    if size == 0 {
        return Err(ApiError::invalid_field("file", "文件为空"));
    }
    let sha256 = hex::encode(hasher.finalize());
    let (file, kind) = tokio::task::spawn_blocking(move || {
        let kind = judge(&file)?;
        Ok::<_, ApiError>((file, kind))
    })
    .await
    .map_err(|e| ApiError::internal(&e))??;
    Ok(Received {
        name: sanitize_name(&sent_name, kind),
        file,
        sha256,
        size,
        kind,
    })
}

/// What a received file is, by its bytes: its first bytes, and for a zip the names of its entries
/// (read from the archive's directory; nothing is inflated).
fn judge(file: &tempfile::NamedTempFile) -> Result<FileType, ApiError> {
    let mut f = file.reopen().map_err(|e| ApiError::internal(&e))?;
    let mut head = [0u8; SNIFF_BYTES];
    let mut read = 0;
    while read < head.len() {
        match f.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(ApiError::internal(&e)),
        }
    }
    match sniff(&head[..read]) {
        Sniffed::Known(kind) => Ok(kind),
        Sniffed::Unsupported => Err(unsupported()),
        Sniffed::Zip => {
            // The directory's size is judged before it is read: its entry count, from the record
            // at the archive's end.
            let len = f
                .seek(SeekFrom::End(0))
                .map_err(|e| ApiError::internal(&e))?;
            let tail_len = len.min(ZIP_TAIL_BYTES as u64);
            f.seek(SeekFrom::Start(len - tail_len))
                .map_err(|e| ApiError::internal(&e))?;
            let mut tail = Vec::with_capacity(tail_len as usize);
            (&mut f)
                .take(tail_len)
                .read_to_end(&mut tail)
                .map_err(|e| ApiError::internal(&e))?;
            match zip_entry_count(&tail) {
                Some(n) if n <= MAX_ZIP_ENTRIES => {}
                _ => return Err(unsupported()),
            }
            f.seek(SeekFrom::Start(0))
                .map_err(|e| ApiError::internal(&e))?;
            let archive = zip::ZipArchive::new(f).map_err(|_| unsupported())?;
            // A name that cannot be read names nothing the kinds look for.
            let names: Vec<String> = archive
                .file_names()
                .filter_map(Result::ok)
                .map(|n| n.into_owned())
                .collect();
            zip_type(names.iter().map(String::as_str)).ok_or_else(unsupported)
        }
    }
}

/// Keeps a received file in the file store and records it on its subject.
pub(crate) async fn keep(
    state: &AppState,
    caller: &SignedIn,
    kind: SubjectKind,
    id: Uuid,
    received: Received,
) -> Result<attachment::Model, ApiError> {
    let row = state
        .store
        .keep_attachment(
            &state.files,
            received.file.path(),
            &caller.scope,
            &NewAttachment {
                subject: kind,
                subject_id: id,
                name: &received.name,
                size: received.size,
                sha256: &received.sha256,
                content_type: received.kind,
                uploaded_by: &caller.user.username,
            },
            state.clock.now(),
        )
        .await?;
    tracing::info!(attachment = %row.id, subject = kind.what(), size = row.size, "evidence file attached");
    Ok(row)
}

/// The stored bytes of an attachment the caller may see, as a download.
pub(crate) async fn download(
    state: &AppState,
    caller: &SignedIn,
    id: Uuid,
) -> Result<Response, ApiError> {
    let found = state.store.attachment(&caller.scope, id).await?;
    let (size, stream) = state
        .files
        .open(&found.sha256)
        .await
        .map_err(bihuan_store::StoreError::from)?;
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(found.content_type.0.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&found.name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `attachment` with the name twice: an ASCII stand-in for old clients and the UTF-8 name.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}
