//! Reminders of a deadline — due soon, overdue, escalated (督办) — as arithmetic on the working-day
//! calendar (docs/DOMAIN.md, "Time limits").
//!
//! A deadline is the end (24:00) of a working day D. With the defaults of the workflow files:
//! - due soon: one working day before the deadline, i.e. when D begins;
//! - overdue: at the deadline;
//! - escalated: one further working day later, at the end of the first working day after D.
//!
//! A case remembers how far its reminders went for its current deadline (its *stage*), so every
//! reminder is found once; a pass that comes late finds only what still matters (an overdue case gets
//! no "due soon").

use chrono::{DateTime, Duration, Utc};

use crate::calendar::{DeadlineBasis, WorkingCalendar};
use crate::workflow::Settings;

/// One kind of reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReminderKind {
    /// 即将到期: the last working day before the deadline has begun.
    DueSoon,
    /// 已超期: the deadline passed.
    Overdue,
    /// 督办: overdue for one more working day; goes to the supervisors above the unit.
    Escalated,
}

impl ReminderKind {
    /// Every kind, in the order they come.
    pub const ALL: [ReminderKind; 3] = [
        ReminderKind::DueSoon,
        ReminderKind::Overdue,
        ReminderKind::Escalated,
    ];

    /// The identifier used in outbox rows and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::DueSoon => "due_soon",
            ReminderKind::Overdue => "overdue",
            ReminderKind::Escalated => "escalated",
        }
    }

    /// The Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            ReminderKind::DueSoon => "即将到期",
            ReminderKind::Overdue => "已超期",
            ReminderKind::Escalated => "超期督办",
        }
    }

    /// The stage a case reaches once this reminder is found.
    pub fn stage(self) -> Stage {
        match self {
            ReminderKind::DueSoon => Stage::DueSoon,
            ReminderKind::Overdue => Stage::Overdue,
            ReminderKind::Escalated => Stage::Done,
        }
    }
}

/// How far the reminders of a subject's current deadline went, in order; stored as its
/// [`code`](Stage::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// None found yet.
    Fresh,
    /// "Due soon" was found.
    DueSoon,
    /// "Overdue" was found.
    Overdue,
    /// Every reminder was found (escalated), or there is nothing to remind of (no deadline): out of
    /// the scheduler's way.
    Done,
}

impl Stage {
    /// The stored value: 0 to 3, in order, so a scan can ask for `< Done` in SQL.
    pub fn code(self) -> i16 {
        match self {
            Stage::Fresh => 0,
            Stage::DueSoon => 1,
            Stage::Overdue => 2,
            Stage::Done => 3,
        }
    }

    /// The stage of a stored value; `None` for a value that names none.
    pub fn from_code(code: i16) -> Option<Self> {
        [Stage::Fresh, Stage::DueSoon, Stage::Overdue, Stage::Done]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// When each reminder of one deadline falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderTimes {
    /// When the case becomes due soon.
    pub due_soon: DateTime<Utc>,
    /// When it becomes overdue (the deadline).
    pub overdue: DateTime<Utc>,
    /// When it is escalated.
    pub escalate: DateTime<Utc>,
}

impl ReminderTimes {
    /// The reminder times of a deadline under a workflow's settings.
    pub fn of(cal: &WorkingCalendar, settings: &Settings, deadline: DateTime<Utc>) -> Self {
        let last_day = cal.last_day(deadline);
        let due_soon = match settings.due_soon_working_days {
            0 => deadline,
            n => cal.start_of_day(cal.nth_working_day_before(last_day, n - 1)),
        };
        let escalate = match settings.escalate_after_working_days {
            0 => deadline,
            n => {
                cal.deadline(DeadlineBasis {
                    // Counting starts the day after the deadline's last day (§201).
                    start: deadline - Duration::seconds(1),
                    working_days: n,
                })
                .at
            }
        };
        Self {
            due_soon: due_soon.min(deadline),
            overdue: deadline,
            escalate: escalate.max(deadline),
        }
    }

