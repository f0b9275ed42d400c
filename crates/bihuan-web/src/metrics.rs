//! `/metrics` in the Prometheus text format: requests by route and status, a latency histogram, cases
//! by state and the outbox depth. The recorder belongs to the app (not the process), so several apps in
//! one test process keep their own figures.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::MetricsReader;

const DURATION: &str = "http_request_duration_seconds";

/// The app's metrics recorder, and when the gauges read from the database were last refreshed.
#[derive(Clone)]
pub struct Metrics(
    Arc<PrometheusRecorder>,
    Arc<std::sync::Mutex<Option<Instant>>>,
);

/// The gauges read from the database (cases by state, the outbox by status) are refreshed at most
/// this often, however often `/metrics` is scraped.
const GAUGES_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh recorder with latency buckets from 5 ms to 10 s.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder =
            match builder.set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &buckets) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "latency buckets rejected; durations are summaries");
                    PrometheusBuilder::new()
                }
            };
        Self(Arc::new(builder.build_recorder()), Arc::default())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware (after routing): counts each request by route, method and status, and times it.
pub async fn track(Extension(metrics): Extension<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    metrics::with_local_recorder(&*metrics.0, || {
        metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
            .increment(1);
        metrics::histogram!(DURATION, "route" => route).record(seconds);
    });
    response
}

/// `GET /metrics`: for a `metrics:read` token (or anyone when `BIHUAN_METRICS_PUBLIC=true`).
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus 文本格式", content_type = "text/plain", body = String),
        (status = 401, description = "缺少 metrics:read 令牌", body = crate::error::ErrorBody),
        (status = 403, description = "令牌无权读取监控指标", body = crate::error::ErrorBody)))]
pub async fn render(
    State(state): State<AppState>,
    _reader: MetricsReader,
    Extension(metrics): Extension<Metrics>,
) -> ApiResult<Response> {
    let due = metrics
        .1
        .lock()
        .map(|at| at.is_none_or(|at| at.elapsed() >= GAUGES_EVERY))
        .unwrap_or(true);
    if due {
        let cases = state.store.case_counts_by_state().await?;
        let outbox = state.store.outbox_counts_by_status().await?;
        metrics::with_local_recorder(&*metrics.0, || {
            for (s, n) in cases {
                metrics::gauge!("bihuan_cases", "state" => s).set(n as f64);
            }
            for (s, n) in outbox {
                metrics::gauge!("bihuan_outbox", "status" => s).set(n as f64);
            }
        });
        if let Ok(mut at) = metrics.1.lock() {
            *at = Some(Instant::now());
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.0.handle().render(),
    )
        .into_response())
}
