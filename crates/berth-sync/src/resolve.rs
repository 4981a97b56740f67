//! Tags resolved at a registry when the snapshot does not know them, for pins: one `HEAD`
//! through `berth_oci::Client::resolve`, behind a bounded cache (tag → digest, short TTL) and
//! single-flight (concurrent admissions asking for the same tag share one request), within a
//! deadline kept below the webhook's `timeoutSeconds`. Past the deadline, or on a registry
//! error, the tag stays unknown and the rule's `unknown:` setting applies; the failure is logged
//! and counted, never raised.
//!
//! Which tags are asked is the pure core's choice (`policy::tags_to_resolve`: only registries
//! the platform configured); [`TagResolver::knowledge_for`] adds the answers to a per-request
//! overlay of the snapshot's `Knowledge`, which `evaluate` then reads as usual. `berth check
//! --resolve` uses the same resolver, so both doors decide alike.

use crate::expiring::{insert_bounded, lock};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::policy::{self, Knowledge, Policy};
use berth_core::{Digest, ImageRef};
use tokio::sync::watch;
use tokio::time::Instant;

/// How the resolver behaves.
#[derive(Debug, Clone)]
pub struct ResolveSettings {
    /// The longest an admission waits for a registry. The webhook's `timeoutSeconds`
    /// (deploy/base/webhooks.yaml: 5 s) must stay above it, or the API server gives up first
    /// and its `failurePolicy` decides instead of the rule's `unknown:`.
    pub deadline: Duration,
    /// How long a resolved tag is trusted: a tag moved at the registry is seen after at most
    /// this long (or at the next knowledge refresh, if the store learns it first).
    pub ttl: Duration,
    /// How long a failure (registry error, deadline passed) is remembered: while it is, the tag
    /// is unknown at once instead of costing every admission up to the deadline. Zero: never.
    pub failure_ttl: Duration,
    /// The most tags cached; past it, the entry closest to expiry is dropped.
    pub capacity: usize,
    /// Registries asked when the policy has no `registries` rule to say which are the
    /// platform's (with one, only the images it allows are resolved).
    pub registries: BTreeSet<String>,
    /// How to reach registries (plain HTTP, CAs, credentials).
    pub client: berth_oci::ClientConfig,
}

impl PartialEq for ResolveSettings {
    fn eq(&self, other: &Self) -> bool {
        // As for the sync: the client's configuration holds secrets and is not comparable.
        self.deadline == other.deadline
            && self.ttl == other.ttl
            && self.failure_ttl == other.failure_ttl
            && self.capacity == other.capacity
            && self.registries == other.registries
    }
}

impl Eq for ResolveSettings {}

impl ResolveSettings {
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(5);
    pub const DEFAULT_CAPACITY: usize = 10_000;
}

/// Why a tag stayed unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    #[error("the registry did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the registry refused: {0}")]
    Registry(String),
}

/// What the resolver has done, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResolveStats {
    /// Tags answered from the cache (a remembered failure included).
    pub hits: u64,
    /// Requests started at a registry (one per tag however many admissions wait on it).
    pub requests: u64,
    /// Requests that ended in a registry error.
    pub errors: u64,
    /// Requests that ran past the deadline.
    pub timeouts: u64,
}

/// What a request for a tag gave.
type Answer = Result<Digest, ResolveFailure>;

/// What waiters see: `None` until the request ends.
type Outcome = Option<Answer>;

/// Resolves tags for admissions. Cheap to clone; clones share the cache and the client.
#[derive(Clone)]
pub struct TagResolver {
    inner: Arc<Inner>,
}

struct Inner {
    client: berth_oci::Client,
    deadline: Duration,
    ttl: Duration,
    failure_ttl: Duration,
    capacity: usize,
    registries: BTreeSet<String>,
    /// Canonical `registry/repository:tag` → the answer (a digest, or a recent failure) and
    /// when it stops being trusted.
    cache: Mutex<HashMap<String, (Answer, Instant)>>,
    /// Requests in flight, by the same key: latecomers wait on the first one's answer.
    in_flight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    hits: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

impl TagResolver {
    pub fn new(settings: ResolveSettings) -> TagResolver {
        TagResolver::with_client(berth_oci::Client::new(settings.client.clone()), &settings)
    }

