//! `bihuan import ratings FILE`: .csv (UTF-8 with or without BOM, or GB18030/GBK, detected), .json (an
//! array) or .xlsx, with the JSON field names or the Chinese headers as columns.
//!
//! One streamed pass: a reader thread decodes and checks the rows and hands them over in batches through
//! a bounded channel (memory stays flat whatever the file's size) while the store writes the previous
//! batch, all in one transaction. By default a single bad row rolls the whole import back, after every
//! bad row has been named by its line; with `--partial` the good rows are written and the bad ones go to
//! `NAME.rejected.csv` beside the input with the reason for each.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use bihuan_core::rating::Rating;
use bihuan_core::rating_input::{FieldError, parse_rating};
use bihuan_core::{Engine, Limits, csv_safe, sheet};
use bihuan_store::{Clock, Store};
use calamine::Data;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Rows handed from the reader to the store at a time.
const FLUSH: usize = 5000;
/// Batches the reader may run ahead of the store.
const AHEAD: usize = 4;

/// The column names accepted, Chinese and English, and the field each one fills.
const COLUMNS: [(&str, &str); 19] = [
    ("来源", "source"),
    ("来源编号", "source_id"),
    ("办件编号", "project_no"),
    ("事项编码", "service_code"),
    ("事项名称", "service_name"),
    ("单位编码", "unit_code"),
    ("区划代码", "region_code"),
    ("评价渠道", "channel"),
    ("评价等级", "level"),
    ("代码集", "level_code_set"),
    ("评价时间", "rated_at"),
    ("评价次数", "assess_number"),
    ("实名", "real_name"),
    ("评价人类型", "rater_type"),
    ("评价人", "rater_name"),
    ("联系电话", "rater_phone"),
    ("电子邮箱", "rater_email"),
    ("被评价人员", "staff"),
    ("文字评价", "comment"),
];

const REQUIRED: [&str; 10] = [
    "source",
    "source_id",
    "project_no",
    "service_code",
    "service_name",
    "unit_code",
    "region_code",
    "channel",
    "level",
    "rated_at",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    Xlsx,
}

/// A row that failed the checks: its number as people see it (the CSV line, the sheet row, the array
/// element), what is wrong, and the row as read.
#[derive(Debug)]
struct BadRow {
    number: u64,
    errors: Vec<FieldError>,
    row: Value,
}

/// Checked rows on their way from the reader to the store.
#[derive(Debug, Default)]
struct Batch {
    good: Vec<Rating>,
    bad: Vec<BadRow>,
}

/// The reader's end: checks each row and sends them on in batches.
struct Sink {
    tx: mpsc::Sender<Batch>,
    tz: chrono_tz::Tz,
    batch: Batch,
}

impl Sink {
    /// Checks one row; false once the store has stopped listening.
    fn push(&mut self, number: u64, row: Value) -> bool {
        match parse_rating(&row, self.tz) {
            Ok(rating) => self.batch.good.push(rating),
            Err(errors) => self.batch.bad.push(BadRow {
                number,
                errors,
                row,
            }),
        }
        if self.batch.good.len() + self.batch.bad.len() < FLUSH {
            return true;
        }
        self.tx
            .blocking_send(std::mem::take(&mut self.batch))
            .is_ok()
    }

    fn finish(self) {
        // The store may have stopped listening already; then there is no one to tell.
        let _ = self.tx.blocking_send(self.batch);
    }
}

