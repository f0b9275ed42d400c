//! The working-day calendar (工作日历) and deadline arithmetic.
//!
//! Working days are not Monday to Friday: every year the State Council announces holidays and make-up
//! working days (调休上班日). The calendar is data, keyed by year. A year without data is computed
//! provisionally (weekends and 元旦 only) and every answer that touched such a year says so.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

/// A problem in a calendar data file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// A date is listed under a year it does not belong to.
    #[error("{file}: {date} is listed under year {year}")]
    WrongYear {
        file: String,
        year: i32,
        date: NaiveDate,
    },
    /// A date is both a holiday and a make-up working day.
    #[error("{file}: {date} is listed both as a holiday and as a make-up working day")]
    HolidayAndWorkday { file: String, date: NaiveDate },
    /// A make-up working day that is not on a weekend makes no sense.
    #[error("{file}: make-up working day {date} is a {weekday}, not a weekend day")]
    WorkdayNotOnWeekend {
        file: String,
        date: NaiveDate,
        weekday: Weekday,
    },
    /// Two files (or two tables) give the same year.
    #[error("{file}: year {year} is defined twice")]
    DuplicateYear { file: String, year: i32 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    years: BTreeMap<String, YearFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    #[serde(default)]
    holidays: Vec<DayFile>,
    #[serde(default)]
    workdays: Vec<DayFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayFile {
    date: toml::value::Datetime,
    name: String,
}

/// The announced schedule of one year.
#[derive(Debug, Clone, Default)]
struct YearSchedule {
    holidays: BTreeMap<NaiveDate, String>,
    workdays: BTreeMap<NaiveDate, String>,
}

/// What one calendar day is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day<'a> {
    /// Whether people work that day.
    pub working: bool,
    /// True when the year has no announced schedule and the answer is a guess from weekends and 元旦.
    pub provisional: bool,
    /// The holiday or make-up day's name, when the day is one.
    pub name: Option<&'a str>,
}

/// Where a deadline comes from: the instant a step started and the working days it was given.
///
/// Keeping the basis rather than only the computed instant lets a provisional deadline be recomputed
/// once the year's schedule is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineBasis {
    /// When the step started (its start day is not counted, 民法典 §201).
    pub start: DateTime<Utc>,
    /// How many working days it was given, extensions included.
    pub working_days: u32,
}

/// A computed deadline: the end (24:00) of a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The instant the deadline passes.
    pub at: DateTime<Utc>,
    /// True when a year without announced data took part in the computation.
    pub provisional: bool,
}

/// The working-day calendar of one deployment.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    tz: Tz,
    years: BTreeMap<i32, YearSchedule>,
}

