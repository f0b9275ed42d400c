//! The one action pipeline: what an action costs in statements, and the cached organization tree
//! against units and users changed behind this store's back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::Role;
use bihuan_store::entity::outbox;
use bihuan_store::{ActionRequest, CaseScope, NewUnit, NewUser, OutboxStatus, StoreError};
use bihuan_test_support::TestDb;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use serde_json::json;

use common::{act, actor, at, engine, fields, observed, open_case, seed_org, taken};

bihuan_test_support::on_both_databases!(
    an_action_reads_its_case_once_and_never_reads_it_back,
    a_unit_added_behind_the_stores_back_is_seen_by_the_next_action,
    a_user_changed_behind_the_stores_back_gets_the_next_notice,
    a_case_outside_the_callers_scope_is_not_found_inside_the_action,
    a_corrupt_stored_value_is_an_error_never_a_default,
);

/// How many statements start with `prefix` and name `table` (quoted as either database quotes it).
fn touching(statements: &[String], prefix: &str, table: &str) -> usize {
    let quoted = format!("\"{table}\"");
    statements
        .iter()
        .filter(|s| s.trim_start().starts_with(prefix))
        .filter(|s| {
            let head = s.split(" WHERE ").next().unwrap_or(s);
            head.contains(&format!("FROM {quoted}"))
                || head.contains(&format!("UPDATE {quoted}"))
                || head.contains(&format!("INTO {quoted}"))
        })
        .count()
}

async fn an_action_reads_its_case_once_and_never_reads_it_back(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let id = open_case(&db.store, &engine, "P1").await;
    let (store, seen) = observed(db).await;
    // The first action reads the organization tree into the cache; the second runs on it.
    act(&store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    let version = store.case(id).await.unwrap().case.version;
    taken(&seen);
    let f = fields(json!({"unit": "shaba-social"}));
    let done = store
        .apply_action(
            &engine,
            &ActionRequest {
                id,
                scope: &CaseScope::All,
                version,
                action: "transfer",
                fields: &f,
                actor: &actor("zhang"),
                now: at(6, 12),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.case.state, "rectifying");
    assert_eq!(done.case.version, version + 1);
    assert_eq!(done.events.len(), 3, "the answer holds the new event");
    let statements = taken(&seen);
    let all = statements.join("\n");
    assert_eq!(touching(&statements, "SELECT", "cases"), 1, "{all}");
    assert!(
        statements
            .iter()
            .any(|s| s.contains("FROM \"cases\" LEFT JOIN \"ratings\"")),
        "the rating is read with the case: {all}"
    );
    assert_eq!(touching(&statements, "SELECT", "ratings"), 0, "{all}");
    assert_eq!(touching(&statements, "SELECT", "events"), 1, "{all}");
    assert_eq!(touching(&statements, "UPDATE", "cases"), 1, "{all}");
    assert_eq!(touching(&statements, "INSERT", "events"), 1, "{all}");
    assert_eq!(touching(&statements, "INSERT", "outbox"), 1, "{all}");
    assert_eq!(touching(&statements, "SELECT", "units"), 0, "{all}");
    assert_eq!(touching(&statements, "SELECT", "unit_aliases"), 0, "{all}");
    assert_eq!(
        touching(&statements, "SELECT", "users"),
        0,
        "the unit's addresses come with the cached tree: {all}"
    );
    assert_eq!(
        touching(&statements, "UPDATE", "outbox"),
        0,
        "a case never reminded has no reminders to lapse: {all}"
    );
    assert!(
        statements
            .iter()
            .any(|s| s.contains("UPDATE \"cases\"") && s.contains("RETURNING")),
        "the case is written with RETURNING: {all}"
    );
    assert_eq!(
        touching(&statements, "INSERT", "metric_deltas"),
        1,
        "a transfer settles the center's stage (受理转办及时率): {all}"
    );
    // The whole transfer: the revision, the case with its rating, its events, its audits, the
    // write, the event, the metric counters and the notice to the unit: eight.
    assert_eq!(statements.len(), 8, "{all}");
    store.close().await.unwrap();
}

async fn a_unit_added_behind_the_stores_back_is_seen_by_the_next_action(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let id = open_case(&db.store, &engine, "P2").await;
    let (store, _seen) = observed(db).await;
    act(&store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
        .await
        .unwrap();
    // The cached tree does not know this unit: the transfer is refused.
    let unknown = act(
        &store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "shaba-water"}),
        at(6, 12),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&unknown, StoreError::Invalid { field, .. } if field == "unit"),
        "{unknown:?}"
    );
    // Another instance adds it (here: another store on the same database), and an admin maps an
    // outside code at the SQL prompt; this store's next action sees both.
    db.store
        .add_unit(
            &NewUnit {
                code: "shaba-water".into(),
                name: "沙坝镇水利站".into(),
                parent: Some("shaba".into()),
                email: None,
                region: None,
            },
            at(6, 12),
        )
        .await
        .unwrap();
    let c = act(
        &store,
        &engine,
        id,
        "zhang",
        "transfer",
        json!({"unit": "shaba-water"}),
        at(6, 12),
    )
    .await
    .unwrap();
    assert_eq!(c.unit_code.as_deref(), Some("shaba-water"));
    db.store
        .connection()
        .execute_unprepared(
            "INSERT INTO unit_aliases (code, unit_code, mapped_by, created_at) \
             VALUES ('OUT-1', 'shaba-water', 'admin', '2021-05-06T12:00:00+00:00')",
        )
        .await
        .unwrap();
    let reach = store.reach("shaba").await.unwrap();
    assert!(reach.units.contains("shaba-water"), "{reach:?}");
    assert!(reach.units.contains("OUT-1"), "{reach:?}");
    store.close().await.unwrap();
}