    /// A resolver over an existing client (tests count its requests).
    pub fn with_client(client: berth_oci::Client, settings: &ResolveSettings) -> TagResolver {
        TagResolver {
            inner: Arc::new(Inner {
                client,
                deadline: settings.deadline,
                ttl: settings.ttl,
                failure_ttl: settings.failure_ttl,
                capacity: settings.capacity.max(1),
                registries: settings.registries.clone(),
                cache: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                hits: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> ResolveStats {
        let inner = &self.inner;
        ResolveStats {
            hits: inner.hits.load(Ordering::Relaxed),
            requests: inner.requests.load(Ordering::Relaxed),
            errors: inner.errors.load(Ordering::Relaxed),
            timeouts: inner.timeouts.load(Ordering::Relaxed),
        }
    }

    /// The knowledge to decide `images` with: `snapshot` itself when nothing needs resolving,
    /// else an overlay with every tag resolved within the deadline (the others stay unknown).
    pub async fn knowledge_for(
        &self,
        images: &[String],
        policy: &Policy,
        snapshot: &Arc<Knowledge>,
    ) -> Arc<Knowledge> {
        let wanted = policy::tags_to_resolve(
            images.iter().map(String::as_str),
            policy,
            snapshot,
            &self.inner.registries,
        );
        if wanted.is_empty() {
            return Arc::clone(snapshot);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for image in wanted {
            let resolver = self.clone();
            tasks.spawn(async move {
                let outcome = resolver.resolve(&image).await;
                (image, outcome)
            });
        }
        let mut overlay = Knowledge::overlay(Arc::clone(snapshot));
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((image, Ok(digest))) => overlay.add_tag(&image, digest),
                Ok((image, Err(failure))) => tracing::warn!(
                    image = %image,
                    registry = image.registry(),
                    error = %failure,
                    "tag not resolved; the rule's unknown handling applies"
                ),
                Err(error) => tracing::error!(error = %error, "tag resolution task failed"),
            }
        }
        Arc::new(overlay)
    }

    /// What `image`'s tag points to: from the cache, or from the request in flight for it, or
    /// from a new one; never longer than the deadline.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Digest, ResolveFailure> {
        let inner = &self.inner;
        let key = image.canonical();
        let now = Instant::now();
        if let Some((answer, expires)) = lock(&inner.cache).get(&key)
            && *expires > now
        {
            inner.hits.fetch_add(1, Ordering::Relaxed);
            return answer.clone();
        }
        let mut receiver = {
            let mut in_flight = lock(&inner.in_flight);
            // A request may have finished since the look above: its answer is cached before it
            // leaves `in_flight`, so looking again here never starts a second one.
            if let Some((answer, expires)) = lock(&inner.cache).get(&key)
                && *expires > now
            {
                inner.hits.fetch_add(1, Ordering::Relaxed);
                return answer.clone();
            }
            match in_flight.get(&key) {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(key.clone(), receiver.clone());
                    inner.requests.fetch_add(1, Ordering::Relaxed);
                    // The request runs on its own task, so a caller giving up does not cancel
                    // it for the others waiting.
                    tokio::spawn(self.clone().fetch(image.clone(), key, sender));
                    receiver
                }
            }
        };
        let deadline = inner.deadline;
        match tokio::time::timeout(deadline, receiver.wait_for(Option::is_some)).await {
            Ok(Ok(outcome)) => outcome
                .clone()
                .unwrap_or(Err(ResolveFailure::Timeout(deadline))),
            Ok(Err(_closed)) => Err(ResolveFailure::Registry(
                "the request was abandoned".to_string(),
            )),
            Err(_elapsed) => Err(ResolveFailure::Timeout(deadline)),
        }
    }

    /// One HEAD within the deadline; the answer is cached (a failure for `failure_ttl`) and
    /// sent to everyone waiting.
    async fn fetch(self, image: ImageRef, key: String, sender: watch::Sender<Outcome>) {
        let inner = &self.inner;
        let deadline = inner.deadline;
        let outcome = match tokio::time::timeout(deadline, inner.client.resolve(&image)).await {
            Ok(Ok(resolved)) => Ok(resolved.digest),
            Ok(Err(error)) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                Err(ResolveFailure::Registry(error.to_string()))
            }
            Err(_elapsed) => {
                inner.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(ResolveFailure::Timeout(deadline))
            }
        };
        let ttl = match &outcome {
            Ok(_) => inner.ttl,
            Err(_) => inner.failure_ttl,
        };
        if !ttl.is_zero() {
            let expires = Instant::now() + ttl;
            insert_bounded(
                &mut lock(&inner.cache),
                inner.capacity,
                key.clone(),
                outcome.clone(),
                expires,
            );
        }
        lock(&inner.in_flight).remove(&key);
        let _ = sender.send(Some(outcome));
    }
}
