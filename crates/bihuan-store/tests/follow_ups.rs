//! 追评 on both databases: a later rating of a handled item never opens a second case; it is the
//! rater's review while the case waits for one, a `follow_up` event otherwise (and a closed loop
//! with a negative one is audited first), nothing when the item has no case; a batch's 追评 are
//! applied after it, once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_core::rating::{Channel, Level, Rating};
use bihuan_store::{CaseScope, FollowUpKind, Store, entity};
use bihuan_test_support::TestDb;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use uuid::Uuid;

use common::{act, at, engine, rating, seed_org, transferred};

bihuan_test_support::on_both_databases!(
    a_follow_up_while_the_review_waits_is_the_raters_review,
    a_follow_up_on_a_closed_loop_is_recorded_on_it_and_audited_first,
    a_follow_up_of_an_item_without_a_case_opens_none,
    a_batchs_follow_ups_are_applied_after_it_once,
);

/// The 追评 of the handled item of `first` (the rating `source_id` of the common module).
fn later(first: &str, source_id: &str, level: Level, comment: Option<&str>) -> Rating {
    Rating {
        source_id: source_id.into(),
        project_no: format!("500114-2021-{first}"),
        assess_number: 2,
        level,
        comment: comment.map(Into::into),
        rated_at: at(12, 10),
        ..rating(first, level, Channel::Mobile)
    }
}

/// A case of rating `source_id` taken to pending_review on 5/6–5/7.
async fn waiting_for_review(store: &Store, source_id: &str) -> Uuid {
    let engine = engine();
    let id = transferred(store, source_id).await;
    for (who, action, fields, hour) in [
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
            json!({"method": "phone", "summary": "已回访"}),
            10,
        ),
    ] {
        act(store, &engine, id, who, action, fields, at(7, hour))
            .await
            .unwrap();
    }
    id
}

async fn cases(store: &Store) -> u64 {
    entity::case::Entity::find()
        .count(store.connection())
        .await
        .unwrap()
}

async fn kind_of(store: &Store, rating: Uuid) -> Option<(Option<Uuid>, FollowUpKind)> {
    entity::follow_up::Entity::find_by_id(rating)
        .one(store.connection())
        .await
        .unwrap()
        .map(|f| (f.case_id, *f.kind))
}

async fn a_follow_up_while_the_review_waits_is_the_raters_review(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let satisfied = waiting_for_review(store, "F1").await;
    let unsatisfied = waiting_for_review(store, "F2").await;
    let before = cases(store).await;

    let answer = later("F1", "F1-2", Level::Satisfied, Some("办理及时"));
    let stored = store
        .record_rating(&engine, &answer, at(8, 9))
        .await
        .unwrap();
    assert_eq!(stored.case_id, None, "a 追评 opens no case");
    let detail = store.case(satisfied).await.unwrap();
    assert_eq!(detail.case.state, "closed");
    let last = detail.events.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("review_satisfied", "rater")
    );
    assert!(last.fields.contains("办理及时"), "{}", last.fields);
    assert_eq!(
        kind_of(store, stored.rating_id).await,
        Some((Some(satisfied), FollowUpKind::Review))
    );

    // A negative 追评 is the rater's 不满意: the case goes back to the unit.
    let answer = later("F2", "F2-2", Level::VeryDissatisfied, Some("问题仍未解决"));
    store
        .record_rating(&engine, &answer, at(8, 9))
        .await
        .unwrap();
    let detail = store.case(unsatisfied).await.unwrap();
    assert_eq!(
        (detail.case.state.as_str(), detail.case.reopen_count),
        ("rectifying", 1)
    );
    assert!(
        detail
            .events
            .last()
            .unwrap()
            .fields
            .contains("问题仍未解决")
    );
    assert_eq!(cases(store).await, before);
    assert_eq!(store.follow_ups_of(unsatisfied).await.unwrap().len(), 1);
    // The same 追评 again is a duplicate: nothing is applied twice.
    let again = store
        .record_rating(&engine, &answer, at(8, 10))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(store.case(unsatisfied).await.unwrap().case.reopen_count, 1);
    assert!(store.verify_chain().await.unwrap().ok);
}