/// `bihuan import ratings`.
pub async fn ratings(
    store: &Store,
    engine: &Engine,
    clock: Clock,
    path: &Path,
    partial: bool,
    limits: Limits,
) -> anyhow::Result<ExitCode> {
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some("xlsx") | Some("xlsm") => Format::Xlsx,
        _ => bail!(
            "{}: only .csv, .json and .xlsx files can be imported",
            path.display()
        ),
    };
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    // Before a byte is read: the same limit as an upload to the server.
    limits
        .check_size(size)
        .map_err(|e| anyhow!("{}：{e}（BIHUAN_MAX_UPLOAD_MB）", path.display()))?;
    let tz = engine.calendar().tz();

    let progress = progress_bar(size, "导入");
    let (mut batches, read) = spawn_reader(path, format, tz, limits, progress.clone())?;
    let mut import = store.begin_ratings_import(engine, clock.now()).await?;
    let mut rejected: Option<Rejected> = None;
    let mut bad_rows = 0u64;
    while let Some(batch) = batches.recv().await {
        for bad in &batch.bad {
            bad_rows += 1;
            if partial {
                if rejected.is_none() {
                    rejected = Some(Rejected::create(path)?);
                }
                if let Some(out) = rejected.as_mut() {
                    out.write(bad.number, &bad.errors, &bad.row)?;
                }
            } else {
                progress.suspend(|| {
                    for e in &bad.errors {
                        eprintln!(
                            "{}:{}: {}：{}",
                            path.display(),
                            bad.number,
                            e.field,
                            e.message
                        );
                    }
                });
            }
        }
        // All or nothing: after the first bad row nothing more is written, but every row is still
        // checked so that every bad one is named.
        if partial || bad_rows == 0 {
            import.add(&batch.good).await.context(NOTHING_IMPORTED)?;
        }
    }
    read.await.context("the file reader stopped")??;
    progress.finish_and_clear();
    if bad_rows > 0 && !partial {
        // Dropping the import rolls its transaction back.
        drop(import);
        eprintln!(
            "{bad_rows} 行有误，未导入任何数据（全部正确才导入；用 --partial 只导入正确的行）"
        );
        return Ok(ExitCode::FAILURE);
    }
    let outcome = import.commit().await.context(NOTHING_IMPORTED)?;
    let mut follow_ups = 0;
    loop {
        let applied = store
            .apply_pending_follow_ups(engine, clock.now(), 1_000)
            .await
            .context("评价已导入；追评将由定时任务继续处理")?;
        if applied == 0 {
            break;
        }
        follow_ups += applied;
    }
    if follow_ups > 0 {
        println!("已处理追评 {follow_ups} 条（计入原差评工单，不另开工单）");
    }
    println!(
        "导入完成：新增 {} 条评价，重复 {} 条，开立差评工单 {} 件{}",
        outcome.inserted,
        outcome.duplicates,
        outcome.cases_opened,
        if bad_rows == 0 {
            String::new()
        } else {
            format!("，{bad_rows} 行有误未导入")
        }
    );
    if let Some(out) = rejected {
        let file = out.finish()?;
        println!("有误的行及原因已写入 {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What a failed write means for the file: it is one transaction, so none of it was kept.
const NOTHING_IMPORTED: &str =
    "写入数据库失败，未导入任何数据（整个文件在一个事务中写入，已全部撤销）";

fn progress_bar(bytes: u64, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {per_sec} 剩余 {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(verb.to_owned());
    bar
}

/// Reads and checks the file on a blocking thread, sending batches through a bounded channel.
fn spawn_reader(
    path: &Path,
    format: Format,
    tz: chrono_tz::Tz,
    limits: Limits,
    progress: ProgressBar,
) -> anyhow::Result<(
    mpsc::Receiver<Batch>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let (tx, rx) = mpsc::channel(AHEAD);
    let path = path.to_path_buf();
    let handle = tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            tx,
            tz,
            batch: Batch::default(),
        };
        match format {
            Format::Csv => read_csv(&path, &limits, &mut sink, &progress),
            Format::Json => read_json(&path, &mut sink, &progress),
            Format::Xlsx => read_xlsx(&path, &limits, &mut sink, &progress),
        }?;
        sink.finish();
        Ok(())
    });
    Ok((rx, handle))
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_counting(path: &Path) -> anyhow::Result<(Counting<BufReader<File>>, Arc<AtomicU64>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = Arc::new(AtomicU64::new(0));
    Ok((
        Counting {
            inner: BufReader::with_capacity(1 << 16, file),
            read: read.clone(),
        },
        read,
    ))
}

/// UTF-8 (with or without BOM) or GB18030, judged by the first 64 KiB.
fn detect_encoding(path: &Path) -> anyhow::Result<&'static encoding_rs::Encoding> {
    let mut head = vec![0u8; 1 << 16];
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0;
    while n < head.len() {
        let got = file.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let head = &head[..n];
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(encoding_rs::UTF_8);
    }
    match std::str::from_utf8(head) {
        Ok(_) => Ok(encoding_rs::UTF_8),
        // Cut in the middle of a character at the end of the sample: still UTF-8.
        Err(e) if e.error_len().is_none() => Ok(encoding_rs::UTF_8),
        Err(_) => Ok(encoding_rs::GB18030),
    }
}

/// Refuses a non-empty cell beyond the limits, naming the file and the limit.
fn check_cell(path: &Path, limits: &Limits, row: usize, column: usize) -> anyhow::Result<()> {
    limits
        .check_cell(row, column)
        .map_err(|e| anyhow!("{}：{e}", path.display()))
}

