//! The registry client against the test bed's real registries (CNCF distribution): plain HTTP,
//! and TLS with a private CA and htpasswd basic auth. Expected digests come from skopeo, so two
//! independent implementations must agree; what berth writes is read back with skopeo.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::{ImageRef, Tag};
use berth_oci::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX};
use berth_oci::{AuthFile, Client, ClientConfig, ManifestKind, OciError, Platform, RegistryConfig};
use berth_testkit::{Testbed, skopeo};

fn plain_client() -> Client {
    let testbed = Testbed::get();
    let mut registries = HashMap::new();
    registries.insert(
        testbed.plain().to_string(),
        RegistryConfig {
            plain_http: true,
            ..RegistryConfig::default()
        },
    );
    Client::new(ClientConfig {
        registries,
        ..ClientConfig::default()
    })
}

/// A client for the TLS registry: its CA, and credentials from the test bed's config.json.
fn tls_client(with_credentials: bool, with_ca: bool) -> Client {
    let testbed = Testbed::get();
    let auth =
        AuthFile::parse(&std::fs::read(testbed.var("BERTH_TEST_AUTHFILE")).unwrap()).unwrap();
    let mut registries = HashMap::new();
    registries.insert(
        testbed.tls().to_string(),
        RegistryConfig {
            ca_pem: with_ca.then(|| std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
            credentials: if with_credentials {
                auth.credentials_for(testbed.tls()).cloned()
            } else {
                None
            },
            ..RegistryConfig::default()
        },
    );
    Client::new(ClientConfig {
        registries,
        ..ClientConfig::default()
    })
}

fn plain(name: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{name}", Testbed::get().plain())).unwrap()
}

fn tls(name: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{name}", Testbed::get().tls())).unwrap()
}

fn unique_tag(prefix: &str) -> Tag {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Tag::parse(&format!("{prefix}-{nanos}")).unwrap()
}

#[tokio::test]
async fn resolve_costs_one_head_and_agrees_with_skopeo() {
    let client = plain_client();
    let resolved = client.resolve(&plain("berth/base:1")).await.unwrap();
    assert_eq!(
        resolved.digest.to_string(),
        Testbed::get().digest("berth/base:1")
    );
    let stats = client.stats();
    assert_eq!((stats.head, stats.get), (1, 0));
}

#[tokio::test]
async fn reads_a_manifest_its_config_and_streams_its_layers_verified() {
    let client = plain_client();
    let image = plain("berth/child:1");
    let manifest = client.manifest(&image).await.unwrap();
    assert_eq!(
        manifest.digest.to_string(),
        Testbed::get().digest("berth/child:1")
    );
    let ManifestKind::Image(image_manifest) = manifest.kind else {
        panic!("child is a single-platform image");
    };
    let (_, config) = client.config(&image, &image_manifest.config).await.unwrap();
    assert_eq!(config.os, "linux");
    assert_eq!(config.rootfs.diff_ids.len(), image_manifest.layers.len());
    for layer in &image_manifest.layers {
        let mut reader = client.blob(&image, layer).await.unwrap();
        let mut total = 0;
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            total += chunk.len() as u64;
        }
        assert_eq!(total, layer.size);
    }
    // The child extends the base: the base's layers are a prefix of the child's.
    let base = client.manifest(&plain("berth/base:1")).await.unwrap();
    let ManifestKind::Image(base_manifest) = base.kind else {
        panic!("base is a single-platform image");
    };
    assert!(image_manifest.layers.len() > base_manifest.layers.len());
    assert_eq!(
        image_manifest.layers[..base_manifest.layers.len()],
        base_manifest.layers[..]
    );
}

