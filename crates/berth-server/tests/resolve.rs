//! The tag resolver against real registries (the test bed's, and ones of the tests' own): a tag
//! the snapshot does not know is pinned to the digest skopeo recorded; concurrent admissions
//! share one HEAD; a registry that never answers yields the rule's `unknown:` handling; a
//! registry the policy does not allow is never contacted. Through the webhook's router
//! (`oneshot`) with the resolver in its state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use berth_core::catalog::{self, Catalog, Format, Source};
use berth_core::policy::{self, Knowledge};
use berth_core::{Digest, ImageRef};
use berth_oci::{Client, ClientConfig, RegistryConfig};
use berth_server::admission::{AdmissionSnapshot, AdmissionState, SnapshotCell, router};
use berth_server::catalog_source::CatalogSource;
use berth_server::reload::CatalogState;
use berth_server::resolve::{ResolveSettings, TagResolver};
use berth_testkit::Testbed;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn now() -> DateTime<Utc> {
    catalog::parse_moment("2026-08-01T12:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

fn catalog() -> Catalog {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{error}"));
    let sources = [Source {
        name: "examples/catalog.yaml",
        text: &text,
    }];
    catalog::load(&sources, Format::Berth, now())
        .catalog
        .unwrap_or_else(|| panic!("the demo catalog is invalid"))
}

/// A client speaking plain HTTP to `hosts`.
fn client(hosts: &[&str]) -> Client {
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
        ..ClientConfig::default()
    })
}

fn settings(deadline: Duration, registries: &[&str]) -> ResolveSettings {
    ResolveSettings {
        deadline,
        ttl: Duration::from_secs(60),
        failure_ttl: Duration::ZERO,
        capacity: 100,
        registries: registries.iter().map(ToString::to_string).collect(),
        client: ClientConfig::default(),
    }
}

/// The webhook over an empty store's knowledge, deciding with `policy` and `resolver`.
fn state(policy: &str, resolver: Option<TagResolver>) -> AdmissionState {
    let policy = policy::load("policy.yaml", policy)
        .policy
        .unwrap_or_else(|| panic!("invalid policy"));
    let source = CatalogSource {
        path: PathBuf::from("examples/catalog.yaml"),
        format: Format::Berth,
    };
    AdmissionState {
        catalog: Arc::new(CatalogState::with_catalog(source, catalog(), now())),
        snapshot: Arc::new(SnapshotCell::new(AdmissionSnapshot {
            policy: Arc::new(policy),
            knowledge: Arc::new(Knowledge::default()),
        })),
        clock: Arc::new(now),
        usage: None,
        resolver,
        namespace_labels: None,
        metrics: Default::default(),
    }
}

fn pod_review(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(index, image)| json!({"name": format!("c{index}"), "image": image}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": containers}});
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "tool-a", "operation": "CREATE", "object": pod}})
}

async fn post(state: AdmissionState, path: &str, review: &Value) -> Value {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(review.to_string()))
        .unwrap_or_else(|error| panic!("{error}"));
    let response = router(state)
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{error}"))
}

