//! The whole HTTP surface under garbage (issue 16): every operation of the OpenAPI document and every
//! page, with malformed and mutated bodies, huge numbers, deep nesting, invalid UTF-8 and long
//! strings, signed in as every role or not at all. No answer may be a 5xx (a panic answers 500).
//!
//! `BIHUAN_FUZZ_REQUESTS` sets the number of requests per database (default 2,000, the CI run);
//! `BIHUAN_FUZZ_SEED` the seed (default 2021). Request `i` is generated from the seed and `i` alone,
//! so a failure printed with its index and seed is reproduced by running again with that seed. The
//! long run of the README: `BIHUAN_FUZZ_REQUESTS=100000 cargo test --release -p bihuan-tests --test
//! fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bihuan_store::{Clock, TokenScope};
use bihuan_test_support::TestDb;
use bihuan_tests::api::{self, TestApp, rating};
use bihuan_tests::pages::{Browser, hidden};
use bihuan_web::WebConfig;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

bihuan_test_support::on_both_databases!(no_request_gets_a_server_error);

/// splitmix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u64) -> Self {
        let mut rng = Self(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How an operation takes its body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    None,
    Json,
    Form,
    /// A file: CSV, xlsx, or JSON.
    Upload,
    /// A page's multipart form.
    Multipart,
}

/// One thing to call: a documented operation or a page.
#[derive(Debug, Clone)]
struct Op {
    method: Method,
    path: String,
    query: Vec<String>,
    body: Body,
    /// A good body to mutate, for operations with one.
    template: Option<Value>,
}

/// Good bodies of the documented operations, the starting points of the mutations.
fn api_template(method: &str, path: &str, ids: &Ids) -> Option<Value> {
    let case = ids.cases.first().cloned().unwrap_or_default();
    Some(match (method, path) {
        ("post", "/api/v1/session") => {
            json!({"username": "center", "password": "not-the-password"})
        }
        ("post", "/api/v1/session/password") => {
            json!({"current": "not-the-password", "new": "a-new-password-2021"})
        }
        ("post", "/api/v1/ratings") => rating("fuzz-1", "dissatisfied", "mobile"),
        ("post", "/api/v1/ratings/batch") => json!({"ratings": [
            rating("fuzz-2", "dissatisfied", "mobile"),
            rating("fuzz-3", "very_dissatisfied", "pc"),
        ]}),
        ("post", "/api/v1/cases/{id}/actions") => json!({
            "action": "transfer", "version": 2, "fields": {"unit": "shaba-social", "note": "转办"}
        }),
        ("post", "/api/v1/tasks/{id}/actions") => json!({
            "action": "report", "version": 1, "fields": {"progress": "已完成一半", "percent": 50}
        }),
        ("post", "/api/v1/audits") => {
            json!({"case_id": case, "verdict": "fail", "reason": "回访记录不实"})
        }
        ("post", "/api/v1/units") => json!({
            "code": "fuzz-unit", "name": "沙坝镇测试所", "parent": "shaba",
            "email": "fuzz@example.org", "region_code": "500114112"
        }),
        ("post", "/api/v1/units/aliases") => {
            json!({"code": "11500114MB0000000X", "unit": "shaba-social"})
        }
        ("post", "/api/v1/users") => json!({
            "username": "fuzz-user", "role": "unit_staff", "unit": "shaba-social",
            "email": "fuzz-user@example.org", "password": "a-long-password-2021"
        }),
        ("post", "/api/v1/tokens") => {
            json!({"name": "fuzz-channel", "scope": "ratings:write", "source": "fuzz"})
        }
        ("post", "/api/v1/plans") => json!({
            "name": "测试计划", "year": 2021, "report_months": 1, "items": [{
                "key_task": "（一）深化改革", "title": "推进一网通办", "lead_units": ["沙坝镇社会保障服务所"],
                "co_units": ["沙坝镇民政办"], "deadline": "2021-06-30", "targets": [{"text": "办结率100%"}]
            }]
        }),
        ("post", "/r/{token}") => json!({"choice": "unsatisfied", "comment": "还是没有解决"}),
        // The file part is added by the fuzzer; other parts are ignored.
        ("post", "/api/v1/cases/{id}/attachments" | "/api/v1/tasks/{id}/attachments") => {
            json!({"note": "佐证材料"})
        }
        _ => return None,
    })
}