fn read_csv(
    path: &Path,
    limits: &Limits,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let encoding = detect_encoding(path)?;
    let (counting, read) = open_counting(path)?;
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_sniffing(true)
        .build(counting);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(decoded);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header line", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    for (i, h) in headers.iter().enumerate() {
        if !h.trim().is_empty() {
            check_cell(path, limits, 1, i + 1)?;
        }
    }
    let fields = map_headers(path, &headers)?;
    // The header is the first row; a record's row counts records, not lines (a quoted cell may span
    // several).
    let mut row = 1;
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed CSV", path.display()))?;
        row += 1;
        let number = record.position().map_or(0, |p| p.line());
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if let Some(last) = cells.iter().rposition(|c| !c.trim().is_empty()) {
            check_cell(path, limits, row, last + 1)?;
        }
        progress.set_position(read.load(Ordering::Relaxed));
        if !sink.push(number, flat_row(&fields, &cells)) {
            break;
        }
    }
    Ok(())
}

/// The first sheet read cell by cell within the limits (calamine's dense range of a sheet's extent
/// is never built): its first row is the header.
fn read_xlsx(
    path: &Path,
    limits: &Limits,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // calamine reads the zip itself, so the bytes read are not known as it goes: the bar counts the
    // sheet's rows instead.
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} 第 {pos} 行 {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut fields: Option<Vec<Option<&'static str>>> = None;
    let mut failure = None;
    sheet::xlsx_rows(
        BufReader::with_capacity(1 << 16, file),
        limits,
        |number, row| {
            let cells: Vec<String> = row.iter().map(cell_text).collect();
            let Some(fields) = &fields else {
                match map_headers(path, &cells) {
                    Ok(found) => fields = Some(found),
                    Err(e) => failure = Some(e),
                }
                return failure.is_none();
            };
            if cells.iter().all(|c| c.trim().is_empty()) {
                return true;
            }
            progress.set_position(number as u64);
            sink.push(number as u64, flat_row(fields, &cells))
        },
    )
    .map_err(|e| anyhow!("{}：{e}", path.display()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    if fields.is_none() {
        bail!("{}: the first sheet is empty", path.display());
    }
    Ok(())
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d.as_datetime().map_or_else(
            || d.as_f64().to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn read_json(path: &Path, sink: &mut Sink, progress: &ProgressBar) -> anyhow::Result<()> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Elements<'a> {
        sink: &'a mut Sink,
        progress: &'a ProgressBar,
        read: Arc<AtomicU64>,
    }
    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of ratings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut number = 0;
            while let Some(value) = seq.next_element::<Value>()? {
                number += 1;
                self.progress
                    .set_position(self.read.load(Ordering::Relaxed));
                let value = match value {
                    Value::Object(obj) if !obj.contains_key("rater") => fold_rater(obj),
                    other => other,
                };
                if !self.sink.push(number, value) {
                    break;
                }
            }
            Ok(())
        }
    }
    let (counting, read) = open_counting(path)?;
    let mut de = serde_json::Deserializer::from_reader(counting);
    de.deserialize_seq(Elements {
        sink,
        progress,
        read,
    })
    .with_context(|| format!("{}: not a JSON array of ratings", path.display()))?;
    Ok(())
}

/// The field each column fills (None: ignored), or an error naming the missing columns.
fn map_headers(path: &Path, headers: &[String]) -> anyhow::Result<Vec<Option<&'static str>>> {
    let fields: Vec<Option<&'static str>> = headers
        .iter()
        .map(|h| {
            let h = h.trim().trim_start_matches('\u{feff}');
            COLUMNS
                .iter()
                .find(|(zh, en)| *zh == h || *en == h)
                .map(|(_, en)| *en)
        })
        .collect();
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|f| !fields.contains(&Some(**f)))
        .map(|f| {
            let zh = COLUMNS
                .iter()
                .find(|(_, en)| en == f)
                .map_or("", |(zh, _)| zh);
            format!("{zh}（{f}）")
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: the header line lacks the columns {}",
            path.display(),
            missing.join("、")
        );
    }
    Ok(fields)
}

