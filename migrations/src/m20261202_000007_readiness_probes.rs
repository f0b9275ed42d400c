//! `readiness_probes`: where `/readyz` proves that a write would succeed. The probe inserts one row
//! the size of a database page and deletes it in the same transaction, then commits: the database must
//! find room for a fresh page and write its log, as an action would. The table is empty between probes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReadinessProbes::Table)
                    .col(uuid(ReadinessProbes::Id).primary_key())
                    .col(blob(ReadinessProbes::Filler))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReadinessProbes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ReadinessProbes {
    Table,
    Id,
    Filler,
}
