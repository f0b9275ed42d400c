//! The limits counted over a case's life (DOMAIN.md, "Rules that keep the loop honest"):
//! - `extension_days_used`: every working day extensions granted the case, whatever states it passed
//!   through (the cap counted per state entry could be reset by an appeal);
//! - `extension_requested_days`: a unit's request for more time that waits for a supervisor;
//! - `appeals_used`: appeals filed;
//! - `transferred_at`: when it was last transferred (the appeal window starts then).
//!
//! Existing cases get their figures from their own event logs.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement, Value};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            integer(Cases::ExtensionDaysUsed).default(0).to_owned(),
            integer_null(Cases::ExtensionRequestedDays).to_owned(),
            integer(Cases::AppealsUsed).default(0).to_owned(),
            timestamp_with_time_zone_null(Cases::TransferredAt).to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Cases::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("cases_extension_requested")
                    .table(Cases::Table)
                    .col(Cases::ExtensionRequestedDays)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE cases SET \
             appeals_used = (SELECT COUNT(*) FROM events e \
                             WHERE e.case_id = cases.id AND e.action = 'appeal'), \
             transferred_at = CASE WHEN unit_code IS NULL THEN NULL ELSE \
                 (SELECT MAX(e.at) FROM events e \
                  WHERE e.case_id = cases.id AND e.action = 'transfer') END",
        )
        .await?;
        // The days of every `extend`, summed per case (the days are in the event's JSON fields).
        let backend = manager.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT case_id, fields FROM events WHERE action = 'extend'",
            ))
            .await?;
        let mut used: BTreeMap<sea_orm_migration::sea_orm::prelude::Uuid, i64> = BTreeMap::new();
        for row in rows {
            let case: sea_orm_migration::sea_orm::prelude::Uuid = row.try_get("", "case_id")?;
            let fields: String = row.try_get("", "fields")?;
            let fields: serde_json::Value = serde_json::from_str(&fields)
                .map_err(|e| DbErr::Migration(format!("event of case {case}: fields: {e}")))?;
            let days = fields
                .get("days")
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| {
                    DbErr::Migration(format!("event extend of case {case} records no days"))
                })?;
            *used.entry(case).or_default() += days;
        }
        let update = match backend {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                "UPDATE cases SET extension_days_used = $1 WHERE id = $2"
            }
            _ => "UPDATE cases SET extension_days_used = ? WHERE id = ?",
        };
        for (case, days) in used {
            let days = <i32 as TryFrom<i64>>::try_from(days)
                .map_err(|_| DbErr::Migration(format!("case {case}: {days} extension days")))?;
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                update,
                [Value::from(days), Value::from(case)],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("cases_extension_requested")
                    .table(Cases::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Cases::TransferredAt,
            Cases::AppealsUsed,
            Cases::ExtensionRequestedDays,
            Cases::ExtensionDaysUsed,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Cases::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    ExtensionDaysUsed,
    ExtensionRequestedDays,
    AppealsUsed,
    TransferredAt,
}
