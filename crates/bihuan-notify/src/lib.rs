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
//! 5. folds what the transactions since the last pass added to the metrics into the per-day sums;
//! 6. once an hour, removes sessions that ended and sign-in attempts that no longer count.
//!
//! A [`Scheduler`] runs the passes of one process and remembers, from one pass to the next, the mails
//! the mail server took while the database could not record it: they are marked sent as soon as the
//! database is back, before anything is claimed, so an outage neither loses nor doubles a mail.

mod mailer;
mod outlets;

use bihuan_core::rating::redact_contacts;
use bihuan_core::{Actor, Engine};
use bihuan_store::entity::outbox;
use bihuan_store::{ActionRequest, FailureOutcome, RetryPolicy, Store, StoreError};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::Map;

pub use mailer::{Mailer, SendFailure};
pub use outlets::{DEFAULT_SMS_SIGNATURE, Outlet, Outlets, Sms, Upstream};

/// Cases (and work items) marked per transaction in one pass.
const PAGE: u64 = 500;
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

impl NotifyError {
    /// Whether the pass stopped because the database was away (it resumes by itself once it is back).
    pub fn is_outage(&self) -> bool {
        matches!(self, NotifyError::Store(e) if e.is_outage())
    }
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
    /// 追评 applied to their cases (stored by a batch or an import).
    pub follow_ups: usize,
    /// Mails sent.
    pub sent: usize,
    /// Mails that failed and wait for a retry.
    pub retrying: usize,
    /// Mails given up.
    pub dead: usize,
}

/// One scheduler pass as of `now`: timers, reminders, the digest when it is due, then the outbox.
/// A pass of its own (`bihuan tick`): a mail it sends but cannot mark sent, because the database went
/// away in between, is sent again after its lease, with the same Message-ID (see [`Scheduler`]).
pub async fn tick(
    store: &Store,
    engine: &Engine,
    outlets: &Outlets,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<TickReport, NotifyError> {
    Scheduler::default()
        .tick(store, engine, outlets, schedule, now)
        .await
}

/// The passes of one process (`serve`). What it remembers lives in memory: a process that stops
/// during an outage forgets its unmarked mails, which then go again after their lease with the same
/// Message-ID, so that mail systems can drop the copy.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// Mails the mail server accepted whose `sent` mark the database refused: marked first thing in
    /// the next pass (their lease keeps other senders off them meanwhile).
    unmarked: Vec<outbox::Model>,
    /// When ended sessions and old sign-in attempts were last removed (once an hour).
    pruned_at: Option<DateTime<Utc>>,
}

