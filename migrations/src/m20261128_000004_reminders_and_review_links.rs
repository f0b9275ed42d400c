//! Reminders, the mail sender and the rater's one-time link.
//!
//! `cases.remind_at` / `cases.remind_stage`: when the scheduler next looks at a case's deadline, and how
//! far its reminders went for the current deadline (0 none, 1 due soon, 2 overdue, 3 escalated or no
//! deadline at all). Open cases from before this migration get their `remind_at` from the scheduler.
//! `outbox.html`: the HTML part of a mail (the plain-text part stays in `body`).
//! `review_links`: the rater's one-time links, kept as SHA-256 hashes of the tokens.
//! `digest_runs`: the days whose daily digest was made, so it is made once however many schedulers run.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .add_column(timestamp_with_time_zone_null(Cases::RemindAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Cases::Table)
                    .add_column(small_integer(Cases::RemindStage).default(0))
                    .to_owned(),
            )
            .await?;
        // A case without a deadline has nothing to be reminded of (stage 3, "all done").
        manager
            .get_connection()
            .execute_unprepared("UPDATE cases SET remind_stage = 3 WHERE deadline IS NULL")
            .await?;
        // The scheduler looks for stage < 3 and remind_at due: open cases only.
        manager
            .create_index(
                Index::create()
                    .name("idx_cases_remind")
                    .table(Cases::Table)
                    .col(Cases::RemindStage)
                    .col(Cases::RemindAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(text_null(Outbox::Html))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_case")
                    .table(Outbox::Table)
                    .col(Outbox::CaseId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReviewLinks::Table)
                    .col(string_len(ReviewLinks::TokenHash, 64).primary_key())
                    .col(uuid(ReviewLinks::CaseId))
                    .col(big_integer(ReviewLinks::EventSeq))
                    .col(timestamp_with_time_zone(ReviewLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ReviewLinks::UsedAt))
                    .col(timestamp_with_time_zone(ReviewLinks::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewLinks::Table, ReviewLinks::CaseId)
                            .to(Cases::Table, Cases::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_review_links_case")
                    .table(ReviewLinks::Table)
                    .col(ReviewLinks::CaseId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DigestRuns::Table)
                    .col(string_len(DigestRuns::Day, 10).primary_key())
                    .col(timestamp_with_time_zone(DigestRuns::RanAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DigestRuns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ReviewLinks::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_case")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Html)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_cases_remind")
                    .table(Cases::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Cases::RemindStage, Cases::RemindAt] {
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
    Id,
    RemindAt,
    RemindStage,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    CaseId,
    Html,
}

#[derive(DeriveIden)]
enum ReviewLinks {
    Table,
    TokenHash,
    CaseId,
    EventSeq,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DigestRuns {
    Table,
    Day,
    RanAt,
}
