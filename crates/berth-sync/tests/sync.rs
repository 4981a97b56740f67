//! Sync against the real registries of the test bed: facts, OS identity through the Debian
//! symlink, an upper layer's os-release winning, one fact set per platform, lineage by layers,
//! request counts of a re-sync, and knowledge kept when a registry goes down.

use std::collections::HashMap;
use std::time::Duration;

use berth_core::{Digest, ImageRef};
use berth_oci::{Client, ClientConfig, RegistryConfig, RetryPolicy};
use berth_store::{ImageFilter, ImageSummary, RepositoryName, Store};
use berth_sync::{
    PathPattern, RegistryScan, RepositoryOutcome, SyncOptions, SyncReport, Syncer, Targets,
};
use berth_testkit::{OwnRegistry, Testbed};

fn client_for(hosts: &[&str]) -> Client {
    let registries = hosts
        .iter()
        .map(|host| {
            let config = RegistryConfig {
                plain_http: true,
                ..RegistryConfig::default()
            };
            (host.to_string(), config)
        })
        .collect();
    Client::new(ClientConfig {
        registries,
        // A registry that is down should fail the test's sync quickly.
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    })
}

fn repo(registry: &str, path: &str) -> RepositoryName {
    RepositoryName::new(registry, path).unwrap()
}

fn targets(registry: &str, paths: &[&str]) -> Targets {
    let mut targets = Targets::default();
    for path in paths {
        targets.repositories.insert(repo(registry, path));
    }
    targets
}

async fn sync(client: &Client, store: &Store, targets: &Targets) -> SyncReport {
    Syncer::new(client.clone(), store.clone(), SyncOptions::default())
        .run(targets)
        .await
        .unwrap()
}

fn digest(text: &str) -> Digest {
    Digest::parse(text).unwrap()
}

async fn images_in(store: &Store, repository: RepositoryName) -> Vec<ImageSummary> {
    store
        .images(&ImageFilter {
            repository: Some(repository),
            ..ImageFilter::default()
        })
        .await
        .unwrap()
}

