//! The sea-orm entities, one per table of `migrations/`.

pub mod case;
pub mod event;
pub mod outbox;
pub mod rating;
pub mod unit;
pub mod user;
