//! The scheduler's scan is an index range: `remind_stage < 3 AND remind_at <= now`, in order of
//! `(remind_at, id)`, read from a partial index holding only the cases and work items that still have
//! a reminder to come (closed ones drop out of it), instead of walking `(remind_stage, remind_at)`
//! over every open row. A row with a reminder to come always has its time: the few from before
//! migration 4 that had none are due now (their time is their last change), and a row without a
//! deadline has none to come.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, the partial index, the index it replaces, that index's columns)
const TABLES: [(&str, &str, &str, &str); 2] = [
    (
        "cases",
        "idx_cases_due",
        "idx_cases_remind",
        "remind_stage, remind_at",
    ),
    ("tasks", "idx_tasks_due", "idx_tasks_remind_at", "remind_at"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, index, replaced, _) in TABLES {
            db.execute_unprepared(&format!(
                "UPDATE {table} SET remind_stage = 3 WHERE remind_stage < 3 AND deadline IS NULL"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "UPDATE {table} SET remind_at = updated_at \
                 WHERE remind_stage < 3 AND remind_at IS NULL"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX {index} ON {table} (remind_at, id) WHERE remind_stage < 3"
            ))
            .await?;
            db.execute_unprepared(&format!("DROP INDEX {replaced}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, index, replaced, columns) in TABLES {
            db.execute_unprepared(&format!("CREATE INDEX {replaced} ON {table} ({columns})"))
                .await?;
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        Ok(())
    }
}