impl Scheduler {
    /// One pass as of `now`: the mails left unmarked by an earlier pass, timers, reminders, the digest
    /// when it is due, then the outbox.
    pub async fn tick(
        &mut self,
        store: &Store,
        engine: &Engine,
        outlets: &Outlets,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<TickReport, NotifyError> {
        let mut report = TickReport::default();
        self.mark_unmarked(store, now, &mut report).await?;
        store.rebuild_stale_metrics(engine).await?;
        store.start_overall_limits(engine, now).await?;
        report.follow_ups = store.apply_pending_follow_ups(engine, now, PAGE).await?;
        let timers = fire_timers(store, engine, now).await?;
        report.fired = timers.fired;
        report.overtaken = timers.overtaken;
        let office_hours = next_office_time(engine, schedule.digest_at, now);
        let reminders = store
            .find_reminders(engine, now, office_hours, PAGE)
            .await?;
        report.reminders = reminders.found;
        report.overtaken += reminders.overtaken;
        if let Some(day) = digest_day(engine, schedule.digest_at, now) {
            report.digests = store.queue_digests(engine, day, now).await?;
        }
        for outlet in outlets.each() {
            self.send_outbox(store, outlet, &schedule.retry, now, &mut report)
                .await?;
        }
        store.compact_metrics().await?;
        if self
            .pruned_at
            .is_none_or(|at| now - at >= chrono::Duration::hours(1))
        {
            store.prune_access(now).await?;
            self.pruned_at = Some(now);
        }
        Ok(report)
    }

    /// How many sent mails wait for their mark (the database was away when they went).
    pub fn unmarked(&self) -> usize {
        self.unmarked.len()
    }

    async fn mark_unmarked(
        &mut self,
        store: &Store,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        while let Some(row) = self.unmarked.first() {
            match store.mark_sent(row, now).await {
                Ok(true) => {
                    report.sent += 1;
                    tracing::info!(
                        mail = row.id,
                        "a mail sent while the database was away is marked sent"
                    );
                }
                // Its lease ran out during the outage and another sender claimed it.
                Ok(false) => tracing::warn!(
                    mail = row.id,
                    "a mail sent while the database was away was claimed again by another sender"
                ),
                Err(e) if e.is_outage() => return Err(e),
                // Not an outage: trying again would fail the same way and hold up every later pass.
                Err(e) => tracing::error!(
                    mail = row.id,
                    error = %e,
                    "a mail sent while the database was away cannot be marked sent; it goes again after its lease"
                ),
            }
            self.unmarked.remove(0);
        }
        Ok(())
    }

    /// Delivers every row of `outlet`'s channel due at `now`, a page at a time, until none is left
    /// to claim. After a failure the rest of the page is handed back untried and the pass stops
    /// delivering on that channel: a server that is down or slow to answer costs one attempt per
    /// pass, not one time-out per row, and holds up no other channel.
    async fn send_outbox(
        &mut self,
        store: &Store,
        outlet: &dyn Outlet,
        retry: &RetryPolicy,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        let channel = outlet.channel().as_str();
        loop {
            let claimed = store.claim(outlet.channel(), now, SEND_PAGE, retry).await?;
            if claimed.is_empty() {
                return Ok(());
            }
            for (i, row) in claimed.iter().enumerate() {
                match outlet.deliver(row).await {
                    Ok(()) => {
                        tracing::info!(row = row.id, channel, kind = %row.kind, "outbox row delivered");
                        match store.mark_sent(row, now).await {
                            Ok(true) => report.sent += 1,
                            Ok(false) => {}
                            Err(e) => {
                                // The mail is out: remember it, so it is marked, not sent again.
                                // The rest of the page stays leased and is tried after the lease.
                                self.unmarked.push(row.clone());
                                return Err(e);
                            }
                        }
                    }
                    Err(failure) => {
                        let outcome = store
                            .mark_failed(row, &failure.message, failure.permanent, now, retry)
                            .await?;
                        match outcome {
                            FailureOutcome::Retry(at) => {
                                report.retrying += 1;
                                tracing::warn!(row = row.id, channel, attempts = row.attempts, error = %redact_contacts(&failure.message), retry_at = %at, "delivery failed; will retry");
                            }
                            FailureOutcome::Dead => {
                                report.dead += 1;
                                tracing::error!(row = row.id, channel, attempts = row.attempts, error = %redact_contacts(&failure.message), "delivery given up");
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
}

/// The day whose digest is due at `now`: today, when it is a working day and the digest time has
/// come (local time of the calendar).
pub fn digest_day(engine: &Engine, at: NaiveTime, now: DateTime<Utc>) -> Option<NaiveDate> {
    let cal = engine.calendar();
    let local = now.with_timezone(&cal.tz());
    let day = local.date_naive();
    (local.time() >= at && cal.day(day).working).then_some(day)
}

/// When a reminder found at `now` may be mailed: at once on a working day once its mail time (the
/// digest's) has come, else at the mail time of the next working day (today's, before it).
pub fn next_office_time(engine: &Engine, at: NaiveTime, now: DateTime<Utc>) -> DateTime<Utc> {
    if digest_day(engine, at, now).is_some() {
        return now;
    }
    let cal = engine.calendar();
    let local = now.with_timezone(&cal.tz());
    let mut day = local.date_naive();
    if local.time() >= at || !cal.day(day).working {
        day = cal.nth_working_day_after(day, 1).0;
    }
    cal.tz()
        .from_local_datetime(&day.and_time(at))
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc))
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
                id: case.id,
                scope: &bihuan_store::CaseScope::All,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bihuan_core::Source;

    use super::*;

    fn engine() -> Engine {
        let file = |name: &str, text: &str| Source {
            name: name.to_owned(),
            text: text.to_owned(),
        };
        Engine::build(
            &[
                file(
                    "negative-rating.toml",
                    include_str!("../../../workflows/negative-rating.toml"),
                ),
                file(
                    "work-plan-task.toml",
                    include_str!("../../../workflows/work-plan-task.toml"),
                ),
            ],
            &[file(
                "cn.toml",
                include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml"),
            )],
            chrono_tz::Asia::Shanghai,
        )
        .unwrap()
    }

    fn beijing(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{text}+08:00"))
            .unwrap()
            .to_utc()
    }

    #[test]
    fn reminders_wait_for_the_mail_time_of_a_working_day() {
        let engine = engine();
        let at = NaiveTime::from_hms_opt(8, 30, 0).unwrap();
        let table = [
            // A working day after 08:30: at once.
            ("2021-09-29T10:00:00", "2021-09-29T10:00:00"),
            // Before 08:30: at 08:30.
            ("2021-09-30T00:00:00", "2021-09-30T08:30:00"),
            // 国庆 (10/1–7): Friday 10/8.
            ("2021-10-01T00:00:00", "2021-10-08T08:30:00"),
            ("2021-10-03T12:00:00", "2021-10-08T08:30:00"),
            // Saturday 10/9 is a make-up working day; Sunday 10/10 waits for Monday.
            ("2021-10-09T07:00:00", "2021-10-09T08:30:00"),
            ("2021-10-10T09:00:00", "2021-10-11T08:30:00"),
        ];
        for (now, expected) in table {
            assert_eq!(
                next_office_time(&engine, at, beijing(now)),
                beijing(expected),
                "{now}"
            );
        }
    }
}
