//! One module per area; each exposes `router()`, merged in [`crate::app`].

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod cases;
pub mod charts;
pub mod export;
pub mod health;
pub mod plans;
pub mod ratings;
pub mod review;
pub mod session;
pub mod stats;
