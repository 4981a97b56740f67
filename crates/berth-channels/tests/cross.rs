//! Promotion to another repository or registry, against real registries: the blobs the target
//! lacks are mounted (one registry) or streamed and uploaded (another registry), an index's child
//! manifests go in by digest, and skopeo, an independent client, reads the same digest there.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_channels::{Action, Outcome, PromoteRequest, Subject, history};
use berth_core::catalog::{self, Catalog, Format, Source};
use berth_core::channels::{ChangeKind, PromotionRule, Request, channel_tag};
use berth_core::{DigestAlgorithm, Tag};
use berth_oci::digest::ContentHasher;
use berth_oci::{AuthFile, Client, ClientConfig, CopyReport, RegistryConfig};
use berth_store::Store;
use berth_testkit::{OwnRegistry, Testbed, skopeo};
use chrono::{DateTime, Utc};

fn tag(text: &str) -> Tag {
    channel_tag(text).unwrap()
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("berth-channels/{name}-{}-{nanos}", std::process::id())
}

/// A client for the test bed's two registries (the TLS one with its CA and credentials) and
/// any further plain registries.
fn client(plain: &[&str]) -> Client {
    let testbed = Testbed::get();
    let auth =
        AuthFile::parse(&std::fs::read(testbed.var("BERTH_TEST_AUTHFILE")).unwrap()).unwrap();
    let mut registries = HashMap::new();
    for address in std::iter::once(&testbed.plain()).chain(plain) {
        registries.insert(
            address.to_string(),
            RegistryConfig {
                plain_http: true,
                ..RegistryConfig::default()
            },
        );
    }
    registries.insert(
        testbed.tls().to_string(),
        RegistryConfig {
            ca_pem: Some(std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
            credentials: auth.credentials_for(testbed.tls()).cloned(),
            ..RegistryConfig::default()
        },
    );
    Client::new(ClientConfig {
        registries,
        ..ClientConfig::default()
    })
}

/// A catalog entry `app` whose default image is `source` and whose variant `public` is
/// `target`; `staging` of the source holds the test bed image `image`.
fn catalog(source: &str, target: &str, image: &str) -> Catalog {
    catalog_staged(source, target, image, &["--dest-tls-verify=false"])
}

/// [`catalog`] with skopeo's options for the registry of `source` (TLS, credentials).
fn catalog_staged(source: &str, target: &str, image: &str, dest_options: &[&str]) -> Catalog {
    let plain = Testbed::get().plain();
    let from = format!("docker://{plain}/{image}");
    let to = format!("docker://{source}:staging");
    let mut args = vec![
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
    ];
    args.extend_from_slice(dest_options);
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args);
    let yaml = format!(
        "images:\n  app:\n    image: {source}\n    channels: [staging, latest]\n    variants:\n      public:\n        image: {target}\n"
    );
    let loaded = catalog::load(
        &[Source {
            name: "catalog.yaml",
            text: &yaml,
        }],
        Format::Berth,
        now(),
    );
    loaded.catalog.expect("the test catalog is valid")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T09:00:00Z")
        .unwrap()
        .to_utc()
}

/// `staging` of the default image to `latest` of the variant `public`.
fn to_public() -> PromotionRule {
    let mut rule = PromotionRule::manual(tag("staging"), tag("latest"));
    rule.to_variant = Some("public".to_string());
    rule
}

async fn promote(client: &Client, store: &Store, catalog: &Catalog) -> Outcome {
    let (subject, entry) = Subject::find(catalog, "app").unwrap();
    let rule = to_public();
    let request = PromoteRequest {
        rule: &rule,
        request: Request::ByHand { digest: None },
        actor: "alice".into(),
        reason: "publish".into(),
        force: false,
        stamp: false,
    };
    berth_channels::promote(client, store, &subject, entry, &request, now())
        .await
        .unwrap()
}

