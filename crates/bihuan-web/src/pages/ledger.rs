//! 差评台账: the case list with its filters, pages, and the export buttons (the export takes the same
//! filters, so what is downloaded is what is shown, without the paging).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use bihuan_store::CaseFilter;
use serde::{Deserialize, Serialize};

use super::views::{CaseRow, Me, UnitNames, nav};
use super::{PageError, PageResult, PageUser, render};
use crate::AppState;
use crate::routes::cases::parse_bound;

/// Rows per page of the ledger.
const PER_PAGE: u64 = 50;

/// The ledger's filters, as the form sends them (kept as text to show them again).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct LedgerQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    overdue: String,
    page: Option<u64>,
}

impl LedgerQuery {
    /// The filters as a query string (without the page), for links.
    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("state", self.state.as_str()),
            ("unit", self.unit.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("overdue", self.overdue.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Links to the pages before and after.
#[derive(Debug, Serialize)]
pub(crate) struct Pager {
    page: u64,
    pages: u64,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
}

impl Pager {
    pub fn new(base: &str, query: &str, page: u64, per_page: u64, total: u64) -> Self {
        let pages = total.div_ceil(per_page).max(1);
        let link = |p: u64| {
            let sep = if query.is_empty() { "" } else { "&" };
            format!("{base}?{query}{sep}page={p}")
        };
        Self {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

/// `GET /ledger`.
pub(crate) async fn page(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<LedgerQuery>,
) -> PageResult {
    let fail = |e| PageError::new(e, Some(&user));
    let tz = state.engine.calendar().tz();
    let units = UnitNames::in_scope(state.store.units().await.map_err(fail)?, &user.caller.scope);
    let page =
        crate::routes::cases::page_number(q.page).map_err(|e| PageError::new(e, Some(&user)))?;
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    // A bad date is said beside the form; the list then shows no filter by date.
    let mut error = None;
    let mut bound =
        |field: &str, text: &str, end: bool| match parse_bound(field, Some(text), tz, end) {
            Ok(b) => b,
            Err(e) => {
                error = Some(format!("日期无效：{}", e.message()));
                None
            }
        };
    let from = bound("from", &q.from, false);
    let to = bound("to", &q.to, true);
    let filter = CaseFilter {
        state: non_empty(&q.state),
        unit: non_empty(&q.unit),
        overdue: match q.overdue.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        rated_from: from,
        rated_to: to,
        page,
        per_page: PER_PAGE,
        ..CaseFilter::default()
    };
    let now = state.clock.now();
    let (cases, total) = state
        .store
        .list_cases(&user.caller.scope, &filter, now)
        .await
        .map_err(fail)?;
    let rows: Vec<CaseRow> = cases
        .iter()
        .map(|(c, r)| CaseRow::new(&state.engine, &units, c, r, now))
        .collect();
    // The states of the flows on the ledger, in the order the workflow files give them.
    let states: Vec<serde_json::Value> = state
        .engine
        .workflow(bihuan_core::NEGATIVE_RATING)
        .map(|d| {
            d.states
                .iter()
                .map(|s| serde_json::json!({ "id": s.id, "label": s.label }))
                .collect()
        })
        .unwrap_or_default();
    let query = q.query();
    let export_query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let me = Me::of(&user).named(&units);
    Ok(render(
        StatusCode::OK,
        "ledger.html",
        page_context! {
            title => "差评台账", nav => nav(&me, "/ledger"), me, rows, states,
            units => units.options(), q, error, export_query,
            pager_info => Pager::new("/ledger", &query, page, PER_PAGE, total),
        },
    ))
}
