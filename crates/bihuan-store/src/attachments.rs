//! 整改佐证材料: the files attached to cases and work items. The bytes are in the file store
//! ([`crate::files::Files`], kept once per SHA-256); a row of `attachments` says which subject a file
//! was attached to, under which name, by whom and when. An action's evidence field cites attachments
//! of its own subject by id; the pipeline loads those in the action's transaction and the core
//! records each with its SHA-256 in the event, so the hash chain covers the evidence.

use bihuan_core::cited_ids;
use bihuan_core::evidence::{EvidenceFile, FileType};
use bihuan_core::workflow::FieldKind;
use bihuan_core::{Engine, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::code::Code;
use crate::entity::{attachment, case, task};
use crate::org_tree::OrgTree;
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError, SubjectKind};

/// The most files one case or work item may carry: every input is bounded.
pub const MAX_ATTACHMENTS_PER_SUBJECT: u64 = 200;

/// A file to record as attached, already kept in the file store under its SHA-256.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    pub subject: SubjectKind,
    pub subject_id: Uuid,
    /// Its name, sanitised ([`bihuan_core::evidence::sanitize_name`]).
    pub name: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    pub content_type: FileType,
    /// Who uploaded it.
    pub uploaded_by: &'a str,
}

/// A stored attachment as an event cites it; a stored size below zero is corrupt, never 0.
pub fn evidence_file(a: &attachment::Model) -> Result<EvidenceFile> {
    Ok(EvidenceFile {
        id: a.id.to_string(),
        name: a.name.clone(),
        size: u64::try_from(a.size).map_err(|_| {
            StoreError::Corrupt(format!("attachment {} has the size {}", a.id, a.size))
        })?,
        sha256: a.sha256.clone(),
    })
}

impl Store {
    /// Whether the caller may attach files to (and so first upload them for) this subject: it exists
    /// and is in `scope`; not found otherwise. Asked before an upload is read, so a file for a
    /// subject out of reach is never stored.
    pub async fn attachable(&self, scope: &CaseScope, kind: SubjectKind, id: Uuid) -> Result<()> {
        let org = self.org().await?;
        subject_visible(&self.db, &org, scope, kind, id, false).await
    }

    /// Keeps a file received into `path` (hashed by the caller) in the file store, then records it on
    /// its subject: the one way a file is attached. The bytes go first, so a recorded attachment
    /// always has its file; a file stored for a row that was then refused (the subject gone out of
    /// reach, its cap reached) is the same content any later upload of it reuses.
    pub async fn keep_attachment(
        &self,
        files: &crate::files::Files,
        path: &std::path::Path,
        scope: &CaseScope,
        new: &NewAttachment<'_>,
        now: DateTime<Utc>,
    ) -> Result<attachment::Model> {
        files
            .put_file(path, new.sha256, new.size)
            .await
            .map_err(StoreError::from)?;
        self.add_attachment(scope, new, now).await
    }

    /// Records a file attached to a subject the caller may see, in a transaction of its own (the
    /// scope and the per-subject cap are checked again there).
    pub async fn add_attachment(
        &self,
        scope: &CaseScope,
        new: &NewAttachment<'_>,
        now: DateTime<Utc>,
    ) -> Result<attachment::Model> {
        if !bihuan_core::evidence::is_sha256(new.sha256) {
            return Err(StoreError::Invalid {
                field: "sha256".into(),
                message: "应为 64 位小写十六进制 SHA-256".into(),
            });
        }
        let size = i64::try_from(new.size).map_err(|_| StoreError::Invalid {
            field: "size".into(),
            message: "文件过大".into(),
        })?;
        self.write(async |txn| {
            let org = self.org_in(txn).await?;
            // The subject's row is locked (PostgreSQL; SQLite writes one at a time): two uploads
            // at once cannot both find room under the cap.
            subject_visible(txn, &org, scope, new.subject, new.subject_id, true).await?;
            let held = attachment::Entity::find()
                .filter(attachment::Column::SubjectKind.eq(Code(new.subject)))
                .filter(attachment::Column::SubjectId.eq(new.subject_id))
                .count(txn)
                .await?;
            if held >= MAX_ATTACHMENTS_PER_SUBJECT {
                return Err(StoreError::Invalid {
                    field: "file".into(),
                    message: format!(
                        "每件{}最多上传 {MAX_ATTACHMENTS_PER_SUBJECT} 个附件",
                        new.subject.what()
                    ),
                });
            }
            let row = attachment::ActiveModel {
                id: Set(Uuid::now_v7()),
                subject_kind: Set(Code(new.subject)),
                subject_id: Set(new.subject_id),
                name: Set(new.name.to_owned()),
                size: Set(size),
                sha256: Set(new.sha256.to_owned()),
                content_type: Set(Code(new.content_type)),
                uploaded_by: Set(new.uploaded_by.to_owned()),
                uploaded_at: Set(truncate_to_micros(now)),
            };
            Ok(row.insert(txn).await?)
        })
        .await
    }

    /// An attachment the caller may see (its subject is in `scope`); not found otherwise.
    pub async fn attachment(&self, scope: &CaseScope, id: Uuid) -> Result<attachment::Model> {
        let not_found = || StoreError::NotFound {
            what: "附件",
            id: id.to_string(),
        };
        let found = attachment::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(not_found)?;
        let org = self.org().await?;
        match subject_visible(
            &self.db,
            &org,
            scope,
            *found.subject_kind,
            found.subject_id,
            false,
        )
        .await
        {
            Ok(()) => Ok(found),
            Err(StoreError::NotFound { .. }) => Err(not_found()),
            Err(e) => Err(e),
        }
    }