impl WorkingCalendar {
    /// An empty calendar in the given time zone: every year is provisional.
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            years: BTreeMap::new(),
        }
    }

    /// Parses one calendar file (see `workflows/calendars/`) and adds its years.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), Vec<CalendarError>> {
        let parsed: CalendarFile = toml::from_str(text).map_err(|e| {
            vec![CalendarError::Syntax {
                file: file.to_owned(),
                message: e.to_string(),
            }]
        })?;
        let mut problems = Vec::new();
        let mut years = BTreeMap::new();
        for (key, year_file) in parsed.years {
            let Ok(year) = key.parse::<i32>() else {
                problems.push(CalendarError::Syntax {
                    file: file.to_owned(),
                    message: format!("[years.{key}] is not a year"),
                });
                continue;
            };
            if self.years.contains_key(&year) {
                problems.push(CalendarError::DuplicateYear {
                    file: file.to_owned(),
                    year,
                });
                continue;
            }
            match parse_year(file, year, year_file) {
                Ok(schedule) => {
                    years.insert(year, schedule);
                }
                Err(mut errs) => problems.append(&mut errs),
            }
        }
        if problems.is_empty() {
            self.years.extend(years);
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The time zone in which days begin and end.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The years that have announced data.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Whether the year's official schedule is known.
    pub fn has_year(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// Which of the current and the next year (as of `today`) still lack data.
    pub fn missing_years_around(&self, today: NaiveDate) -> Vec<i32> {
        [today.year(), today.year() + 1]
            .into_iter()
            .filter(|y| !self.has_year(*y))
            .collect()
    }

    /// What the given day is.
    pub fn day(&self, date: NaiveDate) -> Day<'_> {
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        match self.years.get(&date.year()) {
            Some(schedule) => {
                if let Some(name) = schedule.holidays.get(&date) {
                    Day {
                        working: false,
                        provisional: false,
                        name: Some(name),
                    }
                } else if let Some(name) = schedule.workdays.get(&date) {
                    Day {
                        working: true,
                        provisional: false,
                        name: Some(name),
                    }
                } else {
                    Day {
                        working: !weekend,
                        provisional: false,
                        name: None,
                    }
                }
            }
            None => {
                let new_year = date.month() == 1 && date.day() == 1;
                Day {
                    working: !weekend && !new_year,
                    provisional: true,
                    name: new_year.then_some("元旦"),
                }
            }
        }
    }

    /// The local date of an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// The `n`th working day after `start` (the start day not counted), or with `n == 0` the first
    /// working day on or after `start`; plus whether the answer is provisional.
    pub fn nth_working_day_after(&self, start: NaiveDate, n: u32) -> (NaiveDate, bool) {
        let mut provisional = false;
        let mut date = start;
        if n == 0 {
            loop {
                let day = self.day(date);
                provisional |= day.provisional;
                if day.working {
                    return (date, provisional);
                }
                date = next_day(date);
            }
        }
        let mut counted = 0;
        while counted < n {
            date = next_day(date);
            let day = self.day(date);
            provisional |= day.provisional;
            if day.working {
                counted += 1;
            }
        }
        (date, provisional)
    }

    /// The deadline of a step: the end, 24:00 local time, of the last working day it was given.
    pub fn deadline(&self, basis: DeadlineBasis) -> Deadline {
        let start = self.local_date(basis.start);
        let (last_day, provisional) = self.nth_working_day_after(start, basis.working_days);
        Deadline {
            at: self.start_of_day(next_day(last_day)),
            provisional,
        }
    }

    /// The last day a deadline covers (the day whose 24:00 it is).
    pub fn last_day(&self, deadline: DateTime<Utc>) -> NaiveDate {
        self.local_date(deadline - chrono::Duration::seconds(1))
    }

    /// The whole working days left before a deadline as of `at`: the working days after `at`'s day
    /// up to and including the deadline's last day. Zero when the deadline has passed or ends today.
    pub fn working_days_left(&self, at: DateTime<Utc>, deadline: DateTime<Utc>) -> u32 {
        self.working_days_in(self.local_date(at), self.last_day(deadline))
    }

    /// The working days `d` with `after < d <= until`.
    pub fn working_days_in(&self, after: NaiveDate, until: NaiveDate) -> u32 {
        let mut count = 0;
        let mut date = after;
        while date < until {
            date = next_day(date);
            if self.day(date).working {
                count += 1;
            }
        }
        count
    }

    /// The `n`th working day before `day` (not counted), or with `n == 0` the last working day on or
    /// before it.
    pub fn nth_working_day_before(&self, day: NaiveDate, n: u32) -> NaiveDate {
        let mut date = day;
        if n == 0 {
            while !self.day(date).working && date > NaiveDate::MIN {
                date = previous_day(date);
            }
            return date;
        }
        let mut counted = 0;
        while counted < n && date > NaiveDate::MIN {
            date = previous_day(date);
            if self.day(date).working {
                counted += 1;
            }
        }
        date
    }

    /// The instant a local day begins.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        let midnight = date.and_time(NaiveTime::MIN);
        match self.tz.from_local_datetime(&midnight) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.with_timezone(&Utc)
            }
            // A zone that skips midnight starts the day at the first instant that exists.
            chrono::LocalResult::None => self.tz.from_utc_datetime(&midnight).with_timezone(&Utc),
        }
    }
}

fn previous_day(date: NaiveDate) -> NaiveDate {
    date.checked_sub_days(Days::new(1))
        .unwrap_or(NaiveDate::MIN)
}

fn next_day(date: NaiveDate) -> NaiveDate {
    date.checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX)
}

fn parse_year(
    file: &str,
    year: i32,
    year_file: YearFile,
) -> Result<YearSchedule, Vec<CalendarError>> {
    let mut problems = Vec::new();
    let mut schedule = YearSchedule::default();
    let mut collect = |days: Vec<DayFile>, into: &mut BTreeMap<NaiveDate, String>| {
        for d in days {
            match toml_date(&d.date) {
                Some(date) if date.year() == year => {
                    into.insert(date, d.name);
                }
                Some(date) => problems.push(CalendarError::WrongYear {
                    file: file.to_owned(),
                    year,
                    date,
                }),
                None => problems.push(CalendarError::Syntax {
                    file: file.to_owned(),
                    message: format!("[years.{year}]: {} is not a plain date", d.date),
                }),
            }
        }
    };
    collect(year_file.holidays, &mut schedule.holidays);
    collect(year_file.workdays, &mut schedule.workdays);
    for date in schedule.workdays.keys() {
        if schedule.holidays.contains_key(date) {
            problems.push(CalendarError::HolidayAndWorkday {
                file: file.to_owned(),
                date: *date,
            });
        } else if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            problems.push(CalendarError::WorkdayNotOnWeekend {
                file: file.to_owned(),
                date: *date,
                weekday: date.weekday(),
            });
        }
    }
    if problems.is_empty() {
        Ok(schedule)
    } else {
        Err(problems)
    }
}

fn toml_date(value: &toml::value::Datetime) -> Option<NaiveDate> {
    if value.time.is_some() || value.offset.is_some() {
        return None;
    }
    let d = value.date?;
    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
}
