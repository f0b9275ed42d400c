//! The metrics of docs/DOMAIN.md ("Metrics"): counts per rating and per case, which add up over any group
//! (a day, a unit, a month …), and the figures computed from the counts, each with its definition.
//!
//! A case's counts are a pure function of its event log ([`case_counts`]), so the store can keep
//! per-day sums up to date by adding the difference an action makes, and recompute them from scratch
//! to prove they are right.

use std::ops::{AddAssign, Sub};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::calendar::WorkingCalendar;
use crate::interpreter::{Step, deadline_after, deadlines_before};
use crate::rating::{Channel, Level};
use crate::workflow::{EffectDef, Mark, WorkflowDefinition};

/// Sums over ratings and cases. Signed, so that the difference an action makes is a `Counts` too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// All ratings.
    pub ratings: i64,
    /// 差评: 不满意 and 非常不满意.
    pub negative: i64,
    /// 好评: 非常满意 and 满意.
    pub positive: i64,
    /// Ratings the rater gave (not the default one given when nobody rated).
    pub active: i64,
    /// Cases opened (差评 other than default ones).
    pub cases: i64,
    /// 有效差评: cases not ending invalid.
    pub valid: i64,
    /// Valid cases with a rectification.
    pub rectified: i64,
    /// Valid cases rectified, or open in the unit's rectifying stage and past its deadline: the
    /// 按期整改率 denominator, counted on the day that deadline fell.
    pub due: i64,
    /// Valid cases whose first rectification came on or before its deadline (on that deadline's day).
    pub on_time: i64,
    /// Valid cases of real-name raters.
    pub real_name: i64,
    /// Of those that reached the return visit, visited (feedback), or closed as unreachable when the
    /// workflow counts that as visited.
    pub visited: i64,
    /// Valid cases the rater reviewed.
    pub reviewed: i64,
    /// Of those, whose last review was satisfied.
    pub satisfied: i64,
    /// Cases still open.
    pub open: i64,
    /// Open cases past their deadline.
    pub overdue: i64,
    /// Working days from opening to the first rectification, summed over `rectified`.
    pub rectify_days: i64,
    /// Valid cases closed.
    pub closed: i64,
    /// Working days from opening to closing, summed over `closed`.
    pub close_days: i64,
    /// Real-name valid cases that reached the return visit (the state `feedback` is taken from):
    /// the 回访率 denominator.
    pub reached_feedback: i64,
    /// Valid cases closed as unreachable after the documented attempts (无法联系办结).
    pub unreachable: i64,
    /// Cases the center transferred (invalid ones too): the 受理转办及时率 denominator.
    pub center_handled: i64,
    /// Of those, every step up to the first transfer (受理, 转办) came within the deadline then in force.
    pub center_timely: i64,
    /// 有效差评 counted against the rated unit, on the rating's day: the 有效差评率 numerator (`valid`
    /// follows the case to its 承办单位).
    pub valid_rated: i64,
}

macro_rules! each_count {
    ($m:ident) => {
        $m! {
            ratings,
            negative,
            positive,
            active,
            cases,
            valid,
            rectified,
            due,
            on_time,
            real_name,
            visited,
            reviewed,
            satisfied,
            open,
            overdue,
            rectify_days,
            closed,
            close_days,
            reached_feedback,
            unreachable,
            center_handled,
            center_timely,
            valid_rated
        }
    };
}

macro_rules! impl_ops {
    ($($f:ident),*) => {
        impl AddAssign for Counts {
            fn add_assign(&mut self, o: Self) {
                $(self.$f += o.$f;)*
            }
        }

        impl Sub for Counts {
            type Output = Counts;
            fn sub(self, o: Self) -> Counts {
                Counts { $($f: self.$f - o.$f),* }
            }
        }

        impl Counts {
            /// The names of the counts, in order (the columns of the aggregate table).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($f)),*];

            /// The counts in the order of [`Counts::NAMES`].
            pub fn values(&self) -> Vec<i64> {
                vec![$(self.$f),*]
            }

            /// Counts from values in the order of [`Counts::NAMES`] (missing ones are 0).
            pub fn from_values(values: &[i64]) -> Self {
                let mut it = values.iter().copied();
                Counts { $($f: it.next().unwrap_or(0)),* }
            }
        }
    };
}

