//! The HTTP API through `app().oneshot(..)`: answers equal the catalog's own (the JSON the CLI
//! prints), errors carry codes and statuses, probes, metrics, documents, and the reload rule that
//! an invalid edit keeps the last good catalog.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use berth_core::ImageRef;
use berth_core::catalog::{self, Catalog, Format, Source};
use berth_server::catalog_source::CatalogSource;
use berth_server::reload::CatalogState;
use berth_server::{AppState, Clock, app};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn today() -> DateTime<Utc> {
    catalog::parse_moment("2026-11-22T12:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

fn fixed_clock() -> Clock {
    Arc::new(today)
}

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml")
}

fn demo() -> Catalog {
    let text = std::fs::read_to_string(example_path()).unwrap_or_else(|error| panic!("{error}"));
    let sources = [Source {
        name: "examples/catalog.yaml",
        text: &text,
    }];
    match catalog::load(&sources, Format::Berth, today()).catalog {
        Some(catalog) => catalog,
        None => panic!("the demo catalog is invalid"),
    }
}

fn source() -> CatalogSource {
    CatalogSource {
        path: example_path(),
        format: Format::Berth,
    }
}

fn state_with(catalog: Catalog) -> AppState {
    AppState {
        catalog: Arc::new(CatalogState::with_catalog(source(), catalog, today())),
        clock: fixed_clock(),
        knowledge: None,
        resolver: None,
        namespace_labels: None,
        channels: None,
        policy: None,
        leases: Default::default(),
        events: None,
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    }
}

/// GETs `uri` and returns the status and the body (JSON when it parses, else a JSON string).
async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .body(Body::empty())
        .unwrap_or_else(|error| panic!("{error}"));
    let response = app(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn answers_are_the_catalogs_own() {
    let catalog = demo();
    let state = state_with(catalog.clone());
    let at = |day: &str| catalog::parse_moment(day).unwrap_or_else(|error| panic!("{error}"));
    let parse = |text: &str| ImageRef::parse(text).unwrap_or_else(|error| panic!("{error}"));
    let cases: Vec<(&str, StatusCode, Value)> = vec![
        (
            "/api/v1/catalog",
            StatusCode::OK,
            to_json(&catalog.list(false, today())),
        ),
        (
            "/api/v1/catalog?all=true&now=2027-01-02",
            StatusCode::OK,
            to_json(&catalog.list(true, at("2027-01-02"))),
        ),
        (
            "/api/v1/catalog/tf-python311",
            StatusCode::OK,
            to_json(&catalog.show("tf-python311", today()).ok()),
        ),
        (
            "/api/v1/resolve/python3.11?variant=webservice&now=2026-06-01",
            StatusCode::OK,
            to_json(
                &catalog
                    .resolve("python3.11", Some("webservice"), None, at("2026-06-01"))
                    .ok(),
            ),
        ),
        (
            "/api/v1/resolve/node24?variant=jobs&channel=staging",
            StatusCode::OK,
            to_json(
                &catalog
                    .resolve("node24", Some("jobs"), Some("staging"), today())
                    .ok(),
            ),
        ),
        (
            "/api/v1/which?ref=127.0.0.1:5050/berth/child:1",
            StatusCode::OK,
            to_json(
                &catalog
                    .which(&parse("127.0.0.1:5050/berth/child:1"), today())
                    .ok(),
            ),
        ),
        (
            "/api/v1/resolve/pyhton3.12",
            StatusCode::NOT_FOUND,
            to_json(&catalog.resolve("pyhton3.12", None, None, today()).err()),
        ),
        (
            "/api/v1/resolve/python3.12",
            StatusCode::BAD_REQUEST,
            to_json(&catalog.resolve("python3.12", None, None, today()).err()),
        ),
        (
            "/api/v1/which?ref=quay.io/other/image",
            StatusCode::NOT_FOUND,
            to_json(&catalog.which(&parse("quay.io/other/image"), today()).err()),
        ),
    ];
    for (uri, expect_status, expect_body) in cases {
        let (status, body) = get(&state, uri).await;
        assert_eq!((status, &body), (expect_status, &expect_body), "{uri}");
    }
}

#[tokio::test]
async fn errors_have_codes() {
    let state = state_with(demo());
    let cases = [
        (
            "/api/v1/resolve/pyhton3.12",
            StatusCode::NOT_FOUND,
            json!({
                "error": "unknown_name",
                "message": "no image named \"pyhton3.12\"; did you mean python3.12, python3.11?",
                "name": "pyhton3.12",
                "suggestions": ["python3.12", "python3.11"],
            }),
        ),
        (
            "/api/v1/which?ref=UPPER/case",
            StatusCode::BAD_REQUEST,
            json!({
                "error": "bad_request",
                "message": "invalid image reference \"UPPER/case\": repository name must be lowercase",
            }),
        ),
        (
            "/api/v1/which",
            StatusCode::BAD_REQUEST,
            json!({
                "error": "bad_request",
                "message": "missing query parameter `ref`",
            }),
        ),
        (
            "/api/v1/catalog?now=tomorrow",
            StatusCode::BAD_REQUEST,
            json!({
                "error": "bad_request",
                "message": "\"tomorrow\" is not a moment: expected RFC 3339 (2027-01-01T09:30:00Z) or a day (2027-01-01)",
            }),
        ),
        (
            "/api/v1/nothing",
            StatusCode::NOT_FOUND,
            json!({
                "error": "not_found",
                "message": "no such endpoint; see /openapi.yaml",
            }),
        ),
    ];
    for (uri, expect_status, expect_body) in cases {
        let (status, body) = get(&state, uri).await;
        assert_eq!((status, body), (expect_status, expect_body), "{uri}");
    }
    let (status, body) = get(&state, "/api/v1/catalog?all=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
}

#[tokio::test]
async fn the_clock_decides_effective_states() {
    let catalog = demo();
    let early: Clock =
        Arc::new(|| catalog::parse_moment("2026-01-01").unwrap_or_else(|error| panic!("{error}")));
    let state = AppState {
        catalog: Arc::new(CatalogState::with_catalog(source(), catalog, today())),
        clock: early,
        knowledge: None,
        resolver: None,
        namespace_labels: None,
        channels: None,
        policy: None,
        leases: Default::default(),
        events: None,
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    };
    let (_, body) = get(&state, "/api/v1/catalog/python3.11").await;
    assert_eq!(body["lifecycle"]["state"], "stable");
    assert_eq!(
        body["lifecycle"]["notice"],
        "deprecated from 2026-07-01; use python3.12"
    );
    let (_, body) = get(&state, "/api/v1/catalog/python3.11?now=2027-01-01").await;
    assert_eq!(body["lifecycle"]["state"], "eol");
}

#[tokio::test]
async fn probes_before_and_after_a_catalog_loads() {
    let state = AppState {
        catalog: Arc::new(CatalogState::new(source())),
        clock: fixed_clock(),
        knowledge: None,
        resolver: None,
        namespace_labels: None,
        channels: None,
        policy: None,
        leases: Default::default(),
        events: None,
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    };
    assert_eq!(
        get(&state, "/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        get(&state, "/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "no catalog loaded"})
        )
    );
    let (status, body) = get(&state, "/api/v1/catalog").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("no_catalog"))
    );
    state.catalog.reload(today());
    assert_eq!(
        get(&state, "/readyz").await,
        (StatusCode::OK, json!({"status": "ready", "generation": 1}))
    );
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_good_catalog() {
    let dir = std::env::temp_dir().join(format!("berth-api-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let file = dir.join("catalog.yaml");
    let write = |text: &str| std::fs::write(&file, text).unwrap_or_else(|error| panic!("{error}"));
    write("images:\n  bookworm: {image: x/base}\n");
    let state = AppState {
        catalog: Arc::new(CatalogState::new(CatalogSource {
            path: file.clone(),
            format: Format::Berth,
        })),
        clock: fixed_clock(),
        knowledge: None,
        resolver: None,
        namespace_labels: None,
        channels: None,
        policy: None,
        leases: Default::default(),
        events: None,
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    };
    state.catalog.reload(today());
    write("images:\n  bookworm: {image: x/base}\n  python: {imgae: x/py}\n");
    state.catalog.reload(today());

    let (status, body) = get(&state, "/api/v1/catalog/bookworm").await;
    assert_eq!(
        (status, &body["name"]),
        (StatusCode::OK, &json!("bookworm"))
    );
    let (_, status_body) = get(&state, "/api/v1/status").await;
    let catalog_status = &status_body["catalog"];
    assert_eq!(catalog_status["serving"]["generation"], 1);
    assert_eq!(catalog_status["last_attempt"]["ok"], false);
    let messages: Vec<String> = catalog_status["last_attempt"]["diagnostics"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    format!(
                        "{}:{}: {}",
                        item["line"],
                        item["column"],
                        item["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        messages,
        [
            "3:3: an entry needs an `image` or `variants`",
            "3:12: unknown field `imgae`; did you mean `image`?"
        ]
    );
    let (_, metrics) = get(&state, "/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "berth_catalog_reload_total{result=\"success\"} 1",
        "berth_catalog_reload_total{result=\"failure\"} 1",
        "berth_catalog_last_reload_success 0",
        "berth_catalog_entries 1",
        "berth_catalog_generation 1",
    ] {
        assert!(
            metrics.lines().any(|got| got == line),
            "{line} in\n{metrics}"
        );
    }

    std::fs::remove_file(&file).unwrap_or_else(|error| panic!("{error}"));
    state.catalog.reload(today());
    let (_, status_body) = get(&state, "/api/v1/status").await;
    let error = status_body["catalog"]["last_attempt"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("cannot read "), "{error}");
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);

    write("images:\n  bookworm: {image: x/base}\n  python: {image: x/py}\n");
    state.catalog.reload(today());
    let (status, _) = get(&state, "/api/v1/catalog/python").await;
    assert_eq!(status, StatusCode::OK);
    let (_, status_body) = get(&state, "/api/v1/status").await;
    assert_eq!(status_body["catalog"]["serving"]["generation"], 2);
    assert_eq!(
        status_body["catalog"]["reloads"],
        json!({"success": 2, "failure": 2})
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// issue 15, items 1 and 6: a 12 KB file of 6,000 nested levels dropped into a served catalog
/// directory aborted `berth serve` on the next reload, and a link to a file outside the
/// directory had its lines published on /api/v1/status. Both are failed reloads now, and the
/// last good catalog is still served.
#[tokio::test]
async fn hostile_files_in_a_served_directory_keep_the_last_good_catalog() {
    let dir = std::env::temp_dir().join(format!("berth-api-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(dir.join("a.yaml"), "images:\n  bookworm: {image: x/base}\n")
        .unwrap_or_else(|error| panic!("{error}"));
    let state = AppState {
        catalog: Arc::new(CatalogState::new(CatalogSource {
            path: dir.clone(),
            format: Format::Berth,
        })),
        clock: fixed_clock(),
        knowledge: None,
        resolver: None,
        namespace_labels: None,
        channels: None,
        policy: None,
        leases: Default::default(),
        events: None,
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    };
    state.catalog.reload(today());
    let last_attempt = |body: &Value| body["catalog"]["last_attempt"].to_string();

    let deep = dir.join("deep.yaml");
    std::fs::write(&deep, format!("{}x\n", "- ".repeat(6_000)))
        .unwrap_or_else(|error| panic!("{error}"));
    state.catalog.reload(today());
    let (_, status_body) = get(&state, "/api/v1/status").await;
    assert!(
        last_attempt(&status_body).contains("collections nest deeper than 128 levels"),
        "{status_body}"
    );
    assert_eq!(status_body["catalog"]["serving"]["generation"], 1);
    std::fs::remove_file(&deep).unwrap_or_else(|error| panic!("{error}"));

    let secret = std::env::temp_dir().join(format!("berth-api-secret-{}", std::process::id()));
    std::fs::write(&secret, "root:$6$secretsalt$secrethash:19000:0:99999:7::\n")
        .unwrap_or_else(|error| panic!("{error}"));
    std::os::unix::fs::symlink(&secret, dir.join("shadow.yaml"))
        .unwrap_or_else(|error| panic!("{error}"));
    state.catalog.reload(today());
    let (_, status_body) = get(&state, "/api/v1/status").await;
    let attempt = last_attempt(&status_body);
    assert!(
        attempt.contains("links outside the catalog directory"),
        "{attempt}"
    );
    assert!(
        !attempt.contains("secrethash") && !attempt.contains("root:"),
        "{attempt}"
    );
    assert_eq!(
        get(&state, "/api/v1/catalog/bookworm").await.0,
        StatusCode::OK
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&secret);
}

#[tokio::test]
async fn documents_are_served() {
    let state = state_with(demo());
    let (status, schema) = get(&state, "/schemas/catalog.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(schema["title"], "berth catalog");
    let (status, openapi) = get(&state, "/openapi.yaml").await;
    assert_eq!(status, StatusCode::OK);
    let text = openapi.as_str().unwrap_or_default();
    assert!(text.starts_with("openapi: 3.1.0"));
}

/// The OpenAPI document describes exactly the routes the router answers.
#[tokio::test]
async fn openapi_describes_the_routes() {
    let root = catalog::yaml::parse(berth_server::OPENAPI_YAML)
        .unwrap_or_else(|error| panic!("openapi.yaml: {error:?}"))
        .unwrap_or_else(|| panic!("openapi.yaml is empty"));
    let catalog::yaml::Value::Mapping(top) = &root.value else {
        panic!("not a mapping")
    };
    let paths = top
        .iter()
        .find(|(key, _)| matches!(&key.value, catalog::yaml::Value::Scalar(s) if s.text == "paths"))
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no paths"));
    let catalog::yaml::Value::Mapping(paths) = &paths.value else {
        panic!("paths is not a mapping")
    };
    let mut documented: Vec<String> = paths
        .iter()
        .filter_map(|(key, _)| match &key.value {
            catalog::yaml::Value::Scalar(scalar) => Some(scalar.text.to_string()),
            _ => None,
        })
        .collect();
    documented.sort();
    let mut served = vec![
        "/api/v1/catalog",
        "/api/v1/catalog/{name}",
        "/api/v1/stale",
        "/api/v1/audit",
        "/api/v1/channels/{name}/history",
        "/api/v1/channels/{name}/promote",
        "/api/v1/channels/{name}/rollback",
        "/api/v1/images",
        "/api/v1/images/{digest}",
        "/api/v1/notifications",
        "/api/v1/provenance",
        "/api/v1/registry-events",
        "/api/v1/repositories",
        "/api/v1/resolve/{name}",
        "/api/v1/status",
        "/api/v1/sync",
        "/api/v1/usage",
        "/api/v1/usage/sources",
        "/api/v1/retention",
        "/api/v1/which",
        "/healthz",
        "/metrics",
        "/openapi.yaml",
        "/readyz",
        "/schemas/catalog.json",
    ];
    served.sort();
    assert_eq!(documented, served);
    let state = state_with(demo());
    for path in &documented {
        let uri = path.replace("{name}", "bookworm");
        let (_, body) = get(&state, &uri).await;
        assert_ne!(
            body["error"], "not_found",
            "{uri} is documented but not served"
        );
    }
}

/// Without a store and tokens, the channel routes say the channel API is off (not 404).
#[tokio::test]
async fn channel_routes_without_the_channel_api_say_it_is_off() {
    let state = state_with(demo());
    for (method, uri) in [
        ("GET", "/api/v1/channels/bookworm/history"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/usage"),
        ("POST", "/api/v1/channels/bookworm/promote"),
        ("POST", "/api/v1/channels/bookworm/rollback"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"from": "staging", "to": "latest", "channel": "latest"}"#,
            ))
            .unwrap_or_else(|error| panic!("{error}"));
        let response = app(state.clone())
            .oneshot(request)
            .await
            .unwrap_or_else(|error| match error {});
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(body["error"], "not_configured", "{uri}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|text| text.contains("api_tokens")),
            "{body}"
        );
    }
}

/// A reload that changes the served catalog goes to the audit log (actor `berth-serve`, before
/// and after as generation and entry count); the first load, a reload of the same content and a
/// rejected edit do not.
#[tokio::test]
async fn catalog_reloads_that_change_the_catalog_are_audited() {
    let dir = std::env::temp_dir().join(format!("berth-reload-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let file = dir.join("catalog.yaml");
    let write = |text: &str| std::fs::write(&file, text).unwrap_or_else(|error| panic!("{error}"));
    let state = Arc::new(CatalogState::new(CatalogSource {
        path: file.clone(),
        format: Format::Berth,
    }));
    let store = berth_store::Store::open("sqlite::memory:")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let reload =
        async || berth_server::reload::reload_and_audit(&state, today(), Some(&store)).await;

    write("images:\n  bookworm: {image: x/base}\n");
    assert_eq!(reload().await, None, "the first load is not a change");
    write("images:\n  bookworm: {image: x/base}\n\n# same entries\n");
    assert_eq!(reload().await, None, "same entries");
    write("images:\n  bookworm: {image: x/base}\n  python: {imgae: x/py}\n");
    assert_eq!(reload().await, None, "rejected");
    write("images:\n  bookworm: {image: x/base}\n  python: {image: x/py}\n");
    let change = reload().await.unwrap_or_else(|| panic!("a change"));
    assert_eq!((change.before.entries, change.after.entries), (1, 2));

    let audit = store
        .audit_log(None, 10)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(audit.len(), 1, "{audit:?}");
    let entry = &audit[0].entry;
    assert_eq!(
        (
            entry.actor.as_str(),
            entry.action.as_str(),
            entry.subject.as_str()
        ),
        (
            "berth-serve",
            "catalog.reload",
            file.display().to_string().as_str()
        )
    );
    assert_eq!(entry.before, Some(json!({"generation": 2, "entries": 1})));
    assert_eq!(entry.after, Some(json!({"generation": 3, "entries": 2})));
    std::fs::remove_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
}
