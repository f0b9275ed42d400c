//! 追评 (a rating with `assess_number` ≥ 2 of a handled item already rated) never opens a second
//! case: `follow_ups` records where each went — the rater's review of the case waiting for it, a
//! `follow_up` event on the case, or no case at all — written in the transaction that took the
//! action. A 追评 without a row here has not been applied yet (a batch stores ratings first and
//! applies its 追评 after), which the scheduler finds by `idx_ratings_follow_ups`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FollowUps::Table)
                    .col(uuid(FollowUps::RatingId).primary_key())
                    .col(uuid_null(FollowUps::CaseId))
                    // review, follow_up or unmatched.
                    .col(string_len(FollowUps::Kind, 16))
                    .col(boolean(FollowUps::Negative))
                    .col(timestamp_with_time_zone(FollowUps::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(FollowUps::Table, FollowUps::RatingId)
                            .to(Ratings::Table, Ratings::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FollowUps::Table, FollowUps::CaseId)
                            .to(Cases::Table, Cases::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_follow_ups_case")
                    .table(FollowUps::Table)
                    .col(FollowUps::CaseId)
                    .to_owned(),
            )
            .await?;
        // A 追评 finds the case of its handled item.
        manager
            .create_index(
                Index::create()
                    .name("idx_ratings_source_project")
                    .table(Ratings::Table)
                    .col(Ratings::Source)
                    .col(Ratings::ProjectNo)
                    .to_owned(),
            )
            .await?;
        // The 追评 not yet applied are found without walking every rating.
        manager
            .create_index(
                Index::create()
                    .name("idx_ratings_follow_ups")
                    .table(Ratings::Table)
                    .col(Ratings::AssessNumber)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_ratings_follow_ups", "idx_ratings_source_project"] {
            manager
                .drop_index(Index::drop().name(name).table(Ratings::Table).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(FollowUps::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FollowUps {
    Table,
    RatingId,
    CaseId,
    Kind,
    Negative,
    At,
}

#[derive(DeriveIden)]
enum Ratings {
    Table,
    Id,
    Source,
    ProjectNo,
    AssessNumber,
}

#[derive(DeriveIden)]
enum Cases {
    Table,
    Id,
}
