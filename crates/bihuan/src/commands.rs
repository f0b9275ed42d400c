//! One function per command; each returns what went wrong as one error.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use bihuan_core::{Engine, Role};
use bihuan_store::{Clock, NewUnit, NewUser, Store, TokenScope};
use bihuan_web::AppState;
use chrono_tz::Tz;

use crate::config;

/// `bihuan serve`.
pub async fn serve(
    clock: Clock,
    tz: Tz,
    listen: SocketAddr,
    db: &str,
    workflows: Option<&Path>,
    demo: bool,
) -> anyhow::Result<ExitCode> {
    if clock.is_fake() {
        tracing::warn!(now = %clock.now(), "BIHUAN_FAKE_NOW is set: the clock starts at that instant and runs on");
    }
    let (engine, from) = config::engine(workflows, tz)?;
    tracing::info!(workflows = %from, "workflows loaded");
    warn_missing_years(&engine, &clock);
    let (outlets, schedule) = config::outlets()?;
    for outlet in outlets.each() {
        tracing::info!(channel = outlet.channel().as_str(), to = %outlet.describe(), "outbox");
    }
    // Each step of a 差评's handling is pushed when a platform is configured (数据回传).
    let store = config::store(db)
        .await?
        .pushing_upstream(outlets.upstream.is_some());
    let applied = store.migrate().await?;
    tracing::info!(applied, "database migrated");
    // Sums counted by an older version lack what this one counts (the scheduler checks too, for a
    // database another process migrated). First: what follows changes them.
    store.rebuild_stale_metrics(&engine).await?;
    let recomputed = store
        .recompute_provisional_deadlines(&engine, clock.now())
        .await?;
    if recomputed > 0 {
        tracing::info!(
            recomputed,
            "provisional deadlines recomputed with the calendar data now present"
        );
    }
    // A recomputation marks the sums stale (their 按期整改率 replays the deadlines): rebuilt now.
    store.rebuild_stale_metrics(&engine).await?;
    store.start_overall_limits(&engine, clock.now()).await?;
    let files = config::files()?;
    tracing::info!(files = %files.describe(), "evidence files");
    if demo {
        crate::demo::fill(&store, &engine, &files, &clock).await?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let engine = Arc::new(engine);
    tracing::info!(digest_at = %schedule.digest_at, "daily digest");
    tokio::spawn(scheduler(
        store.clone(),
        engine.clone(),
        outlets,
        schedule,
        clock,
    ));
    let app = bihuan_web::app(AppState {
        store,
        engine,
        clock,
        config: config::web()?,
        files: Arc::new(files),
    });
    println!("Bihuan 已启动：http://{addr}");
    std::io::stdout().flush()?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the server stopped")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The scheduler inside `serve`: a pass every few seconds with the real (or demo) time. Several
/// processes on one database may run it: each timer, reminder and mail happens once (see
/// `bihuan_notify::tick`).
async fn scheduler(
    store: Store,
    engine: Arc<bihuan_core::Engine>,
    outlets: bihuan_notify::Outlets,
    schedule: bihuan_notify::Schedule,
    clock: Clock,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut passes = bihuan_notify::Scheduler::default();
    // While the database is away each pass fails the same way: said once when it starts and once
    // when the passes resume.
    let mut away = false;
    loop {
        every.tick().await;
        match passes
            .tick(&store, &engine, &outlets, &schedule, clock.now())
            .await
        {
            Ok(report) => {
                if away {
                    away = false;
                    tracing::info!("the database is back: scheduler passes resume");
                }
                if report != bihuan_notify::TickReport::default() {
                    tracing::info!(
                        fired = report.fired,
                        reminders = report.reminders,
                        digests = report.digests,
                        sent = report.sent,
                        retrying = report.retrying,
                        dead = report.dead,
                        overtaken = report.overtaken,
                        "scheduler pass"
                    )
                }
            }
            Err(e) if e.is_outage() => {
                if !away {
                    away = true;
                    tracing::error!(error = %e, unmarked = passes.unmarked(), "scheduler paused: the database is away; it resumes by itself");
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduler pass failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn warn_missing_years(engine: &Engine, clock: &Clock) {
    let today = engine.calendar().local_date(clock.now());
    for year in engine.calendar().missing_years_around(today) {
        tracing::warn!(
            year,
            "no official holiday data for this year: its deadlines are provisional (weekends and 元旦 only) until the data is added"
        );
    }
}

/// `bihuan migrate`.
pub async fn migrate(db: &str) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    let applied = store.migrate().await?;
    println!("数据库迁移完成：本次应用 {applied} 个迁移");
    Ok(ExitCode::SUCCESS)
}

/// `bihuan report`.
pub async fn report(db: &str, args: crate::report::ReportArgs) -> anyhow::Result<ExitCode> {
    let store = config::migrated_store(db).await?;
    crate::report::report(&store, args).await
}

/// `bihuan metrics rebuild`.
pub async fn metrics_rebuild(
    tz: Tz,
    db: &str,
    workflows: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (engine, _) = config::engine(workflows, tz)?;
    let store = config::migrated_store(db).await?;
    let (ratings, cases) = store.rebuild_metrics(&engine).await?;
    println!("统计数据已重新计算：评价 {ratings} 条，工单 {cases} 件");
    Ok(ExitCode::SUCCESS)
}

/// `bihuan tick [--now TIME]`: one scheduler pass, at `now` or the clock's time.
pub async fn tick(
    clock: Clock,
    tz: Tz,
    now: Option<&str>,
    db: &str,
    workflows: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let now = match now {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| anyhow::anyhow!("--now {text}: not an RFC 3339 time ({e})"))?
            .to_utc(),
        None => clock.now(),
    };
    let (engine, _) = config::engine(workflows, tz)?;
    let (outlets, schedule) = config::outlets()?;
    let store = config::migrated_store(db)
        .await?
        .pushing_upstream(outlets.upstream.is_some());
    let report = bihuan_notify::tick(&store, &engine, &outlets, &schedule, now).await?;
    println!(
        "调度完成：触发定时动作 {} 件，提醒 {} 条，每日汇总 {} 封，发出邮件 {} 封，待重试 {} 封，放弃 {} 封，已被他人处理 {} 件",
        report.fired,
        report.reminders,
        report.digests,
        report.sent,
        report.retrying,
        report.dead,
        report.overtaken
    );
    Ok(ExitCode::SUCCESS)
}

/// `bihuan workflows check [DIR]`.
pub fn workflows_check(clock: Clock, tz: Tz, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("workflows"));
    match bihuan_store::load_dir(&dir, tz) {
        Ok(engine) => {
            for def in engine.workflows() {
                println!(
                    "✓ {} v{}（{}）：{} 个状态，{} 个操作",
                    def.id,
                    def.version,
                    def.label,
                    def.states.len(),
                    def.actions.len()
                );
            }
            let years: Vec<String> = engine.calendar().years().map(|y| y.to_string()).collect();
            println!("✓ 工作日历：{} 年", years.join("、"));
            let today = engine.calendar().local_date(clock.now());
            for year in engine.calendar().missing_years_around(today) {
                eprintln!(
                    "警告：{}/calendars 中没有 {year} 年的节假日安排，该年期限将按周末和元旦临时计算（provisional），请在国务院办公厅通知发布后补录",
                    dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} 个问题", problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `bihuan user add`.
pub async fn user_add(
    clock: Clock,
    db: &str,
    username: String,
    role: &str,
    unit: Option<String>,
    contact: Contact,
) -> anyhow::Result<ExitCode> {
    let role: Role = role.parse()?;
    let password = read_password()?;
    if let Some(code) = weak(&password) {
        return Ok(code);
    }
    let store = config::store(db).await?;
    let user = store
        .add_user(
            &NewUser {
                username,
                role,
                unit,
                email: contact.email,
                sms_phone: contact.sms_phone,
            },
            &password,
            clock.now(),
        )
        .await?;
    println!("已添加用户 {}（{}）", user.username, role.label());
    Ok(ExitCode::SUCCESS)
}

/// A password too short for an account: said, and exit 2 (bad usage), before anything is opened.
fn weak(password: &str) -> Option<ExitCode> {
    match bihuan_store::check_password(password) {
        Ok(()) => None,
        Err(e) => {
            eprintln!("错误：{e}");
            Some(ExitCode::from(2))
        }
    }
}

/// `bihuan user disable` / `user enable`.
pub async fn user_disable(
    clock: Clock,
    db: &str,
    username: &str,
    disabled: bool,
) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    let user = store
        .set_user_disabled(username, disabled, clock.now())
        .await?;
    if disabled {
        println!("已停用用户 {}：其会话已全部结束", user.username);
    } else {
        println!("已启用用户 {}", user.username);
    }
    Ok(ExitCode::SUCCESS)
}

/// `bihuan user password`.
pub async fn user_password(clock: Clock, db: &str, username: &str) -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    if let Some(code) = weak(&password) {
        return Ok(code);
    }
    let store = config::store(db).await?;
    store.set_password(username, &password, clock.now()).await?;
    println!("已重设用户 {username} 的密码：其会话已全部结束");
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("密码：");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (--password-stdin reads its first line)");
    }
    Ok(password)
}

/// `bihuan unit add`.
pub async fn unit_add(clock: Clock, db: &str, unit: &NewUnit) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    let unit = store.add_unit(unit, clock.now()).await?;
    println!("已添加单位 {}（{}）", unit.code, unit.name);
    Ok(ExitCode::SUCCESS)
}

/// `bihuan unit map`.
pub async fn unit_map(clock: Clock, db: &str, code: &str, to: &str) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    let alias = store.map_unit_code(code, to, "cli", clock.now()).await?;
    println!("已将单位编码 {} 映射到 {}", alias.code, alias.unit_code);
    Ok(ExitCode::SUCCESS)
}

/// `bihuan token add`.
pub async fn token_add(
    clock: Clock,
    db: &str,
    name: &str,
    scope: &str,
    source: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let scope: TokenScope = scope.parse()?;
    let store = config::store(db).await?;
    let token = store
        .add_api_token(name, scope, source, clock.now())
        .await?;
    let bound = match scope {
        TokenScope::RatingsWrite => {
            format!("，只能推送来源 {} 的评价", source.unwrap_or(name).trim())
        }
        TokenScope::MetricsRead => String::new(),
    };
    eprintln!(
        "已创建令牌 {}（{scope}{bound}）。令牌只显示这一次，请妥善保存：",
        name.trim()
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `bihuan token revoke`.
pub async fn token_revoke(clock: Clock, db: &str, name: &str) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    store.revoke_api_token(name, clock.now()).await?;
    println!("已吊销令牌 {}：自下一次请求起答复 401", name.trim());
    Ok(ExitCode::SUCCESS)
}

/// `bihuan token list`.
pub async fn token_list(db: &str) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    for t in store.api_tokens().await? {
        println!(
            "{}\t{}\t{}\t创建于 {}\t{}",
            t.name,
            t.scope,
            t.source
                .as_deref()
                .map_or("-".to_owned(), |s| format!("来源 {s}")),
            t.created_at.format("%Y-%m-%d %H:%M"),
            t.revoked_at.map_or("有效".to_owned(), |at| format!(
                "已吊销 {}",
                at.format("%Y-%m-%d %H:%M")
            )),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How a new user is reached: by mail, and by SMS for the daily digest.
#[derive(Debug)]
pub struct Contact {
    pub email: Option<String>,
    pub sms_phone: Option<String>,
}

/// `bihuan audit verify`: the hash chain, and every evidence file it cites (`BIHUAN_FILES`).
pub async fn audit_verify(db: &str, workflows: Option<&Path>, tz: Tz) -> anyhow::Result<ExitCode> {
    let store = config::store(db).await?;
    let (engine, _) = config::engine(workflows, tz)?;
    let files = config::files()?;
    let report = store
        .verify_chain_and_files(
            &bihuan_store::CaseScope::All,
            bihuan_store::EvidenceCheck {
                engine: &engine,
                files: &files,
            },
        )
        .await?;
    match report.first_broken {
        None => {
            println!(
                "✓ 留痕校验通过：{} 条事件的哈希链完整，所引用的 {} 个佐证材料文件齐全未改动",
                report.events_checked, report.files_checked
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(broken) => {
            eprintln!(
                "✗ 留痕校验失败：{} {} 的第 {} 条事件：{}（已校验 {} 条）",
                broken.of.what(),
                broken.case_id,
                broken.seq,
                broken.reason,
                report.events_checked
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
