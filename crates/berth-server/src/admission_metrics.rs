//! The webhook's own metrics for `/metrics`: every review counted by endpoint, operation, kind
//! and verdict and timed into a histogram per endpoint (both in one update, so the histogram's
//! count always equals the requests counted), the reviews that got no verdict by reason, the
//! findings by rule and action, and the snapshot's knowledge generation and age.
//!
//! Every label value is a `&'static str` from a fixed set (a kind outside the workload kinds is
//! `other`), so the number of series is bounded whatever the API server sends; the hot path
//! takes one mutex for a few additions and allocates nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use berth_core::policy::{Operation, RuleKind, Verdict};
use berth_core::workload::WorkloadKind;
use chrono::{DateTime, Utc};

use crate::admission::{AdmissionReview, Endpoint, ReviewError};
use crate::admission_tasks::PolicyStatus;
use crate::metrics::write_metric;

/// Upper bounds of `berth_admission_duration_seconds`, in seconds: half a millisecond (a
/// decision from the snapshot) to ten seconds (past the API server's default timeout of ten
/// seconds nothing matters any more).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `verdict` label of `berth_admission_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReviewVerdict {
    /// Allowed without a warning (the mutating webhook's answers, pins or not, are all this).
    Allowed,
    /// Denied (validate only).
    Denied,
    /// Allowed with warnings (validate only).
    Warned,
    /// No verdict: a 400 or a 503, counted by reason in `berth_admission_errors_total`.
    Error,
}

impl ReviewVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVerdict::Allowed => "allowed",
            ReviewVerdict::Denied => "denied",
            ReviewVerdict::Warned => "warned",
            ReviewVerdict::Error => "error",
        }
    }

    /// How `verdict` is counted.
    pub fn of(verdict: &Verdict) -> ReviewVerdict {
        if !verdict.allowed {
            ReviewVerdict::Denied
        } else if !verdict.warnings.is_empty() {
            ReviewVerdict::Warned
        } else {
            ReviewVerdict::Allowed
        }
    }
}

/// The `action` label of `berth_admission_findings_total`: what the answer did with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingAction {
    /// It denied the request.
    Enforce,
    /// It became a warning (a rule in warn mode, a deprecation, an enforce finding on an
    /// image an UPDATE kept).
    Warn,
    /// A policy exception waived it.
    Exempted,
}

impl FindingAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingAction::Enforce => "enforce",
            FindingAction::Warn => "warn",
            FindingAction::Exempted => "exempted",
        }
    }
}

/// The `operation` and `kind` labels of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLabels {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`; `other` for anything else; `unknown` when the
    /// body could not be read as a review with a request.
    pub operation: &'static str,
    /// One of the workload kinds (`Pod`, `Deployment`, ...); `other` for any other kind;
    /// `unknown` as above.
    pub kind: &'static str,
}

impl ReviewLabels {
    /// A body that could not be read as an AdmissionReview with a request.
    pub const UNKNOWN: ReviewLabels = ReviewLabels {
        operation: "unknown",
        kind: "unknown",
    };

    pub fn of(review: &AdmissionReview) -> ReviewLabels {
        let Some(request) = &review.request else {
            return ReviewLabels::UNKNOWN;
        };
        let operation = match Operation::parse(&request.operation) {
            Some(Operation::Create) => "CREATE",
            Some(Operation::Update) => "UPDATE",
            Some(Operation::Delete) => "DELETE",
            Some(Operation::Connect) => "CONNECT",
            None => "other",
        };
        let kind = WorkloadKind::parse(&request.kind.kind).map_or("other", WorkloadKind::as_str);
        ReviewLabels { operation, kind }
    }
}

/// How a review ended: with a verdict, or without one for a reason.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Decided(&'a Verdict),
    Failed(ReviewError),
}

/// Observations in buckets (the last is `+Inf`), their sum and count.
#[derive(Debug, Clone, Copy, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket] += 1;
        self.sum_seconds += seconds;
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// (endpoint, operation, kind, verdict) → reviews.
    requests: BTreeMap<(&'static str, &'static str, &'static str, ReviewVerdict), u64>,
    /// Durations of validate's reviews, then mutate's.
    durations: [Histogram; 2],
    errors: BTreeMap<ReviewError, u64>,
    findings: BTreeMap<(RuleKind, FindingAction), u64>,
}

