//! The registry client against the test bed's token-auth registry (distribution with
//! `auth: token`) and its token issuer: anonymous pull tokens, basic credentials and refresh
//! tokens exchanged for tokens, the token cache and its expiry, a missing push grant, the two
//! scopes of a cross-repository mount. What berth writes is read back with skopeo.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::{ImageRef, Tag};
use berth_oci::{Client, ClientConfig, Credentials, Mount, OciError, RegistryConfig, Secret};
use berth_testkit::{Testbed, skopeo};

fn client(credentials: Option<Credentials>) -> Client {
    let testbed = Testbed::get();
    let mut registries = HashMap::new();
    registries.insert(
        testbed.token_registry().to_string(),
        RegistryConfig {
            ca_pem: Some(std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
            credentials,
            ..RegistryConfig::default()
        },
    );
    Client::new(ClientConfig {
        registries,
        ..ClientConfig::default()
    })
}

fn basic((username, password): (&str, &str)) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: username.to_string(),
        password: Secret::new(password),
    })
}

fn image(name: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{name}", Testbed::get().token_registry())).unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn anonymous_clients_pull_the_public_repository_and_nothing_else() {
    let testbed = Testbed::get();
    let client = client(None);
    let public = format!("{}:1", testbed.token_public_repository());
    let resolved = client.resolve(&image(&public)).await.unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/base:1"));
    assert_eq!(client.stats().token, 1, "one anonymous token");

    let error = client.resolve(&image("berth/child:1")).await.unwrap_err();
    assert!(
        matches!(&error, OciError::Denied { detail, .. }
            if detail.contains("repository:berth/child:pull") && detail.contains("insufficient_scope")),
        "{error}"
    );
}

#[tokio::test]
async fn basic_credentials_are_exchanged_for_a_token_cached_per_scope() {
    let testbed = Testbed::get();
    let client = client(basic(testbed.token_user()));
    let child = image("berth/child:1");
    let resolved = client.resolve(&child).await.unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/child:1"));
    let manifest = client.manifest(&child).await.unwrap();
    client.resolve(&child).await.unwrap();
    assert_eq!(client.stats().token, 1, "one token for one scope, reused");
    assert_eq!(manifest.digest, resolved.digest);

    // Another repository is another scope: a token of its own, asked before the request.
    let before = client.stats();
    client.resolve(&image("berth/multi:1")).await.unwrap();
    let spent = client.stats().since(&before);
    assert_eq!(spent.token, 1);
    assert_eq!(
        spent.head, 1,
        "the known Bearer scheme saves the 401 round trip"
    );
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_at_the_token_server() {
    let client = client(basic(("pusher", "not-the-password")));
    let error = client.resolve(&image("berth/child:1")).await.unwrap_err();
    assert!(
        matches!(&error, OciError::Unauthorized { detail, .. } if detail.contains("401")),
        "{error}"
    );
}

#[tokio::test]
async fn an_identity_token_is_exchanged_by_post_with_grant_type_refresh_token() {
    let testbed = Testbed::get();
    let client = client(Some(Credentials::IdentityToken(Secret::new(
        testbed.token_refresh(),
    ))));
    let repository = "berth/multi";
    let resolved = client
        .resolve(&image(&format!("{repository}:1")))
        .await
        .unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/multi:1"));
    let log = std::fs::read_to_string(testbed.token_issuer_log()).unwrap();
    assert!(
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .any(|entry| entry["method"] == "POST"
                && entry["grant"] == "refresh_token"
                && entry["client_id"] == "berth"
                && entry["user"] == testbed.token_user().0),
        "the issuer saw a refresh-token POST from berth"
    );

    let forged = client_with_refresh("berth-refresh.pusher.0000");
    let error = forged.resolve(&image("berth/multi:1")).await.unwrap_err();
    assert!(matches!(error, OciError::Unauthorized { .. }), "{error}");
}

fn client_with_refresh(token: &str) -> Client {
    client(Some(Credentials::IdentityToken(Secret::new(token))))
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let testbed = Testbed::get();
    // `brief`'s tokens live two seconds (the issuer's table).
    let client = client(basic(testbed.token_brief()));
    let child = image("berth/child:1");
    client.resolve(&child).await.unwrap();
    assert_eq!(client.stats().token, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.resolve(&child).await.unwrap();
    assert_eq!(client.stats().token, 2, "the lapsed token was replaced");
}

#[tokio::test]
async fn a_push_without_a_push_grant_asks_once_then_fails_clearly() {
    let testbed = Testbed::get();
    let client = client(basic(testbed.token_reader()));
    let child = image("berth/child:1");
    let manifest = client.manifest(&child).await.unwrap();
    let before = client.stats();
    let tag = Tag::parse(&unique("denied")).unwrap();
    let error = client
        .put_manifest(&child, &tag, &manifest.media_type, manifest.bytes.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OciError::Denied { detail, .. }
            // The scope as the registry's challenge names it; distribution lists the actions
            // in no fixed order.
            if (detail.contains("repository:berth/child:pull,push")
                || detail.contains("repository:berth/child:push,pull"))
                && detail.contains("insufficient_scope")),
        "{error}"
    );
    let spent = client.stats().since(&before);
    assert_eq!(spent.token, 1, "the push scope is asked for once");
    assert_eq!(spent.put, 1, "and the PUT is not repeated");
}

#[tokio::test]
async fn a_mount_asks_for_pull_on_the_source_and_push_on_the_target_in_one_token() {
    let testbed = Testbed::get();
    let client = client(basic(testbed.token_user()));
    let source = image("berth/base:1");
    let manifest = client.manifest(&source).await.unwrap();
    let berth_oci::ManifestKind::Image(parsed) = &manifest.kind else {
        panic!("berth/base:1 is an image manifest");
    };
    let repository = format!("mounted/{}", unique("m"));
    let target = image(&format!("{repository}:1"));
    let before = client.stats();
    for descriptor in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let mounted = client
            .mount_blob(&target, &descriptor.digest, "berth/base")
            .await
            .unwrap();
        // distribution mounts only when the token grants pull on `from`; otherwise it starts
        // an upload (202).
        assert!(matches!(mounted, Mount::Mounted), "{mounted:?}");
    }
    assert_eq!(
        client.stats().since(&before).token,
        1,
        "one token, both scopes"
    );

    let tag = Tag::parse("1").unwrap();
    client
        .put_manifest(&target, &tag, &manifest.media_type, manifest.bytes.clone())
        .await
        .unwrap();
    let (user, password) = testbed.token_user();
    let seen = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &testbed.cert_dir(),
        "--creds",
        &format!("{user}:{password}"),
        &format!("docker://{}", target.canonical()),
    ]);
    assert_eq!(seen.as_bytes(), &manifest.bytes[..], "skopeo reads it back");
}
