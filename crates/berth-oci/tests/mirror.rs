//! Registry mirrors, with real registries: the test bed's plain registry and registries of the
//! test's own as upstream and mirror. Reads try the mirrors in order and fall back to the
//! upstream (a stopped mirror is passed over); writes go to the upstream only.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::{ImageRef, Tag};
use berth_oci::{Client, ClientConfig, OciError, RegistryConfig, RetryPolicy};
use berth_testkit::{OwnRegistry, Testbed};

/// A client for plain-HTTP registries; `mirrors` maps an upstream to its mirrors.
fn client(hosts: &[&str], mirrors: &[(&str, &[&str])]) -> Client {
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
        mirrors: mirrors
            .iter()
            .map(|(upstream, list)| {
                (
                    upstream.to_string(),
                    list.iter().map(|m| m.to_string()).collect(),
                )
            })
            .collect::<HashMap<_, _>>(),
        // A stopped registry should be passed over quickly.
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    })
}

fn on(registry: &str, name: &str) -> ImageRef {
    ImageRef::parse(&format!("{registry}/{name}")).unwrap()
}

#[tokio::test]
async fn a_stopped_mirror_is_passed_over_for_the_upstream() {
    let testbed = Testbed::get();
    let mut mirror = OwnRegistry::start();
    mirror.stop();
    let upstream = testbed.plain();
    let client = client(
        &[upstream, &mirror.address],
        &[(upstream, &[&mirror.address])],
    );
    let child = on(upstream, "berth/child:1");
    let resolved = client.resolve(&child).await.unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/child:1"));
    let manifest = client.manifest(&child).await.unwrap();
    let berth_oci::ManifestKind::Image(image) = &manifest.kind else {
        panic!("an image manifest");
    };
    let (_, config) = client.config(&child, &image.config).await.unwrap();
    assert_eq!(config.architecture, "amd64");
    let tags = client
        .list_tags(&on(upstream, "berth/tags"), 100)
        .await
        .unwrap();
    assert_eq!(tags.items.len(), 12);
}

#[tokio::test]
async fn reads_come_from_the_mirror_first_and_writes_go_to_the_upstream_only() {
    let testbed = Testbed::get();
    let mirror = testbed.plain();
    let upstream = OwnRegistry::start();
    // The upstream holds the image under another tag; `berth/base:1` is on the mirror only.
    upstream.copy_from_testbed("berth/base:1", "berth/base:upstream");
    let address = upstream.address.as_str();
    let client = client(&[address, mirror], &[(address, &[mirror])]);
    let through_mirror = on(address, "berth/base:1");
    let resolved = client.resolve(&through_mirror).await.unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/base:1"));
    let manifest = client.manifest(&through_mirror).await.unwrap();

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = Tag::parse(&format!("written-{nanos}")).unwrap();
    client
        .put_manifest(
            &through_mirror,
            &tag,
            &manifest.media_type,
            manifest.bytes.clone(),
        )
        .await
        .unwrap();
    let direct = self::client(&[address, mirror], &[]);
    let written = on(address, &format!("berth/base:{}", tag.as_str()));
    assert_eq!(
        direct.resolve(&written).await.unwrap().digest,
        resolved.digest
    );
    let not_on_mirror = direct
        .resolve(&on(mirror, &format!("berth/base:{}", tag.as_str())))
        .await
        .unwrap_err();
    assert!(
        matches!(not_on_mirror, OciError::NotFound { .. }),
        "{not_on_mirror}"
    );
}

#[tokio::test]
async fn the_upstreams_answer_is_the_last_word() {
    let testbed = Testbed::get();
    let mut mirror = OwnRegistry::start();
    mirror.stop();
    let upstream = testbed.plain();
    let client = client(
        &[upstream, &mirror.address],
        &[(upstream, &[&mirror.address])],
    );
    let error = client
        .resolve(&on(upstream, "berth/base:no-such-tag"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OciError::NotFound { target } if target.registry == upstream),
        "{error}"
    );
}