/// The pages: not in the OpenAPI document, served by the same app.
fn pages() -> Vec<Op> {
    let page = |method: Method, path: &str, body: Body, template: Option<Value>| Op {
        method,
        path: path.to_owned(),
        query: [
            "next", "done", "n", "verify", "page", "state", "unit", "from", "to", "imported",
        ]
        .map(String::from)
        .to_vec(),
        body,
        template,
    };
    let mut ops: Vec<Op> = [
        "/",
        "/login",
        "/cases/{id}",
        "/ledger",
        "/plans",
        "/plans/{id}",
        "/tasks/{id}",
        "/stats",
        "/supervise",
        "/admin",
        "/static/style.css",
    ]
    .into_iter()
    .map(|p| page(Method::GET, p, Body::None, None))
    .collect();
    let forms = [
        (
            "/login",
            json!({"username": "center", "password": "not-the-password", "next": "/ledger"}),
        ),
        ("/logout", json!({})),
        (
            "/cases/{id}",
            json!({"action": "transfer", "version": "2", "unit": "shaba-social"}),
        ),
        (
            "/tasks/{id}",
            json!({"action": "report", "version": "1", "progress": "推进中", "percent": "40"}),
        ),
        (
            "/supervise/audits",
            json!({"case_id": "", "verdict": "fail", "reason": "抽查不实"}),
        ),
        (
            "/admin/units",
            json!({"code": "fz", "name": "测试所", "parent": "shaba", "email": "", "region_code": ""}),
        ),
        (
            "/admin/users",
            json!({"username": "fz", "role": "viewer", "unit": "shaba", "email": "", "password": "a-long-password-2021"}),
        ),
        (
            "/admin/tokens",
            json!({"name": "fz", "scope": "metrics:read", "source": ""}),
        ),
        (
            "/admin/aliases",
            json!({"code": "11500114MB0000001X", "unit": "shaba-social"}),
        ),
        ("/admin/outbox/{id}/retry", json!({})),
    ];
    for (path, template) in forms {
        ops.push(page(Method::POST, path, Body::Form, Some(template)));
    }
    for path in ["/cases/{id}/attachments", "/tasks/{id}/attachments"] {
        ops.push(page(Method::POST, path, Body::Multipart, Some(json!({}))));
    }
    ops.push(page(
        Method::POST,
        "/plans",
        Body::Multipart,
        Some(json!({"name": "测试计划", "year": "2021", "parent": "shaba", "report_months": "1"})),
    ));
    ops
}

/// The documented operations, read from the OpenAPI document itself.
fn api_ops(doc: &Value, ids: &Ids) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let content = &op["requestBody"]["content"];
            let body = if content.is_null() {
                Body::None
            } else if content.get("application/x-www-form-urlencoded").is_some() {
                Body::Form
            } else if content.get("multipart/form-data").is_some() {
                Body::Multipart
            } else if content.get("application/json").is_some() && path != "/api/v1/plans" {
                Body::Json
            } else {
                Body::Upload
            };
            let template = api_template(method, path, ids);
            assert!(
                body == Body::None || template.is_some(),
                "{method} {path} takes a body: give it a template here"
            );
            ops.push(Op {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path: path.clone(),
                query,
                body,
                template,
            });
        }
    }
    ops
}

/// Real identifiers, so that requests reach past the lookups.
#[derive(Debug, Default)]
struct Ids {
    cases: Vec<String>,
    plans: Vec<String>,
    tasks: Vec<String>,
}

/// Who sends a request.
#[derive(Debug, Clone)]
enum Caller {
    Nobody,
    Bearer(String),
    Page { cookie: String, csrf: String },
}

const LONG: usize = 70_000;

fn long_string(rng: &mut Rng) -> String {
    let unit = *rng.pick(&["a", "沙", "💥", "\u{202e}", "e\u{301}", "%", "\\", "'"]);
    unit.repeat(1 + rng.below(LONG))
}

