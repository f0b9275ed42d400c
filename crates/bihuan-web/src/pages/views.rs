//! What the templates show, as plain structs: dates as 2021年5月6日, deadlines in working days with a
//! colour, personal data masked per role, units by name.

use std::collections::BTreeMap;

use bihuan_core::mail::chinese_day;
use bihuan_core::reminder::working_days_to;
use bihuan_core::{Engine, Role, WorkingCalendar};
use bihuan_store::CaseScope;
use bihuan_store::entity::{case, rating, unit};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::PageUser;

/// The signed-in user, as the header shows them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Me {
    pub username: String,
    pub role: &'static str,
    pub role_label: &'static str,
    pub unit_name: Option<String>,
    pub csrf: String,
}

impl Me {
    pub fn of(user: &PageUser) -> Self {
        Self {
            username: user.caller.user.username.clone(),
            role: user.caller.role.as_str(),
            role_label: user.caller.role.label(),
            unit_name: user.caller.user.unit_code.clone(),
            csrf: user.csrf.clone(),
        }
    }

    /// With the unit's name instead of its code.
    pub fn named(mut self, units: &UnitNames) -> Self {
        self.unit_name = self.unit_name.map(|code| units.name(&code));
        self
    }
}

/// One entry of the navigation.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub here: bool,
}

/// The navigation for a role; `here` is the current page's path.
pub(crate) fn nav(me: &Me, here: &str) -> Vec<NavItem> {
    let mut items = vec![
        ("/", "我的待办"),
        ("/ledger", "差评台账"),
        ("/stats", "统计分析"),
        ("/plans", "任务分解"),
    ];
    if matches!(me.role, "supervisor" | "admin") {
        items.push(("/supervise", "督查"));
    }
    if me.role == "admin" {
        items.push(("/admin", "管理"));
    }
    items
        .into_iter()
        .map(|(href, label)| NavItem {
            href,
            label,
            here: href == here,
        })
        .collect()
}

/// A message at the top of a page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Flash {
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    pub fn bad(text: impl Into<String>) -> Self {
        Self {
            kind: "bad",
            text: text.into(),
        }
    }

    pub fn warn(text: impl Into<String>) -> Self {
        Self {
            kind: "warn",
            text: text.into(),
        }
    }
}

/// Units by code, for showing names.
#[derive(Debug, Default)]
pub(crate) struct UnitNames {
    units: Vec<unit::Model>,
    names: BTreeMap<String, String>,
}

impl UnitNames {
    /// Every unit (the admin's pages).
    pub fn new(units: Vec<unit::Model>) -> Self {
        let names = units
            .iter()
            .map(|u| (u.code.clone(), u.name.clone()))
            .collect();
        Self { units, names }
    }

    /// The units a caller may choose (their subtree and the units their center answers for): what
    /// selects and trees offer. Names stay known for every unit, to name the units of what the caller
    /// may see.
    pub fn in_scope(units: Vec<unit::Model>, scope: &CaseScope) -> Self {
        let names = units
            .iter()
            .map(|u| (u.code.clone(), u.name.clone()))
            .collect();
        let units = units
            .into_iter()
            .filter(|u| scope.reaches_unit(&u.code))
            .collect();
        Self { units, names }
    }

    /// The unit's name, or the code itself when it is not a unit of the organization.
    pub fn name(&self, code: &str) -> String {
        self.names
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_owned())
    }

    /// Every unit in tree order, indented by depth, for a select.
    pub fn options(&self) -> Vec<UnitOption> {
        let mut out = Vec::new();
        for node in self.tree() {
            flatten(&node, 0, &mut out);
        }
        out
    }

    /// The organization as a tree (units whose parent is unknown are roots).
    pub fn tree(&self) -> Vec<UnitNode> {
        let mut children: BTreeMap<Option<&str>, Vec<&unit::Model>> = BTreeMap::new();
        for u in &self.units {
            let parent = u
                .parent_code
                .as_deref()
                .filter(|p| self.units.iter().any(|o| o.code == *p));
            children.entry(parent).or_default().push(u);
        }
        fn build(
            children: &BTreeMap<Option<&str>, Vec<&unit::Model>>,
            parent: Option<&str>,
            depth: usize,
        ) -> Vec<UnitNode> {
            // A cycle in the data cannot recurse forever: the tree is at most as deep as it is wide.
            if depth > children.values().map(Vec::len).sum::<usize>() {
                return Vec::new();
            }
            children
                .get(&parent)
                .map(|units| {
                    units
                        .iter()
                        .map(|u| UnitNode {
                            code: u.code.clone(),
                            name: u.name.clone(),
                            email: u.email.clone(),
                            children: build(children, Some(&u.code), depth + 1),
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        build(&children, None, 0)
    }
}

fn flatten(node: &UnitNode, depth: usize, out: &mut Vec<UnitOption>) {
    out.push(UnitOption {
        code: node.code.clone(),
        label: format!("{}{}", "　".repeat(depth), node.name),
    });
    for child in &node.children {
        flatten(child, depth + 1, out);
    }
}

/// A unit in a select.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnitOption {
    pub code: String,
    pub label: String,
}

/// A unit with the units under it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnitNode {
    pub code: String,
    pub name: String,
    pub email: Option<String>,
    pub children: Vec<UnitNode>,
}

/// An instant in the deployment's time zone: 2021年5月6日 10:00.
pub(crate) fn when(cal: &WorkingCalendar, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&cal.tz());
    format!(
        "{} {}",
        chinese_day(local.date_naive()),
        local.format("%H:%M")
    )
}

/// A deadline as the pages show it: the working days left or past, and its colour.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct DeadlineView {
    /// 剩余2个工作日, 今日到期, 已超期1个工作日; empty without a deadline.
    pub text: String,
    /// `ok`, `soon` (its last working day) or `over`.
    pub class: &'static str,
    /// 2021年5月14日 24:00 (the end of its last working day).
    pub date: String,
}

