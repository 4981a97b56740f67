//! The channel API through `app().oneshot(..)` against the test bed's registry: tokens and
//! scopes (401, 403), promote and roll back moving the tag (read back with skopeo), the token's
//! name as the actor in the history and the audit log, and refusals as 409.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use berth_core::catalog::{self, Format, Source};
use berth_oci::{Client, ClientConfig, RegistryConfig};
use berth_server::AppState;
use berth_server::catalog_source::CatalogSource;
use berth_server::channels_api::ChannelsApi;
use berth_server::config::{ApiToken, Scope};
use berth_server::reload::CatalogState;
use berth_store::Store;
use berth_testkit::{Testbed, sha256_hex, skopeo};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn now() -> DateTime<Utc> {
    catalog::parse_moment("2026-11-25T09:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

struct World {
    api: Arc<ChannelsApi>,
    repository: String,
}

async fn world() -> World {
    let plain = Testbed::get().plain();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let repository = format!("berth-api/app-{}-{nanos}", std::process::id());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{plain}/berth/base:1"),
        &format!("docker://{plain}/{repository}:staging"),
    ]);
    let yaml = format!(
        "images:\n  app:\n    image: {plain}/{repository}\n    channels: [staging, latest]\n"
    );
    let loaded = catalog::load(
        &[Source {
            name: "catalog.yaml",
            text: &yaml,
        }],
        Format::Berth,
        now(),
    );
    let catalog = loaded
        .catalog
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    let source = CatalogSource {
        path: "catalog.yaml".into(),
        format: Format::Berth,
    };
    let mut registries = HashMap::new();
    registries.insert(
        plain.to_string(),
        RegistryConfig {
            plain_http: true,
            ..RegistryConfig::default()
        },
    );
    let token = |name: &str, scope| ApiToken {
        name: name.to_string(),
        sha256: sha256_hex(format!("secret-of-{name}")),
        scope,
    };
    let api = ChannelsApi {
        catalog: Arc::new(CatalogState::with_catalog(source, catalog, now())),
        store: Store::open("sqlite::memory:")
            .await
            .unwrap_or_else(|error| panic!("{error}")),
        client: Client::new(ClientConfig {
            registries,
            ..ClientConfig::default()
        }),
        rules: Default::default(),
        tokens: vec![
            token("reader", Scope::Read),
            token("release-bot", Scope::Promote),
        ],
        clock: Arc::new(now),
    };
    World {
        api: Arc::new(api),
        repository,
    }
}

impl World {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer secret-of-{token}"));
        }
        let request = if method == "GET" {
            request.body(Body::empty())
        } else {
            request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
        }
        .unwrap_or_else(|error| panic!("{error}"));
        let response = berth_server::app(AppState {
            catalog: Arc::clone(&self.api.catalog),
            clock: Arc::clone(&self.api.clock),
            knowledge: None,
            resolver: None,
            namespace_labels: None,
            channels: Some(Arc::clone(&self.api)),
            policy: None,
            leases: Default::default(),
            events: None,
            freshness: None,
            rebuild: None,
            retention: None,
            notifications: None,
            ui: None,
        })
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn latest(&self) -> String {
        let plain = Testbed::get().plain();
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{plain}/{}:latest", self.repository),
        ]);
        let file = std::env::temp_dir().join(format!(
            "berth-api-{}.json",
            self.repository.replace('/', "_")
        ));
        std::fs::write(&file, raw).unwrap_or_else(|error| panic!("{error}"));
        let digest = skopeo(&["manifest-digest", &file.display().to_string()]);
        let _ = std::fs::remove_file(file);
        digest.trim().to_string()
    }
}

