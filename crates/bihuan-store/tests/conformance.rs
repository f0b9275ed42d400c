//! The store's conformance suite: every scenario runs against SQLite (a temporary file) and against
//! PostgreSQL (a fresh database under `BIHUAN_TEST_PG_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::path::Path;

use bihuan_core::rating::{Channel, Level, Rater, RaterType, Rating};
use bihuan_core::{Actor, Role};
use bihuan_store::{ActionRequest, NewUnit, NewUser, OutboxStatus, Store, StoreError, entity};
use bihuan_test_support::TestDb;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use common::{act, actor, at, cited, engine, fields, open_case, rating, seed_org};

bihuan_test_support::on_both_databases!(
    a_full_loop_closes_the_case_and_the_chain_verifies,
    ratings_are_idempotent_and_only_non_default_negative_ones_open_cases,
    two_concurrent_actions_on_the_same_version_exactly_one_wins,
    a_stale_version_is_a_conflict_and_writes_nothing,
    a_refused_action_writes_nothing,
    a_failure_after_the_event_insert_leaves_neither_event_nor_state_change,
    an_event_edited_afterwards_is_found_by_verify_chain,
    a_deleted_event_is_found_by_verify_chain,
    units_and_users_are_checked_and_passwords_hashed,
    migrations_go_down_and_up_again,
    provisional_deadlines_are_recomputed_when_the_year_is_added,
    a_batch_stores_exactly_what_a_single_rating_stores,
    a_reminder_marks_the_case_and_writes_its_row_once_however_many_finders_run,
    the_metric_sums_always_equal_a_recomputation_from_the_raw_rows,
);

async fn count<E>(store: &Store) -> u64
where
    E: EntityTrait,
    E::Model: Sync,
{
    E::find().count(store.connection()).await.unwrap()
}

async fn a_full_loop_closes_the_case_and_the_chain_verifies(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "0001").await;
    let opened = store.case(id).await.unwrap();
    assert_eq!(opened.case.state, "received");
    assert_eq!(opened.events.len(), 1);
    assert_eq!(opened.events[0].action, "open");
    // Opened Thursday 2021-05-06 with 1 working day: ends at 24:00 on Friday 05-07.
    assert_eq!(opened.case.deadline, Some(at(8, 0)));

    act(store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    let c = act(
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
    assert_eq!(
        (c.state.as_str(), c.unit_code.as_deref(), c.version),
        ("rectifying", Some("shaba-social"), 3)
    );
    // Thursday 05-06 + 5 working days: 07, 08 (make-up Saturday), 10, 11, 12.
    assert_eq!(c.deadline, Some(at(13, 0)));
    let mail = entity::outbox::Entity::find()
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].kind, "case_assigned");
    assert_eq!(
        mail[0].recipients,
        json!(["li@shaba.example", "social@shaba.example"])
    );
    assert!(mail[0].subject.contains("城乡居民基本养老保险参保登记"));

    act(
        store,
        &engine,
        id,
        "li",
        "rectify",
        cited(
            store,
            id,
            json!({"finding": "partly_true", "measures": "一次性告知", "outcome": "rectified"}),
        )
        .await,
        at(7, 9),
    )
    .await
    .unwrap();
    act(
        store,
        &engine,
        id,
        "li",
        "feedback",
        json!({"method": "phone", "summary": "已电话回访"}),
        at(7, 10),
    )
    .await
    .unwrap();
    let c = store.case(id).await.unwrap().case;
    assert_eq!(
        (c.timer_action.as_deref(), c.timer_at),
        (Some("review_timeout"), c.deadline)
    );
    let c = act(
        store,
        &engine,
        id,
        "zhang",
        "review_satisfied",
        json!({"level": "satisfied"}),
        at(8, 9),
    )
    .await
    .unwrap();
    assert_eq!(c.state, "closed");
    assert_eq!(c.closed_at, Some(at(8, 9)));
    assert_eq!((c.deadline, c.timer_at), (None, None));

    let detail = store.case(id).await.unwrap();
    let actions: Vec<&str> = detail.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "open",
            "accept",
            "transfer",
            "rectify",
            "feedback",
            "review_satisfied"
        ]
    );
    // The rectification records its evidence with the file's name, size and SHA-256 (in the chain),
    // keys in canonical order.
    let recorded: Value = serde_json::from_str(&detail.events[3].fields).unwrap();
    let file = &recorded["evidence"][0];
    assert!(file["id"].is_string(), "{recorded}");
    assert_eq!(
        detail.events[3].fields,
        format!(
            r#"{{"evidence":[{{"id":{},"name":"整改前后对比照片.jpg","sha256":"{}","size":182044}}],"finding":"partly_true","measures":"一次性告知","outcome":"rectified"}}"#,
            file["id"],
            "5e".repeat(32)
        )
    );
    assert_eq!(detail.events[4].actor, "li");
    let report = store.verify_chain().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, 6);
}

