//! The store's API against in-memory SQLite and a real PostgreSQL: snapshots, tags that go and
//! come back, failures that keep knowledge, all-or-nothing syncs, lineage, logs, migrations.

#[macro_use]
mod common;

use berth_core::lineage::{BaseMatch, LineageMethod};
use berth_core::osrelease::{LibcFamily, OsIdentity};
use berth_store::{
    AuditEntry, ChannelChange, ChannelChangeKind, ImageFilter, LayerFact, ManifestKind,
    PromotionKey, RepoSnapshot, SCHEMA_VERSION, Store, StoreError, SyncSummary,
};
use common::{amd64, arm64, at, digest, image, index, repo, tag};
use std::collections::HashSet;

on_both_backends! {
    memory: [
        a_snapshot_is_recorded_and_read_back,
        tags_that_disappear_are_gone_not_deleted,
        failures_keep_what_was_known,
        a_failed_sync_leaves_nothing_behind,
        lineage_is_a_lookup,
        images_filter_by_repository_and_os,
        channel_history_and_audit_are_append_only,
        a_promotion_slot_is_claimed_once,
    ],
    file: [
        a_newer_schema_is_refused,
        replicas_opening_at_once_migrate_once,
        a_read_only_store_reads_and_never_writes,
    ],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

async fn a_snapshot_is_recorded_and_read_back(url: String) {
    let store = open(&url).await;
    let app = repo("registry.example:5000/team/app");
    let (amd, amd_facts) = image(
        "app-amd64",
        amd64(),
        &["base", "app"],
        Some("debian-12-amd64"),
    );
    let (arm, arm_facts) = image(
        "app-arm64",
        arm64(),
        &["base-arm", "app-arm"],
        Some("debian-12-arm64"),
    );
    let (solo, solo_facts) = image("tool", amd64(), &["alpine"], Some("alpine-3.20-amd64"));
    let multi = index(&[&amd, &arm], &[amd64(), arm64()]);
    let snapshot = RepoSnapshot {
        truncated: false,
        tags: vec![
            (tag("1.0"), multi.digest.clone()),
            (tag("latest"), multi.digest.clone()),
            (tag("tool"), solo.digest.clone()),
        ],
        manifests: vec![multi.clone(), amd.clone(), arm.clone(), solo.clone()],
        images: vec![amd_facts.clone(), arm_facts.clone(), solo_facts.clone()],
        layer_facts: vec![LayerFact {
            layer: amd_facts.layers[0].digest.clone(),
            summary: serde_json::json!({"os_release": {"ID": "debian", "VERSION_ID": "12"}}),
        }],
    };

    let summary = store
        .record_repository_sync(&app, &snapshot, at(0))
        .await
        .unwrap();
    assert_eq!(
        summary,
        SyncSummary {
            manifests_added: 4,
            tags_added: 3,
            ..SyncSummary::default()
        }
    );

    // Manifests: known, and their exact bytes back (a promotion PUTs them unchanged).
    assert!(store.known_manifest(&multi.digest).await.unwrap());
    assert!(
        !store
            .known_manifest(&digest("never fetched"))
            .await
            .unwrap()
    );
    let asked = [
        amd.digest.clone(),
        digest("never fetched"),
        solo.digest.clone(),
    ];
    assert_eq!(
        store.known_manifests(&asked).await.unwrap(),
        HashSet::from([amd.digest.clone(), solo.digest.clone()])
    );
    assert!(store.known_manifests(&[]).await.unwrap().is_empty());
    assert_eq!(
        store.manifest(&multi.digest).await.unwrap(),
        Some(multi.clone())
    );
    assert_eq!(
        store.manifest(&amd.digest).await.unwrap(),
        Some(amd.clone())
    );
    assert_eq!(
        store.manifest(&digest("never fetched")).await.unwrap(),
        None
    );
    let ManifestKind::Index(entries) = store.manifest(&multi.digest).await.unwrap().unwrap().kind
    else {
        panic!("an index comes back as an index");
    };
    assert!(entries[2].is_attestation && entries[2].platform.is_none());

    // Tags and the layer cache.
    assert_eq!(
        store.tag_digests(&app).await.unwrap(),
        vec![
            (tag("1.0"), multi.digest.clone()),
            (tag("latest"), multi.digest.clone()),
            (tag("tool"), solo.digest.clone()),
        ]
    );
    assert_eq!(
        store.layer_fact(&amd_facts.layers[0].digest).await.unwrap(),
        Some(snapshot.layer_facts[0].summary.clone())
    );
    assert_eq!(
        store.layer_fact(&digest("unread layer")).await.unwrap(),
        None
    );
    // Layers read outside a sync are cached too, and a re-read replaces the summary.
    let layer = digest("read later");
    for summary in [
        serde_json::json!({"reader": 1}),
        serde_json::json!({"reader": 2}),
    ] {
        store
            .record_layer_fact(&layer, &summary, at(1))
            .await
            .unwrap();
        assert_eq!(store.layer_fact(&layer).await.unwrap(), Some(summary));
    }

    // Image facts, with where they are tagged.
    let images = store.images(&ImageFilter::default()).await.unwrap();
    assert_eq!(images.len(), 3);
    let amd_summary = images.iter().find(|i| i.digest == amd.digest).unwrap();
    assert_eq!(amd_summary.config_digest, amd_facts.config_digest);
    assert_eq!(amd_summary.created, amd_facts.created);
    assert_eq!(amd_summary.platform, amd64());
    assert_eq!(amd_summary.labels, amd_facts.labels);
    assert_eq!(amd_summary.annotations, amd_facts.annotations);
    assert_eq!(amd_summary.total_size, amd_facts.total_size);
    assert_eq!(
        amd_summary.os_id.as_ref().map(OsIdentity::as_str),
        Some("debian-12-amd64")
    );
    assert_eq!(amd_summary.libc, Some(LibcFamily::Glibc));
    assert_eq!(amd_summary.base, None);
    // Its layers, in order, with diff_ids and sizes (what the dashboard's diff compares).
    assert_eq!(
        store.image_layers(&amd.digest).await.unwrap(),
        amd_facts.layers
    );
    assert!(
        store
            .image_layers(&digest("never-synced"))
            .await
            .unwrap()
            .is_empty()
    );
    let places: Vec<(String, String, bool)> = amd_summary
        .references
        .iter()
        .map(|r| {
            (
                r.repository.to_string(),
                r.tag.to_string(),
                r.index == Some(multi.digest.clone()),
            )
        })
        .collect();
    assert_eq!(
        places,
        vec![
            ("registry.example:5000/team/app".into(), "1.0".into(), true),
            (
                "registry.example:5000/team/app".into(),
                "latest".into(),
                true
            ),
        ]
    );
    let arm_summary = images.iter().find(|i| i.digest == arm.digest).unwrap();
    assert_eq!(arm_summary.platform, arm64());
    let solo_summary = images.iter().find(|i| i.digest == solo.digest).unwrap();
    assert_eq!(solo_summary.references.len(), 1);
    assert_eq!(solo_summary.references[0].index, None);

    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, Some(at(0)));
    assert_eq!(status.sync.last_error, None);
    assert_eq!(status.registry.last_sync_ok_at, Some(at(0)));
    assert_eq!((status.live_tags, status.gone_tags), (3, 0));

    // The same snapshot again changes nothing but the times.
    let again = store
        .record_repository_sync(&app, &snapshot, at(60))
        .await
        .unwrap();
    assert_eq!(again, SyncSummary::default());
    let tags = store.tags(&app).await.unwrap();
    assert!(
        tags.iter()
            .all(|t| t.first_seen_at == at(0) && t.last_seen_at == at(60))
    );
    assert_eq!(
        store.images(&ImageFilter::default()).await.unwrap().len(),
        3
    );

    // A later sync that learned the OS of an image fills it in; one that did not, never erases.
    let mut later = snapshot.clone();
    later.images[2].os_id = None;
    store
        .record_repository_sync(&app, &later, at(120))
        .await
        .unwrap();
    let images = store.images(&ImageFilter::default()).await.unwrap();
    let solo_summary = images.iter().find(|i| i.digest == solo.digest).unwrap();
    assert_eq!(
        solo_summary.os_id.as_ref().map(OsIdentity::as_str),
        Some("alpine-3.20-amd64")
    );
    assert_eq!(store.repository_statuses().await.unwrap().len(), 1);

    // Freshness streams its rows: the index's runnable children stay grouped under it, with
    // their platforms, and its attestation is left out.
    let facts = store.freshness_facts().await.unwrap();
    let indexes: Vec<(String, Vec<(String, String)>)> = facts
        .indexes
        .iter()
        .map(|(index, children)| {
            let children = children
                .iter()
                .map(|(child, platform)| (child.to_string(), platform.clone()))
                .collect();
            (index.to_string(), children)
        })
        .collect();
    assert_eq!(
        indexes,
        [(
            multi.digest.to_string(),
            vec![
                (amd.digest.to_string(), "linux/amd64".to_string()),
                (arm.digest.to_string(), "linux/arm64/v8".to_string()),
            ]
        )]
    );
    assert_eq!((facts.images.len(), facts.tags.len()), (3, 3));
}

