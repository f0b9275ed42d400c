//! Spreadsheet files in and out. In: the [`Limits`] an uploaded table must keep (its size, what its
//! zip inflates to, its rows and columns) and an xlsx read cell by cell within them ([`xlsx_rows`]),
//! so that no file can make the process allocate what its declared extent or its compression ratio
//! asks for. Out: [`csv_safe`], which keeps a CSV cell from being taken for a formula by Excel.
//!
//! Pure like the rest of the core: the caller opens the file (or holds the bytes) and passes a
//! reader; the limits come in as values.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};

use calamine::{Data, Reader, Xlsx};

/// One mebibyte: sizes are configured in MB (`BIHUAN_MAX_UPLOAD_MB`) and mean MiB.
pub const MIB: u64 = 1024 * 1024;

/// The largest upload when nothing is configured: 20 MB.
pub const DEFAULT_MAX_UPLOAD: u64 = 20 * MIB;

/// What an xlsx may inflate to, as a multiple of the upload limit (200 MB by default). A workbook's
/// XML typically compresses five to ten times; a zip bomb compresses a thousand times. The cap also
/// bounds what calamine holds in memory at once (the shared strings, one XML event).
pub const INFLATE_FACTOR: u64 = 10;

/// What an uploaded table may hold. Every reader checks these before it allocates for a cell: the
/// size first, then (for an xlsx) the inflated size of the whole zip, then each non-empty cell's
/// position as it is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The file's size in bytes.
    pub max_bytes: u64,
    /// What all the entries of an xlsx inflate to together, in bytes.
    pub max_inflated: u64,
    /// The highest row number (from 1, title and header rows included) a non-empty cell may have.
    pub max_rows: usize,
    /// The highest column number (from 1: A is 1) a non-empty cell may have.
    pub max_columns: usize,
}

impl Limits {
    /// Rows of a plan table (任务分解): a county's plan has tens of items, a province's hundreds.
    pub const PLAN_ROWS: usize = 2_000;
    /// Columns of a plan table: five are read, a few more are common.
    pub const PLAN_COLUMNS: usize = 50;
    /// Rows of a ratings file: as many as an Excel sheet holds (1,048,576), so any workbook Excel
    /// writes is accepted; a CSV of a million ratings plus its header fits too.
    pub const RATINGS_ROWS: usize = 1_048_576;
    /// Columns of a ratings file: nineteen are read.
    pub const RATINGS_COLUMNS: usize = 100;

    /// The limits of a plan file, for an upload limit of `max_bytes`.
    pub fn plans(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_inflated: max_bytes.saturating_mul(INFLATE_FACTOR),
            max_rows: Self::PLAN_ROWS,
            max_columns: Self::PLAN_COLUMNS,
        }
    }

    /// The limits of a ratings file, for an upload limit of `max_bytes`.
    pub fn ratings(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_inflated: max_bytes.saturating_mul(INFLATE_FACTOR),
            max_rows: Self::RATINGS_ROWS,
            max_columns: Self::RATINGS_COLUMNS,
        }
    }

    /// Refuses a file of `size` bytes over the upload limit.
    pub fn check_size(&self, size: u64) -> Result<(), LimitError> {
        if size > self.max_bytes {
            return Err(LimitError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Refuses a non-empty cell at `row` and `column` (both from 1) beyond the table's extent.
    pub fn check_cell(&self, row: usize, column: usize) -> Result<(), LimitError> {
        if row > self.max_rows {
            return Err(LimitError::TooManyRows {
                limit: self.max_rows,
            });
        }
        if column > self.max_columns {
            return Err(LimitError::TooManyColumns {
                limit: self.max_columns,
            });
        }
        Ok(())
    }
}

/// A file beyond one of its [`Limits`]: nothing of it is kept. The message names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The file is larger than the upload limit.
    #[error("文件过大：不能超过 {} MB", mb(*limit))]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The workbook's zip inflates to more than its cap.
    #[error("工作簿解压后过大：不能超过 {} MB", mb(*limit))]
    WorkbookTooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// A cell lies below the last row allowed.
    #[error("表格行数过多：不能超过 {limit} 行")]
    TooManyRows {
        /// The highest row number allowed.
        limit: usize,
    },
    /// A cell lies right of the last column allowed.
    #[error("表格列数过多：不能超过 {limit} 列")]
    TooManyColumns {
        /// The highest column number allowed.
        limit: usize,
    },
}

impl LimitError {
    /// The stable snake_case code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::TooLarge { .. } => "too_large",
            LimitError::WorkbookTooLarge { .. } => "workbook_too_large",
            LimitError::TooManyRows { .. } => "too_many_rows",
            LimitError::TooManyColumns { .. } => "too_many_columns",
        }
    }

    /// The limit as the message states it, with its unit: `("limit_mb", 20)` or `("limit", 2000)`.
    pub fn limit(&self) -> (&'static str, u64) {
        match *self {
            LimitError::TooLarge { limit } | LimitError::WorkbookTooLarge { limit } => {
                ("limit_mb", mb(limit))
            }
            LimitError::TooManyRows { limit } | LimitError::TooManyColumns { limit } => {
                ("limit", limit as u64)
            }
        }
    }
}

