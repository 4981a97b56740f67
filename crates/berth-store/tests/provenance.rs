//! Provenance records on both backends: the latest record per digest, audited with the record
//! it replaced, stamped with a generation so that a snapshot's changes carry it, and found by
//! the point lookups of `berth check --store`.

#[macro_use]
mod common;

use berth_core::ImageRef;
use berth_core::policy::Knowledge;
use berth_core::provenance::{Record, Tests};
use berth_store::Store;
use common::{at, digest};

on_both_backends! {
    memory: [a_record_is_replaced_audited_and_followed_by_snapshots],
    file: [],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

fn record(tests: Tests, seconds: i64) -> Record {
    Record {
        source: Some("https://git.example/app".to_string()),
        commit: Some("4f2c1e9".to_string()),
        build: Some("https://ci.example/runs/1".to_string()),
        logs: None,
        tests: Some(tests),
        tests_url: None,
        recorded_by: "ci".to_string(),
        recorded_at: at(seconds),
    }
}

async fn a_record_is_replaced_audited_and_followed_by_snapshots(url: String) {
    let store = open(&url).await;
    let built = digest("built");
    let (whole, generation) = store.knowledge().await.unwrap();
    assert!(whole.provenance(&built).is_none());
    store
        .record_provenance(&built, &record(Tests::Failed, 10))
        .await
        .unwrap();
    store
        .record_provenance(&built, &record(Tests::Passed, 20))
        .await
        .unwrap();
    assert_eq!(
        store.provenance_of(&built).await.unwrap(),
        Some(record(Tests::Passed, 20))
    );
    assert_eq!(store.provenance_of(&digest("other")).await.unwrap(), None);

    // The change sequence carries it: the snapshot after the changes is the whole load.
    let changes = store.knowledge_changes(generation).await.unwrap();
    assert_eq!(
        changes.provenance,
        [(built.clone(), record(Tests::Passed, 20))]
    );
    let next = whole.apply(&changes);
    let (reloaded, _) = store.knowledge().await.unwrap();
    assert_eq!(next, reloaded);
    assert_eq!(
        reloaded.provenance(&built).and_then(|record| record.tests),
        Some(Tests::Passed)
    );
    // An idle store: nothing more.
    let idle = store.knowledge_changes(changes.generation).await.unwrap();
    assert!(idle.provenance.is_empty());

    // Point lookups: a reference by digest finds its record.
    let reference = ImageRef::parse(&format!("registry.example/app@{built}")).unwrap();
    let looked_up: Knowledge = store.knowledge_for(&[reference]).await.unwrap();
    assert_eq!(
        looked_up.provenance(&built),
        Some(&record(Tests::Passed, 20))
    );

    // Audited: the replaced record is the entry's `before`.
    let audit = store.audit_log(Some(built.as_str()), 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].entry.action, "provenance.record");
    assert_eq!(audit[0].entry.before.as_ref().unwrap()["tests"], "failed");
    assert_eq!(audit[0].entry.after.as_ref().unwrap()["tests"], "passed");
    assert!(audit[1].entry.before.is_none());
}