#[tokio::test]
async fn tokens_scope_what_a_caller_may_do() {
    let world = world().await;
    let promote = json!({"from": "staging", "to": "latest", "reason": "weekly"});
    let uri = "/api/v1/channels/app/promote";
    let (status, body) = world.call("POST", uri, None, promote.clone()).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    let (status, _) = world
        .call("POST", uri, Some("stranger"), promote.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = world
        .call("POST", uri, Some("reader"), promote.clone())
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, _) = world
        .call("GET", "/api/v1/channels/app/history", None, Value::Null)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn promote_and_roll_back_over_the_api() {
    let world = world().await;
    let base = Testbed::get().digest("berth/base:1");
    let child = Testbed::get().digest("berth/child:1");
    let uri = "/api/v1/channels/app/promote";
    let promote = json!({"from": "staging", "to": "latest", "reason": "weekly"});

    let (status, body) = world
        .call("POST", uri, Some("release-bot"), promote.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"]["action"], "moved", "{body}");
    assert_eq!(world.latest(), base);

    let plain = Testbed::get().plain();
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{plain}/berth/child:1"),
        &format!("docker://{plain}/{}:staging", world.repository),
    ]);
    let (status, _) = world.call("POST", uri, Some("release-bot"), promote).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.latest(), child);

    let rollback = "/api/v1/channels/app/rollback";
    let (status, body) = world
        .call(
            "POST",
            rollback,
            Some("release-bot"),
            json!({"channel": "latest", "reason": "breaks builds"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(world.latest(), base);
    // Nothing earlier than base that was not rolled back from: refused.
    let (status, body) = world
        .call(
            "POST",
            rollback,
            Some("release-bot"),
            json!({"channel": "latest"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("rollback_refused"))
    );

    let (status, history) = world
        .call(
            "GET",
            "/api/v1/channels/app/history?channel=latest",
            Some("reader"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let moves: Vec<(String, String)> = history
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap_or_default().to_string(),
                entry["actor"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = [
        ("promotion", "release-bot"),
        ("promotion", "release-bot"),
        ("rollback", "release-bot"),
    ]
    .map(|(kind, actor)| (kind.to_string(), actor.to_string()));
    assert_eq!(moves, expect);

    let (status, audit) = world
        .call(
            "GET",
            "/api/v1/audit?subject=app:latest",
            Some("reader"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit.as_array().map(Vec::len), Some(3), "{audit}");
    assert_eq!(audit[0]["action"], "channel.rollback");

    let (status, body) = world
        .call(
            "POST",
            "/api/v1/channels/nope/promote",
            Some("release-bot"),
            json!({"from": "staging", "to": "latest"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, _) = world
        .call(
            "POST",
            uri,
            Some("release-bot"),
            json!({"from": "staging", "to": "latest", "digest": "sha256:nothex"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// `GET /api/v1/usage` answers from the store's inventory, behind a read token; bad filters
/// are 400 naming the field.
#[tokio::test]
async fn the_usage_inventory_is_read_with_a_token() {
    let world = world().await;
    let plain = Testbed::get().plain();
    let image = format!("{plain}/{}:staging", world.repository);
    let uses = [berth_store::Use {
        namespace: "tool-a".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        container: "app".into(),
        image: image.clone(),
        reference: berth_core::ImageRef::parse(&image).ok(),
        digest: None,
    }];
    world
        .api
        .store
        .record_usage(
            berth_store::UsageSource::Cluster,
            "prod",
            &uses,
            true,
            now(),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let (status, _) = world.call("GET", "/api/v1/usage", None, Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let uri = format!("/api/v1/usage?repository={plain}/{}", world.repository);
    let (status, body) = world.call("GET", &uri, Some("reader"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            &body[0]["source"],
            &body[0]["scope"],
            &body[0]["name"],
            &body[0]["image"]
        ),
        (
            &json!("cluster"),
            &json!("prod"),
            &json!("web"),
            &json!(image)
        )
    );
    let (_, other) = world
        .call(
            "GET",
            &format!("/api/v1/usage?reference={plain}/elsewhere:1"),
            Some("reader"),
            Value::Null,
        )
        .await;
    assert_eq!(other, json!([]));
    let (status, body) = world
        .call(
            "GET",
            "/api/v1/usage?digest=sha256:zz",
            Some("reader"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("digest ")),
        "{body}"
    );
    let (status, sources) = world
        .call("GET", "/api/v1/usage/sources", Some("reader"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            &sources[0]["source"],
            &sources[0]["scope"],
            &sources[0]["uses"]
        ),
        (&json!("cluster"), &json!("prod"), &json!(1))
    );
}
