//! `org_revision`: one row whose `revision` goes up with every change to `units` or `unit_aliases`,
//! bumped by triggers in the changing statement's own transaction, whoever writes (this process,
//! another instance, an admin at the SQL prompt). The store keeps the organization tree in memory and
//! reads this one row to know whether its copy is still the tree the database holds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 2] = ["units", "unit_aliases"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE org_revision (id SMALLINT PRIMARY KEY, revision BIGINT NOT NULL)",
        )
        .await?;
        db.execute_unprepared("INSERT INTO org_revision (id, revision) VALUES (1, 0)")
            .await?;
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION bump_org_revision() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN UPDATE org_revision SET revision = revision + 1 WHERE id = 1; \
                     RETURN NULL; END $$",
                )
                .await?;
                for table in TABLES {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_bump_org_revision \
                         AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION bump_org_revision()"
                    ))
                    .await?;
                }
            }
            _ => {
                for table in TABLES {
                    for event in ["INSERT", "UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_{}_bump_org_revision AFTER {event} ON {table} \
                             BEGIN UPDATE org_revision SET revision = revision + 1 WHERE id = 1; END",
                            event.to_lowercase()
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                for table in TABLES {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER {table}_bump_org_revision ON {table}"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION bump_org_revision()")
                    .await?;
            }
            _ => {
                for table in TABLES {
                    for event in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER {table}_{event}_bump_org_revision"
                        ))
                        .await?;
                    }
                }
            }
        }
        db.execute_unprepared("DROP TABLE org_revision").await?;
        Ok(())
    }
}
