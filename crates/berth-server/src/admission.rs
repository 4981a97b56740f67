//! The Kubernetes admission webhook: `POST /admission/validate` and `POST /admission/mutate`
//! take an AdmissionReview `v1` and answer with the verdict of the same pure engine `berth check`
//! runs (`berth_core::policy::evaluate`): denials as a 403 status naming container, image, rule
//! and what to do; warn-mode findings and deprecations as `response.warnings`; pins as a
//! JSONPatch (mutate only). The request's uid is echoed.
//!
//! Decisions read an in-memory snapshot (policy + registry knowledge in a [`SnapshotCell`] that
//! `crate::admission_tasks` refreshes, and the served catalog); the hot path never touches the store. With a
//! [`TagResolver`], tags the snapshot does not know (and the pin or base rule would ask about)
//! are first resolved at their registry, bounded by its deadline, into a per-request overlay of
//! the knowledge; without one, nothing goes to the network. What an allowed admission will run is
//! handed to a bounded channel as [`Usage`] (a writer elsewhere records it; a full channel drops
//! the record, never delays the answer); a `dryRun` request records nothing.
//!
//! An AdmissionReview does not carry the namespace's labels: with [`NamespaceLabels`]
//! (`berth serve --namespace-labels`), and only when the policy has an exception selecting by
//! label, they are read from the Kubernetes API (cached, within a deadline); without them (off,
//! or the API failed) label-selected exceptions do not apply.
//!
//! Every review is counted and timed in [`AdmissionMetrics`] (`crate::admission_metrics`):
//! from its arrival (before the body is read) to its answer, with its verdict or the
//! [`ReviewError`] it got instead.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest as _, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use berth_core::catalog::Catalog;
use berth_core::policy::{self, Knowledge, Operation, Policy, Request, Verdict};
use berth_core::workload::{self, WorkloadError};
use berth_core::{Digest, ImageRef};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Clock;
use crate::admission_metrics::{AdmissionMetrics, Outcome, Refreshed, ReviewLabels};
use crate::namespaces::{Labels, NamespaceLabels};
use crate::reload::CatalogState;
use crate::resolve::TagResolver;

/// The policy and the registry knowledge decisions are made with.
#[derive(Debug, Clone)]
pub struct AdmissionSnapshot {
    pub policy: Arc<Policy>,
    pub knowledge: Arc<Knowledge>,
}

/// The snapshot being served. A request takes the current one (an `Arc` clone) and decides on
/// it to the end; a new policy or new knowledge replaces it whole for the next requests.
#[derive(Debug)]
pub struct SnapshotCell {
    /// `None` until a policy has loaded (a broken policy at start): the webhook answers 503.
    current: RwLock<Option<Arc<AdmissionSnapshot>>>,
    /// The knowledge to pair with the first policy, kept while none has loaded.
    knowledge: RwLock<Arc<Knowledge>>,
    /// Which store generation the knowledge is and when it last matched the store, for
    /// `/metrics` (`berth_knowledge_snapshot_generation`, `..._age_seconds`).
    refreshed: RwLock<Refreshed>,
}

impl SnapshotCell {
    pub fn new(snapshot: AdmissionSnapshot) -> SnapshotCell {
        SnapshotCell {
            knowledge: RwLock::new(Arc::clone(&snapshot.knowledge)),
            current: RwLock::new(Some(Arc::new(snapshot))),
            refreshed: RwLock::new(Refreshed::default()),
        }
    }

    /// A cell with no policy yet: decisions wait (503) until [`SnapshotCell::set_policy`].
    pub fn without_policy(knowledge: Knowledge) -> SnapshotCell {
        SnapshotCell {
            knowledge: RwLock::new(Arc::new(knowledge)),
            current: RwLock::new(None),
            refreshed: RwLock::new(Refreshed::default()),
        }
    }

