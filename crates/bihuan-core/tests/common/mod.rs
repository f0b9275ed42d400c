//! What the core's integration tests share: the engine of the shipped workflow and calendar files.

#![allow(clippy::unwrap_used, dead_code)]

use bihuan_core::{Engine, Source};

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
