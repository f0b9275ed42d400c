//! Reminders: the one scanner of every subject with a deadline (差评工单, 工作任务), and the daily digest.
//!
//! A pass reads the subjects whose next reminder time has come, a page at a time in order of that
//! time (an indexed range: `remind_stage < 3 AND remind_at <= now`, keyset-paged, so memory stays
//! flat however many there are), works out in the core what each has reached (due soon, overdue,
//! escalated), and in one transaction per page marks them all with one `UPDATE … FROM (VALUES …)`
//! guarded by each row's version and stage, then writes what the marked ones cause — outbox rows in
//! a few multi-row inserts, the metric sums of cases that turned overdue in one — through the
//! subject's [`Watched`] implementation. Each outbox row has a unique key per (subject, state entry,
//! deadline, kind), so however many passes or processes look at the same moment, each reminder is
//! written once; a subject an action changed first is left to the next pass. A case's due-soon and
//! overdue reminders wait in the outbox (status `digest`) for the recipients' daily digest; an
//! escalation is a mail of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bihuan_core::mail::{self, CaseNotice, Digest, DigestItem};
use bihuan_core::reminder::{Findings, Stage};
use bihuan_core::workflow::{Audience, Settings};
use bihuan_core::{Engine, ReminderKind, ReminderTimes, Role};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value as DbValue,
};
use serde_json::Value;
use uuid::Uuid;

use crate::cases::workflow_of;
use crate::code::Code;
use crate::entity::{case, digest_run, event, outbox, rating, user};
use crate::metrics::{DaySums, add_case_change, add_deltas};
use crate::org_tree::OrgTree;
use crate::outbox::{
    NewMail, NewMessage, OutboxChannel, OutboxStatus, Placement, audience_staff, case_facts,
    escalation_recipients, insert_mail, insert_mails, insert_message, lapse_reminders,
    reminder_audience, reminder_recipients, render, sms_to, unrenderable,
};
use crate::{Result, Store, StoreError};

/// What one look at the deadlines did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReminderReport {
    /// Reminders found (due soon, overdue, escalated).
    pub found: usize,
    /// Subjects another pass (or an action) changed first; they are looked at again next time.
    pub overtaken: usize,
}

impl std::ops::AddAssign for ReminderReport {
    fn add_assign(&mut self, other: Self) {
        self.found += other.found;
        self.overtaken += other.overtaken;
    }
}

/// Where a subject's reminders stand, as the scanner reads and marks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    pub id: Uuid,
    pub version: i32,
    pub deadline: Option<DateTime<Utc>>,
    pub stage: Stage,
    /// When the scanner looks next.
    pub remind_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub escalated: bool,
    pub updated_at: DateTime<Utc>,
}

/// A subject found with reminders due, and what they are.
#[derive(Debug)]
pub(crate) struct Found<S> {
    pub subject: S,
    /// Its stage before the pass.
    pub stage: Stage,
    pub deadline: DateTime<Utc>,
    pub findings: Findings,
}

/// What the reminders of one page are written with.
pub(crate) struct Pass<'a> {
    pub txn: &'a DatabaseTransaction,
    pub engine: &'a Engine,
    pub org: &'a OrgTree,
    pub now: DateTime<Utc>,
    /// The next working day's mail time: reminders to units are not sent before it.
    pub office_hours: DateTime<Utc>,
}

/// A subject with a deadline the scheduler watches: its table and how its reminders are written.
/// The scan, the paging and the mark are the same for every subject.
pub(crate) trait Watched: Sized + Send + Sync {
    /// Its table; it has the columns `id`, `version`, `overdue`, `escalated`, `updated_at` and the
    /// clock's two: its next look and its stage (`remind_at` and `remind_stage` for a subject's own
    /// deadline).
    type Entity: EntityTrait;
    /// The table's name, for the mark.
    const TABLE: &'static str;
    const ID: <Self::Entity as EntityTrait>::Column;
    const REMIND_AT: <Self::Entity as EntityTrait>::Column;
    const REMIND_STAGE: <Self::Entity as EntityTrait>::Column;
    /// The names of `REMIND_AT` and `REMIND_STAGE`, for the mark.
    const REMIND_AT_NAME: &'static str = "remind_at";
    const REMIND_STAGE_NAME: &'static str = "remind_stage";
    /// Whether passing this deadline marks the row overdue (a state's own limit, which the on-time
    /// figures judge); a clock across states reminds and escalates without.
    const MARKS_OVERDUE: bool = true;

