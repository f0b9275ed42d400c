//! The database migrations of Bihuan, append-only: a landed migration never changes; a change to the
//! schema is a new file `mYYYYMMDD_HHMMSS_name.rs` with a real `down`.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_engine_tables;
mod m20261127_000002_create_access_tables;
mod m20261127_000003_unit_regions_and_aliases;
mod m20261128_000004_reminders_and_review_links;
mod m20261128_000005_metric_days;
mod m20261128_000006_plans_and_tasks;
mod m20261202_000007_readiness_probes;
mod m20261202_000008_trust;
mod m20261202_000009_org_revision;
mod m20261202_000010_due_index;
mod m20261203_000011_people_revision;
mod m20261206_000012_case_life_limits;
mod m20261206_000013_follow_ups;
mod m20261206_000014_visit_counts;
mod m20261207_000015_case_clocks;
mod m20261207_000016_case_owners;
mod m20261208_000017_attachments;
mod m20261208_000018_outbox_channels;
mod m20261208_000019_user_sms;

/// Applies the migrations in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_engine_tables::Migration),
            Box::new(m20261127_000002_create_access_tables::Migration),
            Box::new(m20261127_000003_unit_regions_and_aliases::Migration),
            Box::new(m20261128_000004_reminders_and_review_links::Migration),
            Box::new(m20261128_000005_metric_days::Migration),
            Box::new(m20261128_000006_plans_and_tasks::Migration),
            Box::new(m20261202_000007_readiness_probes::Migration),
            Box::new(m20261202_000008_trust::Migration),
            Box::new(m20261202_000009_org_revision::Migration),
            Box::new(m20261202_000010_due_index::Migration),
            Box::new(m20261203_000011_people_revision::Migration),
            Box::new(m20261206_000012_case_life_limits::Migration),
            Box::new(m20261206_000013_follow_ups::Migration),
            Box::new(m20261206_000014_visit_counts::Migration),
            Box::new(m20261207_000015_case_clocks::Migration),
            Box::new(m20261207_000016_case_owners::Migration),
            Box::new(m20261208_000017_attachments::Migration),
            Box::new(m20261208_000018_outbox_channels::Migration),
            Box::new(m20261208_000019_user_sms::Migration),
        ]
    }
}
