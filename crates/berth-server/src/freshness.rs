//! Freshness under `berth serve`: the scheduled pass that decides which images are stale
//! (berth-core's `freshness` over the store, off the request threads), `GET /api/v1/stale`
//! answering from the last pass, and its metrics. The pass only reads: every replica runs it,
//! so each answers and exports the same list without a lease.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_core::freshness::{self, Report, Settings};
use berth_store::Store;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::api::ApiError;
use crate::reload::CatalogState;
use crate::{AppState, Clock};

/// How often the pass runs unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The `freshness` section, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshnessSettings {
    pub interval: Duration,
    pub settings: Settings,
}

/// The last pass and the counters of all passes.
pub struct FreshnessState {
    pub settings: FreshnessSettings,
    store: Store,
    last: Mutex<Passes>,
}

#[derive(Default)]
struct Passes {
    report: Option<(Arc<Report>, DateTime<Utc>)>,
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

impl FreshnessState {
    pub fn new(store: Store, settings: FreshnessSettings) -> FreshnessState {
        FreshnessState {
            settings,
            store,
            last: Mutex::new(Passes::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Passes> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One pass: the store's facts read, the decision made on a blocking thread (it walks
    /// every image), the result kept. A failing store keeps the last report.
    pub async fn pass(
        &self,
        catalog: &CatalogState,
        now: DateTime<Utc>,
    ) -> Result<Arc<Report>, String> {
        let Some(snapshot) = catalog.snapshot() else {
            return Err("no catalog has loaded yet".to_string());
        };
        let outcome = match self.store.freshness_facts().await {
            Ok(facts) => {
                let settings = self.settings.settings.clone();
                tokio::task::spawn_blocking(move || {
                    let report = freshness::stale(&snapshot.catalog, &facts, &settings, now);
                    drop(facts);
                    crate::memory::release_free_heap();
                    report
                })
                .await
                .map_err(|error| format!("the freshness pass failed: {error}"))
            }
            Err(error) => Err(error.to_string()),
        };
        let mut passes = self.lock();
        match outcome {
            Ok(report) => {
                let report = Arc::new(report);
                passes.report = Some((Arc::clone(&report), now));
                passes.ok += 1;
                passes.last_error = None;
                Ok(report)
            }
            Err(error) => {
                passes.failed += 1;
                passes.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The last pass's report and when it was made.
    pub fn last(&self) -> Option<(Arc<Report>, DateTime<Utc>)> {
        self.lock().report.clone()
    }

    /// `berth_stale_images{reason}` and the passes' counters, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let passes = self.lock();
        let mut text = String::new();
        if let Some((report, at)) = &passes.report {
            let counts = freshness::count_by_reason(report);
            let labels: Vec<(String, f64)> = counts
                .iter()
                .map(|(kind, count)| (format!("{{reason=\"{kind}\"}}"), *count as f64))
                .collect();
            let samples: Vec<(&str, f64)> = labels
                .iter()
                .map(|(labels, value)| (labels.as_str(), *value))
                .collect();
            crate::metrics::write_metric(
                &mut text,
                "berth_stale_images",
                "gauge",
                "Stale images in scope by reason, as of the last freshness pass.",
                &samples,
            );
            crate::metrics::write_metric(
                &mut text,
                "berth_freshness_images_checked",
                "gauge",
                "Images in scope at the last freshness pass.",
                &[("", report.checked as f64)],
            );
            crate::metrics::write_metric(
                &mut text,
                "berth_freshness_last_pass_timestamp_seconds",
                "gauge",
                "When the last successful freshness pass decided, in Unix seconds.",
                &[("", at.timestamp() as f64)],
            );
        }
        crate::metrics::write_metric(
            &mut text,
            "berth_freshness_pass_total",
            "counter",
            "Freshness passes by result; a failed pass keeps the last report.",
            &[
                (r#"{result="success"}"#, passes.ok as f64),
                (r#"{result="failure"}"#, passes.failed as f64),
            ],
        );
        text
    }
}

/// Runs a pass every `interval` once the catalog has loaded, until `stopped`.
pub async fn schedule(
    state: Arc<FreshnessState>,
    catalog: Arc<CatalogState>,
    clock: Clock,
    mut stopped: watch::Receiver<bool>,
) {
    while catalog.snapshot().is_none() {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
    loop {
        match state.pass(&catalog, clock()).await {
            Ok(report) => tracing::info!(
                checked = report.checked,
                stale = report.stale.len(),
                "freshness pass"
            ),
            Err(error) => tracing::warn!(error = %error, "freshness pass failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(state.settings.interval) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
}

/// `GET /api/v1/stale`: the last pass's list (what `berth stale --json` prints), with
/// `decided_at`; the first request before any pass runs one.
pub async fn stale(State(state): State<AppState>) -> Result<Response, ApiError> {
    let freshness = state.freshness.as_ref().ok_or(ApiError::NoStore)?;
    let (report, at) = match freshness.last() {
        Some(last) => last,
        None => {
            if state.catalog.snapshot().is_none() {
                return Err(ApiError::NoCatalog);
            }
            let now = (state.clock)();
            let report = freshness
                .pass(&state.catalog, now)
                .await
                .map_err(ApiError::Store)?;
            (report, now)
        }
    };
    Ok(Json(freshness::Listing::new(&report, at)).into_response())
}