    /// The watched subject of a row read by the scan.
    fn of(row: <Self::Entity as EntityTrait>::Model) -> Self;

    /// Where its reminders stand; a stored stage that names none is corrupt.
    fn watch(&self) -> Result<Watch>;

    /// When it is reminded (the settings of its workflow).
    fn settings<'e>(&self, engine: &'e Engine) -> Result<&'e Settings>;

    /// Writes the reminders of the page's marked subjects in the page's transaction: their outbox
    /// rows and whatever else a reminder changes. Answers the number of reminders.
    fn remind(
        pass: &Pass<'_>,
        found: Vec<Found<Self>>,
    ) -> impl Future<Output = Result<usize>> + Send;
}

/// The reminder stage stored in a row of `table`: a value that names none is corrupt, never taken
/// for a stage (it would mail again, or never).
pub(crate) fn stored_stage(table: &str, id: Uuid, code: i16) -> Result<Stage> {
    Stage::from_code(code).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "stored reminder stage `{code}` of {table} {id} is not a known value"
        ))
    })
}

/// A page's decision on one subject: its new reminder columns, written only if its version and
/// stage are still the ones read.
struct Mark {
    watch: Watch,
    stage: Stage,
    remind_at: Option<DateTime<Utc>>,
    /// Something was found: the subject's version moves on.
    found: bool,
    overdue: bool,
    escalated: bool,
}

impl Mark {
    fn of(watch: Watch, findings: &Findings, marks_overdue: bool) -> Self {
        let found = !findings.kinds.is_empty();
        Self {
            watch,
            stage: findings.stage,
            remind_at: findings.next_at,
            found,
            overdue: watch.overdue
                || (marks_overdue && found && findings.stage >= ReminderKind::Overdue.stage()),
            escalated: watch.escalated || findings.kinds.contains(&ReminderKind::Escalated),
        }
    }
}

impl Store {
    /// Finds every reminder of cases and work items due at `now`, `page` subjects per transaction.
    /// Reminders to units are sent no earlier than `office_hours` where the subject asks for it
    /// (work items; a case's go to the daily digest).
    pub async fn find_reminders(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
        office_hours: DateTime<Utc>,
        page: u64,
    ) -> Result<ReminderReport> {
        let mut report = self
            .scan::<case::Model>(engine, now, office_hours, page)
            .await?;
        report += self
            .scan::<crate::entity::task::Model>(engine, now, office_hours, page)
            .await?;
        report += self
            .scan::<Clock<Overall>>(engine, now, office_hours, page)
            .await?;
        report += self
            .scan::<Clock<ScheduledRectification>>(engine, now, office_hours, page)
            .await?;
        if report.found > 0 || report.overtaken > 0 {
            tracing::info!(
                found = report.found,
                overtaken = report.overtaken,
                "reminders"
            );
        }
        Ok(report)
    }

