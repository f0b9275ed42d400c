//! The scheduler and the mail sender of Bihuan.
//!
//! One pass ([`tick`]), as of a given time, does in order:
//! 1. fires the workflow timers that are due (`review_timeout` closes an unanswered review), each
//!    through the store's `apply_action` as the `scheduler` actor with the case's version, so when two
//!    passes (or processes) find the same case one wins and the other is counted as overtaken;
//! 2. finds the reminders that are due (due soon, overdue, escalated) — the store marks the case and
//!    writes the outbox rows in one transaction, keyed per case, state entry, deadline and kind;
//! 3. once a working day at the digest time (default 08:30 local), makes the daily digests;
//! 4. sends the outbox: claims due mail, sends it, marks it sent, or records the failure and retries
//!    with exponential backoff until the row is dead;
//! 5. folds what the transactions since the last pass added to the metrics into the per-day sums.

mod mailer;

use bihuan_core::{Actor, Engine};
use bihuan_store::{ActionRequest, FailureOutcome, RetryPolicy, Store, StoreError};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Map;

pub use mailer::{Mailer, SendFailure};

/// Cases handled per query in one pass.
const PAGE: u64 = 200;
/// Mails claimed at a time.
const SEND_PAGE: u64 = 50;

/// A scheduler or mail problem.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is wrong; the message names it.
    #[error("{0}")]
    Config(String),
}

/// How the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The local time of the daily digest on working days (`BIHUAN_DIGEST_AT`, default 08:30).
    pub digest_at: NaiveTime,
    /// Retries of failed mail.
    pub retry: RetryPolicy,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            digest_at: NaiveTime::from_hms_opt(8, 30, 0).unwrap_or(NaiveTime::MIN),
            retry: RetryPolicy::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Timer actions taken.
    pub fired: usize,
    /// Timers and reminders another actor (a person, another process) overtook.
    pub overtaken: usize,
    /// Reminders found (due soon, overdue, escalated).
    pub reminders: usize,
    /// Daily digests written.
    pub digests: usize,
    /// Mails sent.
    pub sent: usize,
    /// Mails that failed and wait for a retry.
    pub retrying: usize,
    /// Mails given up.
    pub dead: usize,
}

/// One scheduler pass as of `now`: timers, reminders, the digest when it is due, then the outbox.
pub async fn tick(
    store: &Store,
    engine: &Engine,
    mailer: &Mailer,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<TickReport, NotifyError> {
    let mut report = fire_timers(store, engine, now).await?;
    let reminders = store.find_reminders(engine, now, PAGE).await?;
    report.reminders = reminders.found + store.find_task_reminders(engine, now).await?;
    report.overtaken += reminders.overtaken;
    if let Some(day) = digest_day(engine, schedule.digest_at, now) {
        report.digests = store.queue_digests(engine, day, now).await?;
    }
    send_outbox(store, mailer, &schedule.retry, now, &mut report).await?;
    store.compact_metrics().await?;
    Ok(report)
}

/// The day whose digest is due at `now`: today, when it is a working day and the digest time has
/// come (local time of the calendar).
pub fn digest_day(engine: &Engine, at: NaiveTime, now: DateTime<Utc>) -> Option<NaiveDate> {
    let cal = engine.calendar();
    let local = now.with_timezone(&cal.tz());
    let day = local.date_naive();
    (local.time() >= at && cal.day(day).working).then_some(day)
}

/// Fires every timer due at `now`.
async fn fire_timers(
    store: &Store,
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<TickReport, StoreError> {
    let actor = Actor::scheduler();
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

/// Sends every mail due at `now`, a page at a time, until none is left to claim. After a failure the
/// rest of the page is handed back untried and the pass stops sending: a server that is down or slow
/// to answer costs one attempt per pass, not one time-out per mail.
async fn send_outbox(
    store: &Store,
    mailer: &Mailer,
    retry: &RetryPolicy,
    now: DateTime<Utc>,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    loop {
        let claimed = store.claim_mail(now, SEND_PAGE, retry).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        for (i, row) in claimed.iter().enumerate() {
            match mailer.send(row).await {
                Ok(()) => {
                    if store.mark_sent(row, now).await? {
                        report.sent += 1;
                    }
                    tracing::info!(mail = row.id, kind = %row.kind, "mail sent");
                }
                Err(failure) => {
                    let outcome = store
                        .mark_failed(row, &failure.message, failure.permanent, now, retry)
                        .await?;
                    match outcome {
                        FailureOutcome::Retry(at) => {
                            report.retrying += 1;
                            tracing::warn!(mail = row.id, attempts = row.attempts, error = %failure.message, retry_at = %at, "mail failed; will retry");
                        }
                        FailureOutcome::Dead => {
                            report.dead += 1;
                            tracing::error!(mail = row.id, attempts = row.attempts, error = %failure.message, "mail given up");
                        }
                    }
                    if !failure.permanent {
                        let rest = &claimed[i + 1..];
                        store.release_mail(rest, now + retry.first_delay).await?;
                        return Ok(());
                    }
                }
            }
        }
    }
}
