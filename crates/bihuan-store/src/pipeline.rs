//! The one action pipeline of every hash-chained subject (差评工单, 工作任务, and whatever comes next).
//!
//! In one transaction: take the organization tree (cached; one row read to know it is current), load
//! the subject once with everything `decide()` and the effects need; check
//! that the caller may see it and that its version is the one they saw; let the core decide (pure);
//! check the caller's rights on what was decided, against the cached organization tree; write the
//! subject with `UPDATE … WHERE id = ? AND version = ? RETURNING *`; append the event to the chain;
//! write the effects (metric counters, outbox rows, the subject's own side rows); and answer from what
//! was loaded and written, without reading it back. A subject plugs in by implementing [`Chained`].

use std::future::Future;

use bihuan_core::chain::{ChainedEvent, event_hash};
use bihuan_core::personal_data::KnownNames;
use bihuan_core::{Decision, Engine, Subject, WorkflowDefinition};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::chain::SubjectKind;
use crate::clock::truncate_to_micros;
use crate::org_tree::OrgTree;
use crate::scope::CaseScope;
use crate::{ActionRequest, Result, Store, StoreError};

/// What one action runs with: its transaction, the engine and the organization as the transaction
/// sees it.
pub(crate) struct Ctx<'a> {
    pub txn: &'a DatabaseTransaction,
    pub engine: &'a Engine,
    pub org: &'a OrgTree,
    /// Whether steps are pushed to the provincial platform (数据回传).
    pub upstream: bool,
}

/// The decided step, chained: what the subject's row, its event and its effects are written from.
#[derive(Debug)]
pub(crate) struct Step {
    pub decision: Decision,
    /// The new event's place in the chain (1 for the first).
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// Who took it.
    pub actor: String,
    /// When, to the microsecond the databases keep.
    pub now: DateTime<Utc>,
    /// The caller saw this version; the write is guarded by it.
    pub version: i32,
}

impl Step {
    /// Whether the step entered a new state (not a stay in the same one).
    pub fn entered(&self) -> bool {
        self.decision.from.as_deref() != Some(self.decision.to.as_str())
    }
}

/// A hash-chained subject the pipeline drives: what it is loaded with, who may see and act on it,
/// and how its row, its event and its effects are written.
pub(crate) trait Chained: Sized + Send + Sync {
    /// The subject's row as written.
    type Row: Send + Sync;
    /// What the caller gets back.
    type Answer;
    /// What it is: its name in errors (`差评工单`, `工作任务`), what its attachments are filed under.
    const KIND: SubjectKind;

    /// The subject with what `decide()` and the effects need, in one go; `None`: there is none.
    fn load(ctx: &Ctx<'_>, id: Uuid) -> impl Future<Output = Result<Option<Self>>> + Send;

    /// Its current version.
    fn version(&self) -> i32;

    /// Its chain so far: the number of events and the last one's hash.
    fn chain_head(&self) -> (i64, &str);

    /// The workflow it runs.
    fn workflow<'e>(&self, engine: &'e Engine) -> Result<&'e WorkflowDefinition>;

    /// Whether a caller of `scope` may see it (outside: not found).
    fn visible(&self, scope: &CaseScope) -> bool;

    /// The subject as the interpreter sees it.
    fn subject(&self) -> Subject;

    /// The names of people it holds, which a text for publication must not name (a case: its
    /// rater's and the staff the rater rated); read only for an action given such a text.
    fn known_names(&self) -> Result<KnownNames> {
        Ok(KnownNames::default())
    }

    /// The caller's rights on what was decided, beyond the role the workflow names: a refusal is an
    /// error, checked in the transaction before anything is written.
    fn may(&self, ctx: &Ctx<'_>, req: &ActionRequest<'_>, step: &Step) -> Result<()>;