/// A string anyone might send.
fn garbage_string(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 => String::new(),
        1 => long_string(rng),
        2 => "\u{0}".into(),
        3 => "a\u{0}b".into(),
        4 => "' OR 1=1 --".into(),
        5 => "<script>alert(1)</script>".into(),
        6 => "../../../etc/passwd".into(),
        7 => "2021-02-30".into(),
        8 => "9999-12-31T23:59:59Z".into(),
        9 => "-0".into(),
        10 => "18446744073709551616".into(),
        11 => "NaN".into(),
        12 => "\u{feff}center".into(),
        13 => "  ".into(),
        14 => uuid::Uuid::new_v4().to_string(),
        15 => "shaba-social".into(),
        16 => "unsatisfied".into(),
        17 => "${jndi:ldap://x}".into(),
        18 => "\r\nX-Injected: 1".into(),
        _ => "沙坝镇".into(),
    }
}

/// A JSON value of any type, `depth` levels at most.
fn garbage_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 9 } else { 12 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(*rng.pick(&[
            0i64,
            -1,
            1,
            i64::MAX,
            i64::MIN,
            2_147_483_648,
            -2_147_483_649
        ])),
        3 => json!(u64::MAX),
        4 => json!(*rng.pick(&[
            1.5f64,
            -0.0,
            1e308,
            -1e308,
            4.9e-324,
            9_007_199_254_740_993.0
        ])),
        5..=8 => json!(garbage_string(rng)),
        9 => Value::Array(
            (0..rng.below(4))
                .map(|_| garbage_value(rng, depth - 1))
                .collect(),
        ),
        10 => Value::Object(
            (0..rng.below(4))
                .map(|_| (garbage_string(rng), garbage_value(rng, depth - 1)))
                .collect(),
        ),
        _ => json!(vec![7; 1 + rng.below(20_000)]),
    }
}

/// A good body changed in one to three places: a value replaced, a key dropped or added.
fn mutate(rng: &mut Rng, value: &mut Value) {
    for _ in 0..1 + rng.below(3) {
        mutate_one(rng, value);
    }
}

fn mutate_one(rng: &mut Rng, value: &mut Value) {
    let descend = rng.chance(50);
    match value {
        Value::Object(map) if !map.is_empty() && descend => {
            let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
            return mutate_one(rng, map.get_mut(&key).unwrap());
        }
        Value::Array(items) if !items.is_empty() && descend => {
            let i = rng.below(items.len());
            return mutate_one(rng, &mut items[i]);
        }
        _ => {}
    }
    match (rng.below(4), &mut *value) {
        (0, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
            map.remove(&key);
        }
        (1, Value::Object(map)) => {
            map.insert(garbage_string(rng), garbage_value(rng, 2));
        }
        _ => *value = garbage_value(rng, 2),
    }
}

/// Bytes that are not what the endpoint wants.
fn garbage_bytes(rng: &mut Rng, template: &Value) -> Vec<u8> {
    let good = serde_json::to_vec(template).unwrap();
    match rng.below(11) {
        0 => good[..rng.below(good.len().max(1))].to_vec(),
        1 => {
            let mut b = b"{\"username\":\"".to_vec();
            b.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
            b.extend_from_slice(b"\",\"name\":\"\xe6\xb2\x99\xff\"}");
            b
        }
        2 => "[".repeat(1 + rng.below(200_000)).into_bytes(),
        3 => "{\"a\":".repeat(1 + rng.below(50_000)).into_bytes(),
        4 => format!("{{\"version\":{}}}", "9".repeat(1 + rng.below(5_000))).into_bytes(),
        5 => (0..rng.below(4_096)).map(|_| rng.next() as u8).collect(),
        6 => Vec::new(),
        7 => b"null".to_vec(),
        8 => {
            let mut b = vec![0xef, 0xbb, 0xbf];
            b.extend_from_slice(&good);
            b
        }
        9 => {
            // Every key twice, the second time with garbage.
            let text = String::from_utf8(good).unwrap();
            let inner = text.trim_start_matches('{').trim_end_matches('}');
            format!("{{{inner},{inner}}}").into_bytes()
        }
        _ => b"\"1e99999\"".to_vec(),
    }
}

