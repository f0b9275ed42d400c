//! The overall limit (整改反馈时限): a clock across states, from a case's opening until it first
//! reaches feedback (docs/DOMAIN.md, "Rules that keep the loop honest"). It pauses while the case is
//! in a pausing state (appealing), resumes with the working days that were left, takes the working
//! days of every extension granted, and stops for good once met: a reopened case is judged on its
//! states' own limits, not on this one again.

use chrono::{DateTime, Utc};

use crate::calendar::{Deadline, DeadlineBasis, WorkingCalendar};
use crate::interpreter::Step;
use crate::workflow::{StateDef, WorkflowDefinition};

/// Where a case's overall limit stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverallClock {
    /// Where the deadline comes from (start and working days); `None` while paused, or when the
    /// workflow has no overall limit.
    pub basis: Option<DeadlineBasis>,
    /// The deadline; `None` while paused. Kept once met, for the record.
    pub deadline: Option<Deadline>,
    /// While paused: the whole working days that were left when it stopped.
    pub paused_days: Option<u32>,
    /// When the case met the limit (reached feedback, or ended); `None` while the clock runs.
    pub met_at: Option<DateTime<Utc>>,
}

impl OverallClock {
    /// The clock of a case opened at `now`: running, when its workflow has an overall limit.
    pub fn start(def: &WorkflowDefinition, cal: &WorkingCalendar, now: DateTime<Utc>) -> Self {
        let Some(limit) = &def.overall else {
            return Self::default();
        };
        let basis = DeadlineBasis {
            start: now,
            working_days: limit.time_limit_days,
        };
        Self {
            basis: Some(basis),
            deadline: Some(cal.deadline(basis)),
            paused_days: None,
            met_at: None,
        }
    }

    /// The deadline still to meet: the clock runs (not paused, not met).
    pub fn running(&self) -> Option<Deadline> {
        if self.met_at.is_some() || self.paused_days.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// The clock after a step into state `to` at `now` that granted `extension_days` (0 for most).
    pub fn after(
        &self,
        def: &WorkflowDefinition,
        cal: &WorkingCalendar,
        to: Option<&StateDef>,
        extension_days: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let (Some(limit), Some(to)) = (&def.overall, to) else {
            return self.clone();
        };
        if self.met_at.is_some() || (self.basis.is_none() && self.paused_days.is_none()) {
            // Met already, or never started (a case opened before its workflow had the limit).
            return self.clone();
        }
        let mut next = self.clone();
        if to.terminal || limit.until.contains(&to.id) {
            // Met (or ended while paused: nothing is left to count).
            next.met_at = Some(now);
            next.paused_days = None;
            return next;
        }
        if to.pauses.is_some() {
            // Paused while there, unless the deadline has passed already: a missed limit stays missed.
            if let Some(deadline) = self.running().filter(|d| now < d.at) {
                next.paused_days = Some(cal.working_days_left(now, deadline.at));
                next.basis = None;
                next.deadline = None;
            }
            return next;
        }
        if let Some(days) = self.paused_days {
            let basis = DeadlineBasis {
                start: now,
                working_days: days,
            };
            next.basis = Some(basis);
            next.deadline = Some(cal.deadline(basis));
            next.paused_days = None;
        }
        if extension_days > 0
            && let Some(basis) = next.basis.as_mut()
        {
            basis.working_days += extension_days;
            next.deadline = Some(cal.deadline(*basis));
        }
        next
    }
}

/// The overall limit of a case after its recorded steps, replayed with the calendar (a case opened
/// before its workflow had the limit gets it as if it always had). Pure, following [`decide`]'s
/// rules.
///
/// [`decide`]: crate::decide
pub fn replay(def: &WorkflowDefinition, cal: &WorkingCalendar, steps: &[Step<'_>]) -> OverallClock {
    let mut clock = OverallClock::default();
    for step in steps {
        if step.from.is_none() {
            clock = OverallClock::start(def, cal, step.at);
            continue;
        }
        let granted = def
            .action(step.action)
            .map_or(0, |a| a.granted_days(step.fields));
        clock = clock.after(def, cal, def.state(step.to), granted, step.at);
    }
    clock
}
