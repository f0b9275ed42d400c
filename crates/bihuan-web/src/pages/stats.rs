//! 统计分析: the metrics table of a period (and unit, and grouping), each figure's definition on hover
//! and below, the exports, and the two SVG charts the server draws.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use bihuan_core::metrics::{DEFINITIONS, TABLE_COLUMNS, figures, table_cells};
use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::views::{Me, UnitNames, nav};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::routes::stats::{MetricsParams, metric_rows};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct StatsQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    group_by: String,
}

#[derive(Debug, Serialize)]
struct Header {
    label: &'static str,
    definition: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Table {
    headers: Vec<Header>,
    rows: Vec<Vec<String>>,
}

/// The definition of a column, matched by the figure's name it starts with.
fn definition_of(column: &str) -> Option<&'static str> {
    DEFINITIONS
        .iter()
        .filter(|d| column.starts_with(d.label))
        .max_by_key(|d| d.label.len())
        .map(|d| d.definition)
}

/// `GET /stats`. Without a period it shows this year to today.
pub(crate) async fn page(
    State(state): State<AppState>,
    user: PageUser,
    Query(mut q): Query<StatsQuery>,
) -> PageResult {
    let fail = |e: crate::error::ApiError| PageError::new(e, Some(&user));
    let cal = state.engine.calendar();
    let today = cal.local_date(state.clock.now());
    if q.from.trim().is_empty() {
        q.from = format!("{}-01-01", today.year());
    }
    if q.to.trim().is_empty() {
        q.to = today.format("%Y-%m-%d").to_string();
    }
    if q.group_by.trim().is_empty() {
        q.group_by = "unit".into();
    }
    let units = UnitNames::in_scope(
        state.store.units().await.map_err(|e| fail(e.into()))?,
        &user.caller.scope,
    );
    let params = MetricsParams {
        from: Some(q.from.clone()),
        to: Some(q.to.clone()),
        unit: Some(q.unit.clone()),
        group_by: Some(q.group_by.clone()),
    };
    let (table, error) = match metric_rows(&state, &user.caller, params).await {
        Ok(rows) => {
            let mut headers = vec![Header {
                label: "分组",
                definition: None,
            }];
            headers.extend(TABLE_COLUMNS.iter().map(|c| Header {
                label: c,
                definition: definition_of(c),
            }));
            let rows = rows
                .iter()
                .map(|r| {
                    let label = if q.group_by == "unit" {
                        units.name(&r.group)
                    } else {
                        r.label.clone()
                    };
                    std::iter::once(label)
                        .chain(table_cells(&figures(&r.counts)).iter().map(|c| c.text()))
                        .collect()
                })
                .collect();
            (Some(Table { headers, rows }), None)
        }
        Err(e) if e.status().is_client_error() => (None, Some(e.message().to_owned())),
        Err(e) => return Err(fail(e)),
    };
    let export_query = format!(
        "?{}",
        serde_urlencoded::to_string([
            ("from", q.from.as_str()),
            ("to", q.to.as_str()),
            ("unit", q.unit.as_str()),
            ("group_by", q.group_by.as_str()),
        ])
        .unwrap_or_default()
    );
    let groupings = [
        ("unit", "按单位"),
        ("month", "按月份"),
        ("channel", "按渠道"),
        ("service", "按事项"),
    ]
    .map(|(value, label)| serde_json::json!({ "value": value, "label": label }));
    let definitions: Vec<serde_json::Value> = DEFINITIONS
        .iter()
        .map(|d| serde_json::json!({ "label": d.label, "text": d.definition }))
        .collect();
    let period = format!("{} 至 {}", q.from, q.to);
    let me = Me::of(&user).named(&units);
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        "stats.html",
        page_context! {
            title => "统计分析", nav => nav(&me, "/stats"), me, q, table, error, period,
            export_query, groupings, definitions, units => units.options(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rate_column_has_its_definition() {
        for column in ["差评整改率", "回访率", "按期整改率", "好评率", "评价总数"]
        {
            assert!(definition_of(column).is_some(), "{column}");
        }
    }
}
