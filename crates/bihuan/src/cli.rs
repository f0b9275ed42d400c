//! The command line of `bihuan` (docs/API.md, "The binary").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Bihuan (闭环): drives every negative rating of a government service through its closed loop.
#[derive(Debug, Parser)]
#[command(name = "bihuan", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the database is.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER@HOST/DB.
    #[arg(
        long = "db",
        env = "BIHUAN_DATABASE_URL",
        default_value = "sqlite://bihuan.db?mode=rwc"
    )]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, load the workflows and serve the API and the pages.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
        /// Fill an empty database with a demo organization, users and ratings, and print the logins.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Work with workflow files.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the units of the organization.
    Unit {
        #[command(subcommand)]
        command: UnitCommand,
    },
    /// Import ratings from a file.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Channels' API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// One pass of the scheduler: timers, reminders, the daily digest and outbox delivery, as of now
    /// (serve does this every few seconds).
    Tick {
        /// The moment to act as of (RFC 3339), default now.
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
    /// The tamper-evident event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The metrics of a period by unit, with a total (docs/DOMAIN.md, "Metrics").
    Report {
        /// First day, YYYY-MM-DD (by rating date).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (included).
        #[arg(long)]
        to: String,
        /// Only this unit's subtree.
        #[arg(long)]
        unit: Option<String>,
        /// table (aligned for a terminal), json or xlsx.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write here instead of standard output (needed for xlsx).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The metrics' per-day sums.
    Metrics {
        #[command(subcommand)]
        command: MetricsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Recompute the per-day sums from the ratings, cases and events (after a restore, or to check).
    Rebuild {
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Validate the workflow and calendar files; exit 1 naming each problem.
    Check {
        /// The folder (default: ./workflows).
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        /// admin, supervisor, center_staff, unit_staff or viewer.
        #[arg(long)]
        role: String,
        /// The code of the user's unit.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// A mobile number: the daily digest of due and overdue 差评工单 also goes there by SMS.
        #[arg(long)]
        sms_phone: Option<String>,
        /// Read the password from the first line of standard input (at least 12 characters).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable an account: its sessions end at once and it cannot sign in until enabled.
    Disable {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a user's password (read from standard input, at least 12 characters); their sessions end.
    Password {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnitCommand {
    /// Add one unit of the organization tree.
    Add {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// The code of the parent unit.
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// The 行政区划代码 a service center answers for: negative ratings of unknown units there wait
        /// at this unit.
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Map a unit code that ratings send (see GET /api/v1/units/unmapped) onto a registered unit.
    Map {
        /// The code as ratings send it.
        #[arg(long)]
        code: String,
        /// The registered unit it stands for.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Ratings from .csv (UTF-8 or GB18030), .json (an array) or .xlsx; all or nothing unless --partial.
    Ratings {
        /// The file.
        file: PathBuf,
        /// Keep the good rows; write the bad ones with their reasons to NAME.rejected.csv.
        #[arg(long)]
        partial: bool,
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
    /// A work plan (任务分解) from .csv (UTF-8 or GB18030) or .xlsx with the columns 重点任务, 具体工作,
    /// 牵头单位, 配合单位, 完成时限; all or nothing, every bad row named.
    Plan {
        /// The file.
        file: PathBuf,
        /// The plan's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// Its year (default: the first 20xx in the file's name).
        #[arg(long)]
        year: Option<i32>,
        /// The unit under which units the organization does not have yet are created.
        #[arg(long)]
        parent: Option<String>,
        /// How often ongoing and scheduled items report progress, in months.
        #[arg(long, default_value_t = bihuan_core::plan::DEFAULT_REPORT_MONTHS)]
        report_months: u32,
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Add {
        /// The channel (e.g. yukuaiban) or monitoring system.
        #[arg(long)]
        name: String,
        /// What the token may do: ratings:write or metrics:read.
        #[arg(long, default_value = "ratings:write")]
        scope: String,
        /// For ratings:write, the only `source` its ratings may have (default: the name).
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token: it answers 401 from its next request.
    Revoke {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tokens (never the tokens themselves: only their hashes are kept).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the event hash chain and hash again every evidence file it cites (in
    /// BIHUAN_FILES); exit 1 naming the first broken event.
    Verify {
        #[command(flatten)]
        db: DbArgs,
        /// The folder of workflow files (default: ./workflows, else the built-in copies).
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
}
