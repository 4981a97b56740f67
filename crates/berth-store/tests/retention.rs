//! What retention reads and writes, on both backends: repositories' sync health (a truncated
//! listing and a failed sync make knowledge partial), live tags, manifests that lost their tag
//! (moved or gone), index children and layer sizes, uses and sources; a deletion recorded
//! marks the repository's tags at that digest gone and the digest deleted, and a later sync
//! that sees the digest tagged again forgets the deletion.

#[macro_use]
mod common;

use berth_store::{RepoSnapshot, Store, UsageSource, Use};
use common::{amd64, arm64, at, image, index, repo, tag};

on_both_backends! {
    memory: [reads_what_the_plan_needs_and_records_deletions],
    file: [],
}

async fn reads_what_the_plan_needs_and_records_deletions(url: String) {
    let store = Store::open(&url).await.unwrap();
    let app = repo("registry.example/team/app");
    let other = repo("registry.example/team/other");
    let (one, one_facts) = image("one", amd64(), &["base", "one"], None);
    let (two, two_facts) = image("two", amd64(), &["base", "two"], None);
    let (arm, arm_facts) = image("arm", arm64(), &["base", "arm"], None);
    let multi = index(&[&two, &arm], &[amd64(), arm64()]);
    let first = RepoSnapshot {
        tags: vec![
            (tag("1"), one.digest.clone()),
            (tag("latest"), one.digest.clone()),
            (tag("multi"), multi.digest.clone()),
        ],
        manifests: vec![one.clone(), two.clone(), arm.clone(), multi.clone()],
        images: vec![one_facts, two_facts, arm_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &first, at(0))
        .await
        .unwrap();
    // `latest` moves to the index; `1` disappears: `one` is untagged since the second sync.
    let second = RepoSnapshot {
        tags: vec![
            (tag("latest"), multi.digest.clone()),
            (tag("multi"), multi.digest.clone()),
        ],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &second, at(60))
        .await
        .unwrap();
    let truncated = RepoSnapshot {
        tags: vec![(tag("x"), one.digest.clone())],
        truncated: true,
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&other, &truncated, at(60))
        .await
        .unwrap();
    let place = Use {
        namespace: "arm".into(),
        kind: "Pod".into(),
        name: "edge".into(),
        container: "app".into(),
        image: format!("registry.example/team/app@{}", arm.digest),
        reference: berth_core::ImageRef::parse(&format!(
            "registry.example/team/app@{}",
            arm.digest
        ))
        .ok(),
        digest: Some(arm.digest.clone()),
    };
    store
        .record_usage(UsageSource::Cluster, "prod", &[place], true, at(90))
        .await
        .unwrap();

    let facts = store.retention_facts().await.unwrap();
    let names: Vec<&str> = facts.repositories.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["registry.example/team/app", "registry.example/team/other"]
    );
    let app_facts = &facts.repositories[0];
    assert_eq!(app_facts.partial, None);
    let mut live: Vec<(&str, &berth_core::Digest)> = app_facts
        .tags
        .iter()
        .map(|t| (t.tag.as_str(), &t.digest))
        .collect();
    live.sort();
    assert_eq!(live, [("latest", &multi.digest), ("multi", &multi.digest)]);
    // Untagged twice over (tag 1 gone, latest moved away), both at the second sync.
    assert!(
        app_facts
            .untagged
            .iter()
            .all(|(d, when)| *d == one.digest && *when == at(60))
    );
    assert_eq!(app_facts.untagged.len(), 2);
    assert_eq!(
        facts.repositories[1].partial.as_deref(),
        Some("the last sync's tag listing was truncated at the cap")
    );
    let index_facts = &facts.manifests[&multi.digest];
    // The platform images, then the test index's attestation entry.
    assert_eq!(
        index_facts.children[..2],
        [two.digest.clone(), arm.digest.clone()]
    );
    let one_facts = &facts.manifests[&one.digest];
    assert_eq!(one_facts.first_seen, Some(at(0)));
    // Its two layers, of 1004 and 1003 bytes (config sizes are not kept).
    let sizes: Vec<u64> = one_facts.blobs.iter().map(|(_, size)| *size).collect();
    assert_eq!(sizes, [1004, 1003]);
    assert_eq!(facts.uses.len(), 1);
    assert_eq!(facts.uses[0].digest.as_ref(), Some(&arm.digest));
    assert_eq!(
        facts.uses[0].repository.as_deref(),
        Some("registry.example/team/app")
    );
    assert_eq!(facts.sources.len(), 1);
    assert_eq!(facts.sources[0].last_full_at, Some(at(90)));

    // A failed sync makes the knowledge partial, whatever was known before.
    store
        .record_repository_failure(&app, "registry answered 500", at(120))
        .await
        .unwrap();
    let facts = store.retention_facts().await.unwrap();
    assert!(
        facts.repositories[0]
            .partial
            .as_deref()
            .is_some_and(|why| why.contains("500")),
        "{:?}",
        facts.repositories[0].partial
    );

    // Deleting the index marks both its tags gone and remembers the deletion.
    let gone = store
        .record_manifest_deleted(&app, &multi.digest, "test", at(150))
        .await
        .unwrap();
    assert_eq!(gone, 2);
    let facts = store.retention_facts().await.unwrap();
    assert!(facts.repositories[0].tags.is_empty());
    assert!(facts.repositories[0].deleted.contains(&multi.digest));
    assert!(!facts.repositories[1].deleted.contains(&multi.digest));
    // Pushed again and synced: no longer a deleted manifest.
    let back = RepoSnapshot {
        tags: vec![(tag("multi"), multi.digest.clone())],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &back, at(200))
        .await
        .unwrap();
    let facts = store.retention_facts().await.unwrap();
    assert!(facts.repositories[0].deleted.is_empty());
    assert_eq!(facts.repositories[0].partial, None);
    store.close().await;
}
