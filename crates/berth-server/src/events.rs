//! Registry push events instead of polling: `POST /api/v1/registry-events` takes the CNCF
//! distribution notification envelope (`events[]` with `action`, `target.repository`,
//! `target.tag`, `target.digest`, `target.mediaType`, `target.url`, `request.host`) and Harbor's
//! webhook payload (`type: PUSH_ARTIFACT | DELETE_ARTIFACT`, `event_data.resources[]`), behind a
//! token with the `events` scope.
//!
//! An event is a hint, not a fact: each names a repository, which is queued for a sync of that
//! repository alone — berth then asks the registry itself, so an event can neither invent a tag
//! nor delete knowledge (a delete event only makes berth look again; the registry's answer marks
//! a tag gone). The queue is bounded and deduplicated (a repository already waiting is not queued
//! twice) and never blocks the answer: when it is full the event is dropped, counted, and the next
//! scheduled sync catches up. Repositories outside the sync's scope are ignored and counted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_store::{RepositoryName, Store};
use berth_sync::{Syncer, Targets};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::AppState;
use crate::channels_api::authorize_token;
use crate::config::{ApiToken, Scope, SyncSettings};
use crate::reload::CatalogState;

/// The largest event body read (distribution batches a few events per POST).
pub const BODY_MAX: usize = 1024 * 1024;
/// Repositories waiting for an event-driven sync.
pub const QUEUE: usize = 256;

/// What the endpoint shares with the worker.
pub struct RegistryEvents {
    pub tokens: Vec<ApiToken>,
    pub catalog: Arc<CatalogState>,
    pub sync: SyncSettings,
    sender: mpsc::Sender<RepositoryName>,
    pending: Mutex<HashSet<RepositoryName>>,
    pub counts: EventCounts,
}

/// `berth_registry_events_total{outcome}`.
#[derive(Debug, Default)]
pub struct EventCounts {
    pub queued: AtomicU64,
    pub duplicate: AtomicU64,
    pub ignored: AtomicU64,
    pub dropped: AtomicU64,
    pub invalid: AtomicU64,
    pub synced: AtomicU64,
}

/// The endpoint's answer: what became of each event.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Accepted {
    /// Repositories queued for a sync.
    pub queued: Vec<String>,
    /// Already waiting.
    pub duplicate: usize,
    /// Not a tag move (blob pushes, pulls), or outside the sync's scope.
    pub ignored: usize,
    /// The queue was full: the next scheduled sync catches up.
    pub dropped: usize,
}

impl RegistryEvents {
    pub fn new(
        tokens: Vec<ApiToken>,
        catalog: Arc<CatalogState>,
        sync: SyncSettings,
    ) -> (Arc<RegistryEvents>, mpsc::Receiver<RepositoryName>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let events = Arc::new(RegistryEvents {
            tokens,
            catalog,
            sync,
            sender,
            pending: Mutex::new(HashSet::new()),
            counts: EventCounts::default(),
        });
        (events, receiver)
    }

    /// Whether the sync walks `repository` (configured, a scanned registry's, or the catalog's).
    fn in_scope(&self, repository: &RepositoryName) -> bool {
        let mut targets = self.sync.targets.clone();
        if let Some(snapshot) = self.catalog.snapshot() {
            targets.add_catalog(&snapshot.catalog);
        }
        targets.repositories.contains(repository)
            || targets.registries.iter().any(|scan| {
                scan.registry == repository.registry() && scan.selects(repository.repository())
            })
    }

