//! The `bihuan` binary: see `bihuan --help` and docs/API.md.

mod cli;
mod commands;
mod config;
mod demo;
mod import;
mod plan_import;
mod report;

use std::io::IsTerminal;
use std::process::ExitCode;

use bihuan_store::Clock;
use chrono_tz::Tz;
use clap::Parser;
use cli::{
    AuditCommand, Cli, Command, ImportCommand, MetricsCommand, TokenCommand, UnitCommand,
    UserCommand, WorkflowsCommand,
};

/// mimalloc: the import and the batch API allocate many small strings on several threads at once, where
/// glibc's allocator spends its time waiting on its own locks. Built with `no_thp` (Cargo.toml): its
/// arenas are not advised as transparent huge pages, which kept 2 MiB resident for every few bytes touched.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            // sqlx warns of every connection it drops after an outage; the outage itself is logged
            // once where it is answered, with its cause.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx=error,sea_orm=warn")
            }),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("错误：无法启动运行时：{e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One clear line (or one line per problem), never a backtrace.
            eprintln!("错误：{}", format!("{e:#}").replace(": \n", "：\n"));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command honours (and so checks) the clock and the time zone first.
    let clock = config::clock()?;
    let tz = config::time_zone()?;
    match cli.command {
        Command::Serve {
            listen,
            db,
            workflows,
            demo,
        } => commands::serve(clock, tz, listen, &db.url, workflows.as_deref(), demo).await,
        Command::Migrate { db } => commands::migrate(&db.url).await,
        Command::Workflows {
            command: WorkflowsCommand::Check { dir },
        } => commands::workflows_check(clock, tz, dir),
        Command::User { command } => user(clock, command).await,
        Command::Unit { command } => unit(clock, command).await,
        Command::Import { command } => import(clock, tz, command).await,
        Command::Token { command } => token(clock, command).await,
        Command::Audit {
            command: AuditCommand::Verify { db, workflows },
        } => commands::audit_verify(&db.url, workflows.as_deref(), tz).await,
        Command::Report {
            from,
            to,
            unit,
            format,
            out,
            db,
        } => {
            let args = report::ReportArgs {
                from,
                to,
                unit,
                format,
                out,
            };
            commands::report(&db.url, args).await
        }
        Command::Metrics {
            command: MetricsCommand::Rebuild { db, workflows },
        } => commands::metrics_rebuild(tz, &db.url, workflows.as_deref()).await,
        Command::Tick { now, db, workflows } => {
            commands::tick(clock, tz, now.as_deref(), &db.url, workflows.as_deref()).await
        }
    }
}

/// `bihuan user …`.
async fn user(clock: Clock, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add {
            username,
            role,
            unit,
            email,
            sms_phone,
            password_stdin: _,
            db,
        } => {
            let contact = commands::Contact { email, sms_phone };
            commands::user_add(clock, &db.url, username, &role, unit, contact).await
        }
        UserCommand::Disable { username, db } => {
            commands::user_disable(clock, &db.url, &username, true).await
        }
        UserCommand::Enable { username, db } => {
            commands::user_disable(clock, &db.url, &username, false).await
        }
        UserCommand::Password {
            username,
            password_stdin: _,
            db,
        } => commands::user_password(clock, &db.url, &username).await,
    }
}

/// `bihuan unit …`.
async fn unit(clock: Clock, command: UnitCommand) -> anyhow::Result<ExitCode> {
    match command {
        UnitCommand::Add {
            code,
            name,
            parent,
            email,
            region,
            db,
        } => {
            let unit = bihuan_store::NewUnit {
                code,
                name,
                parent,
                email,
                region,
            };
            commands::unit_add(clock, &db.url, &unit).await
        }
        UnitCommand::Map { code, to, db } => commands::unit_map(clock, &db.url, &code, &to).await,
    }
}

/// `bihuan import …`: ratings or a work plan, each checked against the upload limits.
async fn import(clock: Clock, tz: Tz, command: ImportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImportCommand::Ratings {
            file,
            partial,
            db,
            workflows,
        } => {
            let limits = bihuan_core::Limits::ratings(config::max_upload()?);
            let (engine, _) = config::engine(workflows.as_deref(), tz)?;
            let store = config::migrated_store(&db.url).await?;
            // Sums of an older version are rebuilt (and older cases' centers filled in) before an
            // import adds to them.
            store.rebuild_stale_metrics(&engine).await?;
            import::ratings(&store, &engine, clock, &file, partial, limits).await
        }
        ImportCommand::Plan {
            file,
            name,
            year,
            parent,
            report_months,
            db,
            workflows,
        } => {
            let limits = bihuan_core::Limits::plans(config::max_upload()?);
            let (engine, _) = config::engine(workflows.as_deref(), tz)?;
            let store = config::migrated_store(&db.url).await?;
            // Sums of an older version are rebuilt (and older cases' centers filled in) before an
            // import adds to them.
            store.rebuild_stale_metrics(&engine).await?;
            let options = bihuan_store::PlanOptions {
                name,
                year,
                parent,
                report_months: Some(report_months),
            };
            plan_import::run(&store, &engine, clock, &file, options, &limits).await
        }
    }
}

/// `bihuan token …`.
async fn token(clock: Clock, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Add {
            name,
            scope,
            source,
            db,
        } => commands::token_add(clock, &db.url, &name, &scope, source.as_deref()).await,
        TokenCommand::Revoke { name, db } => commands::token_revoke(clock, &db.url, &name).await,
        TokenCommand::List { db } => commands::token_list(&db.url).await,
    }
}
