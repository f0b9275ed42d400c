//! `bihuan report`: the metrics of a period by unit, with a total, as an aligned table, JSON or xlsx.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bihuan_core::metrics::{Counts, TABLE_COLUMNS, figures, table_cells};
use bihuan_store::{CaseScope, GroupBy, MetricsQuery, MetricsRow, Store};
use chrono::NaiveDate;
use unicode_width::UnicodeWidthStr;

/// What `report` was asked for.
#[derive(Debug)]
pub struct ReportArgs {
    pub from: String,
    pub to: String,
    pub unit: Option<String>,
    pub format: String,
    pub out: Option<PathBuf>,
}

fn date(flag: &str, text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("{flag} {text}: not a date such as 2021-01-31"))
}

/// Runs the report against `store`.
pub async fn report(store: &Store, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let from = date("--from", &args.from)?;
    let to = date("--to", &args.to)?;
    if from > to {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    if !["table", "json", "xlsx"].contains(&args.format.as_str()) {
        bail!("--format {}: use table, json or xlsx", args.format);
    }
    if let Some(unit) = &args.unit
        && store.unit(unit).await?.is_none()
    {
        bail!("--unit {unit}: no such unit");
    }
    let query = MetricsQuery {
        from: Some(from),
        to: Some(to),
        unit: args.unit.clone(),
        group_by: GroupBy::Unit,
    };
    let mut rows = store.metrics(&CaseScope::All, &query).await?;
    let mut total = Counts::default();
    for row in &rows {
        total += row.counts;
    }
    rows.push(MetricsRow {
        group: "all".into(),
        label: "合计".into(),
        counts: total,
    });
    let bytes = match args.format.as_str() {
        "json" => {
            let mut value = bihuan_web::metrics_json(&rows);
            value["from"] = from.to_string().into();
            value["to"] = to.to_string().into();
            value["unit"] = args.unit.clone().into();
            let mut text = serde_json::to_string_pretty(&value)?;
            text.push('\n');
            text.into_bytes()
        }
        "xlsx" => bihuan_web::metrics_workbook(&rows).map_err(anyhow::Error::msg)?,
        _ => table(&rows, from, to, args.unit.as_deref()).into_bytes(),
    };
    match (&args.out, args.format.as_str()) {
        (Some(path), _) => {
            std::fs::write(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("报表已写入 {}", path.display());
        }
        (None, "xlsx") => bail!("--format xlsx needs --out FILE"),
        (None, _) => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows as a table whose columns line up in a terminal: Chinese characters are two columns wide.
fn table(rows: &[MetricsRow], from: NaiveDate, to: NaiveDate, unit: Option<&str>) -> String {
    let mut header = vec!["单位".to_owned()];
    header.extend(TABLE_COLUMNS.iter().map(|c| (*c).to_owned()));
    let mut lines = vec![header];
    for row in rows {
        let mut line = vec![row.label.clone()];
        line.extend(table_cells(&figures(&row.counts)).iter().map(|c| c.text()));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| lines.iter().map(|l| l[i].width()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "政务服务好差评统计报表 {from} 至 {to}{}\n",
        unit.map(|u| format!("（{u}）")).unwrap_or_default()
    );
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                let pad = " ".repeat(width - cell.width());
                // The first column reads left to right; the figures line up on the right.
                if i == 0 {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use unicode_width::UnicodeWidthStr;

    use super::*;

    #[test]
    fn chinese_columns_line_up_by_display_width() {
        let rows = vec![
            MetricsRow {
                group: "a".into(),
                label: "沙坝镇便民服务中心".into(),
                counts: Counts {
                    ratings: 9,
                    negative: 6,
                    ..Counts::default()
                },
            },
            MetricsRow {
                group: "all".into(),
                label: "合计".into(),
                counts: Counts {
                    ratings: 10,
                    ..Counts::default()
                },
            },
        ];
        let day = NaiveDate::from_ymd_opt(2021, 5, 1).unwrap();
        let text = table(&rows, day, day, None);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        // Every column ends at the same display column on every line: compare where 评价总数 ends.
        let end_of_second = |line: &str| {
            let cells: Vec<&str> = line.split("  ").filter(|c| !c.is_empty()).collect();
            let first = line.find(cells[1]).unwrap() + cells[1].len();
            line[..first].width()
        };
        let header = end_of_second(lines[0]);
        assert_eq!(end_of_second(lines[2]), header, "{text}");
        assert_eq!(end_of_second(lines[3]), header, "{text}");
        assert!(lines[3].starts_with("合计"), "{text}");
    }
}