#[tokio::test]
async fn selects_platforms_from_an_oci_index_skipping_attestations() {
    let client = plain_client();
    let image = plain("berth/multi:1");
    let index = client.manifest(&image).await.unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(
        index.digest.to_string(),
        Testbed::get().digest("berth/multi:1")
    );
    let ManifestKind::Index(index) = index.kind else {
        panic!("multi is an index");
    };
    assert_eq!(index.manifests.len(), 3);
    assert_eq!(index.runnable().count(), 2);
    for arch in ["amd64", "arm64"] {
        let entry = index
            .select(&Platform::parse(&format!("linux/{arch}")).unwrap())
            .unwrap();
        let child = client.manifest_of(&image, entry).await.unwrap();
        let ManifestKind::Image(child) = child.kind else {
            panic!("index entries are images");
        };
        let (_, config) = client.config(&image, &child.config).await.unwrap();
        assert_eq!(config.architecture, arch);
    }
    assert!(
        index
            .select(&Platform::parse("unknown/unknown").unwrap())
            .is_none()
    );
}

#[tokio::test]
async fn reads_docker_manifest_lists_and_schema2_manifests() {
    let client = plain_client();
    let list = client.manifest(&plain("berth/multi-list:1")).await.unwrap();
    assert_eq!(list.media_type, DOCKER_MANIFEST_LIST);
    let ManifestKind::Index(index) = &list.kind else {
        panic!("a manifest list is an index");
    };
    assert!(
        index
            .select(&Platform::parse("linux/arm64").unwrap())
            .is_some()
    );
    let single = client.manifest(&plain("berth/docker:1")).await.unwrap();
    assert_eq!(single.media_type, DOCKER_MANIFEST);
}

#[tokio::test]
async fn a_missing_tag_and_a_missing_repository_are_not_found() {
    let client = plain_client();
    for name in ["berth/base:no-such-tag", "berth/no-such-repo:1"] {
        let error = client.resolve(&plain(name)).await.unwrap_err();
        assert!(
            matches!(error, OciError::NotFound { .. }),
            "{name}: {error}"
        );
        assert!(
            error.to_string().contains(name.split(':').next().unwrap()),
            "{error}"
        );
    }
}

#[tokio::test]
async fn lists_tags_and_repositories() {
    let client = plain_client();
    let listing = client.list_tags(&plain("berth/tags"), 1000).await.unwrap();
    for i in 1..=12 {
        assert!(listing.items.contains(&format!("v{i}")), "{listing:?}");
    }
    assert!(!listing.truncated);
    let capped = client.list_tags(&plain("berth/tags"), 5).await.unwrap();
    assert_eq!(capped.items.len(), 5);
    assert!(capped.truncated);

    // `_catalog` paginates with Link on this registry: pages of 2 must all be followed.
    let testbed = Testbed::get();
    let small_pages = Client::new(ClientConfig {
        registries: [(
            testbed.plain().to_string(),
            RegistryConfig {
                plain_http: true,
                ..RegistryConfig::default()
            },
        )]
        .into(),
        limits: berth_oci::Limits {
            page_size: 2,
            ..berth_oci::Limits::default()
        },
        ..ClientConfig::default()
    });
    let repositories = small_pages
        .list_repositories(testbed.plain(), 1000)
        .await
        .unwrap();
    for name in ["berth/base", "berth/child", "berth/multi", "berth/tags"] {
        assert!(
            repositories.items.iter().any(|r| r == name),
            "{repositories:?}"
        );
    }
    assert!(small_pages.stats().get >= 3, "several pages were read");
}

#[tokio::test]
async fn tls_registry_with_credentials_from_a_docker_config() {
    let client = tls_client(true, true);
    let resolved = client.resolve(&tls("berth/base:1")).await.unwrap();
    assert_eq!(
        resolved.digest.to_string(),
        Testbed::get().digest("berth/base:1")
    );
    let index = client.manifest(&tls("berth/multi:1")).await.unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
}

