//! Namespace labels for the webhook: an AdmissionReview does not carry them, so (as Kyverno and
//! Gatekeeper do) they are read from the Kubernetes API with one `GET /api/v1/namespaces/{name}`,
//! behind a bounded cache (TTL), single-flight (concurrent admissions in one namespace share one
//! request) and a deadline kept below the webhook's `timeoutSeconds`.
//!
//! Fail safe: on an error or past the deadline the namespace has no labels, so exceptions that
//! select by label do not apply and the decision is the stricter one. Failures are logged and
//! counted (`berth_namespace_labels_total{outcome}`), never cached, never raised. The bearer
//! token is read from its file on every request (projected service-account tokens rotate).

use berth_sync::expiring::{insert_bounded, lock};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// A namespace's labels.
pub type Labels = BTreeMap<String, String>;

/// The most berth reads of one answer from the API server.
const MAX_BODY: usize = 1 << 20;

/// Where the Kubernetes API is and how long its answers are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSettings {
    /// The API server (`https://host:port`). Plain `http://` only to a loopback address (tests).
    pub api: String,
    /// The service account's bearer token, re-read on every request (it rotates).
    pub token_file: PathBuf,
    /// The CA that signed the API server's certificate; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long a namespace's labels are trusted: a relabelled namespace is seen after at most
    /// this long.
    pub ttl: Duration,
    /// The longest an admission waits for the API server; below the webhook's `timeoutSeconds`
    /// (5 s), or the API server gives up first and its `failurePolicy` decides.
    pub deadline: Duration,
    /// The most namespaces cached; past it, the entry closest to expiry is dropped.
    pub capacity: usize,
}

impl NamespaceSettings {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);
    pub const DEFAULT_CAPACITY: usize = 10_000;
    pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    pub const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
}

/// Why the labels could not be read (the client could not be built, or a fetch failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    #[error("the Kubernetes API URL {0:?} is not https:// (http:// only to a loopback address)")]
    Url(String),
    #[error("the CA file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("not a namespace name: {0:?}")]
    InvalidName(String),
    #[error("the token file {path}: {message}")]
    Token { path: String, message: String },
    #[error("the Kubernetes API did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Kubernetes API refused: {0}")]
    Api(String),
}

/// What the reader has done, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceStats {
    /// Namespaces answered from the cache.
    pub hits: u64,
    /// Requests started at the API server (one per namespace however many admissions wait).
    pub requests: u64,
    /// Requests that ended in an error (token unreadable, refused, not JSON).
    pub errors: u64,
    /// Requests that ran past the deadline.
    pub timeouts: u64,
    /// Names that are not DNS labels, never sent.
    pub invalid: u64,
}

type Outcome = Option<Result<Labels, NamespaceError>>;

/// Reads namespace labels for admissions. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct NamespaceLabels {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    api: String,
    token_file: PathBuf,
    ttl: Duration,
    deadline: Duration,
    capacity: usize,
    /// Namespace → its labels and when they stop being trusted (only successes are cached).
    cache: Mutex<HashMap<String, (Labels, Instant)>>,
    /// Requests in flight: latecomers wait on the first one's answer.
    in_flight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    hits: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    invalid: AtomicU64,
}

/// The part of a Namespace object read; everything else is ignored.
#[derive(Deserialize)]
struct Namespace {
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    labels: Labels,
}