    /// Writes the row at the step, only if its version is still `step.version`: the row as written,
    /// or `None` when another action came first.
    fn write(
        &self,
        ctx: &Ctx<'_>,
        def: &WorkflowDefinition,
        step: &Step,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;

    /// The version another action left (for the conflict's answer); `None`: the subject is gone.
    fn version_now(
        txn: &DatabaseTransaction,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<i32>>> + Send;

    /// Appends the step's event to the chain and to the subject's events as loaded.
    fn append(
        &mut self,
        txn: &DatabaseTransaction,
        step: &Step,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Everything else the step causes, in the same transaction: metric counters, outbox rows,
    /// side rows of the subject. `after` is the row as written; the subject's events end with the
    /// step's.
    fn effects(
        &mut self,
        ctx: &Ctx<'_>,
        def: &WorkflowDefinition,
        after: &Self::Row,
        step: &Step,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The answer, from what was loaded and written.
    fn answer(self, after: Self::Row) -> Self::Answer;
}

/// Whether the action is given a text written for publication (公开答复), which must hold no staff
/// member's name: only then are the names read.
fn gives_public_text(
    def: &WorkflowDefinition,
    action: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    def.action(action)
        .is_some_and(|a| a.public_text(fields).is_some())
}

impl Store {
    /// Takes an action on subject `S` in a transaction of its own: everything is kept, or nothing.
    pub(crate) async fn act<S: Chained>(
        &self,
        engine: &Engine,
        req: &ActionRequest<'_>,
    ) -> Result<S::Answer> {
        self.write(async |txn| self.act_in::<S>(txn, engine, req).await)
            .await
    }

    /// The pipeline, inside a transaction the caller commits (an audit or a review that writes rows
    /// of its own with the action).
    pub(crate) async fn act_in<S: Chained>(
        &self,
        txn: &DatabaseTransaction,
        engine: &Engine,
        req: &ActionRequest<'_>,
    ) -> Result<S::Answer> {
        let now = truncate_to_micros(req.now);
        let not_found = || StoreError::NotFound {
            what: S::KIND.what(),
            id: req.id.to_string(),
        };
        let org = self.org_in(txn).await?;
        let ctx = Ctx {
            txn,
            engine,
            org: &org,
            upstream: self.upstream,
        };
        let mut loaded = S::load(&ctx, req.id).await?.ok_or_else(not_found)?;
        if !loaded.visible(req.scope) {
            return Err(not_found());
        }
        if loaded.version() != req.version {
            return Err(StoreError::Conflict {
                expected: req.version,
                actual: loaded.version(),
            });
        }
        let def = loaded.workflow(engine)?;
        let mut subject = loaded.subject();
        subject.evidence =
            crate::attachments::cited(txn, def, S::KIND, req.id, req.action, req.fields).await?;
        if gives_public_text(def, req.action, req.fields) {
            let mut names = loaded.known_names()?;
            names.staff.extend(crate::org::staff_names(txn).await?);
            subject.known_names = names;
        }
        let decision = bihuan_core::decide(
            def,
            engine.calendar(),
            &subject,
            req.actor,
            req.action,
            req.fields,
            now,
        )?;
        let (count, head) = loaded.chain_head();
        let seq = count + 1;
        let hash = event_hash(
            head,
            &ChainedEvent {
                subject_id: &req.id.to_string(),
                seq,
                action: &decision.action,
                from: decision.from.as_deref(),
                to: &decision.to,
                actor: &req.actor.name,
                at: now,
                fields: &decision.fields,
            },
        );
        let step = Step {
            prev_hash: head.to_owned(),
            decision,
            seq,
            hash,
            actor: req.actor.name.clone(),
            now,
            version: req.version,
        };
        loaded.may(&ctx, req, &step)?;
        let Some(after) = loaded.write(&ctx, def, &step).await? else {
            let actual = S::version_now(txn, req.id).await?.ok_or_else(not_found)?;
            return Err(StoreError::Conflict {
                expected: req.version,
                actual,
            });
        };
        loaded.append(txn, &step).await?;
        loaded.effects(&ctx, def, &after, &step).await?;
        Ok(loaded.answer(after))
    }
}