/// Bytes as whole MB, as the configuration gives them (a limit under 1 MB shows as 1).
fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).max(1)
}

/// Why a workbook was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    /// It is beyond a limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// It is not an xlsx workbook (or a damaged one).
    #[error("不是有效的 xlsx 工作簿：{0}")]
    NotAWorkbook(String),
    /// It has no sheet.
    #[error("工作簿中没有工作表")]
    NoSheet,
    /// Its first sheet cannot be read.
    #[error("无法读取第一个工作表：{0}")]
    BadSheet(String),
}

/// Inflates every entry of the zip `reader` holds into nothing, counting the bytes that really come
/// out (the sizes an entry declares are not believed), and refuses the file as soon as they pass
/// `limit`. Returns the total.
pub fn check_inflated<R: Read + Seek>(mut reader: R, limit: u64) -> Result<u64, SheetError> {
    let not_zip = |e: zip::result::ZipError| SheetError::NotAWorkbook(e.to_string());
    // The directory costs memory by the entry: its count is judged (from the record at the archive's
    // end) before the directory is read.
    let io = |e: std::io::Error| SheetError::NotAWorkbook(e.to_string());
    let len = reader.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    let tail_len = len.min(crate::evidence::ZIP_TAIL_BYTES as u64);
    reader
        .seek(std::io::SeekFrom::Start(len - tail_len))
        .map_err(io)?;
    let mut tail = Vec::new();
    (&mut reader)
        .take(tail_len)
        .read_to_end(&mut tail)
        .map_err(io)?;
    match crate::evidence::zip_entry_count(&tail) {
        Some(n) if n <= crate::evidence::MAX_ZIP_ENTRIES => {}
        Some(n) => {
            return Err(SheetError::NotAWorkbook(format!(
                "压缩包列出 {n} 个条目，超过 {} 个",
                crate::evidence::MAX_ZIP_ENTRIES
            )));
        }
        None => return Err(SheetError::NotAWorkbook("缺少压缩包目录".to_owned())),
    }
    reader.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut archive = zip::ZipArchive::new(reader).map_err(not_zip)?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(not_zip)?;
        // One byte more than what is left tells "exactly at the cap" from "past it".
        let left = limit.saturating_sub(total).saturating_add(1);
        let inflated = std::io::copy(&mut entry.take(left), &mut std::io::sink())
            .map_err(|e| SheetError::NotAWorkbook(e.to_string()))?;
        total = total.saturating_add(inflated);
        if total > limit {
            return Err(LimitError::WorkbookTooLarge { limit }.into());
        }
    }
    Ok(total)
}

/// Reads the first sheet of an xlsx cell by cell, within `limits`: the file's size and its inflated
/// size are checked before calamine parses anything, and each non-empty cell's position as it comes,
/// so neither a declared extent (A1:XFD1048576) nor a zip bomb is ever allocated. Each row that has
/// a non-empty cell goes to `row` as it is complete: its number as Excel shows it (from 1) and its
/// cells from column A (empty ones as [`Data::Empty`]). `row` returns false to stop early.
///
/// Cells without a value are skipped, as calamine's own ranges skip them: a merged range's other
/// cells and cells that only carry formatting read as empty, and do not count against the limits.
pub fn xlsx_rows<R: Read + Seek>(
    mut reader: R,
    limits: &Limits,
    mut row: impl FnMut(usize, Vec<Data>) -> bool,
) -> Result<(), SheetError> {
    let io = |e: std::io::Error| SheetError::NotAWorkbook(e.to_string());
    let size = reader.seek(SeekFrom::End(0)).map_err(io)?;
    limits.check_size(size)?;
    reader.rewind().map_err(io)?;
    check_inflated(&mut reader, limits.max_inflated)?;
    reader.rewind().map_err(io)?;
    let mut book: Xlsx<R> = calamine::open_workbook_from_rs(reader)
        .map_err(|e: calamine::XlsxError| SheetError::NotAWorkbook(e.to_string()))?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or(SheetError::NoSheet)?;
    let bad_sheet = |e: calamine::XlsxError| SheetError::BadSheet(e.to_string());
    let mut cells = book.worksheet_cells_reader(&first).map_err(bad_sheet)?;
    let mut current: Option<(usize, Vec<Data>)> = None;
    while let Some(cell) = cells.next_cell().map_err(bad_sheet)? {
        let value = cell.get_value();
        if matches!(value, calamine::DataRef::Empty) {
            continue;
        }
        let (r, c) = cell.get_position();
        let (number, column) = (r as usize + 1, c as usize + 1);
        limits.check_cell(number, column)?;
        if current.as_ref().is_some_and(|(n, _)| *n != number)
            && let Some((n, done)) = current.take()
            && !row(n, done)
        {
            return Ok(());
        }
        let (_, line) = current.get_or_insert_with(|| (number, Vec::new()));
        if line.len() < column {
            line.resize(column, Data::Empty);
        }
        line[column - 1] = Data::from(value.clone());
    }
    if let Some((n, done)) = current {
        row(n, done);
    }
    Ok(())
}

