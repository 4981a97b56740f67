//! The change sequence on both backends: every write of knowledge takes a generation, and the
//! changes since one, applied to the snapshot of that generation, give the whole load again.

#[macro_use]
mod common;

use berth_core::ImageRef;
use berth_core::lineage::LineageIndex;
use berth_core::policy::Knowledge;
use berth_store::{ManifestKind, RepoSnapshot, Store};
use common::{amd64, arm64, at, image, index, repo, tag};

on_both_backends! {
    memory: [changes_since_a_generation_rebuild_the_whole_load],
    file: [],
}

/// The whole store as the webhook's loader reads it (repository by repository, digest by
/// digest): the oracle the change sequence is held to.
async fn whole_load(store: &Store) -> Knowledge {
    let chains = store.all_layer_chains().await.unwrap();
    let lineage = LineageIndex::build(chains.into_iter().map(|c| (c.image, c.diff_ids)));
    let mut knowledge = Knowledge::new(lineage);
    for status in store.repository_statuses().await.unwrap() {
        let repository = status.repository;
        for (tag, digest) in store.tag_digests(&repository).await.unwrap() {
            let name = format!(
                "{}/{}:{tag}",
                repository.registry(),
                repository.repository()
            );
            knowledge.add_tag(&ImageRef::parse(&name).unwrap(), digest.clone());
            if let Some(record) = store.manifest(&digest).await.unwrap()
                && let ManifestKind::Index(entries) = record.kind
            {
                let images = entries
                    .into_iter()
                    .filter(|entry| !entry.is_attestation)
                    .map(|entry| entry.child)
                    .collect();
                knowledge.add_index(digest, images);
            }
        }
    }
    knowledge
}

async fn changes_since_a_generation_rebuild_the_whole_load(url: String) {
    let store = Store::open(&url).await.unwrap();
    let app = repo("registry.example/team/app");
    let tools = repo("registry.example/team/tools");
    let (base, base_facts) = image("debian", amd64(), &["debian"], None);
    let (base_arm, base_arm_facts) = image("debian-arm", arm64(), &["debian-arm"], None);
    let base_index = index(&[&base, &base_arm], &[amd64(), arm64()]);
    let (runtime, runtime_facts) = image("runtime", amd64(), &["debian", "runtime"], None);
    let first = RepoSnapshot {
        tags: vec![
            (tag("base"), base_index.digest.clone()),
            (tag("runtime"), runtime.digest.clone()),
            (tag("stable"), runtime.digest.clone()),
        ],
        manifests: vec![
            base_index.clone(),
            base.clone(),
            base_arm.clone(),
            runtime.clone(),
        ],
        images: vec![base_facts, base_arm_facts, runtime_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &first, at(0))
        .await
        .unwrap();
    let (snapshot, generation) = store.knowledge().await.unwrap();
    assert_eq!(snapshot, whole_load(&store).await);
    // The streamed load and the change set since generation 0 give the same snapshot.
    let everything = store.knowledge_changes(0).await.unwrap();
    assert_eq!(Knowledge::from_changes(everything), snapshot);

    // Nothing written: nothing changed, the same generation.
    let idle = store.knowledge_changes(generation).await.unwrap();
    assert!(idle.is_empty(), "{idle:?}");
    assert_eq!(idle.generation, generation);

    // A tag moves, one goes (leaving the index untagged), a new image arrives in another
    // repository, and lineage records a base.
    let (service, service_facts) =
        image("service", amd64(), &["debian", "runtime", "service"], None);
    let second = RepoSnapshot {
        tags: vec![
            (tag("runtime"), runtime.digest.clone()),
            (tag("stable"), service.digest.clone()),
        ],
        manifests: vec![service.clone()],
        images: vec![service_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &second, at(60))
        .await
        .unwrap();
    let third = RepoSnapshot {
        tags: vec![(tag("debian"), base_index.digest.clone())],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&tools, &third, at(60))
        .await
        .unwrap();
    let chains = store.all_layer_chains().await.unwrap();
    let lineage = LineageIndex::build(chains.into_iter().map(|c| (c.image, c.diff_ids)));
    store
        .set_base(&service.digest, lineage.base_of(&service.digest).as_ref())
        .await
        .unwrap();

    let changes = store.knowledge_changes(generation).await.unwrap();
    // Three writes: two syncs and one lineage edge.
    assert_eq!(changes.generation, generation + 3, "{changes:?}");
    // Only what changed: the moved tag, the new one; not the unchanged `runtime`.
    let changed_tags: Vec<String> = changes
        .tags
        .iter()
        .map(|(reference, _)| reference.tag().unwrap().as_str().to_string())
        .collect();
    assert_eq!(changed_tags, ["base", "stable", "debian"]);
    assert_eq!(changes.images.len(), 1, "{changes:?}");
    let next = snapshot.clone().apply(&changes);
    assert_eq!(next, whole_load(&store).await);
    assert_ne!(next, snapshot);
    // Applying the same changes again changes nothing.
    assert_eq!(next.clone().apply(&changes), next);

    // The index is untagged once `tools` drops its tag too: the snapshot forgets it.
    store
        .record_repository_sync(&tools, &RepoSnapshot::default(), at(120))
        .await
        .unwrap();
    let last = store.knowledge_changes(changes.generation).await.unwrap();
    let after = next.apply(&last);
    assert_eq!(after, whole_load(&store).await);
    let untagged = after.platform_images(&base_index.digest);
    assert_eq!(untagged, std::slice::from_ref(&base_index.digest));
}
