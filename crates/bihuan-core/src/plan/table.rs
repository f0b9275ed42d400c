//! A plan's file as offices exchange it — CSV (UTF-8, or GB18030 as Excel saves it in Chinese
//! Windows) or an .xlsx workbook — read into its work items. Pure: bytes in, items or every problem out.
//!
//! The header row may sit below a title row ("附件：2021年政务服务工作任务分解"): it is the first row
//! (of the first ten) carrying every column.
//!
//! A file is read within its [`Limits`] (size, inflated size, rows and columns): a cell beyond them
//! stops the reading with a [`LimitError`](crate::sheet::LimitError) before anything is allocated for it.

use std::io::Cursor;

use calamine::Data;

use super::{COLUMNS, PlanError, PlanFileError, PlanItem, columns_of, parse_items};
use crate::sheet::{Limits, SheetError};

/// The formats a plan comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated text.
    Csv,
    /// An Excel 2007+ workbook; its first sheet is read.
    Xlsx,
}

impl TableFormat {
    /// The format of a file by its name, or else by its first bytes (an .xlsx is a zip).
    pub fn of(file_name: Option<&str>, bytes: &[u8]) -> Self {
        let lower = file_name.unwrap_or_default().to_ascii_lowercase();
        if lower.ends_with(".xlsx") || bytes.starts_with(b"PK\x03\x04") {
            TableFormat::Xlsx
        } else {
            TableFormat::Csv
        }
    }
}

/// How many rows may come before the header.
const HEADER_SEARCH: usize = 10;

/// Reads a plan file into its items within `limits`; every problem (header, cells, encoding) is
/// named.
pub fn read_plan(
    bytes: &[u8],
    format: TableFormat,
    limits: &Limits,
) -> Result<Vec<PlanItem>, PlanFileError> {
    limits.check_size(bytes.len() as u64)?;
    let rows = match format {
        TableFormat::Csv => csv_rows(bytes, limits)?,
        TableFormat::Xlsx => xlsx_rows(bytes, limits)?,
    };
    let mut first_problems = None;
    for (i, (number, header)) in rows.iter().take(HEADER_SEARCH).enumerate() {
        if header.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        match columns_of(header, *number) {
            Ok(columns) => return Ok(parse_items(rows.into_iter().skip(i + 1), columns)?),
            Err(problems) => {
                first_problems.get_or_insert(problems);
            }
        }
    }
    Err(first_problems
        .unwrap_or_else(|| {
            vec![PlanError {
                row: 0,
                column: COLUMNS[0].0.to_owned(),
                message: "文件中没有表格内容".to_owned(),
            }]
        })
        .into())
}

/// A problem with the file as a whole.
fn file_problem(message: String) -> PlanFileError {
    PlanFileError::Problems(vec![PlanError {
        row: 0,
        column: "文件".to_owned(),
        message,
    }])
}

/// CSV lines as rows numbered from 1; UTF-8 (a byte-order mark is dropped) or else GB18030. A
/// non-empty field beyond the limits stops the reading; empty ones there (the padding of a sheet
/// saved as CSV) are dropped.
fn csv_rows(bytes: &[u8], limits: &Limits) -> Result<Vec<(usize, Vec<String>)>, PlanFileError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text.trim_start_matches('\u{feff}')),
        Err(_) => {
            let (text, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                return Err(file_problem(
                    "文件既不是 UTF-8 也不是 GB18030 编码的文本".to_owned(),
                ));
            }
            text
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut count = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(file_problem(format!("CSV 格式错误：{e}"))),
        }
        count += 1;
        let mut cells = Vec::new();
        for (i, field) in record.iter().enumerate() {
            if !field.trim().is_empty() {
                limits.check_cell(count, i + 1)?;
                cells.resize(i, String::new());
                cells.push(field.to_owned());
            }
        }
        if cells.is_empty() {
            continue;
        }
        let line = record.position().map_or(count, |p| p.line() as usize);
        rows.push((line, cells));
    }
    Ok(rows)
}