    /// One subject's scan: pages in order of `(remind_at, id)`, each marked and reminded in one
    /// transaction.
    async fn scan<S: Watched>(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
        office_hours: DateTime<Utc>,
        page: u64,
    ) -> Result<ReminderReport> {
        let page = page.max(1);
        let mut report = ReminderReport::default();
        let mut after: Option<(DateTime<Utc>, Uuid)> = None;
        loop {
            let mut due = S::Entity::find()
                .filter(S::REMIND_STAGE.lt(Stage::Done.code()))
                .filter(S::REMIND_AT.lte(now));
            if let Some((at, id)) = after {
                due = due.filter(
                    Condition::any()
                        .add(S::REMIND_AT.gt(at))
                        .add(Condition::all().add(S::REMIND_AT.eq(at)).add(S::ID.gt(id))),
                );
            }
            let rows: Vec<S> = due
                .order_by_asc(S::REMIND_AT)
                .order_by_asc(S::ID)
                .limit(page)
                .all(&self.db)
                .await?
                .into_iter()
                .map(S::of)
                .collect();
            let looked = rows.len();
            let Some(last) = rows.last() else {
                return Ok(report);
            };
            let last = last.watch()?;
            // Rows with a due stage always have a time (the write paths keep it so).
            after = Some((
                last.remind_at.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{} {} has a reminder stage but no reminder time",
                        S::TABLE,
                        last.id
                    ))
                })?,
                last.id,
            ));
            report += self.page::<S>(engine, rows, now, office_hours).await?;
            if (looked as u64) < page {
                return Ok(report);
            }
        }
    }

    /// Marks and reminds one page of subjects in one transaction.
    async fn page<S: Watched>(
        &self,
        engine: &Engine,
        rows: Vec<S>,
        now: DateTime<Utc>,
        office_hours: DateTime<Utc>,
    ) -> Result<ReminderReport> {
        let mut marks = Vec::with_capacity(rows.len());
        let mut findings = Vec::with_capacity(rows.len());
        for row in &rows {
            let watch = row.watch()?;
            let Some(deadline) = watch.deadline else {
                // A stage below the last without a deadline: nothing to remind of, ever.
                findings.push(None);
                marks.push(Mark {
                    watch,
                    stage: Stage::Done,
                    remind_at: None,
                    found: false,
                    overdue: watch.overdue,
                    escalated: watch.escalated,
                });
                continue;
            };
            let times = ReminderTimes::of(engine.calendar(), row.settings(engine)?, deadline);
            let found = times.findings(watch.stage, now);
            marks.push(Mark::of(watch, &found, S::MARKS_OVERDUE));
            findings.push(Some((watch.id, watch.stage, deadline, found)));
        }
        let backend = self.backend();
        self.write(async |txn| {
            let marked = mark::<S>(txn, backend, &marks, now).await?;
            let mut report = ReminderReport {
                found: 0,
                overtaken: rows.len() - marked.len(),
            };
            let found: Vec<Found<S>> = rows
                .into_iter()
                .zip(findings)
                .filter_map(|(subject, findings)| {
                    let (id, stage, deadline, findings) = findings?;
                    (!findings.kinds.is_empty() && marked.contains(&id)).then_some(Found {
                        subject,
                        stage,
                        deadline,
                        findings,
                    })
                })
                .collect();
            if !found.is_empty() {
                let org = self.org_in(txn).await?;
                let pass = Pass {
                    txn,
                    engine,
                    org: &org,
                    now,
                    office_hours,
                };
                report.found = S::remind(&pass, found).await?;
            }
            Ok(report)
        })
        .await
    }
}

/// Writes a page's marks in one statement; answers the ids it wrote (the rest changed meanwhile).
async fn mark<S: Watched>(
    txn: &DatabaseTransaction,
    backend: DatabaseBackend,
    marks: &[Mark],
    now: DateTime<Utc>,
) -> Result<BTreeSet<Uuid>> {
    const COLUMNS: usize = 9;
    let mut marked = BTreeSet::new();
    // 9 parameters a row: well under SQLite's and PostgreSQL's limits at 500 rows a statement.
    for chunk in marks.chunks(500) {
        let mut values: Vec<DbValue> = Vec::with_capacity(chunk.len() * COLUMNS);
        let mut rows = Vec::with_capacity(chunk.len());
        for m in chunk {
            let first = values.len();
            values.extend([
                m.watch.id.into(),
                m.stage.code().into(),
                m.remind_at.into(),
                (m.watch.version + i32::from(m.found)).into(),
                (if m.found { now } else { m.watch.updated_at }).into(),
                m.overdue.into(),
                m.escalated.into(),
                m.watch.version.into(),
                m.watch.stage.code().into(),
            ]);
            let params: Vec<String> = (first + 1..=first + COLUMNS)
                .map(|i| match backend {
                    DatabaseBackend::Postgres => format!("${i}"),
                    _ => "?".to_owned(),
                })
                .collect();
            rows.push(format!("({})", params.join(", ")));
        }
        // A reminder changes what people see of the subject: its version moves on, so an action
        // decided on the old view is refused rather than silently undoing the mark.
        let (table, stage, at) = (S::TABLE, S::REMIND_STAGE_NAME, S::REMIND_AT_NAME);
        let sql = format!(
            "UPDATE {table} SET {stage} = v.column2, {at} = v.column3, \
             version = v.column4, updated_at = v.column5, overdue = v.column6, \
             escalated = v.column7 FROM (VALUES {}) AS v \
             WHERE {table}.id = v.column1 AND {table}.version = v.column8 \
             AND {table}.{stage} = v.column9 RETURNING id",
            rows.join(", ")
        );
        for row in txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            marked.insert(row.try_get_by_index::<Uuid>(0)?);
        }
    }
    Ok(marked)
}

/// A case's reminders: due soon and overdue to the responsible unit (the center while it waits
/// there) by the daily digest, the newest replacing the one before; the escalation (督办) to the
/// supervisors at once; a case turning overdue counts as late in the on-time rate from now on.
impl Watched for case::Model {
    type Entity = case::Entity;
    const TABLE: &'static str = "cases";
    const ID: case::Column = case::Column::Id;
    const REMIND_AT: case::Column = case::Column::RemindAt;
    const REMIND_STAGE: case::Column = case::Column::RemindStage;

