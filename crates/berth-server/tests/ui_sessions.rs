//! The dashboard's sessions through `app().oneshot(..)`, with two dashboards over one store
//! standing for two replicas: a sign-in on one is known to the other, a sign-out on either
//! ends it on both, it lasts eight hours, and a token removed from the config, or given a new
//! secret or scope, no longer carries it (without signing out a replica that still knows the
//! token). The CSRF side, with real forms, is in crates/berth/tests/replicas.rs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use berth_core::catalog::{self, Format, Source};
use berth_core::channels::RulesFile;
use berth_server::catalog_source::CatalogSource;
use berth_server::config::{ApiToken, Scope};
use berth_server::reload::CatalogState;
use berth_server::ui::{self, Anonymous, UiSettings};
use berth_server::{AppState, app};
use berth_store::Store;
use berth_testkit::sha256_hex;
use chrono::{DateTime, TimeDelta, Utc};
use tower::ServiceExt as _;

fn start() -> DateTime<Utc> {
    catalog::parse_moment("2026-11-22T12:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

fn token(name: &str, secret: &str, scope: Scope) -> ApiToken {
    ApiToken {
        name: name.to_string(),
        sha256: sha256_hex(secret),
        scope,
    }
}

/// One replica's dashboard: its own tokens, the shared store and the shared clock (seconds
/// after [`start`]).
fn replica(tokens: &[ApiToken], store: &Store, seconds: &Arc<AtomicI64>) -> AppState {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{error}"));
    let sources = [Source {
        name: "examples/catalog.yaml",
        text: &text,
    }];
    let catalog = catalog::load(&sources, Format::Berth, start())
        .catalog
        .unwrap_or_else(|| panic!("the demo catalog is invalid"));
    let source = CatalogSource {
        path,
        format: Format::Berth,
    };
    let seconds = Arc::clone(seconds);
    AppState {
        catalog: Arc::new(CatalogState::with_catalog(source, catalog, start())),
        clock: Arc::new(move || start() + TimeDelta::seconds(seconds.load(Ordering::SeqCst))),
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
        ui: ui::build(
            Some(&UiSettings {
                anonymous: Anonymous::Catalog,
            }),
            tokens,
            &RulesFile::default(),
            Some(store),
        ),
    }
}

/// Signs in with `secret`; the cookie (`berth_session=...`) and its whole `Set-Cookie` line.
async fn sign_in(state: &AppState, secret: &str) -> (String, String) {
    let request = Request::post("/ui/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={secret}")))
        .unwrap_or_else(|error| panic!("{error}"));
    let response = app(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let line = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no cookie"))
        .to_string();
    let cookie = line.split(';').next().unwrap_or_default().to_string();
    (cookie, line)
}

/// GETs `uri` with `cookie`: the status and the body.
async fn get(state: &AppState, uri: &str, cookie: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header(header::COOKIE, cookie)
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
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Who the sign-in page says is signed in on `state` with `cookie`.
async fn signed_in_as(state: &AppState, cookie: &str) -> Option<String> {
    let (status, page) = get(state, "/ui/signin", cookie).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, rest) = page.split_once("Signed in as ")?;
    rest.split_once('.').map(|(name, _)| name.to_string())
}

async fn store() -> Store {
    Store::open("sqlite::memory:")
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn a_session_is_every_replicas_until_signed_out_or_expired() {
    let store = store().await;
    let clock = Arc::new(AtomicI64::new(0));
    let tokens = [token("alice-admin", "admin-secret", Scope::Admin)];
    let a = replica(&tokens, &store, &clock);
    let b = replica(&tokens, &store, &clock);

    let (cookie, line) = sign_in(&a, "admin-secret").await;
    for attribute in [
        "Path=/ui",
        "HttpOnly",
        "SameSite=Strict",
        &format!("Max-Age={}", 8 * 3600),
    ] {
        assert!(line.contains(attribute), "{attribute} in {line}");
    }
    assert_eq!(
        signed_in_as(&b, &cookie).await.as_deref(),
        Some("alice-admin")
    );
    assert_eq!(signed_in_as(&b, "berth_session=0000").await, None);

    // Eight hours later it is gone, on both.
    clock.store(8 * 3600 - 1, Ordering::SeqCst);
    assert!(signed_in_as(&a, &cookie).await.is_some());
    clock.store(8 * 3600, Ordering::SeqCst);
    assert_eq!(signed_in_as(&a, &cookie).await, None);
    assert_eq!(signed_in_as(&b, &cookie).await, None);

    // A sign-out on B ends a session made on A.
    let (cookie, _) = sign_in(&a, "admin-secret").await;
    assert!(signed_in_as(&b, &cookie).await.is_some());
    let (status, _) = get(&b, "/ui/signout", &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in_as(&a, &cookie).await, None);
}

#[tokio::test]
async fn a_token_no_longer_configured_as_it_was_carries_no_session() {
    let store = store().await;
    let clock = Arc::new(AtomicI64::new(0));
    let alice = token("alice-admin", "admin-secret", Scope::Admin);
    let bob = token("bob-reader", "reader-secret", Scope::Read);
    let old = replica(&[alice.clone(), bob.clone()], &store, &clock);
    let (cookie, _) = sign_in(&old, "admin-secret").await;

    // A replica whose config lost the token, or has it under a new secret or scope, refuses
    // the session.
    let removed = replica(std::slice::from_ref(&bob), &store, &clock);
    let rotated = replica(
        &[
            token("alice-admin", "new-secret", Scope::Admin),
            bob.clone(),
        ],
        &store,
        &clock,
    );
    let narrowed = replica(
        &[
            token("alice-admin", "admin-secret", Scope::Read),
            bob.clone(),
        ],
        &store,
        &clock,
    );
    for replica in [&removed, &rotated, &narrowed] {
        assert_eq!(signed_in_as(replica, &cookie).await, None);
        let (status, _) = get(replica, "/ui/audit", &cookie).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "to the sign-in");
    }
    // Refused, not deleted: a replica still configured with the token keeps the sign-in.
    assert_eq!(
        signed_in_as(&old, &cookie).await.as_deref(),
        Some("alice-admin")
    );
    // And a token of the new config signs in there.
    let (cookie, _) = sign_in(&removed, "reader-secret").await;
    assert_eq!(
        signed_in_as(&removed, &cookie).await.as_deref(),
        Some("bob-reader")
    );
}