/// A file to upload: a damaged workbook or table.
fn garbage_file(rng: &mut Rng) -> Vec<u8> {
    match rng.below(7) {
        5 => {
            let mut b = b"%PDF-1.7\n".to_vec();
            b.extend((0..rng.below(8_192)).map(|_| rng.next() as u8));
            b
        }
        6 => {
            let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
            b.extend((0..rng.below(8_192)).map(|_| rng.next() as u8));
            b
        }
        0 => {
            let mut b = b"PK\x03\x04".to_vec();
            b.extend((0..rng.below(8_192)).map(|_| rng.next() as u8));
            b
        }
        1 => "重点任务,工作任务,牵头单位,配合单位,完成时限\n（一）改革,推进,沙坝镇社会保障服务所,,2021-13-45\n"
            .repeat(1 + rng.below(50))
            .into_bytes(),
        2 => {
            let mut b = "重点任务,工作任务\n".as_bytes().to_vec();
            b.extend_from_slice(&[0xff, 0xfe, 0x00, 0x22, 0x2c]);
            b
        }
        3 => ",".repeat(1 + rng.below(100_000)).into_bytes(),
        _ => (0..rng.below(4_096)).map(|_| rng.next() as u8).collect(),
    }
}

/// A query value.
fn garbage_query_value(rng: &mut Rng) -> String {
    let raw = *rng.pick(&[
        "",
        "0",
        "-1",
        "1",
        "3",
        "18446744073709551616",
        "9223372036854775807",
        "1e400",
        "true",
        "2021-01-01",
        "2021-02-30",
        "99999-01-01",
        "+002021-01-01",
        "shaba-social",
        "closed",
        "submitted",
        "very_dissatisfied",
        "%FF%FE",
        "%00",
        "/%09/evil.example",
        "//evil.example",
        "trend.svg",
    ]);
    if rng.chance(5) {
        long_string(rng)
            .chars()
            .take(3_000)
            .map(|c| format!("%{:02X}", c as u32 & 0xff))
            .collect()
    } else {
        raw.to_owned()
    }
}

