//! The text of every mail, from templates that are data files (`workflows/mail/*.jinja`), like the
//! workflows and calendars: a province can reword a mail without touching Rust.
//!
//! Each template defines three blocks: `subject`, `text` (the plain-text part) and `html`. Everything
//! is HTML-escaped unless a block opts out with `{% autoescape false %}` (the subject and the text do).
//! The facts a template sees are the structs of this module; rendering is pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc, Weekday};
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::calendar::WorkingCalendar;
use crate::engine::Source;

/// The templates shipped with the binary; a deployment's `workflows/mail/` replaces them by name.
pub const BUILT_IN: [(&str, &str); 4] = [
    (
        "case.jinja",
        include_str!("../../../workflows/mail/case.jinja"),
    ),
    (
        "digest.jinja",
        include_str!("../../../workflows/mail/digest.jinja"),
    ),
    (
        "review.jinja",
        include_str!("../../../workflows/mail/review.jinja"),
    ),
    (
        "task.jinja",
        include_str!("../../../workflows/mail/task.jinja"),
    ),
];

/// The template of a notice about one case (action notifications and escalations).
pub const CASE: &str = "case.jinja";
/// The template of the daily digest.
pub const DIGEST: &str = "digest.jinja";
/// The template of the rater's invitation to review.
pub const REVIEW: &str = "review.jinja";
/// The template of a notice about one work item (任务分解).
pub const TASK: &str = "task.jinja";

/// The longest SMS text a template may give (a few SMS segments of 70 Chinese characters, the
/// signature and a link included).
pub const SMS_MAX_CHARS: usize = 300;

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// One line, whitespace collapsed.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part; none for a letter that is listed but never sent by itself (a reminder the
    /// daily digest gathers).
    pub html: Option<String>,
}

/// A template that failed to load or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail template {template}: {message}")]
pub struct MailError {
    /// The template's file name.
    pub template: String,
    /// What is wrong.
    pub message: String,
}

/// What a mail says about one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseFacts {
    /// The case's id.
    pub case_id: String,
    /// 办件编号.
    pub project_no: String,
    /// 事项名称.
    pub service: String,
    /// The responsible unit's name (or the unit rated, before transfer).
    pub unit: String,
    /// The state's label.
    pub state: String,
    /// The deadline as people say it ("2021年9月30日（星期四）24:00"), if the state has one.
    pub deadline: Option<String>,
    /// Working days left (positive), overdue (negative), 0 on the last day; `None` without deadline.
    pub working_days: Option<i64>,
    /// The overall limit (整改反馈时限) still to meet, as people say it; `None` when met, paused or
    /// absent.
    pub overall_deadline: Option<String>,
    /// Working days left of it, as `working_days`.
    pub overall_working_days: Option<i64>,
    /// A scheduled rectification (限期整改) not yet done: its due date's end, as people say it.
    pub scheduled_due: Option<String>,
    /// Working days left of it, as `working_days`.
    pub scheduled_working_days: Option<i64>,
    /// The case's page.
    pub link: String,
}

/// A notice about one case: an action's notification or a reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseNotice {
    /// The notification kind (`case_assigned`, `escalated` …); templates word each kind.
    pub kind: String,
    /// The label of the action that caused it, when one did.
    pub action: Option<String>,
    /// The case.
    pub case: CaseFacts,
}

/// What a mail says about one work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskFacts {
    /// The item's id.
    pub task_id: String,
    /// The plan's name.
    pub plan: String,
    /// 重点任务.
    pub key_task: String,
    /// 具体工作.
    pub title: String,
    /// 牵头单位, their names joined by 、.
    pub lead_units: String,
    /// The state's label.
    pub state: String,
    /// 完成时限 as the table wrote it.
    pub due: String,
    /// What it owes by `deadline`: 完成时限, 进展报告 or 验收.
    pub owed: String,
    /// The deadline as people say it, if any.
    pub deadline: Option<String>,
    /// Working days left (positive), overdue (negative), 0 on the last day.
    pub working_days: Option<i64>,
    /// The item's page.
    pub link: String,
}

/// A notice about one work item: an action's notification or a reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskNotice {
    /// `task_submitted`, `task_returned`, `due_soon`, `overdue`, `escalated`.
    pub kind: String,
    /// The label of the action that caused it, when one did.
    pub action: Option<String>,
    /// The item.
    pub task: TaskFacts,
}

