//! Charts as SVG drawn on the server (plotters; no script, nothing from a CDN), for the pages:
//! `trend.svg` — the monthly 差评整改率, 回访率 and 差评率; `units.svg` — 差评整改率 and 回访率 by unit.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bihuan_core::metrics::figures;
use bihuan_store::MetricsRow;
use plotters::prelude::*;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, SignedIn};
use crate::routes::stats::{MetricsParams, metric_rows};

/// `/api/v1/charts/{name}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chart))
}

/// The period and unit of a chart.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartQuery {
    /// First day, `YYYY-MM-DD`.
    from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    to: Option<String>,
    /// A unit's code: its subtree only.
    unit: Option<String>,
}

const BLUE: RGBColor = RGBColor(26, 95, 180);
const GREEN: RGBColor = RGBColor(38, 162, 105);
const ORANGE: RGBColor = RGBColor(230, 97, 0);

/// A chart of the metrics in the caller's scope: `trend.svg` or `units.svg`.
#[utoipa::path(get, path = "/api/v1/charts/{name}", tag = "metrics", security(("bearer" = [])),
    params(("name" = String, Path, description = "trend.svg（按月趋势）或 units.svg（各单位）"), ChartQuery),
    responses((status = 200, description = "SVG 图表", content_type = "image/svg+xml"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn chart(
    State(state): State<AppState>,
    caller: SignedIn,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ChartQuery>,
) -> ApiResult<Response> {
    let group_by = match name.as_str() {
        "trend.svg" => "month",
        "units.svg" => "unit",
        _ => {
            return Err(ApiError::not_found(format!(
                "没有图表 {name}：可用 trend.svg、units.svg"
            )));
        }
    };
    let params = MetricsParams {
        from: q.from,
        to: q.to,
        unit: q.unit,
        group_by: Some(group_by.to_owned()),
    };
    let rows = metric_rows(&state, &caller, params).await?;
    let svg = if group_by == "month" {
        trend(&rows)
    } else {
        units(&rows)
    }
    .map_err(|e| {
        tracing::error!(error = %e, "chart");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "图表生成失败",
        )
    })?;
    let mut response = svg.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    Ok(response)
}

type Drawn = Result<String, String>;

/// Which rate of a group's figures a series shows.
type Pick = fn(&bihuan_core::metrics::Figures) -> Option<f64>;

fn percent(v: &f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The monthly 差评整改率, 回访率 and 差评率 as lines.
pub fn trend(rows: &[MetricsRow]) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let months: Vec<String> = rows.iter().map(|r| r.group.clone()).collect();
        let n = months.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("差评整改率、回访率、差评率（按月）", ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..(n as f64 - 0.5).max(0.5), 0f64..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    months.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&percent)
            .draw()
            .map_err(|e| e.to_string())?;
        let series: [(&str, RGBColor, Pick); 3] = [
            ("差评整改率", BLUE, |f| f.rectification_rate),
            ("回访率", GREEN, |f| f.return_visit_rate),
            ("差评率", ORANGE, |f| f.negative_rate),
        ];
        for (label, color, pick) in series {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| pick(&figures(&r.counts)).map(|v| (i as f64, v)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// 差评整改率 and 回访率 of each unit as bars.
pub fn units(rows: &[MetricsRow]) -> Drawn {
    let mut svg = String::new();
    {
        let width = (120 + 90 * rows.len()).clamp(480, 1600) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        let n = rows.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("各单位差评整改率、回访率", ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..n as f64, 0f64..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&percent)
            .draw()
            .map_err(|e| e.to_string())?;
        let bars: [(&str, RGBColor, f64, Pick); 2] = [
            ("差评整改率", BLUE, 0.1, |f| f.rectification_rate),
            ("回访率", GREEN, 0.5, |f| f.return_visit_rate),
        ];
        for (label, color, offset, pick) in bars {
            let rects: Vec<Rectangle<(f64, f64)>> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    pick(&figures(&r.counts)).map(|v| {
                        let x = i as f64 + offset;
                        Rectangle::new([(x, 0.0), (x + 0.38, v)], color.filled())
                    })
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