async fn ratings_are_idempotent_and_only_non_default_negative_ones_open_cases(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    let first = store
        .record_rating(
            &engine,
            &rating("A1", Level::VeryDissatisfied, Channel::Qr),
            at(6, 10),
        )
        .await
        .unwrap();
    assert!(!first.duplicate && first.case_id.is_some());
    let again = store
        .record_rating(
            &engine,
            &rating("A1", Level::VeryDissatisfied, Channel::Qr),
            at(6, 11),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.rating_id, again.case_id, again.duplicate),
        (first.rating_id, first.case_id, true)
    );
    let default = store
        .record_rating(
            &engine,
            &rating("A2", Level::Dissatisfied, Channel::Default),
            at(6, 10),
        )
        .await
        .unwrap();
    assert_eq!(
        default.case_id, None,
        "a system default rating never opens a case"
    );
    let good = store
        .record_rating(
            &engine,
            &rating("A3", Level::Satisfied, Channel::Pc),
            at(6, 10),
        )
        .await
        .unwrap();
    assert_eq!(good.case_id, None);
    assert_eq!(count::<entity::rating::Entity>(store).await, 3);
    assert_eq!(count::<entity::case::Entity>(store).await, 1);
    assert_eq!(count::<entity::event::Entity>(store).await, 1);
    let stored = entity::rating::Entity::find_by_id(first.rating_id)
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            stored.level.as_str(),
            stored.channel.as_str(),
            stored.negative
        ),
        ("very_dissatisfied", "qr", true)
    );
    assert_eq!(stored.rated_at, at(6, 10));
    assert_eq!(stored.indicators, json!({"overall": 2}));
    assert_eq!(stored.rater_phone.as_deref(), Some("13800001234"));
}

async fn two_concurrent_actions_on_the_same_version_exactly_one_wins(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "C1").await;
    let empty = Map::new();
    let zhang = actor("zhang");
    let request = ActionRequest {
        id,
        scope: &bihuan_store::CaseScope::All,
        version: 1,
        action: "accept",
        fields: &empty,
        actor: &zhang,
        now: at(6, 11),
    };
    let (a, b) = tokio::join!(
        store.apply_action(&engine, &request),
        store.apply_action(&engine, &request)
    );
    let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(StoreError::Conflict {
                    expected: 1,
                    actual: 2
                })
            )
        })
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{a:?} {b:?}");
    let detail = store.case(id).await.unwrap();
    assert_eq!(
        (
            detail.case.version,
            detail.case.event_count,
            detail.events.len()
        ),
        (2, 2, 2)
    );
    assert!(store.verify_chain().await.unwrap().ok);

    // Many racers in separate tasks: still exactly one winner per version.
    let engine = std::sync::Arc::new(engine);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, engine) = (store.clone(), engine.clone());
        tasks.spawn(async move {
            let unit = fields(json!({"unit": "shaba-social"}));
            let zhang = actor("zhang");
            let request = ActionRequest {
                id,
                scope: &bihuan_store::CaseScope::All,
                version: 2,
                action: "transfer",
                fields: &unit,
                actor: &zhang,
                now: at(6, 12),
            };
            store.apply_action(&engine, &request).await
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict { .. }))),
        "{results:?}"
    );
    assert_eq!(store.case(id).await.unwrap().events.len(), 3);
}

