//! Retention under `berth serve`: on the replica holding the `retention` lease, a run every
//! `retention.interval` — a plan only, unless `apply: true`, then berth-retention's guarded
//! deletions with every write fenced by the lease —, `GET /api/v1/retention` answering with
//! the last run, and its metrics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use berth_core::retention::Settings;
use berth_retention::{Applied, ApplyOptions};
use berth_store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::channels_api::{Channels, ChannelsApiError, authorize_token};
use crate::config::Scope;
use crate::leases::LeaseHolder;
use crate::reload::CatalogState;
use crate::{AppState, Clock};

/// How often the lease is looked at between runs (a replica taking over runs soon).
const LEASE_TICK: Duration = Duration::from_secs(60);

/// The `retention` section, ready to run.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    pub settings: Settings,
    pub client: berth_oci::ClientConfig,
}

impl PartialEq for RetentionSettings {
    fn eq(&self, other: &Self) -> bool {
        // The client's configuration holds secrets and is not comparable.
        self.settings == other.settings
    }
}

impl Eq for RetentionSettings {}

/// One scheduled run, as `GET /api/v1/retention` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub finished_at: DateTime<Utc>,
    /// Whether this run could delete (`retention.apply`); a dry run only plans.
    pub apply: bool,
    #[serde(flatten)]
    pub applied: Applied,
}

#[derive(Default)]
struct Counters {
    runs_ok: u64,
    runs_failed: u64,
    deleted: u64,
    failed_deletions: u64,
}

/// The last run and the counters, shared with the handlers.
#[derive(Default)]
pub struct RetentionState {
    last: Mutex<Option<Arc<Run>>>,
    counters: Mutex<Counters>,
}

impl RetentionState {
    pub fn last(&self) -> Option<Arc<Run>> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, run: Run) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.runs_ok += 1;
        counters.deleted += run.applied.deleted as u64;
        counters.failed_deletions += run.applied.failed() as u64;
        drop(counters);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(run));
    }

    fn failed(&self) {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .runs_failed += 1;
    }

    /// `berth_retention_*`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let last = self.last();
        let plan = last.as_ref().map(|run| &run.applied.plan);
        let mut text = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            crate::metrics::write_metric(&mut text, name, kind, help, samples);
        };
        metric(
            "berth_retention_runs_total",
            "counter",
            "Retention runs on this replica (the lease holder) by result.",
            &[
                (r#"{result="success"}"#, counters.runs_ok as f64),
                (r#"{result="failure"}"#, counters.runs_failed as f64),
            ],
        );
        metric(
            "berth_retention_deletions_total",
            "counter",
            "Manifests retention deleted, and deletions the registry refused.",
            &[
                (r#"{result="deleted"}"#, counters.deleted as f64),
                (r#"{result="failed"}"#, counters.failed_deletions as f64),
            ],
        );
        metric(
            "berth_retention_candidates",
            "gauge",
            "Manifests the last plan would delete.",
            &[("", plan.map_or(0.0, |plan| plan.candidates as f64))],
        );
        metric(
            "berth_retention_bytes",
            "gauge",
            "Bytes the registry's garbage collection could free after the last plan's deletions.",
            &[("", plan.map_or(0.0, |plan| plan.bytes as f64))],
        );
        metric(
            "berth_retention_stale_sources",
            "gauge",
            "Usage sources too stale for retention to delete (apply refuses while above 0).",
            &[("", plan.map_or(0.0, |plan| plan.stale_sources.len() as f64))],
        );
        text
    }
}

/// What the retention task runs with.
pub struct RetentionTask {
    pub state: Arc<RetentionState>,
    pub settings: RetentionSettings,
    pub store: Store,
    pub catalog: Arc<CatalogState>,
    pub clock: Clock,
    pub lease: LeaseHolder,
}

/// Runs retention every `interval` on the lease holder until `stopped`.
pub async fn schedule(task: RetentionTask, mut stopped: watch::Receiver<bool>) {
    let RetentionTask {
        state,
        settings,
        store,
        catalog,
        clock,
        lease,
    } = task;
    while catalog.snapshot().is_none() {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
    let client = berth_oci::Client::new(settings.client.clone());
    let interval = settings.settings.interval;
    let options = ApplyOptions {
        force_stale_usage: Vec::new(),
        max_deletions: settings.settings.max_deletions,
        actor: "berth".to_string(),
    };
    let mut last_run: Option<tokio::time::Instant> = None;
    let mut held;
    loop {
        held = lease.claim().await;
        let due = last_run.is_none_or(|at| at.elapsed() >= interval);
        if let (true, Some(fence), Some(snapshot)) = (due, &held, catalog.snapshot()) {
            let fenced = store.fenced(fence.clone());
            let rules = &settings.settings;
            let work = async {
                if rules.apply {
                    let clock = Arc::clone(&clock);
                    berth_retention::apply(&fenced, &client, &snapshot.catalog, rules, &options, {
                        move || clock()
                    })
                    .await
                } else {
                    berth_retention::plan(&fenced, &snapshot.catalog, rules, clock())
                        .await
                        .map(|plan| Applied {
                            plan,
                            refused: None,
                            done: Vec::new(),
                            deleted: 0,
                            blocked: Vec::new(),
                            deferred: 0,
                        })
                }
            };
            last_run = Some(tokio::time::Instant::now());
            match lease.renewing(fence, work, || {}).await {
                Ok(applied) => {
                    tracing::info!(
                        apply = rules.apply,
                        candidates = applied.plan.candidates,
                        deleted = applied.deleted,
                        refused = applied.refused.as_deref().unwrap_or(""),
                        "retention run"
                    );
                    state.record(Run {
                        finished_at: clock(),
                        apply: rules.apply,
                        applied,
                    });
                }
                Err(error) => {
                    state.failed();
                    tracing::warn!(error = %error, "retention run failed");
                }
            }
            // A run reads the whole store's knowledge; its freed heap goes back now.
            tokio::task::spawn_blocking(crate::memory::release_free_heap);
        }
        tokio::select! {
            () = tokio::time::sleep(interval.min(LEASE_TICK)) => {}
            () = crate::until_stopped(&mut stopped) => break,
        }
    }
    if let Some(fence) = &held {
        lease.release(fence).await;
    }
}

/// `GET /api/v1/retention`: the last run on this replica (what `berth retention apply --json`
/// prints, with `finished_at` and `apply`); 404 `not_run` before the first, or on a replica
/// that does not hold the lease.
pub(crate) async fn last_run(
    State(state): State<AppState>,
    Channels(api): Channels,
    headers: HeaderMap,
) -> Result<Json<Arc<Run>>, ChannelsApiError> {
    authorize_token(&api.tokens, &headers, Scope::Read)?;
    let Some(retention) = &state.retention else {
        return Err(ChannelsApiError::NotFound(
            "retention is off: berth serve needs a `retention` section and a `store`".to_string(),
        ));
    };
    retention.last().map(Json).ok_or(ChannelsApiError::NotFound(
        "no retention run on this replica yet (it runs on the `retention` lease holder)"
            .to_string(),
    ))
}
