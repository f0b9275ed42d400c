//! Reading the workflow and calendar files of a directory into a checked [`Engine`].

use std::path::Path;

use bihuan_core::{Engine, Letters, Source};
use chrono_tz::Tz;

/// Reads `DIR/*.toml` (workflows), `DIR/calendars/*.toml` (calendars) and, when the folder exists,
/// `DIR/mail/*.jinja` (mail templates replacing the built-in ones), and checks them.
/// Every problem is returned, one a line, naming the file.
pub fn load_dir(dir: &Path, tz: Tz) -> Result<Engine, Vec<String>> {
    let workflows = read_files(dir, "toml")?;
    let calendars = read_files(&dir.join("calendars"), "toml")?;
    let mail = dir.join("mail");
    let templates = if mail.is_dir() {
        read_files(&mail, "jinja")?
    } else {
        Vec::new()
    };
    if workflows.is_empty() {
        return Err(vec![format!(
            "{}: no workflow files (*.toml) found",
            dir.display()
        )]);
    }
    if calendars.is_empty() {
        return Err(vec![format!(
            "{}: no calendar files (*.toml) found",
            dir.join("calendars").display()
        )]);
    }
    let letters = Letters::build(&templates)?;
    let engine = Engine::build(&workflows, &calendars, tz)?.with_letters(letters);
    // 数据回传's mapping (`upstream/`, one file): what a push holds and how it is named.
    let upstream = dir.join("upstream");
    if !upstream.is_dir() {
        return Ok(engine);
    }
    match read_files(&upstream, "toml")?.as_slice() {
        [] => Ok(engine),
        [one] => engine.with_upstream(one),
        many => Err(vec![format!(
            "{}: one mapping file only, found {}",
            upstream.display(),
            many.len()
        )]),
    }
}

fn read_files(dir: &Path, extension: &str) -> Result<Vec<Source>, Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == extension))
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source {
                name: path.display().to_string(),
                text,
            }),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(sources)
    } else {
        Err(problems)
    }
}