async fn a_stale_version_is_a_conflict_and_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "S1").await;
    act(store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    let empty = fields(json!({"unit": "shaba-social"}));
    let zhang = actor("zhang");
    let stale = ActionRequest {
        id,
        scope: &bihuan_store::CaseScope::All,
        version: 1,
        action: "transfer",
        fields: &empty,
        actor: &zhang,
        now: at(6, 12),
    };
    let err = store.apply_action(&engine, &stale).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                actual: 2
            }
        ),
        "{err:?}"
    );
    let detail = store.case(id).await.unwrap();
    assert_eq!(
        (detail.case.state.as_str(), detail.events.len()),
        ("accepted", 2)
    );
    let missing = ActionRequest {
        id: Uuid::now_v7(),
        scope: &bihuan_store::CaseScope::All,
        version: 1,
        ..stale
    };
    assert!(matches!(
        store.apply_action(&engine, &missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn a_refused_action_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "R1").await;
    let err = act(
        store,
        &engine,
        id,
        "li",
        "rectify",
        cited(
            store,
            id,
            json!({"finding": "true", "measures": "x", "outcome": "rectified"}),
        )
        .await,
        at(6, 11),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref e) if e.code() == "action_not_allowed_in_state"),
        "{err:?}"
    );
    act(store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    let err = act(
        store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "nowhere"}),
        at(6, 12),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref field, .. } if field == "unit"),
        "{err:?}"
    );
    let err = act(
        store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({}),
        at(6, 12),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref e) if e.field() == Some("unit")),
        "{err:?}"
    );
    let detail = store.case(id).await.unwrap();
    assert_eq!(
        (
            detail.case.state.as_str(),
            detail.case.version,
            detail.events.len()
        ),
        ("accepted", 2, 2)
    );
    assert_eq!(count::<entity::outbox::Entity>(store).await, 0);
}

async fn a_failure_after_the_event_insert_leaves_neither_event_nor_state_change(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "F1").await;
    act(store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    // The outbox row is written after the case update and the event: make that write fail.
    let (install, remove) = match store.backend() {
        DatabaseBackend::Sqlite => (
            vec![
                "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            ],
            "DROP TRIGGER fail_outbox",
        ),
        _ => (
            vec![
                "CREATE FUNCTION fail_outbox() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END; $$ LANGUAGE plpgsql",
                "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox()",
            ],
            "DROP TRIGGER fail_outbox ON outbox",
        ),
    };
    for sql in install {
        store.connection().execute_unprepared(sql).await.unwrap();
    }
    let err = act(
        store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "shaba-social"}),
        at(6, 12),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let detail = store.case(id).await.unwrap();
    assert_eq!(
        (
            detail.case.state.as_str(),
            detail.case.version,
            detail.case.unit_code.clone()
        ),
        ("accepted", 2, None)
    );
    assert_eq!(detail.events.len(), 2, "the event insert was rolled back");
    assert_eq!(count::<entity::event::Entity>(store).await, 2);
    assert_eq!(count::<entity::outbox::Entity>(store).await, 0);
    assert!(store.verify_chain().await.unwrap().ok);

    store.connection().execute_unprepared(remove).await.unwrap();
    let c = act(
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
    assert_eq!((c.state.as_str(), c.version), ("rectifying", 3));
    assert!(store.verify_chain().await.unwrap().ok);
}

async fn an_event_edited_afterwards_is_found_by_verify_chain(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let clean = open_case(store, &engine, "E0").await;
    let id = open_case(store, &engine, "E1").await;
    for (who, action, f) in [
        ("zhang", "accept", json!({})),
        ("zhang", "transfer", json!({"unit": "shaba-social"})),
        (
            "li",
            "appeal",
            cited(
                store,
                id,
                json!({"category": "malicious", "reason": "恶意差评"}),
            )
            .await,
        ),
    ] {
        act(store, &engine, id, who, action, f, at(6, 12))
            .await
            .unwrap();
    }
    act(
        store,
        &engine,
        clean,
        "zhang",
        "accept",
        json!({}),
        at(6, 12),
    )
    .await
    .unwrap();
    assert!(store.verify_chain().await.unwrap().ok);
    let appeal = store.case(id).await.unwrap().events[3].clone();
    assert_eq!(appeal.action, "appeal");
    store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE events SET fields = '{{\"category\":\"mistaken\",\"reason\":\"恶意差评\"}}' WHERE id = {}",
            appeal.id
        ))
        .await
        .unwrap();
    let report = store.verify_chain().await.unwrap();
    assert!(!report.ok);
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.case_id, broken.seq), (id, 4));
    assert!(
        broken.reason.contains("does not match its hash"),
        "{}",
        broken.reason
    );

    // Changing the actor or the time is found just the same.
    store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE events SET fields = '{}' WHERE id = {}",
            appeal.fields, appeal.id
        ))
        .await
        .unwrap();
    assert!(store.verify_chain().await.unwrap().ok);
    store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE events SET actor = 'zhao' WHERE id = {}",
            appeal.id
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .verify_chain()
            .await
            .unwrap()
            .first_broken
            .unwrap()
            .seq,
        4
    );
}