/// `ID`, `VERSION_ID` and `PRETTY_NAME` of the host, whose os-release the test bed copied into
/// its Debian-like base image.
fn host_os_release() -> HashMap<String, String> {
    std::fs::read_to_string("/usr/lib/os-release")
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

#[tokio::test]
async fn reads_os_identity_platforms_and_lineage_from_the_registry() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let client = client_for(&[plain]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let all = [
        "berth/base",
        "berth/child",
        "berth/upper",
        "berth/multi",
        "berth/multi-list",
    ];
    let report = sync(&client, &store, &targets(plain, &all)).await;
    assert_eq!(report.failed(), 0, "{report:#?}");

    let base = digest(&testbed.digest("berth/base:1"));
    let child = digest(&testbed.digest("berth/child:1"));
    let upper = digest(&testbed.digest("berth/upper:1"));

    // Debian's /etc/os-release is a relative symlink into usr/lib: followed inside the image.
    let host = host_os_release();
    let expected_os = format!("{}-{}-amd64", host["ID"], host["VERSION_ID"]);
    let base_images = images_in(&store, repo(plain, "berth/base")).await;
    assert_eq!(base_images.len(), 1);
    let base_image = &base_images[0];
    assert_eq!(base_image.digest, base);
    assert_eq!(base_image.os_id.as_ref().unwrap().as_str(), expected_os);
    assert_eq!(
        base_image.os_pretty.as_deref(),
        Some(host["PRETTY_NAME"].as_str())
    );
    assert_eq!(serde_json::to_value(base_image.libc).unwrap(), "glibc");
    assert_eq!(base_image.platform.architecture, "amd64");
    assert!(base_image.base.is_none(), "the base has no known base");

    // The child's base is found by its layers, not by a label.
    let child_images = images_in(&store, repo(plain, "berth/child")).await;
    assert_eq!(child_images.len(), 1);
    assert_eq!(child_images[0].digest, child);
    let found = child_images[0].base.as_ref().expect("the child has a base");
    // The Docker-format copy of the base (in berth/multi-list) has the very same layers: a
    // twin, and as good a base. Either is right; its layers must be the base's.
    let chains = store.all_layer_chains().await.unwrap();
    let diff_ids = |digest: &Digest| {
        chains
            .iter()
            .find(|chain| &chain.image == digest)
            .map(|chain| chain.diff_ids.clone())
    };
    assert_eq!(diff_ids(&found.base), diff_ids(&base), "{found:?}");
    assert_eq!(found.shared_layers, 1);

    // An upper layer that replaces os-release and the loader wins over the base's.
    let upper_images = images_in(&store, repo(plain, "berth/upper")).await;
    assert_eq!(upper_images[0].digest, upper);
    assert_eq!(
        upper_images[0].os_id.as_ref().unwrap().as_str(),
        "alpine-3.20-amd64"
    );
    assert_eq!(serde_json::to_value(upper_images[0].libc).unwrap(), "musl");
    let upper_base = &upper_images[0].base.as_ref().unwrap().base;
    assert_eq!(diff_ids(upper_base), diff_ids(&base));

    // One fact set per platform of the index; the attestation is no image.
    let multi = testbed.image("berth/multi:1");
    let attestation = digest(multi["manifests"]["unknown/unknown"].as_str().unwrap());
    let mut platforms: Vec<(String, String)> = images_in(&store, repo(plain, "berth/multi"))
        .await
        .iter()
        .map(|image| {
            assert_ne!(image.digest, attestation);
            (
                image.platform.architecture.clone(),
                image.os_id.as_ref().unwrap().to_string(),
            )
        })
        .collect();
    platforms.sort();
    let expected_arm = format!("{}-{}-arm64", host["ID"], host["VERSION_ID"]);
    assert_eq!(
        platforms,
        [
            ("amd64".to_string(), expected_os.clone()),
            ("arm64".to_string(), expected_arm)
        ]
    );
    let list = images_in(&store, repo(plain, "berth/multi-list")).await;
    assert_eq!(
        list.len(),
        2,
        "a Docker manifest list has two platforms too"
    );

    // "Which images are built on the base" — by digest, through an index naming it, or
    // through the base's Docker-format twin (berth/multi-list's amd64 entry, same layers),
    // whichever of the twins lineage recorded.
    let twin = digest(
        testbed.image("berth/multi-list:1")["manifests"]["linux/amd64"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(diff_ids(&twin), diff_ids(&base), "the test bed's twin");
    for root in [&base, &twin, &digest(&testbed.digest("berth/multi:1"))] {
        let built_on: Vec<Digest> = store
            .images(&ImageFilter {
                built_on: Some(root.clone()),
                ..ImageFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|image| image.digest)
            .collect();
        assert!(
            built_on.contains(&child) && built_on.contains(&upper),
            "built on {root}: {built_on:?}"
        );
        assert!(!built_on.contains(&base) && !built_on.contains(&twin));
    }
}

#[tokio::test]
async fn a_resync_of_unchanged_tags_costs_one_head_each() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let client = client_for(&[plain]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let wanted = targets(plain, &["berth/tags", "berth/multi"]);
    let first = sync(&client, &store, &wanted).await;
    assert_eq!(first.failed(), 0, "{first:#?}");
    assert!(
        first.requests.get > 2,
        "the first sync fetches manifests: {first:?}"
    );

    let tags: u64 = first
        .repositories
        .iter()
        .map(|r| match &r.outcome {
            RepositoryOutcome::Synced(counts) => counts.tags,
            RepositoryOutcome::Failed { .. } | RepositoryOutcome::Skipped { .. } => 0,
        })
        .sum();
    assert!(
        tags >= 13,
        "berth/tags has 12 tags, berth/multi at least one"
    );

    let again = sync(&client, &store, &wanted).await;
    assert_eq!(again.failed(), 0);
    // One HEAD per tag; the only GETs are the two tag listings.
    assert_eq!(again.requests.head, tags, "{:?}", again.requests);
    assert_eq!(again.requests.get, 2, "{:?}", again.requests);
    for repository in &again.repositories {
        let RepositoryOutcome::Synced(counts) = &repository.outcome else {
            panic!("{repository:?}");
        };
        assert_eq!(counts.manifests_fetched, 0);
        assert_eq!(counts.layers_read, 0);
        assert_eq!(counts.tags_added + counts.tags_moved + counts.tags_gone, 0);
    }
}

#[tokio::test]
async fn a_registry_that_goes_down_keeps_what_was_known_and_gone_tags_are_marked() {
    let mut registry = OwnRegistry::start();
    registry.copy_from_testbed("berth/base:1", "own/app:1");
    registry.copy_from_testbed("berth/child:1", "own/app:2");
    let address = registry.address.clone();
    let client = client_for(&[&address]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let app = repo(&address, "own/app");
    let wanted = targets(&address, &["own/app"]);

    let first = sync(&client, &store, &wanted).await;
    assert_eq!(first.failed(), 0, "{first:#?}");
    let known = store.tag_digests(&app).await.unwrap();
    assert_eq!(known.len(), 2);
    let ok_at = store
        .repository_status(&app)
        .await
        .unwrap()
        .unwrap()
        .sync
        .last_sync_ok_at;
    assert!(ok_at.is_some());

    registry.stop();
    let down = sync(&client, &store, &wanted).await;
    assert_eq!(down.failed(), 1);
    assert!(matches!(
        down.repositories[0].outcome,
        RepositoryOutcome::Failed { .. }
    ));
    assert_eq!(
        store.tag_digests(&app).await.unwrap(),
        known,
        "nothing erased"
    );
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert_eq!(
        status.sync.last_sync_ok_at, ok_at,
        "the last good sync is kept"
    );
    assert!(status.sync.last_error.is_some(), "{status:?}");
    assert_eq!(images_in(&store, app.clone()).await.len(), 2);

    // The registry is back; the child is deleted there: its tag is marked gone, not forgotten.
    registry.restart();
    let child = digest(&Testbed::get().digest("berth/child:1"));
    let image = ImageRef::parse(&format!("{address}/own/app:2")).unwrap();
    client.delete_manifest(&image, &child).await.unwrap();
    let after = sync(&client, &store, &wanted).await;
    assert_eq!(after.failed(), 0, "{after:#?}");
    let RepositoryOutcome::Synced(counts) = &after.repositories[0].outcome else {
        unreachable!()
    };
    assert_eq!(counts.tags_gone, 1);
    let tags = store.tags(&app).await.unwrap();
    let gone: Vec<&str> = tags
        .iter()
        .filter(|tag| tag.gone_at.is_some())
        .map(|tag| tag.tag.as_str())
        .collect();
    assert_eq!(gone, ["2"]);
    let status = store.repository_status(&app).await.unwrap().unwrap();
    assert!(
        status.sync.last_error.is_none(),
        "a success clears the error"
    );
}

#[tokio::test]
async fn whole_registries_are_walked_with_include_and_exclude_patterns() {
    let registry = OwnRegistry::start();
    registry.copy_from_testbed("berth/base:1", "team/app:1");
    registry.copy_from_testbed("berth/base:1", "team/cache/app:1");
    registry.copy_from_testbed("berth/base:1", "other/app:1");
    let address = registry.address.clone();
    let client = client_for(&[&address]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let targets = Targets {
        registries: vec![RegistryScan {
            registry: address.clone(),
            include: vec![PathPattern::parse("team/**").unwrap()],
            exclude: vec![PathPattern::parse("team/cache/**").unwrap()],
        }],
        ..Targets::default()
    };
    let report = sync(&client, &store, &targets).await;
    let synced: Vec<&str> = report
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(synced, [format!("{address}/team/app")]);
}

#[tokio::test]
async fn a_registry_that_cannot_be_listed_is_reported_and_recorded() {
    let mut registry = OwnRegistry::start();
    let address = registry.address.clone();
    registry.stop();
    let client = client_for(&[&address]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let targets = Targets {
        registries: vec![RegistryScan {
            registry: address.clone(),
            include: vec![],
            exclude: vec![],
        }],
        ..Targets::default()
    };
    let report = sync(&client, &store, &targets).await;
    assert_eq!(report.registry_failures.len(), 1);
    assert_eq!(report.failed(), 1);
    let status = store.registry_status(&address).await.unwrap().unwrap();
    assert!(status.last_error.is_some());
    assert!(status.last_sync_ok_at.is_none());
}

#[tokio::test]
async fn a_layer_past_its_limits_is_recorded_without_os_identity() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let client = client_for(&[plain]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let mut options = SyncOptions::default();
    options.layer_limits.max_decompressed_bytes = 1024;
    let report = Syncer::new(client, store.clone(), options)
        .run(&targets(plain, &["berth/base"]))
        .await
        .unwrap();
    let RepositoryOutcome::Synced(counts) = &report.repositories[0].outcome else {
        panic!("{report:#?}");
    };
    assert_eq!(counts.warnings.len(), 1, "{counts:?}");
    assert!(counts.warnings[0].contains("1024"), "{:?}", counts.warnings);
    let images = images_in(&store, repo(plain, "berth/base")).await;
    assert_eq!(images.len(), 1, "the image is known, its OS is not");
    assert!(images[0].os_id.is_none());
}

#[tokio::test]
async fn a_truncated_listing_marks_no_tag_gone() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let client = client_for(&[plain]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let wanted = targets(plain, &["berth/tags"]);
    let full = sync(&client, &store, &wanted).await;
    assert_eq!(full.failed(), 0);
    let capped = Syncer::new(
        client,
        store.clone(),
        SyncOptions {
            tag_cap: 5,
            ..SyncOptions::default()
        },
    )
    .run(&wanted)
    .await
    .unwrap();
    let RepositoryOutcome::Synced(counts) = &capped.repositories[0].outcome else {
        panic!("{capped:#?}");
    };
    assert!(counts.truncated);
    assert_eq!(counts.tags_gone, 0);
    assert_eq!(
        store
            .tag_digests(&repo(plain, "berth/tags"))
            .await
            .unwrap()
            .len(),
        12
    );
}

/// Uploads `bytes` as a blob (monolithic POST + PUT, with curl) and returns its descriptor.
fn upload_blob(
    registry: &str,
    repository: &str,
    bytes: &[u8],
    media_type: &str,
) -> serde_json::Value {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let digest = format!("sha256:{}", berth_testkit::sha256_hex(bytes));
    let start = Command::new("curl")
        .args(["-sf", "-X", "POST", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{registry}/v2/{repository}/blobs/uploads/"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&start.stdout).to_string();
    let location = headers
        .lines()
        .find_map(|line| {
            line.strip_prefix("Location: ")
                .or(line.strip_prefix("location: "))
        })
        .expect("an upload location")
        .trim()
        .to_string();
    let separator = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        format!("{location}{separator}digest={digest}")
    } else {
        format!("http://{registry}{location}{separator}digest={digest}")
    };
    let mut put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            "@-",
        ])
        .arg(&url)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(put.wait().unwrap().success(), "blob upload to {url}");
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

#[tokio::test]
async fn an_artifact_that_is_no_image_is_skipped_with_a_warning() {
    let registry = OwnRegistry::start();
    let address = registry.address.clone();
    registry.copy_from_testbed("berth/base:1", "art/chart:app");
    let config = upload_blob(
        &address,
        "art/chart",
        b"{}",
        "application/vnd.cncf.helm.config.v1+json",
    );
    let layer = upload_blob(
        &address,
        "art/chart",
        b"not really a chart",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let client = client_for(&[&address]);
    let chart = ImageRef::parse(&format!("{address}/art/chart:1.0")).unwrap();
    client
        .put_manifest(
            &chart,
            chart.tag().unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::to_vec(&manifest).unwrap().into(),
        )
        .await
        .unwrap();

    let store = Store::open("sqlite::memory:").await.unwrap();
    let report = sync(&client, &store, &targets(&address, &["art/chart"])).await;
    assert_eq!(report.failed(), 0, "{report:#?}");
    let RepositoryOutcome::Synced(counts) = &report.repositories[0].outcome else {
        unreachable!()
    };
    assert_eq!(counts.tags, 1, "{counts:?}");
    assert_eq!(counts.warnings.len(), 1, "{counts:?}");
    assert!(counts.warnings[0].contains("helm"), "{:?}", counts.warnings);
    let tags = store
        .tag_digests(&repo(&address, "art/chart"))
        .await
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].0.as_str(), "app");
}

#[tokio::test]
async fn syncs_from_a_token_auth_registry_with_a_pull_only_user() {
    let testbed = Testbed::get();
    let token = testbed.token_registry();
    let (user, password) = testbed.token_reader();
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
    let wanted = targets(token, &["berth/base", "berth/child", "berth/multi"]);
    let report = sync(&client, &store, &wanted).await;
    assert_eq!(report.failed(), 0, "{report:#?}");
    let child = images_in(&store, repo(token, "berth/child")).await;
    assert_eq!(child.len(), 1);
    assert_eq!(child[0].digest, digest(&testbed.digest("berth/child:1")));
    assert!(child[0].os_id.is_some(), "layers read through the token");
    assert_eq!(
        report.requests.token, 3,
        "one token per repository: {:?}",
        report.requests
    );
}

#[tokio::test]
async fn a_mirrored_registry_is_known_under_its_own_name_while_it_is_down() {
    let testbed = Testbed::get();
    let mirror = testbed.plain();
    let mut upstream = OwnRegistry::start();
    upstream.stop();
    let address = upstream.address.clone();
    let mut client_config = ClientConfig {
        registries: [address.as_str(), mirror]
            .iter()
            .map(|host| {
                let config = RegistryConfig {
                    plain_http: true,
                    ..RegistryConfig::default()
                };
                (host.to_string(), config)
            })
            .collect(),
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    };
    client_config
        .mirrors
        .insert(address.clone(), vec![mirror.to_string()]);
    let client = Client::new(client_config);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let report = sync(&client, &store, &targets(&address, &["berth/child"])).await;
    assert_eq!(report.failed(), 0, "read from the mirror: {report:#?}");
    let known = images_in(&store, repo(&address, "berth/child")).await;
    assert_eq!(known.len(), 1, "recorded under the upstream's name");
    assert_eq!(known[0].digest, digest(&testbed.digest("berth/child:1")));
    assert!(
        images_in(&store, repo(mirror, "berth/child"))
            .await
            .is_empty()
    );
}

/// The sum of one count over a report's synced repositories.
fn total(report: &SyncReport, count: impl Fn(&berth_sync::RepositoryCounts) -> u64) -> u64 {
    report
        .repositories
        .iter()
        .map(|r| match &r.outcome {
            RepositoryOutcome::Synced(counts) => count(counts),
            RepositoryOutcome::Failed { .. } | RepositoryOutcome::Skipped { .. } => panic!("{r:?}"),
        })
        .sum()
}

#[tokio::test]
async fn a_cold_sync_costs_one_get_per_new_tag_and_each_config_and_layer_once() {
    let registry = OwnRegistry::start();
    let address = registry.address.clone();
    registry.copy_from_testbed("berth/base:1", "cold/a:seed");
    registry.copy_from_testbed("berth/base:1", "cold/b:seed");
    // Distinct manifests (a different annotation each) on one config and the base's layers, in
    // two repositories: what a fleet of rebuilt tags looks like.
    let setup = client_for(&[&address]);
    let seed = ImageRef::parse(&format!("{address}/cold/a:seed")).unwrap();
    let raw: serde_json::Value =
        serde_json::from_slice(&setup.manifest(&seed).await.unwrap().bytes).unwrap();
    let layers = raw["layers"].as_array().unwrap().len() as u64;
    let put = |repository: &'static str, tag: String| {
        let mut manifest = raw.clone();
        manifest["annotations"] = serde_json::json!({ "berth.test/variant": tag.clone() });
        let setup = setup.clone();
        let address = address.clone();
        async move {
            let image = ImageRef::parse(&format!("{address}/{repository}:{tag}")).unwrap();
            setup
                .put_manifest(
                    &image,
                    image.tag().unwrap(),
                    "application/vnd.oci.image.manifest.v1+json",
                    serde_json::to_vec(&manifest).unwrap().into(),
                )
                .await
                .unwrap();
        }
    };
    for n in 1..=5 {
        put("cold/a", format!("v{n}")).await;
        put("cold/b", format!("v{n}")).await;
    }

    let client = client_for(&[&address]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let wanted = targets(&address, &["cold/a", "cold/b"]);
    let cold = sync(&client, &store, &wanted).await;
    assert_eq!(cold.failed(), 0, "{cold:#?}");
    let tags = total(&cold, |c| c.tags);
    assert_eq!(tags, 12);
    // No HEAD: a tag the store has never seen is one GET. Beside them, the two listings, the
    // one config all twelve share and the base's layers, each once across both repositories.
    assert_eq!(cold.requests.head, 0, "{:?}", cold.requests);
    assert_eq!(total(&cold, |c| c.configs_fetched), 1, "{cold:#?}");
    assert_eq!(total(&cold, |c| c.layers_read), layers, "{cold:#?}");
    assert_eq!(
        cold.requests.get,
        2 + tags + 1 + layers,
        "{:?}",
        cold.requests
    );

    // A re-sync: one HEAD per tag and the listings.
    let again = sync(&client, &store, &wanted).await;
    assert_eq!(again.requests.head, tags, "{:?}", again.requests);
    assert_eq!(again.requests.get, 2, "{:?}", again.requests);

    // A new tag whose config and layers the store holds costs its GET and nothing more.
    put("cold/a", "v6".to_string()).await;
    let third = sync(&client, &store, &wanted).await;
    assert_eq!(total(&third, |c| c.images_added), 1, "{third:#?}");
    assert_eq!(third.requests.head, tags, "{:?}", third.requests);
    assert_eq!(third.requests.get, 2 + 1, "{:?}", third.requests);
}

#[tokio::test]
async fn a_point_lookup_decides_as_the_whole_store() {
    use berth_core::catalog::{self, Source};
    use berth_core::policy;
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let client = client_for(&[plain]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let all = [
        "berth/base",
        "berth/child",
        "berth/upper",
        "berth/multi",
        "berth/multi-list",
        "berth/docker",
        "berth/tags",
    ];
    let report = sync(&client, &store, &targets(plain, &all)).await;
    assert_eq!(report.failed(), 0, "{report:#?}");

    let now = catalog::parse_moment("2026-06-01").unwrap();
    let sources = [Source {
        name: "catalog.yaml",
        text: include_str!("../../../examples/catalog.yaml"),
    }];
    let catalog = catalog::load(&sources, catalog::Format::Berth, now)
        .catalog
        .unwrap();
    // The demo policy (base: a catalog entry; pins) and one approving an image by reference.
    let by_reference =
        format!("base:\n  approved: [{plain}/berth/child:1]\ndigest:\n  action: require\n");
    let policies = [
        include_str!("../../../examples/policy.yaml").to_string(),
        by_reference,
    ];
    let (whole, _) = store.knowledge().await.unwrap();
    let mut images: Vec<String> = all.iter().map(|name| format!("{plain}/{name}:1")).collect();
    images.push(format!("{plain}/berth/tags:v7"));
    images.push(format!(
        "{plain}/berth/child@{}",
        testbed.digest("berth/child:1")
    ));
    images.push(format!("{plain}/berth/upper:no-such-tag"));
    let mut denied = 0;
    for text in &policies {
        let policy = policy::load("policy.yaml", text).policy.unwrap();
        for image in &images {
            let references = policy::references_read([image.as_str()], &policy, &catalog);
            let point = store.knowledge_for(&references).await.unwrap();
            let expected = policy::evaluate_image(image, &policy, &catalog, &whole, now);
            let verdict = policy::evaluate_image(image, &policy, &catalog, &point, now);
            assert_eq!(verdict, expected, "{image} under {text}");
            denied += usize::from(!verdict.allowed);
        }
    }
    assert!(denied > 0, "the table decides some images both ways");

    // A point lookup reads what one reference needs, not the store.
    let one = ImageRef::parse(&format!("{plain}/berth/upper:1")).unwrap();
    let point = store.knowledge_for(&[one]).await.unwrap();
    let other = ImageRef::parse(&format!("{plain}/berth/child:1")).unwrap();
    assert!(whole.tag_digest(&other).is_some());
    assert!(point.tag_digest(&other).is_none());
    assert!(point.lineage().len() < whole.lineage().len());
}