    /// The snapshot to decide with; `None` while no policy has loaded.
    pub fn get(&self) -> Option<Arc<AdmissionSnapshot>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_policy(&self, policy: Policy) {
        let knowledge = Arc::clone(
            &self
                .knowledge
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Some(Arc::new(AdmissionSnapshot {
            policy: Arc::new(policy),
            knowledge,
        }));
    }

    /// The registry knowledge being served (with or without a policy).
    pub fn knowledge(&self) -> Arc<Knowledge> {
        Arc::clone(
            &self
                .knowledge
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Which store generation the knowledge is and when it was last known to match the store.
    pub fn refreshed(&self) -> Refreshed {
        *self
            .refreshed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Says the knowledge is the store's `generation` as of `at` (read, or checked current).
    pub fn set_refreshed(&self, generation: u64, at: DateTime<Utc>) {
        *self
            .refreshed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Refreshed {
            generation,
            at: Some(at),
        };
    }

    pub fn set_knowledge(&self, knowledge: Knowledge) {
        let knowledge = Arc::new(knowledge);
        *self
            .knowledge
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&knowledge);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(snapshot) = current.as_ref() {
            *current = Some(Arc::new(AdmissionSnapshot {
                policy: Arc::clone(&snapshot.policy),
                knowledge,
            }));
        }
    }
}

/// What the webhook's handlers share.
#[derive(Clone)]
pub struct AdmissionState {
    pub catalog: Arc<CatalogState>,
    pub snapshot: Arc<SnapshotCell>,
    pub clock: Clock,
    /// Where usage records go, if anywhere (`admission_tasks::write_usage` drains it into the store).
    pub usage: Option<UsageSender>,
    /// Resolves tags the snapshot does not know, for pins (`berth serve --resolve`); `None`:
    /// such tags are unknown and the rule's `unknown:` setting applies.
    pub resolver: Option<TagResolver>,
    /// Reads namespace labels from the Kubernetes API for label-selected exceptions
    /// (`berth serve --namespace-labels`); `None`: no labels, such exceptions never apply.
    pub namespace_labels: Option<NamespaceLabels>,
    /// Where every review is counted and timed; `/metrics` renders the same counters.
    pub metrics: Arc<AdmissionMetrics>,
}

/// The sending end of the usage channel.
pub type UsageSender = mpsc::Sender<Report>;

/// What a decided review leaves for the store: the containers an allowed admission will run
/// (the inventory), or the images a denial refused (gathered for notifications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Allowed(Vec<Usage>),
    Denied(Vec<Denied>),
}

/// One image a validating admission denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub at: DateTime<Utc>,
    pub namespace: String,
    pub image: String,
    /// The first denial's text, cut to [`DENIED_MESSAGE_MAX`] bytes.
    pub message: String,
}

/// The longest denial text kept for a notification.
pub const DENIED_MESSAGE_MAX: usize = 500;

/// One container an allowed admission will run: the inventory's raw material.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub at: DateTime<Utc>,
    pub namespace: String,
    /// The workload's kind (`Deployment`, `Pod`, ...).
    pub kind: String,
    /// Empty for a Pod named by `generateName` only.
    pub name: String,
    pub container: String,
    /// As the workload wrote it (before any pin).
    pub image: String,
    /// What it runs, when berth knows (the reference's digest, or its tag's).
    pub digest: Option<Digest>,
}

/// The largest AdmissionReview accepted: an object and its old version can each approach
/// etcd's 1.5 MiB limit, and axum's default (2 MiB) would refuse such an UPDATE.
pub const REVIEW_SIZE_MAX: usize = 8 * 1024 * 1024;

/// How many denials a denial's message names, and how many warnings an answer carries; past
/// them one more line says how many were left out (the API server keeps only about 4 KiB of
/// warnings anyway). Containers per object are bounded by `workload::CONTAINERS_MAX`.
pub const FINDINGS_SHOWN_MAX: usize = 20;
/// The longest denial message and the longest single warning, in bytes: a finding quotes the
/// object's image, which may be as long as the object itself.
pub const ANSWER_TEXT_MAX: usize = 8 * 1024;

