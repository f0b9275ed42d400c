//! Every figure blames the party that owned the step (docs/DOMAIN.md, "Metrics"), on both databases:
//! grouped by unit, rating figures go to the rated unit, case figures to the 承办单位 the case was
//! transferred to (the service center while it never was), the center's own stage to the center; the
//! 按期整改率 counts on the day the rectifying deadline fell. The sums kept by the actions equal a
//! rebuild from the events, and cases opened before the center was kept get theirs on the rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;

use bihuan_core::metrics::{Counts, figures};
use bihuan_core::rating::{Channel, Level};
use bihuan_core::{Actor, Engine, Role};
use bihuan_store::{ActionRequest, CaseScope, GroupBy, MetricsQuery, NewUnit, Store};
use bihuan_test_support::TestDb;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use common::{at, engine, fields, rating, seed_org};

bihuan_test_support::on_both_databases!(
    figures_by_unit_follow_the_party_that_owned_each_step,
    the_on_time_rate_counts_in_the_month_its_deadline_fell,
    cases_kept_before_their_center_was_recorded_get_it_on_the_rebuild
);

/// 沙坝镇民政办 (a second 承办单位) and its staff member.
async fn add_civil_affairs(store: &Store) {
    store
        .add_unit(
            &NewUnit {
                code: "shaba-civil".into(),
                name: "沙坝镇民政办".into(),
                parent: Some("shaba".into()),
                email: None,
                region: None,
            },
            at(1, 9),
        )
        .await
        .unwrap();
}

fn staff(name: &str, role: Role, unit: &str) -> Actor {
    Actor {
        name: name.into(),
        role,
        unit: Some(unit.into()),
    }
}

fn center() -> Actor {
    staff("zhang", Role::CenterStaff, "shaba-center")
}

/// A rating of `unit` at `when` (recorded then); its case, when it opens one.
async fn rated(
    store: &Store,
    engine: &Engine,
    id: &str,
    unit: &str,
    level: Level,
    when: DateTime<Utc>,
) -> Option<Uuid> {
    let mut r = rating(id, level, Channel::Mobile);
    r.unit_code = unit.into();
    r.rated_at = when;
    store.record_rating(engine, &r, when).await.unwrap().case_id
}