/// How a deadline reads at `now`.
pub(crate) fn deadline_view(
    cal: &WorkingCalendar,
    deadline: DateTime<Utc>,
    overdue_mark: bool,
    now: DateTime<Utc>,
) -> DeadlineView {
    let days = working_days_to(cal, now, deadline);
    let overdue = bihuan_core::reminder::is_overdue(overdue_mark, Some(deadline), now);
    let (text, class) = match days {
        d if d < 0 => (format!("已超期{}个工作日", -d), "over"),
        _ if overdue => ("已超期".to_owned(), "over"),
        0 => ("今日到期".to_owned(), "soon"),
        1 => ("剩余1个工作日".to_owned(), "soon"),
        d => (format!("剩余{d}个工作日"), "ok"),
    };
    DeadlineView {
        text,
        class,
        date: format!("{} 24:00", chinese_day(cal.last_day(deadline))),
    }
}

/// A case in a list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CaseRow {
    pub id: Uuid,
    pub project_no: String,
    pub service_name: String,
    pub state_label: String,
    pub unit_name: Option<String>,
    pub deadline_text: String,
    pub deadline_class: &'static str,
    pub deadline_date: String,
    pub overdue: bool,
    pub escalated: bool,
    pub rated_on: String,
    pub closed: String,
}

impl CaseRow {
    pub fn new(
        engine: &Engine,
        units: &UnitNames,
        c: &case::Model,
        r: &rating::Model,
        now: DateTime<Utc>,
    ) -> Self {
        let cal = engine.calendar();
        let deadline = c
            .deadline
            .filter(|_| c.closed_at.is_none())
            .map(|d| deadline_view(cal, d, c.overdue, now));
        let state_label = engine
            .workflow(&c.workflow_id)
            .and_then(|d| d.state(&c.state))
            .map_or_else(|| c.state.clone(), |s| s.label.clone());
        Self {
            id: c.id,
            project_no: r.project_no.clone(),
            service_name: r.service_name.clone(),
            state_label,
            unit_name: c.unit_code.as_deref().map(|u| units.name(u)),
            overdue: deadline.as_ref().is_some_and(|d| d.class == "over"),
            deadline_text: deadline
                .as_ref()
                .map(|d| d.text.clone())
                .unwrap_or_default(),
            deadline_class: deadline.as_ref().map_or("plain", |d| d.class),
            deadline_date: deadline.map(|d| d.date).unwrap_or_default(),
            escalated: c.escalated,
            rated_on: chinese_day(cal.local_date(r.rated_at)),
            closed: c.closed_at.map(|t| when(cal, t)).unwrap_or_default(),
        }
    }
}

/// The roles a user account can have, for a select.
pub(crate) fn role_options() -> Vec<serde_json::Value> {
    Role::USER_ROLES
        .iter()
        .map(|r| serde_json::json!({ "value": r.as_str(), "label": r.label() }))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn cal() -> WorkingCalendar {
        let mut cal = WorkingCalendar::new(chrono_tz::Asia::Shanghai);
        cal.add_file(
            "cn-mainland-2021-2026.toml",
            include_str!("../../../../workflows/calendars/cn-mainland-2021-2026.toml"),
        )
        .unwrap();
        cal
    }

    /// 国庆 2021: 10-01..10-07 off, 09-26 (Sunday) and 10-09 (Saturday) worked. The deadline is the
    /// end of 10-08; today is never counted among the days left.
    #[test]
    fn deadlines_read_in_working_days() {
        let cal = cal();
        let tz = cal.tz();
        let at = |m, d| tz.with_ymd_and_hms(2021, m, d, 9, 0, 0).unwrap().to_utc();
        let deadline = cal.start_of_day(NaiveDate::from_ymd_opt(2021, 10, 9).unwrap());
        let table = [
            (at(9, 26), "剩余5个工作日", "ok"),
            (at(9, 28), "剩余3个工作日", "ok"),
            (at(9, 30), "剩余1个工作日", "soon"),
            (at(10, 3), "剩余1个工作日", "soon"),
            (at(10, 8), "今日到期", "soon"),
            (at(10, 9), "已超期1个工作日", "over"),
            (at(10, 11), "已超期2个工作日", "over"),
        ];
        for (now, text, class) in table {
            let v = deadline_view(&cal, deadline, false, now);
            assert_eq!((v.text.as_str(), v.class), (text, class), "at {now}");
            assert_eq!(v.date, "2021年10月8日 24:00");
        }
        // Marked overdue by the scheduler, it reads so even before the clock says it.
        assert_eq!(deadline_view(&cal, deadline, true, at(10, 8)).class, "over");
    }
}