async fn a_deleted_event_is_found_by_verify_chain(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let id = open_case(store, &engine, "D1").await;
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
    let last = store.case(id).await.unwrap().events[2].id;
    store
        .connection()
        .execute_unprepared(&format!("DELETE FROM events WHERE id = {last}"))
        .await
        .unwrap();
    let report = store.verify_chain().await.unwrap();
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.case_id, broken.seq), (id, 3));
    let middle = store.case(id).await.unwrap().events[1].id;
    store
        .connection()
        .execute_unprepared(&format!("DELETE FROM events WHERE id = {middle}"))
        .await
        .unwrap();
    assert_eq!(
        store
            .verify_chain()
            .await
            .unwrap()
            .first_broken
            .unwrap()
            .seq,
        2
    );
}

async fn units_and_users_are_checked_and_passwords_hashed(db: &TestDb) {
    let store = &db.store;
    seed_org(store).await;
    let now = at(1, 9);
    let unit = |code: &str, parent: Option<&str>| NewUnit {
        code: code.into(),
        name: "某单位".into(),
        parent: parent.map(Into::into),
        email: None,
        region: None,
    };
    assert!(
        matches!(store.add_unit(&unit("x", Some("nowhere")), now).await, Err(StoreError::Invalid { ref field, .. }) if field == "parent")
    );
    assert!(matches!(
        store.add_unit(&unit("shaba", None), now).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(
        matches!(store.add_unit(&unit("有空格 的", None), now).await, Err(StoreError::Invalid { ref field, .. }) if field == "code")
    );
    let bad_mail = NewUnit {
        email: Some("not-an-address".into()),
        ..unit("y", None)
    };
    assert!(
        matches!(store.add_unit(&bad_mail, now).await, Err(StoreError::Invalid { ref field, .. }) if field == "email")
    );

    let user = |name: &str, role: Role, unit: Option<&str>| NewUser {
        username: name.into(),
        role,
        unit: unit.map(Into::into),
        email: None,
        sms_phone: None,
    };
    assert!(matches!(
        store
            .add_user(&user("zhang", Role::Viewer, None), "long enough 12", now)
            .await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(
        matches!(store.add_user(&user("a", Role::UnitStaff, None), "long enough 12", now).await, Err(StoreError::Invalid { ref field, .. }) if field == "unit")
    );
    assert!(
        matches!(store.add_user(&user("b", Role::UnitStaff, Some("nowhere")), "long enough 12", now).await, Err(StoreError::Invalid { ref field, .. }) if field == "unit")
    );
    assert!(
        matches!(store.add_user(&user("c", Role::Rater, None), "long enough 12", now).await, Err(StoreError::Invalid { ref field, .. }) if field == "role")
    );
    assert!(matches!(
        store
            .add_user(&user("d", Role::Viewer, None), "elevenchars", now)
            .await,
        Err(StoreError::WeakPassword { min: 12 })
    ));
    let admin = store
        .add_user(&user("admin", Role::Admin, None), "s3cret-passphrase", now)
        .await
        .unwrap();
    assert!(admin.password_hash.starts_with("$argon2id$"));
    assert!(!admin.password_hash.contains("s3cret"));
    assert!(bihuan_store::verify_password(
        &admin.password_hash,
        "s3cret-passphrase"
    ));
    assert!(!bihuan_store::verify_password(
        &admin.password_hash,
        "wrong"
    ));
    assert_eq!(
        *store.user_by_name("admin").await.unwrap().unwrap().role,
        Role::Admin
    );
}

async fn migrations_go_down_and_up_again(db: &TestDb) {
    let store = &db.store;
    use sea_orm_migration::MigratorTrait;
    bihuan_migration::Migrator::down(store.connection(), None)
        .await
        .unwrap();
    assert!(
        store
            .connection()
            .execute_unprepared("SELECT 1 FROM cases")
            .await
            .is_err()
    );
    bihuan_migration::Migrator::up(store.connection(), None)
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), 0, "nothing left to apply");
    let engine = engine();
    seed_org(store).await;
    open_case(store, &engine, "M1").await;
}

async fn provisional_deadlines_are_recomputed_when_the_year_is_added(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    // Opened Thursday 2027-02-04 10:00, a year the shipped calendar does not know yet.
    let opened_at = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2027, 2, 4, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let mut r = rating("P1", Level::Dissatisfied, Channel::Pc);
    r.rated_at = opened_at;
    let id = store
        .record_rating(&engine, &r, opened_at)
        .await
        .unwrap()
        .case_id
        .unwrap();
    let version = store.case(id).await.unwrap().case.version;
    act(store, &engine, id, "zhang", "accept", json!({}), opened_at)
        .await
        .unwrap();
    let c = act(
        store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "shaba-social"}),
        opened_at,
    )
    .await
    .unwrap();
    // Provisionally Mon-Fri: 02-05, 08, 09, 10, 11.
    let provisional_end = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2027, 2, 12, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        (c.deadline, c.deadline_provisional),
        (Some(provisional_end), true)
    );
    assert_eq!(
        store
            .recompute_provisional_deadlines(&engine, opened_at)
            .await
            .unwrap(),
        0,
        "nothing changes without new data"
    );

    // The State Council publishes 2027 (a made-up schedule for the test): 02-06..02-12 off, Sunday 02-07 worked.
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    std::fs::create_dir(dir.path().join("calendars")).unwrap();
    for f in ["negative-rating.toml", "work-plan-task.toml"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(
        src.join("calendars/cn-mainland-2021-2026.toml"),
        dir.path().join("calendars/a.toml"),
    )
    .unwrap();
    let holidays: Vec<String> = (6..=12)
        .filter(|d| *d != 7)
        .map(|d| format!("{{ date = 2027-02-{d:02}, name = \"春节\" }}"))
        .collect();
    std::fs::write(
        dir.path().join("calendars/b.toml"),
        format!("[years.2027]\nholidays = [{}]\nworkdays = [{{ date = 2027-02-07, name = \"春节调休上班\" }}]\n", holidays.join(", ")),
    )
    .unwrap();
    let updated = bihuan_store::load_dir(dir.path(), chrono_tz::Asia::Shanghai).unwrap();
    // The state's deadline and the overall limit (整改反馈时限, 15 working days from the opening:
    // provisionally Thu 2/25).
    let provisional_overall = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2027, 2, 26, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let c = store.case(id).await.unwrap().case;
    assert_eq!(
        (c.overall_deadline, c.overall_provisional),
        (Some(provisional_overall), true)
    );
    assert_eq!(
        store
            .recompute_provisional_deadlines(&updated, opened_at)
            .await
            .unwrap(),
        2
    );
    let c = store.case(id).await.unwrap().case;
    // 02-05 (Fri), 02-07 (make-up Sunday), then 02-15, 16, 17.
    let official_end = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2027, 2, 18, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        (c.deadline, c.deadline_provisional),
        (Some(official_end), false)
    );
    // 02-05, 02-07, 02-15 … 02-19, 02-22 … 02-26, 03-01, 02, 03.
    let official_overall = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2027, 3, 4, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        (c.overall_deadline, c.overall_provisional),
        (Some(official_overall), false)
    );
    assert_eq!(
        c.version,
        version + 4,
        "each recomputation is a change like any other"
    );
}

