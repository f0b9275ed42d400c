//! `serve --demo`: fills an empty database with the organization of 沙坝镇, demo users and a few hundred
//! ratings whose cases stand at every stage of the loop, then prints the logins.

use anyhow::Context;
use bihuan_core::rating::{Channel, Level};
use bihuan_core::rating_input::parse_rating;
use bihuan_core::workflow::FieldKind;
use bihuan_core::{Actor, Engine, Role};
use bihuan_store::{ActionRequest, Clock, Files, NewUnit, NewUser, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The password of every demo account (printed; a demo is not a deployment).
const DEMO_PASSWORD: &str = "bihuan-demo-2021";
const RATINGS: usize = 300;
/// 沙坝镇's 行政区划代码; its 便民服务中心 answers for it.
const REGION: &str = "500114112";
const CENTER: &str = "shaba-center";
/// A unit code some ratings carry that the demo organization does not have (the district's medical
/// insurance hall, whose system sends its own codes): listed at /api/v1/units/unmapped, and its
/// negative ratings wait at 沙坝镇's center.
const UNREGISTERED_UNIT: &str = "500114-ybj-hall";

const UNITS: [(&str, &str, Option<&str>, Option<&str>); 8] = [
    ("qianjiang", "黔江区人民政府", None, None),
    (
        "qianjiang-zzb",
        // As the work plan names it, so that the plan's items land on this unit.
        "区政府职转办",
        Some("qianjiang"),
        Some("zzb@qianjiang.example"),
    ),
    (
        "shaba",
        "黔江区沙坝镇人民政府",
        Some("qianjiang"),
        Some("office@shaba.example"),
    ),
    (
        "shaba-center",
        "沙坝镇便民服务中心",
        Some("shaba"),
        Some("center@shaba.example"),
    ),
    (
        "shaba-social",
        "沙坝镇社会保障服务所",
        Some("shaba"),
        Some("social@shaba.example"),
    ),
    (
        "shaba-civil",
        "沙坝镇民政办",
        Some("shaba"),
        Some("civil@shaba.example"),
    ),
    (
        "shaba-agri",
        "沙坝镇农业服务中心",
        Some("shaba"),
        Some("agri@shaba.example"),
    ),
    (
        "shaba-planning",
        "沙坝镇规划建设管理环保办",
        Some("shaba"),
        Some("planning@shaba.example"),
    ),
];

const USERS: [(&str, Role, Option<&str>); 10] = [
    ("admin", Role::Admin, None),
    ("zhuanban", Role::UnitStaff, Some("qianjiang-zzb")),
    ("duban", Role::Supervisor, Some("shaba")),
    ("quduban", Role::Supervisor, Some("qianjiang")),
    ("zhongxin", Role::CenterStaff, Some("shaba-center")),
    ("shebao", Role::UnitStaff, Some("shaba-social")),
    ("minzheng", Role::UnitStaff, Some("shaba-civil")),
    ("nongye", Role::UnitStaff, Some("shaba-agri")),
    // The town government's own staff: it co-handles most items of its plan (报送配合情况).
    ("zhengban", Role::UnitStaff, Some("shaba")),
    ("chakan", Role::Viewer, Some("shaba")),
];

/// (service code suffix, service name, responsible unit, its staff user).
const SERVICES: [(&str, &str, &str, &str); 8] = [
    (
        "4000117001",
        "城乡居民基本养老保险参保登记",
        "shaba-social",
        "shebao",
    ),
    (
        "4000117002",
        "城乡居民基本医疗保险参保登记",
        "shaba-social",
        "shebao",
    ),
    ("4000117003", "就业创业证申领", "shaba-social", "shebao"),
    (
        "4000121001",
        "最低生活保障金给付",
        "shaba-civil",
        "minzheng",
    ),
    ("4000121002", "临时救助", "shaba-civil", "minzheng"),
    (
        "4000121003",
        "残疾人两项补贴给付",
        "shaba-civil",
        "minzheng",
    ),
    ("4000133001", "耕地地力保护补贴", "shaba-agri", "nongye"),
    (
        "4000133002",
        "农村土地承包经营权流转备案",
        "shaba-agri",
        "nongye",
    ),
];

/// Fills the database when it has no units yet.
pub async fn fill(
    store: &Store,
    engine: &Engine,
    files: &Files,
    clock: &Clock,
) -> anyhow::Result<()> {
    if !store.units().await?.is_empty() {
        if store.user_by_name("admin").await?.is_some() && store.unit("shaba").await?.is_some() {
            print_logins("演示数据已存在，未重复填充");
        } else {
            println!("数据库中已有数据，未填充演示数据");
        }
        return Ok(());
    }
    let now = clock.now();
    for (code, name, parent, email) in UNITS {
        store
            .add_unit(
                &NewUnit {
                    code: code.into(),
                    name: name.into(),
                    parent: parent.map(Into::into),
                    email: email.map(Into::into),
                    region: (code == CENTER).then(|| REGION.into()),
                },
                now,
            )
            .await
            .with_context(|| format!("demo unit {code}"))?;
    }
    for (username, role, unit) in USERS {
        store
            .add_user(
                &NewUser {
                    username: username.into(),
                    role,
                    unit: unit.map(Into::into),
                    email: Some(format!("{username}@shaba.example")),
                    sms_phone: None,
                },
                DEMO_PASSWORD,
                now,
            )
            .await
            .with_context(|| format!("demo user {username}"))?;
    }
    let channel_token = store
        .add_api_token(
            "demo-channel",
            bihuan_store::TokenScope::RatingsWrite,
            None,
            now,
        )
        .await?;
    let mut rng = SplitMix(0x5eed_b1a0_2021);
    let mut cases = 0;
    for i in 0..RATINGS {
        let rated_at = now - Duration::minutes(rng.below(120 * 24 * 60) as i64 + 60);
        let service = SERVICES[rng.below(SERVICES.len() as u64) as usize];
        // Through the same checks as every rating that arrives by the API or a file.
        let sent = demo_rating(&mut rng, i, rated_at, service);
        let rating = parse_rating(&sent, engine.calendar().tz())
            .map_err(|e| anyhow::anyhow!("demo rating {i} is invalid: {e:?}"))?;
        let recorded = store.record_rating(engine, &rating, rated_at).await?;
        if let Some(case_id) = recorded.case_id {
            cases += 1;
            let demo = Demo {
                store,
                engine,
                files,
            };
            advance(&demo, &mut rng, case_id, rated_at, now, service).await?;
        }
    }
    let demo = Demo {
        store,
        engine,
        files,
    };
    cases += demo_paths(&demo, now).await?;
    let plan = demo_plan(store, engine, now).await?;
    println!(
        "已填充演示数据：{} 个单位，{} 个用户，{RATINGS} 条评价，{cases} 件差评工单，工作计划“{}”{} 项工作",
        UNITS.len(),
        USERS.len(),
        plan.plan.name,
        plan.items
    );
    print_logins("演示账号");
    println!("演示渠道令牌（推送评价用）：{channel_token}");
    Ok(())
}

/// The town's 2021 plan (the seed's attachment, shipped in workflows/plans/), its unknown district
/// units created under the district; the items led by 区政府职转办 started and reported on, and the
/// town government's share of those it co-handles reported.
async fn demo_plan(
    store: &Store,
    engine: &Engine,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<bihuan_store::PlanImport> {
    const PLAN: &[u8] = include_bytes!("../../../workflows/plans/shaba-2021.csv");
    let plan = bihuan_store::NewPlan::from_file(
        PLAN,
        Some("shaba-2021.csv"),
        bihuan_store::PlanOptions {
            name: Some("2021年政务服务工作任务分解".into()),
            year: Some(2021),
            parent: Some("qianjiang".into()),
            report_months: None,
        },
        &bihuan_core::Limits::plans(bihuan_core::sheet::DEFAULT_MAX_UPLOAD),
    )
    .map_err(|problems| anyhow::anyhow!("the shipped plan is invalid: {problems:?}"))?;
    let done = store.import_plan(engine, &plan, "admin", now).await?;
    let actor = demo_actor("zhuanban");
    let detail = store
        .plan(done.plan.id, &bihuan_store::CaseScope::All)
        .await?;
    for item in detail
        .items
        .iter()
        .filter(|i| i.lead_units.iter().any(|u| u.code == "qianjiang-zzb"))
        .take(4)
    {
        let mut version = item.task.version;
        let steps = [
            ("start", serde_json::Map::new()),
            (
                "report_progress",
                serde_json::json!({"summary": "已制定工作方案，正在推进。", "percent": 30})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        ];
        let town_shares = item.co_units.iter().any(|u| u.code == "shaba");
        let share = (
            "report_share",
            serde_json::json!({"summary": "镇政府已组织村（社区）便民服务站落实，完成宣传培训3场。"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        for (action, fields) in steps.into_iter().chain(town_shares.then_some(share)) {
            let by = if action == "report_share" {
                demo_actor("zhengban")
            } else {
                actor.clone()
            };
            let request = bihuan_store::ActionRequest {
                id: item.task.id,
                scope: &bihuan_store::CaseScope::All,
                version,
                action,
                fields: &fields,
                actor: &by,
                now,
            };
            version = store
                .apply_task_action(engine, &request)
                .await?
                .item
                .task
                .version;
        }
    }
    Ok(done)
}

fn print_logins(title: &str) {
    println!("{title}（密码均为 {DEMO_PASSWORD}）：");
    for (username, role, unit) in USERS {
        println!(
            "  {username:<10} {}{}",
            role.label(),
            unit.map(|u| format!("（{u}）")).unwrap_or_default()
        );
    }
}

/// A rating as a channel would send it (docs/API.md's JSON).
fn demo_rating(
    rng: &mut SplitMix,
    i: usize,
    rated_at: DateTime<Utc>,
    service: (&str, &str, &str, &str),
) -> Value {
    let roll = rng.below(100);
    let level = match roll {
        0..=49 => Level::VerySatisfied,
        50..=74 => Level::Satisfied,
        75..=84 => Level::BasicallySatisfied,
        85..=94 => Level::Dissatisfied,
        _ => Level::VeryDissatisfied,
    };
    let channels = [
        Channel::Mobile,
        Channel::Mobile,
        Channel::Pc,
        Channel::Qr,
        Channel::HallPad,
        Channel::HallOther,
        Channel::Phone,
        Channel::Sms,
        Channel::Default,
    ];
    let channel = channels[rng.below(channels.len() as u64) as usize];
    let real_name = rng.below(10) < 8;
    let surnames = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄"];
    let comments = [
        "材料要求反复变化",
        "等候时间太长",
        "工作人员解释不清",
        "网上办理系统卡顿",
        "办理很快，态度很好",
        "一次就办好了",
    ];
    let legal = rng.below(10) == 0;
    let name = format!(
        "{}某某",
        surnames[rng.below(surnames.len() as u64) as usize]
    );
    let phone = format!("138{:08}", rng.below(100_000_000));
    let comment = (level.is_negative() || rng.below(3) == 0).then(|| {
        comments[if level.is_negative() {
            rng.below(4)
        } else {
            4 + rng.below(2)
        } as usize]
    });
    json!({
        "source": "demo",
        "source_id": format!("DEMO-{i:05}"),
        "project_no": format!("500114-2021-{i:05}"),
        "service_code": format!("11500114MB1234567X{}", service.0),
        "service_name": service.1,
        "unit_code": if i % 15 == 7 { UNREGISTERED_UNIT } else { CENTER },
        "region_code": REGION,
        "channel": channel.as_str(),
        "level": level.as_str(),
        "rated_at": rated_at.to_rfc3339(),
        "assess_number": 1,
        "rater": {
            "type": if legal { "legal_person" } else { "individual" },
            "real_name": real_name,
            "name": real_name.then_some(name),
            "phone": real_name.then_some(phone),
        },
        "staff": ["窗口工作人员"],
        "comment": comment,
    })
}

/// What the demo's cases are filled with.
struct Demo<'a> {
    store: &'a Store,
    engine: &'a Engine,
    files: &'a Files,
}

impl Demo<'_> {
    /// Takes `action` on the case as demo user `who` at `at`, at its current version, with the
    /// evidence it needs attached first.
    async fn take(
        &self,
        case_id: Uuid,
        who: &str,
        action: &str,
        fields: &Value,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let version = self.store.case(case_id).await?.case.version;
        let fields = self
            .cited(
                case_id,
                action,
                fields.as_object().cloned().unwrap_or_default(),
                who,
                at,
            )
            .await?;
        self.store
            .apply_action(
                self.engine,
                &ActionRequest {
                    id: case_id,
                    scope: &bihuan_store::CaseScope::All,
                    version,
                    action,
                    fields: &fields,
                    actor: &demo_actor(who),
                    now: at,
                },
            )
            .await?;
        Ok(())
    }

    /// `fields` of `action` on the case, with a file attached for the evidence the workflow asks
    /// of it (an appeal, a rectification whose outcome is 已整改, 限期整改完成), uploaded by `who`.
    async fn cited(
        &self,
        case_id: Uuid,
        action: &str,
        mut fields: Map<String, Value>,
        who: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Map<String, Value>> {
        let Some(def) = self.engine.workflow(bihuan_core::NEGATIVE_RATING) else {
            return Ok(fields);
        };
        let Some(action) = def.action(action) else {
            return Ok(fields);
        };
        for f in &action.fields {
            let required = f.required
                || f.required_when.as_ref().is_some_and(|w| {
                    fields.get(&w.field).and_then(Value::as_str) == Some(w.equals.as_str())
                });
            if matches!(f.kind, FieldKind::Evidence { .. }) && required {
                let id = self.attach(case_id, &action.label, who, at).await?;
                fields.insert(f.name.clone(), json!([id]));
            }
        }
        Ok(fields)
    }

    /// Attaches a one-page PDF to the case (kept in the file store, recorded on the case) as
    /// `who`; answers its id.
    async fn attach(
        &self,
        case_id: Uuid,
        what: &str,
        who: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Uuid> {
        let pdf = demo_pdf(&format!("Bihuan demo evidence - case {case_id} - {at}"));
        let sha256 = hex::encode(Sha256::digest(&pdf));
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), &pdf)?;
        let name = format!("{what}佐证材料.pdf");
        let row = self
            .store
            .keep_attachment(
                self.files,
                file.path(),
                &bihuan_store::CaseScope::All,
                &bihuan_store::NewAttachment {
                    subject: bihuan_store::SubjectKind::Case,
                    subject_id: case_id,
                    name: &name,
                    size: pdf.len() as u64,
                    sha256: &sha256,
                    content_type: bihuan_core::evidence::FileType::Pdf,
                    uploaded_by: who,
                },
                at,
            )
            .await?;
        Ok(row.id)
    }
}

/// A one-page PDF saying `line` (ASCII), with a correct cross-reference table.
fn demo_pdf(line: &str) -> Vec<u8> {
    let text: String = line
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '(' | ')' | '\\'))
        .collect();
    let content = format!("BT /F1 11 Tf 24 60 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 120] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Takes a case through the loop, step by step, as far as its age allows and a die decides.
async fn advance(
    demo: &Demo<'_>,
    rng: &mut SplitMix,
    case_id: Uuid,
    opened: DateTime<Utc>,
    now: DateTime<Utc>,
    service: (&str, &str, &str, &str),
) -> anyhow::Result<()> {
    let (_, _, unit, unit_user) = service;
    let stop_after = rng.below(10);
    let steps: Vec<(&str, &str, Value)> = vec![
        ("zhongxin", "accept", json!({})),
        ("zhongxin", "transfer", json!({"unit": unit})),
        (
            unit_user,
            "rectify",
            json!({"finding": "partly_true", "measures": "已向办事群众说明办理要求，并优化一次性告知单", "outcome": "rectified"}),
        ),
        (
            unit_user,
            "feedback",
            json!({
                "method": "phone",
                "summary": "已电话回访，告知整改结果",
                "public_reply": DEMO_PUBLIC_REPLY,
            }),
        ),
        (
            "zhongxin",
            "review_satisfied",
            json!({"level": "satisfied"}),
        ),
    ];
    let mut at = opened;
    for (i, (who, action, fields)) in steps.into_iter().enumerate() {
        if i as u64 > stop_after {
            break;
        }
        at += Duration::hours(2 + rng.below(30) as i64);
        if at >= now {
            break;
        }
        match demo.take(case_id, who, action, &fields, at).await {
            Ok(()) => {}
            Err(e) if matches!(e.downcast_ref(), Some(StoreError::Rejected(_))) => {
                tracing::debug!(case = %case_id, error = %e, "demo step skipped");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn demo_actor(username: &str) -> Actor {
    let (role, unit) = USERS
        .iter()
        .find(|(u, _, _)| *u == username)
        .map_or((Role::Viewer, None), |(_, role, unit)| (*role, *unit));
    Actor {
        name: username.into(),
        role,
        unit: unit.map(Into::into),
    }
}

/// A small deterministic generator (SplitMix64): the demo is the same every time.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The demo's public reply (公开答复): what was done, in words fit for publication.
const DEMO_PUBLIC_REPLY: &str =
    "经核实，窗口已优化一次性告知单，明确所需材料；并对窗口人员开展服务规范培训。";

/// Who takes which action with which fields.
type DemoStep = (&'static str, &'static str, Value);

/// One case down each path of the honest rules, so a first-time user finds them on the pages: a
/// unit's request for more time waiting on the 督查 page, an appeal rejected (the case's one appeal
/// used), a loop escalated after two 不满意 reviews and ended by 认定办结, and a closed loop the rater
/// came back to with a negative 追评 (drawn first for the audit).
async fn demo_paths(demo: &Demo<'_>, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let (store, engine) = (demo.store, demo.engine);
    let rectify = json!({"finding": "true", "measures": "已向办事群众说明办理要求，并优化一次性告知单", "outcome": "rectified"});
    let feedback = json!({
        "method": "phone",
        "summary": "已电话回访，告知整改结果",
        "public_reply": DEMO_PUBLIC_REPLY,
    });
    // 建立台账、限期整改: committed to a day two months on.
    let due = (engine.calendar().local_date(now) + Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    let paths: [(&str, Vec<DemoStep>); 5] = [
        (
            "限期整改",
            vec![
                (
                    "shebao",
                    "rectify",
                    json!({
                        "finding": "true",
                        "measures": "自助终端不支持社保卡读卡，已建立台账，申请区级统一改造",
                        "outcome": "scheduled",
                        "due": due,
                        "category": "facilities",
                    }),
                ),
                ("shebao", "feedback", feedback.clone()),
            ],
        ),
        (
            "申请延期",
            vec![(
                "shebao",
                "request_extension",
                json!({"days": 3, "reason": "需区医保局协助核实参保记录"}),
            )],
        ),
        (
            "申诉驳回",
            vec![
                (
                    "shebao",
                    "appeal",
                    json!({"category": "unrelated", "reason": "该事项由区医保局办理"}),
                ),
                (
                    "duban",
                    "reject_appeal",
                    json!({"reason": "窗口受理属本单位职责，请继续整改"}),
                ),
            ],
        ),
        (
            "认定办结",
            vec![
                ("shebao", "rectify", rectify.clone()),
                ("shebao", "feedback", feedback.clone()),
                (
                    "zhongxin",
                    "review_unsatisfied",
                    json!({"reason": "仍要求减免材料"}),
                ),
                ("shebao", "rectify", rectify.clone()),
                ("shebao", "feedback", feedback.clone()),
                (
                    "zhongxin",
                    "review_unsatisfied",
                    json!({"reason": "仍要求减免材料"}),
                ),
                (
                    "duban",
                    "conclude",
                    json!({"reason": "已两次整改并答复，诉求超出政策规定，认定办结"}),
                ),
            ],
        ),
        (
            "追评",
            vec![
                ("shebao", "rectify", rectify),
                ("shebao", "feedback", feedback),
                (
                    "zhongxin",
                    "review_satisfied",
                    json!({"level": "satisfied"}),
                ),
            ],
        ),
    ];
    let service = SERVICES[0];
    let opened = paths.len();
    for (n, (name, steps)) in paths.into_iter().enumerate() {
        // Opened three hours ago, a step every few minutes since: all within every time limit.
        let mut at = now - Duration::hours(3);
        let mut sent = demo_rating(&mut SplitMix(n as u64), 10_000 + n, at, service);
        sent["level"] = json!("dissatisfied");
        sent["channel"] = json!("mobile");
        sent["unit_code"] = json!(CENTER);
        sent["rater"]["real_name"] = json!(true);
        sent["rater"]["name"] = json!("演示群众");
        sent["rater"]["phone"] = json!("13800000000");
        sent["comment"] = json!(format!("演示：{name}"));
        let rating = parse_rating(&sent, engine.calendar().tz())
            .map_err(|e| anyhow::anyhow!("demo rating {name} is invalid: {e:?}"))?;
        let case_id = store
            .record_rating(engine, &rating, at)
            .await?
            .case_id
            .with_context(|| format!("demo case {name} was not opened"))?;
        let opening = [
            ("zhongxin", "accept", json!({})),
            ("zhongxin", "transfer", json!({"unit": service.2})),
        ];
        for (who, action, fields) in opening.into_iter().chain(steps) {
            at += Duration::minutes(10);
            demo.take(case_id, who, action, &fields, at)
                .await
                .with_context(|| format!("demo case {name}: {action}"))?;
        }
        if name == "追评" {
            let mut later = sent.clone();
            later["source_id"] = json!(format!("DEMO-{:05}-2", 10_000 + n));
            later["assess_number"] = json!(2);
            later["level"] = json!("very_dissatisfied");
            later["rated_at"] = json!((at + Duration::minutes(10)).to_rfc3339());
            later["comment"] = json!("回访后发现仍需重复提交材料");
            let later = parse_rating(&later, engine.calendar().tz())
                .map_err(|e| anyhow::anyhow!("demo 追评 is invalid: {e:?}"))?;
            store
                .record_rating(engine, &later, at + Duration::minutes(10))
                .await?;
        }
    }
    Ok(opened)
}
