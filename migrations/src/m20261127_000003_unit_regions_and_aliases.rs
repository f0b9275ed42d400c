//! Where a rating of an unregistered unit waits, and how an admin maps such a code.
//!
//! `units.region_code`: the 行政区划 a unit (usually a service center) answers for; a negative rating
//! naming a unit the organization does not have yet waits at the center of its region.
//! `cases.region_code`: the rating's region, copied onto its case so scope checks need no join.
//! `unit_aliases`: an outside unit code an admin mapped onto a registered unit.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Units::Table)
                    .add_column(string_len_null(Units::RegionCode, 32))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_units_region")
                    .table(Units::Table)
                    .col(Units::RegionCode)
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .add_column(string_len_null(Cases::RegionCode, 32))
                    .to_owned(),
            )
            .await?;
        // Cases opened before this migration take their rating's region.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE cases SET region_code = \
                 (SELECT ratings.region_code FROM ratings WHERE ratings.id = cases.rating_id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_cases_region")
                    .table(Cases::Table)
                    .col(Cases::RegionCode)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UnitAliases::Table)
                    .col(string_len(UnitAliases::Code, 64).primary_key())
                    .col(string_len(UnitAliases::UnitCode, 64))
                    .col(string_len(UnitAliases::MappedBy, 64))
                    .col(timestamp_with_time_zone(UnitAliases::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UnitAliases::Table, UnitAliases::UnitCode)
                            .to(Units::Table, Units::Code),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_unit_aliases_unit")
                    .table(UnitAliases::Table)
                    .col(UnitAliases::UnitCode)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UnitAliases::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_cases_region")
                    .table(Cases::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .drop_column(Cases::RegionCode)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_units_region")
                    .table(Units::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Units::Table)
                    .drop_column(Units::RegionCode)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Units {
    Table,
    Code,
    RegionCode,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    RegionCode,
}

#[derive(DeriveIden)]
enum UnitAliases {
    Table,
    Code,
    UnitCode,
    MappedBy,
    CreatedAt,
}
