//! 任务分解: a work plan's table read into work items ([`table`] reads the CSV and xlsx files), the
//! targets its items state ([`target`]) and when an item next owes a report or its completion
//! ([`schedule`]).
//!
//! Columns 重点任务, 具体工作, 牵头单位, 配合单位, 完成时限 (or key_task, title, lead_units, co_units,
//! deadline). Real tables merge the key-task cells: an empty 重点任务 continues the key task above it.
//! Unit cells list several units separated by 、，, ; or ；. A deadline is a date (2021年6月30日,
//! 2021-06-30, 2021/6/30), 持续推进 (ongoing) or 按时序推进 (scheduled: no fixed date, reported on like
//! ongoing items); anything else is an error naming its row.

use chrono::NaiveDate;
use serde::Serialize;

pub mod schedule;
pub mod table;
pub mod target;

pub use schedule::{DEFAULT_REPORT_MONTHS, Owed, TaskClock, next_deadline};
pub use table::{TableFormat, read_plan};
pub use target::{Comparison, Target, metric_of, number_text, targets_in};

/// The columns of a plan table: (Chinese header, English header, what the column holds).
pub const COLUMNS: [(&str, &str); 5] = [
    ("重点任务", "key_task"),
    ("具体工作", "title"),
    ("牵头单位", "lead_units"),
    ("配合单位", "co_units"),
    ("完成时限", "deadline"),
];

/// When a work item is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "date", rename_all = "snake_case")]
pub enum Due {
    /// By the end of this day.
    Date(NaiveDate),
    /// 持续推进: no end; progress is reported every period.
    Ongoing,
    /// 按时序推进: no fixed date; reported on like ongoing items.
    Scheduled,
}

impl Due {
    /// The due date, if it has one.
    pub fn date(self) -> Option<NaiveDate> {
        match self {
            Due::Date(d) => Some(d),
            Due::Ongoing | Due::Scheduled => None,
        }
    }

    /// As the table writes it: 2021年6月30日, 持续推进, 按时序推进.
    pub fn text(self) -> String {
        match self {
            Due::Date(d) => crate::mail::chinese_day(d),
            Due::Ongoing => ONGOING.to_owned(),
            Due::Scheduled => SCHEDULED.to_owned(),
        }
    }

    /// Whether the item owes a progress report every period instead of meeting a date.
    pub fn reports_periodically(self) -> bool {
        !matches!(self, Due::Date(_))
    }
}

const ONGOING: &str = "持续推进";
const SCHEDULED: &str = "按时序推进";

/// One work item (具体工作) of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// The row as people number it in the file (the CSV line, the sheet row).
    pub row: usize,
    /// 重点任务, carried down over merged cells.
    pub key_task: String,
    /// 具体工作.
    pub title: String,
    /// 牵头单位, at least one.
    pub lead_units: Vec<String>,
    /// 配合单位, possibly none.
    pub co_units: Vec<String>,
    /// 完成时限.
    pub due: Due,
}

/// A problem with one cell (or the header) of a plan table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("第 {row} 行“{column}”：{message}")]
pub struct PlanError {
    /// The row as people number it (the header's row for a header problem).
    pub row: usize,
    /// The column's Chinese header.
    pub column: String,
    /// What is wrong, in Chinese.
    pub message: String,
}

/// Why a plan's table was not read: a file beyond a limit (nothing more of it was read), or every
/// problem of its header and cells.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanFileError {
    /// The file is too large, inflates too far, or has cells beyond the table's extent.
    #[error(transparent)]
    Limit(#[from] crate::sheet::LimitError),
    /// Problems with the table, each named by row and column.
    #[error("计划有 {} 处错误", .0.len())]
    Problems(Vec<PlanError>),
}

impl From<Vec<PlanError>> for PlanFileError {
    fn from(problems: Vec<PlanError>) -> Self {
        PlanFileError::Problems(problems)
    }
}

