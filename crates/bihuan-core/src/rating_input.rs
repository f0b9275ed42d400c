//! Parsing a rating as sent (docs/API.md's rating JSON) into a checked [`Rating`], naming each bad field.
//!
//! Unknown fields are ignored; wrong types are refused. A numeric level needs an explicit code set
//! (`level_code_set`), never a guessed one.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::rating::{Channel, Level, Rater, RaterType, Rating};

/// One bad field of a rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, dotted for nested ones (`rater.phone`).
    pub field: String,
    /// What is wrong, in Chinese.
    pub message: String,
}

const MAX_COMMENT: usize = 2000;

/// Parses one rating. `tz` interprets times sent without an offset.
pub fn parse_rating(value: &Value, tz: Tz) -> Result<Rating, Vec<FieldError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![err("", "评价应为 JSON 对象")]);
    };
    let mut p = Parser {
        obj,
        errors: Vec::new(),
    };
    let source = p.text("source", true, 64);
    let source_id = p.text("source_id", true, 128);
    let project_no = p.text("project_no", true, 128);
    let service_code = p.text("service_code", true, 128);
    let service_name = p.text("service_name", true, 500);
    let unit_code = p.text("unit_code", true, 64);
    let region_code = p.text("region_code", true, 32);
    let channel = p
        .text("channel", true, 32)
        .and_then(|c| match c.parse::<Channel>() {
            Ok(c) => Some(c),
            Err(e) => p.fail("channel", &e.to_string()),
        });
    let level = p.level();
    let rated_at = p.time("rated_at", tz);
    let assess_number = match obj.get("assess_number") {
        None | Some(Value::Null) => Some(1),
        Some(Value::Number(n)) if n.as_u64() == Some(1) || n.as_u64() == Some(2) => {
            n.as_u64().map(|v| v as u8)
        }
        Some(_) => p.fail("assess_number", "评价次数应为 1（首次评价）或 2（追评）"),
    };
    let rater = p.rater();
    let staff = match obj.get("staff") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| truncate(s.trim(), 100))
                .filter(|s| !s.is_empty())
                .collect(),
        ),
        Some(_) => p.fail("staff", "应为文本数组"),
    };
    let indicators = match obj.get("indicators") {
        None | Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(m)) if m.values().all(|v| v.is_number()) => Some(m.clone()),
        Some(_) => p.fail("indicators", "应为“指标: 分数”对象"),
    };
    let comment = p.text("comment", false, MAX_COMMENT);
    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    match (
        source,
        source_id,
        project_no,
        service_code,
        service_name,
        unit_code,
        region_code,
        channel,
        level,
        rated_at,
        assess_number,
        rater,
        staff,
        indicators,
    ) {
        (
            Some(source),
            Some(source_id),
            Some(project_no),
            Some(service_code),
            Some(service_name),
            Some(unit_code),
            Some(region_code),
            Some(channel),
            Some(level),
            Some(rated_at),
            Some(assess_number),
            Some(rater),
            Some(staff),
            Some(indicators),
        ) => Ok(Rating {
            source,
            source_id,
            project_no,
            service_code,
            service_name,
            unit_code,
            region_code,
            channel,
            level,
            rated_at,
            assess_number,
            rater,
            staff,
            indicators,
            comment,
        }),
        _ => Err(vec![err("", "评价不完整")]),
    }
}

fn err(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

struct Parser<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Parser<'_> {
    fn fail<T>(&mut self, field: &str, message: &str) -> Option<T> {
        self.errors.push(err(field, message));
        None
    }

    /// A trimmed text field; `Some` when present and valid.
    fn text(&mut self, field: &str, required: bool, max: usize) -> Option<String> {
        self.text_in(self.obj, field, field, required, max)
    }

    fn text_in(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        field: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(field, "必填")
                } else {
                    None
                }
            }
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    if required {
                        self.fail(field, "不能为空")
                    } else {
                        None
                    }
                } else if s.chars().count() > max {
                    self.fail(field, &format!("最多 {max} 个字符"))
                } else {
                    Some(s.to_owned())
                }
            }
            Some(_) => self.fail(field, "应为文本"),
        }
    }

    fn level(&mut self) -> Option<Level> {
        match self.obj.get("level") {
            None | Some(Value::Null) => self.fail("level", "必填"),
            Some(Value::String(s)) => match s.parse::<Level>() {
                Ok(level) => Some(level),
                Err(e) => self.fail("level", &e.to_string()),
            },
            Some(Value::Number(n)) => {
                let code = n.as_u64().filter(|c| (1..=5).contains(c));
                let set = self.obj.get("level_code_set").and_then(Value::as_str);
                match (code, set) {
                    (Some(c), Some("gbt39046")) => Level::ALL.get(c as usize - 1).map(|l| l.0),
                    (Some(c), Some("upload")) => Level::ALL.get(5 - c as usize).map(|l| l.0),
                    (None, _) => self.fail("level", "数字评价等级应为 1 到 5"),
                    (Some(_), _) => self.fail(
                        "level_code_set",
                        "数字评价等级须注明代码集：gbt39046（1=非常满意）或 upload（1=非常不满意）",
                    ),
                }
            }
            Some(_) => self.fail("level", "应为评价等级名称"),
        }
    }

    fn time(&mut self, field: &str, tz: Tz) -> Option<DateTime<Utc>> {
        let text = self.text(field, true, 64)?;
        if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
            return Some(t.to_utc());
        }
        for format in [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y/%m/%d %H:%M:%S",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(&text, format) {
                return tz
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.to_utc());
            }
        }
        self.fail(
            field,
            &format!("“{text}”不是有效时间（例如 2021-05-06T10:00:00+08:00）"),
        )
    }

    fn rater(&mut self) -> Option<Rater> {
        let obj = match self.obj.get("rater") {
            None | Some(Value::Null) => &Map::new(),
            Some(Value::Object(o)) => o,
            Some(_) => return self.fail("rater", "应为对象"),
        };
        let kind = match obj.get("type").and_then(Value::as_str).map(str::trim) {
            None | Some("individual") | Some("个人") => Some(RaterType::Individual),
            Some("legal_person") | Some("法人") => Some(RaterType::LegalPerson),
            Some(_) => self.fail(
                "rater.type",
                "应为 individual（个人）或 legal_person（法人）",
            ),
        };
        let real_name = match obj.get("real_name") {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => self.fail("rater.real_name", "应为 true 或 false"),
        };
        let name = self.text_in(obj, "name", "rater.name", false, 100);
        let phone = match self.text_in(obj, "phone", "rater.phone", false, 32) {
            Some(p) => match normalise_phone(&p) {
                Some(p) => Some(p),
                None => return self.fail("rater.phone", "不是有效的电话号码"),
            },
            None => None,
        };
        let email = match self.text_in(obj, "email", "rater.email", false, 254) {
            Some(e)
                if e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')) =>
            {
                Some(e)
            }
            Some(_) => return self.fail("rater.email", "不是有效的邮箱地址"),
            None => None,
        };
        Some(Rater {
            kind: kind?,
            real_name: real_name?,
            name,
            phone,
            email,
        })
    }
}

