//! What the store's test suites share: the workflows, the organization of 沙坝镇, ratings and actions.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // Tests fail loudly on purpose.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bihuan_core::rating::{Channel, Level, Rater, RaterType, Rating};
use bihuan_core::{Actor, Engine, Role};
use bihuan_store::{ActionRequest, NewUnit, NewUser, Store, StoreError, entity};
use bihuan_test_support::TestDb;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub fn engine() -> Engine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    bihuan_store::load_dir(&dir, chrono_tz::Asia::Shanghai).unwrap()
}

pub fn at(day: u32, hour: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day, hour, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

pub fn rating(source_id: &str, level: Level, channel: Channel) -> Rating {
    Rating {
        source: "yukuaiban".into(),
        source_id: source_id.into(),
        project_no: format!("500114-2021-{source_id}"),
        service_code: "11500114MB1234567X4000117001".into(),
        service_name: "城乡居民基本养老保险参保登记".into(),
        unit_code: "shaba-center".into(),
        region_code: "500114112".into(),
        channel,
        level,
        rated_at: at(6, 10),
        assess_number: 1,
        rater: Rater {
            kind: RaterType::Individual,
            real_name: true,
            name: Some("张三".into()),
            phone: Some("13800001234".into()),
            email: None,
        },
        staff: vec!["李四".into()],
        indicators: json!({"overall": 2}).as_object().cloned().unwrap(),
        comment: Some("材料要求反复变化".into()),
    }
}

pub async fn seed_org(store: &Store) {
    let now = at(1, 9);
    for (code, name, parent, email) in [
        ("shaba", "沙坝镇人民政府", None, None),
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
    ] {
        store
            .add_unit(
                &NewUnit {
                    code: code.into(),
                    name: name.into(),
                    parent: parent.map(Into::into),
                    email: email.map(Into::into),
                    // The service center answers for 沙坝镇 (500114112).
                    region: (code == "shaba-center").then(|| "500114112".into()),
                },
                now,
            )
            .await
            .unwrap();
    }
    for (username, role, unit, email) in [
        (
            "zhang",
            Role::CenterStaff,
            "shaba-center",
            "zhang@shaba.example",
        ),
        ("li", Role::UnitStaff, "shaba-social", "li@shaba.example"),
        ("wang", Role::Supervisor, "shaba", "wang@shaba.example"),
    ] {
        store
            .add_user(
                &NewUser {
                    username: username.into(),
                    role,
                    unit: Some(unit.into()),
                    email: Some(email.into()),
                    sms_phone: None,
                },
                "correct horse",
                now,
            )
            .await
            .unwrap();
    }
}

pub fn actor(name: &str) -> Actor {
    let (role, unit) = match name {
        "zhang" => (Role::CenterStaff, "shaba-center"),
        "li" => (Role::UnitStaff, "shaba-social"),
        "wang" => (Role::Supervisor, "shaba"),
        other => panic!("{other}"),
    };
    Actor {
        name: name.into(),
        role,
        unit: Some(unit.into()),
    }
}

pub fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

pub async fn open_case(store: &Store, engine: &Engine, source_id: &str) -> Uuid {
    store
        .record_rating(
            engine,
            &rating(source_id, Level::Dissatisfied, Channel::Mobile),
            at(6, 10),
        )
        .await
        .unwrap()
        .case_id
        .unwrap()
}

/// Takes an action at the case's current version.
pub async fn act(
    store: &Store,
    engine: &Engine,
    case_id: Uuid,
    who: &str,
    action: &str,
    f: Value,
    now: DateTime<Utc>,
) -> Result<entity::case::Model, StoreError> {
    let version = store.case(case_id).await.unwrap().case.version;
    let actor = actor(who);
    let fields = fields(f);
    store
        .apply_action(
            engine,
            &ActionRequest {
                id: case_id,
                scope: &bihuan_store::CaseScope::All,
                version,
                action,
                fields: &fields,
                actor: &actor,
                now,
            },
        )
        .await
        .map(|done| done.case)
}

/// A file attached to a case as an upload records it (the store needs no bytes: the file store is the
/// web's), by 李 of 社保所; answers its id.
pub async fn attach(store: &Store, case_id: Uuid) -> String {
    store
        .add_attachment(
            &bihuan_store::CaseScope::All,
            &bihuan_store::NewAttachment {
                subject: bihuan_store::SubjectKind::Case,
                subject_id: case_id,
                name: "整改前后对比照片.jpg",
                size: 182_044,
                sha256: &"5e".repeat(32),
                content_type: bihuan_core::evidence::FileType::Jpeg,
                uploaded_by: "li",
            },
            at(6, 9),
        )
        .await
        .unwrap()
        .id
        .to_string()
}

/// The fields `f` citing a file newly attached to the case as their `evidence` (整改佐证材料, an
/// appeal's evidence).
pub async fn cited(store: &Store, case_id: Uuid, mut f: Value) -> Value {
    f["evidence"] = json!([attach(store, case_id).await]);
    f
}

/// A store on `db` that records every statement it runs.
pub async fn observed(db: &TestDb) -> (Store, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut store = Store::connect(&db.url).await.unwrap();
    let log = Arc::clone(&seen);
    store.observe_statements(move |info| {
        log.lock().unwrap().push(info.statement.sql.clone());
    });
    (store, seen)
}

/// The statements recorded since the last call.
pub fn taken(seen: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *seen.lock().unwrap())
}

/// A case accepted on 5/6 at 11:00 and transferred to 沙坝镇社会保障服务所 at 12:00.
pub async fn transferred(store: &Store, source_id: &str) -> Uuid {
    let engine = engine();
    let id = open_case(store, &engine, source_id).await;
    act(store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    act(
        store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "shaba-social"}),
        at(6, 12),
    )
    .await
    .unwrap();
    id
}
