//! Personal data in a text written for publication (公开答复): the public side shows it to anyone, so
//! it must hold no name of the rater or of a staff member, no phone number, no email address and no
//! certificate number (docs/DOMAIN.md, "Public disclosure"). Pure: the store supplies the names it
//! knows; the patterns are found here.
//!
//! What counts:
//! - a phone number: a mobile number (11 digits from 13–19, with or without +86), a landline with
//!   its area code (0 and 9–11 more digits), or 7–8 digits right after a word that announces a number
//!   (电话, 手机, 联系, 拨打, 致电, tel);
//! - an email address;
//! - a certificate number: a resident identity card number (18 characters whose check digit holds,
//!   or 15 digits that hold a birth date);
//! - a known name: the rater's (also as 张先生 / 张女士) or a staff member's, anywhere in the text.
//!
//! Digits may be full-width or split by spaces and dashes (138-0000-1234): they are read as one.

/// What kind of personal data was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PersonalKind {
    /// The rater's or a staff member's name.
    Name,
    /// A phone number.
    Phone,
    /// An email address.
    Email,
    /// A certificate (identity card) number.
    CertificateNumber,
}

impl PersonalKind {
    /// Its code in an error's details.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonalKind::Name => "name",
            PersonalKind::Phone => "phone",
            PersonalKind::Email => "email",
            PersonalKind::CertificateNumber => "certificate_number",
        }
    }

    /// Its Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            PersonalKind::Name => "姓名",
            PersonalKind::Phone => "电话号码",
            PersonalKind::Email => "电子邮箱",
            PersonalKind::CertificateNumber => "证件号码",
        }
    }
}

/// One piece of personal data found, masked (what was found is named without being repeated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its kind.
    pub kind: PersonalKind,
    /// It, masked: 张*, 138****1234, z***@example.com, 5201**********1234.
    pub masked: String,
}

/// The names a text for publication must not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNames {
    /// The rater's name, when they gave one.
    pub rater: Option<String>,
    /// Staff members' names (and logins).
    pub staff: Vec<String>,
}

/// Every piece of personal data in `text`, in the order found, each once.
pub fn find(text: &str, names: &KnownNames) -> Vec<Found> {
    let text = normalize(text);
    let mut found = Vec::new();
    let mut push = |f: Found| {
        if !found.contains(&f) {
            found.push(f);
        }
    };
    let emails = email_spans(&text);
    for &(start, end) in &emails {
        push(Found {
            kind: PersonalKind::Email,
            masked: crate::rating::mask_email(&text[start..end]),
        });
    }
    // Digits inside an email address were reported with it.
    let mut without_emails = text.clone();
    for &(start, end) in emails.iter().rev() {
        without_emails.replace_range(start..end, " ");
    }
    for run in digit_runs(&without_emails) {
        if let Some(kind) = classify(&run) {
            // A mobile number with the country code is masked as the number itself.
            let digits = match run.digits.strip_prefix("86") {
                Some(mobile) if kind == PersonalKind::Phone && run.digits.len() == 13 => mobile,
                _ => &run.digits,
            };
            push(Found {
                kind,
                masked: mask_number(digits),
            });
        }
    }
    let lower = text.to_ascii_lowercase();
    for name in names.rater.iter().chain(&names.staff) {
        if contains_name(&text, &lower, name) {
            push(Found {
                kind: PersonalKind::Name,
                masked: mask_name(name),
            });
        }
    }
    if let Some(rater) = &names.rater
        && let Some(surname) = cjk_surname(rater)
    {
        for title in ["先生", "女士", "同志", "师傅"] {
            let called = format!("{surname}{title}");
            if text.contains(&called) {
                push(Found {
                    kind: PersonalKind::Name,
                    masked: format!("{surname}{title}"),
                });
            }
        }
    }
    found
}