/// The bulk path (PostgreSQL `COPY`, SQLite multi-row inserts) and the single-rating path store the same
/// values: awkward text (tabs, newlines, backslashes, quotes, empty), absent fields, JSON, timestamps.
async fn a_batch_stores_exactly_what_a_single_rating_stores(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    let mut odd = rating("ODD", Level::VeryDissatisfied, Channel::Pc);
    odd.comment = Some("第一行\t制表\n第二行\r\\反斜杠 \"引号\" \\N".into());
    odd.service_name = String::new();
    odd.rater = Rater {
        kind: RaterType::LegalPerson,
        real_name: false,
        name: None,
        phone: None,
        email: Some("a@b.example".into()),
    };
    odd.staff = vec![];
    odd.indicators = json!({"制度": "\t\\", "n": null, "deep": {"x": [1, 2.5]}})
        .as_object()
        .cloned()
        .unwrap();
    odd.rated_at = at(6, 10) + chrono::Duration::microseconds(123_456);
    let plain = rating("PLAIN", Level::Satisfied, Channel::Mobile);
    let now = at(7, 9) + chrono::Duration::microseconds(654_321);
    for r in [&odd, &plain] {
        store.record_rating(&engine, r, now).await.unwrap();
    }
    let again: Vec<Rating> = [&odd, &plain]
        .iter()
        .map(|r| Rating {
            source: "bulk".into(),
            ..(*r).clone()
        })
        .collect();
    let outcome = store
        .record_ratings_batch(&engine, &again, now)
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.cases_opened), (2, 1));
    let rows = entity::rating::Entity::find()
        .all(store.connection())
        .await
        .unwrap();
    for source_id in ["ODD", "PLAIN"] {
        let mut pair: Vec<entity::rating::Model> = rows
            .iter()
            .filter(|r| r.source_id == source_id)
            .cloned()
            .collect();
        assert_eq!(pair.len(), 2);
        let mut bulk = pair.pop().unwrap();
        let single = pair.pop().unwrap();
        bulk.id = single.id;
        bulk.source = single.source.clone();
        assert_eq!(bulk, single, "{source_id}");
    }
    let cases = entity::case::Entity::find()
        .order_by_asc(entity::case::Column::Id)
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(cases.len(), 2);
    let (mut bulk, single) = (cases[1].clone(), cases[0].clone());
    (bulk.id, bulk.rating_id, bulk.head_hash) =
        (single.id, single.rating_id, single.head_hash.clone());
    assert_eq!(bulk, single);
    let events = entity::event::Entity::find()
        .order_by_asc(entity::event::Column::Id)
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            &events[0].action,
            &events[0].to_state,
            &events[0].fields,
            events[0].at
        ),
        (
            &events[1].action,
            &events[1].to_state,
            &events[1].fields,
            events[1].at
        )
    );
    let report = store.verify_chain().await.unwrap();
    assert!(report.ok, "{report:?}");
}

