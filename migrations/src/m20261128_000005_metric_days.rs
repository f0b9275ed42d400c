//! The metrics' counts (bihuan-core `metrics::Counts`), summed:
//! - `metric_days`: per day of rating (local date), rated unit and region — small enough that a year of
//!   a province sums in milliseconds (totals, by unit, by month);
//! - `metric_details`: per day, unit, region, channel and service (by channel, by service);
//! - `metric_deltas`: what stored ratings and actions add, one row per transaction and key, inserted
//!   only (no writer waits on another's row); the scheduler folds them into the two sums.
//!
//! `bihuan metrics rebuild` recomputes all three from the raw rows.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The count columns, in the order of `Counts::NAMES`.
const COUNTS: [MetricDays; 18] = [
    MetricDays::Ratings,
    MetricDays::Negative,
    MetricDays::Positive,
    MetricDays::Active,
    MetricDays::Cases,
    MetricDays::Valid,
    MetricDays::Rectified,
    MetricDays::Due,
    MetricDays::OnTime,
    MetricDays::RealName,
    MetricDays::Visited,
    MetricDays::Reviewed,
    MetricDays::Satisfied,
    MetricDays::Open,
    MetricDays::Overdue,
    MetricDays::RectifyDays,
    MetricDays::Closed,
    MetricDays::CloseDays,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let key = |t: &mut TableCreateStatement, detailed: bool| {
            t.col(string_len(MetricDays::Day, 10))
                .col(string_len(MetricDays::UnitCode, 64))
                .col(string_len(MetricDays::RegionCode, 32));
            if detailed {
                t.col(string_len(MetricDays::Channel, 16))
                    .col(string_len(MetricDays::ServiceCode, 128))
                    .col(string_len(MetricDays::ServiceName, 500));
            }
            for column in COUNTS {
                t.col(big_integer(column).default(0));
            }
        };

        let mut days = Table::create();
        days.table(MetricDays::Table);
        key(&mut days, false);
        days.primary_key(
            Index::create()
                .col(MetricDays::Day)
                .col(MetricDays::UnitCode)
                .col(MetricDays::RegionCode),
        );
        manager.create_table(days.to_owned()).await?;

        let mut details = Table::create();
        details.table(MetricDetails::Table);
        key(&mut details, true);
        details.primary_key(
            Index::create()
                .col(MetricDays::Day)
                .col(MetricDays::UnitCode)
                .col(MetricDays::RegionCode)
                .col(MetricDays::Channel)
                .col(MetricDays::ServiceCode),
        );
        manager.create_table(details.to_owned()).await?;

        let mut deltas = Table::create();
        deltas
            .table(MetricDeltas::Table)
            .col(big_pk_auto(MetricDeltas::Id));
        key(&mut deltas, true);
        manager.create_table(deltas.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_metric_days_unit_day")
                    .table(MetricDays::Table)
                    .col(MetricDays::UnitCode)
                    .col(MetricDays::Day)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MetricDeltas::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MetricDetails::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MetricDays::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MetricDays {
    Table,
    Day,
    UnitCode,
    RegionCode,
    Channel,
    ServiceCode,
    ServiceName,
    Ratings,
    Negative,
    Positive,
    Active,
    Cases,
    Valid,
    Rectified,
    Due,
    OnTime,
    RealName,
    Visited,
    Reviewed,
    Satisfied,
    Open,
    Overdue,
    RectifyDays,
    Closed,
    CloseDays,
}

#[derive(DeriveIden)]
enum MetricDeltas {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MetricDetails {
    Table,
}