async fn a_follow_up_on_a_closed_loop_is_recorded_on_it_and_audited_first(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let mut closed = Vec::new();
    for n in 0..6 {
        let id = waiting_for_review(store, &format!("C{n}")).await;
        act(
            store,
            &engine,
            id,
            "zhang",
            "review_satisfied",
            json!({"level": "satisfied"}),
            at(7, 11),
        )
        .await
        .unwrap();
        closed.push(id);
    }
    let came_back = closed[4];
    let answer = later("C4", "C4-2", Level::Dissatisfied, None);
    let stored = store
        .record_rating(&engine, &answer, at(10, 9))
        .await
        .unwrap();
    let detail = store.case(came_back).await.unwrap();
    assert_eq!(detail.case.state, "closed", "a 追评 moves no closed loop");
    let last = detail.events.last().unwrap();
    assert_eq!(last.action, "follow_up");
    assert!(last.fields.contains(&stored.rating_id.to_string()));
    assert!(last.fields.contains("dissatisfied"));
    assert_eq!(
        kind_of(store, stored.rating_id).await,
        Some((Some(came_back), FollowUpKind::FollowUp))
    );
    // Drawn first, however the rest are drawn.
    for _ in 0..5 {
        let sample = store
            .audit_sample(&CaseScope::All, "closed", 2)
            .await
            .unwrap();
        assert_eq!(sample[0].0.id, came_back);
        assert_ne!(sample[1].0.id, came_back);
    }
    // A satisfied 追评 on a closed loop is recorded too, and does not put it first.
    let pleased = later("C1", "C1-2", Level::VerySatisfied, Some("很好"));
    store
        .record_rating(&engine, &pleased, at(10, 9))
        .await
        .unwrap();
    assert_eq!(
        store
            .case(closed[1])
            .await
            .unwrap()
            .events
            .last()
            .unwrap()
            .action,
        "follow_up"
    );
    let sample = store
        .audit_sample(&CaseScope::All, "closed", 1)
        .await
        .unwrap();
    assert_eq!(sample[0].0.id, came_back);
    assert!(store.verify_chain().await.unwrap().ok);
}

async fn a_follow_up_of_an_item_without_a_case_opens_none(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let first = rating("G1", Level::Satisfied, Channel::Mobile);
    store
        .record_rating(&engine, &first, at(6, 10))
        .await
        .unwrap();
    let answer = later(
        "G1",
        "G1-2",
        Level::VeryDissatisfied,
        Some("后来发现少办一项"),
    );
    let stored = store
        .record_rating(&engine, &answer, at(9, 9))
        .await
        .unwrap();
    assert_eq!(stored.case_id, None);
    assert_eq!(cases(store).await, 0);
    assert_eq!(
        kind_of(store, stored.rating_id).await,
        Some((None, FollowUpKind::Unmatched))
    );
}

async fn a_batchs_follow_ups_are_applied_after_it_once(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let waiting = waiting_for_review(store, "B1").await;
    let batch = [
        rating("B2", Level::Dissatisfied, Channel::Pc),
        later("B1", "B1-2", Level::BasicallySatisfied, None),
    ];
    let outcome = store
        .record_ratings_batch(&engine, &batch, at(8, 9))
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.cases_opened), (2, 1));
    let detail = store.case(waiting).await.unwrap();
    assert_eq!(detail.case.state, "closed");
    assert_eq!(detail.events.last().unwrap().action, "review_satisfied");
    assert!(
        detail
            .events
            .last()
            .unwrap()
            .fields
            .contains("basically_satisfied")
    );
    assert_eq!(
        store
            .apply_pending_follow_ups(&engine, at(8, 10), 100)
            .await
            .unwrap(),
        0,
        "applied once"
    );
    assert_eq!(store.follow_ups_of(waiting).await.unwrap().len(), 1);
}
