//! When a work item next owes something: its completion by its date, a progress report each period
//! for ongoing and scheduled items, or the supervisors' acceptance once submitted.
//!
//! Periods are calendar months (or groups of months: 3 = quarters from January). A period's report
//! is due at the end (24:00) of the period's last working day; a report made in a period settles that
//! period, so the next one is due at the end of the following period.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::Serialize;

use super::Due;
use crate::calendar::WorkingCalendar;

/// How often ongoing and scheduled items report, in months (1 monthly, the default; 3 quarterly).
pub const DEFAULT_REPORT_MONTHS: u32 = 1;

/// What a work item owes by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owed {
    /// Done by its date (完成时限).
    Completion,
    /// This period's progress report (进展报告).
    Report,
    /// The supervisors' acceptance of a submitted item (the workflow state's time limit).
    Acceptance,
}

impl Owed {
    /// Every kind with its identifier (API, database).
    pub const ALL: [(Owed, &'static str); 3] = [
        (Owed::Completion, "completion"),
        (Owed::Report, "report"),
        (Owed::Acceptance, "acceptance"),
    ];

    /// The identifier: `completion`, `report`, `acceptance`.
    pub fn as_str(self) -> &'static str {
        Owed::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("", |(_, s)| s)
    }

    /// The kind of this identifier.
    pub fn parse(text: &str) -> Option<Self> {
        Owed::ALL.iter().find(|(_, s)| *s == text).map(|(o, _)| *o)
    }

    /// The Chinese words for it.
    pub fn label(self) -> &'static str {
        match self {
            Owed::Completion => "完成时限",
            Owed::Report => "进展报告",
            Owed::Acceptance => "验收",
        }
    }
}

/// A work item's position as [`next_deadline`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct TaskClock {
    /// Its 完成时限.
    pub due: Due,
    /// Its plan's report period in months.
    pub report_months: u32,
    /// The deadline its workflow state sets (a submitted item's acceptance), if any.
    pub state_deadline: Option<DateTime<Utc>>,
    /// Whether its state is terminal (done).
    pub terminal: bool,
    /// Its last progress report.
    pub last_report: Option<DateTime<Utc>>,
    /// When it began to be tracked (the plan's import).
    pub since: DateTime<Utc>,
}

/// The item's next deadline and what it owes by then; `None` once done.
pub fn next_deadline(cal: &WorkingCalendar, clock: &TaskClock) -> Option<(DateTime<Utc>, Owed)> {
    if clock.terminal {
        return None;
    }
    if let Some(at) = clock.state_deadline {
        return Some((at, Owed::Acceptance));
    }
    match clock.due {
        Due::Date(day) => Some((end_of(cal, day), Owed::Completion)),
        Due::Ongoing | Due::Scheduled => {
            let months = clock.report_months.max(1);
            let due = match clock.last_report {
                Some(at) => {
                    let next = period_start(cal.local_date(at), months)
                        .checked_add_months(Months::new(months))
                        .unwrap_or(NaiveDate::MAX);
                    period_due(cal, next, months)
                }
                None => period_due(cal, cal.local_date(clock.since), months),
            };
            Some((due, Owed::Report))
        }
    }
}

/// The first day of the period holding `day`.
pub fn period_start(day: NaiveDate, months: u32) -> NaiveDate {
    let months = months.max(1);
    let month0 = (day.month0() / months) * months;
    NaiveDate::from_ymd_opt(day.year(), month0 + 1, 1).unwrap_or(day)
}

/// When the report of the period holding `day` is due: 24:00 of the period's last working day.
pub fn period_due(cal: &WorkingCalendar, day: NaiveDate, months: u32) -> DateTime<Utc> {
    let start = period_start(day, months);
    let last = start
        .checked_add_months(Months::new(months.max(1)))
        .and_then(|next| next.pred_opt())
        .unwrap_or(NaiveDate::MAX);
    end_of(cal, cal.nth_working_day_before(last, 0))
}

/// 24:00 of a day.
fn end_of(cal: &WorkingCalendar, day: NaiveDate) -> DateTime<Utc> {
    cal.start_of_day(day.succ_opt().unwrap_or(NaiveDate::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn cal() -> WorkingCalendar {
        let mut cal = WorkingCalendar::new(chrono_tz::Asia::Shanghai);
        cal.add_file(
            "cn.toml",
            include_str!("../../../../workflows/calendars/cn-mainland-2021-2026.toml"),
        )
        .unwrap();
        cal
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn clock(due: Due, last_report: Option<DateTime<Utc>>) -> TaskClock {
        TaskClock {
            due,
            report_months: 1,
            state_deadline: None,
            terminal: false,
            last_report,
            since: beijing(2021, 5, 6, 10),
        }
    }

    #[test]
    fn deadlines_by_kind_and_report() {
        let cal = cal();
        let ongoing = Due::Ongoing;
        // (clock, expected deadline as the start of the local day after it, owed)
        let table = [
            // Imported in May: May's report is due when May's last working day (Mon 31) ends…
            (clock(ongoing, None), Some((day(2021, 6, 1), Owed::Report))),
            // …a report in May settles May; June 30 is a Wednesday.
            (
                clock(ongoing, Some(beijing(2021, 5, 20, 9))),
                Some((day(2021, 7, 1), Owed::Report)),
            ),
            // September's report, made on Sept 30: October's last working day is Fri 29 (国庆
            // is 1–7, with make-up Saturday Oct 9).
            (
                clock(Due::Scheduled, Some(beijing(2021, 9, 30, 9))),
                Some((day(2021, 10, 30), Owed::Report)),
            ),
            // A dated item owes completion by the end of its date.
            (
                clock(Due::Date(day(2021, 12, 31)), None),
                Some((day(2022, 1, 1), Owed::Completion)),
            ),
            // Submitted: the acceptance's deadline rules.
            (
                TaskClock {
                    state_deadline: Some(beijing(2021, 6, 8, 0)),
                    ..clock(Due::Date(day(2021, 12, 31)), None)
                },
                Some((day(2021, 6, 8), Owed::Acceptance)),
            ),
            (
                TaskClock {
                    terminal: true,
                    ..clock(ongoing, None)
                },
                None,
            ),
        ];
        for (i, (c, expected)) in table.into_iter().enumerate() {
            let got = next_deadline(&cal, &c);
            let expected = expected.map(|(d, owed)| (cal.start_of_day(d), owed));
            assert_eq!(got, expected, "row {i}");
        }
    }

    #[test]
    fn quarterly_periods() {
        let cal = cal();
        assert_eq!(period_start(day(2021, 5, 6), 3), day(2021, 4, 1));
        assert_eq!(period_start(day(2021, 12, 31), 3), day(2021, 10, 1));
        // Q2 2021 ends Wednesday June 30.
        assert_eq!(
            period_due(&cal, day(2021, 5, 6), 3),
            cal.start_of_day(day(2021, 7, 1))
        );
        // December 2022: the 31st is a Saturday, the 30th a Friday.
        assert_eq!(
            period_due(&cal, day(2022, 12, 1), 1),
            cal.start_of_day(day(2022, 12, 31))
        );
    }
}