impl NamespaceLabels {
    pub fn new(settings: &NamespaceSettings) -> Result<NamespaceLabels, NamespaceError> {
        let api = settings.api.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&api).map_err(|_| NamespaceError::Url(api.clone()))?;
        let loopback = url.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback())
        });
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(NamespaceError::Url(api));
        }
        // The deadline is kept by `fetch` (a tokio timeout), so a slow API counts as a timeout.
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &settings.ca_file {
            let ca_error = |message: String| NamespaceError::Ca {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|error| ca_error(error.to_string()))?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .build()
            .map_err(|error| NamespaceError::Api(error.to_string()))?;
        Ok(NamespaceLabels {
            inner: Arc::new(Inner {
                client,
                api,
                token_file: settings.token_file.clone(),
                ttl: settings.ttl,
                deadline: settings.deadline,
                capacity: settings.capacity.max(1),
                cache: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                hits: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                invalid: AtomicU64::new(0),
            }),
        })
    }

    pub fn stats(&self) -> NamespaceStats {
        let inner = &self.inner;
        NamespaceStats {
            hits: inner.hits.load(Ordering::Relaxed),
            requests: inner.requests.load(Ordering::Relaxed),
            errors: inner.errors.load(Ordering::Relaxed),
            timeouts: inner.timeouts.load(Ordering::Relaxed),
            invalid: inner.invalid.load(Ordering::Relaxed),
        }
    }

    /// `namespace`'s labels, or none when they cannot be read within the deadline (logged):
    /// exceptions selecting by label then do not apply.
    pub async fn labels_or_none(&self, namespace: &str) -> Labels {
        match self.labels(namespace).await {
            Ok(labels) => labels,
            Err(error) => {
                tracing::warn!(
                    namespace,
                    error = %error,
                    "namespace labels not read; exceptions selecting by label do not apply"
                );
                Labels::new()
            }
        }
    }

    /// `namespace`'s labels: from the cache, or the request in flight, or a new one.
    pub async fn labels(&self, namespace: &str) -> Result<Labels, NamespaceError> {
        let inner = &self.inner;
        if !is_dns_label(namespace) {
            inner.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(NamespaceError::InvalidName(namespace.to_string()));
        }
        let mut receiver = {
            let mut in_flight = lock(&inner.in_flight);
            // Looked at under the in-flight lock: an answer is cached before its request leaves
            // `in_flight`, so this never starts a second request for a fresh entry.
            if let Some((labels, expires)) = lock(&inner.cache).get(namespace)
                && *expires > Instant::now()
            {
                inner.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(labels.clone());
            }
            match in_flight.get(namespace) {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(namespace.to_string(), receiver.clone());
                    inner.requests.fetch_add(1, Ordering::Relaxed);
                    // On its own task, so a caller giving up does not cancel it for the others.
                    tokio::spawn(self.clone().fetch(namespace.to_string(), sender));
                    receiver
                }
            }
        };
        // The request itself ends by the deadline (`fetch`) and answers with its outcome, counted
        // before it is sent; waiting twice as long is only a safety net.
        let deadline = inner.deadline;
        match tokio::time::timeout(deadline * 2, receiver.wait_for(Option::is_some)).await {
            Ok(Ok(outcome)) => outcome
                .clone()
                .unwrap_or(Err(NamespaceError::Timeout(deadline))),
            Ok(Err(_closed)) => Err(NamespaceError::Api("the request was abandoned".to_string())),
            Err(_elapsed) => Err(NamespaceError::Timeout(deadline)),
        }
    }

    async fn fetch(self, namespace: String, sender: watch::Sender<Outcome>) {
        let inner = &self.inner;
        let deadline = inner.deadline;
        let outcome = match tokio::time::timeout(deadline, self.get(&namespace)).await {
            Ok(Ok(labels)) => Ok(labels),
            Ok(Err(error)) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
            Err(_elapsed) => {
                inner.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(NamespaceError::Timeout(deadline))
            }
        };
        if let Ok(labels) = &outcome
            && !inner.ttl.is_zero()
        {
            let expires = Instant::now() + inner.ttl;
            insert_bounded(
                &mut lock(&inner.cache),
                inner.capacity,
                namespace.clone(),
                labels.clone(),
                expires,
            );
        }
        lock(&inner.in_flight).remove(&namespace);
        let _ = sender.send(Some(outcome));
    }

    /// One GET with the token as it is in its file now; the answer is capped at [`MAX_BODY`].
    async fn get(&self, namespace: &str) -> Result<Labels, NamespaceError> {
        let inner = &self.inner;
        let token = tokio::fs::read_to_string(&inner.token_file)
            .await
            .map_err(|error| NamespaceError::Token {
                path: inner.token_file.display().to_string(),
                message: error.to_string(),
            })?;
        let url = format!("{}/api/v1/namespaces/{namespace}", inner.api);
        let response = inner
            .client
            .get(url)
            .bearer_auth(token.trim())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|error| NamespaceError::Api(error.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(NamespaceError::Api(format!("HTTP {status}")));
        }
        // A Namespace is a few hundred bytes; anything near the cap is not one.
        let too_large = || NamespaceError::Api(format!("answer larger than {MAX_BODY} bytes"));
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY as u64)
        {
            return Err(too_large());
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| NamespaceError::Api(error.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let object: Namespace = serde_json::from_slice(&body)
            .map_err(|error| NamespaceError::Api(format!("not a Namespace: {error}")))?;
        Ok(object.metadata.labels)
    }
}

/// Whether `name` is an RFC 1123 DNS label, as namespace names are: safe to put in a URL path.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// The reader's counters in the Prometheus text format, for `/metrics`.
pub fn metrics(stats: &NamespaceStats) -> String {
    let mut text = String::new();
    crate::metrics::write_metric(
        &mut text,
        "berth_namespace_labels_total",
        "counter",
        "Namespace labels the webhook needed, by outcome: answered from the cache, requested \
         at the Kubernetes API, and of those the errors and the ones past the deadline, plus \
         names refused as invalid (without labels, label-selected exceptions do not apply).",
        &[
            (r#"{outcome="cache_hit"}"#, stats.hits as f64),
            (r#"{outcome="request"}"#, stats.requests as f64),
            (r#"{outcome="error"}"#, stats.errors as f64),
            (r#"{outcome="timeout"}"#, stats.timeouts as f64),
            (r#"{outcome="invalid"}"#, stats.invalid as f64),
        ],
    );
    text
}