    fn of(row: case::Model) -> Self {
        row
    }

    fn watch(&self) -> Result<Watch> {
        Ok(Watch {
            id: self.id,
            version: self.version,
            deadline: self.deadline,
            stage: stored_stage(Self::TABLE, self.id, self.remind_stage)?,
            remind_at: self.remind_at,
            overdue: self.overdue,
            escalated: self.escalated,
            updated_at: self.updated_at,
        })
    }

    fn settings<'e>(&self, engine: &'e Engine) -> Result<&'e Settings> {
        Ok(&workflow_of(engine, self)?.settings)
    }

    async fn remind(pass: &Pass<'_>, found: Vec<Found<Self>>) -> Result<usize> {
        let (txn, engine, org, now) = (pass.txn, pass.engine, pass.org, pass.now);
        let ratings = ratings_of(txn, found.iter().map(|f| f.subject.rating_id)).await?;
        let rating_of = |c: &case::Model| {
            ratings
                .get(&c.rating_id)
                .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", c.id)))
        };
        let people = org.people();
        let turned_overdue: Vec<&Found<Self>> = found
            .iter()
            .filter(|f| !f.subject.overdue && f.findings.stage >= ReminderKind::Overdue.stage())
            .collect();
        if !turned_overdue.is_empty() {
            let events = events_of_many(txn, turned_overdue.iter().map(|f| f.subject.id)).await?;
            let mut sums = DaySums::new();
            for f in turned_overdue {
                let c = &f.subject;
                let events = events.get(&c.id).map_or(&[][..], Vec::as_slice);
                add_case_change(
                    &mut sums,
                    engine,
                    c,
                    rating_of(c)?,
                    (events, false),
                    (events, true),
                )?;
            }
            add_deltas(txn, sums).await?;
        }
        // The newest reminder of a case replaces the one before in the digest. Only a case that had
        // one for this deadline can have it waiting (stage above 0): a new state or deadline resets
        // the stage and lapses the case's waiting reminders in the same transaction.
        lapse_reminders(
            txn,
            found
                .iter()
                .filter(|f| f.stage > Stage::Fresh)
                .filter(|f| {
                    f.findings
                        .kinds
                        .iter()
                        .any(|k| *k != ReminderKind::Escalated)
                })
                .map(|f| f.subject.id),
        )
        .await?;
        let mut mails = Vec::new();
        for f in &found {
            let c = &f.subject;
            let rating = rating_of(c)?;
            let def = workflow_of(engine, c)?;
            let entry = format!(
                "{}:{}:{}",
                c.id,
                c.state_entered_at.timestamp_micros(),
                f.deadline.timestamp_micros()
            );
            let facts = case_facts(org, engine, def, c, rating, now);
            for kind in &f.findings.kinds {
                let (audience, recipients, status) = if *kind == ReminderKind::Escalated {
                    (
                        "supervisors",
                        escalation_recipients(people, org, c),
                        OutboxStatus::Pending,
                    )
                } else {
                    (
                        reminder_audience(c).as_str(),
                        reminder_recipients(people, org, c, rating),
                        OutboxStatus::Digest,
                    )
                };
                let notice = CaseNotice {
                    kind: kind.as_str().to_owned(),
                    action: None,
                    case: facts.clone(),
                };
                // A reminder the digest gathers is listed in the outbox, never sent by itself.
                let letter = if status == OutboxStatus::Digest {
                    engine
                        .letters()
                        .render_listed(mail::CASE, &notice)
                        .map_err(unrenderable)?
                } else {
                    render(engine, mail::CASE, &notice)?
                };
                mails.push(NewMail {
                    kind: kind.as_str().to_owned(),
                    case_id: Some(c.id),
                    audience: audience.to_owned(),
                    recipients,
                    letter,
                    unique_key: format!("remind:{entry}:{}", kind.as_str()),
                    status,
                    send_at: None,
                });
                tracing::debug!(case = %c.id, kind = kind.as_str(), "reminder");
            }
        }
        let written = mails.len();
        insert_mails(txn, mails, now).await?;
        Ok(written)
    }
}

