//! Supervisors' audits of closed loops (审核): a pass is recorded; a fail is recorded and reopens the
//! case through the workflow's `audit_fail` action, in one transaction.

use bihuan_core::{Actor, Engine};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cases::{ActionRequest, CaseDetail, workflow_of};
use crate::clock::truncate_to_micros;
use crate::code::{Code, StoredCode};
use crate::entity::{audit, case};
use crate::scope::CaseScope;
use crate::{Result, Store, StoreError};

/// The workflow action a failed audit takes.
pub const AUDIT_FAIL_ACTION: &str = "audit_fail";

/// An audit verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 审核通过.
    Pass,
    /// 审核不通过: the case reopens.
    Fail,
}

impl Verdict {
    /// The stored identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

impl StoredCode for Verdict {
    const WHAT: &'static str = "audit verdict";

    fn code(self) -> &'static str {
        self.as_str()
    }

    fn from_code(code: &str) -> Option<Self> {
        [Verdict::Pass, Verdict::Fail]
            .into_iter()
            .find(|v| v.as_str() == code)
    }
}

impl Store {
    /// Records an audit of a closed case. Auditors are the roles the workflow allows to take
    /// `audit_fail`; a fail needs a reason and reopens the case.
    pub async fn record_audit(
        &self,
        engine: &Engine,
        case_id: Uuid,
        verdict: Verdict,
        reason: Option<&str>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<audit::Model> {
        self.write(async |txn| {
            let now = truncate_to_micros(now);
            let reason = reason.map(str::trim).filter(|r| !r.is_empty());
            if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
                return Err(StoreError::Invalid {
                    field: "reason".into(),
                    message: format!("审核意见最多 {MAX_REASON_CHARS} 个字符"),
                });
            }
            let current = case::Entity::find_by_id(case_id)
                .one(txn)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "差评工单",
                    id: case_id.to_string(),
                })?;
            let def = workflow_of(engine, &current)?;
            let fail_action = def.action(AUDIT_FAIL_ACTION).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "workflow {} has no {AUDIT_FAIL_ACTION} action",
                    def.id
                ))
            })?;
            if !fail_action.roles.contains(&actor.role) {
                return Err(bihuan_core::ActionError::RoleNotAllowed {
                    action: AUDIT_FAIL_ACTION.to_owned(),
                    role: actor.role,
                }
                .into());
            }
            if !fail_action.from.contains(&current.state) {
                return Err(StoreError::Invalid {
                    field: "case_id".into(),
                    message: "只能审核已办结的差评工单".into(),
                });
            }
            if verdict == Verdict::Fail {
                let Some(reason) = reason else {
                    return Err(bihuan_core::ActionError::MissingField {
                        field: "reason".into(),
                        label: "不通过理由".into(),
                    }
                    .into());
                };
                let mut fields = Map::new();
                fields.insert("reason".into(), Value::from(reason));
                self.act_in::<CaseDetail>(
                    txn,
                    engine,
                    &ActionRequest {
                        id: case_id,
                        scope: &CaseScope::All,
                        version: current.version,
                        action: AUDIT_FAIL_ACTION,
                        fields: &fields,
                        actor,
                        now,
                    },
                )
                .await?;
            }
            let row = audit::ActiveModel {
                id: Set(Uuid::now_v7()),
                case_id: Set(case_id),
                verdict: Set(Code(verdict)),
                reason: Set(reason.map(str::to_owned)),
                auditor: Set(actor.name.clone()),
                at: Set(now),
            }
            .insert(txn)
            .await?;
            Ok(row)
        })
        .await
    }
}

/// The longest reason an audit records.
const MAX_REASON_CHARS: usize = 2000;