/// The webhook's counters, shared by its handlers and `/metrics`.
#[derive(Debug, Default)]
pub struct AdmissionMetrics {
    counters: Mutex<Counters>,
}

/// The snapshot's registry knowledge: which store generation it holds and when it was last
/// known to be current (built from the store, or a refresh that found it up to date or brought
/// it up to date); `at` is `None` without a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    pub generation: u64,
    pub at: Option<DateTime<Utc>>,
}

fn histogram_index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Validate => 0,
        Endpoint::Mutate => 1,
    }
}

impl AdmissionMetrics {
    /// Counts one review of `endpoint`, answered after `elapsed`.
    pub fn record(
        &self,
        endpoint: Endpoint,
        labels: ReviewLabels,
        outcome: Outcome<'_>,
        elapsed: Duration,
    ) {
        let verdict = match outcome {
            Outcome::Decided(verdict) => ReviewVerdict::of(verdict),
            Outcome::Failed(_) => ReviewVerdict::Error,
        };
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters
            .requests
            .entry((endpoint.as_str(), labels.operation, labels.kind, verdict))
            .or_default() += 1;
        counters.durations[histogram_index(endpoint)].observe(elapsed.as_secs_f64());
        match outcome {
            Outcome::Failed(reason) => *counters.errors.entry(reason).or_default() += 1,
            Outcome::Decided(verdict) => {
                let findings = verdict
                    .denials
                    .iter()
                    .map(|finding| (finding.rule, FindingAction::Enforce))
                    .chain(
                        verdict
                            .warnings
                            .iter()
                            .map(|finding| (finding.rule, FindingAction::Warn)),
                    )
                    .chain(
                        verdict
                            .exempted
                            .iter()
                            .map(|exempted| (exempted.finding.rule, FindingAction::Exempted)),
                    );
                for key in findings {
                    *counters.findings.entry(key).or_default() += 1;
                }
            }
        }
    }

