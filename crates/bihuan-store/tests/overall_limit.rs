//! A case's clocks beside its state's own, on both databases. The overall limit (整改反馈时限):
//! kept on the case row in each action's own transaction (paused while appealing, resumed with what
//! was left), reminded and escalated by the scheduler like a state's own deadline without marking
//! the case overdue, and filled in from the event log for cases opened before it existed. A
//! scheduled rectification (限期整改): reminded until the unit reports it done, shown in the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_store::entity;
use bihuan_test_support::TestDb;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use common::{act, at, engine, seed_org, transferred};

bihuan_test_support::on_both_databases!(
    the_overall_limit_is_kept_on_the_case_and_paused_while_appealing,
    the_overall_limit_is_reminded_and_escalated_without_marking_the_case_overdue,
    cases_opened_before_the_limit_get_it_from_their_event_logs,
    a_scheduled_rectification_is_reminded_until_reported_done,
);

/// Midnight (24:00) at the end of a day of May 2021, Beijing time: where a deadline falls.
fn end_of(day: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, 5, day + 1, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

async fn the_overall_limit_is_kept_on_the_case_and_paused_while_appealing(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    // Opened Thu 5/6: 15 working days, the make-up Saturday 5/8 among them, end on Wed 5/26.
    let id = transferred(store, "O1").await;
    let c = store.case(id).await.unwrap().case;
    assert_eq!(c.overall_deadline, Some(end_of(26)));
    assert_eq!((c.overall_remind_stage, c.overall_met_at), (Some(0), None));
    // Its first reminder is when its last working day begins.
    assert_eq!(c.overall_remind_at, Some(end_of(25)));

    let appeal = common::cited(store, id, json!({"category": "mistaken", "reason": "误评"})).await;
    let c = act(store, &engine, id, "li", "appeal", appeal, at(7, 9))
        .await
        .unwrap();
    // 14 working days were left after Fri 5/7; nothing to remind of while paused.
    assert_eq!(
        (
            c.overall_deadline,
            c.overall_paused_days,
            c.overall_remind_stage
        ),
        (None, Some(14), Some(3))
    );
    let c = act(
        store,
        &engine,
        id,
        "wang",
        "reject_appeal",
        json!({"reason": "理由不成立"}),
        at(10, 9),
    )
    .await
    .unwrap();
    // Resumed Mon 5/10 with 14 working days: Fri 5/28.
    assert_eq!(
        (
            c.overall_deadline,
            c.overall_paused_days,
            c.overall_remind_stage
        ),
        (Some(end_of(28)), None, Some(0))
    );
    let c = act(
        store,
        &engine,
        id,
        "wang",
        "extend",
        json!({"days": 2, "reason": "需协调"}),
        at(11, 9),
    )
    .await
    .unwrap();
    assert_eq!(
        c.overall_deadline,
        Some(end_of(28) + chrono::Duration::days(4))
    );
    rectified(store, id, at(12, 9)).await;
    let c = act(
        store,
        &engine,
        id,
        "li",
        "feedback",
        json!({"method": "phone", "summary": "已回访"}),
        at(12, 10),
    )
    .await
    .unwrap();
    // Met: the deadline stays for the record, its reminders are over.
    assert_eq!(
        (
            c.overall_met_at,
            c.overall_remind_stage,
            c.overall_remind_at
        ),
        (Some(at(12, 10)), Some(3), None)
    );
    assert_eq!(
        c.overall_deadline,
        Some(end_of(28) + chrono::Duration::days(4))
    );
}

/// The unit's rectification (已整改) at `now`.
async fn rectified(store: &bihuan_store::Store, id: uuid::Uuid, now: DateTime<Utc>) {
    let rectify = common::cited(
        store,
        id,
        json!({"finding": "true", "measures": "已改", "outcome": "rectified"}),
    )
    .await;
    act(store, &engine(), id, "li", "rectify", rectify, now)
        .await
        .unwrap();
}

async fn overall_mails(db: &TestDb, case: uuid::Uuid) -> Vec<(String, String)> {
    mails_of(db, case, "overall_").await
}

async fn mails_of(db: &TestDb, case: uuid::Uuid, prefix: &str) -> Vec<(String, String)> {
    entity::outbox::Entity::find()
        .filter(entity::outbox::Column::CaseId.eq(case))
        .filter(entity::outbox::Column::Kind.starts_with(prefix))
        .order_by_asc(entity::outbox::Column::Id)
        .all(db.store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.kind, o.recipients.to_string()))
        .collect()
}

