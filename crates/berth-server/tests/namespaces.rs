//! Namespace labels at admission, against a fake Kubernetes API (axum on 127.0.0.1, plain HTTP,
//! which `NamespaceLabels` allows only to loopback) serving the Namespace kubectl made
//! (crates/berth/tests/fixtures/k8s/namespace.json): a label-selected exception exempts the
//! labelled namespace and not another; the token file's token is sent; an API that never
//! answers leaves the namespace without labels (the stricter verdict); the cache and
//! single-flight save fetches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_core::catalog::{self, Catalog, Format, Source};
use berth_core::policy::{self, Knowledge};
use berth_server::admission::{AdmissionSnapshot, AdmissionState, SnapshotCell, router};
use berth_server::catalog_source::CatalogSource;
use berth_server::namespaces::{NamespaceLabels, NamespaceSettings, is_dns_label};
use berth_server::reload::CatalogState;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const POLICY: &str = r#"
registries:
  mode: enforce
  allow:
    - registry.example.com/**
exceptions:
  - labels: {toolforge.org/byoc: "true"}
    rules: [registries]
    reason: BYOC tools bring their own images
"#;

const TOKEN: &str = "token-from-the-file";

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

/// What the fake API server saw: the path and Authorization header of every request.
#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Seen {
    fn all(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The Namespace kubectl made: `tool-a`, labelled `toolforge.org/byoc=true`.
fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../berth/tests/fixtures/k8s/namespace.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}"))
}

/// Serves `tool-a` (labelled) and `tool-b` (no labels); with `hang`, never answers.
async fn fake_api(hang: bool) -> (String, Seen) {
    let seen = Seen::default();
    let namespaces: HashMap<String, Value> = [
        ("tool-a".to_string(), fixture()),
        (
            "tool-b".to_string(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tool-b"}}),
        ),
        ("tool-huge".to_string(), {
            // The labelled namespace, padded past what berth reads of an answer.
            let mut huge = fixture();
            huge["metadata"]["annotations"] = json!({"padding": "x".repeat(2 << 20)});
            huge["metadata"]["name"] = json!("tool-huge");
            huge
        }),
    ]
    .into();
    let app = Router::new()
        .route(
            "/api/v1/namespaces/{name}",
            get(
                move |State(seen): State<Seen>,
                      axum::extract::Path(name): axum::extract::Path<String>,
                      headers: HeaderMap| {
                    let namespaces = namespaces.clone();
                    async move {
                        let authorization = headers
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        seen.requests
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((name.clone(), authorization));
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        match namespaces.get(&name) {
                            Some(object) => axum::Json(object.clone()).into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

/// A token file of `test`'s own under cargo's scratch directory.
fn token_file(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("namespaces")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap_or_else(|error| panic!("{error}"));
    path
}

fn reader(api: &str, token_file: &Path) -> NamespaceLabels {
    NamespaceLabels::new(&NamespaceSettings {
        api: api.to_string(),
        token_file: token_file.to_path_buf(),
        ca_file: None,
        ttl: Duration::from_secs(60),
        deadline: Duration::from_millis(300),
        capacity: 100,
    })
    .unwrap_or_else(|error| panic!("{error}"))
}

fn state(reader: Option<NamespaceLabels>) -> AdmissionState {
    let policy = policy::load("policy.yaml", POLICY)
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
        resolver: None,
        namespace_labels: reader,
        metrics: Default::default(),
    }
}

/// A Pod in `namespace` running an image from a registry the policy does not allow.
fn review(namespace: &str) -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.36"}]}});
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": namespace, "operation": "CREATE", "object": pod}})
}

/// Whether the validating webhook allowed `review`.
async fn allowed(state: &AdmissionState, review: &Value) -> bool {
    let request = Request::post("/admission/validate")
        .header("content-type", "application/json")
        .body(Body::from(review.to_string()))
        .unwrap_or_else(|error| panic!("{error}"));
    let response: Response = router(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{error}"));
    answer["response"]["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("no verdict: {answer}"))
}

#[tokio::test]
async fn the_label_exception_exempts_the_labelled_namespace_only() {
    let (api, seen) = fake_api(false).await;
    let token = token_file("labelled");
    let state = state(Some(reader(&api, &token)));
    assert!(
        allowed(&state, &review("tool-a")).await,
        "labelled: exempted"
    );
    // The token rotates: the next request sends the file's new content.
    std::fs::write(&token, "rotated").unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !allowed(&state, &review("tool-b")).await,
        "unlabelled: denied"
    );
    assert_eq!(
        seen.all(),
        vec![
            ("tool-a".to_string(), format!("Bearer {TOKEN}")),
            ("tool-b".to_string(), "Bearer rotated".to_string())
        ]
    );
}

#[tokio::test]
async fn an_answer_past_the_size_cap_gives_no_labels() {
    let (api, seen) = fake_api(false).await;
    let reader = reader(&api, &token_file("huge"));
    let state = state(Some(reader.clone()));
    assert!(
        !allowed(&state, &review("tool-huge")).await,
        "an oversized answer is not read: denied"
    );
    assert_eq!(seen.all().len(), 1, "the API was asked");
    assert_eq!(reader.stats().errors, 1, "{:?}", reader.stats());
}

#[tokio::test]
async fn without_the_reader_the_label_exception_never_applies() {
    assert!(!allowed(&state(None), &review("tool-a")).await);
}

#[tokio::test]
async fn an_api_that_never_answers_leaves_the_stricter_verdict() {
    let (api, seen) = fake_api(true).await;
    let reader = reader(&api, &token_file("hang"));
    let state = state(Some(reader.clone()));
    assert!(
        !allowed(&state, &review("tool-a")).await,
        "no labels: denied"
    );
    assert_eq!(seen.all().len(), 1, "the API was asked");
    assert_eq!(reader.stats().timeouts, 1, "{:?}", reader.stats());
}

#[tokio::test]
async fn repeated_admissions_within_the_ttl_fetch_once() {
    let (api, seen) = fake_api(false).await;
    let reader = reader(&api, &token_file("ttl"));
    let state = state(Some(reader.clone()));
    for _ in 0..5 {
        assert!(allowed(&state, &review("tool-a")).await);
    }
    assert_eq!(seen.all().len(), 1);
    assert_eq!(reader.stats().hits, 4, "{:?}", reader.stats());
}

#[tokio::test]
async fn invalid_names_are_never_sent() {
    let (api, seen) = fake_api(false).await;
    let reader = reader(&api, &token_file("invalid"));
    for name in [
        "../secrets",
        "Tool-A",
        "tool-a/x",
        "-a",
        "a-",
        "",
        "tool%2Fa",
    ] {
        assert!(!is_dns_label(name), "{name:?}");
        assert!(reader.labels(name).await.is_err(), "{name:?}");
    }
    assert!(is_dns_label("tool-a"));
    assert!(seen.all().is_empty());
}

#[test]
fn plain_http_only_to_loopback() {
    let settings = |api: &str| NamespaceSettings {
        api: api.to_string(),
        token_file: PathBuf::from("token"),
        ca_file: None,
        ttl: NamespaceSettings::DEFAULT_TTL,
        deadline: NamespaceSettings::DEFAULT_DEADLINE,
        capacity: 10,
    };
    assert!(NamespaceLabels::new(&settings("http://10.0.0.1:443")).is_err());
    assert!(NamespaceLabels::new(&settings("ftp://127.0.0.1")).is_err());
    assert!(NamespaceLabels::new(&settings("http://127.0.0.1:6443")).is_ok());
    assert!(NamespaceLabels::new(&settings("https://10.0.0.1:443")).is_ok());
}

#[tokio::test]
async fn concurrent_admissions_share_one_request() {
    // The three calls start in one poll (`join!`), the first before any answer could exist, so
    // the others find its request in flight; the API never answers, so none is cached either.
    let (api, seen) = fake_api(true).await;
    let reader = reader(&api, &token_file("concurrent"));
    let (first, second, third) = tokio::join!(
        reader.labels("tool-a"),
        reader.labels("tool-a"),
        reader.labels("tool-a")
    );
    assert!(first.is_err() && second.is_err() && third.is_err());
    assert_eq!(reader.stats().requests, 1, "{:?}", reader.stats());
    assert_eq!(seen.all().len(), 1);
}
