//! Reminders: finding the cases that are due soon, overdue or to escalate, and the daily digest.
//!
//! Each finding marks the case (its reminder stage; `overdue`, `escalated`) and writes its outbox rows
//! in one transaction. The case's `version` guards the write, and each row has a unique key per
//! (case, state entry, deadline, kind), so however many passes or processes look at the same moment,
//! each reminder is written once. Due-soon and overdue reminders wait in the outbox (status `digest`)
//! for the recipients' daily digest; an escalation is a mail of its own.

use std::collections::BTreeMap;

use bihuan_core::mail::{self, CaseNotice, Digest, DigestItem};
use bihuan_core::{Engine, ReminderKind, ReminderTimes};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::Value;

use crate::cases::workflow_of;
use crate::entity::{case, digest_run, outbox, rating, unit};
use crate::outbox::{
    DIGEST, NewMail, PENDING, case_facts, escalation_recipients, facts_with_unit, insert_mail,
    lapse_reminders, rating_of, reminder_recipients, render,
};
use crate::{Result, Store};

/// What one look at the deadlines did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReminderReport {
    /// Reminders found (due soon, overdue, escalated).
    pub found: usize,
    /// Cases another pass (or an action) changed first; they are looked at again next time.
    pub overtaken: usize,
}

impl Store {
    /// Finds every reminder due at `now`, `page` cases per query.
    pub async fn find_reminders(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
        page: u64,
    ) -> Result<ReminderReport> {
        let mut report = ReminderReport::default();
        loop {
            let due = case::Entity::find()
                .filter(case::Column::Deadline.is_not_null())
                .filter(case::Column::RemindStage.lt(bihuan_core::reminder::LAST_STAGE))
                .filter(
                    Condition::any()
                        .add(case::Column::RemindAt.is_null())
                        .add(case::Column::RemindAt.lte(now)),
                )
                .order_by_asc(case::Column::RemindAt)
                .order_by_asc(case::Column::Id)
                .limit(page)
                .all(&self.db)
                .await?;
            let looked = due.len();
            let mut progressed = false;
            for c in due {
                match self.remind(engine, &c, now).await? {
                    Some(found) => {
                        report.found += found;
                        progressed = true;
                    }
                    None => report.overtaken += 1,
                }
            }
            if (looked as u64) < page || !progressed {
                return Ok(report);
            }
        }
    }

