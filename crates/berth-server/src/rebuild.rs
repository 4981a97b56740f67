//! Rebuild dispatch under `berth serve`: on the replica holding the `rebuild` lease, a full
//! pass (berth-rebuild's: close what landed, record then send what is stale) every freshness
//! interval, and between passes the delivery of recorded dispatches whose retry is due. Every
//! write is fenced by the lease, so two replicas never dispatch. Counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_core::freshness::Settings;
use berth_rebuild::{Dispatcher, PassReport};
use berth_store::Store;
use tokio::sync::watch;

use crate::Clock;
use crate::leases::LeaseHolder;
use crate::reload::CatalogState;

/// How often recorded dispatches due for another attempt are looked at between passes.
pub const DELIVERY_TICK: Duration = Duration::from_secs(15);

/// Upper bounds of `berth_rebuild_time_to_fresh_seconds`: an hour to a month.
const TIME_TO_FRESH_BUCKETS: [f64; 7] = [
    3600.0,
    21_600.0,
    86_400.0,
    259_200.0,
    604_800.0,
    1_209_600.0,
    2_592_000.0,
];

/// What this replica's passes did, for `/metrics`.
#[derive(Default)]
struct Counters {
    /// (target, result) → dispatch attempts.
    dispatches: BTreeMap<(String, &'static str), u64>,
    /// Observations per bucket (the last is +Inf), their sum and count.
    time_to_fresh: [u64; TIME_TO_FRESH_BUCKETS.len() + 1],
    time_to_fresh_sum: f64,
    passes_ok: u64,
    passes_failed: u64,
}

pub struct RebuildState {
    pub dispatcher: Dispatcher,
    counters: Mutex<Counters>,
}

impl RebuildState {
    pub fn new(dispatcher: Dispatcher) -> RebuildState {
        RebuildState {
            dispatcher,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Counts one full pass, successful or not.
    fn pass_ended(&self, ok: bool) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            counters.passes_ok += 1;
        } else {
            counters.passes_failed += 1;
        }
    }

    fn count(&self, report: &PassReport) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for sent in report.dispatched.iter().chain(&report.redelivered) {
            *counters
                .dispatches
                .entry((sent.target.clone(), sent.result))
                .or_default() += 1;
        }
        for closed in &report.closed {
            if let Some(seconds) = closed.time_to_fresh_seconds {
                let seconds = seconds as f64;
                let bucket = TIME_TO_FRESH_BUCKETS
                    .iter()
                    .position(|bound| seconds <= *bound)
                    .unwrap_or(TIME_TO_FRESH_BUCKETS.len());
                counters.time_to_fresh[bucket] += 1;
                counters.time_to_fresh_sum += seconds;
            }
        }
    }

    /// `berth_rebuild_dispatch_total{target,result}`, `berth_rebuild_time_to_fresh_seconds`
    /// and `berth_rebuild_pass_total{result}`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        let labels: Vec<(String, f64)> = counters
            .dispatches
            .iter()
            .map(|((target, result), count)| {
                (
                    format!("{{target=\"{target}\",result=\"{result}\"}}"),
                    *count as f64,
                )
            })
            .collect();
        let samples: Vec<(&str, f64)> = labels
            .iter()
            .map(|(labels, value)| (labels.as_str(), *value))
            .collect();
        crate::metrics::write_metric(
            &mut text,
            "berth_rebuild_dispatch_total",
            "counter",
            "Rebuild dispatch attempts by target and result (delivered, retry, failed).",
            &samples,
        );
        use std::fmt::Write as _;
        let name = "berth_rebuild_time_to_fresh_seconds";
        let _ = writeln!(
            text,
            "# HELP {name} From an image going stale to its rebuild on the new base showing on its channel."
        );
        let _ = writeln!(text, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in TIME_TO_FRESH_BUCKETS.iter().zip(&counters.time_to_fresh) {
            cumulative += count;
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += counters.time_to_fresh[TIME_TO_FRESH_BUCKETS.len()];
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(text, "{name}_sum {}", counters.time_to_fresh_sum);
        let _ = writeln!(text, "{name}_count {cumulative}");
        crate::metrics::write_metric(
            &mut text,
            "berth_rebuild_pass_total",
            "counter",
            "Rebuild passes on this replica by result.",
            &[
                (r#"{result="success"}"#, counters.passes_ok as f64),
                (r#"{result="failure"}"#, counters.passes_failed as f64),
            ],
        );
        text
    }
}

/// What the rebuild task runs with.
pub struct RebuildTask {
    pub state: Arc<RebuildState>,
    pub store: Store,
    pub catalog: Arc<CatalogState>,
    /// The freshness settings the passes decide staleness with.
    pub freshness: Settings,
    /// How often a full pass runs (the freshness interval).
    pub interval: Duration,
    pub clock: Clock,
    pub lease: LeaseHolder,
}

/// Runs rebuild passes every `interval` on the lease holder, delivering due retries in
/// between, until `stopped`.
pub async fn schedule(task: RebuildTask, mut stopped: watch::Receiver<bool>) {
    let RebuildTask {
        state,
        store,
        catalog,
        freshness,
        interval,
        clock,
        lease,
    } = task;
    while catalog.snapshot().is_none() {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
    let tick = interval.min(DELIVERY_TICK);
    let mut last_pass: Option<tokio::time::Instant> = None;
    let mut held;
    loop {
        held = lease.claim().await;
        if let (Some(fence), Some(snapshot)) = (&held, catalog.snapshot()) {
            let fenced = store.fenced(fence.clone());
            let full = last_pass.is_none_or(|at| at.elapsed() >= interval);
            let now = clock();
            let work = async {
                if full {
                    state
                        .dispatcher
                        .pass(&fenced, &snapshot.catalog, &freshness, now, false)
                        .await
                } else {
                    state
                        .dispatcher
                        .deliver_due(&fenced, now)
                        .await
                        .map(|redelivered| PassReport {
                            redelivered,
                            ..PassReport::default()
                        })
                }
            };
            let outcome = lease.renewing(fence, work, || {}).await;
            match outcome {
                Ok(report) => {
                    if full {
                        last_pass = Some(tokio::time::Instant::now());
                        state.pass_ended(true);
                        tracing::info!(
                            dispatched = report.dispatched.len(),
                            redelivered = report.redelivered.len(),
                            closed = report.closed.len(),
                            timed_out = report.timed_out.len(),
                            "rebuild pass"
                        );
                    }
                    for target in &report.suspended {
                        tracing::warn!(target_name = %target, "rebuild target suspended after consecutive failures");
                    }
                    state.count(&report);
                }
                Err(error) => {
                    if full {
                        last_pass = Some(tokio::time::Instant::now());
                        state.pass_ended(false);
                    }
                    tracing::warn!(error = %error, "rebuild pass failed");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = crate::until_stopped(&mut stopped) => break,
        }
    }
    if let Some(fence) = &held {
        lease.release(fence).await;
    }
}
