//! Exports: the case ledger (差评整改台账) as Excel or CSV, every case in the caller's scope with no cap;
//! and the metrics table (统计报表).
//! Rows are read a page at a time and written to a temporary file by a blocking writer (rust_xlsxwriter
//! in its constant-memory mode, or csv), which is then streamed back: memory stays flat however many
//! cases there are.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bihuan_core::Engine;
use bihuan_core::csv_safe;
use bihuan_core::metrics::{Cell, TABLE_COLUMNS, figures, table_cells};
use bihuan_store::{LedgerEntry, LedgerFilter, MetricsRow};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, SignedIn};
use crate::ledger::{LEDGER_COLUMNS, LedgerCell, TIME_FORMAT, ledger_cells};
use crate::routes::cases::parse_bound;
use crate::routes::stats::{MetricsParams, metric_rows};

/// Cases per page read from the database.
const PAGE: u64 = 1000;
/// The file names people see, percent-encoded: 差评整改台账, 统计报表.
const LEDGER_NAME: &str = "%E5%B7%AE%E8%AF%84%E6%95%B4%E6%94%B9%E5%8F%B0%E8%B4%A6";
const METRICS_NAME: &str = "%E7%BB%9F%E8%AE%A1%E6%8A%A5%E8%A1%A8";

/// `/api/v1/export/…`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cases_xlsx))
        .routes(routes!(cases_csv))
        .routes(routes!(metrics_xlsx))
        .routes(routes!(metrics_csv))
}

