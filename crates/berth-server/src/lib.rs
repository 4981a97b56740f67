//! `berth serve`, all of it: the HTTP API over berth's knowledge (catalog, images, channels,
//! status, metrics, OpenAPI), the admission webhook, and every long-running task, started and
//! stopped by [`run`] under one shutdown signal, over one store pool.
//!
//! - [`app`] builds the router over an [`AppState`]; tests drive it with `oneshot`.
//! - [`run`] serves a bound listener until `shutdown` resolves and starts every task; its doc
//!   says the shutdown order. Tests call it with port 0.
//! - [`admission_tasks`]: the webhook's policy watcher (checked against the catalog), knowledge
//!   refresher and usage writer.
//! - [`leases`]: singleton tasks (scheduled sync, promotion scheduler) on the replica holding
//!   their lease in the store; what this replica saw of each lease.
//! - [`config`]: the config file (`listen`, `catalog`, ...), every error reported at once.
//! - `catalog_source` (re-exported from berth-files): reading a catalog file or directory;
//!   fingerprints for polling.
//! - [`reload`]: the served snapshot, its status, and the poll loop.
//! - [`admission`]: the Kubernetes admission webhook (validate, mutate) over the policy engine;
//!   [`admission_metrics`]: its counters, histogram and snapshot age for `/metrics`.
//! - `resolve` (re-exported from berth-sync): tags the snapshot does not know, resolved for pins
//!   (cache, single-flight, deadline); shared with `berth check --resolve`.
//! - [`namespaces`]: namespace labels read from the Kubernetes API for label-selected
//!   exceptions (cache, single-flight, deadline; fail safe: no labels).
//! - [`tls`]: HTTPS with certificate files reloaded when they change; [`connections`]:
//!   accepting and serving connections within handshake, header and count limits.
//! - [`knowledge`]: the scheduled registry sync (under the sync lease) and the read-only
//!   endpoints over the store.
//! - [`promotion`]: the promotion scheduler (berth-channels' tick on an interval).
//! - [`channels_api`]: history, audit, the usage inventory, promote and roll back over HTTP,
//!   behind scoped tokens
//!   (routes always in [`app`]; 503 `not_configured` without a store and tokens).
//!
//! Logs are `tracing` events with structured fields; nothing here prints.

pub mod admission;
pub mod admission_metrics;
pub mod admission_tasks;
mod api;
pub use berth_files::catalog_source;
pub mod channels_api;
pub mod config;
pub mod connections;
pub mod events;
pub mod freshness;
pub mod knowledge;
pub mod leases;
mod memory;
pub mod metrics;
pub mod namespaces;
pub mod notifications;
pub mod promotion;
pub mod rebuild;
pub mod reload;
pub mod retention;
pub use berth_sync::resolve;
pub mod tls;
pub mod ui;

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

/// Resolves once the stop signal turns true (or its sender is gone). A `select!` arm over this,
/// not over `wait_for` itself, keeps the guard `wait_for` returns out of the future's state, so
/// [`run`] stays `Send` (tests spawn it).
pub(crate) async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

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
    /// The webhook's policy and how its last load went (`/readyz`, `/api/v1/status`); `None`
    /// without a policy.
    pub policy: Option<Arc<admission_tasks::PolicyState>>,
    /// The leases this replica takes part in, as last seen (`/api/v1/status`, `/metrics`).
    pub leases: Arc<leases::LeaseBook>,
    /// Registry push events (`POST /api/v1/registry-events`); `None` without a store, a `sync`
    /// section and an `events` token, when the route answers 503.
    pub events: Option<Arc<events::RegistryEvents>>,
    /// The freshness pass's last report (`GET /api/v1/stale`, `/metrics`); `None` without a
    /// store, when the route answers 503.
    pub freshness: Option<Arc<freshness::FreshnessState>>,
    /// Rebuild dispatch's counters (`/metrics`); `None` without a `rebuild` section.
    pub rebuild: Option<Arc<rebuild::RebuildState>>,
    /// Retention's last run and counters (`GET /api/v1/retention`, `/metrics`); `None`
    /// without a `retention` section.
    pub retention: Option<Arc<retention::RetentionState>>,
    /// Notifications' counters (`/metrics`); `None` without a `notifications` section.
    pub notifications: Option<Arc<notifications::NotifyState>>,
    /// The dashboard and its sessions; `None` with `--ui=false`, when `/ui/` answers 404.
    pub ui: Option<Arc<ui::Ui>>,
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
        .route("/api/v1/stale", get(freshness::stale))
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
        .route("/api/v1/usage", get(channels_api::usage))
        .route("/api/v1/usage/sources", get(channels_api::usage_sources))
        .route("/api/v1/notifications", get(channels_api::notifications))
        .route("/api/v1/provenance", post(channels_api::record_provenance))
        .route("/api/v1/retention", get(retention::last_run))
        .route("/", get(ui::root))
        .route("/ui", get(ui::root))
        .route("/ui/", get(ui::overview))
        .route("/ui/catalog", get(ui::catalog))
        .route("/ui/catalog/{name}", get(ui::entry))
        .route("/ui/channels", get(ui::channels))
        .route("/ui/channels/promote", post(ui::promote))
        .route("/ui/channels/rollback", post(ui::rollback))
        .route("/ui/images", get(ui::images))
        .route("/ui/images/{digest}", get(ui::image))
        .route("/ui/diff", get(ui::diff::page_of))
        .route("/ui/usage", get(ui::usage))
        .route("/ui/retention", get(ui::retention))
        .route("/ui/audit", get(ui::audit))
        .route("/ui/signin", get(ui::signin_form).post(ui::signin))
        .route("/ui/signout", get(ui::signout))
        .route("/api/v1/registry-events", post(events::receive))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(api::log_request))
        .with_state(state)
}