/// Where each column is in a header row (by Chinese or English name, in any order, surrounding
/// spaces and a byte-order mark ignored). Every missing column is named.
pub fn columns_of(header: &[String], row: usize) -> Result<[usize; 5], Vec<PlanError>> {
    let clean = |h: &str| h.trim().trim_start_matches('\u{feff}').trim().to_owned();
    let names: Vec<String> = header.iter().map(|h| clean(h)).collect();
    let mut found = [0usize; 5];
    let mut missing = Vec::new();
    for (i, (zh, en)) in COLUMNS.iter().enumerate() {
        match names
            .iter()
            .position(|n| n == zh || n.eq_ignore_ascii_case(en))
        {
            Some(at) => found[i] = at,
            None => missing.push(PlanError {
                row,
                column: (*zh).to_owned(),
                message: format!("表头缺少“{zh}”列（或 {en}）"),
            }),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

/// The units a cell names, in order, each once.
pub fn split_units(cell: &str) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for name in cell
        .split(['、', '，', ',', ';', '；'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !units.iter().any(|u| u == name) {
            units.push(name.to_owned());
        }
    }
    units
}

/// A deadline cell.
pub fn parse_due(cell: &str) -> Result<Due, String> {
    let text: String = cell.chars().filter(|c| !c.is_whitespace()).collect();
    match text.as_str() {
        "" => return Err("完成时限为空".to_owned()),
        ONGOING => return Ok(Due::Ongoing),
        SCHEDULED => return Ok(Due::Scheduled),
        _ => {}
    }
    let parts: Option<(i32, u32, u32)> = if let Some(rest) = text.strip_suffix('日') {
        let (y, rest) = rest.split_once('年').unzip();
        let (m, d) = rest.and_then(|r| r.split_once('月')).unzip();
        y.zip(m)
            .zip(d)
            .and_then(|((y, m), d)| Some((y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)))
    } else {
        let fields: Vec<&str> = text.split(['-', '/']).collect();
        match fields.as_slice() {
            [y, m, d] if y.len() == 4 => {
                (|| Some((y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)))()
            }
            _ => None,
        }
    };
    let Some((y, m, d)) = parts else {
        // The cell as typed, but no more than a date's worth of it.
        let shown: String = cell.chars().take(30).collect();
        return Err(format!(
            "“{shown}”不是完成时限：应为日期（2021年6月30日、2021-06-30 或 2021/6/30）、“持续推进”或“按时序推进”"
        ));
    };
    NaiveDate::from_ymd_opt(y, m, d)
        .map(Due::Date)
        .ok_or_else(|| format!("“{cell}”不是有效日期"))
}

/// The longest text each column may hold (重点任务, 具体工作, 牵头单位, 配合单位, 完成时限): a
/// work item's words are a sentence or two, not a document.
pub const CELL_MAX_CHARS: [usize; 5] = [500, 2000, 500, 1000, 50];

/// The longest name of a unit a cell names.
pub const UNIT_NAME_MAX_CHARS: usize = 100;

/// What is too long in an item's five texts (in the columns' order): a cell over its
/// [`CELL_MAX_CHARS`], a unit name over [`UNIT_NAME_MAX_CHARS`]; by column index.
pub fn cell_problems(texts: [&str; 5]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (column, (text, max)) in texts.iter().zip(CELL_MAX_CHARS).enumerate() {
        let chars = text.chars().count();
        if text.contains('\0') {
            problems.push((column, "含有不允许的 NUL 字符".to_owned()));
        }
        if chars > max {
            problems.push((column, format!("最多 {max} 个字符，实际 {chars} 个")));
        }
    }
    for column in [2, 3] {
        if let Some(long) = split_units(texts[column])
            .iter()
            .find(|n| n.chars().count() > UNIT_NAME_MAX_CHARS)
        {
            let shown: String = long.chars().take(20).collect();
            problems.push((
                column,
                format!("单位名称“{shown}…”过长：最多 {UNIT_NAME_MAX_CHARS} 个字符"),
            ));
        }
    }
    problems
}

/// Reads a plan's data rows (each with its number as people see it, cells in the header's order given
/// by `columns`). Blank rows are skipped. Every problem is named, not only the first.
pub fn parse_items(
    rows: impl IntoIterator<Item = (usize, Vec<String>)>,
    columns: [usize; 5],
) -> Result<Vec<PlanItem>, Vec<PlanError>> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut key_task: Option<String> = None;
    for (row, cells) in rows {
        let cell = |i: usize| {
            cells
                .get(columns[i])
                .map(|c| c.trim().to_owned())
                .unwrap_or_default()
        };
        let texts: Vec<String> = (0..5).map(cell).collect();
        if texts.iter().all(String::is_empty) {
            continue;
        }
        let mut problem = |column: usize, message: String| {
            errors.push(PlanError {
                row,
                column: COLUMNS[column].0.to_owned(),
                message,
            });
        };
        if !texts[0].is_empty() {
            key_task = Some(texts[0].clone());
        }
        let Some(key) = key_task.clone() else {
            problem(
                0,
                "第一项工作没有重点任务（合并单元格只能延续上方的重点任务）".to_owned(),
            );
            continue;
        };
        if texts[1].is_empty() {
            problem(1, "具体工作为空".to_owned());
        }
        for (column, message) in
            cell_problems([&texts[0], &texts[1], &texts[2], &texts[3], &texts[4]])
        {
            problem(column, message);
        }
        let lead_units = split_units(&texts[2]);
        if lead_units.is_empty() {
            problem(2, "没有牵头单位".to_owned());
        }

        let due = parse_due(&texts[4]).map_err(|m| problem(4, m)).ok();
        if let (Some(due), false, false) = (due, texts[1].is_empty(), lead_units.is_empty()) {
            items.push(PlanItem {
                row,
                key_task: key,
                title: texts[1].clone(),
                lead_units,
                co_units: split_units(&texts[3]),
                due,
            });
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

/// A plan's name and year from its file name when none is given: `shaba-2021.csv` → ("shaba-2021",
/// 2021); the year is the first 20xx in the name.
pub fn name_and_year_of_file(file_name: &str) -> (String, Option<i32>) {
    let stem = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem)
        .to_owned();
    let digits: Vec<char> = stem.chars().collect();
    let year = digits.windows(4).find_map(|w| {
        let text: String = w.iter().collect();
        (text.starts_with("20") && text.chars().all(|c| c.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    });
    (stem, year)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Due {
        Due::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    #[test]
    fn deadlines() {
        let good = [
            ("2021年6月30日", date(2021, 6, 30)),
            (" 2021年12月31日 ", date(2021, 12, 31)),
            ("2021-06-30", date(2021, 6, 30)),
            ("2021/6/30", date(2021, 6, 30)),
            ("持续推进", Due::Ongoing),
            ("按时序推进", Due::Scheduled),
        ];
        for (text, due) in good {
            assert_eq!(parse_due(text), Ok(due), "{text}");
        }
        for bad in [
            "",
            "年底前",
            "2021年2月30日",
            "2021-13-01",
            "6/30/2021",
            "2021年6月",
            "尽快",
        ] {
            assert!(parse_due(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_cells() {
        let table = [
            ("区政府职转办、区司法局", vec!["区政府职转办", "区司法局"]),
            (
                "区人力社保局、区医保局，黔江区沙坝镇人民政府",
                vec!["区人力社保局", "区医保局", "黔江区沙坝镇人民政府"],
            ),
            ("甲; 乙；丙,甲", vec!["甲", "乙", "丙"]),
            ("  ", vec![]),
        ];
        for (cell, units) in table {
            assert_eq!(split_units(cell), units, "{cell}");
        }
    }

    #[test]
    fn cells_too_long_or_holding_a_nul_are_named_by_column() {
        let long_title = "字".repeat(CELL_MAX_CHARS[1] + 1);
        let table: [([&str; 5], Vec<usize>); 3] = [
            (
                ["（一）改革", "推进", "区司法局", "", "2021年6月底前"],
                vec![],
            ),
            (
                ["（一）改革", &long_title, "区司法局", "", "2021年6月底前"],
                vec![1],
            ),
            (
                ["（一）改\0革", "推进", "区司法局", "乙\0", "2021年6月底前"],
                vec![0, 3],
            ),
        ];
        for (cells, columns) in table {
            let found: Vec<usize> = cell_problems(cells).into_iter().map(|(c, _)| c).collect();
            assert_eq!(found, columns, "{cells:?}");
        }
    }

    fn row(n: usize, cells: [&str; 5]) -> (usize, Vec<String>) {
        (n, cells.iter().map(|c| (*c).to_owned()).collect())
    }

    #[test]
    fn merged_key_task_cells_continue_the_one_above() {
        let items = parse_items(
            [
                row(2, ["（一）甲", "一", "区司法局", "", "持续推进"]),
                row(3, ["", "二", "区司法局", "镇政府", "2021年6月30日"]),
                row(4, ["", "", "", "", ""]),
                row(5, ["（二）乙", "三", "区行政服务中心", "", "按时序推进"]),
            ],
            [0, 1, 2, 3, 4],
        )
        .unwrap();
        let keys: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.key_task.as_str(), i.title.as_str()))
            .collect();
        assert_eq!(
            keys,
            [("（一）甲", "一"), ("（一）甲", "二"), ("（二）乙", "三")]
        );
        assert_eq!(items[1].co_units, ["镇政府"]);
        assert_eq!(items[2].row, 5);
    }

    #[test]
    fn every_bad_row_is_named() {
        let errors = parse_items(
            [
                row(2, ["", "一", "区司法局", "", "持续推进"]),
                row(3, ["（一）甲", "二", "区司法局", "", "年底"]),
                row(4, ["", "", "区司法局", "", "持续推进"]),
                row(5, ["", "三", "", "", "2021/2/30"]),
            ],
            [0, 1, 2, 3, 4],
        )
        .unwrap_err();
        let named: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert_eq!(
            named,
            [
                (2, "重点任务"),
                (3, "完成时限"),
                (4, "具体工作"),
                (5, "牵头单位"),
                (5, "完成时限")
            ]
        );
        assert_eq!(
            errors[1].to_string(),
            "第 3 行“完成时限”：“年底”不是完成时限：应为日期（2021年6月30日、2021-06-30 或 2021/6/30）、“持续推进”或“按时序推进”"
        );
    }

    #[test]
    fn headers_in_chinese_or_english_in_any_order() {
        let header = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            columns_of(
                &header(&[
                    "\u{feff}重点任务",
                    "具体工作",
                    "牵头单位",
                    "配合单位",
                    "完成时限"
                ]),
                1
            ),
            Ok([0, 1, 2, 3, 4])
        );
        assert_eq!(
            columns_of(
                &header(&["deadline", "title", "KEY_TASK", "co_units", "lead_units"]),
                1
            ),
            Ok([2, 1, 4, 3, 0])
        );
        let missing = columns_of(&header(&["重点任务", "具体工作"]), 1).unwrap_err();
        let names: Vec<&str> = missing.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(names, ["牵头单位", "配合单位", "完成时限"]);
    }

    #[test]
    fn name_and_year_from_the_file_name() {
        assert_eq!(
            name_and_year_of_file("workflows/plans/shaba-2021.csv"),
            ("shaba-2021".into(), Some(2021))
        );
        assert_eq!(
            name_and_year_of_file("2022年任务分解.xlsx"),
            ("2022年任务分解".into(), Some(2022))
        );
        assert_eq!(name_and_year_of_file("plan.csv"), ("plan".into(), None));
    }
}