fn local(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

async fn outbox_rows(store: &Store) -> Vec<entity::outbox::Model> {
    entity::outbox::Entity::find()
        .order_by_asc(entity::outbox::Column::Id)
        .all(store.connection())
        .await
        .unwrap()
}

/// Four finders at once write one overdue reminder and one mark; the mark moves the version on, so an
/// action decided before it is a conflict; a new state starts the reminders afresh and lapses the old
/// one; the day's digest is made once.
async fn a_reminder_marks_the_case_and_writes_its_row_once_however_many_finders_run(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    // Opened Thursday 5/6: one working day, so due at the end of Friday 5/7; Saturday 5/8 is a
    // make-up working day (劳动节 2021), so it escalates when 5/8 ends.
    let id = open_case(store, &engine, "REM-1").await;
    let case = store.case(id).await.unwrap().case;
    assert_eq!(case.deadline, Some(local(8, 0, 0)));
    assert_eq!(
        (case.remind_stage, case.remind_at),
        (0, Some(local(7, 0, 0)))
    );

    let finders = (0..4).map(|_| {
        let (store, engine) = (store.clone(), engine.clone());
        async move {
            store
                .find_reminders(&engine, local(8, 1, 0), local(8, 1, 0), 50)
                .await
                .unwrap()
        }
    });
    let found: usize = futures_join_all(finders)
        .await
        .iter()
        .map(|r| r.found)
        .sum();
    assert_eq!(found, 1, "one finder wrote the overdue reminder");
    let case = store.case(id).await.unwrap().case;
    assert_eq!(
        (
            case.remind_stage,
            case.overdue,
            case.escalated,
            case.version
        ),
        (2, true, false, 2)
    );
    assert_eq!(case.remind_at, Some(local(9, 0, 0)));
    let rows = outbox_rows(store).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].kind.as_str(), rows[0].status.as_str()),
        ("overdue", "digest")
    );
    assert_eq!(rows[0].recipients, json!(["zhang@shaba.example"]));

    // An action decided on version 1 is refused; on version 2 it moves the case on.
    let stale = store
        .apply_action(
            &engine,
            &ActionRequest {
                id,
                scope: &bihuan_store::CaseScope::All,
                version: 1,
                action: "accept",
                fields: &Map::new(),
                actor: &actor("zhang"),
                now: local(8, 2, 0),
            },
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict {
                expected: 1,
                actual: 2
            })
        ),
        "{stale:?}"
    );
    let accepted = act(
        store,
        &engine,
        id,
        "zhang",
        "accept",
        json!({}),
        local(8, 2, 0),
    )
    .await
    .unwrap();
    assert_eq!(accepted.deadline, Some(local(11, 0, 0)), "Monday 5/10 ends");
    assert_eq!((accepted.remind_stage, accepted.overdue), (0, false));
    assert_eq!(*outbox_rows(store).await[0].status, OutboxStatus::Lapsed);

    // Monday 5/10 begins: due soon; the digest of 5/10 is made once by two passes.
    let report = store
        .find_reminders(&engine, local(10, 0, 0), local(10, 0, 0), 50)
        .await
        .unwrap();
    assert_eq!(report.found, 1);
    let day = chrono::NaiveDate::from_ymd_opt(2021, 5, 10).unwrap();
    let makers = (0..2).map(|_| {
        let (store, engine) = (store.clone(), engine.clone());
        async move {
            store
                .queue_digests(&engine, day, local(10, 8, 30))
                .await
                .unwrap()
        }
    });
    let made = futures_join_all(makers).await;
    assert_eq!(made.iter().sum::<usize>(), 1, "{made:?}");
    let digests: Vec<_> = outbox_rows(store)
        .await
        .into_iter()
        .filter(|r| r.kind == "digest")
        .collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].recipients, json!(["zhang@shaba.example"]));
    assert!(
        digests[0].body.contains("500114-2021-REM-1"),
        "{}",
        digests[0].body
    );
}