    /// Looks at one case's deadline: `Some(reminders found)`, or `None` when the case changed first.
    async fn remind(
        &self,
        engine: &Engine,
        c: &case::Model,
        now: DateTime<Utc>,
    ) -> Result<Option<usize>> {
        let Some(deadline) = c.deadline else {
            return Ok(Some(0));
        };
        let def = workflow_of(engine, c)?;
        let times = ReminderTimes::of(engine.calendar(), &def.settings, deadline);
        let findings = times.findings(c.remind_stage, now);
        let txn = self.begin_write().await?;
        let mut mark = case::ActiveModel {
            remind_stage: Set(findings.stage),
            remind_at: Set(findings.next_at),
            ..Default::default()
        };
        if !findings.kinds.is_empty() {
            // A reminder changes what people see of the case: its version moves on, so an action
            // decided on the old view is refused rather than silently undoing the mark.
            mark.version = Set(c.version + 1);
            mark.updated_at = Set(now);
            mark.overdue = Set(c.overdue || findings.stage >= ReminderKind::Overdue.stage());
            mark.escalated = Set(c.escalated || findings.kinds.contains(&ReminderKind::Escalated));
        }
        let marked = case::Entity::update_many()
            .set(mark)
            .filter(case::Column::Id.eq(c.id))
            .filter(case::Column::Version.eq(c.version))
            .filter(case::Column::RemindStage.eq(c.remind_stage))
            .exec(&txn)
            .await?;
        if marked.rows_affected == 0 {
            return Ok(None);
        }
        if findings.kinds.is_empty() {
            txn.commit().await?;
            return Ok(Some(0));
        }
        let rating = rating_of(&txn, c).await?;
        let org = self.org_in(&txn).await?;
        if !c.overdue && findings.stage >= ReminderKind::Overdue.stage() {
            // Now an open overdue case: it counts as late in the on-time rate.
            let events = crate::cases::events_of(&txn, c.id).await?;
            crate::metrics::record_case_change(
                &txn,
                engine,
                c,
                &rating,
                (&events, false),
                (&events, true),
            )
            .await?;
        }
        let entry = format!(
            "{}:{}:{}",
            c.id,
            c.state_entered_at.timestamp_micros(),
            deadline.timestamp_micros()
        );
        let facts = case_facts(&org, engine, def, c, &rating, now);
        for kind in &findings.kinds {
            let (audience, recipients, status) = if *kind == ReminderKind::Escalated {
                (
                    "supervisors",
                    escalation_recipients(&txn, &org, c).await?,
                    PENDING,
                )
            } else {
                // The newest reminder of a case replaces the one before in the digest.
                lapse_reminders(&txn, c.id).await?;
                let audience = if c.unit_code.is_some() {
                    "responsible_unit"
                } else {
                    "center"
                };
                (
                    audience,
                    reminder_recipients(&txn, &org, c, &rating).await?,
                    DIGEST,
                )
            };
            let notice = CaseNotice {
                kind: kind.as_str().to_owned(),
                action: None,
                case: facts.clone(),
            };
            let mail = NewMail {
                kind: kind.as_str().to_owned(),
                case_id: Some(c.id),
                audience: audience.to_owned(),
                recipients,
                letter: render(engine, mail::CASE, &notice)?,
                unique_key: format!("remind:{entry}:{}", kind.as_str()),
                status,
                send_at: None,
            };
            insert_mail(&txn, mail, now).await?;
            tracing::info!(case = %c.id, kind = kind.as_str(), "reminder");
        }
        txn.commit().await?;
        Ok(Some(findings.kinds.len()))
    }

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
        let waiting = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(DIGEST))
            .all(&txn)
            .await?;
        let case_ids: Vec<_> = waiting.iter().filter_map(|r| r.case_id).collect();
        let cases: BTreeMap<_, _> = case::Entity::find()
            .filter(case::Column::Id.is_in(case_ids))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let ratings: BTreeMap<_, _> = rating::Entity::find()
            .filter(rating::Column::Id.is_in(cases.values().map(|c| c.rating_id)))
            .all(&txn)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let units: BTreeMap<_, _> = unit::Entity::find()
            .all(&txn)
            .await?
            .into_iter()
            .map(|u| (u.code, u.name))
            .collect();
        let mut by_address: BTreeMap<String, Vec<DigestItem>> = BTreeMap::new();
        for row in &waiting {
            let Some(c) = row.case_id.and_then(|id| cases.get(&id)) else {
                continue;
            };
            let (Some(rating), Ok(def)) = (ratings.get(&c.rating_id), workflow_of(engine, c))
            else {
                continue;
            };
            let unit = match &c.unit_code {
                Some(code) => units.get(code).cloned().unwrap_or_else(|| code.clone()),
                None => format!(
                    "{}（待转办）",
                    units
                        .get(&c.origin_unit)
                        .cloned()
                        .unwrap_or_else(|| c.origin_unit.clone())
                ),
            };
            let facts = facts_with_unit(engine, def, c, rating, unit, now);
            let addresses = match &row.recipients {
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            for address in addresses {
                by_address
                    .entry(address.to_owned())
                    .or_default()
                    .push(DigestItem {
                        kind: row.kind.clone(),
                        case: facts.clone(),
                    });
            }
        }
        let date = mail::chinese_date(day);
        let mut written = 0;
        for (address, mut items) in by_address {
            items.sort_by(|a, b| {
                (b.kind == "overdue")
                    .cmp(&(a.kind == "overdue"))
                    .then(a.case.working_days.cmp(&b.case.working_days))
                    .then(a.case.case_id.cmp(&b.case.case_id))
            });
            let overdue = items.iter().filter(|i| i.kind == "overdue").count();
            let digest = Digest {
                date: date.clone(),
                items,
                overdue,
                link: engine.letters().link("/cases"),
            };
            let mail = NewMail {
                kind: "digest".to_owned(),
                case_id: None,
                audience: "digest".to_owned(),
                recipients: vec![address.clone()],
                letter: render(engine, mail::DIGEST, &digest)?,
                unique_key: format!(
                    "digest:{}:{}",
                    day.format("%Y-%m-%d"),
                    crate::access::token_hash(&address)
                ),
                status: PENDING,
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