/// Digits only, without a leading +86 / 0086; 7 to 15 digits.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = if raw.trim_start().starts_with('+') {
        digits
            .strip_prefix("86")
            .map(str::to_owned)
            .unwrap_or(digits)
    } else {
        digits
            .strip_prefix("0086")
            .map(str::to_owned)
            .unwrap_or(digits)
    };
    let ok_chars = raw
        .chars()
        .all(|c| c.is_ascii_digit() || " -+()".contains(c));
    (ok_chars && (7..=15).contains(&digits.len())).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_example() -> Value {
        json!({"source":"yukuaiban","source_id":"YKB-2021-000123","project_no":"500114-2021-0001",
         "service_code":"11500114MB1234567X4000117001","service_name":"城乡居民基本养老保险参保登记",
         "unit_code":"shaba-social","region_code":"500114112","channel":"mobile","level":"dissatisfied",
         "rated_at":"2021-05-06T10:00:00+08:00","assess_number":1,
         "rater":{"type":"individual","real_name":true,"name":"张三","phone":"13800001234","email":null},
         "staff":["李四"],"indicators":{"overall":2,"efficiency":2},"comment":"材料要求反复变化"})
    }

    fn check(patch: Value, expected: Result<(), &str>) {
        let mut v = api_example();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        let got = parse_rating(&v, chrono_tz::Asia::Shanghai)
            .map(|_| ())
            .map_err(|e| e[0].field.clone());
        assert_eq!(got, expected.map_err(str::to_owned), "{patch}");
    }

    #[test]
    fn the_api_example_parses() {
        let r = parse_rating(&api_example(), chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(
            (r.level, r.channel, r.rater.real_name),
            (Level::Dissatisfied, Channel::Mobile, true)
        );
        assert_eq!(
            r.rated_at,
            Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap()
        );
        assert!(r.opens_case());
    }

    #[test]
    fn each_bad_field_is_named() {
        let rows: Vec<(Value, Result<(), &str>)> = vec![
            (json!({"level": "不满意"}), Ok(())),
            (json!({"level": "meh"}), Err("level")),
            (json!({"level": 4}), Err("level_code_set")),
            (json!({"level": 4, "level_code_set": "gbt39046"}), Ok(())),
            (
                json!({"level": 9, "level_code_set": "upload"}),
                Err("level"),
            ),
            (json!({"channel": "移动服务端"}), Ok(())),
            (json!({"channel": "fax"}), Err("channel")),
            (json!({"source_id": null}), Err("source_id")),
            (json!({"source_id": 12}), Err("source_id")),
            (json!({"service_name": "  "}), Err("service_name")),
            (json!({"rated_at": "2021-05-06 10:00:00"}), Ok(())),
            (json!({"rated_at": "yesterday"}), Err("rated_at")),
            (json!({"assess_number": 3}), Err("assess_number")),
            (json!({"rater": {"phone": "138-0000-1234"}}), Ok(())),
            (json!({"rater": {"phone": "call me"}}), Err("rater.phone")),
            (json!({"rater": {"email": "nobody"}}), Err("rater.email")),
            (json!({"rater": {"type": "robot"}}), Err("rater.type")),
            (json!({"rater": "张三"}), Err("rater")),
            (json!({"staff": "李四"}), Err("staff")),
            (
                json!({"indicators": {"overall": "good"}}),
                Err("indicators"),
            ),
            (json!({"unknown_field": 1}), Ok(())),
        ];
        for (patch, expected) in rows {
            check(patch, expected);
        }
    }

    #[test]
    fn numeric_code_sets_map_explicitly() {
        let mut v = api_example();
        v["level"] = json!(1);
        v["level_code_set"] = json!("gbt39046");
        assert_eq!(
            parse_rating(&v, chrono_tz::Asia::Shanghai).unwrap().level,
            Level::VerySatisfied
        );
        v["level_code_set"] = json!("upload");
        assert_eq!(
            parse_rating(&v, chrono_tz::Asia::Shanghai).unwrap().level,
            Level::VeryDissatisfied
        );
    }

    #[test]
    fn phones_are_normalised() {
        assert_eq!(
            normalise_phone("+86 138 0000 1234").as_deref(),
            Some("13800001234")
        );
        assert_eq!(
            normalise_phone("023-7923 1234").as_deref(),
            Some("02379231234")
        );
        assert_eq!(normalise_phone("12"), None);
    }
}