each_count!(impl_ops);

impl Counts {
    /// True when every count is zero (an action that changes no figure).
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// What one rating counts for.
pub fn rating_counts(level: Level, channel: Channel) -> Counts {
    Counts {
        ratings: 1,
        negative: i64::from(level.is_negative()),
        positive: i64::from(matches!(level, Level::VerySatisfied | Level::Satisfied)),
        active: i64::from(channel != Channel::Default),
        ..Counts::default()
    }
}

/// A case as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct CaseRecord<'a> {
    /// Its event log, the opening first.
    pub steps: &'a [Step<'a>],
    /// Whether the rater gave their real name (only they can be visited back).
    pub real_name: bool,
    /// Whether the scheduler found it past its deadline in its current state.
    pub overdue: bool,
    /// The local day the case counts on: its rating's.
    pub day: NaiveDate,
}

/// Whom a part of a case's counts is against (docs/DOMAIN.md, "Metrics": every figure blames the
/// party that owned the step).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// The rated unit: the rating figures (有效差评率 among them).
    Rated,
    /// The service center that owns the case until it is transferred.
    Center,
    /// The 承办单位 the case was transferred to.
    Unit(String),
}

/// A part of what a case counts for: on which local day, against whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePart {
    pub day: NaiveDate,
    pub owner: Owner,
    pub counts: Counts,
}

/// What one case counts for, in parts: the case's own counts on its day against its owner now (the
/// 承办单位, or the center while never transferred); whether it is a valid 差评 on its day against the
/// rated unit (有效差评率 is a rating figure); the center's stage (受理转办及时率) on its day against
/// the center; the 按期整改率 counts on the day the rectifying deadline fell, against the unit that
/// owned that deadline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseCounts {
    pub parts: Vec<CasePart>,
}

impl CaseCounts {
    fn add(&mut self, day: NaiveDate, owner: Owner, counts: Counts) {
        if counts.is_zero() {
            return;
        }
        match self
            .parts
            .iter_mut()
            .find(|p| p.day == day && p.owner == owner)
        {
            Some(part) => part.counts += counts,
            None => self.parts.push(CasePart { day, owner, counts }),
        }
    }

    /// The parts summed: what the case counts for in a total over every day and owner.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for part in &self.parts {
            total += part.counts;
        }
        total
    }
}

/// The 承办单位 after `steps`: the unit of the last transfer, none while never transferred (or after
/// an action that took the case back).
pub fn responsible_unit<'a>(def: &WorkflowDefinition, steps: &[Step<'a>]) -> Option<&'a str> {
    let mut unit = None;
    for step in steps {
        let Some(action) = def.action(step.action) else {
            continue;
        };
        for effect in &action.effects {
            match effect {
                EffectDef::SetResponsibleUnit { field } => {
                    if let Some(Value::String(u)) = step.fields.get(field) {
                        unit = Some(u.as_str());
                    }
                }
                EffectDef::ClearResponsibleUnit => unit = None,
                _ => {}
            }
        }
    }
    unit
}

fn owner_of(unit: Option<&str>) -> Owner {
    unit.map_or(Owner::Center, |u| Owner::Unit(u.to_owned()))
}