/// The JSONPatch of a mutate answer, decoded (empty when there is none).
fn patches(answer: &Value) -> Vec<(String, String)> {
    let Some(encoded) = answer["response"]["patch"].as_str() else {
        return Vec::new();
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|error| panic!("{error}"));
    let patch: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    patch
        .iter()
        .map(|op| {
            (
                op["path"].as_str().unwrap_or_default().to_string(),
                op["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn warnings(answer: &Value) -> Vec<String> {
    answer["response"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|warning| warning.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A TCP listener that accepts connections and never answers: a hung registry. It keeps the
/// sockets open until the test ends.
async fn hanging_registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"))
        .to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

#[tokio::test]
async fn a_tag_unknown_to_the_store_is_pinned_to_the_digest_skopeo_reports() {
    let plain = Testbed::get().plain();
    let policy = format!(
        "registries: {{allow: [{plain}/berth/**]}}\ndigest: {{action: pin, unknown: deny}}\n"
    );
    let image = format!("{plain}/berth/base:1");
    let review = pod_review(&[&image]);
    let expected = format!("{image}@{}", Testbed::get().digest("berth/base:1"));

    // Without a resolver the tag is unknown: nothing to pin, and the validating webhook denies.
    let unresolved = post(state(&policy, None), "/admission/mutate", &review).await;
    assert_eq!(patches(&unresolved), Vec::new());
    let denied = post(state(&policy, None), "/admission/validate", &review).await;
    assert_eq!(denied["response"]["allowed"], json!(false), "{denied}");

    let resolver =
        TagResolver::with_client(client(&[plain]), &settings(Duration::from_secs(5), &[]));
    let mutated = post(
        state(&policy, Some(resolver.clone())),
        "/admission/mutate",
        &review,
    )
    .await;
    assert_eq!(
        patches(&mutated),
        vec![("/spec/containers/0/image".to_string(), expected)]
    );
    let validated = post(
        state(&policy, Some(resolver.clone())),
        "/admission/validate",
        &review,
    )
    .await;
    assert_eq!(validated["response"]["allowed"], json!(true), "{validated}");
    // The validating call was answered from the cache the mutating call filled.
    let stats = resolver.stats();
    assert_eq!((stats.requests, stats.hits), (1, 1), "{stats:?}");
    let metrics = berth_server::metrics::resolve_metrics(&stats);
    for line in [
        "berth_resolve_total{outcome=\"cache_hit\"} 1",
        "berth_resolve_total{outcome=\"request\"} 1",
        "berth_resolve_total{outcome=\"timeout\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn concurrent_resolutions_of_one_tag_make_exactly_one_head() {
    let plain = Testbed::get().plain();
    let client = client(&[plain]);
    let resolver =
        TagResolver::with_client(client.clone(), &settings(Duration::from_secs(5), &[plain]));
    let image = ImageRef::parse(&format!("{plain}/berth/child:1"))
        .unwrap_or_else(|error| panic!("{error}"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (resolver, image) = (resolver.clone(), image.clone());
        tasks.spawn(async move { resolver.resolve(&image).await });
    }
    let expected = Digest::parse(&Testbed::get().digest("berth/child:1"))
        .unwrap_or_else(|error| panic!("{error}"));
    let mut answers = 0;
    while let Some(joined) = tasks.join_next().await {
        let digest = joined
            .unwrap_or_else(|error| panic!("{error}"))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(digest, expected);
        answers += 1;
    }
    assert_eq!(answers, 16);
    assert_eq!(client.stats().head, 1, "{:?}", client.stats());
    assert_eq!(client.stats().get, 0, "{:?}", client.stats());
    assert_eq!(resolver.stats().requests, 1);
}

#[tokio::test]
async fn a_registry_that_hangs_past_the_deadline_gets_the_rules_unknown_handling() {
    let hung = hanging_registry().await;
    let image = format!("{hung}/team/app:1");
    let review = pod_review(&[&image]);
    let resolver =
        TagResolver::with_client(client(&[&hung]), &settings(Duration::from_millis(300), &[]));
    let policy = |unknown: &str| {
        format!(
            "registries: {{allow: [{hung}/team/**]}}\ndigest: {{action: pin, unknown: {unknown}}}\n"
        )
    };
    let warned = post(
        state(&policy("warn"), Some(resolver.clone())),
        "/admission/validate",
        &review,
    )
    .await;
    assert_eq!(warned["response"]["allowed"], json!(true), "{warned}");
    assert_eq!(
        warnings(&warned),
        vec![format!(
            "container \"c0\" ({image}): digest: berth does not know the digest of {image}, so \
             cannot pin it; give the reference with @sha256:…"
        )]
    );
    let denied = post(
        state(&policy("deny"), Some(resolver.clone())),
        "/admission/validate",
        &review,
    )
    .await;
    assert_eq!(denied["response"]["allowed"], json!(false), "{denied}");
    let mutated = post(
        state(&policy("deny"), Some(resolver.clone())),
        "/admission/mutate",
        &review,
    )
    .await;
    assert_eq!(patches(&mutated), Vec::new());
    let stats = resolver.stats();
    assert!(stats.timeouts >= 1, "{stats:?}");
    assert_eq!(
        stats.hits, 0,
        "a failure is never cached as an answer: {stats:?}"
    );
}

#[tokio::test]
async fn a_registry_the_policy_does_not_allow_is_never_contacted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|error| panic!("{error}"));
    let outside = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"))
        .to_string();
    let plain = Testbed::get().plain();
    let client = client(&[&outside, plain]);
    let resolver = TagResolver::with_client(
        client.clone(),
        // Even configured for resolution, a host the policy's registries rule denies is not
        // asked; without a rule, a host not configured is not asked either.
        &settings(Duration::from_secs(5), &[&outside]),
    );
    let cases: BTreeMap<&str, String> = BTreeMap::from([
        (
            "denied by the registries rule",
            format!("registries: {{allow: [{plain}/berth/**]}}\ndigest: {{action: pin}}\n"),
        ),
        (
            "a look-alike path",
            format!("registries: {{allow: [{outside}/berth/**]}}\ndigest: {{action: pin}}\n"),
        ),
    ]);
    let image = format!("{outside}/berth-x/app:1");
    for (case, policy) in &cases {
        let answer = post(
            state(policy, Some(resolver.clone())),
            "/admission/mutate",
            &pod_review(&[&image]),
        )
        .await;
        assert_eq!(patches(&answer), Vec::new(), "{case}");
    }
    // No registries rule and the host not configured for resolution.
    let unconfigured =
        TagResolver::with_client(client.clone(), &settings(Duration::from_secs(5), &[plain]));
    let answer = post(
        state("digest: {action: pin}\n", Some(unconfigured.clone())),
        "/admission/mutate",
        &pod_review(&[&format!("{outside}/berth/app:1")]),
    )
    .await;
    assert_eq!(patches(&answer), Vec::new());

    assert_eq!(resolver.stats().requests + unconfigured.stats().requests, 0);
    assert_eq!(client.stats().total(), 0, "{:?}", client.stats());
    match listener.accept() {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the registry was contacted: {other:?}"),
    }
}

#[tokio::test]
async fn a_failure_is_remembered_so_a_hung_registry_does_not_cost_every_admission() {
    let hung = hanging_registry().await;
    let image = ImageRef::parse(&format!("{hung}/team/app:1")).unwrap_or_else(|e| panic!("{e}"));
    let remembering = ResolveSettings {
        failure_ttl: Duration::from_secs(60),
        ..settings(Duration::from_millis(300), &[&hung])
    };
    let client = client(&[&hung]);
    let resolver = TagResolver::with_client(client, &remembering);
    let first = resolver.resolve(&image).await;
    assert_eq!(
        first,
        Err(berth_server::resolve::ResolveFailure::Timeout(
            Duration::from_millis(300)
        ))
    );
    // Asking again joins the request still in flight, or, once it has ended, gets its failure
    // from the cache; never a second request.
    loop {
        let again = resolver.resolve(&image).await;
        assert_eq!(again, first);
        let stats = resolver.stats();
        assert_eq!(
            stats.requests, 1,
            "the failure was not remembered: {stats:?}"
        );
        if stats.hits >= 1 {
            break;
        }
    }
}