/// The metrics table (统计报表) as an Excel workbook: one row per group, rates as percentages.
#[utoipa::path(get, path = "/api/v1/export/metrics.xlsx", tag = "export", security(("bearer" = [])), params(MetricsParams),
    responses((status = 200, description = "统计报表（xlsx）", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn metrics_xlsx(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(p): ApiQuery<MetricsParams>,
) -> ApiResult<Response> {
    let rows = metric_rows(&state, &caller, p).await?;
    let bytes = metrics_workbook(&rows).map_err(internal)?;
    Ok(attachment(Body::from(bytes), Format::Xlsx, METRICS_NAME))
}

/// The metrics table as CSV (UTF-8 with a byte-order mark).
#[utoipa::path(get, path = "/api/v1/export/metrics.csv", tag = "export", security(("bearer" = [])), params(MetricsParams),
    responses((status = 200, description = "统计报表（CSV，UTF-8）", content_type = "text/csv"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn metrics_csv(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiQuery(p): ApiQuery<MetricsParams>,
) -> ApiResult<Response> {
    let rows = metric_rows(&state, &caller, p).await?;
    let bytes = metrics_table_csv(&rows).map_err(internal)?;
    Ok(attachment(Body::from(bytes), Format::Csv, METRICS_NAME))
}

/// The metrics table as an xlsx workbook in memory (a table has one row per group: small).
pub fn metrics_workbook(rows: &[MetricsRow]) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format as Style, Workbook};
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("统计报表").map_err(|e| e.to_string())?;
    let bold = Style::new().set_bold();
    let percent = Style::new().set_num_format("0.0%");
    let days = Style::new().set_num_format("0.0");
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    sheet
        .write_string_with_format(0, 0, "分组", &bold)
        .map_err(err)?;
    sheet.set_column_width(0, 24).map_err(err)?;
    for (i, title) in TABLE_COLUMNS.iter().enumerate() {
        let col = u16::try_from(i + 1).map_err(|e| e.to_string())?;
        sheet
            .write_string_with_format(0, col, *title, &bold)
            .map_err(err)?;
        sheet.set_column_width(col, 12).map_err(err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let line = u32::try_from(r + 1).map_err(|e| e.to_string())?;
        sheet.write_string(line, 0, &row.label).map_err(err)?;
        for (i, cell) in table_cells(&figures(&row.counts)).iter().enumerate() {
            let col = u16::try_from(i + 1).map_err(|e| e.to_string())?;
            match cell {
                Cell::Count(n) => {
                    sheet.write_number(line, col, *n as f64).map_err(err)?;
                }
                Cell::Rate(Some(v)) => {
                    sheet
                        .write_number_with_format(line, col, *v, &percent)
                        .map_err(err)?;
                }
                Cell::Days(Some(v)) => {
                    sheet
                        .write_number_with_format(line, col, *v, &days)
                        .map_err(err)?;
                }
                Cell::Rate(None) | Cell::Days(None) => {}
            }
        }
    }
    workbook.save_to_buffer().map_err(err)
}

/// The metrics table as CSV (UTF-8 with a byte-order mark), cells as people read them.
pub fn metrics_table_csv(rows: &[MetricsRow]) -> Result<Vec<u8>, String> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = csv::Writer::from_writer(&mut out);
        let mut header = vec!["分组"];
        header.extend(TABLE_COLUMNS);
        writer.write_record(&header).map_err(|e| e.to_string())?;
        for row in rows {
            // The label is a unit's or a service's name as sent by a channel: it may begin like a
            // formula. The figures are plain numbers, rates and "—", which `csv_safe` leaves as
            // they are (a negative figure would stay a number too).
            let mut record = vec![row.label.clone()];
            record.extend(table_cells(&figures(&row.counts)).iter().map(Cell::text));
            write_safe(&mut writer, &record).map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A download: the body with its content type and file name.
pub(crate) fn attachment(body: Body, format: Format, name: &str) -> Response {
    let (content_type, extension) = match format {
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition =
        format!("attachment; filename=\"export.{extension}\"; filename*=UTF-8''{name}.{extension}");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Which cases: those of ratings given in the period (dates or RFC 3339), in a unit's subtree.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    unit: Option<String>,
    /// Only cases in this state (as the ledger page filters).
    state: Option<String>,
    /// Only cases past (true) or within (false) their deadline.
    overdue: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Format {
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
        state: q
            .state
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        overdue: q.overdue,
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
    let (tx, rx) = mpsc::channel::<Vec<LedgerEntry>>(2);
    let engine = state.engine.clone();
    let writer = tokio::task::spawn_blocking(move || match format {
        Format::Xlsx => write_xlsx(&path, &engine, rx),
        Format::Csv => write_csv(&path, &engine, rx),
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
    let body = stream(file).await.map_err(internal)?;
    Ok(attachment(body, format, LEDGER_NAME))
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
    engine: &Engine,
    mut rx: mpsc::Receiver<Vec<LedgerEntry>>,
) -> Result<(), String> {
    use rust_xlsxwriter::{ExcelDateTime, Format as Style, Workbook};
    let mut workbook = Workbook::new();
    // Excel's own level: the sheet is deflated after its last row, and level 3 takes about 0.7 of
    // the default's time for a file about 5 % larger.
    workbook.set_zip_compression_level(3);
    let sheet = workbook
        .add_worksheet_with_constant_memory()
        .map_err(|e| e.to_string())?;
    sheet.set_name("差评整改台账").map_err(|e| e.to_string())?;
    let bold = Style::new().set_bold();
    let minutes = Style::new().set_num_format("yyyy-mm-dd hh:mm");
    for (col, (title, width)) in (0u16..).zip(LEDGER_COLUMNS) {
        sheet
            .set_column_width(col, width)
            .map_err(|e| e.to_string())?;
        sheet
            .write_string_with_format(0, col, title, &bold)
            .map_err(|e| e.to_string())?;
    }
    let mut row_number: u32 = 1;
    while let Some(entries) = rx.blocking_recv() {
        for entry in &entries {
            for (col, cell) in (0u16..).zip(ledger_cells(engine, entry)) {
                match cell {
                    LedgerCell::Text(text) if text.is_empty() => continue,
                    LedgerCell::Text(text) => sheet.write_string(row_number, col, text).map(drop),
                    LedgerCell::Time(at) => {
                        let at = ExcelDateTime::from_timestamp(at.and_utc().timestamp())
                            .map_err(|e| e.to_string())?;
                        sheet
                            .write_datetime_with_format(row_number, col, &at, &minutes)
                            .map(drop)
                    }
                }
                .map_err(|e| e.to_string())?;
            }
            row_number += 1;
        }
    }
    workbook.save(path).map_err(|e| e.to_string())
}

fn write_csv(
    path: &std::path::Path,
    engine: &Engine,
    mut rx: mpsc::Receiver<Vec<LedgerEntry>>,
) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    file.write_all("\u{feff}".as_bytes())
        .map_err(|e| e.to_string())?;
    let mut writer = csv::Writer::from_writer(file);
    writer
        .write_record(LEDGER_COLUMNS.map(|(title, _)| title))
        .map_err(|e| e.to_string())?;
    while let Some(entries) = rx.blocking_recv() {
        for entry in &entries {
            let row = ledger_cells(engine, entry).map(|cell| match cell {
                LedgerCell::Text(text) => text,
                LedgerCell::Time(at) => at.format(TIME_FORMAT).to_string(),
            });
            // Service names, measures and units come from channels and staff: a cell beginning
            // with = + - @ would run as a formula in Excel.
            write_safe(&mut writer, &row).map_err(|e| e.to_string())?;
        }
    }
    writer.flush().map_err(|e| e.to_string())
}

/// Writes one CSV record, each cell through [`csv_safe`] (every CSV the product writes does).
fn write_safe<W: std::io::Write>(writer: &mut csv::Writer<W>, cells: &[String]) -> csv::Result<()> {
    for cell in cells {
        writer.write_field(csv_safe(cell).as_bytes())?;
    }
    writer.write_record(None::<&[u8]>)
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