/// What one case counts for, from its event log.
pub fn case_counts(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    case: &CaseRecord<'_>,
) -> CaseCounts {
    let mut parts = CaseCounts::default();
    let Some(opening) = case.steps.first() else {
        return parts;
    };
    let marked = |step: &Step<'_>, mark: Mark| {
        def.action(step.action)
            .is_some_and(|a| a.marks.contains(&mark))
    };
    let day = case.day;
    let owner = owner_of(responsible_unit(def, case.steps));
    let last = case.steps.last().unwrap_or(opening);
    let terminal = def.state(last.to).is_some_and(|s| s.terminal);
    let invalid = terminal && marked(last, Mark::AppealUpheld);
    let mut counts = Counts {
        cases: 1,
        open: i64::from(!terminal),
        overdue: i64::from(!terminal && case.overdue),
        ..Counts::default()
    };
    // The center's stage, judged on the center alone: the steps up to the first transfer.
    let transfer = case.steps.iter().position(|s| {
        def.action(s.action).is_some_and(|a| {
            a.effects
                .iter()
                .any(|e| matches!(e, EffectDef::SetResponsibleUnit { .. }))
        })
    });
    if let Some(t) = transfer {
        let deadlines = deadlines_before(def, cal, &case.steps[..=t]);
        let timely = case.steps[..=t]
            .iter()
            .zip(&deadlines)
            .skip(1)
            .all(|(s, d)| d.is_none_or(|d| s.at <= d));
        parts.add(
            day,
            Owner::Center,
            Counts {
                center_handled: 1,
                center_timely: i64::from(timely),
                ..Counts::default()
            },
        );
    }
    if invalid {
        parts.add(day, owner, counts);
        return parts;
    }
    parts.add(
        day,
        Owner::Rated,
        Counts {
            valid_rated: 1,
            ..Counts::default()
        },
    );
    counts.valid = 1;
    counts.real_name = i64::from(case.real_name);
    let opened = cal.local_date(opening.at);
    let days_since_opening =
        |at: DateTime<Utc>| i64::from(cal.working_days_in(opened, cal.local_date(at)));
    // 按期整改率, judged on the 承办单位's own stage: counted on the day its rectifying deadline fell.
    let first_rectify = case.steps.iter().position(|s| marked(s, Mark::Rectified));
    if let Some(i) = first_rectify {
        let step = &case.steps[i];
        let deadline = deadlines_before(def, cal, &case.steps[..=i])[i];
        counts.rectified = 1;
        counts.rectify_days = days_since_opening(step.at);
        parts.add(
            deadline.map_or_else(|| cal.local_date(step.at), |d| cal.last_day(d)),
            owner_of(responsible_unit(def, &case.steps[..=i])),
            Counts {
                due: 1,
                on_time: i64::from(deadline.is_none_or(|d| step.at <= d)),
                ..Counts::default()
            },
        );
    } else if !terminal && case.overdue && rectifying(def, last.to) {
        // Open, never rectified, past the deadline of the unit's stage: late. Overdue at the center
        // (received, accepted) it is not the unit's.
        if let Some(deadline) = deadline_after(def, cal, case.steps) {
            parts.add(
                cal.last_day(deadline),
                owner.clone(),
                Counts {
                    due: 1,
                    ..Counts::default()
                },
            );
        }
    }
    // The states a return visit is made from: a case that reached one is due for its visit.
    let visit_states: Vec<&str> = def
        .actions_marked(Mark::ReturnVisited)
        .flat_map(|a| a.from.iter().map(String::as_str))
        .collect();
    let reached = case.steps.iter().any(|s| visit_states.contains(&s.to));
    let unreachable = case.steps.iter().any(|s| marked(s, Mark::Unreachable));
    let visited = case.steps.iter().any(|s| marked(s, Mark::ReturnVisited))
        || (unreachable && def.settings.unreachable_counts_as_visited);
    counts.reached_feedback = i64::from(case.real_name && reached);
    counts.visited = i64::from(case.real_name && reached && visited);
    counts.unreachable = i64::from(unreachable);
    let last_review = case.steps.iter().rev().find_map(|s| {
        if marked(s, Mark::ReviewSatisfied) {
            Some(true)
        } else if marked(s, Mark::ReviewUnsatisfied) {
            Some(false)
        } else {
            None
        }
    });
    counts.reviewed = i64::from(last_review.is_some());
    counts.satisfied = i64::from(last_review == Some(true));
    if terminal {
        counts.closed = 1;
        counts.close_days = days_since_opening(last.at);
    }
    parts.add(day, owner, counts);
    parts
}

