//! Mail through lettre, the scheduler (timers, reminders, escalation) and the outbox sender.
//!
//! The outbox rows are already written, in the same transaction as the action that causes them, by
//! `bihuan-store`; this crate will deliver them and run the timers (issue 5). It depends on the core and
//! the store only, and nothing but the binary depends on it.
