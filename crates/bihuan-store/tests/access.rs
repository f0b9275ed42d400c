//! Sessions and the sign-in throttle over time, on SQLite and PostgreSQL: the idle time-out, pruning,
//! attempts counted before they are checked, and a session read with its user's reach in one
//! statement.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use bihuan_store::{NewUnit, SignInAttempt, ThrottleKey};
use bihuan_test_support::TestDb;
use chrono::Duration;
use sea_orm::{EntityTrait, PaginatorTrait};

use common::{at, observed, seed_org, taken};

bihuan_test_support::on_both_databases!(
    a_session_ends_after_its_idle_time_and_use_keeps_it_alive,
    ended_sessions_and_old_attempts_are_pruned,
    attempts_counted_at_once_never_pass_the_limit,
    a_session_comes_with_its_users_reach_in_one_statement,
);

async fn a_session_ends_after_its_idle_time_and_use_keeps_it_alive(db: &TestDb) {
    let store = &db.store;
    seed_org(store).await;
    let user = store.user_by_name("zhang").await.unwrap().unwrap();
    let t0 = at(6, 9);
    let idle = Duration::minutes(30);
    let (token, _) = store
        .create_session(user.id, t0, Duration::hours(12))
        .await
        .unwrap();
    // Used every 20 minutes, it lives on; a use marks it (at most once a minute).
    for n in 1..=5 {
        let now = t0 + Duration::minutes(20 * n);
        assert!(
            store
                .session_user(&token, now, idle)
                .await
                .unwrap()
                .is_some(),
            "use {n}"
        );
    }
    // Then 31 minutes unused: it has ended.
    let last = t0 + Duration::minutes(100);
    assert!(
        store
            .session_user(&token, last + Duration::minutes(31), idle)
            .await
            .unwrap()
            .is_none()
    );
    // A fresh one ends at its expiry however much it is used.
    let (token, expires) = store
        .create_session(user.id, t0, Duration::minutes(50))
        .await
        .unwrap();
    assert!(
        store
            .session_user(&token, t0 + Duration::minutes(25), idle)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_user(&token, expires, idle)
            .await
            .unwrap()
            .is_none()
    );
}

async fn ended_sessions_and_old_attempts_are_pruned(db: &TestDb) {
    let store = &db.store;
    seed_org(store).await;
    let user = store.user_by_name("zhang").await.unwrap().unwrap();
    let t0 = at(6, 9);
    let (live, _) = store
        .create_session(user.id, t0 + Duration::days(3), Duration::hours(12))
        .await
        .unwrap();
    store
        .create_session(user.id, t0, Duration::hours(12))
        .await
        .unwrap();
    let key = [ThrottleKey {
        key: "pair:zhang|198.51.100.1".into(),
        max: 5,
    }];
    store
        .begin_sign_in(&key, Duration::minutes(10), t0)
        .await
        .unwrap();
    let pruned = store.prune_access(t0 + Duration::days(3)).await.unwrap();
    assert_eq!(pruned, 2, "the old session and the old attempt");
    let sessions = bihuan_store::entity::session::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    assert_eq!(sessions, 1);
    assert!(
        store
            .session_user(&live, t0 + Duration::days(3), Duration::minutes(30))
            .await
            .unwrap()
            .is_some()
    );
}

async fn attempts_counted_at_once_never_pass_the_limit(db: &TestDb) {
    let store = &db.store;
    let now = at(6, 9);
    let keys = vec![ThrottleKey {
        key: "pair:zhang|198.51.100.2".into(),
        max: 5,
    }];
    let mut running = Vec::new();
    for _ in 0..16 {
        let (store, keys) = (store.clone(), keys.clone());
        running.push(tokio::spawn(async move {
            store
                .begin_sign_in(&keys, Duration::minutes(10), now)
                .await
                .unwrap()
        }));
    }
    let mut allowed = 0;
    for r in running {
        if matches!(r.await.unwrap(), SignInAttempt::Allowed(_)) {
            allowed += 1;
        }
    }
    // Every attempt is committed before it counts: a burst may be refused whole, but never more
    // than the limit get through.
    assert!(allowed <= 5, "{allowed} got through");
    // One after the other, exactly the limit do.
    let keys = vec![ThrottleKey {
        key: "pair:zhang|198.51.100.3".into(),
        max: 5,
    }];
    for n in 1..=5 {
        assert!(
            matches!(
                store
                    .begin_sign_in(&keys, Duration::minutes(10), now)
                    .await
                    .unwrap(),
                SignInAttempt::Allowed(_)
            ),
            "attempt {n}"
        );
    }
    // A success clears the pair's count: the next attempt goes through again.
    let SignInAttempt::Throttled(wait) = store
        .begin_sign_in(&keys, Duration::minutes(10), now)
        .await
        .unwrap()
    else {
        panic!("throttled");
    };
    assert!(wait <= Duration::minutes(10) && wait >= Duration::seconds(1));
    store
        .end_sign_in(&[], &[keys[0].key.clone()])
        .await
        .unwrap();
    assert!(matches!(
        store
            .begin_sign_in(&keys, Duration::minutes(10), now)
            .await
            .unwrap(),
        SignInAttempt::Allowed(_)
    ));
}

async fn a_session_comes_with_its_users_reach_in_one_statement(db: &TestDb) {
    seed_org(&db.store).await;
    let (store, seen) = observed(db).await;
    let zhang = store.user_by_name("zhang").await.unwrap().unwrap();
    let t0 = at(6, 9);
    let idle = Duration::minutes(30);
    let (token, _) = store
        .create_session(zhang.id, t0, Duration::hours(12))
        .await
        .unwrap();
    // The first read caches the organization tree.
    let first = store.session_user(&token, t0, idle).await.unwrap().unwrap();
    assert_eq!(first.user.username, "zhang");
    let reach = first.reach.expect("zhang has a unit");
    assert!(reach.units.contains("shaba-center"), "{reach:?}");
    taken(&seen);
    let again = store.session_user(&token, t0, idle).await.unwrap().unwrap();
    let statements = taken(&seen);
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert_eq!(again.reach, Some(reach));
    // A unit added under zhang's center by another instance is in the reach the next session read
    // brings.
    db.store
        .add_unit(
            &NewUnit {
                code: "shaba-center-desk".into(),
                name: "沙坝镇便民服务中心综合窗口".into(),
                parent: Some("shaba-center".into()),
                email: None,
                region: None,
            },
            t0,
        )
        .await
        .unwrap();
    let after = store.session_user(&token, t0, idle).await.unwrap().unwrap();
    let reach = after.reach.unwrap();
    assert!(reach.units.contains("shaba-center-desk"), "{reach:?}");
    store.close().await.unwrap();
}