    /// The time of the reminder after `stage`, `None` once all were found.
    pub fn next_after(&self, stage: Stage) -> Option<DateTime<Utc>> {
        match stage {
            Stage::Fresh => Some(self.due_soon),
            Stage::DueSoon => Some(self.overdue),
            Stage::Overdue => Some(self.escalate),
            Stage::Done => None,
        }
    }

    /// What a pass at `now` finds for a case at `stage`.
    pub fn findings(&self, stage: Stage, now: DateTime<Utc>) -> Findings {
        let mut kinds = Vec::new();
        if now >= self.escalate && stage < Stage::Done {
            if stage < ReminderKind::Overdue.stage() {
                kinds.push(ReminderKind::Overdue);
            }
            kinds.push(ReminderKind::Escalated);
        } else if now >= self.overdue && stage < ReminderKind::Overdue.stage() {
            kinds.push(ReminderKind::Overdue);
        } else if now >= self.due_soon && stage < ReminderKind::DueSoon.stage() {
            kinds.push(ReminderKind::DueSoon);
        }
        let stage = kinds.last().map_or(stage, |k| k.stage());
        Findings {
            kinds,
            stage,
            next_at: self.next_after(stage),
        }
    }
}

/// What one look at a deadline found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// The reminders found now, in order (overdue before escalated).
    pub kinds: Vec<ReminderKind>,
    /// The case's stage afterwards.
    pub stage: Stage,
    /// When to look again.
    pub next_at: Option<DateTime<Utc>>,
}

/// Whether a case or a work item is overdue (超期) at `now`, the one definition every list, page,
/// export and figure uses: the scheduler marked it so, or its deadline has passed. A closed subject
/// has no deadline left to miss; callers that keep a closed row's deadline ask only of open ones.
/// The SQL filters (`deadline <= now`) are this rule for rows the scheduler has not marked yet.
pub fn is_overdue(marked: bool, deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    marked || deadline.is_some_and(|d| d <= now)
}