/// What a case just opened counts for: its opening is its only step.
pub fn opened_case_counts(
    def: &WorkflowDefinition,
    cal: &WorkingCalendar,
    at: DateTime<Utc>,
    day: NaiveDate,
    real_name: bool,
) -> CaseCounts {
    let fields = serde_json::Map::new();
    let steps = [Step {
        action: crate::interpreter::OPEN_ACTION,
        from: None,
        to: &def.initial,
        at,
        fields: &fields,
    }];
    case_counts(
        def,
        cal,
        &CaseRecord {
            steps: &steps,
            real_name,
            overdue: false,
            day,
        },
    )
}

/// Whether `state` is the 承办单位's rectifying stage: one a rectification is taken from.
fn rectifying(def: &WorkflowDefinition, state: &str) -> bool {
    def.actions_marked(Mark::Rectified)
        .any(|a| a.from.iter().any(|f| f == state))
}

/// One figure's definition, shown beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// The key of the figure in API answers.
    pub key: &'static str,
    /// 中文名.
    pub label: &'static str,
    /// English name.
    pub label_en: &'static str,
    /// How it is computed, in Chinese.
    pub definition: &'static str,
    /// How it is computed, in English.
    pub definition_en: &'static str,
}

/// Every figure with its definition, in the order reports show them.
pub const DEFINITIONS: [Definition; 16] = [
    Definition {
        key: "ratings",
        label: "评价总数",
        label_en: "Ratings",
        definition: "期间内的全部评价（含默认评价）。",
        definition_en: "All ratings of the period, default ones included.",
    },
    Definition {
        key: "negative",
        label: "差评数",
        label_en: "Negative ratings",
        definition: "评价等级为“不满意”或“非常不满意”的评价。",
        definition_en: "Ratings of level dissatisfied or very dissatisfied.",
    },
    Definition {
        key: "negative_rate",
        label: "差评率",
        label_en: "Negative rate",
        definition: "差评数 ÷ 评价总数；按单位统计时计入被评价的单位。",
        definition_en: "Negative ratings ÷ all ratings; by unit, against the rated unit.",
    },
    Definition {
        key: "valid_negative_rate",
        label: "有效差评率",
        label_en: "Valid negative rate",
        definition: "有效差评 ÷ 评价总数（申诉成立的无效差评不计入）。",
        definition_en: "Valid negative cases ÷ all ratings (cases ending invalid, appeal upheld, left out).",
    },
    Definition {
        key: "positive_rate",
        label: "好评率",
        label_en: "Positive rate",
        definition: "（非常满意 + 满意）÷ 评价总数。",
        definition_en: "(Very satisfied + satisfied) ÷ all ratings.",
    },
    Definition {
        key: "active_rate",
        label: "主动评价率",
        label_en: "Active rating rate",
        definition: "非默认评价 ÷ 评价总数。",
        definition_en: "Ratings the rater gave (not default) ÷ all ratings.",
    },
    Definition {
        key: "valid_negative",
        label: "有效差评",
        label_en: "Valid negative cases",
        definition: "差评工单中未以“申诉成立（无效差评）”结束的。",
        definition_en: "Negative-rating cases not ending invalid (appeal upheld).",
    },
    Definition {
        key: "rectification_rate",
        label: "差评整改率",
        label_en: "Rectification rate",
        definition: "有整改记录的有效差评 ÷ 有效差评；重新整改的工单只计一次；按单位统计时计入差评工单转办的承办单位（未转办的计入政务服务中心）。",
        definition_en: "Valid cases with a rectification ÷ valid cases; a reopened case counts once; by unit, against the unit the case was transferred to (the service center while never transferred).",
    },
    Definition {
        key: "on_time_rate",
        label: "按期整改率",
        label_en: "On-time rate",
        definition: "首次整改在承办单位核实整改时限内（含批准的延期，申诉期间暂停计时）的有效差评 ÷ 核实整改时限落在统计期间内的有效差评（已整改的，及未办结、在核实整改环节已超期的；超期未整改的计为逾期）；按时限到期之日计入期间，按单位统计时计入承办单位；受理、转办环节的用时不计入承办单位，另计受理转办及时率。",
        definition_en: "Valid cases first rectified within the unit's rectifying limit (extensions granted, paused while appealing) ÷ valid cases whose rectifying deadline fell in the period (rectified, or open and past it in the rectifying stage, which count as late); counted on the deadline's day and, by unit, against the unit the case was transferred to; the center's accept and transfer time never counts against the unit (see the center timeliness rate).",
    },
    Definition {
        key: "center_timely_rate",
        label: "受理转办及时率",
        label_en: "Center timeliness rate",
        definition: "受理、转办均在各自办理时限内的差评工单 ÷ 已受理并转办的差评工单；只计政务服务中心自身环节的用时，按单位统计时计入政务服务中心，不计入承办单位。",
        definition_en: "Cases accepted and transferred each within its limit ÷ cases accepted and transferred; the center's own stage only, counted by unit against the service center, never against the unit.",
    },
    Definition {
        key: "return_visit_rate",
        label: "回访率",
        label_en: "Return-visit rate",
        definition: "有回访记录（或经规定次数联系未果、无法联系办结，按本地规定计为已回访）的实名有效差评 ÷ 已进入待反馈回访的实名有效差评；匿名评价和尚未整改的工单不计入（未整改的计入差评整改率）；按单位统计时计入承办单位。",
        definition_en: "Real-name valid cases with a return visit (or closed as unreachable after the required attempts, where the deployment counts that as visited) ÷ real-name valid cases that reached the return visit; anonymous cases and cases not yet rectified are left out (the latter count against the rectification rate); by unit, against the unit the case was transferred to.",
    },
    Definition {
        key: "unreachable",
        label: "无法联系办结",
        label_en: "Closed as unreachable",
        definition: "经规定次数联系未果、以“无法联系办结”结束的有效差评工单数，列于回访率旁。",
        definition_en: "Valid cases closed as unreachable after the required contact attempts, shown beside the return-visit rate.",
    },
    Definition {
        key: "review_satisfaction_rate",
        label: "评议满意率",
        label_en: "Review satisfaction rate",
        definition: "最后一次评议为满意（含基本满意）的工单 ÷ 已评议的工单。",
        definition_en: "Cases whose last review was satisfied (or basically satisfied) ÷ cases reviewed.",
    },
    Definition {
        key: "avg_days_to_rectify",
        label: "平均整改用时",
        label_en: "Average working days to rectify",
        definition: "从工单生成到首次整改的工作日数的平均值。",
        definition_en: "Mean working days from the case's opening to its first rectification.",
    },
    Definition {
        key: "avg_days_to_close",
        label: "平均办结用时",
        label_en: "Average working days to close",
        definition: "从工单生成到办结的工作日数的平均值（有效差评）。",
        definition_en: "Mean working days from opening to closing, over valid closed cases.",
    },
    Definition {
        key: "overdue",
        label: "超期工单",
        label_en: "Overdue cases",
        definition: "未办结且已超过当前办理期限的工单。",
        definition_en: "Open cases past their current deadline.",
    },
];