    fn offer(&self, repository: RepositoryName, accepted: &mut Accepted) {
        if !self.in_scope(&repository) {
            tracing::info!(%repository, "registry event for a repository outside the sync's scope ignored");
            self.counts.ignored.fetch_add(1, Ordering::Relaxed);
            accepted.ignored += 1;
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.contains(&repository) {
            self.counts.duplicate.fetch_add(1, Ordering::Relaxed);
            accepted.duplicate += 1;
            return;
        }
        match self.sender.try_send(repository.clone()) {
            Ok(()) => {
                pending.insert(repository.clone());
                self.counts.queued.fetch_add(1, Ordering::Relaxed);
                accepted.queued.push(repository.to_string());
            }
            Err(_) => {
                tracing::warn!(%repository, "registry event dropped: the queue is full; the next scheduled sync catches up");
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                accepted.dropped += 1;
            }
        }
    }

    /// `/metrics` text.
    pub fn metrics(&self) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let mut text = String::new();
        crate::metrics::write_metric(
            &mut text,
            "berth_registry_events_total",
            "counter",
            "Registry events by outcome: repositories queued for a sync, already queued, ignored \
             (not a tag move, or outside the sync's scope), dropped (queue full: the next \
             scheduled sync catches up), invalid bodies, and event syncs done.",
            &[
                (r#"{outcome="queued"}"#, load(&self.counts.queued)),
                (r#"{outcome="duplicate"}"#, load(&self.counts.duplicate)),
                (r#"{outcome="ignored"}"#, load(&self.counts.ignored)),
                (r#"{outcome="dropped"}"#, load(&self.counts.dropped)),
                (r#"{outcome="invalid"}"#, load(&self.counts.invalid)),
                (r#"{outcome="synced"}"#, load(&self.counts.synced)),
            ],
        );
        text
    }
}

/// Syncs each queued repository alone, until `stopped` (a repository being synced finishes;
/// what is still queued is left to the next scheduled sync).
pub async fn work(
    events: Arc<RegistryEvents>,
    store: Store,
    policy: Option<Arc<crate::admission_tasks::PolicyState>>,
    mut queue: mpsc::Receiver<RepositoryName>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = berth_oci::Client::new(events.sync.client.clone());
    loop {
        let repository = tokio::select! {
            () = crate::until_stopped(&mut stopped) => return,
            next = queue.recv() => match next {
                Some(repository) => repository,
                None => return,
            },
        };
        events
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&repository);
        let mut targets = Targets::default();
        targets.repositories.insert(repository.clone());
        let options = crate::knowledge::sync_options(&events.sync, policy.as_deref());
        let syncer = Syncer::new(client.clone(), store.clone(), options);
        match syncer.run(&targets).await {
            Ok(report) => {
                events.counts.synced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    %repository,
                    failed = report.failed(),
                    requests = report.requests.total(),
                    "event sync finished"
                );
            }
            Err(error) => tracing::warn!(%repository, error = %error, "event sync failed"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    events: Vec<DistributionEvent>,
}

#[derive(Debug, Deserialize)]
struct DistributionEvent {
    #[serde(default)]
    action: String,
    target: DistributionTarget,
    #[serde(default)]
    request: Option<DistributionRequest>,
}

#[derive(Debug, Deserialize)]
struct DistributionTarget {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DistributionRequest {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HarborPayload {
    #[serde(rename = "type")]
    kind: String,
    event_data: HarborData,
}

#[derive(Debug, Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
}

#[derive(Debug, Deserialize)]
struct HarborResource {
    resource_url: String,
}

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The repositories a body's events name (`None`: a tag move is not what the event says);
/// `Err`: the body is neither envelope.
fn repositories(body: &[u8]) -> Result<Vec<Option<RepositoryName>>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    if value.get("events").is_some() {
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|error| format!("not a distribution notification envelope: {error}"))?;
        return Ok(envelope
            .events
            .into_iter()
            .map(|event| {
                let manifest = event
                    .target
                    .media_type
                    .as_deref()
                    .is_some_and(|media_type| MANIFEST_TYPES.contains(&media_type));
                let moved = match event.action.as_str() {
                    "push" => manifest && event.target.tag.is_some(),
                    // A deleted manifest: look again (only the registry's answer marks a tag gone).
                    "delete" => true,
                    _ => false,
                };
                if !moved {
                    return None;
                }
                let host = event
                    .target
                    .url
                    .as_deref()
                    .and_then(|url| url::Url::parse(url).ok())
                    .and_then(|url| {
                        let host = url.host_str()?.to_string();
                        Some(match url.port() {
                            Some(port) => format!("{host}:{port}"),
                            None => host,
                        })
                    })
                    .or_else(|| event.request.and_then(|request| request.host))?;
                RepositoryName::new(&host, &event.target.repository).ok()
            })
            .collect());
    }
    if value.get("type").is_some() {
        let payload: HarborPayload = serde_json::from_value(value)
            .map_err(|error| format!("not a Harbor webhook payload: {error}"))?;
        let moved = matches!(payload.kind.as_str(), "PUSH_ARTIFACT" | "DELETE_ARTIFACT");
        return Ok(payload
            .event_data
            .resources
            .into_iter()
            .map(|resource| {
                if !moved {
                    return None;
                }
                // `harbor.example.com/project/repo:tag` or `...@sha256:...`.
                let reference = resource.resource_url;
                let without_digest = reference.split('@').next().unwrap_or_default();
                let (host, path) = without_digest.split_once('/')?;
                let path = match path.rsplit_once(':') {
                    Some((path, _tag)) if !path.is_empty() => path,
                    _ => path,
                };
                RepositoryName::new(host, path).ok()
            })
            .collect());
    }
    Err(
        "expected a distribution notification envelope (`events`) or a Harbor payload (`type`)"
            .to_string(),
    )
}

/// `POST /api/v1/registry-events`.
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(events) = state.events.clone() else {
        let body = json!({"error": "not_configured",
            "message": "registry events need a store, a `sync` section and an `events` token"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    if let Err(error) = authorize_token(&events.tokens, &headers, Scope::Events) {
        return error.into_response();
    }
    if body.len() > BODY_MAX {
        events.counts.invalid.fetch_add(1, Ordering::Relaxed);
        let body = json!({"error": "bad_request", "message": format!("the body is larger than {BODY_MAX} bytes")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let named = match repositories(&body) {
        Ok(named) => named,
        Err(message) => {
            events.counts.invalid.fetch_add(1, Ordering::Relaxed);
            let body = json!({"error": "bad_request", "message": message});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let mut accepted = Accepted::default();
    for repository in named {
        match repository {
            Some(repository) => events.offer(repository, &mut accepted),
            None => {
                events.counts.ignored.fetch_add(1, Ordering::Relaxed);
                accepted.ignored += 1;
            }
        }
    }
    (StatusCode::ACCEPTED, Json(accepted)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Result<Vec<Option<String>>, String> {
        repositories(body.as_bytes())
            .map(|all| all.into_iter().map(|r| r.map(|r| r.to_string())).collect())
    }

    #[test]
    fn distribution_and_harbor_bodies_name_repositories() {
        let distribution = r#"{"events":[
          {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "repository":"team/app","tag":"1.2","digest":"sha256:aa",
            "url":"http://127.0.0.1:5050/v2/team/app/manifests/sha256:aa"},"request":{"host":"x"}},
          {"action":"push","target":{"mediaType":"application/octet-stream","repository":"team/app",
            "digest":"sha256:bb","url":"http://127.0.0.1:5050/v2/team/app/blobs/sha256:bb"}},
          {"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "repository":"team/app","tag":"1.2"}},
          {"action":"delete","target":{"repository":"team/old","digest":"sha256:cc"},
            "request":{"host":"registry.example:5000"}}
        ]}"#;
        assert_eq!(
            names(distribution),
            Ok(vec![
                Some("127.0.0.1:5050/team/app".to_string()),
                None,
                None,
                Some("registry.example:5000/team/old".to_string()),
            ])
        );
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"operator":"ci",
          "event_data":{"resources":[{"digest":"sha256:aa","tag":"v1",
            "resource_url":"harbor.example.com/library/nginx:v1"}],
            "repository":{"name":"nginx","namespace":"library","repo_full_name":"library/nginx"}}}"#;
        assert_eq!(
            names(harbor),
            Ok(vec![Some("harbor.example.com/library/nginx".to_string())])
        );
        let scan = r#"{"type":"SCANNING_COMPLETED","event_data":{"resources":[{"resource_url":"h/a/b:1"}]}}"#;
        assert_eq!(names(scan), Ok(vec![None]));
        assert!(names("[1,2]").is_err());
        assert!(names("{\"events\":[{\"action\":\"push\"}]}").is_err());
        assert!(names("not json").is_err());
    }
}
