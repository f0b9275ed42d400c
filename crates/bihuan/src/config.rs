//! Configuration from the environment (docs/API.md): time zone, clock, workflows.

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
/// The 数据回传 mapping of docs/API.md.
const BUILT_IN_UPSTREAM: (&str, &str) = (
    "upstream/platform.toml",
    include_str!("../../../workflows/upstream/platform.toml"),
);

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

/// Loads the workflows (and mail templates): from `dir` when given, else `./workflows`, else the
/// built-in copies; links in mail start with `BIHUAN_PUBLIC_URL`.
pub fn engine(dir: Option<&Path>, tz: Tz) -> anyhow::Result<(Engine, String)> {
    let (engine, from) = load_engine(dir, tz)?;
    let letters = engine.letters().clone().with_public_url(&public_url()?);
    Ok((engine.with_letters(letters), from))
}

fn load_engine(dir: Option<&Path>, tz: Tz) -> anyhow::Result<(Engine, String)> {
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
            .and_then(|e| e.with_upstream(&sources(&[BUILT_IN_UPSTREAM])[0]))
            .map_err(problems)?;
            Ok((engine, "(built-in)".to_owned()))
        }
    }
}

/// The public address links in mail start with (`BIHUAN_PUBLIC_URL`, default http://localhost:8080).
pub fn public_url() -> anyhow::Result<String> {
    match std::env::var("BIHUAN_PUBLIC_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("BIHUAN_PUBLIC_URL={url} should start with http:// or https://");
            }
            Ok(url.to_owned())
        }
        _ => Ok("http://localhost:8080".to_owned()),
    }
}

/// The outbox's outlets: mail (`BIHUAN_SMTP_URL`, unset: .eml files under `./outbox/`;
/// `BIHUAN_MAIL_FROM`), SMS (`BIHUAN_SMS_URL`, unset: JSON files under `./outbox/sms/`; signed with
/// `BIHUAN_SMS_SIGNATURE`, default 【政务服务好差评】) and the push
/// to the provincial platform (`BIHUAN_UPSTREAM_URL`, unset: none); and the scheduler's
/// `BIHUAN_DIGEST_AT` (HH:MM local, default 08:30).
pub fn outlets() -> anyhow::Result<(bihuan_notify::Outlets, bihuan_notify::Schedule)> {
    let (mail, schedule) = mail()?;
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let sms = match set("BIHUAN_SMS_URL") {
        Some(url) => bihuan_notify::Sms::gateway(&url)?,
        None => bihuan_notify::Sms::files(Path::new("outbox/sms"))?,
    };
    let sms = match set("BIHUAN_SMS_SIGNATURE") {
        Some(signature) => sms.signed(&signature)?,
        None => sms,
    };
    let upstream = set("BIHUAN_UPSTREAM_URL")
        .map(|url| bihuan_notify::Upstream::new(&url))
        .transpose()?;
    Ok((
        bihuan_notify::Outlets {
            mail,
            sms,
            upstream,
        },
        schedule,
    ))
}

fn mail() -> anyhow::Result<(bihuan_notify::Mailer, bihuan_notify::Schedule)> {
    let from = std::env::var("BIHUAN_MAIL_FROM")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "政务服务好差评 <noreply@localhost>".to_owned());
    let mailer = match std::env::var("BIHUAN_SMTP_URL") {
        Ok(url) if !url.trim().is_empty() => bihuan_notify::Mailer::smtp(url.trim(), from.trim())?,
        _ => bihuan_notify::Mailer::files(Path::new("outbox"), from.trim())?,
    };
    let mut schedule = bihuan_notify::Schedule::default();
    if let Ok(at) = std::env::var("BIHUAN_DIGEST_AT")
        && !at.trim().is_empty()
    {
        schedule.digest_at = chrono::NaiveTime::parse_from_str(at.trim(), "%H:%M")
            .map_err(|_| anyhow!("BIHUAN_DIGEST_AT={at} should be a time of day such as 08:30"))?;
    }
    Ok((mailer, schedule))
}

fn problems(list: Vec<String>) -> anyhow::Error {
    anyhow!("the workflow files have problems:\n{}", list.join("\n"))
}

