//! Exports: the case ledger (差评整改台账) as Excel or CSV, every case in the caller's scope with no cap.
//! Rows are read a page at a time and written to a temporary file by a blocking writer (rust_xlsxwriter
//! in its constant-memory mode, or csv), which is then streamed back: memory stays flat however many
//! cases there are.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bihuan_store::{LEDGER_HEADERS, LedgerFilter, LedgerRow};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, SignedIn};
use crate::routes::cases::parse_bound;

/// Cases per page read from the database.
const PAGE: u64 = 1000;
/// The file name people see, percent-encoded (差评整改台账).
const LEDGER_NAME: &str = "%E5%B7%AE%E8%AF%84%E6%95%B4%E6%94%B9%E5%8F%B0%E8%B4%A6";

/// `/api/v1/export/…`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cases_xlsx))
        .routes(routes!(cases_csv))
}

/// Which cases: those of ratings given in the period (dates or RFC 3339), in a unit's subtree.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    unit: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Xlsx,
    Csv,
}

/// The 差评整改台账 as an Excel workbook.
#[utoipa::path(get, path = "/api/v1/export/cases.xlsx", tag = "export", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "差评整改台账（xlsx），每件工单一行，不设上限", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn cases_xlsx(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    export(state, caller, q, Format::Xlsx).await
}

/// The 差评整改台账 as CSV (UTF-8 with a byte-order mark, which Excel needs to read Chinese).
#[utoipa::path(get, path = "/api/v1/export/cases.csv", tag = "export", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "差评整改台账（CSV，UTF-8）", content_type = "text/csv"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn cases_csv(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    export(state, caller, q, Format::Csv).await
}

async fn export(
    state: AppState,
    caller: SignedIn,
    q: ExportQuery,
    format: Format,
) -> ApiResult<Response> {
    let tz = state.engine.calendar().tz();
    let filter = LedgerFilter {
        from: parse_bound("from", q.from.as_deref(), tz, false)?,
        to: parse_bound("to", q.to.as_deref(), tz, true)?,
        unit: q
            .unit
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty()),
    };
    if let Some(code) = &filter.unit
        && state.store.unit(code).await?.is_none()
    {
        return Err(ApiError::invalid_field(
            "unit",
            format!("单位 {code} 不存在"),
        ));
    }
    let file = tempfile::NamedTempFile::new().map_err(internal)?;
    let path = file.path().to_owned();
    let (tx, rx) = mpsc::channel::<Vec<LedgerRow>>(2);
    let writer = tokio::task::spawn_blocking(move || match format {
        Format::Xlsx => write_xlsx(&path, rx),
        Format::Csv => write_csv(&path, rx),
    });
    let now = state.clock.now();
    let mut after = None;
    loop {
        let (rows, last) = state
            .store
            .ledger_page(&state.engine, &caller.scope, &filter, after, PAGE, now)
            .await?;
        let Some(last) = last else { break };
        if tx.send(rows).await.is_err() {
            break;
        }
        after = Some(last);
    }
    drop(tx);
    writer
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(internal)?;
    let (content_type, extension) = match format {
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let body = stream(file).await.map_err(internal)?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!(
        "attachment; filename=\"cases.{extension}\"; filename*=UTF-8''{LEDGER_NAME}.{extension}"
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "export failed");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "导出失败，请稍后重试",
    )
}

fn write_xlsx(
    path: &std::path::Path,
    mut rx: mpsc::Receiver<Vec<LedgerRow>>,
) -> Result<(), String> {
    use rust_xlsxwriter::{Format as Style, Workbook};
    let mut workbook = Workbook::new();
    let sheet = workbook
        .add_worksheet_with_constant_memory()
        .map_err(|e| e.to_string())?;
    sheet.set_name("差评整改台账").map_err(|e| e.to_string())?;
    let bold = Style::new().set_bold();
    for (col, (title, width)) in LEDGER_HEADERS
        .iter()
        .zip([
            22, 30, 10, 12, 17, 22, 14, 17, 17, 17, 30, 17, 10, 10, 8, 17, 22, 38,
        ])
        .enumerate()
    {
        let col = u16::try_from(col).map_err(|e| e.to_string())?;
        sheet
            .set_column_width(col, width)
            .map_err(|e| e.to_string())?;
        sheet
            .write_string_with_format(0, col, *title, &bold)
            .map_err(|e| e.to_string())?;
    }
    let mut row_number: u32 = 1;
    while let Some(rows) = rx.blocking_recv() {
        for row in rows {
            for (col, value) in row.iter().enumerate() {
                let col = u16::try_from(col).map_err(|e| e.to_string())?;
                sheet
                    .write_string(row_number, col, value)
                    .map_err(|e| e.to_string())?;
            }
            row_number += 1;
        }
    }
    workbook.save(path).map_err(|e| e.to_string())
}

fn write_csv(path: &std::path::Path, mut rx: mpsc::Receiver<Vec<LedgerRow>>) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    file.write_all("\u{feff}".as_bytes())
        .map_err(|e| e.to_string())?;
    let mut writer = csv::Writer::from_writer(file);
    writer
        .write_record(LEDGER_HEADERS)
        .map_err(|e| e.to_string())?;
    while let Some(rows) = rx.blocking_recv() {
        for row in rows {
            writer.write_record(&row).map_err(|e| e.to_string())?;
        }
    }
    writer.flush().map_err(|e| e.to_string())
}

/// The file as a streamed body, read 64 KiB at a time; the temporary file is removed once sent.
async fn stream(file: tempfile::NamedTempFile) -> std::io::Result<Body> {
    let reader = tokio::fs::File::open(file.path()).await?;
    let chunks = futures_util::stream::unfold(Some((reader, file)), |state| async move {
        let (mut reader, file) = state?;
        let mut buf = vec![0; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((reader, file))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Body::from_stream(chunks))
}
