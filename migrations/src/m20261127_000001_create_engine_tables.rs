//! Units, users, ratings, cases, the event log and the outbox.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Units::Table)
                    .col(string_len(Units::Code, 64).primary_key())
                    .col(string_len(Units::Name, 200))
                    .col(string_len_null(Units::ParentCode, 64))
                    .col(string_len_null(Units::Email, 254))
                    .col(timestamp_with_time_zone(Units::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Units::Table, Units::ParentCode)
                            .to(Units::Table, Units::Code),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Units::Table,
            "idx_units_parent",
            &[Units::ParentCode],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string_len_uniq(Users::Username, 64))
                    .col(string_len(Users::Role, 32))
                    .col(string_len_null(Users::UnitCode, 64))
                    .col(string_len_null(Users::Email, 254))
                    .col(string(Users::PasswordHash))
                    .col(boolean(Users::Disabled).default(false))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::UnitCode)
                            .to(Units::Table, Units::Code),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Ratings::Table)
                    .col(pk_uuid(Ratings::Id))
                    .col(string_len(Ratings::Source, 64))
                    .col(string_len(Ratings::SourceId, 128))
                    .col(string_len(Ratings::ProjectNo, 128))
                    .col(string_len(Ratings::ServiceCode, 128))
                    .col(string_len(Ratings::ServiceName, 500))
                    .col(string_len(Ratings::UnitCode, 64))
                    .col(string_len(Ratings::RegionCode, 32))
                    .col(string_len(Ratings::Channel, 16))
                    .col(string_len(Ratings::Level, 32))
                    .col(boolean(Ratings::Negative))
                    .col(timestamp_with_time_zone(Ratings::RatedAt))
                    .col(small_integer(Ratings::AssessNumber))
                    .col(string_len(Ratings::RaterType, 16))
                    .col(boolean(Ratings::RaterRealName))
                    .col(string_len_null(Ratings::RaterName, 100))
                    .col(string_len_null(Ratings::RaterPhone, 32))
                    .col(string_len_null(Ratings::RaterEmail, 254))
                    .col(json_binary(Ratings::Staff))
                    .col(json_binary(Ratings::Indicators))
                    .col(text_null(Ratings::Comment))
                    .col(timestamp_with_time_zone(Ratings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            Ratings::Table,
            "uq_ratings_source",
            &[Ratings::Source, Ratings::SourceId],
        )
        .await?;
        index(
            manager,
            Ratings::Table,
            "idx_ratings_rated_at",
            &[Ratings::RatedAt],
        )
        .await?;
        index(
            manager,
            Ratings::Table,
            "idx_ratings_unit_rated_at",
            &[Ratings::UnitCode, Ratings::RatedAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Cases::Table)
                    .col(pk_uuid(Cases::Id))
                    .col(uuid_uniq(Cases::RatingId))
                    .col(string_len(Cases::WorkflowId, 64))
                    .col(integer(Cases::WorkflowVersion))
                    .col(string_len(Cases::State, 64))
                    .col(integer(Cases::Version))
                    .col(string_len_null(Cases::UnitCode, 64))
                    .col(string_len(Cases::OriginUnit, 64))
                    .col(timestamp_with_time_zone(Cases::StateEnteredAt))
                    .col(timestamp_with_time_zone_null(Cases::Deadline))
                    .col(timestamp_with_time_zone_null(Cases::DeadlineStart))
                    .col(integer_null(Cases::DeadlineDays))
                    .col(boolean(Cases::DeadlineProvisional).default(false))
                    .col(string_len_null(Cases::PausedState, 64))
                    .col(integer_null(Cases::PausedRemainingDays))
                    .col(integer(Cases::ExtensionDays).default(0))
                    .col(integer(Cases::ReopenCount).default(0))
                    .col(boolean(Cases::Escalated).default(false))
                    .col(boolean(Cases::Overdue).default(false))
                    .col(string_len_null(Cases::TimerAction, 64))
                    .col(timestamp_with_time_zone_null(Cases::TimerAt))
                    .col(big_integer(Cases::EventCount))
                    .col(string_len(Cases::HeadHash, 64))
                    .col(timestamp_with_time_zone(Cases::OpenedAt))
                    .col(timestamp_with_time_zone_null(Cases::ClosedAt))
                    .col(timestamp_with_time_zone(Cases::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Cases::Table, Cases::RatingId)
                            .to(Ratings::Table, Ratings::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Cases::Table,
            "idx_cases_state_deadline",
            &[Cases::State, Cases::Deadline],
        )
        .await?;
        index(
            manager,
            Cases::Table,
            "idx_cases_deadline",
            &[Cases::Deadline],
        )
        .await?;
        index(
            manager,
            Cases::Table,
            "idx_cases_unit_state",
            &[Cases::UnitCode, Cases::State],
        )
        .await?;
        index(
            manager,
            Cases::Table,
            "idx_cases_origin_unit",
            &[Cases::OriginUnit],
        )
        .await?;
        index(
            manager,
            Cases::Table,
            "idx_cases_timer_at",
            &[Cases::TimerAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_pk_auto(Events::Id))
                    .col(uuid(Events::CaseId))
                    .col(big_integer(Events::Seq))
                    .col(string_len(Events::Action, 64))
                    .col(string_len_null(Events::FromState, 64))
                    .col(string_len(Events::ToState, 64))
                    .col(string_len(Events::Actor, 64))
                    .col(timestamp_with_time_zone(Events::At))
                    .col(text(Events::Fields))
                    .col(string_len(Events::PrevHash, 64))
                    .col(string_len(Events::Hash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Events::Table, Events::CaseId)
                            .to(Cases::Table, Cases::Id),
                    )
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            Events::Table,
            "uq_events_case_seq",
            &[Events::CaseId, Events::Seq],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(string_len(Outbox::Kind, 64))
                    .col(uuid_null(Outbox::CaseId))
                    .col(string_len(Outbox::Audience, 32))
                    .col(json_binary(Outbox::Recipients))
                    .col(string_len(Outbox::Subject, 500))
                    .col(text(Outbox::Body))
                    .col(string_len_uniq(Outbox::UniqueKey, 200))
                    .col(string_len(Outbox::Status, 16))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Outbox::Table,
            "idx_outbox_status_next",
            &[Outbox::Status, Outbox::NextAttemptAt],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outbox::Table.into_iden(),
            Events::Table.into_iden(),
            Cases::Table.into_iden(),
            Ratings::Table.into_iden(),
            Users::Table.into_iden(),
            Units::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    name: &str,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for c in columns {
        stmt.col(*c);
    }
    manager.create_index(stmt.to_owned()).await
}

async fn unique<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    name: &str,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table).unique();
    for c in columns {
        stmt.col(*c);
    }
    manager.create_index(stmt.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Units {
    Table,
    Code,
    Name,
    ParentCode,
    Email,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Username,
    Role,
    UnitCode,
    Email,
    PasswordHash,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Ratings {
    Table,
    Id,
    Source,
    SourceId,
    ProjectNo,
    ServiceCode,
    ServiceName,
    UnitCode,
    RegionCode,
    Channel,
    Level,
    Negative,
    RatedAt,
    AssessNumber,
    RaterType,
    RaterRealName,
    RaterName,
    RaterPhone,
    RaterEmail,
    Staff,
    Indicators,
    Comment,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Cases {
    Table,
    Id,
    RatingId,
    WorkflowId,
    WorkflowVersion,
    State,
    Version,
    UnitCode,
    OriginUnit,
    StateEnteredAt,
    Deadline,
    DeadlineStart,
    DeadlineDays,
    DeadlineProvisional,
    PausedState,
    PausedRemainingDays,
    ExtensionDays,
    ReopenCount,
    Escalated,
    Overdue,
    TimerAction,
    TimerAt,
    EventCount,
    HeadHash,
    OpenedAt,
    ClosedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Id,
    CaseId,
    Seq,
    Action,
    FromState,
    ToState,
    Actor,
    At,
    Fields,
    PrevHash,
    Hash,
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    Kind,
    CaseId,
    Audience,
    Recipients,
    Subject,
    Body,
    UniqueKey,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}
