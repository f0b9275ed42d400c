//! The limits counted over a case's life, kept on the case row in the action's own transaction, on
//! both databases: the extension cap that an appeal no longer resets, one appeal per case, a unit's
//! request for more time and its answer (listed for supervisors until answered), appeals decided
//! only from above the responsible unit, 认定办结 of an escalated loop, and the migration that
//! filled these columns for cases already open.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::{ActionError, Actor, Role};
use bihuan_store::{ActionRequest, CaseFilter, CaseScope, NewUser, Store, StoreError, entity};
use bihuan_test_support::TestDb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use common::{act, at, engine, fields, seed_org, transferred};

bihuan_test_support::on_both_databases!(
    an_appeal_resets_neither_the_extension_cap_nor_the_appeal_count,
    a_request_for_more_time_is_listed_until_a_supervisor_answers_it,
    an_appeal_is_decided_by_a_supervisor_above_the_unit_never_by_its_own,
    only_an_escalated_loop_is_concluded,
    the_migration_fills_the_life_counts_of_cases_already_open,
);

fn refused(result: Result<entity::case::Model, StoreError>) -> ActionError {
    match result {
        Err(StoreError::Rejected(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn notices(store: &Store, case: Uuid) -> Vec<(String, String)> {
    entity::outbox::Entity::find()
        .filter(entity::outbox::Column::CaseId.eq(case))
        .order_by_asc(entity::outbox::Column::Id)
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.kind, o.recipients.to_string()))
        .collect()
}

async fn an_appeal_resets_neither_the_extension_cap_nor_the_appeal_count(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "L1").await;
    assert_eq!(
        store.case(id).await.unwrap().case.transferred_at,
        Some(at(6, 12))
    );
    let extend = |days: u32| json!({"days": days, "reason": "需协调"});
    act(store, &engine, id, "wang", "extend", extend(10), at(7, 9))
        .await
        .unwrap();
    let appeal = common::cited(
        store,
        id,
        json!({"category": "unrelated", "reason": "非本单位事项"}),
    )
    .await;
    act(
        store,
        &engine,
        id,
        "li",
        "appeal",
        appeal.clone(),
        at(7, 10),
    )
    .await
    .unwrap();
    act(
        store,
        &engine,
        id,
        "wang",
        "reject_appeal",
        json!({"reason": "属本单位职责"}),
        at(7, 11),
    )
    .await
    .unwrap();
    let case = store.case(id).await.unwrap().case;
    assert_eq!(
        (
            case.state.as_str(),
            case.extension_days_used,
            case.appeals_used
        ),
        ("rectifying", 10, 1)
    );
    let version = case.version;
    let e = refused(act(store, &engine, id, "wang", "extend", extend(1), at(7, 12)).await);
    assert!(
        matches!(
            e,
            ActionError::ExtensionLimit {
                used: 10,
                asked: 1,
                cap: 15,
                ..
            }
        ),
        "{e:?}"
    );
    let e = refused(
        act(
            store,
            &engine,
            id,
            "li",
            "request_extension",
            extend(1),
            at(7, 12),
        )
        .await,
    );
    assert_eq!(e.code(), "extension_limit");
    let e = refused(act(store, &engine, id, "li", "appeal", appeal, at(7, 12)).await);
    assert_eq!(e.code(), "appeal_limit");
    assert_eq!(
        store.case(id).await.unwrap().case.version,
        version,
        "refusals write nothing"
    );
}

async fn a_request_for_more_time_is_listed_until_a_supervisor_answers_it(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "L2").await;
    let pending = || async {
        store
            .list_cases(
                &CaseScope::All,
                &CaseFilter {
                    extension_requested: Some(true),
                    open: true,
                    page: 1,
                    per_page: 50,
                    ..CaseFilter::default()
                },
                at(7, 9),
            )
            .await
            .unwrap()
            .0
            .into_iter()
            .map(|(c, _)| c.id)
            .collect::<Vec<_>>()
    };
    assert!(pending().await.is_empty());
    let asked = act(
        store,
        &engine,
        id,
        "li",
        "request_extension",
        json!({"days": 3, "reason": "需区级部门配合"}),
        at(7, 9),
    )
    .await
    .unwrap();
    assert_eq!(asked.extension_requested_days, Some(3));
    assert_eq!(asked.extension_days_used, 0, "asking grants nothing");
    assert_eq!(pending().await, [id]);
    // The supervisors above the unit hear of it.
    let heard = notices(store, id).await;
    assert!(
        heard
            .iter()
            .any(|(kind, to)| kind == "extension_requested" && to.contains("wang@shaba.example")),
        "{heard:?}"
    );
    let again = act(
        store,
        &engine,
        id,
        "li",
        "request_extension",
        json!({"days": 2, "reason": "再申请"}),
        at(7, 10),
    )
    .await;
    assert_eq!(refused(again).code(), "guard_failed");
    let denied = act(
        store,
        &engine,
        id,
        "wang",
        "deny_extension",
        json!({"reason": "可按期完成"}),
        at(7, 11),
    )
    .await
    .unwrap();
    assert_eq!(denied.extension_requested_days, None);
    assert!(pending().await.is_empty());
    assert!(
        notices(store, id)
            .await
            .iter()
            .any(|(kind, to)| kind == "extension_denied" && to.contains("li@shaba.example"))
    );
    // Asked again and granted, for fewer days than asked.
    act(
        store,
        &engine,
        id,
        "li",
        "request_extension",
        json!({"days": 5, "reason": "材料未齐"}),
        at(7, 12),
    )
    .await
    .unwrap();
    let granted = act(
        store,
        &engine,
        id,
        "wang",
        "extend",
        json!({"days": 2, "reason": "同意延期两个工作日"}),
        at(7, 13),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            granted.extension_requested_days,
            granted.extension_days_used
        ),
        (None, 2)
    );
    let actions: Vec<String> = store
        .case(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "open",
            "accept",
            "transfer",
            "request_extension",
            "deny_extension",
            "request_extension",
            "extend"
        ]
    );
    assert!(store.verify_chain().await.unwrap().ok);
}

