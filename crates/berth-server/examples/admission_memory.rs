//! Peak memory of one admission review through the webhook's router (`router().oneshot`), for
//! docs/benchmarks.md: `baseline` is a one-container Deployment, `worst` the largest review the
//! webhook accepts (just under `REVIEW_SIZE_MAX`) filled with containers that each break two
//! rules and warn on two more. Run each in its own process (the peak is per process):
//!
//! ```text
//! cargo run --release -p berth-server --example admission_memory -- baseline
//! cargo run --release -p berth-server --example admission_memory -- worst
//! ```
//!
//! Prints the review's size, the answer's size and the process's peak resident memory
//! (`VmHWM` from /proc/self/status, Linux only).

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use berth_core::catalog::{self, Format, Source};
use berth_core::lineage::LineageIndex;
use berth_core::policy::{self, Knowledge};
use berth_server::admission::{
    AdmissionSnapshot, AdmissionState, REVIEW_SIZE_MAX, SnapshotCell, router,
};
use berth_server::catalog_source::CatalogSource;
use berth_server::reload::CatalogState;
use serde_json::Value;
use tower::ServiceExt as _;

/// Every container breaks `registries` and `catalog`, and warns on `base` and `digest`.
const POLICY: &str = "\
registries:
  allow: [127.0.0.1:5050/berth/**]
catalog: {}
lifecycle: {}
base:
  approved: [bookworm]
  unknown: warn
digest:
  action: pin
  unknown: warn
";

fn state() -> AdmissionState {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml");
    let text = std::fs::read_to_string(&path).expect("examples/catalog.yaml");
    let now = chrono::Utc::now();
    let sources = [Source {
        name: "catalog.yaml",
        text: &text,
    }];
    let catalog = catalog::load(&sources, Format::Berth, now)
        .catalog
        .expect("the demo catalog is valid");
    let policy = policy::load("policy.yaml", POLICY)
        .policy
        .expect("the policy is valid");
    let source = CatalogSource {
        path,
        format: Format::Berth,
    };
    AdmissionState {
        catalog: Arc::new(CatalogState::with_catalog(source, catalog, now)),
        snapshot: Arc::new(SnapshotCell::new(AdmissionSnapshot {
            policy: Arc::new(policy),
            knowledge: Arc::new(Knowledge::new(LineageIndex::default())),
        })),
        clock: Arc::new(chrono::Utc::now),
        usage: None,
        resolver: None,
        namespace_labels: None,
        metrics: Default::default(),
    }
}

/// A CREATE of a Deployment with `containers` (JSON texts), written as text so that making the
/// review costs no more than its own bytes.
fn review(containers: &[String]) -> String {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{{"group":"apps","version":"v1","kind":"Deployment"}},"namespace":"tool-a","operation":"CREATE","object":{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web","namespace":"tool-a"}},"spec":{{"template":{{"spec":{{"containers":[{}]}}}}}}}}}}}}"#,
        containers.join(",")
    )
}

fn container(index: usize) -> String {
    format!(r#"{{"name":"c{index}","image":"evil.example/team/app-{index}:1"}}"#)
}

/// The largest review under `REVIEW_SIZE_MAX` made of such containers.
fn worst_review() -> String {
    let per_container = container(1_000_000).len() + 1;
    let count = (REVIEW_SIZE_MAX - 1024) / per_container;
    let containers: Vec<String> = (0..count).map(container).collect();
    let body = review(&containers);
    assert!(body.len() <= REVIEW_SIZE_MAX, "{} bytes", body.len());
    body
}

fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let body = match which.as_str() {
        "baseline" => review(&[container(0)]),
        "worst" => worst_review(),
        _ => {
            eprintln!("usage: admission_memory baseline|worst");
            std::process::exit(2);
        }
    };
    let review_bytes = body.len();
    let containers = body.matches("\"image\"").count();
    let before = peak_resident_kib().unwrap_or_default();
    let request = Request::post("/admission/validate")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a request");
    let response = router(state())
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    let status = response.status();
    let answer = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the answer");
    let after = peak_resident_kib().unwrap_or_default();
    let allowed = serde_json::from_slice::<Value>(&answer)
        .ok()
        .and_then(|answer| answer["response"]["allowed"].as_bool());
    println!(
        "{which}: {containers} containers, review {review_bytes} bytes, answer {status} {} bytes \
         (allowed: {allowed:?}), peak RSS {} MiB before the request, {} MiB after",
        answer.len(),
        before / 1024,
        after / 1024
    );
}