fn query(rng: &mut Rng, names: &[String]) -> String {
    let mut parts = Vec::new();
    for name in names {
        if rng.chance(40) {
            parts.push(format!("{name}={}", garbage_query_value(rng)));
        }
    }
    if !names.is_empty() && rng.chance(10) {
        let name = rng.pick(names).clone();
        parts.push(format!("{name}=1&{name}=2"));
    }
    if rng.chance(5) {
        parts.push("&&==&%zz".into());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn path_value(rng: &mut Rng, name: &str, ids: &Ids) -> String {
    if rng.chance(70) {
        let real: Vec<String> = match name {
            "id" => [&ids.cases[..], &ids.plans[..], &ids.tasks[..]].concat(),
            "username" => ["o_unit", "o_sup", "fuzz-user", "no-such-user"]
                .map(String::from)
                .to_vec(),
            "name" => ["trend.svg", "units.svg"].map(String::from).to_vec(),
            _ => Vec::new(),
        };
        if !real.is_empty() {
            return rng.pick(&real).clone();
        }
    }
    match rng.below(9) {
        0 => uuid::Uuid::new_v4().to_string(),
        1 => "00000000-0000-0000-0000-000000000000".into(),
        2 => "not-a-uuid".into(),
        3 => "%FF%FE".into(),
        4 => "%00".into(),
        5 => "..%2F..%2Fadmin".into(),
        6 => "a".repeat(1 + rng.below(3_000)),
        7 => "-1".into(),
        _ => "%E6%B2%99".into(),
    }
}

fn fill_path(rng: &mut Rng, path: &str, ids: &Ids) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(&path_value(rng, &rest[start + 1..end], ids));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A form's fields as text, some of them garbage.
fn form_pairs(rng: &mut Rng, template: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (k, v) in template.as_object().unwrap() {
        if rng.chance(15) {
            continue;
        }
        let value = if rng.chance(30) {
            garbage_string(rng)
        } else {
            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
        };
        pairs.push((k.clone(), value));
    }
    if rng.chance(20) {
        pairs.push((garbage_string(rng), garbage_string(rng)));
    }
    pairs
}

/// One generated request, described for the failure report.
struct Sent {
    what: String,
    status: StatusCode,
    body: String,
}

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    rng: &mut Rng,
    op: &Op,
    callers: &[Caller],
    ids: &Ids,
) -> Result<Sent, String> {
    let path = fill_path(rng, &op.path, ids);
    let url = format!("{}{path}{}", app.base, query(rng, &op.query));
    let caller = if op.path == "/api/v1/session" && op.method == Method::DELETE {
        // Signing out would end the sessions the rest of the run uses.
        Caller::Nobody
    } else {
        rng.pick(callers).clone()
    };
    let mut req = client.request(op.method.clone(), &url);
    let mut described = format!("{} {url}", op.method);
    let mut csrf = None;
    match &caller {
        Caller::Nobody => {}
        Caller::Bearer(token) => {
            let header = match rng.below(20) {
                0 => format!("Bearer {}", "x".repeat(1 + rng.below(10_000))),
                1 => "Basic YWRtaW46YWRtaW4=".to_owned(),
                2 => "Bearer".to_owned(),
                _ => format!("Bearer {token}"),
            };
            req = req.header(AUTHORIZATION, header);
        }
        Caller::Page { cookie, csrf: c } => {
            req = req.header(COOKIE, cookie.as_str());
            csrf = Some(if rng.chance(90) {
                c.clone()
            } else {
                garbage_string(rng)
            });
        }
    }
    described.push_str(&format!(" as {}", caller_name(&caller)));
    let template = op.template.clone().unwrap_or(Value::Null);
    req = match op.body {
        Body::None => req,
        Body::Json | Body::Upload if rng.chance(30) => {
            let bytes = if op.body == Body::Upload && rng.chance(50) {
                garbage_file(rng)
            } else {
                garbage_bytes(rng, &template)
            };
            described.push_str(&format!(" raw body of {} bytes", bytes.len()));
            let kind = *rng.pick(&[
                "application/json",
                "application/octet-stream",
                "text/csv",
                "multipart/form-data",
                "text/plain; charset=gbk",
            ]);
            req.header(CONTENT_TYPE, kind).body(bytes)
        }
        Body::Json | Body::Upload => {
            let mut value = template;
            mutate(rng, &mut value);
            let text = serde_json::to_string(&value).unwrap();
            described.push_str(&format!(" json {}", clip(&text)));
            req.header(CONTENT_TYPE, "application/json").body(text)
        }
        Body::Form => {
            let mut pairs = form_pairs(rng, &template);
            if let Some(c) = csrf {
                pairs.push(("csrf".into(), c));
            }
            let text = serde_urlencoded::to_string(&pairs).unwrap();
            described.push_str(&format!(" form {}", clip(&text)));
            req.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(text)
        }
        Body::Multipart => {
            let boundary = "fuzzboundary2021";
            let mut body = Vec::new();
            let mut fields = form_pairs(rng, &template);
            if let Some(c) = csrf {
                fields.push(("csrf".into(), c));
            }
            for (k, v) in fields {
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    )
                    .as_bytes(),
                );
            }
            let file = garbage_file(rng);
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\r\n",
                    rng.pick(&["plan.xlsx", "plan.csv", "plan", "../../x.xlsx", "整改\"照片\r\n.png", ""])
                )
                .as_bytes(),
            );
            body.extend_from_slice(&file);
            if rng.chance(80) {
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            }
            described.push_str(&format!(" multipart of {} bytes", body.len()));
            req.header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
        }
    };
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{described}: no answer ({e:?})"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Ok(Sent {
        what: described,
        status,
        body: clip(&body),
    })
}

fn caller_name(caller: &Caller) -> &'static str {
    match caller {
        Caller::Nobody => "nobody",
        Caller::Bearer(_) => "a bearer token",
        Caller::Page { .. } => "a page session",
    }
}

