//! Leases on both backends: one holder at a time, renewal keeps the epoch, expiry hands the
//! lease over with the next epoch, and a former holder's writes are refused (fencing).

#[macro_use]
mod common;

use std::time::Duration;

use berth_store::{RepoSnapshot, Store, StoreError};
use common::{amd64, at, image, repo, tag};

on_both_backends! {
    memory: [
        one_holder_at_a_time_and_renewal_keeps_the_epoch,
        an_expired_lease_changes_hands_with_the_next_epoch,
        a_former_holder_cannot_write_after_losing_the_lease,
        a_released_lease_is_free_at_once,
    ],
    file: [],
}

const TTL: Duration = Duration::from_secs(30);

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

async fn one_holder_at_a_time_and_renewal_keeps_the_epoch(url: String) {
    let store = open(&url).await;
    let first = store
        .claim_lease("sync", "replica-a", TTL)
        .await
        .unwrap()
        .expect("a free lease is claimed");
    assert_eq!(first.epoch, 1);
    assert_eq!(
        store.claim_lease("sync", "replica-b", TTL).await.unwrap(),
        None,
        "a live lease is not taken"
    );
    // Another lease name is independent.
    assert!(
        store
            .claim_lease("promotion", "replica-b", TTL)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.renew_lease(&first, TTL).await.unwrap());
    let again = store
        .claim_lease("sync", "replica-a", TTL)
        .await
        .unwrap()
        .expect("the holder re-claims its own lease");
    assert_eq!(again, first, "re-claiming a live lease keeps its epoch");
    let leases = store.leases().await.unwrap();
    let sync = leases.iter().find(|lease| lease.name == "sync").unwrap();
    assert_eq!(
        (sync.holder.as_str(), sync.epoch, sync.live),
        ("replica-a", 1, true)
    );
    assert!(sync.expires_at > sync.acquired_at);
}

async fn an_expired_lease_changes_hands_with_the_next_epoch(url: String) {
    let store = open(&url).await;
    let short = Duration::from_millis(50);
    let first = store
        .claim_lease("sync", "replica-a", short)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        !store.renew_lease(&first, TTL).await.unwrap(),
        "an expired lease cannot be renewed"
    );
    let second = store
        .claim_lease("sync", "replica-b", TTL)
        .await
        .unwrap()
        .expect("an expired lease is taken");
    assert_eq!(second.epoch, first.epoch + 1);
    assert_eq!(
        store.claim_lease("sync", "replica-a", TTL).await.unwrap(),
        None,
        "the former holder does not get it back while the new one holds it"
    );
}

async fn a_former_holder_cannot_write_after_losing_the_lease(url: String) {
    let store = open(&url).await;
    let short = Duration::from_millis(50);
    let old = store
        .claim_lease("sync", "replica-a", short)
        .await
        .unwrap()
        .unwrap();
    let old_store = store.fenced(old.clone());
    // While held, fenced writes go through.
    let started = store.database_now().await.unwrap();
    old_store
        .record_task_run("sync", started, "ok", "{}")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let new = store
        .claim_lease("sync", "replica-b", TTL)
        .await
        .unwrap()
        .unwrap();

    // The paused former holder wakes up and tries to record a sync: refused, nothing written.
    let app = repo("registry.example/team/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let snapshot = RepoSnapshot {
        tags: vec![(tag("1.0"), one.digest.clone())],
        manifests: vec![one],
        images: vec![one_facts],
        ..RepoSnapshot::default()
    };
    let refused = old_store
        .record_repository_sync(&app, &snapshot, at(10))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { epoch: 1, .. })),
        "{refused:?}"
    );
    assert!(
        store.tags(&app).await.unwrap().is_empty(),
        "nothing of it landed"
    );
    let refused = old_store
        .record_repository_failure(&app, "boom", at(10))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let refused = old_store.record_task_run("sync", started, "ok", "{}").await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );

    // The new holder writes.
    let new_store = store.fenced(new.clone());
    new_store
        .record_repository_sync(&app, &snapshot, at(10))
        .await
        .unwrap();
    new_store
        .record_task_run("sync", started, "ok", "{}")
        .await
        .unwrap();
    let runs = store.task_runs("sync", 10).await.unwrap();
    let epochs: Vec<(String, i64)> = runs
        .iter()
        .map(|run| (run.holder.clone(), run.epoch))
        .collect();
    assert_eq!(
        epochs,
        vec![("replica-a".to_string(), 1), ("replica-b".to_string(), 2)]
    );
}

async fn a_released_lease_is_free_at_once(url: String) {
    let store = open(&url).await;
    let first = store
        .claim_lease("sync", "replica-a", TTL)
        .await
        .unwrap()
        .unwrap();
    store.release_lease(&first).await.unwrap();
    let second = store
        .claim_lease("sync", "replica-b", TTL)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!(second.epoch, 2);
    // Releasing a lease one no longer holds changes nothing.
    store.release_lease(&first).await.unwrap();
    assert_eq!(
        store.claim_lease("sync", "replica-c", TTL).await.unwrap(),
        None
    );
}