#[tokio::test]
async fn tls_registry_refuses_anonymous_and_wrong_credentials() {
    let anonymous = tls_client(false, true);
    let error = anonymous.resolve(&tls("berth/base:1")).await.unwrap_err();
    assert!(matches!(error, OciError::Unauthorized { .. }), "{error}");

    let testbed = Testbed::get();
    let wrong = Client::new(ClientConfig {
        registries: [(
            testbed.tls().to_string(),
            RegistryConfig {
                ca_pem: Some(std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
                credentials: Some(berth_oci::Credentials::Basic {
                    username: "berth".into(),
                    password: berth_oci::Secret::new("wrong-password"),
                }),
                ..RegistryConfig::default()
            },
        )]
        .into(),
        ..ClientConfig::default()
    });
    let error = wrong.resolve(&tls("berth/base:1")).await.unwrap_err();
    assert!(matches!(error, OciError::Unauthorized { .. }), "{error}");
    assert!(!format!("{error} {error:?}").contains("wrong-password"));
}

#[tokio::test]
async fn tls_registry_is_not_trusted_without_its_ca() {
    let client = tls_client(true, false);
    let error = client.resolve(&tls("berth/base:1")).await.unwrap_err();
    assert!(matches!(error, OciError::Transport { .. }), "{error}");
}

/// Issue 15, item 13: https to a registry that speaks plain HTTP fails at the first answer,
/// without retries, and says what to do.
#[tokio::test]
async fn a_plain_http_answer_to_tls_fails_at_once_with_a_hint() {
    let client = Client::new(ClientConfig::default());
    let error = client.resolve(&plain("berth/base:1")).await.unwrap_err();
    assert!(matches!(error, OciError::PlainHttp { .. }), "{error:?}");
    assert!(!error.is_transient());
    let plain_host = Testbed::get().plain();
    assert!(
        error.to_string().contains(&format!(
            "the registry answered plain HTTP; pass --insecure-registry {plain_host} if you mean it"
        )),
        "{error}"
    );
    assert_eq!(client.stats().total(), 1, "one attempt, no retries");
}

#[tokio::test]
async fn put_manifest_keeps_bytes_and_digest_and_skopeo_reads_it_back() {
    let testbed = Testbed::get();
    let client = tls_client(true, true);
    for name in ["berth/base:1", "berth/multi:1"] {
        let source = tls(name);
        let manifest = client.manifest(&source).await.unwrap();
        let tag = unique_tag("put");
        let digest = client
            .put_manifest(&source, &tag, &manifest.media_type, manifest.bytes.clone())
            .await
            .unwrap();
        assert_eq!(digest, manifest.digest, "{name}: same bytes, same digest");
        let moved = source.with_tag(tag);
        assert_eq!(client.resolve(&moved).await.unwrap().digest, digest);
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
        let seen = skopeo(&[
            "inspect",
            "--raw",
            "--cert-dir",
            &cert_dir,
            "--creds",
            &creds,
            &format!("docker://{}", moved.canonical()),
        ]);
        assert_eq!(
            seen.as_bytes(),
            &manifest.bytes[..],
            "{name}: skopeo reads the same bytes"
        );
    }
}

#[tokio::test]
async fn delete_manifest_by_digest() {
    let client = plain_client();
    let source = plain("berth/base:1");
    let manifest = client.manifest(&source).await.unwrap();
    // A manifest of its own (same blobs, one more annotation), so that deleting its digest
    // cannot take another test's tags with it.
    let mut json: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let tag = unique_tag("delete");
    json["annotations"] = serde_json::json!({ "berth.test/unique": tag.as_str() });
    let bytes = bytes::Bytes::from(serde_json::to_vec(&json).unwrap());
    let digest = client
        .put_manifest(&source, &tag, &manifest.media_type, bytes)
        .await
        .unwrap();
    let tagged = source.with_tag(tag);
    assert_eq!(client.resolve(&tagged).await.unwrap().digest, digest);
    client.delete_manifest(&source, &digest).await.unwrap();
    let error = client.resolve(&tagged).await.unwrap_err();
    assert!(matches!(error, OciError::NotFound { .. }), "{error}");
    let error = client.delete_manifest(&source, &digest).await.unwrap_err();
    assert!(matches!(error, OciError::NotFound { .. }), "{error}");
    // The original is untouched.
    assert_eq!(
        client.resolve(&source).await.unwrap().digest,
        manifest.digest
    );
}
