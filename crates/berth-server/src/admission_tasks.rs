//! The webhook's background tasks, run by [`crate::run`]: the policy watcher (the policy file
//! re-read when it changes, and re-checked against the catalog whenever either changes, the
//! same check `berth check` makes), the knowledge refresher (the store's knowledge re-read on an
//! interval) and the usage writer (allowed admissions drained from a bounded queue into the
//! store). A policy that does not load keeps the last good one; with none loaded yet (broken
//! at start) `/readyz` answers 503 with its errors, the webhook answers 503, and the watcher
//! keeps retrying.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_core::ImageRef;
use berth_core::catalog::Diagnostic;
use berth_store::notifications::Denial;
use berth_store::{Store, UsageSource, Use};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::Clock;
use crate::admission::{Report, SnapshotCell};
use crate::admission_metrics::AdmissionMetrics;
use crate::catalog_source::{Fingerprint, fingerprint};
use crate::reload::CatalogState;

/// The largest policy file read.
const POLICY_SIZE_MAX: u64 = 4 * 1024 * 1024;

/// The webhook's policy: where it is read from, the snapshot it feeds, and how the last load
/// went (`/readyz`, `/api/v1/status`); and, since the webhook is served exactly when a policy
/// is configured, the webhook's counters, which its handlers write and `/metrics` reads.
pub struct PolicyState {
    pub path: PathBuf,
    pub cell: Arc<SnapshotCell>,
    pub metrics: Arc<AdmissionMetrics>,
    status: Mutex<PolicyStatus>,
    /// The served policy's trusted keys (`signatures.keys`), which the scheduled sync checks
    /// signatures against.
    keys: Mutex<Vec<berth_trust::TrustedKey>>,
}

/// `/api/v1/status`'s policy part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyStatus {
    pub path: String,
    /// Whether a policy is being served (the last good one, when a later load failed).
    pub loaded: bool,
    pub loaded_at: Option<DateTime<Utc>>,
    /// The catalog generation it was last checked against.
    pub checked_against_catalog: Option<u64>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_ok: bool,
    /// Why the file could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Errors and warnings of the last load (file:line:column).
    pub diagnostics: Vec<Diagnostic>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

impl PolicyState {
    pub fn new(path: PathBuf, cell: Arc<SnapshotCell>) -> PolicyState {
        let status = PolicyStatus {
            path: path.display().to_string(),
            ..PolicyStatus::default()
        };
        PolicyState {
            path,
            cell,
            keys: Mutex::default(),
            metrics: Arc::default(),
            status: Mutex::new(status),
        }
    }

    pub fn status(&self) -> PolicyStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The served policy's trusted keys (none before a policy is loaded, or without a
    /// `signatures` rule).
    pub fn keys(&self) -> Vec<berth_trust::TrustedKey> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the policy and checks it against `catalog`; a good one replaces the served policy.
    pub fn load(
        &self,
        catalog: &berth_core::catalog::Catalog,
        generation: u64,
        now: DateTime<Utc>,
    ) -> bool {
        let name = self.path.display().to_string();
        let text = read_bounded(&self.path);
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        // Messages as operators grep for them: a first load, a reload, a reload refused.
        let (loaded_message, refused_message) = if status.loaded {
            (
                "policy reloaded",
                "policy not reloaded; the last good one is kept",
            )
        } else {
            (
                "policy loaded",
                "policy not loaded; the webhook is not ready",
            )
        };
        status.last_attempt_at = Some(now);
        status.checked_against_catalog = Some(generation);
        let text = match text {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(file = %name, error = %error, "{refused_message}");
                status.last_attempt_ok = false;
                status.error = Some(error);
                status.diagnostics.clear();
                status.reloads_failed += 1;
                return false;
            }
        };
        let mut loaded = berth_core::policy::load_checked(&name, &text, catalog);
        let mut keys = Vec::new();
        if let Some(policy) = &mut loaded.policy {
            let (read, problems) = berth_files::policy_keys::read_keys(policy, &self.path);
            keys = read;
            if !problems.is_empty() {
                loaded.diagnostics.extend(problems);
                loaded.policy = None;
            }
        }
        status.error = None;
        status.diagnostics = loaded.diagnostics;
        match loaded.policy {
            Some(policy) => {
                self.cell.set_policy(policy);
                *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
                status.loaded = true;
                status.loaded_at = Some(now);
                status.last_attempt_ok = true;
                status.reloads_ok += 1;
                tracing::info!(file = %name, catalog_generation = generation, "{loaded_message}");
                true
            }
            None => {
                for diagnostic in status.diagnostics.iter().filter(|d| d.is_error()) {
                    tracing::warn!(
                        file = %diagnostic.file,
                        line = diagnostic.line,
                        column = diagnostic.column,
                        field = %diagnostic.field,
                        message = %diagnostic.message,
                        "policy error"
                    );
                }
                tracing::warn!(file = %name, "{refused_message}");
                status.last_attempt_ok = false;
                status.reloads_failed += 1;
                false
            }
        }
    }
}

/// The policy file's text: at most [`POLICY_SIZE_MAX`] bytes, and UTF-8 as every berth reader
/// checks it (`catalog::read::utf8_text`: the bad byte's file:line:column).
fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |error: std::io::Error| format!("cannot read {}: {error}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(POLICY_SIZE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > POLICY_SIZE_MAX {
        return Err(format!(
            "{} is larger than {POLICY_SIZE_MAX} bytes",
            path.display()
        ));
    }
    berth_core::catalog::read::utf8_text(&path.display().to_string(), bytes)
        .map_err(|diagnostic| diagnostic.to_string())
}