async fn an_appeal_is_decided_by_a_supervisor_above_the_unit_never_by_its_own(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    store
        .add_user(
            &NewUser {
                username: "zhao".into(),
                role: Role::Supervisor,
                unit: Some("shaba-social".into()),
                email: None,
                sms_phone: None,
            },
            "correct horse battery",
            at(1, 9),
        )
        .await
        .unwrap();
    let id = transferred(store, "L3").await;
    act(
        store,
        &engine,
        id,
        "li",
        "appeal",
        common::cited(
            store,
            id,
            json!({"category": "malicious", "reason": "恶意差评"}),
        )
        .await,
        at(7, 9),
    )
    .await
    .unwrap();
    let detail = store.case(id).await.unwrap();
    assert_eq!(detail.responsible_ancestors, ["shaba"]);
    let own = Actor {
        name: "zhao".into(),
        role: Role::Supervisor,
        unit: Some("shaba-social".into()),
    };
    let reason = fields(json!({"reason": "经核实属恶意差评"}));
    let by_own = store
        .apply_action(
            &engine,
            &ActionRequest {
                id,
                scope: &CaseScope::All,
                version: detail.case.version,
                action: "uphold_appeal",
                fields: &reason,
                actor: &own,
                now: at(7, 10),
            },
        )
        .await
        .map(|d| d.case);
    assert_eq!(refused(by_own).code(), "unit_out_of_scope");
    let upheld = act(
        store,
        &engine,
        id,
        "wang",
        "uphold_appeal",
        json!({"reason": "经核实属恶意差评"}),
        at(7, 10),
    )
    .await
    .unwrap();
    assert_eq!(upheld.state, "invalid");
}