/// The figures of a group of counts; a rate is `None` when its denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub ratings: i64,
    pub negative: i64,
    pub valid_negative: i64,
    pub rectified: i64,
    pub negative_rate: Option<f64>,
    pub valid_negative_rate: Option<f64>,
    pub positive_rate: Option<f64>,
    pub active_rate: Option<f64>,
    pub rectification_rate: Option<f64>,
    pub on_time_rate: Option<f64>,
    pub center_timely_rate: Option<f64>,
    pub return_visit_rate: Option<f64>,
    pub unreachable: i64,
    pub review_satisfaction_rate: Option<f64>,
    pub avg_days_to_rectify: Option<f64>,
    pub avg_days_to_close: Option<f64>,
    pub open: i64,
    pub overdue: i64,
}

fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

/// The figures of docs/DOMAIN.md from counts.
pub fn figures(c: &Counts) -> Figures {
    Figures {
        ratings: c.ratings,
        negative: c.negative,
        valid_negative: c.valid,
        rectified: c.rectified,
        negative_rate: ratio(c.negative, c.ratings),
        valid_negative_rate: ratio(c.valid_rated, c.ratings),
        positive_rate: ratio(c.positive, c.ratings),
        active_rate: ratio(c.active, c.ratings),
        rectification_rate: ratio(c.rectified, c.valid),
        on_time_rate: ratio(c.on_time, c.due),
        center_timely_rate: ratio(c.center_timely, c.center_handled),
        return_visit_rate: ratio(c.visited, c.reached_feedback),
        unreachable: c.unreachable,
        review_satisfaction_rate: ratio(c.satisfied, c.reviewed),
        avg_days_to_rectify: ratio(c.rectify_days, c.rectified),
        avg_days_to_close: ratio(c.close_days, c.closed),
        open: c.open,
        overdue: c.overdue,
    }
}