/// The two webhook endpoints.
pub fn router(state: AdmissionState) -> Router {
    Router::new()
        .route("/admission/validate", post(validate))
        .route("/admission/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(REVIEW_SIZE_MAX))
        .with_state(state)
}

/// Which webhook is asking: the validating one denies and warns, the mutating one only pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    /// The `endpoint` label: `validate`, `mutate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// An AdmissionReview as Kubernetes sends it; unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: String,
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

/// Why a review got no verdict; the `reason` label of `berth_admission_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReviewError {
    /// The body is larger than [`REVIEW_SIZE_MAX`].
    TooLarge,
    /// The request is not `Content-Type: application/json`.
    ContentType,
    /// The body is not JSON.
    NotJson,
    /// JSON, but not shaped as an AdmissionReview (a field missing or of the wrong type).
    Decode,
    /// The body could not be read (the client went away mid-body).
    Body,
    /// Not an `admission.k8s.io/v1` `AdmissionReview`.
    NotV1,
    /// An AdmissionReview without a request.
    NoRequest,
    /// An operation other than CREATE, UPDATE, DELETE, CONNECT.
    Operation,
    /// `request.object` or `request.oldObject` is a workload whose fields have the wrong types.
    Object,
    /// No catalog has loaded yet (503).
    NoCatalog,
    /// No valid policy has loaded yet (503).
    NoPolicy,
}

impl ReviewError {
    pub const ALL: [ReviewError; 11] = [
        ReviewError::TooLarge,
        ReviewError::ContentType,
        ReviewError::NotJson,
        ReviewError::Decode,
        ReviewError::Body,
        ReviewError::NotV1,
        ReviewError::NoRequest,
        ReviewError::Operation,
        ReviewError::Object,
        ReviewError::NoCatalog,
        ReviewError::NoPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewError::TooLarge => "too_large",
            ReviewError::ContentType => "content_type",
            ReviewError::NotJson => "not_json",
            ReviewError::Decode => "decode",
            ReviewError::Body => "body",
            ReviewError::NotV1 => "not_v1",
            ReviewError::NoRequest => "no_request",
            ReviewError::Operation => "operation",
            ReviewError::Object => "object",
            ReviewError::NoCatalog => "no_catalog",
            ReviewError::NoPolicy => "no_policy",
        }
    }

    fn of_rejection(rejection: &JsonRejection) -> ReviewError {
        match rejection {
            JsonRejection::JsonDataError(_) => ReviewError::Decode,
            JsonRejection::JsonSyntaxError(_) => ReviewError::NotJson,
            JsonRejection::MissingJsonContentType(_) => ReviewError::ContentType,
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ReviewError::TooLarge,
            _ => ReviewError::Body,
        }
    }
}

/// Why a review got no AdmissionReview answer: a 400 for a review berth cannot read, a 503
/// while no catalog or policy has loaded; the API server's failurePolicy decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadReview {
    pub reason: ReviewError,
    pub message: String,
}

impl BadReview {
    pub fn new(reason: ReviewError, message: impl Into<String>) -> BadReview {
        BadReview {
            reason,
            message: message.into(),
        }
    }

