//! One outbox, many channels: a row goes out by mail, by SMS or as a push to the provincial platform
//! (数据回传), written in the transaction of what causes it and delivered by the one sender with a
//! plug-in per channel. `channel` says which (every row before this one is mail); `payload` holds
//! what a channel other than mail sends (the SMS's number and text, the push's JSON).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(string_len(Outbox::Channel, 16).default("mail"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(text_null(Outbox::Payload))
                    .to_owned(),
            )
            .await?;
        // Each channel's sender claims its own due rows.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_channel_due")
                    .table(Outbox::Table)
                    .col(Outbox::Channel)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_channel_due")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        // What went by another channel than mail cannot stay as mail.
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM outbox WHERE channel <> 'mail'")
            .await?;
        for column in [Outbox::Payload, Outbox::Channel] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Channel,
    Payload,
    Status,
    NextAttemptAt,
}
