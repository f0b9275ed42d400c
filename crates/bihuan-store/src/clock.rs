//! The clock passed to everything that needs the time: the system clock, or one that started at a
//! given instant and runs on (`BIHUAN_FAKE_NOW`, for demos of a past plan and for tests).

use chrono::{DateTime, TimeDelta, Utc};

/// A clock: the system time shifted by a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }

    /// Whether this clock is shifted from the system time.
    pub fn is_fake(&self) -> bool {
        !self.offset.is_zero()
    }

    /// The current time, truncated to microseconds (what the databases keep).
    pub fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now() + self.offset)
    }
}

/// Drops nanoseconds so a time reads back from either database exactly as it was written.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let micros = at.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_fake_clock_starts_at_its_instant_and_runs_on() {
        let start = Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap();
        let clock = Clock::starting_at(start);
        let first = clock.now();
        assert!(clock.is_fake());
        assert!((first - start).num_seconds().abs() < 5);
        assert!(clock.now() >= first);
        assert_eq!(first.timestamp_subsec_nanos() % 1000, 0);
    }
}