async fn tags_that_disappear_are_gone_not_deleted(url: String) {
    let store = open(&url).await;
    let app = repo("ghcr.io/org/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let (two, two_facts) = image("two", amd64(), &["b"], None);
    let first = RepoSnapshot {
        tags: vec![
            (tag("stable"), one.digest.clone()),
            (tag("edge"), two.digest.clone()),
        ],
        manifests: vec![one.clone(), two.clone()],
        images: vec![one_facts, two_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &first, at(0))
        .await
        .unwrap();

    // `edge` disappears. Known manifests need not be sent again.
    let second = RepoSnapshot {
        tags: vec![(tag("stable"), one.digest.clone())],
        ..RepoSnapshot::default()
    };
    let summary = store
        .record_repository_sync(&app, &second, at(60))
        .await
        .unwrap();
    assert_eq!(summary.tags_gone, 1);
    assert_eq!(
        store.tag_digests(&app).await.unwrap(),
        vec![(tag("stable"), one.digest.clone())]
    );
    let tags = store.tags(&app).await.unwrap();
    let edge = tags.iter().find(|t| t.tag == tag("edge")).unwrap();
    assert_eq!(edge.gone_at, Some(at(60)));
    assert_eq!(edge.digest, two.digest);
    assert_eq!(edge.last_seen_at, at(0));
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!((status.live_tags, status.gone_tags), (1, 1));

    // Still gone on the next sync: gone_at keeps the first time it was missed.
    store
        .record_repository_sync(&app, &second, at(90))
        .await
        .unwrap();
    let tags = store.tags(&app).await.unwrap();
    assert_eq!(
        tags.iter().find(|t| t.tag == tag("edge")).unwrap().gone_at,
        Some(at(60))
    );

    // `edge` returns and `stable` moves.
    let third = RepoSnapshot {
        tags: vec![
            (tag("stable"), two.digest.clone()),
            (tag("edge"), two.digest.clone()),
        ],
        ..RepoSnapshot::default()
    };
    let summary = store
        .record_repository_sync(&app, &third, at(120))
        .await
        .unwrap();
    assert_eq!(
        summary,
        SyncSummary {
            tags_moved: 1,
            tags_returned: 1,
            ..SyncSummary::default()
        }
    );
    let tags = store.tags(&app).await.unwrap();
    let edge = tags.iter().find(|t| t.tag == tag("edge")).unwrap();
    assert_eq!(
        (edge.gone_at, edge.first_seen_at, edge.digest_since),
        (None, at(0), at(0))
    );
    let stable = tags.iter().find(|t| t.tag == tag("stable")).unwrap();
    assert_eq!(stable.digest, two.digest);
    assert_eq!(
        (stable.first_seen_at, stable.digest_since),
        (at(0), at(120))
    );

    // Freshness reads where a tag pointed before it moved; a tag back at its digest is no move.
    let stable_ref = berth_core::ImageRef::parse("ghcr.io/org/app:stable").unwrap();
    assert_eq!(
        store.tag_moves(&stable_ref).await.unwrap(),
        vec![(one.digest.clone(), two.digest.clone(), at(120))]
    );
    let facts = store.freshness_facts().await.unwrap();
    let moves: Vec<String> = facts
        .moves
        .iter()
        .map(|moved| format!("{} {}->{}", moved.reference, moved.from, moved.to))
        .collect();
    assert_eq!(
        moves,
        [format!(
            "ghcr.io/org/app:stable {}->{}",
            one.digest, two.digest
        )]
    );
    assert_eq!(facts.tags.len(), 2);
    assert_eq!(facts.images.len(), 2);

    // What the referrers recheck asks about: digests live tags reached since a moment (`one`
    // is reached by no live tag any more; `stable` reached `two` at 120).
    assert_eq!(
        store.digests_tagged_since(&app, at(100), 10).await.unwrap(),
        std::slice::from_ref(&two.digest)
    );
    assert!(
        store
            .digests_tagged_since(&app, at(121), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .digests_tagged_since(&app, at(0), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn failures_keep_what_was_known(url: String) {
    let store = open(&url).await;
    let app = repo("registry.example/team/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let snapshot = RepoSnapshot {
        tags: vec![(tag("1"), one.digest.clone())],
        manifests: vec![one.clone()],
        images: vec![one_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &snapshot, at(0))
        .await
        .unwrap();

    store
        .record_repository_failure(&app, "429 Too Many Requests past the retry budget", at(60))
        .await
        .unwrap();
    store
        .record_registry_failure("registry.example", "connection refused", at(70))
        .await
        .unwrap();

    assert_eq!(
        store.tag_digests(&app).await.unwrap(),
        vec![(tag("1"), one.digest.clone())]
    );
    assert!(store.known_manifest(&one.digest).await.unwrap());
    assert_eq!(
        store.images(&ImageFilter::default()).await.unwrap().len(),
        1
    );
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, Some(at(0)));
    assert_eq!(status.sync.last_sync_attempt_at, Some(at(60)));
    assert_eq!(
        status.sync.last_error.as_deref(),
        Some("429 Too Many Requests past the retry budget")
    );
    assert_eq!(status.registry.last_sync_ok_at, Some(at(0)));
    assert_eq!(
        status.registry.last_error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(status.live_tags, 1);

    // The next success clears both errors.
    store
        .record_repository_sync(&app, &snapshot, at(120))
        .await
        .unwrap();
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, Some(at(120)));
    assert_eq!(status.sync.last_error, None);
    assert_eq!(status.registry.last_error, None);

    // A repository or registry that never synced has a status with only its failure.
    let never = repo("registry.example/team/never");
    let long_error = "é".repeat(5000);
    store
        .record_repository_failure(&never, &long_error, at(130))
        .await
        .unwrap();
    let status = store.repository_status(&never).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, None);
    let kept = status.sync.last_error.unwrap();
    assert!(
        kept.len() <= 2048 && long_error.starts_with(&kept),
        "capped at a char boundary"
    );
    store
        .record_registry_failure("down.example", "401 Unauthorized", at(140))
        .await
        .unwrap();
    let registry = store
        .registry_status("down.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(registry.last_sync_ok_at, None);
    assert_eq!(registry.last_sync_attempt_at, Some(at(140)));
    assert_eq!(registry.last_error.as_deref(), Some("401 Unauthorized"));
    assert_eq!(
        store.registry_status("unknown.example").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .repository_status(&repo("unknown.example/x"))
            .await
            .unwrap(),
        None
    );
}

async fn a_failed_sync_leaves_nothing_behind(url: String) {
    let store = open(&url).await;
    let app = repo("registry.example/team/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let first = RepoSnapshot {
        tags: vec![
            (tag("1"), one.digest.clone()),
            (tag("old"), one.digest.clone()),
        ],
        manifests: vec![one.clone()],
        images: vec![one_facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &first, at(0))
        .await
        .unwrap();
    let tags_before = store.tags(&app).await.unwrap();

    // A snapshot whose every row is fine until the last: a tag pointing at a manifest the
    // store has never seen violates a foreign key, after manifests, images, layers, layer
    // facts and other tags were written inside the transaction.
    let (two, two_facts) = image("two", amd64(), &["a", "b"], None);
    let broken = RepoSnapshot {
        truncated: false,
        tags: vec![
            (tag("1"), two.digest.clone()),
            (tag("2"), two.digest.clone()),
            (tag("zzz-last"), digest("a manifest nobody fetched")),
        ],
        manifests: vec![two.clone()],
        images: vec![two_facts.clone()],
        layer_facts: vec![LayerFact {
            layer: two_facts.layers[1].digest.clone(),
            summary: serde_json::json!({"libc": "musl"}),
        }],
    };
    let error = store
        .record_repository_sync(&app, &broken, at(60))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Database {
                operation: "record tags",
                ..
            }
        ),
        "{error:?}"
    );

    assert!(!store.known_manifest(&two.digest).await.unwrap());
    assert_eq!(store.manifest(&two.digest).await.unwrap(), None);
    assert_eq!(
        store.layer_fact(&two_facts.layers[1].digest).await.unwrap(),
        None
    );
    assert_eq!(
        store.tags(&app).await.unwrap(),
        tags_before,
        "no tag moved, none marked gone"
    );
    assert_eq!(
        store.images(&ImageFilter::default()).await.unwrap().len(),
        1
    );
    assert_eq!(store.all_layer_chains().await.unwrap().len(), 1);
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, Some(at(0)));
    assert_eq!(status.sync.last_sync_attempt_at, Some(at(0)));

    // The store is still usable: the corrected sync lands whole.
    let mut fixed = broken.clone();
    fixed.tags.pop();
    let summary = store
        .record_repository_sync(&app, &fixed, at(120))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.manifests_added,
            summary.tags_added,
            summary.tags_gone
        ),
        (1, 1, 1)
    );
}

async fn lineage_is_a_lookup(url: String) {
    let store = open(&url).await;
    let app = repo("registry.example/team/app");
    let (base, base_facts) = image("debian", amd64(), &["debian"], Some("debian-12-amd64"));
    let (base_arm, base_arm_facts) = image(
        "debian-arm",
        arm64(),
        &["debian-arm"],
        Some("debian-12-arm64"),
    );
    let base_index = index(&[&base, &base_arm], &[amd64(), arm64()]);
    let (runtime, runtime_facts) = image(
        "runtime",
        amd64(),
        &["debian", "runtime"],
        Some("debian-12-amd64"),
    );
    let (service, service_facts) = image(
        "service",
        amd64(),
        &["debian", "runtime", "service"],
        Some("debian-12-amd64"),
    );
    let (other, other_facts) = image("other", amd64(), &["alpine"], Some("alpine-3.20-amd64"));
    let snapshot = RepoSnapshot {
        tags: vec![
            (tag("base"), base_index.digest.clone()),
            (tag("runtime"), runtime.digest.clone()),
            (tag("service"), service.digest.clone()),
            (tag("other"), other.digest.clone()),
        ],
        manifests: vec![
            base_index.clone(),
            base.clone(),
            base_arm.clone(),
            runtime.clone(),
            service.clone(),
            other.clone(),
        ],
        images: vec![
            base_facts.clone(),
            base_arm_facts,
            runtime_facts.clone(),
            service_facts.clone(),
            other_facts,
        ],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&app, &snapshot, at(0))
        .await
        .unwrap();

    let chains = store.all_layer_chains().await.unwrap();
    assert_eq!(chains.len(), 5);
    let service_chain = chains.iter().find(|c| c.image == service.digest).unwrap();
    let expected: Vec<_> = service_facts
        .layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect();
    assert_eq!(service_chain.diff_ids, expected, "base first");
    let expected: Vec<_> = service_facts
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    assert_eq!(service_chain.layers, expected);

    let edge = |digest: &berth_core::Digest, shared| BaseMatch {
        base: digest.clone(),
        method: LineageMethod::LayerPrefix,
        shared_layers: shared,
    };
    store
        .set_base(&runtime.digest, Some(&edge(&base.digest, 1)))
        .await
        .unwrap();
    store
        .set_base(&service.digest, Some(&edge(&runtime.digest, 2)))
        .await
        .unwrap();
    let unknown = store
        .set_base(&digest("no such image"), Some(&edge(&base.digest, 1)))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );

    assert_eq!(
        store.children_of(&base.digest).await.unwrap(),
        vec![runtime.digest.clone()]
    );
    assert_eq!(
        store.children_of(&base_index.digest).await.unwrap(),
        vec![runtime.digest.clone()],
        "an index stands for its platform manifests"
    );
    assert!(store.children_of(&other.digest).await.unwrap().is_empty());

    let built_on = |digest: &berth_core::Digest| ImageFilter {
        built_on: Some(digest.clone()),
        ..ImageFilter::default()
    };
    let digests = |images: Vec<berth_store::ImageSummary>| -> HashSet<_> {
        images.into_iter().map(|i| i.digest).collect()
    };
    let expected = HashSet::from([runtime.digest.clone(), service.digest.clone()]);
    assert_eq!(
        digests(store.images(&built_on(&base.digest)).await.unwrap()),
        expected
    );
    assert_eq!(
        digests(store.images(&built_on(&base_index.digest)).await.unwrap()),
        expected
    );
    assert_eq!(
        digests(store.images(&built_on(&runtime.digest)).await.unwrap()),
        HashSet::from([service.digest.clone()])
    );
    assert!(
        store
            .images(&built_on(&service.digest))
            .await
            .unwrap()
            .is_empty()
    );

    let images = store.images(&built_on(&runtime.digest)).await.unwrap();
    assert_eq!(images[0].base, Some(edge(&runtime.digest, 2)));

    // A base may be a digest the store holds no image for; clearing removes the edge.
    let elsewhere = edge(&digest("somebody else's base"), 1);
    store
        .set_base(&other.digest, Some(&elsewhere))
        .await
        .unwrap();
    assert_eq!(
        store.children_of(&elsewhere.base).await.unwrap(),
        vec![other.digest.clone()]
    );
    store.set_base(&runtime.digest, None).await.unwrap();
    assert!(store.children_of(&base.digest).await.unwrap().is_empty());
    assert!(
        store
            .images(&built_on(&base.digest))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn images_filter_by_repository_and_os(url: String) {
    let store = open(&url).await;
    let app = repo("registry.example/team/app");
    let tools = repo("registry.example/team/tools");
    let (debian, debian_facts) = image("debian-app", amd64(), &["d"], Some("debian-12-amd64"));
    let (debian11, debian11_facts) = image("old-app", amd64(), &["d11"], Some("debian-11-amd64"));
    let (alpine, alpine_facts) = image("alpine-tool", amd64(), &["a"], Some("alpine-3.20-amd64"));
    let (unknown_os, unknown_facts) = image("scratch-tool", amd64(), &["s"], None);
    store
        .record_repository_sync(
            &app,
            &RepoSnapshot {
                tags: vec![
                    (tag("1"), debian.digest.clone()),
                    (tag("0"), debian11.digest.clone()),
                ],
                manifests: vec![debian.clone(), debian11.clone()],
                images: vec![debian_facts, debian11_facts],
                ..RepoSnapshot::default()
            },
            at(0),
        )
        .await
        .unwrap();
    store
        .record_repository_sync(
            &tools,
            &RepoSnapshot {
                tags: vec![
                    (tag("1"), alpine.digest.clone()),
                    (tag("scratch"), unknown_os.digest.clone()),
                    (tag("shared"), debian.digest.clone()),
                ],
                manifests: vec![alpine.clone(), unknown_os.clone()],
                images: vec![alpine_facts, unknown_facts],
                ..RepoSnapshot::default()
            },
            at(0),
        )
        .await
        .unwrap();

    // A page of the listing, and a point lookup, agree with the whole listing.
    let all = store.images(&ImageFilter::default()).await.unwrap();
    assert!(all.len() >= 3, "{} images", all.len());
    let page = store
        .images(&ImageFilter {
            limit: Some(2),
            offset: 1,
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page, all[1..3]);
    let one = store
        .images(&ImageFilter {
            digest: Some(all[2].digest.clone()),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(one, all[2..3]);

    let select = |repository: Option<&berth_store::RepositoryName>, os: Option<&str>| ImageFilter {
        repository: repository.cloned(),
        os: os.map(str::to_string),
        ..ImageFilter::default()
    };
    let digests = |images: Vec<berth_store::ImageSummary>| -> HashSet<_> {
        images.into_iter().map(|i| i.digest).collect()
    };
    let cases = [
        (
            select(None, None),
            vec![&debian, &debian11, &alpine, &unknown_os],
        ),
        (select(Some(&app), None), vec![&debian, &debian11]),
        (
            select(Some(&tools), None),
            vec![&alpine, &unknown_os, &debian],
        ),
        (select(None, Some("debian")), vec![&debian, &debian11]),
        (select(None, Some("debian-12")), vec![&debian]),
        (select(None, Some("debian-12-amd64")), vec![&debian]),
        (select(None, Some("debian-1")), vec![]),
        (select(Some(&tools), Some("debian-12")), vec![&debian]),
        (select(Some(&repo("registry.example/none")), None), vec![]),
    ];
    for (filter, expected) in cases {
        let expected: HashSet<_> = expected.into_iter().map(|m| m.digest.clone()).collect();
        assert_eq!(
            digests(store.images(&filter).await.unwrap()),
            expected,
            "{filter:?}"
        );
    }

    // An image tagged in two repositories lists both places.
    let all = store.images(&ImageFilter::default()).await.unwrap();
    let shared = all.iter().find(|i| i.digest == debian.digest).unwrap();
    let places: Vec<String> = shared
        .references
        .iter()
        .map(|r| format!("{}:{}", r.repository, r.tag))
        .collect();
    assert_eq!(
        places,
        [
            "registry.example/team/app:1",
            "registry.example/team/tools:shared"
        ]
    );
    // Newest first (created grows with the layer count here, then by digest).
    assert!(
        all.windows(2)
            .all(|pair| pair[0].created >= pair[1].created)
    );
}

async fn channel_history_and_audit_are_append_only(url: String) {
    let store = open(&url).await;
    let change = |channel: &str, seed: &str, previous: Option<&str>, seconds, kind| ChannelChange {
        catalog_name: "python".into(),
        variant: Some("slim".into()),
        channel: channel.into(),
        digest: digest(seed),
        previous: previous.map(digest),
        at: at(seconds),
        actor: "scheduler".into(),
        reason: "soaked 7 days".into(),
        kind,
    };
    let first = change("stable", "v1", None, 0, ChannelChangeKind::Promotion);
    let second = change("stable", "v2", Some("v1"), 60, ChannelChangeKind::Promotion);
    let third = change("stable", "v1", Some("v2"), 120, ChannelChangeKind::Rollback);
    let mut other = change("edge", "v3", None, 30, ChannelChangeKind::Manual);
    other.catalog_name = "node".into();
    other.variant = None;
    let mut ids = Vec::new();
    for entry in [&first, &second, &third, &other] {
        ids.push(store.append_channel_change(entry).await.unwrap());
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    let python = store.channel_history(Some("python"), 10).await.unwrap();
    let entries: Vec<_> = python.iter().map(|logged| logged.entry.clone()).collect();
    assert_eq!(entries, vec![third.clone(), second, first]);
    assert_eq!(python[0].id, ids[2]);
    assert_eq!(store.channel_history(None, 10).await.unwrap().len(), 4);
    assert_eq!(store.channel_history(None, 2).await.unwrap().len(), 2);
    let node = store.channel_history(Some("node"), 10).await.unwrap();
    assert_eq!(node[0].entry, other);

    let audit = AuditEntry {
        at: at(10),
        actor: "alice".into(),
        action: "promote".into(),
        subject: "python:slim@stable".into(),
        before: Some(serde_json::json!({"digest": digest("v1").as_str()})),
        after: Some(serde_json::json!({"digest": digest("v2").as_str(), "n": [1, 2]})),
    };
    let reload = AuditEntry {
        at: at(20),
        actor: "bob".into(),
        action: "catalog.reload".into(),
        subject: "catalog".into(),
        before: None,
        after: None,
    };
    store.append_audit(&audit).await.unwrap();
    store.append_audit(&reload).await.unwrap();
    let log = store.audit_log(None, 10).await.unwrap();
    let entries: Vec<_> = log.into_iter().map(|logged| logged.entry).collect();
    assert_eq!(entries, vec![reload, audit.clone()]);
    let about = store
        .audit_log(Some("python:slim@stable"), 10)
        .await
        .unwrap();
    assert_eq!(about.len(), 1);
    assert_eq!(about[0].entry, audit);
    // Issue 15, item 20: a name stands for everything under it (`NAME:channel`,
    // `NAME/variant:channel`), and only for that.
    for (subject, actor) in [
        ("python3.11:latest", "a"),
        ("python3.11/jobs:latest", "b"),
        ("python3.110:latest", "c"),
    ] {
        store
            .append_audit(&AuditEntry {
                subject: subject.into(),
                actor: actor.into(),
                ..audit.clone()
            })
            .await
            .unwrap();
    }
    let actors = |subject: &'static str| {
        let store = store.clone();
        async move {
            let mut actors: Vec<String> = store
                .audit_log(Some(subject), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|logged| logged.entry.actor)
                .collect();
            actors.sort();
            actors
        }
    };
    assert_eq!(actors("python3.11").await, ["a", "b"]);
    assert_eq!(actors("python3.11/jobs").await, ["b"]);
    assert_eq!(actors("python3.11:latest").await, ["a"]);
}

async fn a_newer_schema_is_refused(url: String) {
    let store = open(&url).await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    store.close().await;

    // Opening again is a no-op for migrations.
    let store = open(&url).await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    store.close().await;

    // A newer berth migrated this database.
    let newer = SCHEMA_VERSION + 1;
    common::execute(
        &url,
        &format!(
            "INSERT INTO schema_version (version, name, checksum, applied_at) \
             VALUES ({newer}, 'from the future', 'x', CURRENT_TIMESTAMP)"
        ),
    )
    .await;
    let error = Store::open(&url).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "store schema version {newer} is newer than this berth (knows {SCHEMA_VERSION}); upgrade berth"
        )
    );
}

/// Issue 15, item 7: a read-only open migrates nothing (an empty database stays empty), reads
/// what a writer recorded, and cannot write.
async fn a_read_only_store_reads_and_never_writes(url: String) {
    if url.starts_with("sqlite:") {
        // An empty file is a database without berth's schema.
        let path = url.trim_start_matches("sqlite://");
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    let error = Store::open_read_only(&url).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooOld {
                found: 0,
                known: SCHEMA_VERSION
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("berth sync"), "{error}");

    let writer = open(&url).await;
    let app = repo("registry.example/team/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let snapshot = RepoSnapshot {
        tags: vec![(tag("1"), one.digest.clone())],
        manifests: vec![one.clone()],
        images: vec![one_facts],
        ..RepoSnapshot::default()
    };
    writer
        .record_repository_sync(&app, &snapshot, at(0))
        .await
        .unwrap();
    writer.close().await;

    let reader = Store::open_read_only(&url)
        .await
        .unwrap_or_else(|error| panic!("{error:?}"));
    assert_eq!(
        reader.tag_digests(&app).await.unwrap(),
        vec![(tag("1"), one.digest.clone())]
    );
    let error = reader
        .record_repository_sync(&app, &snapshot, at(1))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Database { .. }), "{error:?}");
}

async fn replicas_opening_at_once_migrate_once(url: String) {
    let opened = futures_join_all(&url, 4).await;
    for store in &opened {
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
    let app = repo("registry.example/team/app");
    let (one, one_facts) = image("one", amd64(), &["a"], None);
    let snapshot = RepoSnapshot {
        tags: vec![(tag("1"), one.digest.clone())],
        manifests: vec![one.clone()],
        images: vec![one_facts],
        ..RepoSnapshot::default()
    };
    // Replicas syncing the same repository at once: each sync is whole, none fails.
    let (a, b) = tokio::join!(
        opened[0].record_repository_sync(&app, &snapshot, at(0)),
        opened[1].record_repository_sync(&app, &snapshot, at(1)),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(
        opened[2].tag_digests(&app).await.unwrap(),
        vec![(tag("1"), one.digest)]
    );
}

/// Opens `count` stores on `url` concurrently, as replicas starting together would.
async fn futures_join_all(url: &str, count: usize) -> Vec<Store> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(
            task.await
                .unwrap()
                .unwrap_or_else(|error| panic!("{error:?}")),
        );
    }
    stores
}

#[tokio::test]
async fn unknown_urls_are_refused_without_leaking_passwords() {
    let error = Store::open("mysql://user:hunter2@db/berth")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnsupportedUrl { .. }));
    assert!(!error.to_string().contains("hunter2"), "{error}");

    let error = Store::open("postgres://user:hunter2@127.0.0.1:1/berth")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Issue 15, item 5: a password in the query string (which the driver honours) or in a
/// key=value DSN is masked like one in the authority, in `Display` and `Debug` alike.
#[tokio::test]
async fn query_string_and_dsn_passwords_never_reach_messages() {
    for url in [
        "postgres://user@127.0.0.1:1/berth?password=hunter2",
        "postgres://127.0.0.1:1/berth?sslmode=disable&password=hunter2",
        "host=127.0.0.1 port=1 password=hunter2 dbname=berth",
    ] {
        for read_only in [false, true] {
            let error = if read_only {
                Store::open_read_only(url).await.unwrap_err()
            } else {
                Store::open(url).await.unwrap_err()
            };
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("password=***"), "{shown}");
        }
    }
}

/// Issue 15, item 7: a reader given a SQLite path that does not exist creates neither the file
/// nor its directory, and says so.
#[tokio::test]
async fn a_missing_store_is_not_created_by_a_reader() {
    let dir = common::temp_dir().join("nope");
    let url = format!("sqlite://{}/none.db", dir.display());
    let error = Store::open_read_only(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Missing { .. }), "{error:?}");
    assert!(error.to_string().contains("berth sync"), "{error}");
    assert!(!dir.exists(), "{} was created", dir.display());
}