/// Runs futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// A small deterministic generator (xorshift), so a failing sequence can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The fields the randomised sequence gives each action.
fn fields_for(action: &str) -> Value {
    match action {
        "transfer" => json!({"unit": "shaba-social"}),
        "appeal" => json!({"category": "mistaken", "reason": "r"}),
        "extend" | "request_extension" => json!({"days": 2, "reason": "r"}),
        "rectify" => json!({"finding": "true", "measures": "m", "outcome": "rectified"}),
        "contact_attempt" => json!({"method": "phone"}),
        "feedback" => json!({"method": "phone", "summary": "s"}),
        "review_satisfied" => json!({"level": "basically_satisfied"}),
        "accept" | "close_unreachable" | "review_timeout" => json!({}),
        _ => json!({"reason": "r"}),
    }
}

async fn all_metrics(store: &Store) -> Vec<Vec<bihuan_store::MetricsRow>> {
    let mut out = Vec::new();
    for group_by in [
        bihuan_store::GroupBy::All,
        bihuan_store::GroupBy::Unit,
        bihuan_store::GroupBy::Month,
        bihuan_store::GroupBy::Channel,
        bihuan_store::GroupBy::Service,
    ] {
        let q = bihuan_store::MetricsQuery {
            from: None,
            to: None,
            unit: None,
            group_by,
        };
        out.push(
            store
                .metrics(&bihuan_store::CaseScope::All, &q)
                .await
                .unwrap(),
        );
    }
    out
}