fn copied(outcome: &Outcome) -> CopyReport {
    match &outcome.action {
        Action::Moved {
            copied: Some(report),
            kind: ChangeKind::Promotion,
            ..
        } => *report,
        other => panic!("expected a promotion with a copy, got {other:?}"),
    }
}

/// The digest of the manifest skopeo reads at `reference` (`registry/repo:tag`).
fn digest_seen(reference: &str, tls: bool) -> String {
    let testbed = Testbed::get();
    let raw = if tls {
        let cert_dir = std::path::Path::new(testbed.var("BERTH_TEST_CA"))
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let creds = format!(
            "{}:{}",
            testbed.var("BERTH_TEST_USER"),
            testbed.var("BERTH_TEST_PASSWORD")
        );
        skopeo(&[
            "inspect",
            "--raw",
            "--cert-dir",
            &cert_dir,
            "--creds",
            &creds,
            &format!("docker://{reference}"),
        ])
    } else {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
    };
    ContentHasher::digest_of(DigestAlgorithm::Sha256, raw.as_bytes()).to_string()
}

#[tokio::test]
async fn another_repository_of_the_same_registry_gets_the_blobs_by_mount() {
    let plain = Testbed::get().plain();
    let source = format!("{plain}/{}", unique("mount-source"));
    let target = format!("{plain}/{}", unique("mount-target"));
    let catalog = catalog(&source, &target, "berth/base:1");
    let client = client(&[]);
    let store = Store::open("sqlite::memory:").await.unwrap();

    let before = client.stats();
    let outcome = promote(&client, &store, &catalog).await;
    let report = copied(&outcome);
    assert_eq!(outcome.subject, "app/public");
    assert!(report.mounted >= 2, "config and layers mounted: {report:?}");
    assert_eq!(report.uploaded, 0, "{report:?}");
    assert_eq!(
        client.stats().since(&before).post,
        u64::from(report.mounted),
        "one mount request per blob, no upload"
    );
    let base = Testbed::get().digest("berth/base:1");
    assert_eq!(digest_seen(&format!("{target}:latest"), false), base);

    // The target variant's channel has the history; the source's `latest` has none.
    let (public, _) = Subject::find(&catalog, "app/public").unwrap();
    let recorded = history::load(&store, &public, &tag("latest"))
        .await
        .unwrap();
    assert_eq!(
        recorded.current().map(|digest| digest.to_string()),
        Some(base)
    );
    let (default, _) = Subject::find(&catalog, "app").unwrap();
    let untouched = history::load(&store, &default, &tag("latest"))
        .await
        .unwrap();
    assert!(untouched.history.is_empty());

    // Idempotent: nothing is copied or moved again.
    let again = promote(&client, &store, &catalog).await;
    assert!(matches!(
        again.action,
        Action::Unchanged { digest: Some(_) }
    ));
}

#[tokio::test]
async fn another_registry_gets_the_blobs_uploaded_with_credentials() {
    let testbed = Testbed::get();
    let source = format!("{}/{}", testbed.plain(), unique("upload-source"));
    let target = format!("{}/{}", testbed.tls(), unique("upload-target"));
    let catalog = catalog(&source, &target, "berth/child:1");
    let client = client(&[]);
    let store = Store::open("sqlite::memory:").await.unwrap();

    let outcome = promote(&client, &store, &catalog).await;
    let report = copied(&outcome);
    assert_eq!(report.mounted, 0, "{report:?}");
    assert!(
        report.uploaded >= 2,
        "config and layers uploaded: {report:?}"
    );
    assert_eq!(
        digest_seen(&format!("{target}:latest"), true),
        testbed.digest("berth/child:1")
    );
}

