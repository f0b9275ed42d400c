//! A file attached to a case or a work item (整改佐证材料); its bytes are in the file store.

use crate::chain::SubjectKind;
use crate::code::Code;
use bihuan_core::evidence::FileType;
use sea_orm::entity::prelude::*;

/// One row of `attachments`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Whether `subject_id` is a case or a work item.
    pub subject_kind: Code<SubjectKind>,
    pub subject_id: Uuid,
    /// The name it is offered under (sanitised when it came in).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// The SHA-256 of its bytes, lowercase hex: its key in the file store.
    pub sha256: String,
    /// Its media type, judged from its bytes.
    pub content_type: Code<FileType>,
    /// Who uploaded it.
    pub uploaded_by: String,
    pub uploaded_at: DateTimeUtc,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