/// Random sequences of ratings (single and in batches), actions, reminder passes and folds: the sums
/// kept by every transaction equal, figure for figure, the sums recomputed from the raw rows.
async fn the_metric_sums_always_equal_a_recomputation_from_the_raw_rows(db: &TestDb) {
    let store = &db.store;
    let engine = engine();
    seed_org(store).await;
    let def = engine.workflow("negative-rating").unwrap().clone();
    let levels = [
        Level::VerySatisfied,
        Level::Satisfied,
        Level::BasicallySatisfied,
        Level::Dissatisfied,
        Level::VeryDissatisfied,
    ];
    let channels = [
        Channel::Mobile,
        Channel::Pc,
        Channel::Default,
        Channel::HallPad,
    ];
    for seed in [7_u64, 2021, 500114] {
        let mut dice = Dice(seed);
        let mut now = at(6, 9);
        let mut cases: Vec<Uuid> = Vec::new();
        for step in 0..200 {
            now += chrono::Duration::minutes(30 + dice.below(600) as i64);
            match dice.below(10) {
                0..=2 => {
                    let mut batch = Vec::new();
                    for i in 0..=dice.below(4) {
                        let mut r = rating(
                            &format!("M{seed}-{step}-{i}"),
                            levels[dice.below(5)],
                            channels[dice.below(4)],
                        );
                        r.rated_at = now;
                        r.rater.real_name = dice.below(3) > 0;
                        r.service_code = format!("S{}", dice.below(3));
                        if dice.below(4) == 0 {
                            r.unit_code = "shaba-social".into();
                        }
                        batch.push(r);
                    }
                    if batch.len() == 1 {
                        if let Some(id) = store
                            .record_rating(&engine, &batch[0], now)
                            .await
                            .unwrap()
                            .case_id
                        {
                            cases.push(id);
                        }
                    } else {
                        store
                            .record_ratings_batch(&engine, &batch, now)
                            .await
                            .unwrap();
                        for r in &batch {
                            let found = entity::rating::Entity::find()
                                .filter(entity::rating::Column::SourceId.eq(r.source_id.clone()))
                                .one(store.connection())
                                .await
                                .unwrap()
                                .unwrap();
                            if let Some(c) = entity::case::Entity::find()
                                .filter(entity::case::Column::RatingId.eq(found.id))
                                .one(store.connection())
                                .await
                                .unwrap()
                            {
                                cases.push(c.id);
                            }
                        }
                    }
                }
                3 => {
                    store.find_reminders(&engine, now, now, 50).await.unwrap();
                }
                4 => {
                    store.compact_metrics().await.unwrap();
                }
                _ if !cases.is_empty() => {
                    let id = cases[dice.below(cases.len())];
                    let case = store.case(id).await.unwrap().case;
                    let possible: Vec<_> = def
                        .actions
                        .iter()
                        .filter(|a| a.from.contains(&case.state))
                        .collect();
                    if possible.is_empty() {
                        continue;
                    }
                    // Mostly forward along the loop, sometimes any action the state allows.
                    let forward = match case.state.as_str() {
                        "received" => "accept",
                        "accepted" => "transfer",
                        "rectifying" => "rectify",
                        "appealing" => "reject_appeal",
                        "pending_feedback" => "feedback",
                        "pending_review" => "review_satisfied",
                        _ => "audit_fail",
                    };
                    let action = match possible.iter().find(|a| a.id == forward) {
                        Some(a) if dice.below(3) > 0 => *a,
                        _ => possible[dice.below(possible.len())],
                    };
                    let who = match action.roles[0] {
                        Role::CenterStaff => actor("zhang"),
                        Role::UnitStaff => actor("li"),
                        Role::Supervisor => actor("wang"),
                        _ => Actor::scheduler(),
                    };
                    // The actions that cite evidence cite a file attached to the case just before.
                    let f = match action.id.as_str() {
                        "rectify" | "appeal" | "complete_scheduled" => {
                            fields(cited(store, id, fields_for(&action.id)).await)
                        }
                        _ => fields(fields_for(&action.id)),
                    };
                    let result = store
                        .apply_action(
                            &engine,
                            &ActionRequest {
                                id,
                                scope: &bihuan_store::CaseScope::All,
                                version: case.version,
                                action: &action.id,
                                fields: &f,
                                actor: &who,
                                now,
                            },
                        )
                        .await;
                    assert!(
                        matches!(result, Ok(_) | Err(StoreError::Rejected(_))),
                        "seed {seed} step {step} {}: {result:?}",
                        action.id
                    );
                }
                _ => {}
            }
        }
        let kept = all_metrics(store).await;
        let all = kept[0][0].counts;
        eprintln!("seed {seed}: {all:?}");
        assert!(
            all.cases > 0 && all.rectified > 0 && all.visited > 0 && all.closed > 0,
            "{all:?}"
        );
        let (ratings, cases_read) = store.rebuild_metrics(&engine).await.unwrap();
        assert!(ratings > 0 && cases_read > 0);
        let rebuilt = all_metrics(store).await;
        assert_eq!(
            kept, rebuilt,
            "seed {seed}: the kept sums differ from a recomputation"
        );
        // Folding moves nothing: the figures stay.
        store.compact_metrics().await.unwrap();
        assert_eq!(all_metrics(store).await, rebuilt, "seed {seed}");
    }
}