    fn response(&self) -> Response {
        let (status, error) = match self.reason {
            ReviewError::NoCatalog => (StatusCode::SERVICE_UNAVAILABLE, "no_catalog"),
            ReviewError::NoPolicy => (StatusCode::SERVICE_UNAVAILABLE, "no_policy"),
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        let body = json!({"error": error, "message": self.message});
        (status, Json(body)).into_response()
    }
}

async fn validate(
    State(state): State<AdmissionState>,
    request: axum::extract::Request,
) -> Response {
    observed(&state, request, Endpoint::Validate).await
}

async fn mutate(State(state): State<AdmissionState>, request: axum::extract::Request) -> Response {
    observed(&state, request, Endpoint::Mutate).await
}

/// Answers one review and counts it: timed from before its body is read.
async fn observed(
    state: &AdmissionState,
    request: axum::extract::Request,
    endpoint: Endpoint,
) -> Response {
    let started = tokio::time::Instant::now();
    let body = Json::<AdmissionReview>::from_request(request, &()).await;
    let labels = match &body {
        Ok(Json(review)) => ReviewLabels::of(review),
        Err(_) => ReviewLabels::UNKNOWN,
    };
    let decided = handle(state, body, endpoint).await;
    let (response, outcome) = match &decided {
        Ok(answer) => (
            Json(answer.response(endpoint)).into_response(),
            Outcome::Decided(&answer.verdict),
        ),
        Err(bad) => (bad.response(), Outcome::Failed(bad.reason)),
    };
    state
        .metrics
        .record(endpoint, labels, outcome, started.elapsed());
    response
}

async fn handle(
    state: &AdmissionState,
    body: Result<Json<AdmissionReview>, JsonRejection>,
    endpoint: Endpoint,
) -> Result<Answer, BadReview> {
    let review = match body {
        Ok(Json(review)) => review,
        Err(rejection) => {
            return Err(BadReview::new(
                ReviewError::of_rejection(&rejection),
                format!("not an AdmissionReview: {rejection}"),
            ));
        }
    };
    let Some(snapshot) = state.catalog.snapshot() else {
        return Err(BadReview::new(
            ReviewError::NoCatalog,
            "no catalog has loaded yet",
        ));
    };
    let now = (state.clock)();
    let Some(decided_with) = state.snapshot.get() else {
        return Err(BadReview::new(
            ReviewError::NoPolicy,
            "no valid policy has loaded yet (see /readyz)",
        ));
    };
    let knowledge = match &state.resolver {
        Some(resolver) => {
            let images = review_images(&review);
            resolver
                .knowledge_for(&images, &decided_with.policy, &decided_with.knowledge)
                .await
        }
        None => Arc::clone(&decided_with.knowledge),
    };
    let namespace_labels = match (&state.namespace_labels, review_namespace(&review)) {
        (Some(reader), Some(namespace))
            if decided_with
                .policy
                .exceptions
                .iter()
                .any(|exception| !exception.labels.is_empty()) =>
        {
            reader.labels_or_none(namespace).await
        }
        _ => Labels::new(),
    };
    let answer = answer(
        &review,
        endpoint,
        &decided_with.policy,
        &snapshot.catalog,
        &knowledge,
        &namespace_labels,
        now,
    )?;
    tracing::info!(
        uid = %answer.uid,
        endpoint = ?endpoint,
        object = %answer.object,
        namespace = answer.namespace.as_deref().unwrap_or(""),
        allowed = answer.verdict.allowed,
        denials = answer.verdict.denials.len(),
        warnings = answer.verdict.warnings.len(),
        patches = answer.verdict.patches.len(),
        dry_run = answer.dry_run,
        "admission"
    );
    if endpoint == Endpoint::Validate
        && !answer.dry_run
        && !answer.usage.is_empty()
        && let Some(usage) = &state.usage
        && usage.try_send(answer.report()).is_err()
    {
        tracing::warn!(uid = %answer.uid, "usage not recorded: the writer is behind");
    }
    Ok(answer)
}

/// The review's namespace, when it names one.
fn review_namespace(review: &AdmissionReview) -> Option<&str> {
    review
        .request
        .as_ref()
        .and_then(|request| request.namespace.as_deref())
        .filter(|namespace| !namespace.is_empty())
}

/// The images of the review's object (none when it has no pod template or does not parse:
/// [`answer`] says why), for the resolver to look at before deciding.
pub fn review_images(review: &AdmissionReview) -> Vec<String> {
    let Some(request) = &review.request else {
        return Vec::new();
    };
    let Some(object) = request.object.as_ref().filter(|object| !object.is_null()) else {
        return Vec::new();
    };
    match workload::workload(&with_kind(object, &request.kind.kind)) {
        Ok(found) => found
            .containers
            .into_iter()
            .map(|container| container.image)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The object as the workload reader wants it: objects in a review carry their kind, but a
/// missing one is the request's. Copied only then (a review may be megabytes).
fn with_kind<'v>(object: &'v Value, kind: &str) -> Cow<'v, Value> {
    match object.as_object() {
        Some(fields) if !fields.contains_key("kind") => {
            let mut object = object.clone();
            if let Some(fields) = object.as_object_mut() {
                fields.insert("kind".to_string(), Value::String(kind.to_string()));
            }
            Cow::Owned(object)
        }
        _ => Cow::Borrowed(object),
    }
}

/// At most [`FINDINGS_SHOWN_MAX`] texts, then `… and N more <what>` for the rest.
fn summarize(texts: impl ExactSizeIterator<Item = String>, what: &str) -> Vec<String> {
    let total = texts.len();
    let mut shown: Vec<String> = texts.take(FINDINGS_SHOWN_MAX).collect();
    if total > FINDINGS_SHOWN_MAX {
        shown.push(format!("… and {} more {what}", total - FINDINGS_SHOWN_MAX));
    }
    shown
}

/// `text` cut to at most [`ANSWER_TEXT_MAX`] bytes (at a character boundary), saying so.
fn bounded(mut text: String) -> String {
    const CUT: &str = " … (cut)";
    if text.len() > ANSWER_TEXT_MAX {
        text.truncate(text.floor_char_boundary(ANSWER_TEXT_MAX - CUT.len()));
        text.push_str(CUT);
    }
    text
}

/// A decided review.
#[derive(Debug, Clone)]
pub struct Answer {
    pub uid: String,
    /// `Deployment/web`, for logs and the denial message.
    pub object: String,
    pub namespace: Option<String>,
    pub dry_run: bool,
    pub verdict: Verdict,
    /// The containers the object runs (CREATE and UPDATE of a workload), to record if allowed.
    pub usage: Vec<Usage>,
}

/// Decides a review: pure, so tests and `berth check` get the same verdict for the same input.
/// `namespace_labels` are the review's namespace's labels, when known (else empty).
pub fn answer(
    review: &AdmissionReview,
    endpoint: Endpoint,
    policy: &Policy,
    catalog: &Catalog,
    knowledge: &Knowledge,
    namespace_labels: &Labels,
    now: DateTime<Utc>,
) -> Result<Answer, BadReview> {
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err(BadReview::new(
            ReviewError::NotV1,
            format!(
                "expected an admission.k8s.io/v1 AdmissionReview, got {} {}",
                review.api_version, review.kind
            ),
        ));
    }
    let Some(request) = &review.request else {
        return Err(BadReview::new(
            ReviewError::NoRequest,
            "the AdmissionReview has no request",
        ));
    };
    let operation = Operation::parse(&request.operation).ok_or_else(|| {
        BadReview::new(
            ReviewError::Operation,
            format!("unknown operation {:?}", request.operation),
        )
    })?;
    let dry_run = request.dry_run.unwrap_or(false);
    let fallback_name = || {
        let mut name = request.kind.kind.clone();
        if let Some(object_name) = &request.name {
            name.push('/');
            name.push_str(object_name);
        }
        name
    };
    let allowed_without_check = |object: String| Answer {
        uid: request.uid.clone(),
        object,
        namespace: request.namespace.clone(),
        dry_run,
        verdict: Verdict {
            allowed: true,
            ..Verdict::default()
        },
        usage: Vec::new(),
    };
    // A DELETE carries no new object; a CONNECT runs nothing new.
    let Some(object) = request.object.as_ref().filter(|object| !object.is_null()) else {
        return Ok(allowed_without_check(fallback_name()));
    };
    let parse = |object: &Value| -> Result<Option<workload::Workload>, BadReview> {
        match workload::workload(&with_kind(object, &request.kind.kind)) {
            Ok(found) => Ok(Some(found)),
            Err(WorkloadError::UnknownKind { .. }) => Ok(None),
            Err(error) => Err(BadReview::new(
                ReviewError::Object,
                format!("request.object: {error}"),
            )),
        }
    };
    // A kind without a pod template (the webhook's rules matched too much) is not ours.
    let Some(found) = parse(object)? else {
        return Ok(allowed_without_check(fallback_name()));
    };
    let old_object = match request.old_object.as_ref().filter(|old| !old.is_null()) {
        Some(old) => parse(old)?,
        None => None,
    };
    let object_name = found.display_name();
    let usage = if matches!(operation, Operation::Create | Operation::Update) {
        let namespace = request
            .namespace
            .clone()
            .or_else(|| found.namespace.clone())
            .unwrap_or_default();
        let name = found
            .name
            .clone()
            .or_else(|| request.name.clone())
            .unwrap_or_default();
        found
            .containers
            .iter()
            .map(|container| Usage {
                at: now,
                namespace: namespace.clone(),
                kind: found.kind.to_string(),
                name: name.clone(),
                container: container.container.clone(),
                image: container.image.clone(),
                digest: ImageRef::parse(&container.image)
                    .ok()
                    .and_then(|image| knowledge.digest_of(&image)),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut policy_request = Request::create(found);
    policy_request.operation = operation;
    policy_request.namespace = request.namespace.clone().or(policy_request.namespace);
    policy_request.old_object = old_object;
    policy_request.namespace_labels = namespace_labels.clone();
    let mut verdict = policy::evaluate(&policy_request, policy, catalog, knowledge, now);
    if endpoint == Endpoint::Mutate {
        // The mutating webhook only pins; the validating one (which runs after it, on the
        // pinned object) denies and warns, so nothing is said twice.
        verdict = Verdict {
            allowed: true,
            patches: verdict.patches,
            ..Verdict::default()
        };
    } else {
        verdict.patches.clear();
    }
    Ok(Answer {
        uid: request.uid.clone(),
        object: object_name,
        namespace: policy_request.namespace,
        dry_run,
        verdict,
        usage,
    })
}

impl Answer {
    /// What the store keeps of this answer: its usage when allowed, else its denied images.
    pub fn report(&self) -> Report {
        if self.verdict.allowed {
            return Report::Allowed(self.usage.clone());
        }
        let mut message = self
            .verdict
            .denials
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        if message.len() > DENIED_MESSAGE_MAX {
            message.truncate(message.floor_char_boundary(DENIED_MESSAGE_MAX));
        }
        let mut images: Vec<&Usage> = self.usage.iter().collect();
        images.sort_by(|a, b| a.image.cmp(&b.image));
        images.dedup_by(|a, b| a.image == b.image);
        Report::Denied(
            images
                .into_iter()
                .map(|usage| Denied {
                    at: usage.at,
                    namespace: usage.namespace.clone(),
                    image: usage.image.clone(),
                    message: message.clone(),
                })
                .collect(),
        )
    }

    /// The AdmissionReview response body.
    pub fn response(&self, endpoint: Endpoint) -> Value {
        let verdict = &self.verdict;
        let mut response = json!({
            "uid": self.uid,
            "allowed": verdict.allowed,
        });
        if !verdict.allowed {
            let reasons = summarize(verdict.denials.iter().map(ToString::to_string), "denials");
            let message = format!("berth denied {}: {}", self.object, reasons.join("; "));
            response["status"] = json!({
                "code": 403,
                "reason": "Forbidden",
                "message": bounded(message),
            });
        }
        let warnings = summarize(
            verdict
                .warnings
                .iter()
                .map(|warning| bounded(warning.to_string())),
            "warnings",
        );
        if !warnings.is_empty() {
            response["warnings"] = json!(warnings);
        }
        if endpoint == Endpoint::Mutate && !verdict.patches.is_empty() {
            let patch = serde_json::to_vec(&verdict.patches).unwrap_or_default();
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
        }
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        })
    }
}