#[tokio::test]
async fn an_index_crosses_registries_as_an_index_with_the_same_digest() {
    let testbed = Testbed::get();
    let own = OwnRegistry::start();
    let source = format!("{}/{}", testbed.plain(), unique("index-source"));
    let target = format!("{}/{}", own.address, unique("index-target"));
    let catalog = catalog(&source, &target, "berth/multi:1");
    let client = client(&[&own.address]);
    let store = Store::open("sqlite::memory:").await.unwrap();

    let outcome = promote(&client, &store, &catalog).await;
    let report = copied(&outcome);
    assert!(
        report.manifests >= 2,
        "every platform's manifest: {report:?}"
    );
    assert!(report.uploaded >= 4, "{report:?}");
    let multi = testbed.digest("berth/multi:1");
    assert!(matches!(&outcome.action, Action::Moved { to, .. } if to.to_string() == multi));
    assert_eq!(digest_seen(&format!("{target}:latest"), false), multi);
    // Every child manifest and blob is in the new registry: skopeo copies the whole index
    // out of it, verifying each digest.
    let out = std::env::temp_dir().join(format!("berth-cross-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{target}:latest"),
        &format!("oci:{}:latest", out.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(multi.as_str())
    );
}

#[tokio::test]
async fn the_scheduler_runs_a_rule_to_another_variant_from_its_source_only() {
    let plain = Testbed::get().plain();
    let source = format!("{plain}/{}", unique("scheduled-source"));
    let target = format!("{plain}/{}", unique("scheduled-target"));
    let catalog = catalog(&source, &target, "berth/base:1");
    let client = client(&[]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let rules = berth_core::channels::RulesFile::parse(
        "rules.yaml",
        "promotions:\n  - {from: staging, to: latest, to_variant: public, first_publish: immediate}\n",
    )
    .unwrap();

    let ran = berth_channels::scheduler::tick(&client, &store, &catalog, &rules, now())
        .await
        .unwrap();
    // One run, from the default image (the rule's source), to `public`.
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].subject, "app");
    let outcome = ran[0].outcome.as_ref().unwrap();
    assert_eq!(outcome.subject, "app/public");
    assert!(copied(outcome).mounted >= 2);
    assert_eq!(
        digest_seen(&format!("{target}:latest"), false),
        Testbed::get().digest("berth/base:1")
    );
    // The next tick finds the target published: nothing more.
    let again = berth_channels::scheduler::tick(&client, &store, &catalog, &rules, now())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn promotion_in_a_token_auth_registry_mounts_and_skopeo_reads_it_back() {
    let testbed = Testbed::get();
    let token = testbed.token_registry();
    let (user, password) = testbed.token_user();
    let creds = format!("{user}:{password}");
    let cert_dir = testbed.cert_dir();
    let source = format!("{token}/{}", unique("token-source"));
    let target = format!("{token}/{}", unique("token-target"));
    let catalog = catalog_staged(
        &source,
        &target,
        "berth/child:1",
        &["--dest-cert-dir", &cert_dir, "--dest-creds", &creds],
    );
    let mut registries = HashMap::new();
    registries.insert(
        token.to_string(),
        RegistryConfig {
            ca_pem: Some(std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
            credentials: Some(berth_oci::Credentials::Basic {
                username: user.to_string(),
                password: berth_oci::Secret::new(password),
            }),
            ..RegistryConfig::default()
        },
    );
    let client = Client::new(ClientConfig {
        registries,
        ..ClientConfig::default()
    });
    let store = Store::open("sqlite::memory:").await.unwrap();

    let outcome = promote(&client, &store, &catalog).await;
    let report = copied(&outcome);
    assert!(
        report.mounted >= 2,
        "mounted with a two-scope token: {report:?}"
    );
    assert_eq!(report.uploaded, 0, "{report:?}");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &cert_dir,
        "--creds",
        &creds,
        &format!("docker://{target}:latest"),
    ]);
    assert_eq!(
        ContentHasher::digest_of(DigestAlgorithm::Sha256, raw.as_bytes()).to_string(),
        testbed.digest("berth/child:1")
    );
}
