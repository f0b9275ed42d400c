//! The ledger's words (差评整改台账): the store's [`LedgerEntry`] facts as the cells of the sheet a
//! town office sends upward — Chinese labels from the workflow files, local times, 是/否.

use bihuan_core::Engine;
use bihuan_store::{Choice, LedgerEntry, ReviewOutcome};
use chrono::NaiveDateTime;

/// The ledger's columns, in order, with their widths in an Excel sheet.
pub const LEDGER_COLUMNS: [(&str, f64); 20] = [
    ("办件编号", 22.0),
    ("事项名称", 30.0),
    ("评价等级", 10.0),
    ("评价渠道", 12.0),
    ("评价时间", 17.0),
    ("承办单位", 22.0),
    ("当前状态", 14.0),
    ("受理时间", 17.0),
    ("转办时间", 17.0),
    ("整改时间", 17.0),
    ("整改措施", 30.0),
    ("佐证材料", 40.0),
    ("限期整改", 24.0),
    ("反馈时间", 17.0),
    ("回访方式", 10.0),
    ("评议结果", 10.0),
    ("是否超期", 8.0),
    ("办结时间", 17.0),
    ("评价单位", 22.0),
    ("工单编号", 38.0),
];

/// How times read in the CSV (the workbook shows the same through its cell format).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M";

/// One cell of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerCell {
    /// Words (empty when the step has not happened).
    Text(String),
    /// A local time: a real date cell in a workbook, so it sorts and filters as one.
    Time(NaiveDateTime),
}

/// The cells of one entry, in the order of [`LEDGER_COLUMNS`].
pub fn ledger_cells(engine: &Engine, e: &LedgerEntry) -> [LedgerCell; 20] {
    let tz = engine.calendar().tz();
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| match at {
        Some(at) => LedgerCell::Time(at.with_timezone(&tz).naive_local()),
        None => LedgerCell::Text(String::new()),
    };
    let text = |s: Option<&str>| LedgerCell::Text(s.unwrap_or_default().to_owned());
    let def = engine.workflow(&e.workflow_id);
    let state = def
        .and_then(|d| d.state(&e.state))
        .map_or(e.state.as_str(), |s| s.label.as_str());
    let review = e.review.as_ref().map(|r| match r {
        ReviewOutcome::Satisfied(choice) => label(engine, &e.workflow_id, choice),
        ReviewOutcome::Unsatisfied => "不满意".to_owned(),
        ReviewOutcome::TimedOut => "评议超时".to_owned(),
    });
    [
        text(Some(&e.project_no)),
        text(Some(&e.service_name)),
        text(Some(e.level.label())),
        text(Some(e.channel.label())),
        time(Some(e.rated_at)),
        text(e.unit.as_deref()),
        text(Some(state)),
        time(e.accepted_at),
        time(e.transferred_at),
        time(e.rectified_at),
        text(e.measures.as_deref()),
        LedgerCell::Text(evidence_words(&e.evidence)),
        text(
            e.scheduled
                .map(|(due, done)| scheduled_words(engine, due, done))
                .as_deref(),
        ),
        time(e.visited_at),
        text(
            e.visit_method
                .as_ref()
                .map(|c| label(engine, &e.workflow_id, c))
                .as_deref(),
        ),
        text(review.as_deref()),
        text(Some(if e.overdue { "是" } else { "否" })),
        time(e.closed_at),
        text(Some(&e.origin_unit)),
        LedgerCell::Text(e.case_id.to_string()),
    ]
}

/// 佐证材料 as the ledger says it: each file by name with its SHA-256, so a copy can be checked
/// against the record.
fn evidence_words(files: &[bihuan_core::evidence::EvidenceFile]) -> String {
    files
        .iter()
        .map(|f| format!("{}（SHA-256 {}）", f.name, f.sha256))
        .collect::<Vec<_>>()
        .join("；")
}

/// 限期整改 as the ledger says it: until when, or done when.
fn scheduled_words(
    engine: &Engine,
    due: chrono::NaiveDate,
    done: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let due = bihuan_core::mail::chinese_date(due);
    match done {
        None => format!("限期整改（{due}前）"),
        Some(at) => {
            let at = at.with_timezone(&engine.calendar().tz()).date_naive();
            format!(
                "限期整改已完成（期限{due}，{}完成）",
                bihuan_core::mail::chinese_date(at)
            )
        }
    }
}

/// The label the workflow file gives a recorded choice; its value when the file no longer has it.
fn label(engine: &Engine, workflow: &str, choice: &Choice) -> String {
    engine
        .workflow(workflow)
        .and_then(|d| d.action(&choice.action))
        .and_then(|a| a.field(&choice.field))
        .and_then(|f| f.option_label(&choice.value))
        .map_or_else(|| choice.value.clone(), str::to_owned)
}