/// The byte spans of the email addresses in `text`: a local part of letters, digits and `._%+-`,
/// an `@`, and a domain of two labels or more (letters, digits, `-`) joined by dots.
fn email_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let label = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let mut spans = Vec::new();
    let mut searched = 0;
    for (at, _) in text.match_indices('@') {
        if at < searched {
            continue;
        }
        let mut start = at;
        while start > searched && local(bytes[start - 1]) {
            start -= 1;
        }
        // The domain: labels joined by single dots, not ending in a dot.
        let mut end = at + 1;
        let mut labels = 0;
        loop {
            let from = end;
            while end < bytes.len() && label(bytes[end]) {
                end += 1;
            }
            if end == from {
                end = from.saturating_sub(1).max(at + 1);
                break;
            }
            labels += 1;
            if end + 1 < bytes.len() && bytes[end] == b'.' && label(bytes[end + 1]) {
                end += 1;
            } else {
                break;
            }
        }
        if start < at && labels >= 2 {
            spans.push((start, end));
            searched = end;
        }
    }
    spans
}

/// Full-width ASCII (０-９, Ａ-Ｚ, ＠ …) as ASCII, the ideographic space as a space.
fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// A number written in the text: its digits (and a final X of an identity card number), whether a
/// word announcing a phone number comes right before it.
struct DigitRun {
    digits: String,
    announced: bool,
}

/// Separators a number may be written with.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '‐' | '–' | '—' | '.' | '(' | ')')
}

fn digit_runs(text: &str) -> Vec<DigitRun> {
    let chars: Vec<char> = text.chars().collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_plus = chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !chars[i].is_ascii_digit() && !starts_plus {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        if starts_plus {
            i += 1;
        }
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                digits.push(c);
                i += 1;
            } else if (c == 'X' || c == 'x') && digits.len() == 17 {
                digits.push('X');
                i += 1;
                break;
            } else if is_separator(c)
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && !digits.is_empty()
            {
                i += 1;
            } else {
                break;
            }
        }
        // A run glued to letters (a code such as A123456789B) is not a number of a person.
        let glued = start > 0 && chars[start - 1].is_ascii_alphabetic();
        let before: String = chars[start.saturating_sub(8)..start].iter().collect();
        let announced = [
            "电话", "手机", "联系", "拨打", "致电", "号码", "tel", "Tel", "TEL",
        ]
        .iter()
        .any(|w| before.contains(w));
        if !glued {
            runs.push(DigitRun { digits, announced });
        }
    }
    runs
}

fn classify(run: &DigitRun) -> Option<PersonalKind> {
    let d = run.digits.as_str();
    let bytes = d.as_bytes();
    let mobile = |d: &[u8]| d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1]);
    if mobile(bytes) || (bytes.len() == 13 && d.starts_with("86") && mobile(&bytes[2..])) {
        return Some(PersonalKind::Phone);
    }
    if bytes.len() == 18 && identity_check_holds(d) {
        return Some(PersonalKind::CertificateNumber);
    }
    if bytes.len() == 15 && d.bytes().all(|b| b.is_ascii_digit()) && old_identity_date_holds(d) {
        return Some(PersonalKind::CertificateNumber);
    }
    if bytes.first() == Some(&b'0') && (10..=12).contains(&bytes.len()) {
        return Some(PersonalKind::Phone);
    }
    if run.announced && (7..=8).contains(&bytes.len()) && !is_date(d) {
        return Some(PersonalKind::Phone);
    }
    None
}

/// Whether eight digits read as a day (20210508: 已电话回访，2021-05-08 完成), which is no phone number.
fn is_date(d: &str) -> bool {
    d.len() == 8
        && d.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(d, "%Y%m%d")
            .is_ok_and(|day| (1990..2100).contains(&chrono::Datelike::year(&day)))
}

/// GB 11643: the 18th character is the ISO 7064 MOD 11-2 check of the first 17 digits.
fn identity_check_holds(d: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let chars: Vec<char> = d.chars().collect();
    let mut sum = 0;
    for (c, w) in chars[..17].iter().zip(WEIGHTS) {
        let Some(v) = c.to_digit(10) else {
            return false;
        };
        sum += v * w;
    }
    CHECK[(sum % 11) as usize] == chars[17]
}

