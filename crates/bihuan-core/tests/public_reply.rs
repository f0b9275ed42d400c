//! 公开答复 (docs/API.md, `feedback`'s `public_reply`): the text the public side shows and the rater is
//! sent, written for publication. Refused (422 `personal_data_in_reply`, naming what was found,
//! masked) when it holds the rater's or a staff member's name, a phone number, an email or a
//! certificate number; required on an anonymous rater's case, optional otherwise. A form not yet sent
//! is checked for the patterns too (the names come with the subject).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::interpreter::field_problems;
use bihuan_core::personal_data::KnownNames;
use bihuan_core::{ActionError, Actor, Decision, Role, Subject, decide};
use serde_json::{Value, json};

use common::{beijing, engine};

fn unit() -> Actor {
    Actor {
        name: "li".into(),
        role: Role::UnitStaff,
        unit: Some("unit-a".into()),
    }
}

/// A case waiting for its return visit; its rater anonymous or 张三丰, its staff 王芳 and `wangfang`.
fn pending_feedback(anonymous: bool) -> Subject {
    Subject {
        responsible_units: vec!["unit-a".into()],
        anonymous_rater: anonymous,
        known_names: KnownNames {
            rater: (!anonymous).then(|| "张三丰".to_owned()),
            staff: vec!["王芳".into(), "wangfang".into()],
        },
        ..Subject::new("pending_feedback")
    }
}

fn feedback(s: &Subject, reply: Option<&str>) -> Result<Decision, ActionError> {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let mut fields = json!({"method": "phone", "summary": "已电话回访"});
    if let Some(reply) = reply {
        fields["public_reply"] = json!(reply);
    }
    let fields = fields.as_object().cloned().unwrap();
    decide(
        def,
        engine.calendar(),
        s,
        &unit(),
        "feedback",
        &fields,
        beijing(5, 10, 10),
    )
}

/// The error's code and what it found, or the state reached.
fn outcome(r: Result<Decision, ActionError>) -> String {
    match r {
        Ok(d) => format!(
            "{} {}",
            d.to,
            d.fields
                .get("public_reply")
                .and_then(Value::as_str)
                .unwrap_or("-")
        ),
        Err(ActionError::PersonalDataInReply { field, found, .. }) => format!(
            "personal_data_in_reply {field}: {}",
            found
                .iter()
                .map(|f| format!("{}={}", f.kind.as_str(), f.masked))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Err(e) => format!("{} {}", e.code(), e.field().unwrap_or_default()),
    }
}

#[test]
fn a_reply_with_personal_data_is_refused_naming_what_was_found() {
    let named = pending_feedback(false);
    let table: &[(Option<&str>, &str)] = &[
        (None, "pending_review -"),
        (
            Some("  已优化一次性告知单。 "),
            "pending_review 已优化一次性告知单。",
        ),
        (
            Some("已向张三丰说明"),
            "personal_data_in_reply public_reply: name=张**",
        ),
        (
            Some("已向张先生说明"),
            "personal_data_in_reply public_reply: name=张先生",
        ),
        (
            Some("经办人王芳已整改"),
            "personal_data_in_reply public_reply: name=王*",
        ),
        (
            Some("由 WangFang 回访"),
            "personal_data_in_reply public_reply: name=w***",
        ),
        (
            Some("如有疑问请拨打 138-0000-1234"),
            "personal_data_in_reply public_reply: phone=138****1234",
        ),
        (
            Some("请发邮件至 li@example.org 或致电 0851-86261234"),
            "personal_data_in_reply public_reply: email=l***@example.org phone=085****1234",
        ),
        (
            Some("身份证号11010519491231002X已核验"),
            "personal_data_in_reply public_reply: certificate_number=1101****002X",
        ),
        // Figures, dates and the hotline are no one's personal data.
        (
            Some("已于2021年5月8日完成整改，共3项，咨询请拨12345"),
            "pending_review 已于2021年5月8日完成整改，共3项，咨询请拨12345",
        ),
    ];
    for (reply, want) in table {
        assert_eq!(outcome(feedback(&named, *reply)), *want, "{reply:?}");
    }
}

#[test]
fn the_message_names_the_field_and_never_repeats_the_data() {
    let e = feedback(&pending_feedback(false), Some("张三丰 13800001234")).unwrap_err();
    assert_eq!(e.code(), "personal_data_in_reply");
    let message = e.to_string();
    assert_eq!(
        message,
        "公开答复将向社会公开，不得含有个人信息：电话号码 138****1234、姓名 张**"
    );
    assert!(!message.contains("13800001234") && !message.contains("张三丰"));
}

#[test]
fn an_anonymous_raters_case_needs_a_public_reply() {
    let anonymous = pending_feedback(true);
    assert_eq!(
        outcome(feedback(&anonymous, None)),
        "missing_field public_reply"
    );
    assert_eq!(
        outcome(feedback(&anonymous, Some("   "))),
        "missing_field public_reply"
    );
    assert_eq!(
        outcome(feedback(&anonymous, Some("已优化办理流程。"))),
        "pending_review 已优化办理流程。"
    );
    // A real-name rater's case may go without one.
    assert_eq!(
        outcome(feedback(&pending_feedback(false), None)),
        "pending_review -"
    );
}

#[test]
fn a_form_is_checked_for_the_patterns_before_it_is_sent() {
    let engine = engine();
    let def = engine.workflow("negative-rating").unwrap();
    let action = def.action("feedback").unwrap();
    let given =
        json!({"method": "phone", "summary": "已回访", "public_reply": "请致电13800001234"});
    let problems = field_problems(action, given.as_object().unwrap(), beijing(5, 10, 10));
    assert_eq!(
        problems
            .iter()
            .map(|e| (e.code(), e.field().unwrap_or_default()))
            .collect::<Vec<_>>(),
        [("personal_data_in_reply", "public_reply")]
    );
}
