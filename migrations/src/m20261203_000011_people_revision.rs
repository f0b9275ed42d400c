//! The addresses the notices go to join the organization tree the store keeps in memory: a change to
//! who a user is for the notices (added, removed, another role, unit or address, disabled or
//! enabled) bumps `org_revision` as a change to `units` does (migration 9), in the changing
//! statement's own transaction, whoever writes. Signing in and other changes to a user's row leave it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns of `users` the notices read.
const COLUMNS: &str = "role, unit_code, email, disabled";

/// SQLite's triggers, one per kind of change: (name, event).
fn sqlite_triggers() -> [(&'static str, String); 3] {
    [
        ("users_insert_bump_org_revision", "INSERT".to_owned()),
        ("users_delete_bump_org_revision", "DELETE".to_owned()),
        (
            "users_update_bump_org_revision",
            format!("UPDATE OF {COLUMNS}"),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER users_bump_org_revision \
                     AFTER INSERT OR UPDATE OF {COLUMNS} OR DELETE OR TRUNCATE ON users \
                     FOR EACH STATEMENT EXECUTE FUNCTION bump_org_revision()"
                ))
                .await?;
            }
            _ => {
                for (name, event) in sqlite_triggers() {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} AFTER {event} ON users \
                         BEGIN UPDATE org_revision SET revision = revision + 1 WHERE id = 1; END"
                    ))
                    .await?;
                }
            }
        }
        // The trees cached before this migration hold no addresses.
        db.execute_unprepared("UPDATE org_revision SET revision = revision + 1 WHERE id = 1")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER users_bump_org_revision ON users")
                    .await?;
            }
            _ => {
                for (name, _) in sqlite_triggers() {
                    db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                        .await?;
                }
            }
        }
        Ok(())
    }
}
