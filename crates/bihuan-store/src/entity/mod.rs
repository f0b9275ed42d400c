//! The sea-orm entities, one per table of `migrations/`.

pub mod api_token;
pub mod attachment;
pub mod audit;
pub mod case;
pub mod digest_run;
pub mod event;
pub mod follow_up;
pub mod login_failure;
pub mod metric_day;
pub mod metric_delta;
pub mod metric_detail;
pub mod outbox;
pub mod plan;
pub mod rating;
pub mod readiness_probe;
pub mod review_link;
pub mod session;
pub mod task;
pub mod task_event;
pub mod task_target;
pub mod task_unit;
pub mod unit;
pub mod unit_alias;
pub mod user;