/// Where evidence files are kept (`BIHUAN_FILES`: a folder, default `./files`, or
/// `s3://bucket/prefix` with the usual `AWS_*` variables).
pub fn files() -> anyhow::Result<bihuan_store::files::Files> {
    let location = std::env::var("BIHUAN_FILES").unwrap_or_else(|_| "./files".to_owned());
    // The error names the location with any credentials in it hidden: never the raw value.
    bihuan_store::files::Files::from_location(&location).context("BIHUAN_FILES")
}

/// The largest file an upload or an import may be, in bytes (`BIHUAN_MAX_UPLOAD_MB`, default 20): a
/// plan's table sent to the server, and the files `import ratings` and `import plan` read.
pub fn max_upload() -> anyhow::Result<u64> {
    Ok(match number_var("BIHUAN_MAX_UPLOAD_MB")? {
        Some(mb) => u64::try_from(mb)?.saturating_mul(bihuan_core::sheet::MIB),
        None => bihuan_core::sheet::DEFAULT_MAX_UPLOAD,
    })
}

/// Settings of the HTTP front: `BIHUAN_SESSION_HOURS` (default 12), `BIHUAN_SESSION_IDLE_MINUTES`
/// (default 30), `BIHUAN_BODY_LIMIT_MB` (default 16), `BIHUAN_MAX_UPLOAD_MB` (default 20),
/// `BIHUAN_TRUSTED_PROXIES` (CIDRs whose `X-Forwarded-For` is believed), `BIHUAN_METRICS_PUBLIC`
/// (default false); the pages' cookies are Secure when `BIHUAN_PUBLIC_URL` is https.
pub fn web() -> anyhow::Result<bihuan_web::WebConfig> {
    let mut config = bihuan_web::WebConfig {
        secure_cookies: public_url()?.starts_with("https://"),
        max_upload: usize::try_from(max_upload()?)?,
        ..bihuan_web::WebConfig::default()
    };
    if let Some(hours) = number_var("BIHUAN_SESSION_HOURS")? {
        config.session_ttl = chrono::Duration::hours(hours);
    }
    if let Some(mb) = number_var("BIHUAN_BODY_LIMIT_MB")? {
        config.body_limit = usize::try_from(mb)?.saturating_mul(1024 * 1024);
    }
    if let Some(minutes) = number_var("BIHUAN_SESSION_IDLE_MINUTES")? {
        config.session_idle = chrono::Duration::minutes(minutes);
    }
    if let Ok(text) = std::env::var("BIHUAN_TRUSTED_PROXIES") {
        config.trusted_proxies = bihuan_web::parse_trusted_proxies(&text)
            .map_err(|e| anyhow!("BIHUAN_TRUSTED_PROXIES: {e}"))?;
    }
    config.metrics_public = match std::env::var("BIHUAN_METRICS_PUBLIC") {
        Ok(v) if v.trim().eq_ignore_ascii_case("true") => true,
        Ok(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("false") => false,
        Ok(v) => bail!("BIHUAN_METRICS_PUBLIC={v} should be true or false"),
        Err(_) => false,
    };
    Ok(config)
}

/// Opens the database with the time limit of `BIHUAN_DB_TIMEOUT` (seconds, fractions allowed; default
/// 5): no request waits longer on a database that is away, locked or silent.
pub async fn store(url: &str) -> anyhow::Result<bihuan_store::Store> {
    let mut settings = bihuan_store::DbSettings::default();
    if let Ok(value) = std::env::var("BIHUAN_DB_TIMEOUT")
        && !value.trim().is_empty()
    {
        settings.timeout = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (0.1..=600.0).contains(s))
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                anyhow!("BIHUAN_DB_TIMEOUT={value} should be a number of seconds from 0.1 to 600, such as 5")
            })?;
    }
    Ok(bihuan_store::Store::connect_with(url, settings).await?)
}

/// The store at `url`, its schema brought up to date first (the commands that read and write data).
pub async fn migrated_store(url: &str) -> anyhow::Result<bihuan_store::Store> {
    let store = store(url).await?;
    store.migrate().await?;
    Ok(store)
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