/// Loads the policy once the catalog has loaded, then re-loads it whenever the policy file
/// changes or a new catalog generation is served, until `stopped`. A policy broken at start is
/// retried on each such change: fixing the file (or the catalog) makes the server ready.
pub async fn watch_policy(
    policy: Arc<PolicyState>,
    catalog: Arc<CatalogState>,
    interval: Duration,
    clock: Clock,
    mut stopped: watch::Receiver<bool>,
) {
    let mut last: Option<(Fingerprint, u64)> = None;
    loop {
        // Until the catalog's first load, look often: the first policy load follows at once.
        let wait = if catalog.status().last_attempt.is_none() {
            interval.min(Duration::from_millis(20))
        } else {
            interval
        };
        if let Some(snapshot) = catalog.snapshot() {
            let current = (fingerprint(&policy.path), snapshot.generation);
            if last.as_ref() != Some(&current) {
                policy.load(&snapshot.catalog, snapshot.generation, clock());
                last = Some(current);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
}

/// Waits (at most `limit`) until the catalog's first load and, when it loaded, the policy's
/// first load have been tried, so that a good configuration is ready when `run` says it
/// listens.
pub async fn first_loads(catalog: &CatalogState, policy: Option<&PolicyState>, limit: Duration) {
    let tried = || match catalog.status().last_attempt {
        None => false,
        Some(_) if catalog.snapshot().is_none() => true,
        Some(_) => policy.is_none_or(|policy| policy.status().last_attempt_at.is_some()),
    };
    let _ = tokio::time::timeout(limit, async {
        while !tried() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Brings the webhook's knowledge up to date every `interval` until `stopped`, from
/// `generation` (that of the knowledge the cell holds): only what the store changed since is
/// read (`Store::knowledge_changes`), and the next snapshot is built from the previous one, so
/// an idle refresh costs one one-row query whatever the store's size. A failure keeps the last
/// (and the snapshot's age, from the last refresh that succeeded, grows).
pub async fn refresh_knowledge(
    cell: Arc<SnapshotCell>,
    store: Store,
    interval: Duration,
    mut generation: u64,
    clock: Clock,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
        // An idle store costs one one-row query: the changes are read only when it moved.
        match store.knowledge_generation().await {
            Ok(current) if current == generation => {
                cell.set_refreshed(generation, clock());
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "registry knowledge not refreshed; the last is kept");
                continue;
            }
        }
        match store.knowledge_changes(generation).await {
            Ok(changes) if changes.generation == generation => {
                cell.set_refreshed(generation, clock());
            }
            Ok(changes) => {
                let next = (*cell.knowledge()).clone().apply(&changes);
                cell.set_knowledge(next);
                cell.set_refreshed(changes.generation, clock());
                tracing::debug!(
                    from = generation,
                    to = changes.generation,
                    tags = changes.tags.len(),
                    images = changes.images.len(),
                    "registry knowledge refreshed"
                );
                generation = changes.generation;
                // What the copy of the snapshot and the changes left free goes back now (the
                // previous snapshot too, once the last request holding it ends).
                drop(changes);
                tokio::task::spawn_blocking(crate::memory::release_free_heap);
            }
            Err(error) => tracing::warn!(
                error = %error,
                "registry knowledge not refreshed; the last is kept"
            ),
        }
    }
}

/// Admissions waiting to be written; past this, records are dropped (and logged), never waited
/// for.
pub const USAGE_QUEUE: usize = 1024;

/// Reports folded into one store transaction when they queue up behind a slow write.
const USAGE_BATCH: usize = 64;

/// Writes usage records into the store's inventory (source `admission`) until every sender is
/// gone (the server has stopped and its handlers with it), then returns: what was queued is
/// written before shutdown ends. Reports waiting together are written in one transaction.
pub async fn write_usage(
    store: Store,
    mut receiver: mpsc::Receiver<Report>,
    denials_window: Option<Duration>,
) -> u64 {
    let mut written = 0;
    while let Some(first) = receiver.recv().await {
        let mut reports = vec![first];
        for _ in 1..USAGE_BATCH {
            match receiver.try_recv() {
                Ok(more) => reports.push(more),
                Err(_) => break,
            }
        }
        let mut records = Vec::new();
        let mut denials = Vec::new();
        for report in reports {
            match report {
                Report::Allowed(uses) => records.extend(uses),
                Report::Denied(denied) => denials.extend(denied),
            }
        }
        if let Some(window) = denials_window
            && !denials.is_empty()
        {
            let denials: Vec<Denial> = denials
                .into_iter()
                .map(|denied| Denial {
                    window_start: window_start(denied.at, window),
                    image: denied.image,
                    namespace: denied.namespace,
                    message: denied.message,
                })
                .collect();
            if let Err(error) = store.record_denials(&denials).await {
                tracing::warn!(error = %error, denials = denials.len(), "admission denials not recorded");
            }
        }
        let Some(at) = records.iter().map(|record| record.at).max() else {
            continue;
        };
        let uses: Vec<Use> = records
            .into_iter()
            .map(|record| Use {
                reference: ImageRef::parse(&record.image).ok(),
                namespace: record.namespace,
                kind: record.kind,
                name: record.name,
                container: record.container,
                image: record.image,
                digest: record.digest,
            })
            .collect();
        match store
            .record_usage(UsageSource::Admission, "", &uses, false, at)
            .await
        {
            Ok(recorded) => written += recorded.recorded,
            Err(error) => {
                tracing::warn!(error = %error, uses = uses.len(), "admission usage not recorded")
            }
        }
    }
    written
}

/// The start of the window of `window` length that `at` falls in (windows count from the epoch).
fn window_start(at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let length = i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1);
    let start = at.timestamp().div_euclid(length) * length;
    DateTime::from_timestamp(start, 0).unwrap_or(at)
}
