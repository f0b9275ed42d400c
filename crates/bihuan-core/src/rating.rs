//! Ratings (评价): levels, channels and the checked rating of one handled item.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The satisfaction level (评价等级), by meaning; numeric code sets are mapped at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 非常满意.
    VerySatisfied,
    /// 满意.
    Satisfied,
    /// 基本满意.
    BasicallySatisfied,
    /// 不满意.
    Dissatisfied,
    /// 非常不满意.
    VeryDissatisfied,
}

impl Level {
    /// Every level with its identifier and Chinese name, best first.
    pub const ALL: [(Level, &'static str, &'static str); 5] = [
        (Level::VerySatisfied, "very_satisfied", "非常满意"),
        (Level::Satisfied, "satisfied", "满意"),
        (Level::BasicallySatisfied, "basically_satisfied", "基本满意"),
        (Level::Dissatisfied, "dissatisfied", "不满意"),
        (Level::VeryDissatisfied, "very_dissatisfied", "非常不满意"),
    ];

    /// The identifier used in the API and the database.
    pub fn as_str(self) -> &'static str {
        names(&Self::ALL, self).0
    }

    /// The Chinese name.
    pub fn label(self) -> &'static str {
        names(&Self::ALL, self).1
    }

    /// 差评: 不满意 and 非常不满意.
    pub fn is_negative(self) -> bool {
        matches!(self, Level::Dissatisfied | Level::VeryDissatisfied)
    }

    /// 好评: 非常满意 and 满意.
    pub fn is_positive(self) -> bool {
        matches!(self, Level::VerySatisfied | Level::Satisfied)
    }
}

/// The channel a rating came through (评价渠道).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// PC端.
    Pc,
    /// 移动服务端 (渝快办 APP).
    Mobile,
    /// 二维码.
    Qr,
    /// 政务大厅平板电脑.
    HallPad,
    /// 政务大厅其他终端.
    HallOther,
    /// 电话 / 12345.
    Phone,
    /// 短信.
    Sms,
    /// 系统默认评价: counts in totals, never opens a case, not an active rating.
    Default,
}

impl Channel {
    /// Every channel with its identifier and Chinese name.
    pub const ALL: [(Channel, &'static str, &'static str); 8] = [
        (Channel::Pc, "pc", "PC端"),
        (Channel::Mobile, "mobile", "移动服务端"),
        (Channel::Qr, "qr", "二维码"),
        (Channel::HallPad, "hall_pad", "政务大厅平板电脑"),
        (Channel::HallOther, "hall_other", "政务大厅其他终端"),
        (Channel::Phone, "phone", "电话"),
        (Channel::Sms, "sms", "短信"),
        (Channel::Default, "default", "系统默认评价"),
    ];

    /// The identifier used in the API and the database.
    pub fn as_str(self) -> &'static str {
        names(&Self::ALL, self).0
    }

    /// The Chinese name.
    pub fn label(self) -> &'static str {
        names(&Self::ALL, self).1
    }
}

/// The identifier and Chinese name of a value in a name table.
fn names<T: PartialEq>(
    table: &[(T, &'static str, &'static str)],
    value: T,
) -> (&'static str, &'static str) {
    table
        .iter()
        .find(|(v, _, _)| *v == value)
        .map_or(("", ""), |(_, id, zh)| (*id, *zh))
}

/// The value whose identifier or Chinese name is `s`.
fn parse_name<T: Copy>(
    table: &[(T, &'static str, &'static str)],
    s: &str,
    what: &'static str,
) -> Result<T, UnknownName> {
    let s = s.trim();
    table
        .iter()
        .find(|(_, id, zh)| *id == s || *zh == s)
        .map(|(v, _, _)| *v)
        .ok_or_else(|| UnknownName {
            what,
            value: s.to_owned(),
        })
}

/// A value that is not one of the names of an enumeration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("“{value}”不是有效的{what}")]
pub struct UnknownName {
    /// What was being parsed.
    pub what: &'static str,
    /// The value given.
    pub value: String,
}

impl FromStr for Level {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(&Self::ALL, s, "评价等级")
    }
}

/// Other names offices and upload interfaces use for the channels.
const CHANNEL_ALIASES: [(Channel, &str); 9] = [
    (Channel::Pc, "PC"),
    (Channel::Pc, "电脑端"),
    (Channel::Mobile, "移动端"),
    (Channel::Mobile, "渝快办"),
    (Channel::Mobile, "APP"),
    (Channel::Qr, "扫码"),
    (Channel::Phone, "12345"),
    (Channel::Phone, "电话/12345"),
    (Channel::Default, "默认评价"),
];