/// One line of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestItem {
    /// `due_soon` or `overdue`.
    pub kind: String,
    /// The case.
    pub case: CaseFacts,
}

/// The daily digest of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// The day ("2021年9月30日（星期四）").
    pub date: String,
    /// The most urgent of the due soon and overdue items, most urgent first (at most the store's
    /// `DIGEST_MAX_ITEMS`).
    pub items: Vec<DigestItem>,
    /// How many are waiting in all.
    pub total: usize,
    /// How many of them are not listed.
    pub more: usize,
    /// How many of them are overdue.
    pub overdue: usize,
    /// The case list page.
    pub link: String,
}

/// The rater's invitation to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewInvitation {
    /// 事项名称.
    pub service: String,
    /// The unit that rectified.
    pub unit: String,
    /// 办件编号.
    pub project_no: String,
    /// The one-time link.
    pub link: String,
    /// Until when it works ("2021年9月30日（星期四）24:00").
    pub expires: String,
    /// What the unit found (`true`, `partly_true`, `untrue`), when it recorded it.
    pub finding: Option<String>,
    /// What it did (`rectified`, `explained`, `scheduled`), when it recorded it: the mail says
    /// that, never that a rectification was done when the unit explained.
    pub outcome: Option<String>,
    /// The public reply (公开答复) written with the return visit, when there is one: a mail carries
    /// it whole.
    pub reply: Option<String>,
    /// The same, at most [`SMS_REPLY_CHARS`] characters: what an SMS carries (the link's page shows
    /// it whole).
    pub reply_brief: Option<String>,
}

/// The most characters of a public reply an SMS carries (with the link, the text stays within a
/// few SMS segments).
pub const SMS_REPLY_CHARS: usize = 60;

impl ReviewInvitation {
    /// The invitation carrying `reply`, whole for mail and clipped for SMS.
    pub fn with_reply(mut self, reply: Option<String>) -> Self {
        self.reply_brief = reply.as_deref().map(|r| {
            let mut brief = if r.chars().count() > SMS_REPLY_CHARS {
                let head: String = r.chars().take(SMS_REPLY_CHARS - 1).collect();
                format!("{head}…")
            } else {
                r.to_owned()
            };
            // The SMS goes on after it: it ends as a sentence.
            if !brief.ends_with(['。', '！', '？', '…', '!', '?', '.']) {
                brief.push('。');
            }
            brief
        });
        self.reply = reply;
        self
    }
}

/// The loaded templates and the public address links start with.
#[derive(Debug, Clone)]
pub struct Letters {
    env: Environment<'static>,
    public_url: String,
}

