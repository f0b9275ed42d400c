//! What the core's integration tests share: the engine of the shipped workflow and calendar files.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;

use bihuan_core::{Decision, Engine, Source, Subject};
use chrono::{DateTime, TimeZone, Utc};

/// An hour of a day of 2021, Beijing time.
pub fn beijing(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// The shipped workflows and calendars, built as a deployment builds them.
pub fn engine() -> Engine {
    let src = |name: &str, text: &str| Source {
        name: name.into(),
        text: text.into(),
    };
    Engine::build(
        &[
            src(
                "negative-rating.toml",
                include_str!("../../../../workflows/negative-rating.toml"),
            ),
            src(
                "work-plan-task.toml",
                include_str!("../../../../workflows/work-plan-task.toml"),
            ),
        ],
        &[src(
            "cn-mainland-2021-2026.toml",
            include_str!("../../../../workflows/calendars/cn-mainland-2021-2026.toml"),
        )],
        chrono_tz::Asia::Shanghai,
    )
    .unwrap()
}

/// Applies a decision to a subject the way the store does.
pub fn apply(s: &Subject, d: &Decision) -> Subject {
    let mut counts = if d.from.as_deref() == Some(d.to.as_str()) {
        s.actions_in_state.clone()
    } else {
        BTreeMap::new()
    };
    *counts.entry(d.action.clone()).or_default() += 1;
    Subject {
        state: d.to.clone(),
        responsible_units: d.responsible_units.clone(),
        co_units: s.co_units.clone(),
        reopen_count: d.reopen_count,
        escalated: d.escalated,
        extension_days: d.extension_days,
        extension_days_used: d.extension_days_used,
        extension_requested: d.extension_requested,
        appeals_used: d.appeals_used,
        transferred_at: d.transferred_at,
        responsible_ancestors: s.responsible_ancestors.clone(),
        timing: d.timing.clone(),
        overall: d.overall.clone(),
        scheduled: d.scheduled.clone(),
        actions_in_state: counts,
        evidence: s.evidence.clone(),
        anonymous_rater: s.anonymous_rater,
        known_names: s.known_names.clone(),
    }
}

/// The id of the one file [`with_evidence`] attaches: cite it as `"evidence": ["e-1"]`.
pub const EVIDENCE: &str = "e-1";

/// The subject with a file attached that an action may cite ([`EVIDENCE`]), as the store loads the
/// files an action cites.
pub fn with_evidence(s: Subject) -> Subject {
    Subject {
        evidence: vec![bihuan_core::evidence::EvidenceFile {
            id: EVIDENCE.into(),
            name: "整改前后对比照片.jpg".into(),
            size: 182_044,
            sha256: "9f".repeat(32),
        }],
        ..s
    }
}
