//! The pure core of Bihuan (闭环): workflow definitions, the interpreter, guards, the working-day
//! calendar and deadline arithmetic.
//!
//! This crate does no IO: no tokio, no database, no HTTP, no clock. Time and ids come in as arguments,
//! effects go out as values.

pub mod calendar;
pub mod chain;
mod engine;
pub mod evidence;
pub mod interpreter;
pub mod mail;
pub mod metrics;
pub mod overall;
pub mod personal_data;
pub mod plan;
pub mod rating;
pub mod rating_input;
pub mod reminder;
mod role;
pub mod sheet;
pub mod upstream;
pub mod workflow;

pub use calendar::{Deadline, DeadlineBasis, WorkingCalendar};
pub use engine::{Engine, NEGATIVE_RATING, Source, WORK_PLAN_TASK};
pub use interpreter::{
    ActionError, Actor, Decision, Notification, PausedClock, Scheduled, Step, Subject, Timer,
    Timing, available_actions, cited_ids, deadline_after, deadlines_before, decide, field_problems,
    open,
};
pub use mail::{Letter, Letters, MailError};
pub use overall::OverallClock;
pub use reminder::{ReminderKind, ReminderTimes, Stage};
pub use role::{Role, UnknownRole};
pub use sheet::{LimitError, Limits, csv_safe};
pub use workflow::{WorkflowDefinition, load};
