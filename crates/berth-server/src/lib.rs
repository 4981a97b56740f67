//! `berth serve`: the HTTP API over berth's knowledge. For now: the catalog (read-only), health
//! and readiness probes, status, metrics and the OpenAPI description; the catalog is re-read
//! when its files change, and an invalid edit never replaces the catalog being served.
//!
//! - [`app`] builds the router over an [`AppState`]; tests drive it with `oneshot`.
//! - [`run`] serves a bound listener until `shutdown` resolves, polling the catalog meanwhile.
//! - [`config`]: the config file (`listen`, `catalog`, ...), every error reported at once.
//! - [`catalog_source`]: reading a catalog file or directory; fingerprints for polling.
//! - [`reload`]: the served snapshot, its status, and the poll loop.
//! - [`admission`]: the Kubernetes admission webhook (validate, mutate) over the policy engine.
//! - [`resolve`]: tags the snapshot does not know, resolved for pins (cache, single-flight,
//!   deadline); shared with `berth check --resolve`.
//! - [`namespaces`]: namespace labels read from the Kubernetes API for label-selected
//!   exceptions (cache, single-flight, deadline; fail safe: no labels).
//! - [`tls`]: HTTPS with certificate files reloaded when they change.
//! - [`knowledge`]: the scheduled registry sync and the read-only endpoints over the store.
//! - [`promotion`]: the promotion scheduler (berth-channels' tick on an interval).
//! - [`channels_api`]: history, audit, promote and roll back over HTTP, behind scoped tokens
//!   (routes always in [`app`]; 503 `not_configured` without a store and tokens).
//!
//! Logs are `tracing` events with structured fields; nothing here prints.

pub mod admission;
mod api;
pub mod catalog_source;
pub mod channels_api;
pub mod config;
mod expiring;
pub mod knowledge;
mod metrics;
pub mod namespaces;
pub mod promotion;
pub mod reload;
pub mod resolve;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use api::OPENAPI_YAML;
use config::ServeSettings;
use reload::CatalogState;

/// The clock the server answers with (`now` for effective states); tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<CatalogState>,
    pub clock: Clock,
    /// The store and the sync's record; `None` when no store is configured.
    pub knowledge: Option<Arc<knowledge::Knowledge>>,
    /// The webhook's tag resolver, for its counters on `/metrics`; `None` without `--resolve`.
    pub resolver: Option<resolve::TagResolver>,
    /// The webhook's namespace-label reader, for its counters on `/metrics`; `None` without
    /// `--namespace-labels`.
    pub namespace_labels: Option<namespaces::NamespaceLabels>,
    /// The channel API (history, audit, promote, roll back); `None` without a store and
    /// `api_tokens`, when its routes answer 503.
    pub channels: Option<Arc<channels_api::ChannelsApi>>,
}

/// The router: probes, metrics, documents and the `/api/v1` endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.yaml", get(api::openapi))
        .route("/schemas/catalog.json", get(api::catalog_schema))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/catalog", get(api::list))
        .route("/api/v1/catalog/{name}", get(api::show))
        .route("/api/v1/resolve/{name}", get(api::resolve))
        .route("/api/v1/which", get(api::which))
        .route("/api/v1/images", get(knowledge::images))
        .route("/api/v1/images/{digest}", get(knowledge::image))
        .route("/api/v1/repositories", get(knowledge::repositories))
        .route("/api/v1/sync", get(knowledge::sync_status))
        .route(
            "/api/v1/channels/{name}/history",
            get(channels_api::history),
        )
        .route(
            "/api/v1/channels/{name}/promote",
            post(channels_api::promote),
        )
        .route(
            "/api/v1/channels/{name}/rollback",
            post(channels_api::rollback),
        )
        .route("/api/v1/audit", get(channels_api::audit))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(api::log_request))
        .with_state(state)
}