async fn a_user_changed_behind_the_stores_back_gets_the_next_notice(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let first = open_case(&db.store, &engine, "P5").await;
    let second = open_case(&db.store, &engine, "P6").await;
    let (store, _seen) = observed(db).await;
    for id in [first, second] {
        act(&store, &engine, id, "zhang", "accept", json!({}), at(6, 11))
            .await
            .unwrap();
    }
    // The tree this store caches holds the unit's addresses; another instance adds a colleague and
    // an admin changes li's address at the SQL prompt.
    db.store
        .add_user(
            &NewUser {
                username: "zhao".into(),
                role: Role::UnitStaff,
                unit: Some("shaba-social".into()),
                email: Some("zhao@shaba.example".into()),
                sms_phone: None,
            },
            "correct horse",
            at(6, 11),
        )
        .await
        .unwrap();
    db.store
        .connection()
        .execute_unprepared("UPDATE users SET email = 'li.new@shaba.example' WHERE username = 'li'")
        .await
        .unwrap();
    let transfer = json!({"unit": "shaba-social"});
    act(
        &store,
        &engine,
        first,
        "zhang",
        "transfer",
        transfer.clone(),
        at(6, 12),
    )
    .await
    .unwrap();
    let sent = |rows: &[outbox::Model], case| {
        rows.iter()
            .find(|r| r.case_id == Some(case))
            .map(|r| r.recipients.clone())
    };
    let rows = outbox::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert_eq!(
        sent(&rows, first),
        Some(json!([
            "li.new@shaba.example",
            "social@shaba.example",
            "zhao@shaba.example"
        ]))
    );
    // Disabled, a user gets no more notices.
    db.store
        .connection()
        .execute_unprepared("UPDATE users SET disabled = TRUE WHERE username = 'zhao'")
        .await
        .unwrap();
    act(
        &store,
        &engine,
        second,
        "zhang",
        "transfer",
        transfer,
        at(6, 12),
    )
    .await
    .unwrap();
    let rows = outbox::Entity::find()
        .all(db.store.connection())
        .await
        .unwrap();
    assert_eq!(
        sent(&rows, second),
        Some(json!(["li.new@shaba.example", "social@shaba.example"]))
    );
    store.close().await.unwrap();
}