impl FromStr for Channel {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(&Self::ALL, s, "评价渠道").or_else(|e| {
            CHANNEL_ALIASES
                .iter()
                .find(|(_, alias)| alias.eq_ignore_ascii_case(s.trim()))
                .map(|(c, _)| *c)
                .ok_or(e)
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Individual (个人) or legal person (法人).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RaterType {
    /// 个人.
    Individual,
    /// 法人.
    LegalPerson,
}

impl RaterType {
    /// The identifier used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RaterType::Individual => "individual",
            RaterType::LegalPerson => "legal_person",
        }
    }
}

/// Who rated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rater {
    /// 个人 or 法人.
    pub kind: RaterType,
    /// 实名 (true) or 匿名.
    pub real_name: bool,
    /// Name, when given.
    pub name: Option<String>,
    /// Contact phone, when given (personal information: show masked).
    pub phone: Option<String>,
    /// Contact email, when given (personal information: show masked).
    pub email: Option<String>,
}

/// A checked rating of one handled item (办件). Immutable once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    /// The sending system, e.g. `yukuaiban`.
    pub source: String,
    /// The sending system's own id; (source, source_id) is unique.
    pub source_id: String,
    /// 办件编号.
    pub project_no: String,
    /// 事项编码.
    pub service_code: String,
    /// 事项名称.
    pub service_name: String,
    /// The code of the unit that handled the item.
    pub unit_code: String,
    /// 行政区划代码.
    pub region_code: String,
    /// The channel.
    pub channel: Channel,
    /// The level.
    pub level: Level,
    /// When the rating was given.
    pub rated_at: DateTime<Utc>,
    /// 1 = first rating, 2 = 追评.
    pub assess_number: u8,
    /// Who rated.
    pub rater: Rater,
    /// The window staff rated, when named.
    pub staff: Vec<String>,
    /// Indicator scores (整体满意度, 办事效率 …) as sent.
    pub indicators: serde_json::Map<String, Value>,
    /// Free-text comment.
    pub comment: Option<String>,
}

impl Rating {
    /// Every non-default 差评 opens exactly one case; a 追评 (a later rating of the same handled
    /// item) never opens one: it is the rater's word on the case its first rating opened.
    pub fn opens_case(&self) -> bool {
        self.level.is_negative() && self.channel != Channel::Default && !self.is_follow_up()
    }

    /// A 追评: `assess_number` 2 or more.
    pub fn is_follow_up(&self) -> bool {
        self.assess_number >= 2
    }
}

/// Masks personal data for roles that do not call raters: 13800001234 → 138****1234.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Masks an email address: zhangsan@example.com → z***@example.com.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Masks a name: 张三 → 张*, 欧阳娜娜 → 欧***.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count().max(1))),
        None => String::new(),
    }
}

/// A text for the logs with the contacts in it masked: every email address (`z***@example.com`) and
/// every run of 7 or more digits (phone numbers, certificate numbers: `138****1234`). Mail servers
/// and gateways name the recipient in their error messages; logs must not keep it.
pub fn redact_contacts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(is_separator) {
        let (core, sep) = match word.char_indices().last() {
            Some((at, c)) if is_separator(c) => (&word[..at], &word[at..]),
            _ => (word, ""),
        };
        let digits = core.chars().filter(char::is_ascii_digit).count();
        if core.contains('@') {
            out.push_str(&mask_email(core));
        } else if digits >= 7
            && core
                .chars()
                .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
        {
            out.push_str(&mask_phone(core));
        } else {
            out.push_str(core);
        }
        out.push_str(sep);
    }
    out
}

/// What separates the words of an error message.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | '"' | '\'' | '：' | '，'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_in_a_log_text_are_masked() {
        let table = [
            (
                "550 5.1.1 <zhangsan@example.org>: Recipient address rejected",
                "550 5.1.1 <z***@example.org>: Recipient address rejected",
            ),
            ("SMS to 13800001234 failed", "SMS to 138****1234 failed"),
            ("号码 +8613800001234 无效", "号码 +86****1234 无效"),
            (
                "connection refused (os error 111)",
                "connection refused (os error 111)",
            ),
            ("timed out after 5000 ms", "timed out after 5000 ms"),
        ];
        for (text, expected) in table {
            assert_eq!(redact_contacts(text), expected, "{text}");
        }
    }

    #[test]
    fn levels_and_channels_parse_by_english_or_chinese_name() {
        for (level, id, zh) in Level::ALL {
            assert_eq!(id.parse::<Level>().unwrap(), level);
            assert_eq!(zh.parse::<Level>().unwrap(), level);
        }
        for (channel, id, zh) in Channel::ALL {
            assert_eq!(id.parse::<Channel>().unwrap(), channel);
            assert_eq!(zh.parse::<Channel>().unwrap(), channel);
        }
        assert!(
            "3".parse::<Level>().is_err(),
            "a numeric code is never guessed"
        );
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn only_the_two_lowest_levels_are_negative() {
        let negative: Vec<&str> = Level::ALL
            .iter()
            .filter(|l| l.0.is_negative())
            .map(|l| l.1)
            .collect();
        assert_eq!(negative, ["dissatisfied", "very_dissatisfied"]);
    }

    #[test]
    fn personal_data_is_masked() {
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_email("zhangsan@example.com"), "z***@example.com");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
    }
}
