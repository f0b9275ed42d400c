//! Every figure blames the party that owned the step (DOMAIN.md, "Metrics"): a case's figures count
//! against the 承办单位 it was transferred to, and against the service center that owns it at first
//! while it was never transferred; the rating figures against the rated unit.
//! - `cases.center_code`: the center that owns the case at first, kept so that the sums do not move
//!   when the organization changes later. Cases opened before are filled in by the store from the
//!   organization tree when it rebuilds the sums (the routing to a center is not SQL);
//! - `valid_rated` in each sums table: 有效差评 against the rated unit, the 有效差评率 numerator.
//!
//! The sums of cases counted before lack the new keys: the store rebuilds them, as after migration
//! 14, when the revision it counts by (3) is newer than the stored one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 3] = ["metric_days", "metric_details", "metric_deltas"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .add_column(string_null(Cases::CenterCode))
                    .to_owned(),
            )
            .await?;
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(big_integer(Alias::new("valid_rated")).default(0))
                        .to_owned(),
                )
                .await?;
        }
        // Without a case there is nothing to rebuild: the sums are already those of revision 3.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE metric_revision SET revision = 3 \
                 WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM cases)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The sums are keyed by owner now: a version before this one must rebuild them its way.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE metric_revision SET revision = 2 WHERE id = 1 AND revision > 2",
            )
            .await?;
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new("valid_rated"))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .drop_column(Cases::CenterCode)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    CenterCode,
}