    /// The webhook's metrics and the snapshot's, in the Prometheus text format, at `now`.
    pub fn render(&self, snapshot: Refreshed, now: DateTime<Utc>) -> String {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        let requests: Vec<(String, f64)> = counters
            .requests
            .iter()
            .map(|((endpoint, operation, kind, verdict), count)| {
                (
                    format!(
                        r#"{{endpoint="{endpoint}",operation="{operation}",kind="{kind}",verdict="{}"}}"#,
                        verdict.as_str()
                    ),
                    *count as f64,
                )
            })
            .collect();
        write_metric(
            &mut text,
            "berth_admission_requests_total",
            "counter",
            "AdmissionReviews answered, by endpoint (validate, mutate), operation, kind (other: \
             a kind without a pod template; unknown: the body was no review) and verdict \
             (allowed, denied, warned: allowed with warnings, error: no verdict).",
            &borrowed(&requests),
        );
        let name = "berth_admission_duration_seconds";
        let _ = writeln!(
            text,
            "# HELP {name} Time from a review's arrival to its answer (body read, any resolve \
             and namespace-label wait, decision), by endpoint."
        );
        let _ = writeln!(text, "# TYPE {name} histogram");
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let histogram = &counters.durations[histogram_index(endpoint)];
            let endpoint = endpoint.as_str();
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    text,
                    "{name}_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.buckets[DURATION_BUCKETS.len()];
            let _ = writeln!(
                text,
                "{name}_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                text,
                "{name}_sum{{endpoint=\"{endpoint}\"}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(text, "{name}_count{{endpoint=\"{endpoint}\"}} {cumulative}");
        }
        // Every reason is shown from the start, so a rate over it exists before the first.
        let errors: Vec<(String, f64)> = ReviewError::ALL
            .iter()
            .map(|reason| {
                (
                    format!(r#"{{reason="{}"}}"#, reason.as_str()),
                    counters.errors.get(reason).copied().unwrap_or_default() as f64,
                )
            })
            .collect();
        write_metric(
            &mut text,
            "berth_admission_errors_total",
            "counter",
            "AdmissionReviews that got no verdict (a 400 or a 503; the API server's \
             failurePolicy decides), by reason.",
            &borrowed(&errors),
        );
        let findings: Vec<(String, f64)> = counters
            .findings
            .iter()
            .map(|((rule, action), count)| {
                (
                    format!(r#"{{rule="{rule}",action="{}"}}"#, action.as_str()),
                    *count as f64,
                )
            })
            .collect();
        write_metric(
            &mut text,
            "berth_admission_findings_total",
            "counter",
            "Findings of the validating webhook, one per container and rule, by rule and by \
             what the answer did (enforce: denied, warn: a warning, exempted: an exception \
             waived it).",
            &borrowed(&findings),
        );
        write_metric(
            &mut text,
            "berth_knowledge_snapshot_generation",
            "gauge",
            "The store's knowledge generation the webhook's snapshot holds (0: none read).",
            &[("", snapshot.generation as f64)],
        );
        if let Some(at) = snapshot.at {
            let age = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
            write_metric(
                &mut text,
                "berth_knowledge_snapshot_age_seconds",
                "gauge",
                "Seconds since the webhook's snapshot was last known to match the store (built, \
                 or refreshed); grows while refreshes fail.",
                &[("", age)],
            );
        }
        text
    }
}

/// The policy watcher's loads, in the Prometheus text format (as the catalog's are): a load
/// that fails keeps the last good policy, which only these and `/api/v1/status` show.
pub fn policy_metrics(status: &PolicyStatus) -> String {
    let mut text = String::new();
    write_metric(
        &mut text,
        "berth_policy_reload_total",
        "counter",
        "Policy loads by result (each change of the policy file or of the catalog checks it \
         again); a failure keeps the last good policy.",
        &[
            (r#"{result="success"}"#, status.reloads_ok as f64),
            (r#"{result="failure"}"#, status.reloads_failed as f64),
        ],
    );
    write_metric(
        &mut text,
        "berth_policy_last_reload_success",
        "gauge",
        "1 when the latest policy load succeeded, 0 when it failed (or none was tried yet).",
        &[("", if status.last_attempt_ok { 1.0 } else { 0.0 })],
    );
    write_metric(
        &mut text,
        "berth_policy_loaded",
        "gauge",
        "1 while a policy is being served (the webhook answers), 0 before the first good load.",
        &[("", if status.loaded { 1.0 } else { 0.0 })],
    );
    text
}

fn borrowed(samples: &[(String, f64)]) -> Vec<(&str, f64)> {
    samples
        .iter()
        .map(|(labels, value)| (labels.as_str(), *value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        berth_core::catalog::parse_moment(text).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn durations_fall_in_their_buckets_cumulatively() {
        let metrics = AdmissionMetrics::default();
        let allowed = Verdict {
            allowed: true,
            ..Verdict::default()
        };
        let labels = ReviewLabels {
            operation: "CREATE",
            kind: "Pod",
        };
        for millis in [0, 1, 3, 30_000] {
            metrics.record(
                Endpoint::Validate,
                labels,
                Outcome::Decided(&allowed),
                Duration::from_millis(millis),
            );
        }
        let text = metrics.render(Refreshed::default(), at("2026-08-01"));
        let bucket = |le: &str| {
            format!("berth_admission_duration_seconds_bucket{{endpoint=\"validate\",le=\"{le}\"}}")
        };
        for (le, count) in [
            ("0.0005", 1),
            ("0.001", 2),
            ("0.0025", 2),
            ("0.005", 3),
            ("10", 3),
            ("+Inf", 4),
        ] {
            assert!(
                text.contains(&format!("{} {count}\n", bucket(le))),
                "{le}: {text}"
            );
        }
        assert!(
            text.contains("berth_admission_duration_seconds_sum{endpoint=\"validate\"} 30.004\n")
        );
        assert!(text.contains("berth_admission_duration_seconds_count{endpoint=\"mutate\"} 0\n"));
        assert!(text.contains(
            "berth_admission_requests_total{endpoint=\"validate\",operation=\"CREATE\",kind=\"Pod\",verdict=\"allowed\"} 4\n"
        ));
    }

    #[test]
    fn the_snapshot_age_counts_from_its_last_refresh_and_is_absent_without_a_store() {
        let metrics = AdmissionMetrics::default();
        let text = metrics.render(Refreshed::default(), at("2026-08-01"));
        assert!(
            text.contains("berth_knowledge_snapshot_generation 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("berth_knowledge_snapshot_age_seconds"),
            "{text}"
        );
        let refreshed = Refreshed {
            generation: 42,
            at: Some(at("2026-08-01T12:00:00Z")),
        };
        let text = metrics.render(refreshed, at("2026-08-01T12:01:30.5Z"));
        assert!(
            text.contains("berth_knowledge_snapshot_generation 42\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_knowledge_snapshot_age_seconds 90.5\n"),
            "{text}"
        );
    }
}
