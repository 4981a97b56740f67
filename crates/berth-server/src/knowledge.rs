//! Registry knowledge under `berth serve`: the scheduled sync (one run at a time, the catalog's
//! repositories re-read at every run) and the read-only endpoints over the store (`/images`,
//! `/repositories`, `/sync`).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use berth_core::Digest;
use berth_oci::Client;
use berth_store::{ImageFilter, RepositoryName, RepositoryStatus, Store};
use berth_sync::{RepositoryOutcome, SyncReport, Syncer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use berth_store::ImageView;

use crate::AppState;
use crate::admission_tasks::PolicyState;
use crate::api::ApiError;
use crate::config::SyncSettings;
use crate::leases::{LeaseHolder, SYNC_LEASE};
use crate::reload::CatalogState;

/// The store and what the scheduled sync last did.
pub struct Knowledge {
    pub store: Store,
    runs: Mutex<SyncRuns>,
}

/// The scheduler's record, for `/api/v1/sync` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncRuns {
    /// Whether a sync is scheduled at all (a `sync` section in the config).
    pub scheduled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    pub runs_ok: u64,
    /// Runs where a repository or registry failed (what was known stays).
    pub runs_with_failures: u64,
    /// Runs that could not use the store at all.
    pub runs_failed: u64,
    pub running: bool,
    pub last_started_at: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Requests sent by all runs since start.
    pub requests_total: u64,
    pub last_report: Option<SyncReport>,
}

impl Knowledge {
    pub fn new(store: Store) -> Knowledge {
        Knowledge {
            store,
            runs: Mutex::new(SyncRuns::default()),
        }
    }

    pub fn runs(&self) -> SyncRuns {
        self.runs.lock().expect("sync runs lock").clone()
    }

    fn update(&self, change: impl FnOnce(&mut SyncRuns)) {
        change(&mut self.runs.lock().expect("sync runs lock"));
    }
}