/// Serves `listener` until `shutdown` resolves, then finishes the requests in flight and stops
/// the catalog poller. The catalog is loaded at once and reloaded when its files change. With
/// `admission`, the webhook endpoints are served too (resolving tags the snapshot does not
/// know when `settings.resolve` says so); with `settings.tls`, everything is HTTPS.
pub async fn run(
    listener: TcpListener,
    settings: ServeSettings,
    admission: Option<(Arc<admission::SnapshotCell>, Option<admission::UsageSender>)>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let catalog = Arc::new(CatalogState::new(settings.catalog.clone()));
    let knowledge = match &settings.store {
        Some(url) => {
            let store = berth_store::Store::open(url)
                .await
                .map_err(std::io::Error::other)?;
            Some(Arc::new(knowledge::Knowledge::new(store)))
        }
        None => None,
    };
    // One resolver (one cache) for the webhook, its counters shown on /metrics.
    let resolver = match (&admission, &settings.resolve) {
        (Some(_), Some(resolve)) => Some(resolve::TagResolver::new(resolve.clone())),
        _ => None,
    };
    // One namespace-label reader (one cache) for the webhook, likewise.
    let namespace_labels = match (&admission, &settings.namespace_labels) {
        (Some(_), Some(namespaces)) => {
            Some(namespaces::NamespaceLabels::new(namespaces).map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let channels = match (&knowledge, &settings.channels_api) {
        (Some(knowledge), Some(api)) => Some(Arc::new(channels_api::ChannelsApi {
            catalog: Arc::clone(&catalog),
            store: knowledge.store.clone(),
            client: berth_oci::Client::new(api.client.clone()),
            rules: settings
                .promotions
                .as_ref()
                .map(|promotions| promotions.rules.clone())
                .unwrap_or_default(),
            tokens: api.tokens.clone(),
            clock: Arc::clone(&clock),
        })),
        _ => None,
    };
    let state = AppState {
        catalog: Arc::clone(&catalog),
        clock: Arc::clone(&clock),
        knowledge: knowledge.clone(),
        resolver: resolver.clone(),
        namespace_labels: namespace_labels.clone(),
        channels,
    };
    let mut router = app(state);
    if let Some((snapshot, usage)) = admission {
        router = router.merge(admission::router(admission::AdmissionState {
            catalog: Arc::clone(&catalog),
            snapshot,
            clock: Arc::clone(&clock),
            usage,
            resolver,
            namespace_labels,
        }));
    }
    // Certificates are read before anything is served: a bad pair stops the start.
    let certificates = match &settings.tls {
        Some(tls) => Some(Arc::new(
            tls::CertificateReloader::new(tls.clone()).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    let scheduler = match (&knowledge, &settings.sync) {
        (Some(knowledge), Some(sync)) => Some(tokio::spawn(knowledge::schedule(
            Arc::clone(knowledge),
            Arc::clone(&catalog),
            sync.clone(),
            stopped.clone(),
        ))),
        _ => None,
    };
    let promoter = match (&knowledge, &settings.promotions) {
        (Some(knowledge), Some(promotions)) => Some(tokio::spawn(promotion::schedule(
            knowledge.store.clone(),
            Arc::clone(&catalog),
            promotions.clone(),
            Arc::clone(&clock),
            stopped.clone(),
        ))),
        _ => None,
    };
    let poller = tokio::spawn(reload::watch(
        catalog,
        settings.poll_interval,
        clock,
        knowledge.as_ref().map(|knowledge| knowledge.store.clone()),
        stopped.clone(),
    ));
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    tracing::info!(
        address = %listener.local_addr()?,
        catalog = %settings.catalog.path.display(),
        format = reload::format_name(settings.catalog.format),
        poll_interval_ms = settings.poll_interval.as_millis() as u64,
        tls = settings.tls.is_some(),
        "berth serve listening"
    );
    match certificates {
        Some(certificates) => {
            let watcher = tokio::spawn(tls::watch_certificates(
                Arc::clone(&certificates),
                settings.poll_interval,
                stopped.clone(),
            ));
            tls::serve(listener, certificates.server_config(), router, stopped).await?;
            let _ = watcher.await;
        }
        None => {
            let mut server_stopped = stopped;
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = server_stopped.wait_for(|stop| *stop).await;
                })
                .await?;
        }
    }
    if let Err(error) = poller.await {
        tracing::error!(error = %error, "catalog poller failed");
    }
    if let Some(scheduler) = scheduler
        && let Err(error) = scheduler.await
    {
        tracing::error!(error = %error, "sync scheduler failed");
    }
    if let Some(promoter) = promoter
        && let Err(error) = promoter.await
    {
        tracing::error!(error = %error, "promotion scheduler failed");
    }
    if let Some(knowledge) = knowledge {
        knowledge.store.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}