impl Letters {
    /// The built-in templates, with each source replacing the built-in one of its file name.
    /// Every template is parsed and tried on sample facts; every problem is named.
    pub fn build(overrides: &[Source]) -> Result<Self, Vec<String>> {
        let mut texts: BTreeMap<String, String> = BUILT_IN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        let mut problems = Vec::new();
        for source in overrides {
            let name = file_name(&source.name);
            if texts.contains_key(name) {
                texts.insert(name.to_owned(), source.text.clone());
            } else {
                problems.push(format!(
                    "{}: unknown mail template (expected one of {})",
                    source.name,
                    BUILT_IN.map(|(n, _)| n).join(", ")
                ));
            }
        }
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, text) in texts {
            if let Err(e) = env.add_template_owned(name.clone(), text) {
                problems.push(format!("{name}: {e:#}"));
            }
        }
        let letters = Self {
            env,
            public_url: "http://localhost:8080".to_owned(),
        };
        if problems.is_empty() {
            problems.extend(letters.try_samples().into_iter().map(|e| e.to_string()));
        }
        if problems.is_empty() {
            Ok(letters)
        } else {
            Err(problems)
        }
    }

    /// The same templates with links under `url` (`BIHUAN_PUBLIC_URL`).
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// A link to a path of the web front (`/cases/…`).
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Renders one template's three blocks.
    pub fn render(&self, template: &str, facts: &impl Serialize) -> Result<Letter, MailError> {
        self.render_parts(template, facts, true)
    }

    /// The subject and the text of a letter that is listed but never sent by itself (a reminder the
    /// daily digest gathers): its HTML part is not rendered.
    pub fn render_listed(
        &self,
        template: &str,
        facts: &impl Serialize,
    ) -> Result<Letter, MailError> {
        self.render_parts(template, facts, false)
    }

    fn render_parts(
        &self,
        template: &str,
        facts: &impl Serialize,
        with_html: bool,
    ) -> Result<Letter, MailError> {
        let fail = |e: minijinja::Error| MailError {
            template: template.to_owned(),
            message: format!("{e:#}"),
        };
        let tmpl = self.env.get_template(template).map_err(fail)?;
        let mut captured = tmpl
            .render_captured(Value::from(Serde(facts)))
            .map_err(fail)?;
        let (subject, text, html) = captured
            .with_state_mut(|state| -> Result<_, minijinja::Error> {
                Ok((
                    state.render_block("subject")?,
                    state.render_block("text")?,
                    if with_html {
                        Some(state.render_block("html")?)
                    } else {
                        None
                    },
                ))
            })
            .map_err(fail)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        if subject.is_empty() {
            return Err(MailError {
                template: template.to_owned(),
                message: "the subject block is empty".to_owned(),
            });
        }
        Ok(Letter {
            subject,
            text: text.trim().to_owned() + "\n",
            html: html.map(|h| h.trim().to_owned() + "\n"),
        })
    }

    /// The SMS of a template: its `sms` block, one line, whitespace collapsed (the gateway's
    /// signature goes before it). Kept short: an SMS longer than [`SMS_MAX_CHARS`] is an error.
    pub fn render_sms(&self, template: &str, facts: &impl Serialize) -> Result<String, MailError> {
        let fail = |message: String| MailError {
            template: template.to_owned(),
            message,
        };
        let tmpl = self
            .env
            .get_template(template)
            .map_err(|e| fail(format!("{e:#}")))?;
        let mut captured = tmpl
            .render_captured(Value::from(Serde(facts)))
            .map_err(|e| fail(format!("{e:#}")))?;
        let text = captured
            .with_state_mut(|state| state.render_block("sms"))
            .map_err(|e| fail(format!("the sms block: {e:#}")))?;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(fail("the sms block is empty".to_owned()));
        }
        let chars = text.chars().count();
        if chars > SMS_MAX_CHARS {
            return Err(fail(format!(
                "the sms is {chars} characters, more than {SMS_MAX_CHARS}"
            )));
        }
        Ok(text)
    }

    fn try_samples(&self) -> Vec<MailError> {
        let case = CaseFacts {
            case_id: "00000000-0000-0000-0000-000000000000".into(),
            project_no: "500114-2021-0001".into(),
            service: "城乡居民基本养老保险参保登记".into(),
            unit: "沙坝镇社保所".into(),
            state: "核实整改中".into(),
            deadline: Some("2021年5月12日（星期三）24:00".into()),
            working_days: Some(1),
            overall_deadline: Some("2021年5月24日（星期一）24:00".into()),
            overall_working_days: Some(7),
            scheduled_due: Some("2021年6月30日（星期三）24:00".into()),
            scheduled_working_days: Some(30),
            link: self.link("/cases/00000000-0000-0000-0000-000000000000"),
        };
        let notice = CaseNotice {
            kind: "case_assigned".into(),
            action: Some("转办".into()),
            case: case.clone(),
        };
        let digest = Digest {
            date: "2021年5月12日（星期三）".into(),
            items: vec![DigestItem {
                kind: "due_soon".into(),
                case,
            }],
            total: 3,
            more: 2,
            overdue: 0,
            link: self.link("/cases"),
        };
        let review = ReviewInvitation {
            service: "城乡居民基本养老保险参保登记".into(),
            unit: "沙坝镇社保所".into(),
            project_no: "500114-2021-0001".into(),
            link: self.link("/r/sample"),
            expires: "2021年5月12日（星期三）24:00".into(),
            finding: Some("partly_true".into()),
            outcome: Some("rectified".into()),
            reply: None,
            reply_brief: None,
        }
        .with_reply(Some(
            "经核实，窗口已调整养老保险参保登记的办理流程，取消重复提交的证明材料，并对窗口人员开展服务规范培训。"
                .into(),
        ));
        let task = TaskNotice {
            kind: "overdue".into(),
            action: None,
            task: TaskFacts {
                task_id: "00000000-0000-0000-0000-000000000000".into(),
                plan: "2021年政务服务工作任务分解".into(),
                key_task: "（六）推进政务服务“好差评”".into(),
                title: "强化政务服务“好差评”系统的规范管理".into(),
                lead_units: "区政府职转办、区行政服务中心".into(),
                state: "推进中".into(),
                due: "持续推进".into(),
                owed: "进展报告".into(),
                deadline: Some("2021年5月31日（星期一）24:00".into()),
                working_days: Some(-1),
                link: self.link("/tasks/00000000-0000-0000-0000-000000000000"),
            },
        };
        [
            self.render(CASE, &notice).err(),
            self.render(DIGEST, &digest).err(),
            self.render_sms(DIGEST, &digest).err(),
            self.render(REVIEW, &review).err(),
            self.render_sms(REVIEW, &review).err(),
            self.render(TASK, &task).err(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl Default for Letters {
    fn default() -> Self {
        // The built-in templates are checked by this crate's tests; an empty environment is the
        // unreachable fallback.
        Self::build(&[]).unwrap_or_else(|_| Self {
            env: Environment::new(),
            public_url: "http://localhost:8080".to_owned(),
        })
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// A day as people write it: 2021年9月30日（星期四）.
pub fn chinese_date(date: chrono::NaiveDate) -> String {
    let weekday = match date.weekday() {
        Weekday::Mon => "一",
        Weekday::Tue => "二",
        Weekday::Wed => "三",
        Weekday::Thu => "四",
        Weekday::Fri => "五",
        Weekday::Sat => "六",
        Weekday::Sun => "日",
    };
    format!("{}（星期{weekday}）", chinese_day(date))
}

/// A day as pages write it: 2021年9月30日.
pub fn chinese_day(date: chrono::NaiveDate) -> String {
    format!("{}年{}月{}日", date.year(), date.month(), date.day())
}

/// A deadline as people write it: the last day it covers, then 24:00.
pub fn chinese_deadline(cal: &WorkingCalendar, deadline: DateTime<Utc>) -> String {
    format!("{}24:00", chinese_date(cal.last_day(deadline)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_review_invitation_says_what_the_unit_did_never_a_rectification_it_did_not_make() {
        let letters = Letters::build(&[]).unwrap();
        // (finding, outcome, words it must hold, words it must not).
        let table = [
            (Some("true"), Some("rectified"), "已核实整改", "解释说明"),
            (
                Some("partly_true"),
                Some("rectified"),
                "已核实整改",
                "解释说明",
            ),
            (Some("true"), Some("explained"), "解释说明", "整改"),
            (Some("untrue"), Some("explained"), "与事实不符", "整改"),
            (Some("untrue"), Some("rectified"), "与事实不符", "整改"),
            (Some("true"), Some("scheduled"), "限期整改", "已核实整改"),
        ];
        for (finding, outcome, says, never) in table {
            let letter = letters
                .render(
                    REVIEW,
                    &ReviewInvitation {
                        service: "城乡居民基本养老保险参保登记".into(),
                        unit: "沙坝镇社保所".into(),
                        project_no: "P-1".into(),
                        link: "https://hcp.example.cn/r/t".into(),
                        expires: "2021年5月12日（星期三）24:00".into(),
                        finding: finding.map(Into::into),
                        outcome: outcome.map(Into::into),
                        reply: None,
                        reply_brief: None,
                    },
                )
                .unwrap();
            let html = letter.html.unwrap();
            for part in [&letter.text, &html] {
                assert!(part.contains(says), "{finding:?} {outcome:?}: {part}");
            }
            for part in [&letter.subject, &letter.text, &html] {
                assert!(!part.contains(never), "{finding:?} {outcome:?}: {part}");
            }
            assert!(
                letter.text.contains("“城乡居民基本养老保险参保登记”"),
                "{}",
                letter.text
            );
            assert!(
                !letter.text.contains('"'),
                "Chinese quotation marks: {}",
                letter.text
            );
        }
    }

    #[test]
    fn the_public_reply_goes_whole_by_mail_and_clipped_by_sms() {
        let letters = Letters::build(&[]).unwrap();
        let invitation = |reply: Option<&str>| {
            ReviewInvitation {
                service: "城乡居民基本养老保险参保登记".into(),
                unit: "沙坝镇社保所".into(),
                project_no: "P-1".into(),
                link: "https://hcp.example.cn/r/t".into(),
                expires: "2021年5月12日（星期三）24:00".into(),
                finding: Some("true".into()),
                outcome: Some("rectified".into()),
                reply: None,
                reply_brief: None,
            }
            .with_reply(reply.map(Into::into))
        };
        let long = "窗口已优化一次性告知单<b>".repeat(6);
        let letter = letters.render(REVIEW, &invitation(Some(&long))).unwrap();
        assert!(
            letter.text.contains(&format!("答复：{long}")),
            "{}",
            letter.text
        );
        let html = letter.html.unwrap();
        assert!(
            html.contains("答复：窗口已优化一次性告知单&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        let sms = letters
            .render_sms(REVIEW, &invitation(Some(&long)))
            .unwrap();
        let brief: String = long.chars().take(SMS_REPLY_CHARS - 1).collect();
        assert!(sms.contains(&format!("答复：{brief}…请评价")), "{sms}");
        // A short reply goes whole, ending as a sentence; none, no 答复 at all.
        let sms = letters
            .render_sms(REVIEW, &invitation(Some("已优化告知单")))
            .unwrap();
        assert!(sms.contains("答复：已优化告知单。请评价"), "{sms}");
        for part in [
            letters.render_sms(REVIEW, &invitation(None)).unwrap(),
            letters.render(REVIEW, &invitation(None)).unwrap().text,
        ] {
            assert!(!part.contains("答复"), "{part}");
        }
    }

    #[test]
    fn the_built_in_templates_render_in_chinese_with_escaped_html() {
        let letters = Letters::build(&[])
            .unwrap()
            .with_public_url("https://hcp.example.cn/");
        let mut case = CaseFacts {
            case_id: "c1".into(),
            project_no: "P-1".into(),
            service: "社保<登记>".into(),
            unit: "社保所".into(),
            state: "核实整改中".into(),
            deadline: Some("2021年9月30日（星期四）24:00".into()),
            working_days: Some(-2),
            overall_deadline: Some("2021年10月15日（星期五）24:00".into()),
            overall_working_days: Some(3),
            scheduled_due: None,
            scheduled_working_days: None,
            link: letters.link("/cases/c1"),
        };
        let letter = letters
            .render(
                CASE,
                &CaseNotice {
                    kind: "escalated".into(),
                    action: None,
                    case: case.clone(),
                },
            )
            .unwrap();
        assert!(letter.subject.contains("督办"), "{}", letter.subject);
        assert!(letter.subject.contains("社保<登记>"), "{}", letter.subject);
        assert!(letter.text.contains("社保<登记>"), "{}", letter.text);
        assert!(letter.text.contains("已超期 2 个工作日"), "{}", letter.text);
        assert!(
            letter.text.contains("https://hcp.example.cn/cases/c1"),
            "{}",
            letter.text
        );
        let html = letter.html.unwrap();
        assert!(html.contains("社保&lt;登记&gt;"), "{html}");
        assert!(!html.contains("社保<登记>"), "{html}");

        case.working_days = Some(1);
        let digest = letters
            .render(
                DIGEST,
                &Digest {
                    date: "2021年9月29日（星期三）".into(),
                    items: vec![DigestItem {
                        kind: "due_soon".into(),
                        case,
                    }],
                    total: 1,
                    more: 0,
                    overdue: 0,
                    link: letters.link("/cases"),
                },
            )
            .unwrap();
        assert!(digest.subject.contains("1"), "{}", digest.subject);
        assert!(digest.text.contains("剩余 1 个工作日"), "{}", digest.text);
    }

    #[test]
    fn a_broken_or_unknown_template_is_named() {
        let broken = Letters::build(&[Source {
            name: "workflows/mail/case.jinja".into(),
            text: "{% block subject %}{{ case.service {% endblock %}".into(),
        }])
        .unwrap_err();
        assert!(broken[0].starts_with("case.jinja"), "{broken:?}");
        let unknown = Letters::build(&[Source {
            name: "mail/other.jinja".into(),
            text: String::new(),
        }])
        .unwrap_err();
        assert!(unknown[0].contains("unknown mail template"), "{unknown:?}");
        let no_subject = Letters::build(&[Source {
            name: "review.jinja".into(),
            text: "{% block subject %} {% endblock %}{% block text %}x{% endblock %}{% block html %}x{% endblock %}".into(),
        }])
        .unwrap_err();
        assert!(
            no_subject[0].contains("subject block is empty"),
            "{no_subject:?}"
        );
    }
}