/// How a deadline stands at `now`, for mail and pages: working days left (positive), or working days
/// overdue (negative), or 0 when it ends today.
pub fn working_days_to(cal: &WorkingCalendar, now: DateTime<Utc>, deadline: DateTime<Utc>) -> i64 {
    if now < deadline {
        i64::from(cal.working_days_left(now, deadline))
    } else {
        let last = cal.last_day(deadline);
        -i64::from(cal.working_days_in(last, cal.local_date(now)).max(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Asia::Shanghai;

    use super::*;

    const CAL_2021: &str = include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml");

    fn cal() -> WorkingCalendar {
        let mut cal = WorkingCalendar::new(Shanghai);
        cal.add_file("cal.toml", CAL_2021).unwrap();
        cal
    }

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The end (24:00) of a local day.
    fn end_of(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        cal().start_of_day(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .succ_opt()
                .unwrap(),
        )
    }

    #[test]
    fn reminder_times_follow_the_working_days() {
        let settings = Settings::default();
        // (deadline's last day, due soon begins, escalation at the end of)
        let table = [
            // An ordinary Wednesday: due soon Wednesday 00:00, escalated at the end of Thursday.
            ((2021, 5, 12), (2021, 5, 12), (2021, 5, 13)),
            // Friday 2021-09-17: the next working day is the make-up Saturday 9/18, before 中秋 9/19–21.
            ((2021, 9, 17), (2021, 9, 17), (2021, 9, 18)),
            // Thursday 2021-09-30: 国庆 10/1–7 follows; escalation waits for Friday 10/8.
            ((2021, 9, 30), (2021, 9, 30), (2021, 10, 8)),
            // Friday 2021-02-05: the make-up Sunday 2/7 is the next working day.
            ((2021, 2, 5), (2021, 2, 5), (2021, 2, 7)),
            // Wednesday 2021-02-10: 春节 2/11–17 follows; escalation on Thursday 2/18.
            ((2021, 2, 10), (2021, 2, 10), (2021, 2, 18)),
        ];
        let cal = cal();
        for ((y, m, d), (sy, sm, sd), (ey, em, ed)) in table {
            let deadline = end_of(y, m, d);
            let times = ReminderTimes::of(&cal, &settings, deadline);
            assert_eq!(
                times.due_soon,
                local(sy, sm, sd, 0, 0),
                "due soon of {y}-{m}-{d}"
            );
            assert_eq!(times.overdue, deadline);
            assert_eq!(
                times.escalate,
                end_of(ey, em, ed),
                "escalation of {y}-{m}-{d}"
            );
        }
    }

    #[test]
    fn two_days_notice_skips_the_holiday() {
        let settings = Settings {
            due_soon_working_days: 2,
            escalate_after_working_days: 2,
            ..Settings::default()
        };
        let cal = cal();
        // Deadline Friday 2021-10-08 (after 国庆): two working days before begins on Thursday 9/30.
        let times = ReminderTimes::of(&cal, &settings, end_of(2021, 10, 8));
        assert_eq!(times.due_soon, local(2021, 9, 30, 0, 0));
        // Escalation two working days after 10/8: Saturday 10/9 (make-up) and Monday 10/11.
        assert_eq!(times.escalate, end_of(2021, 10, 11));
    }

    /// (now, stage before, found, stage after, next look).
    type Row = (
        DateTime<Utc>,
        Stage,
        &'static [ReminderKind],
        Stage,
        Option<DateTime<Utc>>,
    );

    #[test]
    fn findings_come_once_and_in_order() {
        let cal = cal();
        let times = ReminderTimes::of(&cal, &Settings::default(), end_of(2021, 9, 30));
        let table: [Row; 8] = [
            (
                local(2021, 9, 29, 23, 59),
                Stage::Fresh,
                &[],
                Stage::Fresh,
                Some(times.due_soon),
            ),
            (
                local(2021, 9, 30, 0, 0),
                Stage::Fresh,
                &[ReminderKind::DueSoon],
                Stage::DueSoon,
                Some(times.overdue),
            ),
            (
                local(2021, 9, 30, 9, 0),
                Stage::DueSoon,
                &[],
                Stage::DueSoon,
                Some(times.overdue),
            ),
            (
                local(2021, 10, 1, 0, 0),
                Stage::DueSoon,
                &[ReminderKind::Overdue],
                Stage::Overdue,
                Some(times.escalate),
            ),
            // Over the holiday nothing more happens.
            (
                local(2021, 10, 7, 12, 0),
                Stage::Overdue,
                &[],
                Stage::Overdue,
                Some(times.escalate),
            ),
            (
                local(2021, 10, 9, 0, 0),
                Stage::Overdue,
                &[ReminderKind::Escalated],
                Stage::Done,
                None,
            ),
            // A pass that missed everything finds overdue and escalation, not "due soon".
            (
                local(2021, 10, 9, 0, 0),
                Stage::Fresh,
                &[ReminderKind::Overdue, ReminderKind::Escalated],
                Stage::Done,
                None,
            ),
            (
                local(2021, 10, 20, 0, 0),
                Stage::Done,
                &[],
                Stage::Done,
                None,
            ),
        ];
        for (now, stage, kinds, after, next) in table {
            let found = times.findings(stage, now);
            assert_eq!(found.kinds, kinds, "at {now} from stage {stage:?}");
            assert_eq!(found.stage, after, "at {now} from stage {stage:?}");
            assert_eq!(found.next_at, next, "at {now} from stage {stage:?}");
        }
    }

    #[test]
    fn a_stage_is_stored_as_its_code_and_nothing_else_is_one() {
        for stage in [Stage::Fresh, Stage::DueSoon, Stage::Overdue, Stage::Done] {
            assert_eq!(Stage::from_code(stage.code()), Some(stage));
        }
        assert_eq!(Stage::from_code(4), None);
        assert_eq!(Stage::from_code(-1), None);
    }

    #[test]
    fn days_to_a_deadline_count_working_days() {
        let cal = cal();
        let deadline = end_of(2021, 9, 30);
        let table = [
            (local(2021, 9, 28, 10, 0), 2),
            (local(2021, 9, 30, 10, 0), 0),
            (local(2021, 10, 1, 10, 0), -1),
            (local(2021, 10, 8, 10, 0), -1),
            (local(2021, 10, 9, 10, 0), -2),
        ];
        for (now, expected) in table {
            assert_eq!(working_days_to(&cal, now, deadline), expected, "at {now}");
        }
    }
}
