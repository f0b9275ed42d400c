//! Two clocks of a case beside its state's own (DOMAIN.md "Rules that keep the loop honest"), each
//! with the scheduler's next look and stage:
//! - the overall limit (整改反馈时限): from the opening until the case first reaches feedback, paused
//!   while appealing. Its basis (start, working days), deadline, paused days, when it was met.
//!   Existing cases are left with no stage (NULL): the store replays each one's event log through the
//!   core at start-up and fills them in (the working-day calendar is not SQL);
//! - a scheduled rectification (建立台账、限期整改): the due date, its end, when it was done. No case
//!   had one before, so their stage is 3 (nothing to remind of).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            timestamp_with_time_zone_null(Cases::OverallStart).to_owned(),
            integer_null(Cases::OverallDays).to_owned(),
            timestamp_with_time_zone_null(Cases::OverallDeadline).to_owned(),
            boolean(Cases::OverallProvisional).default(false).to_owned(),
            integer_null(Cases::OverallPausedDays).to_owned(),
            timestamp_with_time_zone_null(Cases::OverallMetAt).to_owned(),
            timestamp_with_time_zone_null(Cases::OverallRemindAt).to_owned(),
            small_integer_null(Cases::OverallRemindStage).to_owned(),
            date_null(Cases::ScheduledDue).to_owned(),
            timestamp_with_time_zone_null(Cases::ScheduledDeadline).to_owned(),
            timestamp_with_time_zone_null(Cases::ScheduledDoneAt).to_owned(),
            timestamp_with_time_zone_null(Cases::ScheduledRemindAt).to_owned(),
            small_integer(Cases::ScheduledRemindStage)
                .default(3)
                .to_owned(),
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
        let db = manager.get_connection();
        // The scheduler's scan of the overall limits: like the state's, a partial index of the cases
        // with a reminder to come.
        db.execute_unprepared(
            "CREATE INDEX idx_cases_overall_due ON cases (overall_remind_at, id) \
             WHERE overall_remind_stage < 3",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_cases_scheduled_due ON cases (scheduled_remind_at, id) \
             WHERE scheduled_remind_stage < 3",
        )
        .await?;
        // The start-up backfill finds the cases still to fill in.
        db.execute_unprepared(
            "CREATE INDEX idx_cases_overall_unset ON cases (id) WHERE overall_remind_stage IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_cases_overall_unset")
            .await?;
        db.execute_unprepared("DROP INDEX idx_cases_overall_due")
            .await?;
        db.execute_unprepared("DROP INDEX idx_cases_scheduled_due")
            .await?;
        for column in [
            Cases::ScheduledRemindStage,
            Cases::ScheduledRemindAt,
            Cases::ScheduledDoneAt,
            Cases::ScheduledDeadline,
            Cases::ScheduledDue,
            Cases::OverallRemindStage,
            Cases::OverallRemindAt,
            Cases::OverallMetAt,
            Cases::OverallPausedDays,
            Cases::OverallProvisional,
            Cases::OverallDeadline,
            Cases::OverallDays,
            Cases::OverallStart,
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
    OverallStart,
    OverallDays,
    OverallDeadline,
    OverallProvisional,
    OverallPausedDays,
    OverallMetAt,
    OverallRemindAt,
    OverallRemindStage,
    ScheduledDue,
    ScheduledDeadline,
    ScheduledDoneAt,
    ScheduledRemindAt,
    ScheduledRemindStage,
}
