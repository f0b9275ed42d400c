//! Verifying the hash chain of every case's and every work item's events.

use std::collections::HashMap;

use bihuan_core::chain::{ChainedEvent, GENESIS_HASH, event_hash};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};
use uuid::Uuid;

use bihuan_core::{Engine, WORK_PLAN_TASK};

use crate::attachments::files_cited;
use crate::code::StoredCode;
use crate::entity::{case, event, task, task_event};
use crate::files::{FileCheck, Files};
use crate::{CaseScope, Result, Store};

/// How many cases are verified per round trip.
const PAGE: u64 = 500;

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// True when every event matches (and, when the files were checked, every file cited is
    /// present and unchanged).
    pub ok: bool,
    /// Events recomputed.
    pub events_checked: u64,
    /// Distinct files cited by those events that were read back and hashed again.
    pub files_checked: u64,
    /// The first event that does not match, or that cites a file missing or changed, if any.
    pub first_broken: Option<BrokenEvent>,
}

/// What a chain check needs to check the evidence too: the workflows (which fields cite files) and
/// the file store.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceCheck<'a> {
    pub engine: &'a Engine,
    pub files: &'a Files,
}

/// A hash-chained subject: whose chain an event belongs to, what the pipeline drives, what a file
/// is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// A 差评工单.
    Case,
    /// A work item of a plan (工作任务).
    Task,
}

impl SubjectKind {
    /// Its name in messages: 差评工单 or 工作任务.
    pub fn what(self) -> &'static str {
        match self {
            SubjectKind::Case => "差评工单",
            SubjectKind::Task => "工作任务",
        }
    }

    /// What it is in an error about stored data: `case` or `work item`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            SubjectKind::Case => "case",
            SubjectKind::Task => "work item",
        }
    }
}

/// An attachment's kind is stored as its media type (`image/jpeg`).
impl StoredCode for bihuan_core::evidence::FileType {
    const WHAT: &'static str = "attachment media type";

    fn code(self) -> &'static str {
        self.content_type()
    }

    fn from_code(code: &str) -> Option<Self> {
        Self::from_content_type(code)
    }
}

impl StoredCode for SubjectKind {
    const WHAT: &'static str = "attachment subject kind";