/// A 15-digit identity card number holds its birth date (YYMMDD) at digits 7–12.
fn old_identity_date_holds(d: &str) -> bool {
    let month: u32 = d[8..10].parse().unwrap_or(0);
    let day: u32 = d[10..12].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Whether `name` occurs in `text` (`lower` is the text in ASCII lowercase): Chinese names of two
/// characters or more anywhere; a name in Latin letters (a login) of three or more, as a word, in any
/// case.
fn contains_name(text: &str, lower: &str, name: &str) -> bool {
    let name = name.trim();
    if name.chars().count() < 2 {
        return false;
    }
    if !name.is_ascii() {
        return text.contains(name);
    }
    if name.len() < 3 {
        return false;
    }
    let name = name.to_ascii_lowercase();
    lower.match_indices(&name).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + name.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

/// The surname of a Chinese name of two to four characters (its first character).
fn cjk_surname(name: &str) -> Option<char> {
    let name = name.trim();
    let count = name.chars().count();
    let first = name.chars().next()?;
    ((2..=4).contains(&count) && !first.is_ascii()).then_some(first)
}

fn mask_name(name: &str) -> String {
    let name = name.trim();
    let first: String = name.chars().take(1).collect();
    format!(
        "{first}{}",
        "*".repeat(name.chars().count().saturating_sub(1).min(3))
    )
}

fn mask_number(digits: &str) -> String {
    let n = digits.chars().count();
    if n <= 8 {
        let head: String = digits.chars().take(2).collect();
        return format!("{head}{}", "*".repeat(n - 2));
    }
    let head: String = digits.chars().take(if n >= 15 { 4 } else { 3 }).collect();
    let tail: String = digits.chars().skip(n - 4).collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, names: &KnownNames) -> Vec<(PersonalKind, String)> {
        find(text, names)
            .into_iter()
            .map(|f| (f.kind, f.masked))
            .collect()
    }

    #[test]
    fn numbers_of_people_are_found_however_written() {
        use PersonalKind::*;
        let none = KnownNames::default();
        let table: &[(&str, &[(PersonalKind, &str)])] = &[
            ("请拨打13800001234咨询", &[(Phone, "138****1234")]),
            ("电话 138-0000-1234", &[(Phone, "138****1234")]),
            ("手机：１３８００００１２３４", &[(Phone, "138****1234")]),
            ("+86 138 0000 1234", &[(Phone, "138****1234")]),
            ("办公电话0851-86261234", &[(Phone, "085****1234")]),
            ("联系电话 8626123", &[(Phone, "86*****")]),
            ("邮箱 zhang.san@example.com", &[(Email, "z***@example.com")]),
            (
                "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ",
                &[(Email, "z***@example.com")],
            ),
            (
                "写信给a.b+c@mail.gov.cn。谢谢",
                &[(Email, "a***@mail.gov.cn")],
            ),
            ("发至 wang@localhost 或 @某单位", &[]),
            (
                "身份证11010519491231002X",
                &[(CertificateNumber, "1101****002X")],
            ),
            (
                "证号 110105491231002",
                &[(CertificateNumber, "1101****1002")],
            ),
            // Figures that are not numbers of people.
            ("已于2021-05-06完成整改，共整改3项，投入12345元", &[]),
            ("已电话回访，2021-05-08完成整改", &[]),
            ("办件编号 11010519491231002Y", &[]),
            ("项目编号110105194912310021", &[]),
            ("12345热线已转办", &[]),
            ("编号A13800001234B", &[]),
        ];
        for (text, want) in table {
            let want: Vec<(PersonalKind, String)> =
                want.iter().map(|(k, m)| (*k, (*m).to_owned())).collect();
            assert_eq!(kinds(text, &none), want, "{text}");
        }
    }

    #[test]
    fn known_names_are_found_and_only_they() {
        let names = KnownNames {
            rater: Some("张三丰".into()),
            staff: vec!["李四".into(), "wangwu".into(), "li".into()],
        };
        let found = |text: &str| {
            kinds(text, &names)
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("张三丰反映的问题已整改"), ["张**"]);
        assert_eq!(found("经办人李四已作说明"), ["李*"]);
        assert_eq!(found("已向张先生说明"), ["张先生"]);
        assert_eq!(found("由 WangWu 回访"), ["w***"]);
        // A login is a word, not a part of one; a name of one letter or two is never looked for.
        assert!(found("wangwuxi 系统").is_empty());
        assert!(found("policy 已修订").is_empty());
        assert!(found("窗口服务已整改，政策已公开").is_empty());
    }
}
