//! A plan's file as offices exchange it — CSV (UTF-8, or GB18030 as Excel saves it in Chinese
//! Windows) or an .xlsx workbook — read into its work items. Pure: bytes in, items or every problem out.
//!
//! The header row may sit below a title row ("附件：2021年政务服务工作任务分解"): it is the first row
//! (of the first ten) carrying every column.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

use super::{COLUMNS, PlanError, PlanItem, columns_of, parse_items};

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

/// Reads a plan file into its items; every problem (header, cells, encoding) is named.
pub fn read_plan(bytes: &[u8], format: TableFormat) -> Result<Vec<PlanItem>, Vec<PlanError>> {
    let rows = match format {
        TableFormat::Csv => csv_rows(bytes),
        TableFormat::Xlsx => xlsx_rows(bytes),
    }
    .map_err(|message| {
        vec![PlanError {
            row: 0,
            column: "文件".to_owned(),
            message,
        }]
    })?;
    let mut first_problems = None;
    for (i, (number, header)) in rows.iter().take(HEADER_SEARCH).enumerate() {
        if header.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        match columns_of(header, *number) {
            Ok(columns) => return parse_items(rows.into_iter().skip(i + 1), columns),
            Err(problems) => {
                first_problems.get_or_insert(problems);
            }
        }
    }
    Err(first_problems.unwrap_or_else(|| {
        vec![PlanError {
            row: 0,
            column: COLUMNS[0].0.to_owned(),
            message: "文件中没有表格内容".to_owned(),
        }]
    }))
}

/// CSV lines as rows numbered from 1; UTF-8 (a byte-order mark is dropped) or else GB18030.
fn csv_rows(bytes: &[u8]) -> Result<Vec<(usize, Vec<String>)>, String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.trim_start_matches('\u{feff}').to_owned(),
        Err(_) => {
            let (text, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                return Err("文件既不是 UTF-8 也不是 GB18030 编码的文本".to_owned());
            }
            text.into_owned()
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("CSV 格式错误：{e}"))?;
        let line = record
            .position()
            .map_or(rows.len() + 1, |p| p.line() as usize);
        rows.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(rows)
}

/// The first sheet's rows, numbered as Excel shows them. Cells of a merged range other than its
/// first are empty, which is how merged key-task cells read.
fn xlsx_rows(bytes: &[u8]) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| format!("不是有效的 xlsx 工作簿：{e}"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| "工作簿中没有工作表".to_owned())?
        .map_err(|e| format!("无法读取第一个工作表：{e}"))?;
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, row)| (first_row + i + 1, row.iter().map(cell_text).collect()))
        .collect())
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

    use super::*;
    use crate::plan::Due;

    const CSV: &str = "附件：2021年政务服务工作任务分解,,,,\n\
        重点任务,具体工作,牵头单位,配合单位,完成时限\n\
        （一）甲,第一项,区司法局、区政府职转办,镇政府,持续推进\n\
        ,第二项,区司法局,,2021年6月30日\n";

    #[test]
    fn csv_in_utf8_with_a_title_row_and_in_gb18030() {
        let items = read_plan(CSV.as_bytes(), TableFormat::Csv).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].key_task, "（一）甲");
        assert_eq!(items[1].row, 4);
        let (gbk, _, _) = encoding_rs::GB18030.encode(CSV);
        assert_eq!(read_plan(&gbk, TableFormat::Csv).unwrap(), items);
    }

    #[test]
    fn problems_are_named() {
        let bad = "重点任务,具体工作,牵头单位,配合单位,完成时限\n（一）甲,一,区司法局,,明年\n";
        let errors = read_plan(bad.as_bytes(), TableFormat::Csv).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].row, 2);
        assert_eq!(errors[0].column, "完成时限");
        let errors = read_plan("a,b\n".as_bytes(), TableFormat::Csv).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        let errors = read_plan(b"PK\x03\x04junk", TableFormat::Xlsx).unwrap_err();
        assert!(errors[0].message.contains("xlsx"), "{errors:?}");
        assert_eq!(TableFormat::of(Some("计划.XLSX"), b""), TableFormat::Xlsx);
        assert_eq!(TableFormat::of(None, b"a,b"), TableFormat::Csv);
        assert!(matches!(
            read_plan(CSV.as_bytes(), TableFormat::Csv).unwrap()[0].due,
            Due::Ongoing
        ));
    }
}