fn clip(text: &str) -> String {
    if text.len() <= 300 {
        text.to_owned()
    } else {
        let end = (0..=300).rev().find(|&i| text.is_char_boundary(i)).unwrap();
        format!("{}… ({} bytes)", &text[..end], text.len())
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Real cases at several stages, a plan with its work items.
async fn fixtures(app: &TestApp) -> Ids {
    let mut ids = Ids::default();
    for i in 0..3 {
        ids.cases
            .push(app.new_case(&format!("fuzz-case-{i}")).await);
    }
    app.to_rectifying(&ids.cases[1]).await;
    app.to_review(&ids.cases[2]).await;
    let csv = std::fs::read(bihuan_tests::root().join("workflows/plans/shaba-2021.csv")).unwrap();
    let token = app.token("sup").await;
    let resp = app
        .client
        .post(format!(
            "{}/api/v1/plans?file=shaba-2021.csv&name=2021&year=2021",
            app.base
        ))
        .bearer_auth(token)
        .header(CONTENT_TYPE, "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, plans) = app.call("sup", Method::GET, "/api/v1/plans", None).await;
    for plan in plans["items"].as_array().unwrap() {
        let id = plan["id"].as_str().unwrap().to_owned();
        let (_, detail) = app
            .call("sup", Method::GET, &format!("/api/v1/plans/{id}"), None)
            .await;
        ids.tasks.extend(
            detail["items"]
                .as_array()
                .unwrap()
                .iter()
                .take(5)
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        ids.plans.push(id);
    }
    ids
}

async fn no_request_gets_a_server_error(db: &TestDb) {
    let requests = env_u64("BIHUAN_FUZZ_REQUESTS", 2_000);
    let seed = env_u64("BIHUAN_FUZZ_SEED", 2021);
    let start = chrono::DateTime::parse_from_rfc3339("2021-03-01T09:00:00+08:00")
        .unwrap()
        .to_utc();
    let app = Arc::new(api::spawn_with(db, WebConfig::default(), Clock::starting_at(start)).await);
    let ids = Arc::new(fixtures(&app).await);

    let mut callers = vec![
        Caller::Nobody,
        Caller::Bearer(app.channel_token.clone()),
        Caller::Bearer("not-a-token".into()),
    ];
    let metrics = db
        .store
        .add_api_token("fuzz-metrics", TokenScope::MetricsRead, None, start)
        .await
        .unwrap();
    callers.push(Caller::Bearer(metrics));
    for user in ["admin", "sup", "center", "unit", "viewer", "o_center"] {
        callers.push(Caller::Bearer(app.token(user).await));
    }
    for user in ["admin", "sup", "center", "unit"] {
        let mut browser = Browser::signed_in(&app, user).await;
        let home = browser.get("/").await;
        callers.push(Caller::Page {
            cookie: format!(
                "bihuan_session={}",
                browser.cookie("bihuan_session").unwrap()
            ),
            csrf: hidden(&home.html, "csrf").expect("the home page has a form with its token"),
        });
    }
    let callers = Arc::new(callers);

    let (status, doc) = app
        .raw(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut ops = api_ops(&doc, &ids);
    let documented = ops.len();
    assert!(
        documented >= 40,
        "the document lists {documented} operations"
    );
    ops.extend(pages());
    let ops = Arc::new(ops);
    // A fresh connection for every request, redirects not followed: an answer sent before the
    // body was read closes its connection (hyper), and a pooled client would race that close.
    let client = bihuan_tests::http()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut reached = BTreeSet::new();
    let mut next = 0u64;
    // Eight at a time: the races between requests are part of the surface.
    while next < requests {
        let mut batch = tokio::task::JoinSet::new();
        for index in next..(next + 8).min(requests) {
            let (app, ops, callers, ids) = (app.clone(), ops.clone(), callers.clone(), ids.clone());
            let client = client.clone();
            batch.spawn(async move {
                let mut rng = Rng::new(seed, index);
                // Every operation once before any is chosen at random.
                let op = if (index as usize) < ops.len() {
                    &ops[index as usize]
                } else {
                    rng.pick(&ops)
                };
                let sent = send(&app, &client, &mut rng, op, &callers, &ids).await;
                (index, format!("{} {}", op.method, op.path), sent)
            });
        }
        next = (next + 8).min(requests);
        while let Some(done) = batch.join_next().await {
            let (index, op, sent) = done.unwrap();
            match sent {
                Ok(sent) => {
                    *statuses.entry(sent.status.as_u16()).or_default() += 1;
                    if sent.status.is_server_error() {
                        failures.push(format!(
                            "#{index} {}: {} {}",
                            sent.what, sent.status, sent.body
                        ));
                    } else {
                        reached.insert(op);
                    }
                }
                Err(e) => failures.push(format!("#{index} {e}")),
            }
        }
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {requests} requests (seed {seed}) got a server error or no answer:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The app still serves, and the run reached every operation.
    let (status, _) = app.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    if requests as usize >= ops.len() {
        assert_eq!(reached.len(), ops.len(), "every operation was called");
    }
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "some requests got through: {statuses:?}"
    );
    println!("{requests} requests (seed {seed}): {statuses:?}");
}