/// A row of text cells as the rating JSON of docs/API.md.
fn flat_row(fields: &[Option<&'static str>], cells: &[String]) -> Value {
    let mut obj = Map::new();
    for (field, cell) in fields.iter().zip(cells) {
        let (Some(field), cell) = (field, cell.trim()) else {
            continue;
        };
        if cell.is_empty() {
            continue;
        }
        let value = match *field {
            "level" | "assess_number" => cell
                .parse::<u64>()
                .map_or_else(|_| Value::from(cell), Value::from),
            "real_name" => match cell {
                "是" | "true" | "TRUE" | "1" | "Y" | "y" | "实名" => Value::Bool(true),
                "否" | "false" | "FALSE" | "0" | "N" | "n" | "匿名" => Value::Bool(false),
                other => Value::from(other),
            },
            "staff" => Value::from(
                cell.split(['、', ',', '，', ';', '；'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            _ => Value::from(cell),
        };
        obj.insert((*field).to_owned(), value);
    }
    fold_rater(obj)
}

/// Moves `rater_*` and `real_name` into the nested `rater` object.
fn fold_rater(mut obj: Map<String, Value>) -> Value {
    let mut rater = Map::new();
    for (flat, nested) in [
        ("rater_type", "type"),
        ("real_name", "real_name"),
        ("rater_name", "name"),
        ("rater_phone", "phone"),
        ("rater_email", "email"),
    ] {
        if let Some(v) = obj.remove(flat) {
            rater.insert(nested.to_owned(), v);
        }
    }
    if !rater.is_empty() {
        obj.insert("rater".to_owned(), Value::Object(rater));
    }
    Value::Object(obj)
}

/// The file of rows left out by `--partial`, with the reason for each.
struct Rejected {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl Rejected {
    fn create(input: &Path) -> anyhow::Result<Self> {
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("import");
        let path = input.with_file_name(format!("{stem}.rejected.csv"));
        let file =
            File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        let mut writer = csv::Writer::from_writer(file);
        // A BOM so that Excel opens the Chinese text as UTF-8.
        writer.write_record(["\u{feff}行号", "字段", "错误原因", "原始数据"])?;
        Ok(Self { path, writer })
    }

    fn write(
        &mut self,
        number: u64,
        errors: &[bihuan_core::rating_input::FieldError],
        row: &Value,
    ) -> anyhow::Result<()> {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let reasons: Vec<String> = errors
            .iter()
            .map(|e| format!("{}：{}", e.field, e.message))
            .collect();
        // The reasons quote what was sent, which may begin like a formula.
        let record = [
            number.to_string(),
            fields.join("、"),
            reasons.join("；"),
            row.to_string(),
        ];
        self.writer
            .write_record(record.iter().map(|cell| csv_safe(cell).into_owned()))?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<PathBuf> {
        self.writer.flush()?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rejected rows' cells are the line number, field names, "field：reason" and the row as JSON
    /// (`{…}`), none of which begins like a formula today; the file goes through `csv_safe` all the
    /// same, like every CSV the product writes.
    #[test]
    fn the_rejected_rows_file_quotes_a_cell_that_begins_like_a_formula() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Rejected::create(&dir.path().join("ratings.csv")).unwrap();
        let error = FieldError {
            field: "=HYPERLINK(\"http://evil.example/\")".to_owned(),
            message: "无效".to_owned(),
        };
        out.write(2, &[error], &Value::Null).unwrap();
        let file = out.finish().unwrap();
        let mut reader = csv::Reader::from_path(file).unwrap();
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "'=HYPERLINK(\"http://evil.example/\")");
        assert!(row[2].starts_with("'=HYPERLINK("), "{row:?}");
    }

    #[test]
    fn chinese_and_english_headers_fill_the_same_fields() {
        let headers: Vec<String> = [
            "来源",
            "source_id",
            "办件编号",
            "事项编码",
            "事项名称",
            "单位编码",
            "区划代码",
            "评价渠道",
            "评价等级",
            "评价时间",
            "实名",
            "联系电话",
            "备注",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let fields = map_headers(Path::new("x.csv"), &headers).unwrap();
        assert_eq!(fields[0], Some("source"));
        assert_eq!(fields[12], None, "unknown columns are ignored");
        let cells: Vec<String> = [
            "ykb",
            "1",
            "p",
            "s",
            "名",
            "u",
            "r",
            "移动端",
            "4",
            "2021-05-06 10:00:00",
            "是",
            "13800001234",
            "x",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let row = flat_row(&fields, &cells);
        assert_eq!(row["level"], 4);
        assert_eq!(row["rater"]["real_name"], true);
        assert_eq!(row["rater"]["phone"], "13800001234");
        let missing = map_headers(Path::new("x.csv"), &headers[..3])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("事项编码（service_code）"), "{missing}");
    }
}
