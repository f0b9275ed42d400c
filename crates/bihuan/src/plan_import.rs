//! `bihuan import plan FILE`: a work plan (任务分解) from its table, all or nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bihuan_core::Engine;
use bihuan_store::{Clock, NewPlan, PlanOptions, Store};

/// Reads the file, names every problem (exit 1) or imports the plan and prints what it holds.
pub async fn run(
    store: &Store,
    engine: &Engine,
    clock: Clock,
    path: &Path,
    options: PlanOptions,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file_name = path.file_name().and_then(|n| n.to_str());
    let plan = match NewPlan::from_file(&bytes, file_name, options) {
        Ok(plan) => plan,
        Err(problems) => {
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
