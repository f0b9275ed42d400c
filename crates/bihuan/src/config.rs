//! Configuration from the environment (API.md): time zone, clock, workflows.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use bihuan_core::{Engine, Source};
use bihuan_store::Clock;
use chrono::DateTime;
use chrono_tz::Tz;

/// The workflow files shipped with the binary, used when no folder is given and `./workflows` is absent.
const BUILT_IN_WORKFLOWS: [(&str, &str); 2] = [
    (
        "negative-rating.toml",
        include_str!("../../../workflows/negative-rating.toml"),
    ),
    (
        "work-plan-task.toml",
        include_str!("../../../workflows/work-plan-task.toml"),
    ),
];
const BUILT_IN_CALENDARS: [(&str, &str); 1] = [(
    "cn-mainland-2021-2026.toml",
    include_str!("../../../workflows/calendars/cn-mainland-2021-2026.toml"),
)];

/// The time zone in which working days begin and end (`BIHUAN_TZ`, default Asia/Shanghai).
pub fn time_zone() -> anyhow::Result<Tz> {
    match std::env::var("BIHUAN_TZ") {
        Ok(name) if !name.trim().is_empty() => name
            .trim()
            .parse::<Tz>()
            .map_err(|_| anyhow!("BIHUAN_TZ={name} is not a known time zone (e.g. Asia/Shanghai)")),
        _ => Ok(chrono_tz::Asia::Shanghai),
    }
}

/// The system clock, or the clock of `BIHUAN_FAKE_NOW` that starts at that instant and runs on.
pub fn clock() -> anyhow::Result<Clock> {
    match std::env::var("BIHUAN_FAKE_NOW") {
        Ok(value) if !value.trim().is_empty() => {
            let start = DateTime::parse_from_rfc3339(value.trim())
                .with_context(|| format!("BIHUAN_FAKE_NOW={value} is not an RFC 3339 time such as 2021-05-06T09:00:00+08:00"))?;
            Ok(Clock::starting_at(start.to_utc()))
        }
        _ => Ok(Clock::system()),
    }
}

/// Loads the workflows: from `dir` when given, else `./workflows`, else the built-in copies.
pub fn engine(dir: Option<&Path>, tz: Tz) -> anyhow::Result<(Engine, String)> {
    let chosen: Option<PathBuf> = match dir {
        Some(d) => {
            if !d.is_dir() {
                bail!("workflow folder {} does not exist", d.display());
            }
            Some(d.to_path_buf())
        }
        None => Some(PathBuf::from("workflows")).filter(|d| d.is_dir()),
    };
    match chosen {
        Some(d) => {
            let engine = bihuan_store::load_dir(&d, tz).map_err(problems)?;
            Ok((engine, d.display().to_string()))
        }
        None => {
            let sources = |files: &[(&str, &str)]| -> Vec<Source> {
                files
                    .iter()
                    .map(|(name, text)| Source {
                        name: format!("(built-in) {name}"),
                        text: (*text).to_owned(),
                    })
                    .collect()
            };
            let engine = Engine::build(
                &sources(&BUILT_IN_WORKFLOWS),
                &sources(&BUILT_IN_CALENDARS),
                tz,
            )
            .map_err(problems)?;
            Ok((engine, "(built-in)".to_owned()))
        }
    }
}

fn problems(list: Vec<String>) -> anyhow::Error {
    anyhow!("the workflow files have problems:\n{}", list.join("\n"))
}

/// Settings of the HTTP front: `BIHUAN_SESSION_HOURS` (default 12), `BIHUAN_BODY_LIMIT_MB` (default 16).
pub fn web() -> anyhow::Result<bihuan_web::WebConfig> {
    let mut config = bihuan_web::WebConfig::default();
    if let Some(hours) = number_var("BIHUAN_SESSION_HOURS")? {
        config.session_ttl = chrono::Duration::hours(hours);
    }
    if let Some(mb) = number_var("BIHUAN_BODY_LIMIT_MB")? {
        config.body_limit = usize::try_from(mb)?.saturating_mul(1024 * 1024);
    }
    Ok(config)
}

fn number_var(name: &str) -> anyhow::Result<Option<i64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => bail!("{name}={v} should be a positive whole number"),
        },
        _ => Ok(None),
    }
}
