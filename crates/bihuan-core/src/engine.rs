//! The set of checked workflow definitions, the calendar and the mail templates a deployment runs with.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use crate::calendar::WorkingCalendar;
use crate::mail::Letters;
use crate::upstream::UpstreamMap;
use crate::workflow::{self, WorkflowDefinition};

/// The workflow of negative-rating cases (差评整改工单).
pub const NEGATIVE_RATING: &str = "negative-rating";
/// The workflow of work-plan items (任务分解).
pub const WORK_PLAN_TASK: &str = "work-plan-task";

/// Checked workflows and the working-day calendar.
#[derive(Debug, Clone)]
pub struct Engine {
    workflows: BTreeMap<String, WorkflowDefinition>,
    calendar: WorkingCalendar,
    letters: Letters,
    /// How steps are pushed to the provincial platform (数据回传), when a mapping is given.
    upstream: Option<UpstreamMap>,
}

/// A named source text (a file's name and its contents).
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name, used in problems.
    pub name: String,
    /// The contents.
    pub text: String,
}

impl Engine {
    /// Checks every workflow and calendar source; on failure every problem is named, one a line.
    pub fn build(workflows: &[Source], calendars: &[Source], tz: Tz) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut calendar = WorkingCalendar::new(tz);
        for source in calendars {
            if let Err(errs) = calendar.add_file(&source.name, &source.text) {
                problems.extend(errs.iter().map(ToString::to_string));
            }
        }
        let mut defs: BTreeMap<String, (String, WorkflowDefinition)> = BTreeMap::new();
        for source in workflows {
            match workflow::load(&source.name, &source.text) {
                Ok(def) => {
                    if let Some((other, _)) = defs.get(&def.id) {
                        problems.push(format!(
                            "{}: workflow id `{}` is already defined in {other}",
                            source.name, def.id
                        ));
                    } else {
                        defs.insert(def.id.clone(), (source.name.clone(), def));
                    }
                }
                Err(errs) => problems.extend(errs.iter().map(ToString::to_string)),
            }
        }
        for required in [NEGATIVE_RATING, WORK_PLAN_TASK] {
            if !defs.contains_key(required) && problems.is_empty() {
                problems.push(format!("the workflow `{required}` is missing"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            workflows: defs.into_iter().map(|(id, (_, def))| (id, def)).collect(),
            calendar,
            letters: Letters::default(),
            upstream: None,
        })
    }

    /// The same engine with this 数据回传 mapping, checked against its negative-rating workflow
    /// (`source` is the mapping file).
    pub fn with_upstream(mut self, source: &Source) -> Result<Self, Vec<String>> {
        let def = self
            .workflow(NEGATIVE_RATING)
            .ok_or_else(|| vec![format!("the workflow `{NEGATIVE_RATING}` is missing")])?;
        let map = UpstreamMap::parse(&source.name, &source.text, def)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        self.upstream = Some(map);
        Ok(self)
    }

    /// The 数据回传 mapping, if one was given.
    pub fn upstream(&self) -> Option<&UpstreamMap> {
        self.upstream.as_ref()
    }

    /// The same engine with these mail templates.
    pub fn with_letters(mut self, letters: Letters) -> Self {
        self.letters = letters;
        self
    }

    /// The mail templates.
    pub fn letters(&self) -> &Letters {
        &self.letters
    }

    /// The workflow of this id.
    pub fn workflow(&self, id: &str) -> Option<&WorkflowDefinition> {
        self.workflows.get(id)
    }

    /// Every workflow.
    pub fn workflows(&self) -> impl Iterator<Item = &WorkflowDefinition> {
        self.workflows.values()
    }

    /// The working-day calendar.
    pub fn calendar(&self) -> &WorkingCalendar {
        &self.calendar
    }
}
