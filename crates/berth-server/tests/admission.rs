//! The admission webhook through `router().oneshot(..)`: AdmissionReviews wrapping objects made
//! by kubectl (crates/berth/tests/fixtures/k8s), for CREATE, UPDATE, DELETE, the ephemeral
//! containers subresource and dry runs; JSONPatches applied and checked to be idempotent.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use berth_core::catalog::{self, Catalog, Format, Source};
use berth_core::lineage::LineageIndex;
use berth_core::policy::{self, Knowledge};
use berth_core::{Digest, ImageRef};
use berth_server::admission::{
    AdmissionSnapshot, AdmissionState, Report, SnapshotCell, Usage, router,
};
use berth_server::catalog_source::CatalogSource;
use berth_server::reload::CatalogState;
use berth_testkit::metrics::Samples;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// node20 (berth/multi) is eol since 2026-04-30; python3.11 (berth/child) is deprecated.
fn now() -> DateTime<Utc> {
    catalog::parse_moment("2026-08-01T12:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

fn repository_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn fixture(name: &str) -> Value {
    let text = repository_file(&format!("crates/berth/tests/fixtures/k8s/{name}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"))
}

const POLICY: &str = "\
registries:
  allow: [127.0.0.1:5050/berth/**]
lifecycle: {}
digest:
  action: pin
  unknown: warn
";

const BASE_DIGEST: &str = "sha256:696fe8dd90bb932151fbed1256e10b03d623b28e33d3535d16965eb611729df4";

fn state() -> AdmissionState {
    let text = repository_file("examples/catalog.yaml");
    let sources = [Source {
        name: "examples/catalog.yaml",
        text: &text,
    }];
    let catalog: Catalog = catalog::load(&sources, Format::Berth, now())
        .catalog
        .unwrap_or_else(|| panic!("the demo catalog is invalid"));
    let source = CatalogSource {
        path: PathBuf::from("examples/catalog.yaml"),
        format: Format::Berth,
    };
    let policy = policy::load("policy.yaml", POLICY)
        .policy
        .unwrap_or_else(|| panic!("invalid policy"));
    let mut knowledge = Knowledge::new(LineageIndex::default());
    let base = ImageRef::parse("127.0.0.1:5050/berth/base:1").unwrap_or_else(|e| panic!("{e}"));
    knowledge.add_tag(
        &base,
        Digest::parse(BASE_DIGEST).unwrap_or_else(|e| panic!("{e}")),
    );
    AdmissionState {
        catalog: Arc::new(CatalogState::with_catalog(source, catalog, now())),
        snapshot: Arc::new(SnapshotCell::new(AdmissionSnapshot {
            policy: Arc::new(policy),
            knowledge: Arc::new(knowledge),
        })),
        clock: Arc::new(now),
        usage: None,
        resolver: None,
        namespace_labels: None,
        metrics: Default::default(),
    }
}

/// An AdmissionReview v1 as the API server sends it.
fn review(operation: &str, object: &Value, old_object: Option<&Value>) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default();
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": kind},
        "resource": {"group": "apps", "version": "v1", "resource": "things"},
        "name": object["metadata"]["name"],
        "namespace": "tool-a",
        "operation": operation,
        "userInfo": {"username": "tool-a-user", "groups": ["system:authenticated"]},
        "object": object,
        "dryRun": false,
    });
    if let Some(old) = old_object {
        request["oldObject"] = old.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

async fn post(path: &str, body: String) -> (StatusCode, Value) {
    post_to(state(), path, body).await
}

async fn post_to(state: AdmissionState, path: &str, body: String) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|error| panic!("{error}"));
    let response = router(state)
        .oneshot(request)
        .await
        .unwrap_or_else(|error| match error {});
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
    (status, body)
}

async fn validate(review: &Value) -> Value {
    let (status, body) = post("/admission/validate", review.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["response"].clone()
}

async fn mutate(review: &Value) -> Value {
    let (status, body) = post("/admission/mutate", review.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["response"].clone()
}

const MULTI_EOL: &str = "container \"multi\" (127.0.0.1:5050/berth/multi:1): lifecycle: use node22 (node20 is end of life since 2026-04-30)";
const CHILD_DEPRECATED: &str = "container \"child\" (127.0.0.1:5050/berth/child:1): lifecycle: python3.11 is deprecated since 2026-07-01 and reaches end of life on 2027-01-01; use python3.12";

#[tokio::test]
async fn a_create_is_denied_with_actionable_reasons_and_warnings() {
    let deployment = fixture("deployment.json");
    let response = validate(&review("CREATE", &deployment, None)).await;
    assert_eq!(
        response,
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "allowed": false,
            "status": {
                "code": 403,
                "reason": "Forbidden",
                "message": format!("berth denied Deployment/web: {MULTI_EOL}"),
            },
            "warnings": [
                CHILD_DEPRECATED,
                "container \"child\" (127.0.0.1:5050/berth/child:1): digest: berth does not know the digest of 127.0.0.1:5050/berth/child:1, so cannot pin it; give the reference with @sha256:…",
                "container \"multi\" (127.0.0.1:5050/berth/multi:1): digest: berth does not know the digest of 127.0.0.1:5050/berth/multi:1, so cannot pin it; give the reference with @sha256:…",
            ],
        })
    );
    // A dry run gets the same answer (nothing is recorded either way).
    let mut dry = review("CREATE", &deployment, None);
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(validate(&dry).await, response);
}

#[tokio::test]
async fn an_update_keeping_an_eol_image_is_allowed_and_one_bringing_it_is_not() {
    let deployment = fixture("deployment.json");
    let mut scaled = deployment.clone();
    scaled["spec"]["replicas"] = json!(3);
    let response = validate(&review("UPDATE", &scaled, Some(&deployment))).await;
    assert_eq!(response["allowed"], json!(true), "{response}");
    let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings.contains(&json!(format!(
            "{MULTI_EOL}; allowed because the image is unchanged"
        ))),
        "{response}"
    );
    let mut before = deployment.clone();
    before["spec"]["template"]["spec"]["containers"][1]["image"] =
        json!("127.0.0.1:5050/berth/node24:1");
    let response = validate(&review("UPDATE", &deployment, Some(&before))).await;
    assert_eq!(response["allowed"], json!(false), "{response}");
    assert_eq!(
        response["status"]["message"],
        json!(format!("berth denied Deployment/web: {MULTI_EOL}"))
    );
}

#[tokio::test]
async fn ephemeral_containers_are_checked_on_their_subresource() {
    let pod = fixture("pod.json");
    let mut before = pod.clone();
    before["spec"]
        .as_object_mut()
        .map(|spec| spec.remove("ephemeralContainers"));
    let mut request = review("UPDATE", &pod, Some(&before));
    request["request"]["subResource"] = json!("ephemeralcontainers");
    request["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let response = validate(&request).await;
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert_eq!(response["allowed"], json!(false), "{response}");
    assert!(
        message.contains("container \"debug\" (busybox:1.36): registries: docker.io/library/busybox is not in an allowed repository"),
        "{message}"
    );
    assert!(
        message.contains(
            "container \"setup\" (registry.example.com.evil.io/berth/base:1): registries:"
        ),
        "{message}"
    );
}

/// Applies a JSONPatch of `replace` operations (all berth produces) to `object`.
fn apply(object: &mut Value, patch: &Value) {
    for operation in patch.as_array().cloned().unwrap_or_default() {
        assert_eq!(operation["op"], json!("replace"));
        let path = operation["path"].as_str().unwrap_or_default();
        let target = object
            .pointer_mut(path)
            .unwrap_or_else(|| panic!("the patch points nowhere: {path}"));
        *target = operation["value"].clone();
    }
}

#[tokio::test]
async fn mutate_pins_tags_once() {
    let mut job = fixture("job.json");
    let response = mutate(&review("CREATE", &job, None)).await;
    assert_eq!(response["allowed"], json!(true));
    assert_eq!(response["patchType"], json!("JSONPatch"));
    assert_eq!(
        response.get("warnings"),
        None,
        "warnings are the validating webhook's"
    );
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{error}"));
    let patch: Value = serde_json::from_slice(&patch).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        patch,
        json!([{
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": format!("127.0.0.1:5050/berth/base:1@{BASE_DIGEST}"),
        }])
    );
    apply(&mut job, &patch);
    let again = mutate(&review("CREATE", &job, None)).await;
    assert_eq!(
        again,
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
    // The validating webhook then sees the pinned object and has nothing to say.
    let validated = validate(&review("CREATE", &job, None)).await;
    assert_eq!(validated, again);
}

#[tokio::test]
async fn deletes_other_kinds_and_bad_reviews() {
    let job = fixture("job.json");
    let mut delete = review("DELETE", &Value::Null, Some(&job));
    delete["request"]["kind"] = json!({"group": "batch", "version": "v1", "kind": "Job"});
    assert_eq!(
        validate(&delete).await,
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        validate(&review("CREATE", &config_map, None)).await["allowed"],
        json!(true)
    );
    let mut old_version = review("CREATE", &job, None);
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let cases = [
        (
            old_version.to_string(),
            "expected an admission.k8s.io/v1 AdmissionReview, got admission.k8s.io/v1beta1 AdmissionReview",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
            "the AdmissionReview has no request",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = post("/admission/validate", body).await;
        assert_eq!(
            (status, answer),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": message})
            )
        );
    }
    let (status, answer) = post("/admission/mutate", "{not json".to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not an AdmissionReview"),
        "{answer}"
    );
}

#[tokio::test]
async fn allowed_admissions_are_recorded_as_usage_except_dry_runs() {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(8);
    let mut state = state();
    state.usage = Some(sender);
    let job = fixture("job.json");
    let (status, _) = post_to(
        state.clone(),
        "/admission/validate",
        review("CREATE", &job, None).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let records = receiver
        .try_recv()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        records,
        Report::Allowed(vec![Usage {
            at: now(),
            namespace: "tool-a".to_string(),
            kind: "Job".to_string(),
            name: "migrate".to_string(),
            container: "migrate".to_string(),
            image: "127.0.0.1:5050/berth/base:1".to_string(),
            digest: Some(Digest::parse(BASE_DIGEST).unwrap_or_else(|e| panic!("{e}"))),
        }])
    );
    // A denied admission leaves its images, for the gathered denial notifications.
    let denied = review("CREATE", &fixture("deployment.json"), None);
    let (status, _) = post_to(state.clone(), "/admission/validate", denied.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let Report::Denied(denied) = receiver
        .try_recv()
        .unwrap_or_else(|error| panic!("{error}"))
    else {
        panic!("a denial reports its images");
    };
    assert!(!denied.is_empty());
    assert!(
        denied
            .iter()
            .all(|one| !one.message.is_empty() && one.at == now()),
        "{denied:?}"
    );
    // Not recorded: a dry run, the mutating call, a delete.
    let mut dry = review("CREATE", &job, None);
    dry["request"]["dryRun"] = json!(true);
    let mut delete = review("DELETE", &Value::Null, Some(&job));
    delete["request"]["kind"] = json!({"group": "batch", "version": "v1", "kind": "Job"});
    for (path, body) in [
        ("/admission/validate", dry),
        ("/admission/mutate", review("CREATE", &job, None)),
        ("/admission/validate", delete),
    ] {
        let (status, _) = post_to(state.clone(), path, body.to_string()).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(receiver.try_recv().is_err(), "nothing else was recorded");
}

#[tokio::test]
async fn an_update_of_a_large_object_is_read_whole() {
    // Two versions of an object near etcd's 1.5 MiB limit: 3 MiB of review.
    let mut job = fixture("job.json");
    job["metadata"]["annotations"] = json!({"big": "x".repeat(1_500_000)});
    let body = review("UPDATE", &job, Some(&job)).to_string();
    assert!(body.len() > 3_000_000);
    let (status, answer) = post("/admission/validate", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["response"]["allowed"], json!(true));
}

/// issue 15, item 11: a container whose `image` is mistyped was skipped and the object allowed;
/// the webhook denies it, naming the field by its JSON pointer.
#[tokio::test]
async fn a_pod_spec_berth_cannot_read_is_denied_with_its_pointer() {
    let mut deployment = fixture("deployment.json");
    let containers = &mut deployment["spec"]["template"]["spec"]["containers"];
    containers[0] = json!({"name": "app", "imgae": "evil.io/x"});
    let response = validate(&review("CREATE", &deployment, None)).await;
    assert_eq!(response["allowed"], json!(false), "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "berth denied Deployment/web: container \"app\": spec: \
             /spec/template/spec/containers/0/imgae: unknown field `imgae` in a container; did \
             you mean `image`?; container \"app\": spec: /spec/template/spec/containers/0: the \
             container has no `image` (Kubernetes requires one)"
        ),
        "{message}"
    );
}

/// issue 15, item 3: an 8 MiB review of 135,000 containers peaked at 680 MiB and got a 96 MB
/// answer. Containers per object, findings per answer and the denial text are bounded, and what
/// is left out is counted.
#[tokio::test]
async fn a_review_of_very_many_containers_gets_a_bounded_answer() {
    use berth_core::workload::CONTAINERS_MAX;
    use berth_server::admission::{ANSWER_TEXT_MAX, FINDINGS_SHOWN_MAX};
    let mut deployment = fixture("deployment.json");
    let containers: Vec<Value> = (0..2 * CONTAINERS_MAX)
        .map(
            |index| json!({"name": format!("c{index}"), "image": format!("evil.io/app-{index}:1")}),
        )
        .collect();
    deployment["spec"]["template"]["spec"]["containers"] = json!(containers);
    let response = validate(&review("CREATE", &deployment, None)).await;
    assert_eq!(response["allowed"], json!(false));
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.len() <= ANSWER_TEXT_MAX, "{} bytes", message.len());
    assert!(
        message.starts_with(
            "berth denied Deployment/web: spec: /spec/template/spec: 1000 containers; berth reads \
             at most 500 in one pod spec (only the first 500 were checked); container \"c0\""
        ),
        "{message}"
    );
    // One denial for the bound, one registries denial per container read: 501, 20 named.
    assert!(
        message.ends_with(&format!(
            "; … and {} more denials",
            501 - FINDINGS_SHOWN_MAX
        )),
        "{}",
        &message[message.len().saturating_sub(200)..]
    );
    let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), FINDINGS_SHOWN_MAX + 1);
    assert_eq!(
        warnings.last(),
        Some(&json!(format!(
            "… and {} more warnings",
            CONTAINERS_MAX - FINDINGS_SHOWN_MAX
        )))
    );
    // A finding quoting a megabyte-long image is cut, not echoed whole.
    let mut long = fixture("deployment.json");
    long["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "app", "image": format!("evil.io/{}", "a".repeat(1 << 20))}]);
    let response = validate(&review("CREATE", &long, None)).await;
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.len() <= ANSWER_TEXT_MAX, "{} bytes", message.len());
    assert!(
        message.ends_with(" … (cut)"),
        "{}",
        &message[message.len() - 50..]
    );
}

/// issue 15, item 19: with `digest: {action: pin, on: pods}` the mutating webhook leaves a Job's
/// template as Git has it, and pins the Pod the Job creates.
#[tokio::test]
async fn pins_on_pods_patch_pods_and_leave_controllers_alone() {
    let state = state();
    let policy = policy::load(
        "policy.yaml",
        "registries:\n  allow: [127.0.0.1:5050/berth/**]\ndigest: {action: pin, on: pods}\n",
    )
    .policy
    .unwrap_or_else(|| panic!("invalid policy"));
    state.snapshot.set_policy(policy);
    let job = fixture("job.json");
    let (_, answer) = post_to(
        state.clone(),
        "/admission/mutate",
        review("CREATE", &job, None).to_string(),
    )
    .await;
    assert_eq!(
        answer["response"],
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "migrate-x1", "namespace": "tool-a"},
        "spec": job["spec"]["template"]["spec"].clone(),
    });
    let (_, answer) = post_to(
        state,
        "/admission/mutate",
        review("CREATE", &pod, None).to_string(),
    )
    .await;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{error}"));
    let patch: Value = serde_json::from_slice(&patch).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        patch,
        json!([{
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": format!("127.0.0.1:5050/berth/base:1@{BASE_DIGEST}"),
        }])
    );
}

/// `/metrics` text of `state`'s webhook counters, read back.
fn metrics_of(state: &AdmissionState) -> Samples {
    Samples::parse(
        &state
            .metrics
            .render(state.snapshot.refreshed(), (state.clock)()),
    )
}

#[tokio::test]
async fn findings_are_counted_by_rule_and_what_the_answer_did_with_them() {
    let state = state();
    let deployment = fixture("deployment.json");
    // Denied: multi is eol (enforce); child is deprecated (a warning); neither tag's digest is
    // known (two digest warnings).
    let body = review("CREATE", &deployment, None).to_string();
    let (status, _) = post_to(state.clone(), "/admission/validate", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    // The mutating webhook's findings are not its answer's: nothing is counted twice.
    let (status, _) = post_to(state.clone(), "/admission/mutate", body).await;
    assert_eq!(status, StatusCode::OK);
    // An UPDATE keeping the eol image: the eol finding becomes a warning.
    let mut scaled = deployment.clone();
    scaled["spec"]["replicas"] = json!(3);
    let body = review("UPDATE", &scaled, Some(&deployment)).to_string();
    let (status, _) = post_to(state.clone(), "/admission/validate", body).await;
    assert_eq!(status, StatusCode::OK);

    let samples = metrics_of(&state);
    let findings = |rule: &str, action: &str| {
        samples.get(&format!(
            "berth_admission_findings_total{{rule=\"{rule}\",action=\"{action}\"}}"
        ))
    };
    assert_eq!(findings("lifecycle", "enforce"), 1.0, "{samples:?}");
    assert_eq!(findings("lifecycle", "warn"), 3.0, "{samples:?}");
    assert_eq!(findings("digest", "warn"), 4.0, "{samples:?}");
    assert_eq!(
        samples.sum("berth_admission_findings_total", &[]),
        8.0,
        "{samples:?}"
    );
    let requests =
        |labels: &str| samples.get(&format!("berth_admission_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"endpoint="validate",operation="CREATE",kind="Deployment",verdict="denied""#),
        1.0
    );
    assert_eq!(
        requests(r#"endpoint="validate",operation="UPDATE",kind="Deployment",verdict="warned""#),
        1.0
    );
    assert_eq!(
        requests(r#"endpoint="mutate",operation="CREATE",kind="Deployment",verdict="allowed""#),
        1.0
    );
}

#[tokio::test]
async fn reviews_without_a_verdict_are_counted_by_reason() {
    let state = state();
    let job = fixture("job.json");
    let mut old_version = review("CREATE", &job, None);
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut connect = review("CREATE", &job, None);
    connect["request"]["operation"] = json!("PATCH");
    let mut mangled = review("CREATE", &job, None);
    mangled["request"]["object"]["spec"]["template"]["spec"]["containers"] = json!("app");
    let cases: [(&str, Option<&str>, String); 7] = [
        (
            "not_json",
            Some("application/json"),
            "{not json".to_string(),
        ),
        (
            "decode",
            Some("application/json"),
            json!({"apiVersion": 1}).to_string(),
        ),
        (
            "content_type",
            None,
            review("CREATE", &job, None).to_string(),
        ),
        (
            "too_large",
            Some("application/json"),
            "x".repeat(berth_server::admission::REVIEW_SIZE_MAX + 1),
        ),
        ("not_v1", Some("application/json"), old_version.to_string()),
        ("operation", Some("application/json"), connect.to_string()),
        ("object", Some("application/json"), mangled.to_string()),
    ];
    for (reason, content_type, body) in &cases {
        let mut request = Request::post("/admission/validate");
        if let Some(content_type) = content_type {
            request = request.header("content-type", *content_type);
        }
        let request = request
            .body(Body::from(body.clone()))
            .unwrap_or_else(|error| panic!("{error}"));
        let response = router(state.clone())
            .oneshot(request)
            .await
            .unwrap_or_else(|error| match error {});
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{reason}");
        let samples = metrics_of(&state);
        assert_eq!(
            samples.get(&format!(
                "berth_admission_errors_total{{reason=\"{reason}\"}}"
            )),
            1.0,
            "{reason}: {samples:?}"
        );
    }
    let samples = metrics_of(&state);
    assert_eq!(samples.sum("berth_admission_errors_total", &[]), 7.0);
    // Bodies that were no review have no operation or kind; a review's own are kept (bounded).
    assert_eq!(
        samples.get(r#"berth_admission_requests_total{endpoint="validate",operation="unknown",kind="unknown",verdict="error"}"#),
        4.0,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#"berth_admission_requests_total{endpoint="validate",operation="other",kind="Job",verdict="error"}"#),
        1.0,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#"berth_admission_requests_total{endpoint="validate",operation="CREATE",kind="Job",verdict="error"}"#),
        2.0,
        "{samples:?}"
    );
    // Every review is timed, errors too.
    assert_eq!(
        samples.get(r#"berth_admission_duration_seconds_count{endpoint="validate"}"#),
        7.0
    );
}