    fn code(self) -> &'static str {
        match self {
            SubjectKind::Case => "case",
            SubjectKind::Task => "task",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [SubjectKind::Case, SubjectKind::Task]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// An event whose hash, link or position is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenEvent {
    /// A case's chain or a work item's.
    pub of: SubjectKind,
    /// The case or work item.
    pub case_id: Uuid,
    /// The event's position in the case's chain (or where one is missing).
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

impl Store {
    /// Recomputes every event's hash, case by case, and names the first event that does not match.
    pub async fn verify_chain(&self) -> Result<ChainReport> {
        self.verify_chain_in(&CaseScope::All).await
    }

    /// The same over the cases and work items in `scope` only: a caller learns nothing of the
    /// others, not even that one of them is broken.
    pub async fn verify_chain_in(&self, scope: &CaseScope) -> Result<ChainReport> {
        self.verify(scope, None).await
    }

    /// 办理记录防篡改校验 with the evidence: the chain of every case and work item in `scope`, and
    /// every file their events cite read back from the file store and hashed again, so a file
    /// removed or replaced after it was cited is found like an edited event (named by the event
    /// that cites it).
    pub async fn verify_chain_and_files(
        &self,
        scope: &CaseScope,
        evidence: EvidenceCheck<'_>,
    ) -> Result<ChainReport> {
        self.verify(scope, Some(evidence)).await
    }

    async fn verify(
        &self,
        scope: &CaseScope,
        evidence: Option<EvidenceCheck<'_>>,
    ) -> Result<ChainReport> {
        let mut files = FilesSeen::default();
        let mut checked = 0;
        let mut after: Option<Uuid> = None;
        loop {
            let mut query = case::Entity::find()
                .filter(scope.condition())
                .order_by_asc(case::Column::Id)
                .limit(PAGE);
            if let Some(last) = after {
                query = query.filter(case::Column::Id.gt(last));
            }
            let cases = query.all(&self.db).await?;
            let Some(last) = cases.last() else { break };
            after = Some(last.id);
            let mut events: HashMap<Uuid, Vec<event::Model>> = HashMap::new();
            for e in event::Entity::find()
                .filter(event::Column::CaseId.is_in(cases.iter().map(|c| c.id)))
                .order_by_asc(event::Column::CaseId)
                .order_by_asc(event::Column::Seq)
                .all(&self.db)
                .await?
            {
                events.entry(e.case_id).or_default().push(e);
            }
            for case in &cases {
                let list = events.remove(&case.id).unwrap_or_default();
                checked += list.len() as u64;
                let head = Head {
                    of: SubjectKind::Case,
                    id: case.id,
                    event_count: case.event_count,
                    head_hash: &case.head_hash,
                };
                let links: Vec<Link<'_>> = list.iter().map(Link::of_case).collect();
                let mut broken = verify(&head, &links);
                if let (None, Some(evidence)) = (&broken, evidence) {
                    broken = files
                        .check(evidence, &head, &case.workflow_id, &links)
                        .await?;
                }
                if let Some(broken) = broken {
                    return Ok(ChainReport {
                        ok: false,
                        events_checked: checked,
                        files_checked: files.checked,
                        first_broken: Some(broken),
                    });
                }
            }
        }
        let mut after: Option<Uuid> = None;
        loop {
            let mut query = task::Entity::find()
                .filter(crate::plans::task_condition(scope))
                .order_by_asc(task::Column::Id)
                .limit(PAGE);
            if let Some(last) = after {
                query = query.filter(task::Column::Id.gt(last));
            }
            let tasks = query.all(&self.db).await?;
            let Some(last) = tasks.last() else { break };
            after = Some(last.id);
            let mut events: HashMap<Uuid, Vec<task_event::Model>> = HashMap::new();
            for e in task_event::Entity::find()
                .filter(task_event::Column::TaskId.is_in(tasks.iter().map(|t| t.id)))
                .order_by_asc(task_event::Column::TaskId)
                .order_by_asc(task_event::Column::Seq)
                .all(&self.db)
                .await?
            {
                events.entry(e.task_id).or_default().push(e);
            }
            for t in &tasks {
                let list = events.remove(&t.id).unwrap_or_default();
                checked += list.len() as u64;
                let head = Head {
                    of: SubjectKind::Task,
                    id: t.id,
                    event_count: t.event_count,
                    head_hash: &t.head_hash,
                };
                let links: Vec<Link<'_>> = list.iter().map(Link::of_task).collect();
                let mut broken = verify(&head, &links);
                if let (None, Some(evidence)) = (&broken, evidence) {
                    broken = files.check(evidence, &head, WORK_PLAN_TASK, &links).await?;
                }
                if let Some(broken) = broken {
                    return Ok(ChainReport {
                        ok: false,
                        events_checked: checked,
                        files_checked: files.checked,
                        first_broken: Some(broken),
                    });
                }
            }
        }
        Ok(ChainReport {
            ok: true,
            events_checked: checked,
            files_checked: files.checked,
            first_broken: None,
        })
    }
}

/// The files a chain check has read back, each once however many events cite it.
#[derive(Debug, Default)]
struct FilesSeen {
    /// SHA-256 → what the store holds under it.
    seen: HashMap<String, FileCheck>,
    checked: u64,
}

impl FilesSeen {
    /// The first event of a (sound) chain that cites a file missing from the store or changed
    /// there.
    async fn check(
        &mut self,
        evidence: EvidenceCheck<'_>,
        head: &Head<'_>,
        workflow: &str,
        links: &[Link<'_>],
    ) -> Result<Option<BrokenEvent>> {
        for e in links {
            let fields = crate::cases::recorded_fields(head.of, head.id, e.seq, e.fields)?;
            let cited = match files_cited(evidence.engine, workflow, e.action, &fields) {
                Ok(cited) => cited,
                Err(reason) => return Ok(Some(head.broken(e.seq, reason))),
            };
            for file in cited {
                let found = match self.seen.get(&file.sha256) {
                    Some(found) => found.clone(),
                    None => {
                        let found = evidence.files.check(&file.sha256, file.size).await?;
                        self.checked += 1;
                        self.seen.insert(file.sha256.clone(), found.clone());
                        found
                    }
                };
                let reason = match found {
                    FileCheck::Present => continue,
                    FileCheck::Missing => format!(
                        "it cites the file “{}” (sha256 {}), which is missing from the file store",
                        file.name, file.sha256
                    ),
                    FileCheck::Changed { .. } => format!(
                        "it cites the file “{}” (sha256 {}), whose stored bytes no longer match that hash",
                        file.name, file.sha256
                    ),
                };
                return Ok(Some(head.broken(e.seq, reason)));
            }
        }
        Ok(None)
    }
}

/// The row that anchors a chain.
struct Head<'a> {
    of: SubjectKind,
    id: Uuid,
    event_count: i64,
    head_hash: &'a str,
}

impl Head<'_> {
    fn broken(&self, seq: i64, reason: String) -> BrokenEvent {
        BrokenEvent {
            of: self.of,
            case_id: self.id,
            seq,
            reason,
        }
    }
}

/// One event of a chain, whichever table it is in.
struct Link<'a> {
    seq: i64,
    action: &'a str,
    from: Option<&'a str>,
    to: &'a str,
    actor: &'a str,
    at: chrono::DateTime<chrono::Utc>,
    fields: &'a str,
    prev_hash: &'a str,
    hash: &'a str,
}