/// The first sheet's rows, numbered as Excel shows them, read cell by cell within the limits. Cells
/// of a merged range other than its first are empty, which is how merged key-task cells read.
fn xlsx_rows(bytes: &[u8], limits: &Limits) -> Result<Vec<(usize, Vec<String>)>, PlanFileError> {
    let mut rows = Vec::new();
    crate::sheet::xlsx_rows(Cursor::new(bytes), limits, |number, cells| {
        rows.push((number, cells.iter().map(cell_text).collect()));
        true
    })
    .map_err(|e| match e {
        SheetError::Limit(limit) => PlanFileError::Limit(limit),
        other => file_problem(other.to_string()),
    })?;
    Ok(rows)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        // A date cell: the deadline column as a real Excel date.
        Data::DateTime(d) => d.as_datetime().map_or_else(
            || d.as_f64().to_string(),
            |t| t.format("%Y-%m-%d").to_string(),
        ),
        Data::Error(e) => format!("#{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;
    use crate::plan::Due;
    use crate::sheet::{DEFAULT_MAX_UPLOAD, LimitError, MIB};

    const CSV: &str = "附件：2021年政务服务工作任务分解,,,,\n\
        重点任务,具体工作,牵头单位,配合单位,完成时限\n\
        （一）甲,第一项,区司法局、区政府职转办,镇政府,持续推进\n\
        ,第二项,区司法局,,2021年6月30日\n";

    fn limits() -> Limits {
        Limits::plans(DEFAULT_MAX_UPLOAD)
    }

    fn problems(result: Result<Vec<PlanItem>, PlanFileError>) -> Vec<PlanError> {
        match result {
            Err(PlanFileError::Problems(problems)) => problems,
            other => panic!("problems expected, got {other:?}"),
        }
    }

    fn limit(result: Result<Vec<PlanItem>, PlanFileError>) -> LimitError {
        match result {
            Err(PlanFileError::Limit(e)) => e,
            other => panic!("a limit expected, got {other:?}"),
        }
    }

    /// A workbook of one sheet whose `<sheetData>` is `rows`, written in pieces of `repeat` times
    /// `filler` after them (so a bomb is written without holding it), deflated.
    fn workbook(rows: &str, filler: &[u8], repeat: usize) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let ns = "http://schemas.openxmlformats.org";
        let parts = [
            (
                "[Content_Types].xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{ns}/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#
                ),
            ),
            (
                "_rels/.rels",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
                ),
            ),
            (
                "xl/workbook.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{ns}/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#
                ),
            ),
        ];
        for (name, text) in parts {
            zip.start_file(name, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        write!(
            zip,
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}/spreadsheetml/2006/main"><sheetData>{rows}"#
        )
        .unwrap();
        for _ in 0..repeat {
            zip.write_all(filler).unwrap();
        }
        zip.write_all(b"</sheetData></worksheet>").unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn text_cell(at: &str, text: &str) -> String {
        format!(r#"<c r="{at}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    #[test]
    fn csv_in_utf8_with_a_title_row_and_in_gb18030() {
        let items = read_plan(CSV.as_bytes(), TableFormat::Csv, &limits()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].key_task, "（一）甲");
        assert_eq!(items[1].row, 4);
        let (gbk, _, _) = encoding_rs::GB18030.encode(CSV);
        assert_eq!(read_plan(&gbk, TableFormat::Csv, &limits()).unwrap(), items);
    }

    #[test]
    fn problems_are_named() {
        let bad = "重点任务,具体工作,牵头单位,配合单位,完成时限\n（一）甲,一,区司法局,,明年\n";
        let errors = problems(read_plan(bad.as_bytes(), TableFormat::Csv, &limits()));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].row, 2);
        assert_eq!(errors[0].column, "完成时限");
        let errors = problems(read_plan("a,b\n".as_bytes(), TableFormat::Csv, &limits()));
        assert_eq!(errors.len(), 5, "{errors:?}");
        let errors = problems(read_plan(b"PK\x03\x04junk", TableFormat::Xlsx, &limits()));
        assert!(errors[0].message.contains("xlsx"), "{errors:?}");
        assert_eq!(TableFormat::of(Some("计划.XLSX"), b""), TableFormat::Xlsx);
        assert_eq!(TableFormat::of(None, b"a,b"), TableFormat::Csv);
        assert!(matches!(
            read_plan(CSV.as_bytes(), TableFormat::Csv, &limits()).unwrap()[0].due,
            Due::Ongoing
        ));
    }

    #[test]
    fn an_xlsx_read_cell_by_cell_skips_the_title_and_carries_merged_key_tasks_down() {
        let header: String = ["重点任务", "具体工作", "牵头单位", "配合单位", "完成时限"]
            .iter()
            .zip(["A2", "B2", "C2", "D2", "E2"])
            .map(|(t, at)| text_cell(at, t))
            .collect();
        let rows = format!(
            r#"<row r="1">{}</row><row r="2">{header}</row><row r="3">{}{}{}{}</row><row r="4"><c r="A4" s="1"/>{}{}<c r="E4"><v>44377</v></c></row>"#,
            text_cell("A1", "附件：2021年政务服务工作任务分解"),
            text_cell("A3", "（一）甲"),
            text_cell("B3", "第一项"),
            text_cell("C3", "区司法局"),
            text_cell("E3", "持续推进"),
            text_cell("B4", "第二项"),
            text_cell("C4", "区司法局"),
        );
        let items = read_plan(&workbook(&rows, b"", 0), TableFormat::Xlsx, &limits());
        // 44377 without a date style is a plain number, not a deadline: its row is named.
        let errors = problems(items);
        assert_eq!((errors[0].row, errors[0].column.as_str()), (4, "完成时限"));
        let dated = rows.replace(
            r#"<c r="E4"><v>44377</v></c>"#,
            &text_cell("E4", "2021年6月30日"),
        );
        let items = read_plan(&workbook(&dated, b"", 0), TableFormat::Xlsx, &limits()).unwrap();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[1].key_task, "（一）甲");
        assert_eq!(items[1].row, 4);
        assert_eq!(
            items[1].due.date().map(|d| d.to_string()),
            Some("2021-06-30".to_owned())
        );
    }

    #[test]
    fn a_cell_beyond_the_extent_is_refused_as_soon_as_it_is_seen() {
        // A1 and XFD1048576: a dense range of this extent is 17 billion cells.
        let far = format!(
            r#"<row r="1">{}</row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>"#,
            text_cell("A1", "重点任务")
        );
        let e = limit(read_plan(
            &workbook(&far, b"", 0),
            TableFormat::Xlsx,
            &limits(),
        ));
        assert_eq!(e, LimitError::TooManyRows { limit: 2_000 });
        let wide = format!(r#"<row r="1">{}</row>"#, text_cell("AZ1", "x"));
        let e = limit(read_plan(
            &workbook(&wide, b"", 0),
            TableFormat::Xlsx,
            &limits(),
        ));
        assert_eq!(e, LimitError::TooManyColumns { limit: 50 });
        // Cells without a value (formatting, a merged range) count for nothing.
        let formatted = format!(
            r#"<row r="1">{}</row><row r="1048576"><c r="XFD1048576" s="1"></c></row>"#,
            text_cell("A1", "x")
        );
        assert!(
            problems(read_plan(
                &workbook(&formatted, b"", 0),
                TableFormat::Xlsx,
                &limits()
            ))[0]
                .message
                .contains("表头")
        );
    }

    #[test]
    fn a_csv_beyond_the_extent_is_refused_and_its_empty_padding_is_not() {
        let mut long = String::from("重点任务,具体工作,牵头单位,配合单位,完成时限\n");
        for i in 0..2_000 {
            long.push_str(&format!("（一）甲,第{i}项,区司法局,,持续推进\n"));
        }
        let e = limit(read_plan(long.as_bytes(), TableFormat::Csv, &limits()));
        assert_eq!(e, LimitError::TooManyRows { limit: 2_000 });
        assert!(e.to_string().contains("2000"), "{e}");
        let wide = format!("{}x\n", ",".repeat(50));
        let e = limit(read_plan(wide.as_bytes(), TableFormat::Csv, &limits()));
        assert_eq!(e, LimitError::TooManyColumns { limit: 50 });
        // A sheet saved as CSV pads every line to its widest and keeps formatted empty rows.
        let padded = CSV.replace('\n', &format!("{}\n", ",".repeat(200))) + &",,,,\n".repeat(5_000);
        assert_eq!(
            read_plan(padded.as_bytes(), TableFormat::Csv, &limits())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_file_over_the_upload_limit_or_inflating_past_its_cap_is_refused() {
        let small = Limits::plans(MIB);
        let big = vec![b' '; (MIB + 1) as usize];
        assert_eq!(
            limit(read_plan(&big, TableFormat::Csv, &small)),
            LimitError::TooLarge { limit: MIB }
        );
        // 11 MiB of whitespace inside sheetData deflates to a few kilobytes.
        let bomb = workbook("", &[b' '; 64 * 1024], 11 * 16);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(
            limit(read_plan(&bomb, TableFormat::Xlsx, &small)),
            LimitError::WorkbookTooLarge { limit: 10 * MIB }
        );
        // Within the cap the same workbook is read (and is empty).
        let within = workbook("", &[b' '; 64 * 1024], 9 * 16);
        assert!(
            problems(read_plan(&within, TableFormat::Xlsx, &small))[0]
                .message
                .contains("没有表格内容")
        );
    }
}
