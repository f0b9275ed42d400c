//! Thumbnails of photos (整改佐证材料 taken with a phone): a JPEG at most [`THUMBNAIL_PX`] pixels on its
//! longer side, made once from the stored original and kept beside it (`Files::thumbnail`), so a page
//! of photos loads a few kilobytes each instead of the originals.
//!
//! The original is distrusted like any upload: read only when it is within the upload limit, decoded
//! under limits on its dimensions and on what decoding may allocate (a small file that claims a huge
//! picture is refused, not decoded), on a blocking thread.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bihuan_core::evidence::FileType;
use bytes::Bytes;
use futures_util::TryStreamExt;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::SignedIn;

/// The longer side of a thumbnail, in pixels (twice the 64 px the pages show, for sharp phones).
pub const THUMBNAIL_PX: u32 = 240;

/// The largest picture a thumbnail is made of: 12,000 pixels a side.
const MAX_SIDE: u32 = 12_000;

/// What decoding one picture may allocate.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Thumbnails made at once, process-wide: each holds an original (up to the upload limit) and its
/// decoded pixels, so a page of new photos, or many callers, cannot add up past a few of them.
static MAKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// `GET /api/v1/attachments/{id}/thumbnail`: the thumbnail of a photo the caller may see.
pub(crate) async fn thumbnail(
    state: &AppState,
    caller: &SignedIn,
    id: uuid::Uuid,
) -> Result<Response, ApiError> {
    let found = state.store.attachment(&caller.scope, id).await?;
    let format = match found.content_type.0 {
        FileType::Jpeg => ImageFormat::Jpeg,
        FileType::Png => ImageFormat::Png,
        FileType::Pdf | FileType::Ofd | FileType::Docx | FileType::Xlsx => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_type",
                "只有 JPEG、PNG 图片有缩略图",
            ));
        }
    };
    let files = &state.files;
    let stored = files
        .thumbnail(&found.sha256, THUMBNAIL_PX)
        .await
        .map_err(bihuan_store::StoreError::from)?;
    let jpeg = match stored {
        Some(jpeg) => jpeg,
        None => {
            let _turn = MAKING.acquire().await.map_err(|e| ApiError::internal(&e))?;
            let (size, stream) = files
                .open(&found.sha256)
                .await
                .map_err(bihuan_store::StoreError::from)?;
            if size > state.config.max_upload as u64 {
                return Err(not_made("原图超过上传大小限制"));
            }
            let original: Vec<Bytes> = stream
                .try_collect()
                .await
                .map_err(bihuan_store::StoreError::from)?;
            let original = original.concat();
            let jpeg = tokio::task::spawn_blocking(move || make(&original, format))
                .await
                .map_err(|e| ApiError::internal(&e))??;
            let jpeg = Bytes::from(jpeg);
            files
                .put_thumbnail(&found.sha256, THUMBNAIL_PX, jpeg.clone())
                .await
                .map_err(bihuan_store::StoreError::from)?;
            jpeg
        }
    };
    let mut response = Body::from(jpeg).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // The original never changes under its hash, nor does its thumbnail: the browser keeps it.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// A thumbnail could not be made of this picture.
fn not_made(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "thumbnail_unavailable",
        format!("无法生成缩略图：{why}"),
    )
}

/// The thumbnail of `original` (a JPEG or PNG, as judged on upload), as JPEG.
pub fn make(original: &[u8], format: ImageFormat) -> Result<Vec<u8>, ApiError> {
    let mut reader = ImageReader::with_format(std::io::Cursor::new(original), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let undecodable = |e: image::ImageError| not_made(&format!("图片无法解码（{e}）"));
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    // A phone stores a photo as the sensor saw it and says in EXIF how to turn it.
    let orientation = decoder.orientation().map_err(undecodable)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    picture.apply_orientation(orientation);
    let small = picture.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX).into_rgb8();
    let mut jpeg = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .map_err(|e| ApiError::internal(&e))?;
    Ok(jpeg)
}