/// A CSV cell that Excel will show as text: a cell beginning with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`), so it gets a
/// leading `'`, as OWASP advises. A cell that is a plain number (`-3`, `-1.5`, `+2`, `-12.5%`) is
/// left as it is: Excel reads it as that number and nothing else, and the metrics' figures stay
/// numbers a spreadsheet can sum.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    let Some(first) = cell.chars().next() else {
        return Cow::Borrowed(cell);
    };
    if !matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') || is_plain_number(cell) {
        return Cow::Borrowed(cell);
    }
    Cow::Owned(format!("'{cell}"))
}

/// A sign, digits, at most one decimal point with digits around it, and an optional per cent sign.
fn is_plain_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let unsigned = unsigned.strip_suffix('%').unwrap_or(unsigned);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn csv_cells_that_excel_would_run_get_a_quote() {
        let check = |cell: &str, expected: &str| assert_eq!(csv_safe(cell), expected, "{cell:?}");
        check(
            "=HYPERLINK(\"http://x\",\"点我\")",
            "'=HYPERLINK(\"http://x\",\"点我\")",
        );
        check("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0");
        check("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0");
        check("@SUM(1+1)", "'@SUM(1+1)");
        check("\t=1+1", "'\t=1+1");
        check("\r=1+1", "'\r=1+1");
        check("-", "'-");
        check("--", "'--");
        check("-1.", "'-1.");
        check("-.5", "'-.5");
        check("-1e5", "'-1e5");
        check("+", "'+");
        check("=", "'=");
        // Plain numbers stay numbers.
        check("-3", "-3");
        check("-1.5", "-1.5");
        check("+2", "+2");
        check("-12.5%", "-12.5%");
        // Anything else is untouched.
        check("", "");
        check(
            "城乡居民基本养老保险参保登记",
            "城乡居民基本养老保险参保登记",
        );
        check("a=1", "a=1");
        check(" =1", " =1");
        check("'=1", "'=1");
        check("12.5%", "12.5%");
        check("—", "—");
        check("2021-05-06 10:00", "2021-05-06 10:00");
        assert!(matches!(csv_safe("abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn limits_name_what_they_refuse() {
        let plans = Limits::plans(DEFAULT_MAX_UPLOAD);
        assert_eq!(plans.max_inflated, 200 * MIB);
        assert_eq!(plans.check_size(20 * MIB), Ok(()));
        let e = plans.check_size(20 * MIB + 1).unwrap_err();
        assert_eq!((e.code(), e.limit()), ("too_large", ("limit_mb", 20)));
        assert!(e.to_string().contains("不能超过 20 MB"), "{e}");
        assert_eq!(plans.check_cell(2_000, 50), Ok(()));
        let e = plans.check_cell(2_001, 1).unwrap_err();
        assert_eq!((e.code(), e.limit()), ("too_many_rows", ("limit", 2_000)));
        assert!(e.to_string().contains("2000 行"), "{e}");
        let e = plans.check_cell(1, 51).unwrap_err();
        assert_eq!(e.code(), "too_many_columns");
        assert!(e.to_string().contains("50 列"), "{e}");
        let e = LimitError::WorkbookTooLarge { limit: 200 * MIB };
        assert_eq!(e.code(), "workbook_too_large");
        assert!(e.to_string().contains("200 MB"), "{e}");
        assert_eq!(mb(1), 1);
        let ratings = Limits::ratings(MIB);
        assert_eq!(ratings.check_cell(1_048_576, 100), Ok(()));
        assert!(ratings.check_cell(1_048_577, 1).is_err());
    }
}
