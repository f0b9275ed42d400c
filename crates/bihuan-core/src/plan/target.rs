//! A work item's targets (考核指标): 差评整改率 = 100%, 全程网办占比 ≥ 80%, 跑动次数 ≤ 0.3 次.
//!
//! Plans state their targets in the item's own words ("差评整改率、回访率达到100%"); [`targets_in`]
//! reads them out of the text, so the table is imported as offices write it. A target whose name is a
//! rate this system computes is bound to that metric ([`metric_of`]) and shows its live value.

use serde::{Deserialize, Serialize};

/// How a value compares with the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// ≥: 不低于, 达到…以上.
    AtLeast,
    /// ≤: 不超过, …以下.
    AtMost,
    /// =: 达到 100%.
    Equal,
}

impl Comparison {
    /// Every comparison with its identifier.
    pub const ALL: [(Comparison, &'static str); 3] = [
        (Comparison::AtLeast, "at_least"),
        (Comparison::AtMost, "at_most"),
        (Comparison::Equal, "equal"),
    ];

    /// The sign people write: ≥, ≤, =.
    pub fn sign(self) -> &'static str {
        match self {
            Comparison::AtLeast => "≥",
            Comparison::AtMost => "≤",
            Comparison::Equal => "=",
        }
    }

    /// The identifier used in the API and the database.
    pub fn as_str(self) -> &'static str {
        Comparison::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, s)| s)
    }

    /// The comparison of this identifier (or sign).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Comparison::ALL
            .iter()
            .find(|(c, s)| *s == text || c.sign() == text)
            .map(|(c, _)| *c)
            .or(match text {
                ">=" => Some(Comparison::AtLeast),
                "<=" => Some(Comparison::AtMost),
                "==" => Some(Comparison::Equal),
                _ => None,
            })
    }

    /// Whether `actual` meets a target of `value`.
    pub fn met(self, actual: f64, value: f64) -> bool {
        const EPS: f64 = 1e-9;
        match self {
            Comparison::AtLeast => actual + EPS >= value,
            Comparison::AtMost => actual <= value + EPS,
            Comparison::Equal => (actual - value).abs() <= EPS,
        }
    }
}

/// One target of a work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is measured, in the plan's words (差评整改率).
    pub name: String,
    /// How the value must compare.
    pub comparison: Comparison,
    /// The target value, in `unit` (80 for 80%).
    pub value: f64,
    /// `%`, `次` or empty.
    #[serde(default)]
    pub unit: String,
    /// The metric of `GET /api/v1/metrics` it is bound to (`rectification_rate` …), if any.
    #[serde(default)]
    pub metric: Option<String>,
}

impl Target {
    /// As people write it: 差评整改率 = 100%.
    pub fn text(&self) -> String {
        format!(
            "{} {} {}{}",
            self.name,
            self.comparison.sign(),
            number_text(self.value),
            self.unit
        )
    }

    /// Whether `actual` (in the target's unit) meets it.
    pub fn met(&self, actual: f64) -> bool {
        self.comparison.met(actual, self.value)
    }
}

/// A number without trailing zeros: 80, 0.3, 99.5.
pub fn number_text(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The rates this system computes, by the words plans use for them, most specific first.
const METRICS: [(&str, &str); 6] = [
    ("差评整改率", "rectification_rate"),
    ("回访率", "return_visit_rate"),
    ("按时整改率", "on_time_rate"),
    ("主动评价率", "active_rate"),
    ("评议满意率", "review_satisfaction_rate"),
    ("好评率", "positive_rate"),
];

/// The metric a target's name refers to, if the system computes it.
pub fn metric_of(name: &str) -> Option<&'static str> {
    METRICS
        .iter()
        .find(|(words, _)| name.contains(words))
        .map(|(_, key)| *key)
}

/// How a target is stated: the words, whether they stay in the name (减少80%以上: what is reduced),
/// and the comparison they mean (`None`: decided by 以上/以下, or 100% meaning equal).
const PREDICATES: [(&str, bool, Option<Comparison>); 11] = [
    ("不低于", false, Some(Comparison::AtLeast)),
    ("不少于", false, Some(Comparison::AtLeast)),
    ("不超过", false, Some(Comparison::AtMost)),
    ("不高于", false, Some(Comparison::AtMost)),
    ("不大于", false, Some(Comparison::AtMost)),
    ("达到", false, None),
    ("超过", false, Some(Comparison::AtLeast)),
    ("低于", false, Some(Comparison::AtMost)),
    ("达", false, None),
    ("减少", true, None),
    ("提高", true, None),
];

/// Where a name stops looking back: the sentence's punctuation.
const NAME_STOPS: [char; 8] = ['，', '。', '；', '：', ',', ';', ':', '\n'];

/// The words a name of several measures ends with ("差评整改率、回访率" names two).
const MEASURE_ENDINGS: [&str; 5] = ["率", "比例", "占比", "次数", "比"];

