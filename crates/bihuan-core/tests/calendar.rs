//! Working-day arithmetic across the holiday periods of 2021, 2024, 2025, 2026 and an unannounced year.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use bihuan_core::{DeadlineBasis, WorkingCalendar};
use chrono::{NaiveDate, TimeZone, Utc};

fn calendar() -> WorkingCalendar {
    let mut cal = WorkingCalendar::new(chrono_tz::Asia::Shanghai);
    cal.add_file(
        "cn-mainland-2021-2026.toml",
        include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml"),
    )
    .unwrap();
    cal
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A step started at 10:00 Beijing time on `start` with `days` working days ends at 24:00 of `last_day`.
fn check(cal: &WorkingCalendar, start: &str, days: u32, last_day: &str, provisional: bool) {
    let start_at = chrono_tz::Asia::Shanghai
        .from_local_datetime(&date(start).and_hms_opt(10, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let deadline = cal.deadline(DeadlineBasis {
        start: start_at,
        working_days: days,
    });
    let expected_end = chrono_tz::Asia::Shanghai
        .from_local_datetime(
            &date(last_day)
                .succ_opt()
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        (deadline.at, deadline.provisional),
        (expected_end, provisional),
        "{start} + {days} working days should end with {last_day} (provisional: {provisional})"
    );
    assert_eq!(cal.last_day(deadline.at), date(last_day));
}

#[test]
fn deadlines_follow_the_official_schedule() {
    let cal = calendar();
    let rows: &[(&str, u32, &str)] = &[
        // 2021 春节: Sunday 02-07 is a make-up working day, 02-11..17 is the holiday (the example).
        ("2021-02-05", 5, "2021-02-18"),
        ("2021-02-10", 1, "2021-02-18"),
        ("2021-02-19", 1, "2021-02-20"),
        // 2021 元旦.
        ("2021-01-01", 1, "2021-01-04"),
        ("2020-12-31", 1, "2021-01-04"),
        // 2021 清明.
        ("2021-04-02", 1, "2021-04-06"),
        // 2021 劳动节 with make-up days 04-25 (Sun) and 05-08 (Sat).
        ("2021-04-23", 1, "2021-04-25"),
        ("2021-04-29", 2, "2021-05-06"),
        ("2021-05-07", 1, "2021-05-08"),
        // 2021 端午.
        ("2021-06-11", 1, "2021-06-15"),
        // 2021 中秋 with make-up day 09-18 (Sat).
        ("2021-09-16", 2, "2021-09-18"),
        ("2021-09-17", 2, "2021-09-22"),
        // 2021 国庆 with make-up days 09-26 (Sun) and 10-09 (Sat).
        ("2021-09-23", 2, "2021-09-26"),
        ("2021-09-30", 1, "2021-10-08"),
        ("2021-09-27", 5, "2021-10-09"),
        // An ordinary week: the start day is not counted, weekends are rest days.
        ("2021-03-01", 5, "2021-03-08"),
        ("2021-03-06", 1, "2021-03-08"),
        // 2024.
        ("2024-02-02", 1, "2024-02-04"),
        ("2024-02-09", 1, "2024-02-18"),
        ("2024-04-03", 1, "2024-04-07"),
        ("2024-04-30", 1, "2024-05-06"),
        ("2024-06-07", 1, "2024-06-11"),
        ("2024-09-13", 1, "2024-09-14"),
        ("2024-09-30", 1, "2024-10-08"),
        // 2025.
        ("2025-09-26", 1, "2025-09-28"),
        ("2025-09-30", 1, "2025-10-09"),
        ("2025-01-24", 2, "2025-01-27"),
        // 2026.
        ("2025-12-31", 1, "2026-01-04"),
        ("2026-02-13", 1, "2026-02-14"),
        ("2026-02-14", 1, "2026-02-24"),
        ("2026-09-24", 1, "2026-09-28"),
        ("2026-12-30", 1, "2026-12-31"),
    ];
    for (start, days, last_day) in rows {
        check(&cal, start, *days, last_day, false);
    }
}

#[test]
fn a_year_without_data_is_provisional_weekends_and_new_year_only() {
    let cal = calendar();
    check(&cal, "2026-12-31", 1, "2027-01-04", true);
    check(&cal, "2027-02-01", 5, "2027-02-08", true);
    check(&cal, "2027-05-03", 1, "2027-05-04", true);
    assert_eq!(cal.missing_years_around(date("2026-11-27")), vec![2027]);
    assert!(cal.missing_years_around(date("2025-11-27")).is_empty());
}

#[test]
fn a_deadline_ends_at_midnight_beijing_time() {
    let cal = calendar();
    let start = Utc.with_ymd_and_hms(2021, 2, 5, 2, 0, 0).unwrap();
    let deadline = cal.deadline(DeadlineBasis {
        start,
        working_days: 5,
    });
    assert_eq!(
        deadline.at,
        Utc.with_ymd_and_hms(2021, 2, 18, 16, 0, 0).unwrap()
    );
    // 23:59 Beijing on the Friday is still that Friday: the start day is not counted.
    let late = Utc.with_ymd_and_hms(2021, 2, 5, 15, 59, 0).unwrap();
    assert_eq!(
        cal.deadline(DeadlineBasis {
            start: late,
            working_days: 5
        })
        .at,
        deadline.at
    );
    // 00:00 Beijing on Sunday 02-07 is that Sunday: counting starts on Monday.
    let next = Utc.with_ymd_and_hms(2021, 2, 6, 16, 0, 0).unwrap();
    assert_eq!(
        cal.last_day(
            cal.deadline(DeadlineBasis {
                start: next,
                working_days: 5
            })
            .at
        ),
        date("2021-02-19")
    );
}

#[test]
fn working_days_left_count_whole_working_days_after_today() {
    let cal = calendar();
    let deadline = Utc.with_ymd_and_hms(2021, 2, 18, 16, 0, 0).unwrap();
    let rows = [
        (Utc.with_ymd_and_hms(2021, 2, 5, 2, 0, 0).unwrap(), 5),
        (Utc.with_ymd_and_hms(2021, 2, 10, 2, 0, 0).unwrap(), 1),
        (Utc.with_ymd_and_hms(2021, 2, 18, 2, 0, 0).unwrap(), 0),
        (Utc.with_ymd_and_hms(2021, 2, 25, 2, 0, 0).unwrap(), 0),
    ];
    for (at, left) in rows {
        assert_eq!(cal.working_days_left(at, deadline), left, "as of {at}");
    }
}

#[test]
fn broken_calendar_files_are_refused_with_each_problem_named() {
    let rows = [
        (
            "[years.2030]\nholidays = [{ date = 2031-01-01, name = \"元旦\" }]\n",
            "2031-01-01 is listed under year 2030",
        ),
        (
            "[years.2030]\nholidays = [{ date = 2030-02-02, name = \"x\" }]\nworkdays = [{ date = 2030-02-02, name = \"y\" }]\n",
            "both as a holiday and as a make-up working day",
        ),
        (
            "[years.2030]\nworkdays = [{ date = 2030-02-04, name = \"y\" }]\n",
            "is a Mon, not a weekend day",
        ),
        ("[years.abc]\n", "is not a year"),
        ("[years.2030]\nholidays = 3\n", "invalid type"),
    ];
    for (text, expected) in rows {
        let mut cal = WorkingCalendar::new(chrono_tz::Asia::Shanghai);
        let errs = cal.add_file("bad.toml", text).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            all.iter()
                .any(|e| e.contains(expected) && e.starts_with("bad.toml")),
            "{all:?} should mention {expected}"
        );
    }
    let mut cal = calendar();
    let again = include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml");
    let errs = cal.add_file("again.toml", again).unwrap_err();
    assert!(errs[0].to_string().contains("year 2021 is defined twice"));
}
