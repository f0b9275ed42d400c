//! The scheduler: one pass as of a given time fires the timer actions of the workflow files
//! (`review_timeout` closes a review nobody answered).
//!
//! Each timer fires through the store's `apply_action` as the `scheduler` actor, with the case's version:
//! when two passes (or two processes) find the same case, one wins and the other's conflict is skipped,
//! so a timer fires once. Reminders, escalation and the mail sender are issue 5's remaining work.

use bihuan_core::{Actor, Engine, Role};
use bihuan_store::{ActionRequest, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Map;

/// Cases handled per query in one pass.
const PAGE: u64 = 200;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Timer actions taken.
    pub fired: usize,
    /// Timers another actor (a person, another process) overtook.
    pub overtaken: usize,
}

/// The actor every scheduled action is recorded under.
pub fn scheduler() -> Actor {
    Actor {
        name: "scheduler".into(),
        role: Role::Scheduler,
        unit: None,
    }
}

/// Fires every timer due at `now`.
pub async fn tick(
    store: &Store,
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<TickReport, StoreError> {
    let actor = scheduler();
    let fields = Map::new();
    let mut report = TickReport::default();
    loop {
        let due = store.due_timers(now, PAGE).await?;
        let found = due.len();
        let mut progressed = false;
        for case in due {
            let Some(action) = case.timer_action.as_deref() else {
                continue;
            };
            let request = ActionRequest {
                case_id: case.id,
                version: case.version,
                action,
                fields: &fields,
                actor: &actor,
                now,
            };
            match store.apply_action(engine, &request).await {
                Ok(_) => {
                    report.fired += 1;
                    progressed = true;
                }
                Err(StoreError::Conflict { .. } | StoreError::Rejected(_)) => {
                    report.overtaken += 1;
                    tracing::info!(case = %case.id, action, "timer overtaken by another actor");
                }
                Err(e) => return Err(e),
            }
        }
        // A short page is the last; a page where nothing moved would come back the same.
        if (found as u64) < PAGE || !progressed {
            return Ok(report);
        }
    }
}