/// The targets an item's text states, in order.
pub fn targets_in(text: &str) -> Vec<Target> {
    let mut targets = Vec::new();
    // Where the next name may start: after the previous target or the sentence's punctuation.
    let mut floor = 0;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let Some((words, keep, comparison)) = PREDICATES
            .iter()
            .find(|(w, _, _)| rest.starts_with(w))
            .copied()
        else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let after = &rest[words.len()..];
        let Some((value, unit, suffix, used)) = amount(after) else {
            at += words.len();
            continue;
        };
        let end_of_name = if keep { at + words.len() } else { at };
        let start = text[floor..end_of_name]
            .rfind(NAME_STOPS)
            .map_or(floor, |i| {
                floor + i + text[floor + i..].chars().next().map_or(1, char::len_utf8)
            });
        let phrase =
            text[start..end_of_name].trim_matches(|c: char| c == '、' || c.is_whitespace());
        let comparison = comparison.unwrap_or(match suffix {
            Some(Comparison::AtMost) => Comparison::AtMost,
            Some(_) => Comparison::AtLeast,
            None if unit == "%" && (value - 100.0).abs() < 1e-9 => Comparison::Equal,
            None => Comparison::AtLeast,
        });
        for name in names_of(phrase) {
            targets.push(Target {
                metric: metric_of(&name).map(str::to_owned),
                name,
                comparison,
                value,
                unit: unit.to_owned(),
            });
        }
        at += words.len() + used;
        floor = at;
    }
    targets
}

/// A phrase naming one measure, or several joined by 、 when every part names a measure.
fn names_of(phrase: &str) -> Vec<String> {
    let parts: Vec<&str> = phrase.split('、').map(str::trim).collect();
    let all_measures = parts.len() > 1
        && parts
            .iter()
            .all(|p| MEASURE_ENDINGS.iter().any(|e| p.ends_with(e)));
    if all_measures {
        parts.into_iter().map(str::to_owned).collect()
    } else if phrase.is_empty() {
        Vec::new()
    } else {
        vec![phrase.to_owned()]
    }
}

/// A number with its unit (% or 次) and an optional 以上/以下, right at the start of `text`: the
/// value, the unit, the comparison the suffix means, and the bytes used.
fn amount(text: &str) -> Option<(f64, &'static str, Option<Comparison>, usize)> {
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let value: f64 = text[..digits].parse().ok()?;
    let rest = &text[digits..];
    let (unit, unit_len) = ["%", "％", "次"]
        .iter()
        .find(|u| rest.starts_with(*u))
        .map(|u| (if *u == "次" { "次" } else { "%" }, u.len()))?;
    let rest = &rest[unit_len..];
    let (suffix, suffix_len) = if rest.starts_with("以上") {
        (Some(Comparison::AtLeast), "以上".len())
    } else if rest.starts_with("以下") {
        (Some(Comparison::AtMost), "以下".len())
    } else {
        (None, 0)
    };
    Some((value, unit, suffix, digits + unit_len + suffix_len))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn brief(text: &str) -> Vec<String> {
        targets_in(text)
            .iter()
            .map(|t| format!("{}|{}", t.text(), t.metric.as_deref().unwrap_or("-")))
            .collect()
    }

    #[test]
    fn targets_stated_in_the_seed_are_read_out_of_the_text() {
        let table: [(&str, &[&str]); 6] = [
            (
                "形成评价、反馈、改进、监督、考核全流程闭环，实现“好差评”主动评价数据全量归集，差评整改率、回访率达到100%；加强分析应用。",
                &[
                    "差评整改率 = 100%|rectification_rate",
                    "回访率 = 100%|return_visit_rate",
                ],
            ),
            (
                "2021年底前，行政许可事项“全程网办”占比不低于80%，依申请类政务服务事项“全程网办”占比不低于70%。",
                &[
                    "行政许可事项“全程网办”占比 ≥ 80%|-",
                    "依申请类政务服务事项“全程网办”占比 ≥ 70%|-",
                ],
            ),
            (
                "国家政务服务平台、“渝快办”平台交办投诉处理事项响应率达100%。",
                &["国家政务服务平台、“渝快办”平台交办投诉处理事项响应率 = 100%|-"],
            ),
            (
                "2021年底前，全镇依申请类事项实际办理时间比法定时限平均减少80%以上、平均跑动次数不超过0.3次、即办件事项比例达到40%以上。",
                &[
                    "全镇依申请类事项实际办理时间比法定时限平均减少 ≥ 80%|-",
                    "平均跑动次数 ≤ 0.3次|-",
                    "即办件事项比例 ≥ 40%|-",
                ],
            ),
            ("全面承接落实市政府决定取消、下放的行政许可事项。", &[]),
            ("2021年6月底前达到要求，达标准化。", &[]),
        ];
        for (text, expected) in table {
            assert_eq!(brief(text), expected, "{text}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(Comparison::AtLeast.met(80.0, 80.0));
        assert!(!Comparison::AtLeast.met(79.9, 80.0));
        assert!(Comparison::AtMost.met(0.3, 0.3));
        assert!(!Comparison::AtMost.met(0.31, 0.3));
        assert!(Comparison::Equal.met(100.0, 100.0));
        assert!(!Comparison::Equal.met(99.0, 100.0));
        assert_eq!(Comparison::parse("≥"), Some(Comparison::AtLeast));
        assert_eq!(Comparison::parse("at_most"), Some(Comparison::AtMost));
        assert_eq!(Comparison::parse(">="), Some(Comparison::AtLeast));
        assert_eq!(Comparison::parse("约"), None);
        assert_eq!(number_text(0.3), "0.3");
        assert_eq!(number_text(100.0), "100");
    }
}