/// Issue 15, item 7: a writer refuses a database path that is a symbolic link (whoever places
/// the link would choose the file berth writes), and leaves the link's target alone.
#[tokio::test]
async fn a_symlinked_database_is_refused_for_writing() {
    let dir = common::temp_dir();
    let target = dir.join("elsewhere.db");
    std::fs::write(&target, b"not berth's").unwrap();
    let link = dir.join("berth.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let url = format!("sqlite://{}", link.display());
    let error = Store::open(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Symlink { .. }), "{error:?}");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read(&target).unwrap(), b"not berth's");

    // Its WAL file likewise.
    let real = dir.join("real.db");
    let wal = dir.join("real.db-wal");
    std::os::unix::fs::symlink(&target, &wal).unwrap();
    let url = format!("sqlite://{}", real.display());
    let error = Store::open(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Symlink { .. }), "{error:?}");
}

async fn a_promotion_slot_is_claimed_once(url: String) {
    let store = open(&url).await;
    let key = |variant: Option<&str>| PromotionKey {
        catalog_name: "python3.11".into(),
        variant: variant.map(str::to_string),
        from: "staging".into(),
        to: "latest".into(),
    };
    let jobs = key(Some("jobs"));
    assert_eq!(store.promotion_slot(&jobs).await.unwrap(), None);
    // The first sight of a rule sets its baseline; a second replica loses that race.
    assert!(
        store
            .claim_promotion_slot(&jobs, None, at(10), at(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_promotion_slot(&jobs, None, at(11), at(11))
            .await
            .unwrap()
    );
    assert_eq!(store.promotion_slot(&jobs).await.unwrap(), Some(at(10)));
    // Two replicas saw slot 100 due after reading 10: one wins, the other sees it taken.
    assert!(
        store
            .claim_promotion_slot(&jobs, Some(at(10)), at(100), at(101))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_promotion_slot(&jobs, Some(at(10)), at(100), at(102))
            .await
            .unwrap()
    );
    assert_eq!(store.promotion_slot(&jobs).await.unwrap(), Some(at(100)));
    // The default image's slot is its own.
    assert_eq!(store.promotion_slot(&key(None)).await.unwrap(), None);
}
