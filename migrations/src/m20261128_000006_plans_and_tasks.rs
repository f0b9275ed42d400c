//! 任务分解: plans, their work items (`tasks`) with the units that lead or help each, their targets,
//! and each item's own hash-chained event log.
//!
//! A work item runs a workflow like a case, but it is not a case: it has no rating, no origin unit and
//! no metrics, and it has several lead units. It keeps the interpreter's columns (state, version,
//! deadline, reminder stage, head hash) in its own table.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(pk_uuid(Plans::Id))
                    .col(string_len(Plans::Name, 200))
                    .col(integer(Plans::Year))
                    .col(string_len(Plans::Source, 300))
                    .col(integer(Plans::ReportMonths).default(1))
                    .col(string_len(Plans::CreatedBy, 64))
                    .col(timestamp_with_time_zone(Plans::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_plans_name_year")
                    .table(Plans::Table)
                    .col(Plans::Name)
                    .col(Plans::Year)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(pk_uuid(Tasks::Id))
                    .col(uuid(Tasks::PlanId))
                    .col(integer(Tasks::Position))
                    .col(integer(Tasks::SourceRow))
                    .col(string_len(Tasks::KeyTask, 500))
                    .col(text(Tasks::Title))
                    .col(string_len(Tasks::DueKind, 16))
                    .col(date_null(Tasks::DueDate))
                    .col(string_len(Tasks::WorkflowId, 64))
                    .col(integer(Tasks::WorkflowVersion))
                    .col(string_len(Tasks::State, 64))
                    .col(integer(Tasks::Version))
                    .col(timestamp_with_time_zone(Tasks::StateEnteredAt))
                    .col(timestamp_with_time_zone_null(Tasks::Deadline))
                    .col(string_len_null(Tasks::Owed, 16))
                    .col(timestamp_with_time_zone_null(Tasks::StateDeadline))
                    .col(timestamp_with_time_zone_null(Tasks::DeadlineStart))
                    .col(integer_null(Tasks::DeadlineDays))
                    .col(boolean(Tasks::DeadlineProvisional).default(false))
                    .col(boolean(Tasks::Escalated).default(false))
                    .col(boolean(Tasks::Overdue).default(false))
                    .col(timestamp_with_time_zone_null(Tasks::RemindAt))
                    .col(small_integer(Tasks::RemindStage).default(0))
                    .col(timestamp_with_time_zone_null(Tasks::LastReportAt))
                    .col(integer_null(Tasks::Percent))
                    .col(text_null(Tasks::LastProgress))
                    .col(big_integer(Tasks::EventCount))
                    .col(string_len(Tasks::HeadHash, 64))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tasks::ClosedAt))
                    .col(timestamp_with_time_zone(Tasks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tasks::Table, Tasks::PlanId)
                            .to(Plans::Table, Plans::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_tasks_plan", Tasks::PlanId),
            ("idx_tasks_remind_at", Tasks::RemindAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Tasks::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(TaskUnits::Table)
                    .col(uuid(TaskUnits::TaskId))
                    .col(string_len(TaskUnits::Role, 8))
                    .col(string_len(TaskUnits::UnitCode, 64))
                    .col(integer(TaskUnits::Position))
                    .primary_key(
                        Index::create()
                            .col(TaskUnits::TaskId)
                            .col(TaskUnits::Role)
                            .col(TaskUnits::UnitCode),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskUnits::Table, TaskUnits::TaskId)
                            .to(Tasks::Table, Tasks::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskUnits::Table, TaskUnits::UnitCode)
                            .to(Units::Table, Units::Code),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_task_units_unit")
                    .table(TaskUnits::Table)
                    .col(TaskUnits::UnitCode)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TaskTargets::Table)
                    .col(big_pk_auto(TaskTargets::Id))
                    .col(uuid(TaskTargets::TaskId))
                    .col(integer(TaskTargets::Position))
                    .col(string_len(TaskTargets::Name, 500))
                    .col(string_len(TaskTargets::Comparison, 16))
                    .col(double(TaskTargets::Value))
                    .col(string_len(TaskTargets::Unit, 16))
                    .col(string_len_null(TaskTargets::Metric, 64))
                    .col(double_null(TaskTargets::ReportedValue))
                    .col(timestamp_with_time_zone_null(TaskTargets::ReportedAt))
                    .col(string_len_null(TaskTargets::ReportedBy, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskTargets::Table, TaskTargets::TaskId)
                            .to(Tasks::Table, Tasks::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_task_targets_task")
                    .table(TaskTargets::Table)
                    .col(TaskTargets::TaskId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TaskEvents::Table)
                    .col(big_pk_auto(TaskEvents::Id))
                    .col(uuid(TaskEvents::TaskId))
                    .col(big_integer(TaskEvents::Seq))
                    .col(string_len(TaskEvents::Action, 64))
                    .col(string_len_null(TaskEvents::FromState, 64))
                    .col(string_len(TaskEvents::ToState, 64))
                    .col(string_len(TaskEvents::Actor, 64))
                    .col(timestamp_with_time_zone(TaskEvents::At))
                    .col(text(TaskEvents::Fields))
                    .col(string_len(TaskEvents::PrevHash, 64))
                    .col(string_len(TaskEvents::Hash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskEvents::Table, TaskEvents::TaskId)
                            .to(Tasks::Table, Tasks::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_task_events_task_seq")
                    .table(TaskEvents::Table)
                    .col(TaskEvents::TaskId)
                    .col(TaskEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TaskEvents::Table.into_iden(),
            TaskTargets::Table.into_iden(),
            TaskUnits::Table.into_iden(),
            Tasks::Table.into_iden(),
            Plans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Id,
    Name,
    Year,
    Source,
    ReportMonths,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    PlanId,
    Position,
    SourceRow,
    KeyTask,
    Title,
    DueKind,
    DueDate,
    WorkflowId,
    WorkflowVersion,
    State,
    Version,
    StateEnteredAt,
    Deadline,
    Owed,
    StateDeadline,
    DeadlineStart,
    DeadlineDays,
    DeadlineProvisional,
    Escalated,
    Overdue,
    RemindAt,
    RemindStage,
    LastReportAt,
    Percent,
    LastProgress,
    EventCount,
    HeadHash,
    CreatedAt,
    ClosedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TaskUnits {
    Table,
    TaskId,
    Role,
    UnitCode,
    Position,
}

#[derive(DeriveIden)]
enum TaskTargets {
    Table,
    Id,
    TaskId,
    Position,
    Name,
    Comparison,
    Value,
    Unit,
    Metric,
    ReportedValue,
    ReportedAt,
    ReportedBy,
}

#[derive(DeriveIden)]
enum TaskEvents {
    Table,
    Id,
    TaskId,
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

#[derive(DeriveIden)]
enum Units {
    Table,
    Code,
}
