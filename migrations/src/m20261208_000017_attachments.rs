//! 整改佐证材料: the files attached to a case or a work item. The bytes live in the file store
//! (`BIHUAN_FILES`: a folder or an S3 bucket), kept once per content hash; a row here says which
//! subject a file was attached to, under which name, by whom and when. An event that cites a file
//! records its SHA-256, so the hash chain covers the evidence.

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
                    .table(Attachments::Table)
                    .col(uuid(Attachments::Id).primary_key())
                    // case or task: a subject of either table, so no foreign key.
                    .col(string_len(Attachments::SubjectKind, 8))
                    .col(uuid(Attachments::SubjectId))
                    .col(string_len(Attachments::Name, 200))
                    .col(big_integer(Attachments::Size))
                    .col(string_len(Attachments::Sha256, 64))
                    .col(string_len(Attachments::ContentType, 100))
                    .col(string_len(Attachments::UploadedBy, 64))
                    .col(timestamp_with_time_zone(Attachments::UploadedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_subject")
                    .table(Attachments::Table)
                    .col(Attachments::SubjectKind)
                    .col(Attachments::SubjectId)
                    .col(Attachments::UploadedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attachments::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    SubjectKind,
    SubjectId,
    Name,
    Size,
    Sha256,
    ContentType,
    UploadedBy,
    UploadedAt,
}