impl<'a> Link<'a> {
    fn of_case(e: &'a event::Model) -> Self {
        Self {
            seq: e.seq,
            action: &e.action,
            from: e.from_state.as_deref(),
            to: &e.to_state,
            actor: &e.actor,
            at: e.at,
            fields: &e.fields,
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        }
    }

    fn of_task(e: &'a task_event::Model) -> Self {
        Self {
            seq: e.seq,
            action: &e.action,
            from: e.from_state.as_deref(),
            to: &e.to_state,
            actor: &e.actor,
            at: e.at,
            fields: &e.fields,
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        }
    }
}

fn verify(head: &Head<'_>, events: &[Link<'_>]) -> Option<BrokenEvent> {
    let broken = |seq: i64, reason: String| {
        Some(BrokenEvent {
            of: head.of,
            case_id: head.id,
            seq,
            reason,
        })
    };
    let mut prev = GENESIS_HASH.to_owned();
    let case_id = head.id.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return broken(
                expected_seq,
                format!("event {expected_seq} is missing (found {})", e.seq),
            );
        }
        if e.prev_hash != prev {
            return broken(
                e.seq,
                "its previous hash does not match the event before it".into(),
            );
        }
        let fields: Map<String, Value> = match serde_json::from_str(e.fields) {
            Ok(f) => f,
            Err(_) => return broken(e.seq, "its fields are not a JSON object".into()),
        };
        let hash = event_hash(
            &prev,
            &ChainedEvent {
                subject_id: &case_id,
                seq: e.seq,
                action: e.action,
                from: e.from,
                to: e.to,
                actor: e.actor,
                at: e.at,
                fields: &fields,
            },
        );
        if hash != e.hash {
            return broken(
                e.seq,
                "its content does not match its hash (edited after it was written)".into(),
            );
        }
        prev = hash;
    }
    let count = events.len() as i64;
    if count != head.event_count {
        return broken(
            count + 1,
            format!(
                "the row records {} events but {count} are stored",
                head.event_count
            ),
        );
    }
    if prev != head.head_hash {
        return broken(
            count,
            "the row's head hash does not match its last event".into(),
        );
    }
    None
}