/// What [`run`] did on its way out: every task it started, in the order they ended, and the
/// usage records the writer drained (tests assert both).
#[derive(Debug, Default)]
pub struct Stopped {
    pub tasks: Vec<&'static str>,
    pub usage_written: u64,
}

/// Runs all of `berth serve` on `listener` until `shutdown` resolves, on the wall clock.
pub async fn run(
    listener: TcpListener,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Stopped> {
    run_with_clock(listener, settings, system_clock(), shutdown).await
}

/// Runs all of `berth serve`: the HTTP API and, as `settings` say, the webhook and every
/// long-running task — catalog reload, policy reload (checked against the catalog), TLS
/// certificate reload, knowledge refresh, usage writer, scheduled sync and promotion scheduler
/// (those two under their leases) — over one store pool. When `shutdown` resolves, in order:
/// the listener stops accepting and requests in flight finish; the tasks see the stop signal
/// (a sync finishes the repository it is in and starts no other; leases are released); the
/// usage writer drains what the handlers queued; the store closes. No task is aborted.
pub async fn run_with_clock(
    listener: TcpListener,
    settings: ServeSettings,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Stopped> {
    // One store pool for the process, shared by every task and handler.
    let store = match &settings.store {
        Some(url) => Some(
            berth_store::Store::open(url)
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let catalog = Arc::new(CatalogState::new(settings.catalog.clone()));
    let knowledge = store
        .clone()
        .map(|store| Arc::new(knowledge::Knowledge::new(store)));
    let leases = Arc::new(leases::LeaseBook::default());
    // The webhook's snapshot: the store's knowledge read once now, the policy once the catalog
    // has loaded (by the watcher; until then the webhook and /readyz answer 503).
    let mut generation = 0;
    let policy = match &settings.policy {
        Some(path) => {
            let known = match &store {
                Some(store) => {
                    let (known, at) = store.knowledge().await.map_err(std::io::Error::other)?;
                    generation = at;
                    known
                }
                None => berth_core::policy::Knowledge::default(),
            };
            let cell = Arc::new(admission::SnapshotCell::without_policy(known));
            if store.is_some() {
                cell.set_refreshed(generation, clock());
            }
            Some(Arc::new(admission_tasks::PolicyState::new(
                path.clone(),
                cell,
            )))
        }
        None => None,
    };
    // One resolver (one cache) for the webhook, its counters shown on /metrics.
    let resolver = match (&policy, &settings.resolve) {
        (Some(_), Some(resolve)) => Some(resolve::TagResolver::new(resolve.clone())),
        _ => None,
    };
    // One namespace-label reader (one cache) for the webhook, likewise.
    let namespace_labels = match (&policy, &settings.namespace_labels) {
        (Some(_), Some(namespaces)) => {
            Some(namespaces::NamespaceLabels::new(namespaces).map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let channels = match (&store, &settings.channels_api) {
        (Some(store), Some(api)) => Some(Arc::new(channels_api::ChannelsApi {
            catalog: Arc::clone(&catalog),
            store: store.clone(),
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
    // Registry push events: with a store, a sync section and a token of the `events` scope.
    let event_tokens: Vec<config::ApiToken> = settings
        .channels_api
        .as_ref()
        .map(|api| {
            api.tokens
                .iter()
                .filter(|token| token.scope.allows(config::Scope::Events))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let (events, event_queue) = match (&store, &settings.sync) {
        (Some(_), Some(sync)) if !event_tokens.is_empty() => {
            let (events, queue) =
                events::RegistryEvents::new(event_tokens, Arc::clone(&catalog), sync.clone());
            (Some(events), Some(queue))
        }
        _ => (None, None),
    };
    let freshness_state = match (&store, &settings.freshness) {
        (Some(store), Some(freshness)) => Some(Arc::new(freshness::FreshnessState::new(
            store.clone(),
            freshness.clone(),
        ))),
        _ => None,
    };
    let rebuild_state = match (&store, &settings.freshness, &settings.rebuild) {
        (Some(_), Some(_), Some(dispatcher)) => {
            Some(Arc::new(rebuild::RebuildState::new(dispatcher.clone())))
        }
        _ => None,
    };
    let retention_state = match (&store, &settings.retention) {
        (Some(_), Some(_)) => Some(Arc::new(retention::RetentionState::default())),
        _ => None,
    };
    let notify_state = match (&store, &settings.notifications) {
        (Some(_), Some(notifier)) => {
            Some(Arc::new(notifications::NotifyState::new(notifier.clone())))
        }
        _ => None,
    };
    let state = AppState {
        notifications: notify_state.clone(),
        ui: ui::build(
            settings.ui.as_ref(),
            settings
                .channels_api
                .as_ref()
                .map_or(&[][..], |api| api.tokens.as_slice()),
            &settings
                .promotions
                .as_ref()
                .map(|promotions| promotions.rules.clone())
                .unwrap_or_default(),
            store.as_ref(),
        ),
        retention: retention_state.clone(),
        freshness: freshness_state.clone(),
        rebuild: rebuild_state.clone(),
        events: events.clone(),
        catalog: Arc::clone(&catalog),
        clock: Arc::clone(&clock),
        knowledge: knowledge.clone(),
        resolver: resolver.clone(),
        namespace_labels: namespace_labels.clone(),
        channels,
        policy: policy.clone(),
        leases: Arc::clone(&leases),
    };
    let mut router = app(state);
    // Usage goes to the store through a bounded channel, written off the request path.
    let mut usage_writer = None;
    if let Some(policy) = &policy {
        let usage = match &store {
            Some(store) => {
                let (sender, receiver) = tokio::sync::mpsc::channel(admission_tasks::USAGE_QUEUE);
                // Denials are gathered only when a target hears of them.
                let denials_window = settings
                    .notifications
                    .as_ref()
                    .filter(|notifier| notifier.settings.heard("admission-denied"))
                    .map(|notifier| notifier.settings.denials_window);
                usage_writer = Some(tokio::spawn(admission_tasks::write_usage(
                    store.clone(),
                    receiver,
                    denials_window,
                )));
                Some(sender)
            }
            None => None,
        };
        router = router.merge(admission::router(admission::AdmissionState {
            catalog: Arc::clone(&catalog),
            snapshot: Arc::clone(&policy.cell),
            clock: Arc::clone(&clock),
            usage,
            resolver,
            namespace_labels,
            metrics: Arc::clone(&policy.metrics),
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
    let mut tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)> = Vec::new();
    tasks.push((
        "catalog reload",
        tokio::spawn(reload::watch(
            Arc::clone(&catalog),
            settings.poll_interval,
            Arc::clone(&clock),
            store.clone(),
            stopped.clone(),
        )),
    ));
    if let Some(policy) = &policy {
        tasks.push((
            "policy reload",
            tokio::spawn(admission_tasks::watch_policy(
                Arc::clone(policy),
                Arc::clone(&catalog),
                settings.poll_interval,
                Arc::clone(&clock),
                stopped.clone(),
            )),
        ));
        if let Some(store) = &store {
            tasks.push((
                "knowledge refresh",
                tokio::spawn(admission_tasks::refresh_knowledge(
                    Arc::clone(&policy.cell),
                    store.clone(),
                    settings.knowledge_refresh,
                    generation,
                    Arc::clone(&clock),
                    stopped.clone(),
                )),
            ));
        }
    }
    if let Some(certificates) = &certificates {
        tasks.push((
            "certificate reload",
            tokio::spawn(tls::watch_certificates(
                Arc::clone(certificates),
                settings.poll_interval,
                stopped.clone(),
            )),
        ));
    }
    if let (Some(knowledge), Some(sync)) = (&knowledge, &settings.sync) {
        tasks.push((
            "scheduled sync",
            tokio::spawn(knowledge::schedule(
                Arc::clone(knowledge),
                Arc::clone(&catalog),
                sync.clone(),
                policy.clone(),
                leases::LeaseHolder {
                    name: leases::SYNC_LEASE,
                    store: knowledge.store.clone(),
                    settings: settings.leases.clone(),
                    book: Arc::clone(&leases),
                },
                stopped.clone(),
            )),
        ));
    }
    if let (Some(events), Some(queue), Some(store)) = (&events, event_queue, &store) {
        tasks.push((
            "event sync",
            tokio::spawn(events::work(
                Arc::clone(events),
                store.clone(),
                policy.clone(),
                queue,
                stopped.clone(),
            )),
        ));
    }
    if let Some(freshness) = &freshness_state {
        tasks.push((
            "freshness pass",
            tokio::spawn(freshness::schedule(
                Arc::clone(freshness),
                Arc::clone(&catalog),
                Arc::clone(&clock),
                stopped.clone(),
            )),
        ));
    }
    if let (Some(rebuild), Some(store), Some(freshness)) =
        (&rebuild_state, &store, &settings.freshness)
    {
        tasks.push((
            "rebuild dispatch",
            tokio::spawn(rebuild::schedule(
                rebuild::RebuildTask {
                    state: Arc::clone(rebuild),
                    store: store.clone(),
                    catalog: Arc::clone(&catalog),
                    freshness: freshness.settings.clone(),
                    interval: freshness.interval,
                    clock: Arc::clone(&clock),
                    lease: leases::LeaseHolder {
                        name: berth_rebuild::LEASE,
                        store: store.clone(),
                        settings: settings.leases.clone(),
                        book: Arc::clone(&leases),
                    },
                },
                stopped.clone(),
            )),
        ));
    }
    if let (Some(retention), Some(store), Some(section)) =
        (&retention_state, &store, &settings.retention)
    {
        tasks.push((
            "retention",
            tokio::spawn(retention::schedule(
                retention::RetentionTask {
                    state: Arc::clone(retention),
                    settings: section.clone(),
                    store: store.clone(),
                    catalog: Arc::clone(&catalog),
                    clock: Arc::clone(&clock),
                    lease: leases::LeaseHolder {
                        name: berth_retention::LEASE,
                        store: store.clone(),
                        settings: settings.leases.clone(),
                        book: Arc::clone(&leases),
                    },
                },
                stopped.clone(),
            )),
        ));
    }
    if let (Some(notify), Some(store)) = (&notify_state, &store) {
        tasks.push((
            "notifications",
            tokio::spawn(notifications::schedule(
                notifications::NotifyTask {
                    state: Arc::clone(notify),
                    store: store.clone(),
                    catalog: Arc::clone(&catalog),
                    freshness: freshness_state.clone(),
                    clock: Arc::clone(&clock),
                    lease: leases::LeaseHolder {
                        name: notifications::LEASE,
                        store: store.clone(),
                        settings: settings.leases.clone(),
                        book: Arc::clone(&leases),
                    },
                },
                stopped.clone(),
            )),
        ));
    }
    if let (Some(store), Some(promotions)) = (&store, &settings.promotions) {
        tasks.push((
            "promotion scheduler",
            tokio::spawn(promotion::schedule(
                store.clone(),
                Arc::clone(&catalog),
                promotions.clone(),
                Arc::clone(&clock),
                leases::LeaseHolder {
                    name: leases::PROMOTION_LEASE,
                    store: store.clone(),
                    settings: settings.leases.clone(),
                    book: Arc::clone(&leases),
                },
                stopped.clone(),
            )),
        ));
    }
    admission_tasks::first_loads(
        &catalog,
        policy.as_deref(),
        std::time::Duration::from_secs(30),
    )
    .await;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop.send(true);
    });
    tracing::info!(
        address = %listener.local_addr()?,
        catalog = %settings.catalog.path.display(),
        format = reload::format_name(settings.catalog.format),
        poll_interval_ms = settings.poll_interval.as_millis() as u64,
        tls = settings.tls.is_some(),
        webhook = policy.is_some(),
        holder = %settings.leases.holder,
        "berth serve listening"
    );
    // 1. Serve until the stop signal; then stop accepting and finish requests in flight.
    let served = connections::serve(
        listener,
        certificates.map(|certificates| certificates.server_config()),
        router,
        settings.connections,
        stopped,
    )
    .await;
    // 2. Every task has seen the signal: wait for each to end (a sync at its repository
    //    boundary, leases released).
    let mut ended = Stopped::default();
    for (name, task) in tasks {
        if let Err(error) = task.await {
            tracing::error!(task = name, error = %error, "task failed");
        }
        tracing::debug!(task = name, "task ended");
        ended.tasks.push(name);
    }
    // 3. The handlers are gone and their senders with them: the writer drains the queue.
    if let Some(writer) = usage_writer {
        match writer.await {
            Ok(written) => ended.usage_written = written,
            Err(error) => tracing::error!(error = %error, "usage writer failed"),
        }
        ended.tasks.push("usage writer");
    }
    // 4. The one pool closes last.
    if let Some(store) = store {
        store.close().await;
    }
    served?;
    tracing::info!("stopped");
    Ok(ended)
}
