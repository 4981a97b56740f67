//! `/metrics` in the Prometheus text format, written by hand: a few counters and gauges do not
//! need a metrics library.

use std::fmt::Write as _;

use crate::reload::CatalogStatus;

/// Appends one metric family: its help, its type and its samples (`labels` as written,
/// `{result="success"}` or empty).
pub fn write_metric(
    text: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(&str, f64)],
) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(text, "{name}{labels} {value}");
    }
}

/// The metrics text for the catalog's status.
pub fn render(status: &CatalogStatus) -> String {
    let mut text = String::new();
    let serving = status.serving.as_ref();
    let last_ok = status
        .last_attempt
        .as_ref()
        .is_some_and(|attempt| attempt.ok);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        write_metric(&mut text, name, kind, help, samples);
    };
    metric(
        "berth_catalog_reload_total",
        "counter",
        "Catalog loads by result; a failure keeps the last good catalog.",
        &[
            (r#"{result="success"}"#, status.reloads.success as f64),
            (r#"{result="failure"}"#, status.reloads.failure as f64),
        ],
    );
    metric(
        "berth_catalog_last_reload_success",
        "gauge",
        "1 when the latest catalog load succeeded, 0 when it failed.",
        &[("", if last_ok { 1.0 } else { 0.0 })],
    );
    metric(
        "berth_catalog_entries",
        "gauge",
        "Entries in the catalog being served.",
        &[("", serving.map_or(0.0, |serving| serving.entries as f64))],
    );
    metric(
        "berth_catalog_generation",
        "gauge",
        "Generation of the catalog being served (0: none yet).",
        &[("", serving.map_or(0.0, |serving| serving.generation as f64))],
    );
    metric(
        "berth_catalog_loaded_timestamp_seconds",
        "gauge",
        "When the catalog being served was loaded, in Unix seconds.",
        &[(
            "",
            serving.map_or(0.0, |serving| serving.loaded_at.timestamp() as f64),
        )],
    );
    text
}

/// The resolver's counters in the Prometheus text format, for `/metrics`.
pub fn resolve_metrics(stats: &berth_sync::resolve::ResolveStats) -> String {
    let mut text = String::new();
    write_metric(
        &mut text,
        "berth_resolve_total",
        "counter",
        "Tags the webhook's knowledge lacked, by outcome: answered from the cache, requested \
         at the registry (one per tag however many admissions wait), and of those requests the \
         registry errors and the ones past the deadline (the rule's unknown handling applied).",
        &[
            (r#"{outcome="cache_hit"}"#, stats.hits as f64),
            (r#"{outcome="request"}"#, stats.requests as f64),
            (r#"{outcome="error"}"#, stats.errors as f64),
            (r#"{outcome="timeout"}"#, stats.timeouts as f64),
        ],
    );
    text
}