/// A clock of a case beside its state's own, on the same row with columns of its own: the overall
/// limit (整改反馈时限) and a scheduled rectification (限期整改).
pub(crate) trait CaseClock: Send + Sync + 'static {
    /// Its name: the prefix of its columns and of its reminders' outbox kinds.
    const NAME: &'static str;
    const REMIND_AT: case::Column;
    const REMIND_STAGE: case::Column;
    const REMIND_AT_NAME: &'static str;
    const REMIND_STAGE_NAME: &'static str;

    /// The deadline still to meet.
    fn deadline(c: &case::Model) -> Option<DateTime<Utc>>;

    /// Its stored stage; `None` only for an overall limit not filled in yet.
    fn stage(c: &case::Model) -> Option<i16>;

    /// When the scanner looks at it next.
    fn remind_at(c: &case::Model) -> Option<DateTime<Utc>>;
}

/// 整改反馈时限.
#[derive(Debug)]
pub(crate) struct Overall;

impl CaseClock for Overall {
    const NAME: &'static str = "overall";
    const REMIND_AT: case::Column = case::Column::OverallRemindAt;
    const REMIND_STAGE: case::Column = case::Column::OverallRemindStage;
    const REMIND_AT_NAME: &'static str = "overall_remind_at";
    const REMIND_STAGE_NAME: &'static str = "overall_remind_stage";

    fn deadline(c: &case::Model) -> Option<DateTime<Utc>> {
        crate::cases::overall_of(c).running().map(|d| d.at)
    }

    fn stage(c: &case::Model) -> Option<i16> {
        c.overall_remind_stage
    }

    fn remind_at(c: &case::Model) -> Option<DateTime<Utc>> {
        c.overall_remind_at
    }
}

/// 建立台账、限期整改.
#[derive(Debug)]
pub(crate) struct ScheduledRectification;

impl CaseClock for ScheduledRectification {
    const NAME: &'static str = "scheduled";
    const REMIND_AT: case::Column = case::Column::ScheduledRemindAt;
    const REMIND_STAGE: case::Column = case::Column::ScheduledRemindStage;
    const REMIND_AT_NAME: &'static str = "scheduled_remind_at";
    const REMIND_STAGE_NAME: &'static str = "scheduled_remind_stage";

    fn deadline(c: &case::Model) -> Option<DateTime<Utc>> {
        crate::cases::scheduled_of(c).and_then(|s| s.open())
    }

    fn stage(c: &case::Model) -> Option<i16> {
        Some(c.scheduled_remind_stage)
    }

    fn remind_at(c: &case::Model) -> Option<DateTime<Utc>> {
        c.scheduled_remind_at
    }
}

/// A case as the scanner watches one of its other clocks.
#[derive(Debug)]
pub(crate) struct Clock<K>(case::Model, std::marker::PhantomData<K>);

/// The reminders of a case's other clocks: due soon and overdue to the responsible unit (the center
/// while the case waits there), sent no earlier than the pass's office hours; the escalation (督办)
/// to the supervisors above at once. Passing one marks the case escalated, never overdue: the
/// on-time figures judge the unit's own stage. The outbox kinds are the clock's name and the
/// reminder's (`overall_due_soon`, `scheduled_escalated` …).
impl<K: CaseClock> Watched for Clock<K> {
    type Entity = case::Entity;
    const TABLE: &'static str = "cases";
    const ID: case::Column = case::Column::Id;
    const REMIND_AT: case::Column = K::REMIND_AT;
    const REMIND_STAGE: case::Column = K::REMIND_STAGE;
    const REMIND_AT_NAME: &'static str = K::REMIND_AT_NAME;
    const REMIND_STAGE_NAME: &'static str = K::REMIND_STAGE_NAME;
    const MARKS_OVERDUE: bool = false;

    fn of(row: case::Model) -> Self {
        Self(row, std::marker::PhantomData)
    }