async fn take(
    store: &Store,
    engine: &Engine,
    id: Uuid,
    who: &Actor,
    action: &str,
    f: Value,
    now: DateTime<Utc>,
) {
    let version = store.case(id).await.unwrap().case.version;
    store
        .apply_action(
            engine,
            &ActionRequest {
                id,
                scope: &CaseScope::All,
                version,
                action,
                fields: &fields(f),
                actor: who,
                now,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"));
}

/// Accepted and transferred to `unit` at `accepted` and an hour later, rectified at `rectified`.
async fn through(
    store: &Store,
    engine: &Engine,
    id: Uuid,
    unit: &str,
    accepted: DateTime<Utc>,
    rectified: DateTime<Utc>,
) {
    let hour = chrono::Duration::hours(1);
    take(store, engine, id, &center(), "accept", json!({}), accepted).await;
    take(
        store,
        engine,
        id,
        &center(),
        "transfer",
        json!({ "unit": unit }),
        accepted + hour,
    )
    .await;
    take(
        store,
        engine,
        id,
        &staff("staff", Role::UnitStaff, unit),
        "rectify",
        common::cited(
            store,
            id,
            json!({"finding": "true", "measures": "一次性告知所需材料", "outcome": "rectified"}),
        )
        .await,
        rectified,
    )
    .await;
}

fn day(month: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, month, d).unwrap()
}

fn local(month: u32, d: u32, hour: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2021, month, d, hour, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

async fn grouped(
    store: &Store,
    scope: &CaseScope,
    from: NaiveDate,
    to: NaiveDate,
    group_by: GroupBy,
) -> BTreeMap<String, Counts> {
    store
        .metrics(
            scope,
            &MetricsQuery {
                from: Some(from),
                to: Some(to),
                unit: None,
                group_by,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.group, row.counts))
        .collect()
}

/// The counts a unit's row holds for the figures this test is about.
fn owned(c: &Counts) -> [i64; 10] {
    [
        c.ratings,
        c.negative,
        c.valid_rated,
        c.cases,
        c.rectified,
        c.due,
        c.on_time,
        c.open,
        c.center_handled,
        c.center_timely,
    ]
}

/// Three 差评 of 沙坝镇社会保障服务所 and a 好评 of 民政办, all on Thu 5/6:
/// - A: handled by the center in time, transferred to 民政办, rectified a day late (Thu 5/13; its
///   deadline was Wed 5/12, past the make-up Saturday 5/8);
/// - B: accepted late by the center (Mon 5/10; 待受理 ended with Fri 5/7), transferred to 社保所 and
///   rectified the next day, well within 社保所's 5 working days;
/// - C: still waiting at the center.
async fn figures_by_unit_follow_the_party_that_owned_each_step(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    add_civil_affairs(store).await;
    let when = at(6, 10);
    let social = "shaba-social";
    let a = rated(store, &engine, "A", social, Level::Dissatisfied, when).await;
    let b = rated(store, &engine, "B", social, Level::VeryDissatisfied, when).await;
    let c = rated(store, &engine, "C", social, Level::Dissatisfied, when).await;
    assert!(
        rated(store, &engine, "D", "shaba-civil", Level::Satisfied, when)
            .await
            .is_none()
    );
    through(
        store,
        &engine,
        a.unwrap(),
        "shaba-civil",
        at(6, 11),
        at(13, 9),
    )
    .await;
    through(store, &engine, b.unwrap(), social, at(10, 9), at(11, 9)).await;
    assert!(c.is_some());

    let may = grouped(store, &CaseScope::All, day(5, 1), day(5, 31), GroupBy::Unit).await;
    let rows: BTreeMap<&str, [i64; 10]> = may.iter().map(|(g, c)| (g.as_str(), owned(c))).collect();
    // ratings, negative, valid_rated, cases, rectified, due, on_time, open, center_handled, center_timely
    assert_eq!(
        rows,
        BTreeMap::from([
            // The rated unit: its three 差评, B's case (waiting for its visit), rectified in time.
            (social, [3, 3, 3, 1, 1, 1, 1, 1, 0, 0]),
            // 民政办: its 好评, and A rectified late (waiting for its visit): never 社保所's.
            ("shaba-civil", [1, 0, 0, 1, 1, 1, 0, 1, 0, 0]),
            // The center: C waiting, and its own stage of A (in time) and B (late).
            ("shaba-center", [0, 0, 0, 1, 0, 0, 0, 1, 2, 1]),
        ]),
    );
    let f = |code: &str| figures(&may[code]);
    assert_eq!(
        (f(social).on_time_rate, f(social).valid_negative_rate),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(
        (
            f("shaba-civil").on_time_rate,
            f("shaba-civil").negative_rate
        ),
        (Some(0.0), Some(0.0))
    );
    assert_eq!(f("shaba-center").center_timely_rate, Some(0.5));

    // The whole is the sum of its owners.
    let all = grouped(store, &CaseScope::All, day(5, 1), day(5, 31), GroupBy::All).await;
    assert_eq!(owned(&all["all"]), [4, 3, 3, 3, 2, 2, 1, 3, 2, 1]);

    // 民政办's staff see 民政办's row: its 好评 and the case it was given.
    let civil = grouped(
        store,
        &CaseScope::Responsible("shaba-civil".into()),
        day(5, 1),
        day(5, 31),
        GroupBy::All,
    )
    .await;
    assert_eq!(owned(&civil["all"]), [1, 0, 0, 1, 1, 1, 0, 1, 0, 0]);

    // What the actions kept is what the events say.
    let kept = grouped(store, &CaseScope::All, day(5, 1), day(5, 31), GroupBy::Unit).await;
    store.rebuild_metrics(&engine).await.unwrap();
    assert_eq!(
        grouped(store, &CaseScope::All, day(5, 1), day(5, 31), GroupBy::Unit).await,
        kept
    );
}

/// Rated, accepted and transferred on Fri 5/28: 社保所's 5 working days end with Fri 6/4. The case is
/// May's; its 按期整改率 is June's, whether it is still open past the deadline or rectified.
async fn the_on_time_rate_counts_in_the_month_its_deadline_fell(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let social = "shaba-social";
    let late = rated(
        store,
        &engine,
        "L",
        social,
        Level::Dissatisfied,
        local(5, 28, 9),
    )
    .await
    .unwrap();
    let in_time = rated(
        store,
        &engine,
        "T",
        social,
        Level::Dissatisfied,
        local(5, 28, 9),
    )
    .await
    .unwrap();
    let hour = chrono::Duration::hours(1);
    take(
        store,
        &engine,
        late,
        &center(),
        "accept",
        json!({}),
        local(5, 28, 10),
    )
    .await;
    take(
        store,
        &engine,
        late,
        &center(),
        "transfer",
        json!({ "unit": social }),
        local(5, 28, 10) + hour,
    )
    .await;
    through(
        store,
        &engine,
        in_time,
        social,
        local(5, 28, 10),
        local(6, 2, 9),
    )
    .await;
    // The scheduler finds `late` past its deadline on Mon 6/7.
    store
        .find_reminders(&engine, local(6, 7, 9), local(6, 7, 9), 50)
        .await
        .unwrap();
    let months = grouped(
        store,
        &CaseScope::All,
        day(5, 1),
        day(6, 30),
        GroupBy::Month,
    )
    .await;
    let judged = |m: &str| (months[m].cases, months[m].due, months[m].on_time);
    assert_eq!(judged("2021-05"), (2, 0, 0));
    assert_eq!(judged("2021-06"), (0, 2, 1));
    assert_eq!(figures(&months["2021-06"]).on_time_rate, Some(0.5));
    assert_eq!(figures(&months["2021-05"]).on_time_rate, None);
    let kept = grouped(
        store,
        &CaseScope::All,
        day(5, 1),
        day(6, 30),
        GroupBy::Month,
    )
    .await;
    store.rebuild_metrics(&engine).await.unwrap();
    assert_eq!(
        grouped(
            store,
            &CaseScope::All,
            day(5, 1),
            day(6, 30),
            GroupBy::Month
        )
        .await,
        kept
    );
}

/// A case opened before migration 16 has no center: the rebuild that an older revision of the sums
/// calls for finds it from the organization, and the figures go to it.
async fn cases_kept_before_their_center_was_recorded_get_it_on_the_rebuild(db: &TestDb) {
    let (store, engine) = (&db.store, engine());
    seed_org(store).await;
    let id = rated(
        store,
        &engine,
        "O",
        "shaba-social",
        Level::Dissatisfied,
        at(6, 10),
    )
    .await
    .unwrap();
    assert_eq!(
        store.case(id).await.unwrap().case.center_code.as_deref(),
        Some("shaba-center")
    );
    for sql in [
        "UPDATE cases SET center_code = NULL",
        "UPDATE metric_revision SET revision = 2",
    ] {
        store.connection().execute_unprepared(sql).await.unwrap();
    }
    assert!(store.rebuild_stale_metrics(&engine).await.unwrap());
    assert_eq!(
        store.case(id).await.unwrap().case.center_code.as_deref(),
        Some("shaba-center")
    );
    let units = grouped(store, &CaseScope::All, day(5, 1), day(5, 31), GroupBy::Unit).await;
    assert_eq!(units["shaba-center"].open, 1);
    assert_eq!(units["shaba-social"].negative, 1);
    // Then actions carry on from it.
    take(
        store,
        &engine,
        id,
        &center(),
        "accept",
        json!({}),
        at(6, 11),
    )
    .await;
}
