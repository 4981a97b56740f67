//! Signatures on both backends: what a sync read at a tag replaces what it read there before;
//! verified checks reach policy knowledge by point lookup, by the change sequence (a subject
//! whose signatures went is stated empty) and by the whole load alike; layers a new key has
//! not checked are found, and a former lease holder records nothing.

#[macro_use]
mod common;

use std::time::Duration;

use berth_core::provenance::{Signed, SignedKind, Tests};
use berth_store::signatures::{SignatureCheck, SignatureLayer, SignatureSource};
use berth_store::{RepoSnapshot, Store, StoreError};
use common::{amd64, at, digest, image, repo, tag};

on_both_backends! {
    memory: [
        signatures_are_knowledge_and_follow_the_tag_they_were_read_at,
        a_new_key_finds_the_layers_it_has_not_checked,
    ],
    file: [],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

fn signed(kind: SignedKind, key: &str) -> Signed {
    Signed {
        kind,
        key: key.to_string(),
        key_name: format!("name-{key}"),
        predicate_type: None,
        builder: None,
        source_repository: None,
        source_commit: None,
        tests: None,
        tests_url: None,
    }
}

fn layer(seed: &str, kind: SignedKind) -> SignatureLayer {
    SignatureLayer {
        layer: digest(seed),
        blob: digest(&format!("blob-{seed}")),
        kind,
        media_type: "application/vnd.dev.cosign.simplesigning.v1+json".to_string(),
        payload: Some(format!("{{\"seed\":\"{seed}\"}}")),
        signature: Some("MEUC".to_string()),
        problem: None,
    }
}

fn check(seed: &str, key: &str, outcome: Result<Signed, String>) -> SignatureCheck {
    SignatureCheck {
        layer: digest(seed),
        key: key.to_string(),
        key_name: format!("name-{key}"),
        outcome,
    }
}

async fn signatures_are_knowledge_and_follow_the_tag_they_were_read_at(url: String) {
    let store = open(&url).await;
    let repository = repo("r.test/app");
    let (manifest, facts) = image("app", amd64(), &["debian", "app"], None);
    let subject = manifest.digest.clone();
    let snapshot = RepoSnapshot {
        tags: vec![(tag("1"), subject.clone())],
        manifests: vec![manifest],
        images: vec![facts],
        ..RepoSnapshot::default()
    };
    store
        .record_repository_sync(&repository, &snapshot, at(1))
        .await
        .unwrap();
    let (before, generation) = store.knowledge().await.unwrap();
    assert!(before.signatures(&subject).is_empty());

    let source = SignatureSource {
        subject: subject.clone(),
        repository: repository.clone(),
        found_at: "sha256-app.sig".to_string(),
        manifest: digest("sig-manifest-1"),
    };
    let tested = Signed {
        tests: Some(Tests::Passed),
        predicate_type: Some("https://in-toto.io/attestation/test-result/v0.1".to_string()),
        ..signed(SignedKind::Attestation, "k1")
    };
    store
        .record_signatures(
            &source,
            &[
                layer("l1", SignedKind::Signature),
                layer("l2", SignedKind::Attestation),
            ],
            &[
                check("l1", "k1", Ok(signed(SignedKind::Signature, "k1"))),
                check(
                    "l1",
                    "k2",
                    Err("signed by none of the trusted keys: k2".to_string()),
                ),
                check("l2", "k1", Ok(tested.clone())),
            ],
            at(2),
        )
        .await
        .unwrap();
    let sources = store.signature_sources(&repository).await.unwrap();
    assert_eq!(
        sources.get(&(subject.clone(), "sha256-app.sig".to_string())),
        Some(&digest("sig-manifest-1"))
    );
    let expected = vec![signed(SignedKind::Signature, "k1"), tested.clone()];
    let (whole, _) = store.knowledge().await.unwrap();
    assert_eq!(whole.signatures(&subject), expected.as_slice());
    let changes = store.knowledge_changes(generation).await.unwrap();
    assert_eq!(
        changes.signatures,
        vec![(subject.clone(), expected.clone())]
    );
    assert_eq!(
        before.clone().apply(&changes).signatures(&subject),
        expected.as_slice()
    );
    let point = store
        .knowledge_for(&[berth_core::ImageRef::parse("r.test/app:1").unwrap()])
        .await
        .unwrap();
    assert_eq!(point.signatures(&subject), expected.as_slice());
    let view = store.signatures_of(&subject).await.unwrap();
    assert_eq!(view.layers.len(), 2);
    assert_eq!(view.checks.len(), 3);
    assert!(view.checks.iter().any(|c| c.outcome.is_err()));

    // The tag moved to a manifest with one unverifiable layer: what was read there is replaced,
    // and the subject is stated with nothing verified.
    let generation = changes.generation;
    let moved = SignatureSource {
        manifest: digest("sig-manifest-2"),
        ..source.clone()
    };
    store
        .record_signatures(
            &moved,
            &[layer("l3", SignedKind::Signature)],
            &[check("l3", "k1", Err("tampered".to_string()))],
            at(3),
        )
        .await
        .unwrap();
    let changes = store.knowledge_changes(generation).await.unwrap();
    assert_eq!(changes.signatures, vec![(subject.clone(), Vec::new())]);
    let (whole, _) = store.knowledge().await.unwrap();
    assert!(whole.signatures(&subject).is_empty());
    assert_eq!(store.signatures_of(&subject).await.unwrap().layers.len(), 1);
}

async fn a_new_key_finds_the_layers_it_has_not_checked(url: String) {
    let store = open(&url).await;
    let repository = repo("r.test/app");
    let subject = digest("app");
    let source = SignatureSource {
        subject: subject.clone(),
        repository: repository.clone(),
        found_at: "sha256-app.sig".to_string(),
        manifest: digest("m"),
    };
    store
        .record_signatures(
            &source,
            &[layer("l1", SignedKind::Signature)],
            &[check("l1", "k1", Err("no".to_string()))],
            at(1),
        )
        .await
        .unwrap();
    let keys = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert!(
        store
            .unchecked_signature_layers(&keys(&["k1"]), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let unchecked = store
        .unchecked_signature_layers(&keys(&["k1", "k2"]), 10)
        .await
        .unwrap();
    assert_eq!(unchecked.len(), 1);
    assert_eq!(
        unchecked[0].layer.payload.as_deref(),
        Some("{\"seed\":\"l1\"}")
    );
    assert_eq!(unchecked[0].repository, repository);
    let generation = store.knowledge_generation().await.unwrap();
    store
        .record_signature_checks(
            &[(
                subject.clone(),
                check("l1", "k2", Ok(signed(SignedKind::Signature, "k2"))),
            )],
            at(2),
        )
        .await
        .unwrap();
    assert!(
        store
            .unchecked_signature_layers(&keys(&["k1", "k2"]), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let changes = store.knowledge_changes(generation).await.unwrap();
    assert_eq!(
        changes.signatures,
        vec![(subject.clone(), vec![signed(SignedKind::Signature, "k2")])]
    );

    // A replica that lost the sync lease writes nothing.
    let old = store
        .claim_lease("sync", "replica-a", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    let old_store = store.fenced(old);
    tokio::time::sleep(Duration::from_millis(120)).await;
    store
        .claim_lease("sync", "replica-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let refused = old_store
        .record_signature_checks(
            &[(
                subject.clone(),
                check("l1", "k3", Ok(signed(SignedKind::Signature, "k3"))),
            )],
            at(3),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let refused = old_store.record_signatures(&source, &[], &[], at(3)).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(store.signatures_of(&subject).await.unwrap().checks.len(), 2);
}