/// Runs the sync every `interval` on whichever replica holds the sync lease, until `stopped`.
/// One run at a time (a run that outlasts the interval delays the next, it never overlaps it);
/// when the next run is due is computed from the last run any replica recorded, on the
/// database's clock, so a replica taking over does not sync again at once. A run stops at a
/// repository boundary when the server stops or the lease is lost; the lease is released at
/// shutdown.
pub async fn schedule(
    knowledge: Arc<Knowledge>,
    catalog: Arc<CatalogState>,
    settings: SyncSettings,
    policy: Option<Arc<PolicyState>>,
    lease: LeaseHolder,
    mut stopped: watch::Receiver<bool>,
) {
    let client = Client::new(settings.client.clone());
    knowledge.update(|runs| {
        runs.scheduled = true;
        runs.interval_seconds = Some(settings.interval.as_secs());
    });
    // The first run waits for the catalog's first load (good or bad), whose repositories it
    // walks, and for a while the policy's (loaded once the catalog is good), whose keys it
    // checks signatures against: layers read before are checked by a later run anyway.
    let mut policy_wait = std::time::Duration::from_secs(10);
    while catalog.status().last_attempt.is_none()
        || (policy
            .as_ref()
            .is_some_and(|policy| policy.status().last_attempt_at.is_none())
            && !policy_wait.is_zero())
    {
        if catalog.status().last_attempt.is_some() {
            policy_wait = policy_wait.saturating_sub(std::time::Duration::from_millis(20));
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
    let mut held: Option<berth_store::Fence> = None;
    loop {
        if *stopped.borrow() {
            break;
        }
        let fence = lease.claim().await;
        let mut wait = lease.settings.renew_every();
        if let Some(fence) = &fence {
            match due_in(&knowledge.store, settings.interval).await {
                Ok(None) => {
                    let options = sync_options(&settings, policy.as_deref());
                    run_once(
                        &knowledge, &catalog, &settings, options, &client, &lease, fence, &stopped,
                    )
                    .await;
                    continue;
                }
                Ok(Some(due)) => wait = wait.min(due),
                Err(error) => tracing::warn!(error = %error, "cannot tell when the sync is due"),
            }
        }
        held = fence;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = crate::until_stopped(&mut stopped) => break,
        }
    }
    if let Some(fence) = held {
        lease.release(&fence).await;
    }
}

/// The sync's options with the served policy's trusted keys, as they are now (a reloaded
/// policy's keys apply from the next run).
pub fn sync_options(
    settings: &SyncSettings,
    policy: Option<&PolicyState>,
) -> berth_sync::SyncOptions {
    let mut options = settings.options.clone();
    if let Some(policy) = policy {
        options.trusted_keys = policy.keys();
    }
    options
}

/// `None` when a sync is due now, else how long until it is (from the last recorded run).
async fn due_in(
    store: &Store,
    interval: std::time::Duration,
) -> Result<Option<std::time::Duration>, berth_store::StoreError> {
    let last = store.task_runs(SYNC_LEASE, 1).await?;
    let Some(last) = last.last() else {
        return Ok(None);
    };
    let now = store.database_now().await?;
    let due =
        last.started_at + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    Ok((due - now).to_std().ok().filter(|wait| !wait.is_zero()))
}

/// One sync under `fence`: its writes fenced, the lease renewed while it runs, stopped at a
/// repository boundary by shutdown or a lost lease; the run recorded under the fence.
#[allow(clippy::too_many_arguments)]
async fn run_once(
    knowledge: &Knowledge,
    catalog: &CatalogState,
    settings: &SyncSettings,
    options: berth_sync::SyncOptions,
    client: &Client,
    lease: &LeaseHolder,
    fence: &berth_store::Fence,
    stopped: &watch::Receiver<bool>,
) {
    let store = knowledge.store.fenced(fence.clone());
    let started_at = match store.database_now().await {
        Ok(now) => now,
        Err(error) => {
            tracing::warn!(error = %error, "sync not started: the store's clock cannot be read");
            return;
        }
    };
    let started = Utc::now();
    knowledge.update(|runs| {
        runs.running = true;
        runs.last_started_at = Some(started);
    });
    let mut targets = settings.targets.clone();
    if let Some(snapshot) = catalog.snapshot() {
        targets.add_catalog(&snapshot.catalog);
    }
    let syncer = Syncer::new(client.clone(), store.clone(), options);
    let cancel = syncer.cancel_flag();
    let mut stop = stopped.clone();
    let shutdown_cancel = cancel.clone();
    // Shutdown stops the run at its next repository boundary (never mid-transaction).
    let watcher = tokio::spawn(async move {
        let _ = stop.wait_for(|stop| *stop).await;
        shutdown_cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let result = lease
        .renewing(fence, syncer.run(&targets), || {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed)
        })
        .await;
    watcher.abort(); // it only sets a flag; nothing is written
    let finished = Utc::now();
    let next =
        finished + chrono::Duration::from_std(settings.interval).unwrap_or(chrono::Duration::MAX);
    let (outcome, detail) = match &result {
        Ok(report) if report.cancelled => (
            "cancelled",
            serde_json::json!({
                "repositories": report.repositories.len(), "failed": report.failed(),
            }),
        ),
        Ok(report) if report.failed() == 0 => (
            "ok",
            serde_json::json!({
                "repositories": report.repositories.len(), "requests": report.requests.total(),
            }),
        ),
        Ok(report) => (
            "failures",
            serde_json::json!({
                "repositories": report.repositories.len(), "failed": report.failed(),
                "first_error": first_failure(report),
            }),
        ),
        Err(error) => ("failed", serde_json::json!({"error": error.to_string()})),
    };
    // A cancelled run is not recorded as a run: the next holder syncs again at once.
    if outcome != "cancelled" {
        match store
            .record_task_run(SYNC_LEASE, started_at, outcome, &detail.to_string())
            .await
        {
            Ok(()) => {}
            Err(error) => tracing::warn!(error = %error, "sync run not recorded"),
        }
    }
    knowledge.update(|runs| {
        runs.running = false;
        runs.last_finished_at = Some(finished);
        runs.next_run_at = Some(next);
        match result {
            Ok(report) => {
                runs.requests_total += report.requests.total();
                if report.cancelled {
                    tracing::info!(
                        repositories = report.repositories.len(),
                        "sync stopped at a repository boundary"
                    );
                } else if report.failed() == 0 {
                    runs.runs_ok += 1;
                    runs.last_success_at = Some(finished);
                    runs.last_error = None;
                } else {
                    runs.runs_with_failures += 1;
                    runs.last_error = Some(first_failure(&report));
                }
                tracing::info!(
                    repositories = report.repositories.len(),
                    failed = report.failed(),
                    requests = report.requests.total(),
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    epoch = fence.epoch,
                    "sync finished"
                );
                runs.last_report = Some(report);
            }
            Err(error) => {
                runs.runs_failed += 1;
                runs.last_error = Some(error.to_string());
                tracing::error!(error = %error, "sync failed");
            }
        }
    });
}

fn first_failure(report: &SyncReport) -> String {
    let repository = report.repositories.iter().find_map(|r| match &r.outcome {
        RepositoryOutcome::Failed { error } => Some(error.clone()),
        RepositoryOutcome::Synced(_) | RepositoryOutcome::Skipped { .. } => None,
    });
    let registry = report
        .registry_failures
        .first()
        .map(|(registry, error)| format!("{registry}: {error}"));
    repository.or(registry).unwrap_or_default()
}

fn knowledge(state: &AppState) -> Result<&Arc<Knowledge>, ApiError> {
    state.knowledge.as_ref().ok_or(ApiError::NoStore)
}

#[derive(Debug, Deserialize)]
pub struct ImagesQuery {
    repo: Option<String>,
    os: Option<String>,
    built_on: Option<String>,
}

/// `GET /api/v1/images?repo=&os=&built_on=DIGEST`
pub async fn images(
    State(state): State<AppState>,
    query: Result<Query<ImagesQuery>, QueryRejection>,
) -> Result<Json<Vec<ImageView>>, ApiError> {
    let Query(query) = query?;
    let knowledge = knowledge(&state)?;
    let mut filter = ImageFilter {
        os: query.os,
        ..ImageFilter::default()
    };
    if let Some(text) = &query.repo {
        filter.repository = Some(
            RepositoryName::parse(text)
                .map_err(|error| ApiError::BadRequest(format!("repo {text:?}: {error}")))?,
        );
    }
    if let Some(text) = &query.built_on {
        filter.built_on = Some(
            Digest::parse(text)
                .map_err(|error| ApiError::BadRequest(format!("built_on {text:?}: {error}")))?,
        );
    }
    let images = knowledge.store.images(&filter).await.map_err(store_error)?;
    Ok(Json(images.iter().map(ImageView::from).collect()))
}

/// `GET /api/v1/images/{digest}`
pub async fn image(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Json<ImageView>, ApiError> {
    let digest = Digest::parse(&digest)
        .map_err(|error| ApiError::BadRequest(format!("{digest:?}: {error}")))?;
    let knowledge = knowledge(&state)?;
    let images = knowledge
        .store
        .images(&ImageFilter {
            digest: Some(digest),
            ..ImageFilter::default()
        })
        .await
        .map_err(store_error)?;
    images
        .first()
        .map(|image| Json(ImageView::from(image)))
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Serialize)]
pub struct RepositoryView {
    pub repository: String,
    pub live_tags: u64,
    pub gone_tags: u64,
    pub last_sync_ok_at: Option<DateTime<Utc>>,
    pub last_sync_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub registry_last_error: Option<String>,
}

impl From<&RepositoryStatus> for RepositoryView {
    fn from(status: &RepositoryStatus) -> RepositoryView {
        RepositoryView {
            repository: status.repository.to_string(),
            live_tags: status.live_tags,
            gone_tags: status.gone_tags,
            last_sync_ok_at: status.sync.last_sync_ok_at,
            last_sync_attempt_at: status.sync.last_sync_attempt_at,
            last_error: status.sync.last_error.clone(),
            registry_last_error: status.registry.last_error.clone(),
        }
    }
}

/// `GET /api/v1/repositories`: every synced repository, with how fresh its knowledge is.
pub async fn repositories(
    State(state): State<AppState>,
) -> Result<Json<Vec<RepositoryView>>, ApiError> {
    let knowledge = knowledge(&state)?;
    let statuses = knowledge
        .store
        .repository_statuses()
        .await
        .map_err(store_error)?;
    Ok(Json(statuses.iter().map(RepositoryView::from).collect()))
}

/// `GET /api/v1/sync`: the scheduler's record and the last run's report.
pub async fn sync_status(State(state): State<AppState>) -> Result<Json<SyncRuns>, ApiError> {
    Ok(Json(knowledge(&state)?.runs()))
}

fn store_error(error: berth_store::StoreError) -> ApiError {
    tracing::error!(error = %error, "store read failed");
    ApiError::Store(error.to_string())
}

/// The sync's metrics lines (Prometheus text).
pub fn metrics(runs: &SyncRuns) -> String {
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        crate::metrics::write_metric(&mut text, name, kind, help, samples);
    };
    metric(
        "berth_sync_runs_total",
        "counter",
        "Scheduled sync runs by result (partial: some repository or registry failed).",
        &[
            (r#"{result="success"}"#, runs.runs_ok as f64),
            (r#"{result="partial"}"#, runs.runs_with_failures as f64),
            (r#"{result="failure"}"#, runs.runs_failed as f64),
        ],
    );
    metric(
        "berth_sync_requests_total",
        "counter",
        "Registry requests sent by scheduled syncs.",
        &[("", runs.requests_total as f64)],
    );
    metric(
        "berth_sync_last_success_timestamp_seconds",
        "gauge",
        "When the last fully successful sync finished, in Unix seconds (0: never).",
        &[(
            "",
            runs.last_success_at.map_or(0.0, |at| at.timestamp() as f64),
        )],
    );
    let rate_limits: Vec<(String, f64)> = runs
        .last_report
        .iter()
        .flat_map(|report| &report.rate_limits)
        .map(|stated| {
            let registry = stated.registry.replace(['\\', '"'], "");
            (
                format!(r#"{{registry="{registry}"}}"#),
                stated.limit.remaining as f64,
            )
        })
        .collect();
    if !rate_limits.is_empty() {
        let samples: Vec<(&str, f64)> = rate_limits
            .iter()
            .map(|(labels, value)| (labels.as_str(), *value))
            .collect();
        metric(
            "berth_registry_pull_rate_limit_remaining",
            "gauge",
            "Pulls left in the registry's rate-limit window, as its last answer of the last sync stated (Docker Hub's ratelimit-remaining).",
            &samples,
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_rate_limits_are_a_gauge_per_registry() {
        assert!(!metrics(&SyncRuns::default()).contains("rate_limit"));
        let report = SyncReport {
            repositories: Vec::new(),
            registry_failures: Vec::new(),
            requests: Default::default(),
            elapsed: std::time::Duration::ZERO,
            lineage_updates: 0,
            signatures_rechecked: 0,
            cancelled: false,
            rate_limits: vec![berth_sync::RegistryRateLimit {
                registry: "docker.io".into(),
                limit: berth_oci::RateLimit {
                    limit: Some(100),
                    remaining: 76,
                    window_seconds: Some(21600),
                },
            }],
        };
        let runs = SyncRuns {
            last_report: Some(report),
            ..SyncRuns::default()
        };
        assert!(
            metrics(&runs)
                .contains("berth_registry_pull_rate_limit_remaining{registry=\"docker.io\"} 76\n"),
            "{}",
            metrics(&runs)
        );
    }
}