    fn watch(&self) -> Result<Watch> {
        let c = &self.0;
        let stage = K::stage(c).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "case {} is watched for its {} clock but has no reminder stage",
                c.id,
                K::NAME
            ))
        })?;
        Ok(Watch {
            id: c.id,
            version: c.version,
            deadline: K::deadline(c),
            stage: stored_stage(Self::TABLE, c.id, stage)?,
            remind_at: K::remind_at(c),
            overdue: c.overdue,
            escalated: c.escalated,
            updated_at: c.updated_at,
        })
    }

    fn settings<'e>(&self, engine: &'e Engine) -> Result<&'e Settings> {
        Ok(&workflow_of(engine, &self.0)?.settings)
    }

    async fn remind(pass: &Pass<'_>, found: Vec<Found<Self>>) -> Result<usize> {
        let (txn, engine, org, now) = (pass.txn, pass.engine, pass.org, pass.now);
        let ratings = ratings_of(txn, found.iter().map(|f| f.subject.0.rating_id)).await?;
        let people = org.people();
        let mut mails = Vec::new();
        for f in &found {
            let c = &f.subject.0;
            let rating = ratings
                .get(&c.rating_id)
                .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", c.id)))?;
            let def = workflow_of(engine, c)?;
            let facts = case_facts(org, engine, def, c, rating, now);
            for kind in &f.findings.kinds {
                let escalation = *kind == ReminderKind::Escalated;
                let (audience, recipients) = if escalation {
                    ("supervisors", escalation_recipients(people, org, c))
                } else {
                    (
                        reminder_audience(c).as_str(),
                        reminder_recipients(people, org, c, rating),
                    )
                };
                let kind = format!("{}_{}", K::NAME, kind.as_str());
                tracing::debug!(case = %c.id, kind = kind.as_str(), "clock reminder");
                let notice = CaseNotice {
                    kind: kind.clone(),
                    action: None,
                    case: facts.clone(),
                };
                mails.push(NewMail {
                    unique_key: format!(
                        "{}-remind:{}:{}:{kind}",
                        K::NAME,
                        c.id,
                        f.deadline.timestamp_micros()
                    ),
                    kind,
                    case_id: Some(c.id),
                    audience: audience.to_owned(),
                    recipients,
                    letter: render(engine, mail::CASE, &notice)?,
                    status: OutboxStatus::Pending,
                    send_at: (!escalation).then_some(pass.office_hours),
                });
            }
        }
        let written = mails.len();
        insert_mails(txn, mails, now).await?;
        Ok(written)
    }
}

/// The ratings of some cases, by id (500 a query).
async fn ratings_of(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<BTreeMap<Uuid, rating::Model>> {
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut ratings = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for r in rating::Entity::find()
            .filter(rating::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            ratings.insert(r.id, r);
        }
    }
    Ok(ratings)
}

/// The event logs of some cases, each in order (500 cases a query).
pub(crate) async fn events_of_many(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<BTreeMap<Uuid, Vec<event::Model>>> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut logs: BTreeMap<Uuid, Vec<event::Model>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for e in event::Entity::find()
            .filter(event::Column::CaseId.is_in(chunk.iter().copied()))
            .order_by_asc(event::Column::CaseId)
            .order_by_asc(event::Column::Seq)
            .all(db)
            .await?
        {
            logs.entry(e.case_id).or_default().push(e);
        }
    }
    Ok(logs)
}