/// One cell of the metrics table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A count.
    Count(i64),
    /// A rate in 0..1, or none when there is nothing to divide by.
    Rate(Option<f64>),
    /// A mean in working days, or none.
    Days(Option<f64>),
}

impl Cell {
    /// The cell as people read it: counts as numbers, rates in per cent with one decimal, days with
    /// one decimal; "—" where there is nothing to divide by.
    pub fn text(&self) -> String {
        match self {
            Cell::Count(n) => n.to_string(),
            Cell::Rate(Some(r)) => format!("{:.1}%", r * 100.0),
            Cell::Days(Some(d)) => format!("{d:.1}"),
            Cell::Rate(None) | Cell::Days(None) => "—".to_owned(),
        }
    }
}

/// The columns of the metrics table (report, export), after the group's name.
pub const TABLE_COLUMNS: [&str; 18] = [
    "评价总数",
    "差评数",
    "有效差评",
    "已整改",
    "差评率",
    "有效差评率",
    "好评率",
    "主动评价率",
    "差评整改率",
    "按期整改率",
    "回访率",
    "评议满意率",
    "平均整改用时（工作日）",
    "平均办结用时（工作日）",
    "未办结",
    "超期",
    "无法联系办结",
    "受理转办及时率",
];

/// A group's figures as the cells of [`TABLE_COLUMNS`].
pub fn table_cells(f: &Figures) -> [Cell; 18] {
    [
        Cell::Count(f.ratings),
        Cell::Count(f.negative),
        Cell::Count(f.valid_negative),
        Cell::Count(f.rectified),
        Cell::Rate(f.negative_rate),
        Cell::Rate(f.valid_negative_rate),
        Cell::Rate(f.positive_rate),
        Cell::Rate(f.active_rate),
        Cell::Rate(f.rectification_rate),
        Cell::Rate(f.on_time_rate),
        Cell::Rate(f.return_visit_rate),
        Cell::Rate(f.review_satisfaction_rate),
        Cell::Days(f.avg_days_to_rectify),
        Cell::Days(f.avg_days_to_close),
        Cell::Count(f.open),
        Cell::Count(f.overdue),
        Cell::Count(f.unreachable),
        Cell::Rate(f.center_timely_rate),
    ]
}