async fn a_case_outside_the_callers_scope_is_not_found_inside_the_action(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let id = open_case(&db.store, &engine, "P3").await;
    let f = fields(json!({}));
    let elsewhere = CaseScope::Responsible("shaba-social".into());
    let err = db
        .store
        .apply_action(
            &engine,
            &ActionRequest {
                id,
                scope: &elsewhere,
                version: 1,
                action: "accept",
                fields: &f,
                actor: &actor("zhang"),
                now: at(6, 11),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let case = db.store.case(id).await.unwrap();
    assert_eq!(
        (case.case.version, case.events.len()),
        (1, 1),
        "nothing written"
    );
}

/// An event whose recorded fields are not JSON, or a rating whose level is unknown, is reported as
/// corrupt by the ledger and by the metrics' rebuild (naming it), never read as empty or shown raw:
/// either would silently change what the case counts for. So is any other stored enum that names no
/// known value (a user's role, an outbox row's status, a reminder stage).
async fn a_corrupt_stored_value_is_an_error_never_a_default(db: &TestDb) {
    let engine = engine();
    seed_org(&db.store).await;
    let id = open_case(&db.store, &engine, "P9").await;
    act(
        &db.store,
        &engine,
        id,
        "zhang",
        "accept",
        json!({}),
        at(6, 11),
    )
    .await
    .unwrap();
    let ledger = async || {
        db.store
            .ledger_page(
                &engine,
                &CaseScope::All,
                &bihuan_store::LedgerFilter::default(),
                None,
                100,
                at(6, 12),
            )
            .await
    };
    assert_eq!(ledger().await.unwrap().0.len(), 1);
    let conn = db.store.connection();
    conn.execute_unprepared("UPDATE events SET fields = 'not json' WHERE seq = 2")
        .await
        .unwrap();
    let refused = ledger().await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("event 2 of case")),
        "{refused:?}"
    );
    let refused = db.store.rebuild_metrics(&engine).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("event 2 of case")),
        "{refused:?}"
    );
    conn.execute_unprepared("UPDATE events SET fields = '{}' WHERE seq = 2")
        .await
        .unwrap();
    conn.execute_unprepared("UPDATE ratings SET level = 'furious'")
        .await
        .unwrap();
    let refused = ledger().await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("rating level `furious`")),
        "{refused:?}"
    );
    let refused = db.store.rebuild_metrics(&engine).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("rating level `furious`")),
        "{refused:?}"
    );
    // Every stored enum is parsed when its row is read: a role, an outbox status.
    conn.execute_unprepared("UPDATE users SET role = 'root' WHERE username = 'zhang'")
        .await
        .unwrap();
    let refused = db.store.users().await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("role `root`")),
        "{refused:?}"
    );
    // Put right, so each corrupt value below is the one met.
    conn.execute_unprepared("UPDATE users SET role = 'center_staff' WHERE username = 'zhang'")
        .await
        .unwrap();
    outbox::ActiveModel {
        kind: Set("overdue".into()),
        case_id: Set(Some(id)),
        audience: Set("center".into()),
        recipients: Set(json!(["zhang@shaba.example"])),
        subject: Set("已超期".into()),
        body: Set("已超期".into()),
        unique_key: Set("corrupt-status".into()),
        status: Set(OutboxStatus::Pending.into()),
        attempts: Set(0),
        next_attempt_at: Set(at(6, 12)),
        created_at: Set(at(6, 12)),
        ..Default::default()
    }
    .insert(conn)
    .await
    .unwrap();
    assert_eq!(db.store.list_outbox(None, None, 1, 10).await.unwrap().1, 1);
    conn.execute_unprepared("UPDATE outbox SET status = 'maybe'")
        .await
        .unwrap();
    let refused = db.store.list_outbox(None, None, 1, 10).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("outbox status `maybe`")),
        "{refused:?}"
    );
    // A reminder waiting for the digest whose kind names no reminder is refused by the digest, not
    // listed as one of some kind.
    conn.execute_unprepared("UPDATE outbox SET status = 'digest', kind = 'soonish'")
        .await
        .unwrap();
    let refused = db
        .store
        .queue_digests(
            &engine,
            chrono::NaiveDate::from_ymd_opt(2021, 5, 7).unwrap(),
            at(7, 9),
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("reminder kind `soonish`")),
        "{refused:?}"
    );
    // A reminder stage that names none is refused by the scheduler's pass, not taken for "nothing
    // found yet" (which would mail again) or "done" (which would never mail). (A value above the last
    // stage is outside the pass's indexed range `remind_stage < 3`, like a finished case.)
    conn.execute_unprepared("UPDATE cases SET remind_stage = -1")
        .await
        .unwrap();
    let refused = db
        .store
        .find_reminders(&engine, at(20, 12), at(20, 12), 50)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("reminder stage `-1` of cases")),
        "{refused:?}"
    );
}
