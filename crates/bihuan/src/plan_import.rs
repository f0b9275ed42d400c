//! `bihuan import plan FILE`: a work plan (任务分解) from its table, all or nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bihuan_core::plan::PlanFileError;
use bihuan_core::{Engine, Limits};
use bihuan_store::{Clock, NewPlan, PlanOptions, Store};

/// Reads the file within `limits` (its size is checked before it is read), names every problem
/// (exit 1) or imports the plan and prints what it holds.
pub async fn run(
    store: &Store,
    engine: &Engine,
    clock: Clock,
    path: &Path,
    options: PlanOptions,
    limits: &Limits,
) -> anyhow::Result<ExitCode> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if let Err(e) = limits.check_size(size) {
        eprintln!("{}：{e}（BIHUAN_MAX_UPLOAD_MB）", path.display());
        return Ok(ExitCode::FAILURE);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    let limits = *limits;
    // Parsing is CPU work bounded by the limits; it stays off the runtime's workers.
    let read = tokio::task::spawn_blocking(move || {
        NewPlan::from_file(&bytes, file_name.as_deref(), options, &limits)
    })
    .await
    .context("the file reader stopped")?;
    let plan = match read {
        Ok(plan) => plan,
        Err(PlanFileError::Limit(e)) => {
            eprintln!("{}：{e}", path.display());
            return Ok(ExitCode::FAILURE);
        }
        Err(PlanFileError::Problems(problems)) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            eprintln!("未导入：{} 处错误", problems.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let done = store
        .import_plan(engine, &plan, "import", clock.now())
        .await?;
    println!(
        "已导入工作计划“{}”（{}年）：{} 项重点任务，{} 项具体工作，{} 个考核指标",
        done.plan.name, done.plan.year, done.key_tasks, done.items, done.targets
    );
    if !done.created_units.is_empty() {
        println!("新建单位 {} 个：", done.created_units.len());
        for u in &done.created_units {
            println!(
                "  {}\t{}\t上级：{}",
                u.code,
                u.name,
                u.parent_code.as_deref().unwrap_or("（无）")
            );
        }
    }
    println!("计划编号：{}", done.plan.id);
    Ok(ExitCode::SUCCESS)
}