impl Store {
    /// Makes the daily digest of `day` once: for every address with reminders waiting (status
    /// `digest`), one mail listing them all, overdue first. Returns the number of digests written;
    /// 0 when the day's digest was already made (by this or another process).
    pub async fn queue_digests(
        &self,
        engine: &Engine,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let txn = self.begin_write().await?;
        let claimed = digest_run::Entity::insert(digest_run::ActiveModel {
            day: Set(day.format("%Y-%m-%d").to_string()),
            ran_at: Set(now),
        })
        .on_conflict_do_nothing_on([digest_run::Column::Day])
        .exec_without_returning(&txn)
        .await?;
        if !matches!(claimed, sea_orm::TryInsertResult::Inserted(1)) {
            return Ok(0);
        }
        // The waiting reminders are read a page at a time; each address keeps only the keys of its
        // DIGEST_MAX_ITEMS most urgent cases and counts the rest, so memory is bounded by the
        // addresses, not by how much is waiting.
        let cal = engine.calendar();
        let org = self.org_in(&txn).await?;
        // Staff who chose SMS and have no mailbox are tallied by their login: the reminders name
        // mailboxes only, so they are found by the units the reminder is for.
        let phone_only = PhoneOnly::read(&txn).await?;
        let mut tallies: BTreeMap<Inbox, Tally> = BTreeMap::new();
        let mut after: i64 = 0;
        loop {
            let page: Vec<(i64, String, Option<Uuid>, String, Value)> = outbox::Entity::find()
                .select_only()
                .columns([
                    outbox::Column::Id,
                    outbox::Column::Kind,
                    outbox::Column::CaseId,
                    outbox::Column::Audience,
                    outbox::Column::Recipients,
                ])
                .filter(outbox::Column::Status.eq(OutboxStatus::Digest.as_str()))
                .filter(outbox::Column::Id.gt(after))
                .order_by_asc(outbox::Column::Id)
                .limit(DIGEST_PAGE)
                .into_tuple()
                .all(&txn)
                .await?;
            let Some((last, ..)) = page.last() else { break };
            after = *last;
            let ids: BTreeSet<Uuid> = page.iter().filter_map(|(_, _, id, _, _)| *id).collect();
            let cases: BTreeMap<Uuid, CaseAt> = case::Entity::find()
                .select_only()
                .columns([
                    case::Column::Id,
                    case::Column::Deadline,
                    case::Column::UnitCode,
                    case::Column::OriginUnit,
                    case::Column::RegionCode,
                ])
                .filter(case::Column::Id.is_in(ids))
                .into_tuple::<CaseAt>()
                .all(&txn)
                .await?
                .into_iter()
                .map(|c| (c.0, c))
                .collect();
            for (row, kind, case_id, audience, recipients) in page {
                let Some(at) = case_id.and_then(|id| cases.get(&id)) else {
                    continue;
                };
                let (id, deadline) = (at.0, &at.1);
                let kind = ReminderKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "stored reminder kind `{kind}` of outbox row {row} is not a known value"
                        ))
                    })?;
                let key = Urgency::new(
                    kind,
                    deadline.map(|d| bihuan_core::reminder::working_days_to(cal, now, d)),
                    id,
                );
                let addresses = match &recipients {
                    Value::Array(list) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                for address in addresses {
                    tallies
                        .entry(Inbox::Mail(address.to_owned()))
                        .or_default()
                        .add(key);
                }
                let audience = Audience::parse(&audience).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "stored audience `{audience}` of outbox row {row} is not a known value"
                    ))
                })?;
                let placement = Placement {
                    unit: at.2.as_deref(),
                    origin: &at.3,
                    region: at.4.as_deref(),
                };
                for username in phone_only.of(&org, audience, placement) {
                    tallies
                        .entry(Inbox::Phone(username.to_owned()))
                        .or_default()
                        .add(key);
                }
            }
        }
        // The facts of the cases some digest lists, each case once.
        let listed: BTreeSet<Uuid> = tallies
            .values()
            .flat_map(|t| t.top.iter().map(|k| k.case_id))
            .collect();
        let listed: Vec<Uuid> = listed.into_iter().collect();
        let mut facts = BTreeMap::new();
        for chunk in listed.chunks(500) {
            let cases = case::Entity::find()
                .filter(case::Column::Id.is_in(chunk.iter().copied()))
                .all(&txn)
                .await?;
            let ratings = ratings_of(&txn, cases.iter().map(|c| c.rating_id)).await?;
            for c in &cases {
                let rating = ratings
                    .get(&c.rating_id)
                    .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", c.id)))?;
                let def = workflow_of(engine, c)?;
                facts.insert(c.id, case_facts(&org, engine, def, c, rating, now));
            }
        }
        let date = mail::chinese_date(day);
        // Staff who chose SMS get the day's count on their phone too: by the address their
        // reminders are for.
        let by_sms: BTreeMap<String, (String, String)> = user::Entity::find()
            .filter(user::Column::SmsPhone.is_not_null())
            .filter(user::Column::Disabled.eq(false))
            .all(&txn)
            .await?
            .into_iter()
            .filter_map(|u| Some((u.email?, (u.username, u.sms_phone?))))
            .collect();
        let mut written = 0;
        for (inbox, tally) in tallies {
            let items: Vec<DigestItem> = tally
                .top
                .into_sorted_vec()
                .into_iter()
                .filter_map(|k| {
                    Some(DigestItem {
                        case: facts.get(&k.case_id)?.clone(),
                        kind: k.kind.as_str().to_owned(),
                    })
                })
                .collect();
            let digest = Digest {
                date: date.clone(),
                total: tally.total,
                more: tally.total.saturating_sub(items.len()),
                items,
                overdue: tally.overdue,
                link: engine.letters().link("/cases"),
            };
            let day_key = day.format("%Y-%m-%d");
            // The day's count by SMS: to the staff who chose it, by mailbox or by login.
            let (mailbox, sms) = match &inbox {
                Inbox::Mail(address) => (
                    Some(address),
                    by_sms.get(address).map(|(u, p)| (u.as_str(), p.as_str())),
                ),
                Inbox::Phone(username) => (
                    None,
                    phone_only
                        .phones
                        .get(username)
                        .map(|p| (username.as_str(), p.as_str())),
                ),
            };
            if let Some((username, phone)) = sms {
                let (payload, shown_to) = sms_to(engine, phone, mail::DIGEST, &digest)?;
                insert_message(
                    &txn,
                    NewMessage {
                        channel: OutboxChannel::Sms,
                        kind: "digest".to_owned(),
                        case_id: None,
                        audience: "digest".to_owned(),
                        shown_to,
                        summary: format!("{date}待办短信（{username}）"),
                        payload,
                        unique_key: format!("sms:digest:{day_key}:{username}"),
                    },
                    now,
                )
                .await?;
                if mailbox.is_none() {
                    written += 1;
                }
            }
            let Some(address) = mailbox else { continue };
            let mail = NewMail {
                kind: "digest".to_owned(),
                case_id: None,
                audience: "digest".to_owned(),
                recipients: vec![address.clone()],
                letter: render(engine, mail::DIGEST, &digest)?,
                unique_key: format!("digest:{day_key}:{}", crate::access::token_hash(address)),
                status: OutboxStatus::Pending,
                send_at: None,
            };
            if insert_mail(&txn, mail, now).await? {
                written += 1;
            }
        }
        txn.commit().await?;
        tracing::info!(day = %day, digests = written, "daily digest");
        Ok(written)
    }
}

