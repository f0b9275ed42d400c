//! 回访率 is judged on the cases that reached the return visit, the cases closed as unreachable are
//! counted beside it, and the center's own stage has its figure, 受理转办及时率 (DOMAIN.md, "Metrics"):
//! four more counts in each sums table, and
//! `metric_revision`, the revision of the counts the sums hold. The sums of cases counted before this
//! migration lack the new counts: the store rebuilds them from the raw rows when the revision it
//! counts by is newer than the stored one (at start-up, and in the scheduler's pass).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 3] = ["metric_days", "metric_details", "metric_deltas"];
const COUNTS: [&str; 4] = [
    "reached_feedback",
    "unreachable",
    "center_handled",
    "center_timely",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            for count in COUNTS {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .add_column(big_integer(Alias::new(count)).default(0))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        manager
            .create_table(
                Table::create()
                    .table(MetricRevision::Table)
                    .col(integer(MetricRevision::Id).primary_key())
                    .col(integer(MetricRevision::Revision))
                    .to_owned(),
            )
            .await?;
        // Revision 1, the counts before this migration, where cases were counted by them; 2 (what
        // this migration's counts are) where there is no case yet.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO metric_revision (id, revision) \
                 SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM cases) THEN 1 ELSE 2 END",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MetricRevision::Table).to_owned())
            .await?;
        for table in TABLES {
            for count in COUNTS {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .drop_column(Alias::new(count))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MetricRevision {
    Table,
    Id,
    Revision,
}