async fn only_an_escalated_loop_is_concluded(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "L4").await;
    let reason = json!({"reason": "已多次整改答复，诉求超出政策规定"});
    let round = |day: u32| async move {
        let engine = common::engine();
        for (who, action, f, hour) in [
            (
                "li",
                "rectify",
                common::cited(
                    store,
                    id,
                    json!({"finding": "true", "measures": "补正告知", "outcome": "rectified"}),
                )
                .await,
                9,
            ),
            (
                "li",
                "feedback",
                json!({"method": "phone", "summary": "已电话回访"}),
                10,
            ),
            (
                "zhang",
                "review_unsatisfied",
                json!({"reason": "仍不满意"}),
                11,
            ),
        ] {
            act(store, &engine, id, who, action, f, at(day, hour))
                .await
                .unwrap();
        }
    };
    round(7).await;
    let once = store.case(id).await.unwrap().case;
    assert!(!once.escalated);
    let e = refused(
        act(
            store,
            &engine,
            id,
            "wang",
            "conclude",
            reason.clone(),
            at(7, 12),
        )
        .await,
    );
    assert_eq!(e.code(), "guard_failed");
    round(10).await;
    assert!(store.case(id).await.unwrap().case.escalated);
    let concluded = act(store, &engine, id, "wang", "conclude", reason, at(10, 12))
        .await
        .unwrap();
    assert_eq!(concluded.state, "closed");
    assert_eq!(concluded.closed_at, Some(at(10, 12)));
    assert!(
        notices(store, id)
            .await
            .iter()
            .any(|(kind, _)| kind == "case_concluded")
    );
    // Escalated by 督办 a working day after its deadline (Wed 5/12) passed: it still owes its
    // rectification, and is never concluded.
    let overdue = transferred(store, "L4-overdue").await;
    store
        .find_reminders(&engine, at(14, 9), at(14, 9), 50)
        .await
        .unwrap();
    assert!(store.case(overdue).await.unwrap().case.escalated);
    let e = refused(
        act(
            store,
            &engine,
            overdue,
            "wang",
            "conclude",
            json!({"reason": "已多次整改答复，诉求超出政策规定"}),
            at(14, 10),
        )
        .await,
    );
    assert_eq!(e.code(), "guard_failed");
}

async fn the_migration_fills_the_life_counts_of_cases_already_open(db: &TestDb) {
    use sea_orm_migration::MigratorTrait;
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "L5").await;
    for (who, action, f, hour) in [
        ("wang", "extend", json!({"days": 4, "reason": "协调"}), 9),
        (
            "li",
            "appeal",
            common::cited(store, id, json!({"category": "mistaken", "reason": "误评"})).await,
            10,
        ),
        ("wang", "reject_appeal", json!({"reason": "驳回"}), 11),
        ("wang", "extend", json!({"days": 3, "reason": "再协调"}), 12),
    ] {
        act(store, &engine, id, who, action, f, at(7, hour))
            .await
            .unwrap();
    }
    let returned = transferred(store, "L6").await;
    act(
        store,
        &engine,
        returned,
        "li",
        "return",
        json!({"reason": "非本单位事项"}),
        at(7, 9),
    )
    .await
    .unwrap();
    let before = |c: &entity::case::Model| {
        (
            c.extension_days_used,
            c.appeals_used,
            c.transferred_at,
            c.extension_requested_days,
        )
    };
    let kept = before(&store.case(id).await.unwrap().case);
    assert_eq!(kept, (7, 1, Some(at(6, 12)), None));
    bihuan_migration::Migrator::down(store.connection(), Some(1))
        .await
        .unwrap();
    bihuan_migration::Migrator::up(store.connection(), None)
        .await
        .unwrap();
    assert_eq!(before(&store.case(id).await.unwrap().case), kept);
    assert_eq!(
        before(&store.case(returned).await.unwrap().case),
        (0, 0, None, None),
        "a case returned to the center has no transfer running"
    );
}