    /// The files attached to each of some subjects of one kind (the caller has checked it may see
    /// them), oldest first, in one query: a list's files without a query per row.
    pub async fn attachments_of_each(
        &self,
        kind: SubjectKind,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<attachment::Model>>> {
        let mut by_subject: std::collections::HashMap<Uuid, Vec<attachment::Model>> =
            std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(by_subject);
        }
        for a in attachment::Entity::find()
            .filter(attachment::Column::SubjectKind.eq(Code(kind)))
            .filter(attachment::Column::SubjectId.is_in(ids.iter().copied()))
            .order_by_asc(attachment::Column::UploadedAt)
            .order_by_asc(attachment::Column::Id)
            .all(&self.db)
            .await?
        {
            by_subject.entry(a.subject_id).or_default().push(a);
        }
        Ok(by_subject)
    }

    /// The files attached to a subject, oldest first (the caller has checked it may see it).
    pub async fn attachments_of(
        &self,
        kind: SubjectKind,
        id: Uuid,
    ) -> Result<Vec<attachment::Model>> {
        Ok(attachment::Entity::find()
            .filter(attachment::Column::SubjectKind.eq(Code(kind)))
            .filter(attachment::Column::SubjectId.eq(id))
            .order_by_asc(attachment::Column::UploadedAt)
            .order_by_asc(attachment::Column::Id)
            .all(&self.db)
            .await?)
    }
}

/// Not found unless the subject exists and `scope` reaches it; with `lock`, its row is locked for
/// the rest of the transaction (PostgreSQL).
async fn subject_visible(
    db: &impl ConnectionTrait,
    org: &OrgTree,
    scope: &CaseScope,
    kind: SubjectKind,
    id: Uuid,
    lock: bool,
) -> Result<()> {
    let not_found = || StoreError::NotFound {
        what: kind.what(),
        id: id.to_string(),
    };
    let postgres = lock && db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let visible = match kind {
        SubjectKind::Case => {
            let mut query = case::Entity::find_by_id(id);
            if postgres {
                query = query.lock_exclusive();
            }
            query.one(db).await?.is_some_and(|c| scope.contains(&c))
        }
        SubjectKind::Task => {
            let mut query = task::Entity::find_by_id(id);
            if postgres {
                query = query.lock_exclusive();
            }
            match query.one(db).await? {
                Some(t) => {
                    let views = crate::plans::views_of(db, org, vec![t]).await?;
                    views
                        .first()
                        .is_some_and(|v| crate::plans::task_in_scope(scope, v))
                }
                None => false,
            }
        }
    };
    if visible { Ok(()) } else { Err(not_found()) }
}

/// The attachments of the subject that an action's evidence fields cite, read in the action's
/// transaction (no statement when none is cited). Ids that name no attachment of this subject are
/// left out: the core refuses them by name.
pub(crate) async fn cited(
    db: &impl ConnectionTrait,
    def: &WorkflowDefinition,
    kind: SubjectKind,
    subject_id: Uuid,
    action: &str,
    fields: &Map<String, Value>,
) -> Result<Vec<EvidenceFile>> {
    let Some(action) = def.action(action) else {
        return Ok(Vec::new());
    };
    let ids: Vec<Uuid> = action
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Evidence { .. }))
        .filter_map(|f| fields.get(&f.name))
        .filter_map(cited_ids)
        .flatten()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .take(bihuan_core::workflow::MAX_EVIDENCE_FILES + 1)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = attachment::Entity::find()
        .filter(attachment::Column::SubjectKind.eq(Code(kind)))
        .filter(attachment::Column::SubjectId.eq(subject_id))
        .filter(attachment::Column::Id.is_in(ids))
        .all(db)
        .await?;
    found.iter().map(evidence_file).collect()
}

/// The files an event's recorded fields cite (the values of its action's evidence fields), for the
/// chain check; an evidence value of the wrong shape is corrupt.
pub(crate) fn files_cited(
    engine: &Engine,
    workflow: &str,
    action: &str,
    fields: &Map<String, Value>,
) -> std::result::Result<Vec<EvidenceFile>, String> {
    match engine.workflow(workflow) {
        Some(def) => cited_by(def, action, fields),
        None => Ok(Vec::new()),
    }
}

/// The files an event of `def`'s `action` cites, from its recorded fields; an evidence value of the
/// wrong shape is an error saying so.
pub(crate) fn cited_by(
    def: &WorkflowDefinition,
    action: &str,
    fields: &Map<String, Value>,
) -> std::result::Result<Vec<EvidenceFile>, String> {
    let Some(action) = def.action(action) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for field in &action.fields {
        if !matches!(field.kind, FieldKind::Evidence { .. }) {
            continue;
        }
        let Some(value) = fields.get(&field.name) else {
            continue;
        };
        let items = value
            .as_array()
            .ok_or_else(|| format!("field {} is not a list of files", field.name))?;
        for item in items {
            files.push(EvidenceFile::from_recorded(item).ok_or_else(|| {
                format!(
                    "field {} holds a file without id, name, size and sha256",
                    field.name
                )
            })?);
        }
    }
    Ok(files)
}