async fn the_overall_limit_is_reminded_and_escalated_without_marking_the_case_overdue(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "O2").await;
    // The unit rectified in time; the visit is what is late.
    rectified(store, id, at(7, 9)).await;
    let remind = |now| store.find_reminders(&engine, now, now, 100);
    remind(at(25, 9)).await.unwrap();
    assert_eq!(overall_mails(db, id).await, vec![]);
    remind(at(26, 9)).await.unwrap();
    let unit = r#"["li@shaba.example","social@shaba.example"]"#.to_owned();
    assert_eq!(
        overall_mails(db, id).await,
        vec![("overall_due_soon".to_owned(), unit.clone())]
    );
    // A pass on Fri 5/28 finds it overdue and, a working day on, escalated: 督办 to the
    // supervisor above the unit.
    remind(at(28, 9)).await.unwrap();
    let mails = overall_mails(db, id).await;
    assert_eq!(
        mails[1..],
        [
            ("overall_overdue".to_owned(), unit.clone()),
            (
                "overall_escalated".to_owned(),
                r#"["wang@shaba.example"]"#.to_owned()
            ),
        ]
    );
    let c = store.case(id).await.unwrap().case;
    assert_eq!((c.overall_remind_stage, c.escalated), (Some(3), true));
    // Once each: another pass finds nothing more.
    remind(at(31, 9)).await.unwrap();
    assert_eq!(overall_mails(db, id).await.len(), 3);
    // The mail says which limit passed.
    let escalation = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Kind.eq("overall_escalated"))
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert!(
        escalation.subject.contains("整改反馈时限"),
        "{}",
        escalation.subject
    );
    assert!(
        escalation.body.contains("整改反馈时限：2021年5月26日"),
        "{}",
        escalation.body
    );
}

async fn cases_opened_before_the_limit_get_it_from_their_event_logs(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let running = transferred(store, "O3").await;
    let paused = transferred(store, "O4").await;
    act(
        store,
        &engine,
        paused,
        "li",
        "appeal",
        common::cited(
            store,
            paused,
            json!({"category": "mistaken", "reason": "误评"}),
        )
        .await,
        at(7, 9),
    )
    .await
    .unwrap();
    let kept = |c: &entity::case::Model| {
        (
            c.overall_start,
            c.overall_days,
            c.overall_deadline,
            c.overall_paused_days,
            c.overall_met_at,
            c.overall_remind_stage,
            c.overall_remind_at,
        )
    };
    let before = [
        kept(&store.case(running).await.unwrap().case),
        kept(&store.case(paused).await.unwrap().case),
    ];
    // As migration 15 leaves the cases it finds.
    store
        .connection()
        .execute_unprepared(
            "UPDATE cases SET overall_start = NULL, overall_days = NULL, overall_deadline = NULL, \
             overall_paused_days = NULL, overall_met_at = NULL, overall_remind_at = NULL, \
             overall_remind_stage = NULL",
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .start_overall_limits(&engine, at(7, 10))
            .await
            .unwrap(),
        2
    );
    let after = [
        kept(&store.case(running).await.unwrap().case),
        kept(&store.case(paused).await.unwrap().case),
    ];
    assert_eq!(after, before);
    assert_eq!(
        store
            .start_overall_limits(&engine, at(7, 11))
            .await
            .unwrap(),
        0
    );
}

async fn a_scheduled_rectification_is_reminded_until_reported_done(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = transferred(store, "S1").await;
    let c = act(
        store,
        &engine,
        id,
        "li",
        "rectify",
        json!({
            "finding": "true",
            "measures": "自助终端改造列入年度台账",
            "outcome": "scheduled",
            "due": "2021-05-20",
        }),
        at(7, 9),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            c.scheduled_due,
            c.scheduled_deadline,
            c.scheduled_remind_stage
        ),
        (
            chrono::NaiveDate::from_ymd_opt(2021, 5, 20),
            Some(end_of(20)),
            0
        )
    );
    let remind = |now| store.find_reminders(&engine, now, now, 100);
    remind(at(19, 9)).await.unwrap();
    assert_eq!(mails_of(db, id, "scheduled_").await, vec![]);
    remind(at(20, 9)).await.unwrap();
    remind(at(24, 9)).await.unwrap();
    let kinds: Vec<String> = mails_of(db, id, "scheduled_")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "scheduled_due_soon",
            "scheduled_overdue",
            "scheduled_escalated"
        ]
    );
    let ledger = store
        .ledger_page(
            &engine,
            &bihuan_store::CaseScope::All,
            &bihuan_store::LedgerFilter::default(),
            None,
            10,
            at(24, 10),
        )
        .await
        .unwrap()
        .0;
    assert_eq!(
        ledger[0].scheduled,
        Some((chrono::NaiveDate::from_ymd_opt(2021, 5, 20).unwrap(), None))
    );

    // Reported done while the loop waits for the visit: the case stays where it is, the supervisors
    // hear of it, nothing more is reminded.
    let c = act(
        store,
        &engine,
        id,
        "li",
        "complete_scheduled",
        common::cited(store, id, json!({"summary": "终端已改造上线"})).await,
        at(25, 9),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            c.state.as_str(),
            c.scheduled_done_at,
            c.scheduled_remind_stage
        ),
        ("pending_feedback", Some(at(25, 9)), 3)
    );
    assert_eq!(
        mails_of(db, id, "scheduled_done").await,
        vec![(
            "scheduled_done".to_owned(),
            r#"["wang@shaba.example"]"#.to_owned()
        )]
    );
}