/// The most waiting reminders one daily digest lists, most urgent first; the rest are counted and
/// linked (a mail of thousands of rows helps nobody, and would be built in memory).
pub const DIGEST_MAX_ITEMS: usize = 50;

/// Waiting reminders read a page at a time by the digest.
const DIGEST_PAGE: u64 = 1000;

/// Whom a daily digest goes to: a mailbox (its SMS too, when its user chose SMS), or a user who
/// chose SMS and has no mailbox (by their login).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Inbox {
    Mail(String),
    Phone(String),
}

/// A case as the digest places it: id, deadline, responsible unit, origin unit, region.
type CaseAt = (
    Uuid,
    Option<DateTime<Utc>>,
    Option<String>,
    String,
    Option<String>,
);

/// The enabled staff who chose SMS and have no mailbox: by role and unit, and their numbers.
struct PhoneOnly {
    by_unit: BTreeMap<(Role, String), Vec<String>>,
    phones: BTreeMap<String, String>,
}

impl PhoneOnly {
    async fn read(db: &impl ConnectionTrait) -> Result<Self> {
        let users: Vec<(String, Code<Role>, String, String)> = user::Entity::find()
            .select_only()
            .columns([
                user::Column::Username,
                user::Column::Role,
                user::Column::UnitCode,
                user::Column::SmsPhone,
            ])
            .filter(user::Column::SmsPhone.is_not_null())
            .filter(user::Column::Email.is_null())
            .filter(user::Column::UnitCode.is_not_null())
            .filter(user::Column::Disabled.eq(false))
            .into_tuple()
            .all(db)
            .await?;
        let mut by_unit: BTreeMap<(Role, String), Vec<String>> = BTreeMap::new();
        let mut phones = BTreeMap::new();
        for (username, role, unit, phone) in users {
            by_unit
                .entry((*role, unit))
                .or_default()
                .push(username.clone());
            phones.insert(username, phone);
        }
        Ok(Self { by_unit, phones })
    }

    /// The logins of those of them a notice to `audience` of a case placed `at` is for.
    fn of(&self, org: &OrgTree, audience: Audience, at: Placement<'_>) -> Vec<&str> {
        let Some((role, units)) = audience_staff(org, audience, at) else {
            return Vec::new();
        };
        units
            .into_iter()
            .filter_map(|unit| self.by_unit.get(&(role, unit)))
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

/// How urgent a waiting reminder is: overdue first, then the fewest working days left, then by case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Urgency {
    /// Not overdue (sorts after the overdue ones).
    later: bool,
    working_days: Option<i64>,
    case_id: Uuid,
    kind: ReminderKind,
}

impl Urgency {
    fn new(kind: ReminderKind, working_days: Option<i64>, case_id: Uuid) -> Self {
        Self {
            later: kind != ReminderKind::Overdue,
            working_days,
            case_id,
            kind,
        }
    }
}

/// One address's digest while the waiting reminders are read: the most urgent few, and counts.
#[derive(Debug, Default)]
struct Tally {
    /// The `DIGEST_MAX_ITEMS` most urgent (a max-heap: the least urgent of them on top).
    top: std::collections::BinaryHeap<Urgency>,
    total: usize,
    overdue: usize,
}

impl Tally {
    fn add(&mut self, key: Urgency) {
        self.total += 1;
        if key.kind == ReminderKind::Overdue {
            self.overdue += 1;
        }
        self.top.push(key);
        if self.top.len() > DIGEST_MAX_ITEMS {
            self.top.pop();
        }
    }
}
