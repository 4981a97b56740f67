//! The registry client: one `Client` for every configured registry, speaking the OCI
//! distribution API with authentication, politeness and the safety checks berth promises.
//!
//! Every request goes through [`Client::send`], which owns the rules that must hold for all of
//! them: a per-registry concurrency limit; retries with backoff and jitter on 429/5xx and
//! connection failures, honouring `Retry-After`; the `WWW-Authenticate` dance (Basic or Bearer,
//! tokens cached per scope until they expire); redirects followed by hand so that
//! `Authorization` only ever goes back to the registry's own origin. Response bodies are read
//! through [`read_capped`] and content fetched by digest is verified before it is returned.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::reference::Reference;
use berth_core::{Digest, ImageRef, Tag};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::auth::{self, Challenge, Credentials, Secret};
use crate::digest::ContentHasher;
use crate::error::{OciError, Target};
use crate::helper::{self, CredentialHelper, HelperLimits};
use crate::manifest::{self, Descriptor, ImageConfig, ManifestKind, ParseFailure};

/// How berth treats one registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Speak plain HTTP to this registry. Never a default: only for registries configured so.
    pub plain_http: bool,
    /// Extra CA certificates (PEM) trusted for this registry, on top of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// At most this many requests in flight to the registry at once.
    pub max_concurrency: usize,
    /// From the docker config's `auths`; used when there is no helper, or it has nothing.
    pub credentials: Option<Credentials>,
    /// `credHelpers` for this host, else `credsStore`: asked first, once per client.
    pub credential_helper: Option<CredentialHelper>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            plain_http: false,
            ca_pem: None,
            max_concurrency: 8,
            credentials: None,
            credential_helper: None,
        }
    }
}

/// Retries of transient failures (429, 5xx, connection errors).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First backoff; doubled per attempt, with ±50 % jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned with it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Caps on what berth reads from a registry.
#[derive(Debug, Clone)]
pub struct Limits {
    pub manifest_bytes: u64,
    pub config_bytes: u64,
    /// Token responses and error bodies.
    pub small_body_bytes: u64,
    pub max_redirects: usize,
    /// Page size asked for when listing (the spec allows registries to return fewer).
    pub page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest_bytes: 4 << 20,
            config_bytes: 4 << 20,
            small_body_bytes: 1 << 20,
            max_redirects: 5,
            page_size: 100,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Per registry, keyed as `ImageRef::registry()` names it (`docker.io`, `host:port`).
    pub registries: HashMap<String, RegistryConfig>,
    /// For registries not listed.
    pub default_registry: RegistryConfig,
    pub retry: RetryPolicy,
    pub limits: Limits,
    /// How long a credential helper may run and how much it may print.
    pub helper_limits: HelperLimits,
    /// Per upstream registry, mirrors (`host:port`, configured in `registries` like any other)
    /// tried in order for reads of it before the upstream. Writes go to the upstream only.
    pub mirrors: HashMap<String, Vec<String>>,
    /// Host name resolution; `None`: the system's. Token realms' addresses are checked
    /// whichever resolves them (`auth::RealmGuard`).
    pub resolver: Option<auth::Resolver>,
}

/// Requests sent and bytes received, for reports and for tests that count requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    pub head: u64,
    pub get: u64,
    pub put: u64,
    pub delete: u64,
    /// Blob upload starts and cross-repository mounts (`POST /v2/<name>/blobs/uploads/`).
    pub post: u64,
    /// Requests to token realms (also counted in `get`/`post`-style totals: not at all).
    pub token: u64,
    pub bytes_received: u64,
}

impl RequestStats {
    pub fn total(&self) -> u64 {
        self.head + self.get + self.put + self.delete + self.post + self.token
    }

    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            head: self.head - earlier.head,
            get: self.get - earlier.get,
            put: self.put - earlier.put,
            delete: self.delete - earlier.delete,
            post: self.post - earlier.post,
            token: self.token - earlier.token,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }
}

#[derive(Default)]
struct Counters {
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    post: AtomicU64,
    token: AtomicU64,
    bytes_received: AtomicU64,
}

/// A registry's pull rate limit as its last answer stated it (Docker Hub's `ratelimit-limit`
/// and `ratelimit-remaining` headers, `100;w=21600`: 100 pulls per 21600 s window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    /// Pulls allowed per window, when the registry says.
    pub limit: Option<u64>,
    /// Pulls left in the current window.
    pub remaining: u64,
    /// The window's length in seconds, when the registry says.
    pub window_seconds: Option<u64>,
}

impl RateLimit {
    /// Reads the headers; `None` when `ratelimit-remaining` is absent or unreadable.
    pub fn from_headers(headers: &HeaderMap) -> Option<RateLimit> {
        let (remaining, window) = rate_limit_value(&header_str(headers, "ratelimit-remaining")?)?;
        let stated_limit = header_str(headers, "ratelimit-limit")
            .as_deref()
            .and_then(rate_limit_value);
        Some(RateLimit {
            limit: stated_limit.map(|(limit, _)| limit),
            remaining,
            window_seconds: window.or(stated_limit.and_then(|(_, window)| window)),
        })
    }
}

/// `76;w=21600` → (76, Some(21600)); `76` → (76, None).
fn rate_limit_value(text: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = text.split(';');
    let count = parts.next()?.trim().parse().ok()?;
    let window = parts.find_map(|part| part.trim().strip_prefix("w=")?.parse().ok());
    Some((count, window))
}

/// A tag resolved to what it points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A fetched, verified manifest or index with its exact bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    /// The exact bytes the registry served (their digest is `digest`).
    pub bytes: Bytes,
    pub kind: ManifestKind,
}

/// A listing of tags or repositories.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    pub items: Vec<String>,
    /// True when the cap stopped the listing before the registry's last page.
    pub truncated: bool,
}

/// What a cross-repository mount request got.
#[derive(Debug)]
pub enum Mount {
    /// 201: the registry linked the blob into the repository; nothing to upload.
    Mounted,
    /// 202: the registry would not mount (another registry's rules, no access to `from`) and
    /// started an upload session instead, at this URL: upload the blob there.
    UploadStarted(url::Url),
}

/// The OCI distribution client. Cheap to clone; clones share caches, limits and counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    registries: Mutex<HashMap<String, Arc<RegistryState>>>,
    counters: Counters,
}

/// What berth knows about talking to one registry.
struct RegistryState {
    name: String,
    base_url: url::Url,
    config: RegistryConfig,
    http: reqwest::Client,
    /// For token realms only: its resolver refuses names with link-local or metadata
    /// addresses and connects to the addresses it checked.
    token_http: reqwest::Client,
    semaphore: Arc<Semaphore>,
    auth: Mutex<AuthState>,
    /// The pull rate limit the registry's last answer stated, if it states one.
    rate_limit: Mutex<Option<RateLimit>>,
    /// The credential helper's answer (or why there is none), asked once per client.
    helper_answer: tokio::sync::OnceCell<Result<Option<Credentials>, String>>,
}

impl RegistryState {
    /// The credentials known without running anything: the helper's answer once it was given,
    /// else the config file's.
    fn known_credentials(&self) -> Option<Credentials> {
        match self.helper_answer.get() {
            Some(Ok(Some(credentials))) => Some(credentials.clone()),
            _ => self.config.credentials.clone(),
        }
    }
}

#[derive(Default)]
struct AuthState {
    /// Learned from the first challenge; used up front on later requests.
    scheme: Option<Scheme>,
    /// Bearer tokens by scope string, with their expiry.
    tokens: HashMap<String, (Secret, Instant)>,
}

#[derive(Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One request as `send` sees it.
struct Request<'a> {
    method: Method,
    /// Absolute URL (the first hop is always on the registry's own origin).
    url: url::Url,
    accept: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Option<Bytes>,
    /// The token scope this request needs (`repository:name:pull`).
    scope: String,
    target: Target,
}

/// A response together with the concurrency permit it holds until its body is read.
struct Answer {
    response: reqwest::Response,
    _permit: OwnedSemaphorePermit,
}

impl Client {
    pub fn new(config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                config,
                registries: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// Each registry's pull rate limit as last stated (only registries that state one), by name.
    pub fn rate_limits(&self) -> Vec<(String, RateLimit)> {
        let registries = self.inner.registries.lock().expect("registry map lock");
        let mut limits: Vec<(String, RateLimit)> = registries
            .values()
            .filter_map(|state| {
                let limit = *state.rate_limit.lock().expect("rate limit lock");
                limit.map(|limit| (state.name.clone(), limit))
            })
            .collect();
        limits.sort_by(|a, b| a.0.cmp(&b.0));
        limits
    }

    pub fn stats(&self) -> RequestStats {
        let c = &self.inner.counters;
        RequestStats {
            head: c.head.load(Ordering::Relaxed),
            get: c.get.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            post: c.post.load(Ordering::Relaxed),
            token: c.token.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Resolves the image's tag (or digest) with `HEAD`, falling back to `GET` when the registry
    /// does not answer HEAD or omits `Docker-Content-Digest`.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolved, OciError> {
        self.through_mirrors(image, |on| async move { self.resolve_direct(&on).await })
            .await
    }

    async fn resolve_direct(&self, image: &ImageRef) -> Result<Resolved, OciError> {
        let registry = self.registry(image.registry())?;
        let target = target_of(image);
        let request = Request {
            method: Method::HEAD,
            url: manifest_url(&registry, image.repository(), &image.reference()),
            accept: Some(manifest::MANIFEST_ACCEPT),
            content_type: None,
            body: None,
            scope: pull_scope(image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        let status = answer.response.status();
        if status.is_success() {
            let headers = answer.response.headers();
            if let Some(digest) = header_digest(headers, &target)? {
                if let Some(wanted) = image.digest()
                    && *wanted != digest
                {
                    return Err(OciError::Corrupt {
                        target,
                        expected: wanted.to_string(),
                        actual: digest.to_string(),
                    });
                }
                let media_type = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
                let size = header_str(headers, header::CONTENT_LENGTH)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Ok(Resolved {
                    digest,
                    media_type: media_type
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                    size,
                });
            }
        } else if !matches!(
            status,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::BAD_REQUEST
        ) {
            return Err(self.status_error(answer, target).await);
        }
        let manifest = self.manifest(image).await?;
        Ok(Resolved {
            digest: manifest.digest,
            media_type: manifest.media_type,
            size: manifest.bytes.len() as u64,
        })
    }

    /// Fetches a manifest or index by tag or digest, verified: by digest against that digest; by
    /// tag against `Docker-Content-Digest` when the registry sends it.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Manifest, OciError> {
        self.fetch_manifest(image, image.reference(), None).await
    }

    /// Fetches the child manifest an index entry (or any descriptor) names; checks its size too.
    pub async fn manifest_of(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<Manifest, OciError> {
        self.fetch_manifest(
            image,
            Reference::Digest(descriptor.digest.clone()),
            Some(descriptor.size),
        )
        .await
    }

    async fn fetch_manifest(
        &self,
        image: &ImageRef,
        reference: Reference,
        expected_size: Option<u64>,
    ) -> Result<Manifest, OciError> {
        self.through_mirrors(image, |on| {
            let reference = reference.clone();
            async move {
                self.fetch_manifest_direct(&on, reference, expected_size)
                    .await
            }
        })
        .await
    }

    async fn fetch_manifest_direct(
        &self,
        image: &ImageRef,
        reference: Reference,
        expected_size: Option<u64>,
    ) -> Result<Manifest, OciError> {
        let registry = self.registry(image.registry())?;
        let target = Target {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
            reference: reference.to_string(),
        };
        let limit = self.inner.config.limits.manifest_bytes;
        if let Some(size) = expected_size
            && size > limit
        {
            return Err(OciError::TooLarge {
                target,
                what: "manifest",
                limit,
            });
        }
        let request = Request {
            method: Method::GET,
            url: manifest_url(&registry, image.repository(), &reference),
            accept: Some(manifest::MANIFEST_ACCEPT),
            content_type: None,
            body: None,
            scope: pull_scope(image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        if !answer.response.status().is_success() {
            return Err(self.status_error(answer, target).await);
        }
        let headers = answer.response.headers().clone();
        let served_digest = header_digest(&headers, &target)?;
        let content_type = header_str(&headers, header::CONTENT_TYPE);
        let bytes = self.read_capped(answer, limit, "manifest", &target).await?;
        if let Some(size) = expected_size
            && size != bytes.len() as u64
        {
            return Err(OciError::WrongSize {
                target,
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let expected = match &reference {
            Reference::Digest(digest) => Some(digest.clone()),
            Reference::Tag(_) => served_digest,
        };
        let digest = match expected {
            Some(expected) => {
                let actual = ContentHasher::digest_of(expected.algorithm(), &bytes);
                if actual != expected {
                    return Err(OciError::Corrupt {
                        target,
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
                expected
            }
            None => ContentHasher::digest_of(berth_core::DigestAlgorithm::Sha256, &bytes),
        };
        let (media_type, kind) = manifest::parse_manifest(&bytes, content_type.as_deref())
            .map_err(|failure| match failure {
                ParseFailure::Unsupported(media_type) => OciError::UnsupportedMediaType {
                    target: target.clone(),
                    media_type,
                },
                ParseFailure::Invalid(detail) => OciError::Protocol {
                    target: target.clone(),
                    detail,
                },
            })?;
        Ok(Manifest {
            digest,
            media_type,
            bytes,
            kind,
        })
    }

    /// The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`): the index of artifacts
    /// whose `subject` is `digest`, and the SHA-256 of the answer (it changes as referrers are
    /// added; the answer is generated, not content-addressed). `None` when the registry has no
    /// referrers API (404, 405 or 400: distribution before 3.0 answers 404); the caller then
    /// reads the referrers tag schema (`sha256-<hex>`). Only the first page is read, capped
    /// like a manifest.
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<(Digest, manifest::ImageIndex)>, OciError> {
        let registry = self.registry(image.registry())?;
        let target = Target {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
            reference: digest.to_string(),
        };
        let url = registry
            .base_url
            .join(&format!("/v2/{}/referrers/{digest}", image.repository()))
            .map_err(|error| url_error(&target, error))?;
        let request = Request {
            method: Method::GET,
            url,
            accept: Some(manifest::OCI_INDEX),
            content_type: None,
            body: None,
            scope: pull_scope(image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        let status = answer.response.status();
        if matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST
        ) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(answer, target).await);
        }
        let limit = self.inner.config.limits.manifest_bytes;
        let bytes = self
            .read_capped(answer, limit, "referrers index", &target)
            .await?;
        let index: manifest::ImageIndex =
            serde_json::from_slice(&bytes).map_err(|error| OciError::Protocol {
                target: target.clone(),
                detail: format!("the referrers answer is not an image index: {error}"),
            })?;
        let answered = ContentHasher::digest_of(berth_core::DigestAlgorithm::Sha256, &bytes);
        Ok(Some((answered, index)))
    }

    /// Fetches and parses an image config (capped, verified).
    pub async fn config(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<(Bytes, ImageConfig), OciError> {
        let limit = self.inner.config.limits.config_bytes;
        let bytes = self.blob_bytes(image, descriptor, limit, "config").await?;
        let config = serde_json::from_slice(&bytes).map_err(|error| OciError::Protocol {
            target: blob_target(image, &descriptor.digest),
            detail: format!("image config is not valid JSON: {error}"),
        })?;
        Ok((bytes, config))
    }

    /// Fetches a small blob whole, refusing one larger than `limit`; verified size and digest.
    pub async fn blob_bytes(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
        limit: u64,
        what: &'static str,
    ) -> Result<Bytes, OciError> {
        let target = blob_target(image, &descriptor.digest);
        if descriptor.size > limit {
            return Err(OciError::TooLarge {
                target,
                what,
                limit,
            });
        }
        let mut reader = self.blob(image, descriptor).await?;
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        while let Some(chunk) = reader.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    }

    /// Opens a blob as a stream of verified chunks. A chunk past the declared size fails at once;
    /// a short or corrupt blob fails at its end, so a consumer never sees unverified content end
    /// well.
    pub async fn blob(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, OciError> {
        self.through_mirrors(image, |on| async move {
            self.blob_direct(&on, descriptor).await
        })
        .await
    }

    async fn blob_direct(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, OciError> {
        let registry = self.registry(image.registry())?;
        let target = blob_target(image, &descriptor.digest);
        let url = registry
            .base_url
            .join(&format!(
                "/v2/{}/blobs/{}",
                image.repository(),
                descriptor.digest
            ))
            .map_err(|error| url_error(&target, error))?;
        let request = Request {
            method: Method::GET,
            url,
            accept: None,
            content_type: None,
            body: None,
            scope: pull_scope(image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        if !answer.response.status().is_success() {
            return Err(self.status_error(answer, target).await);
        }
        if let Some(length) = answer.response.content_length()
            && length > descriptor.size
        {
            return Err(OciError::WrongSize {
                target,
                expected: descriptor.size,
                actual: length,
            });
        }
        Ok(BlobReader {
            answer,
            hasher: ContentHasher::new(descriptor.digest.algorithm()),
            expected: descriptor.clone(),
            received: 0,
            target,
            client: self.clone(),
            finished: false,
        })
    }

    /// Lists a repository's tags, following `Link` pagination, up to `cap` tags.
    pub async fn list_tags(&self, image: &ImageRef, cap: usize) -> Result<Listing, OciError> {
        self.through_mirrors(
            image,
            |on| async move { self.list_tags_direct(&on, cap).await },
        )
        .await
    }

    async fn list_tags_direct(&self, image: &ImageRef, cap: usize) -> Result<Listing, OciError> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let registry = self.registry(image.registry())?;
        let target = Target {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
            reference: String::new(),
        };
        let path = format!("/v2/{}/tags/list", image.repository());
        self.list(
            &registry,
            &path,
            pull_scope(image.repository()),
            target,
            cap,
            |bytes| serde_json::from_slice::<Page>(bytes).map(|page| page.tags.unwrap_or_default()),
        )
        .await
    }

    /// Lists a registry's repositories (`_catalog`), following `Link` pagination, up to `cap`.
    pub async fn list_repositories(
        &self,
        registry_name: &str,
        cap: usize,
    ) -> Result<Listing, OciError> {
        #[derive(serde::Deserialize)]
        struct Page {
            repositories: Option<Vec<String>>,
        }
        let registry = self.registry(registry_name)?;
        let target = Target {
            registry: registry_name.to_string(),
            repository: String::new(),
            reference: String::new(),
        };
        let scope = "registry:catalog:*".to_string();
        self.list(&registry, "/v2/_catalog", scope, target, cap, |bytes| {
            serde_json::from_slice::<Page>(bytes).map(|page| page.repositories.unwrap_or_default())
        })
        .await
    }

    async fn list(
        &self,
        registry: &Arc<RegistryState>,
        path: &str,
        scope: String,
        target: Target,
        cap: usize,
        parse: impl Fn(&[u8]) -> Result<Vec<String>, serde_json::Error>,
    ) -> Result<Listing, OciError> {
        let limits = &self.inner.config.limits;
        let mut url = registry
            .base_url
            .join(path)
            .map_err(|error| url_error(&target, error))?;
        url.query_pairs_mut()
            .append_pair("n", &limits.page_size.to_string());
        let mut items = Vec::new();
        let mut seen_pages = HashSet::new();
        loop {
            if !seen_pages.insert(url.to_string()) {
                return Err(OciError::Protocol {
                    target,
                    detail: "pagination loops back to a page already read".to_string(),
                });
            }
            let request = Request {
                method: Method::GET,
                url: url.clone(),
                accept: Some("application/json"),
                content_type: None,
                body: None,
                scope: scope.clone(),
                target: target.clone(),
            };
            let answer = self.send(registry, request).await?;
            if !answer.response.status().is_success() {
                return Err(self.status_error(answer, target).await);
            }
            let next = next_link(answer.response.headers());
            let bytes = self
                .read_capped(answer, limits.manifest_bytes, "listing page", &target)
                .await?;
            let page = parse(&bytes).map_err(|error| OciError::Protocol {
                target: target.clone(),
                detail: format!("listing page is not valid JSON: {error}"),
            })?;
            items.extend(page);
            if items.len() > cap {
                items.truncate(cap);
                return Ok(Listing {
                    items,
                    truncated: true,
                });
            }
            let Some(next) = next else {
                return Ok(Listing {
                    items,
                    truncated: false,
                });
            };
            if items.len() == cap {
                return Ok(Listing {
                    items,
                    truncated: true,
                });
            }
            let next_url = url.join(&next).map_err(|error| url_error(&target, error))?;
            if next_url.origin() != registry.base_url.origin() {
                return Err(OciError::Protocol {
                    target,
                    detail: format!("pagination link leaves the registry: {next_url}"),
                });
            }
            url = next_url;
        }
    }

    /// Puts manifest bytes under a tag and returns their digest (checked against the registry's
    /// `Docker-Content-Digest`). The bytes are sent exactly as given, so an index stays an index
    /// with the same digest.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        tag: &Tag,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, OciError> {
        self.put_manifest_at(image, &Reference::Tag(tag.clone()), media_type, bytes)
            .await
    }

    /// Puts manifest bytes under a tag or by their digest (an index's children go in by digest
    /// before the index that names them).
    pub async fn put_manifest_at(
        &self,
        image: &ImageRef,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, OciError> {
        let registry = self.registry(image.registry())?;
        let target = Target {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
            reference: reference.to_string(),
        };
        let digest = ContentHasher::digest_of(berth_core::DigestAlgorithm::Sha256, &bytes);
        if let Reference::Digest(named) = reference
            && *named != digest
        {
            return Err(OciError::Corrupt {
                target,
                expected: named.to_string(),
                actual: digest.to_string(),
            });
        }
        let request = Request {
            method: Method::PUT,
            url: manifest_url(&registry, image.repository(), reference),
            accept: None,
            content_type: Some(media_type),
            body: Some(bytes),
            scope: format!("repository:{}:pull,push", image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        if !answer.response.status().is_success() {
            return Err(self.status_error(answer, target).await);
        }
        if let Some(served) = header_digest(answer.response.headers(), &target)?
            && served != digest
        {
            return Err(OciError::Corrupt {
                target,
                expected: digest.to_string(),
                actual: served.to_string(),
            });
        }
        Ok(digest)
    }

    /// Whether the image's repository holds the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub async fn has_blob(&self, image: &ImageRef, digest: &Digest) -> Result<bool, OciError> {
        let registry = self.registry(image.registry())?;
        let target = blob_target(image, digest);
        let url = registry
            .base_url
            .join(&format!("/v2/{}/blobs/{digest}", image.repository()))
            .map_err(|error| url_error(&target, error))?;
        let request = Request {
            method: Method::HEAD,
            url,
            accept: None,
            content_type: None,
            body: None,
            scope: pull_scope(image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        match answer.response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(answer, target).await),
        }
    }

    /// Asks the registry to link `digest` from repository `from` (same registry) into the
    /// image's repository: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<from>`.
    pub async fn mount_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, OciError> {
        let registry = self.registry(image.registry())?;
        let target = blob_target(image, digest);
        let mut url = upload_url(&registry, image, &target)?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        // Both grants in one token: push on the target, pull on the source (as docker asks).
        let scope = format!("{} {}", push_scope(image.repository()), pull_scope(from));
        let answer = self.start_upload(&registry, url, scope, &target).await?;
        match answer.response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::UploadStarted(upload_location(
                &registry, &answer, &target,
            )?)),
            _ => Err(self.status_error(answer, target).await),
        }
    }

    /// Starts a blob upload in the image's repository (`POST /v2/<name>/blobs/uploads/`) and
    /// returns where to send it.
    pub async fn start_blob_upload(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<url::Url, OciError> {
        let registry = self.registry(image.registry())?;
        let target = blob_target(image, digest);
        let url = upload_url(&registry, image, &target)?;
        let scope = push_scope(image.repository());
        let answer = self.start_upload(&registry, url, scope, &target).await?;
        if answer.response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(answer, target).await);
        }
        upload_location(&registry, &answer, &target)
    }

    async fn start_upload(
        &self,
        registry: &Arc<RegistryState>,
        url: url::Url,
        scope: String,
        target: &Target,
    ) -> Result<Answer, OciError> {
        let request = Request {
            method: Method::POST,
            url,
            accept: None,
            content_type: None,
            body: Some(Bytes::new()),
            scope,
            target: target.clone(),
        };
        self.send(registry, request).await
    }

    /// Uploads a blob in one `PUT <location>?digest=<digest>` whose body is streamed from
    /// `source` (a verified reader of the same digest in another repository or registry), never
    /// held whole. A source that turns out short, long or corrupt fails the upload with the
    /// source's error, and the registry, which checks the digest too, never commits it.
    ///
    /// Sent once, not through [`Client::send`]: a streamed body cannot be replayed for a retry,
    /// a challenge or a redirect. The token for the push scope is already there (the upload was
    /// started under it). It takes no concurrency permit of its own: its source read holds one,
    /// and a registry limited to one request at a time would otherwise wait for itself.
    pub async fn upload_blob(
        &self,
        image: &ImageRef,
        location: url::Url,
        source: BlobReader,
    ) -> Result<(), OciError> {
        let registry = self.registry(image.registry())?;
        let descriptor = source.expected.clone();
        let target = blob_target(image, &descriptor.digest);
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", descriptor.digest.as_str());
        if url.origin() != registry.base_url.origin() {
            return Err(OciError::Protocol {
                target,
                detail: "the upload location is on another origin".to_string(),
            });
        }
        let source_error: Arc<Mutex<Option<OciError>>> = Arc::default();
        let failed = source_error.clone();
        // One chunk is held back until the next arrives, so the last one goes out only after
        // the source's size and digest were verified: a registry that stops reading at
        // Content-Length never sees a complete body from a corrupt source.
        let chunks = futures_util::stream::unfold(Some((source, None::<Bytes>)), move |state| {
            let failed = failed.clone();
            async move {
                let (mut reader, mut held) = state?;
                loop {
                    match reader.next_chunk().await {
                        Ok(Some(chunk)) => {
                            if let Some(previous) = held.replace(chunk) {
                                return Some((Ok(previous), Some((reader, held))));
                            }
                        }
                        Ok(None) => return held.map(|last| (Ok(last), None)),
                        Err(error) => {
                            let detail = error.to_string();
                            *failed.lock().expect("source error lock") = Some(error);
                            return Some((Err(std::io::Error::other(detail)), None));
                        }
                    }
                }
            }
        });
        let mut builder = registry
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, descriptor.size)
            .body(reqwest::Body::wrap_stream(chunks));
        if let Some(value) = self.authorization(&registry, &push_scope(image.repository())) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        self.count(&Method::PUT);
        let sent = builder.send().await;
        if let Some(error) = source_error.lock().expect("source error lock").take() {
            return Err(error);
        }
        let response = sent.map_err(|error| send_error(&target, &error))?;
        if response.status() != StatusCode::CREATED {
            return Err(self.response_error(response, target).await);
        }
        if let Some(served) = header_digest(response.headers(), &target)?
            && served != descriptor.digest
        {
            return Err(OciError::Corrupt {
                target,
                expected: descriptor.digest.to_string(),
                actual: served.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes a manifest by digest (which, in most registries, also removes its tags).
    pub async fn delete_manifest(&self, image: &ImageRef, digest: &Digest) -> Result<(), OciError> {
        let registry = self.registry(image.registry())?;
        let reference = Reference::Digest(digest.clone());
        let target = Target {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
            reference: digest.to_string(),
        };
        let request = Request {
            method: Method::DELETE,
            url: manifest_url(&registry, image.repository(), &reference),
            accept: None,
            content_type: None,
            body: None,
            scope: format!("repository:{}:delete", image.repository()),
            target: target.clone(),
        };
        let answer = self.send(&registry, request).await?;
        if !answer.response.status().is_success() {
            return Err(self.status_error(answer, target).await);
        }
        Ok(())
    }

    /// A read of `image` from the mirrors of its registry in order, then from the registry
    /// itself (containerd's hosts.toml and registries.conf semantics). A mirror that fails in any
    /// way is passed over with a warning; the upstream's answer, error included, is the last
    /// word. Writes never come here: they go to the upstream only.
    async fn through_mirrors<T, F, Fut>(&self, image: &ImageRef, read: F) -> Result<T, OciError>
    where
        F: Fn(ImageRef) -> Fut,
        Fut: std::future::Future<Output = Result<T, OciError>>,
    {
        let mirrors = self
            .inner
            .config
            .mirrors
            .get(image.registry())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for mirror in mirrors {
            let on_mirror = match ImageRef::from_parts(
                mirror,
                image.repository(),
                image.reference(),
            ) {
                Ok(on_mirror) => on_mirror,
                Err(error) => {
                    tracing::warn!(registry = %image.registry(), %mirror, %error, "not a mirror address");
                    continue;
                }
            };
            match read(on_mirror).await {
                Ok(answer) => return Ok(answer),
                Err(error) => {
                    tracing::warn!(registry = %image.registry(), %mirror, %error, "mirror failed; trying the next");
                }
            }
        }
        read(image.clone()).await
    }

    /// The state for a registry, made on first use.
    fn registry(&self, name: &str) -> Result<Arc<RegistryState>, OciError> {
        let mut registries = self.inner.registries.lock().expect("registry map lock");
        if let Some(state) = registries.get(name) {
            return Ok(state.clone());
        }
        let config = self
            .inner
            .config
            .registries
            .get(name)
            .unwrap_or(&self.inner.config.default_registry)
            .clone();
        let config_error = |detail: String| OciError::Config {
            registry: name.to_string(),
            detail,
        };
        let host = if name == berth_core::reference::DOCKER_HUB {
            berth_core::reference::DOCKER_HUB_API
        } else {
            name
        };
        let scheme = if config.plain_http { "http" } else { "https" };
        let base_url = url::Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|error| config_error(format!("invalid registry address: {error}")))?;
        let certificates = match &config.ca_pem {
            Some(pem) => {
                let certificates = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|error| config_error(format!("CA bundle is not PEM: {error}")))?;
                if certificates.is_empty() {
                    return Err(config_error("CA bundle holds no certificate".to_string()));
                }
                certificates
            }
            None => Vec::new(),
        };
        let builder = || {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(300))
                .https_only(!config.plain_http);
            for certificate in &certificates {
                builder = builder.add_root_certificate(certificate.clone());
            }
            builder
        };
        let resolver = self.inner.config.resolver.clone();
        let mut registry_builder = builder();
        if let Some(resolver) = &resolver {
            registry_builder = registry_builder.dns_resolver(Arc::new(resolver.clone()));
        }
        let http = registry_builder
            .build()
            .map_err(|error| config_error(format!("cannot build HTTP client: {error}")))?;
        let token_http = builder()
            .dns_resolver(Arc::new(auth::RealmGuard { inner: resolver }))
            .build()
            .map_err(|error| config_error(format!("cannot build HTTP client: {error}")))?;
        let state = Arc::new(RegistryState {
            name: name.to_string(),
            base_url,
            semaphore: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            config,
            http,
            token_http,
            auth: Mutex::new(AuthState::default()),
            helper_answer: tokio::sync::OnceCell::new(),
            rate_limit: Mutex::new(None),
        });
        registries.insert(name.to_string(), state.clone());
        Ok(state)
    }

    /// Sends a request under the registry's rules (see the module doc) and returns the final
    /// response, whatever its status, for the caller to interpret.
    async fn send(
        &self,
        registry: &Arc<RegistryState>,
        request: Request<'_>,
    ) -> Result<Answer, OciError> {
        let policy = &self.inner.config.retry;
        let mut attempt = 0u32;
        let mut authenticated_after_challenge = false;
        let prefetched = self.prefetch_token(registry, &request).await?;
        loop {
            let permit = registry
                .semaphore
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let outcome = self.send_following_redirects(registry, &request).await;
            let delay = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let challenge = (status == StatusCode::UNAUTHORIZED)
                        .then(|| header_str(response.headers(), header::WWW_AUTHENTICATE))
                        .flatten();
                    if let Some(Challenge::Bearer {
                        error: Some(error),
                        scope,
                        ..
                    }) = challenge.as_deref().and_then(auth::parse_challenge)
                        && error == "insufficient_scope"
                        && (prefetched || authenticated_after_challenge)
                    {
                        // A token fetched for this very request lacks a grant: asking again
                        // would get the same answer.
                        return Err(OciError::Denied {
                            target: request.target.clone(),
                            detail: format!(
                                "the token server did not grant {} (insufficient_scope)",
                                scope.unwrap_or_else(|| request.scope.clone())
                            ),
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED && !authenticated_after_challenge {
                        drop(response);
                        drop(permit);
                        authenticated_after_challenge = true;
                        self.answer_challenge(registry, &request, challenge.as_deref())
                            .await?;
                        continue;
                    }
                    if !is_retryable(status) {
                        return Ok(Answer {
                            response,
                            _permit: permit,
                        });
                    }
                    let retry_after = retry_after(response.headers());
                    if attempt >= policy.max_retries
                        || retry_after.is_some_and(|wait| wait > policy.max_retry_after)
                    {
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            return Err(OciError::RateLimited {
                                target: request.target.clone(),
                                retry_after,
                            });
                        }
                        return Ok(Answer {
                            response,
                            _permit: permit,
                        });
                    }
                    tracing::debug!(registry = %registry.name, status = status.as_u16(), attempt, "retrying");
                    retry_after.unwrap_or_else(|| backoff(policy, attempt))
                }
                Err(error) => {
                    if attempt >= policy.max_retries || !error.is_transient() {
                        return Err(error);
                    }
                    tracing::debug!(registry = %registry.name, %error, attempt, "retrying");
                    backoff(policy, attempt)
                }
            };
            drop(permit);
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: the request, then any redirects, with `Authorization` only on the
    /// registry's own origin.
    async fn send_following_redirects(
        &self,
        registry: &RegistryState,
        request: &Request<'_>,
    ) -> Result<reqwest::Response, OciError> {
        let mut url = request.url.clone();
        let mut method = request.method.clone();
        for _ in 0..=self.inner.config.limits.max_redirects {
            let same_origin = url.origin() == registry.base_url.origin();
            let mut builder = registry.http.request(method.clone(), url.clone());
            if let Some(accept) = request.accept {
                builder = builder.header(header::ACCEPT, accept);
            }
            if let Some(content_type) = request.content_type {
                builder = builder.header(header::CONTENT_TYPE, content_type);
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            if same_origin && let Some(value) = self.authorization(registry, &request.scope) {
                builder = builder.header(header::AUTHORIZATION, value);
            }
            self.count(&method);
            let response = builder
                .send()
                .await
                .map_err(|error| send_error(&request.target, &error))?;
            if same_origin && let Some(limit) = RateLimit::from_headers(response.headers()) {
                *registry.rate_limit.lock().expect("rate limit lock") = Some(limit);
            }
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = header_str(response.headers(), header::LOCATION) else {
                return Ok(response);
            };
            url = url
                .join(&location)
                .map_err(|error| url_error(&request.target, error))?;
            if response.status() == StatusCode::SEE_OTHER {
                method = Method::GET;
            }
            tracing::debug!(registry = %registry.name, to = %url.origin().ascii_serialization(), "following redirect");
        }
        Err(OciError::Protocol {
            target: request.target.clone(),
            detail: "too many redirects".to_string(),
        })
    }

    /// The `Authorization` value for a request needing `scope`, if berth has one.
    fn authorization(&self, registry: &RegistryState, scope: &str) -> Option<HeaderValue> {
        let auth = registry.auth.lock().expect("auth lock");
        let text = match auth.scheme.as_ref()? {
            Scheme::Basic => match &registry.known_credentials()? {
                Credentials::Basic { username, password } => {
                    basic_value(username, password.expose())
                }
                Credentials::IdentityToken(_) => return None,
            },
            Scheme::Bearer { .. } => {
                let (token, expires) = auth.tokens.get(scope)?;
                if *expires <= Instant::now() {
                    return None;
                }
                format!("Bearer {}", token.expose())
            }
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// With a Bearer registry already known, gets the token for a new scope before the request
    /// rather than after a 401: one round trip less per repository. True when it fetched one.
    async fn prefetch_token(
        &self,
        registry: &RegistryState,
        request: &Request<'_>,
    ) -> Result<bool, OciError> {
        let bearer = {
            let auth = registry.auth.lock().expect("auth lock");
            let valid = auth
                .tokens
                .get(&request.scope)
                .is_some_and(|(_, expires)| *expires > Instant::now());
            match &auth.scheme {
                Some(Scheme::Bearer { realm, service }) if !valid => {
                    Some((realm.clone(), service.clone()))
                }
                _ => None,
            }
        };
        let Some((realm, service)) = bearer else {
            return Ok(false);
        };
        let (token, lifetime) = self
            .fetch_token(
                registry,
                request,
                &realm,
                service.as_deref(),
                &request.scope,
            )
            .await?;
        let expires = token_expiry(lifetime);
        let mut auth = registry.auth.lock().expect("auth lock");
        auth.tokens.insert(request.scope.clone(), (token, expires));
        Ok(true)
    }

    /// The credentials to present: the credential helper's answer (it runs once per client),
    /// else the config file's.
    async fn credentials(&self, registry: &RegistryState) -> Result<Option<Credentials>, OciError> {
        let Some(helper) = &registry.config.credential_helper else {
            return Ok(registry.config.credentials.clone());
        };
        let limits = &self.inner.config.helper_limits;
        let answer = registry
            .helper_answer
            .get_or_init(|| async {
                let url = helper::server_url(&registry.name);
                tracing::debug!(registry = %registry.name, helper = %helper.program_name(), "asking the credential helper");
                helper::get(helper, &url, limits).await
            })
            .await;
        match answer {
            Ok(Some(credentials)) => Ok(Some(credentials.clone())),
            Ok(None) => Ok(registry.config.credentials.clone()),
            Err(detail) => Err(OciError::CredentialHelper {
                registry: registry.name.clone(),
                helper: helper.program_name(),
                detail: detail.clone(),
            }),
        }
    }

    /// Learns the registry's scheme from a 401 challenge and, for Bearer, fetches a token.
    async fn answer_challenge(
        &self,
        registry: &RegistryState,
        request: &Request<'_>,
        challenge: Option<&str>,
    ) -> Result<(), OciError> {
        let unauthorized = |detail: &str| OciError::Unauthorized {
            target: request.target.clone(),
            detail: detail.to_string(),
        };
        let Some(challenge) = challenge.and_then(auth::parse_challenge) else {
            return Err(unauthorized(
                "the registry sent no usable WWW-Authenticate challenge",
            ));
        };
        match challenge {
            Challenge::Basic => {
                let credentials = self.credentials(registry).await?;
                if !matches!(credentials, Some(Credentials::Basic { .. })) {
                    return Err(unauthorized(
                        "the registry wants basic credentials; none are configured",
                    ));
                }
                registry.auth.lock().expect("auth lock").scheme = Some(Scheme::Basic);
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
                ..
            } => {
                let scope = scope.unwrap_or_else(|| request.scope.clone());
                let (token, lifetime) = self
                    .fetch_token(registry, request, &realm, service.as_deref(), &scope)
                    .await?;
                let mut auth = registry.auth.lock().expect("auth lock");
                auth.scheme = Some(Scheme::Bearer { realm, service });
                let expires = token_expiry(lifetime);
                auth.tokens
                    .insert(request.scope.clone(), (token.clone(), expires));
                auth.tokens.insert(scope, (token, expires));
                Ok(())
            }
        }
    }

    /// Asks a token realm for a token for `scope`. Follows no redirects; the realm must pass
    /// [`auth::check_realm`] before any credential goes to it.
    async fn fetch_token(
        &self,
        registry: &RegistryState,
        request: &Request<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, Duration), OciError> {
        let refuse = |reason: &'static str| OciError::TokenRealm {
            target: request.target.clone(),
            realm: realm.to_string(),
            reason,
        };
        let mut url = url::Url::parse(realm).map_err(|_| refuse("not a URL"))?;
        auth::check_realm(&url, registry.config.plain_http).map_err(refuse)?;
        let credentials = self.credentials(registry).await?;
        let mut builder = match &credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("client_id", "berth")
                    .append_pair("scope", scope)
                    .append_pair("refresh_token", refresh.expose());
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                registry
                    .token_http
                    .post(url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            credentials => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    // One `scope` parameter per scope (a mount needs two), as docker sends them.
                    for part in scope.split_whitespace() {
                        query.append_pair("scope", part);
                    }
                }
                let builder = registry.token_http.get(url);
                match credentials {
                    Some(Credentials::Basic { username, password }) => {
                        let mut value =
                            HeaderValue::from_str(&basic_value(username, password.expose()))
                                .map_err(|_| refuse("credentials are not a valid header value"))?;
                        value.set_sensitive(true);
                        builder.header(header::AUTHORIZATION, value)
                    }
                    _ => builder,
                }
            }
        };
        builder = builder.header(header::ACCEPT, "application/json");
        self.inner.counters.token.fetch_add(1, Ordering::Relaxed);
        let response = builder.send().await.map_err(|error| {
            if chain_has::<auth::RealmAddressRefused>(&error) {
                return refuse("token realm resolves to a link-local or metadata address");
            }
            OciError::Transport {
                target: request.target.clone(),
                detail: format!("token realm: {}", transport_detail(&error)),
            }
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(refuse(
                "token realm redirects; berth follows no redirects for tokens",
            ));
        }
        let limit = self.inner.config.limits.small_body_bytes;
        let body = read_body_capped(&self.inner.counters, response, limit)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge => OciError::TooLarge {
                    target: request.target.clone(),
                    what: "token response",
                    limit,
                },
                BodyError::Transport(detail) => OciError::Transport {
                    target: request.target.clone(),
                    detail,
                },
            })?;
        if !status.is_success() {
            return Err(OciError::Unauthorized {
                target: request.target.clone(),
                detail: format!("token realm answered HTTP {}", status.as_u16()),
            });
        }
        let parsed: auth::TokenResponse =
            serde_json::from_slice(&body).map_err(|_| OciError::Protocol {
                target: request.target.clone(),
                detail: "token response is not JSON".to_string(),
            })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Protocol {
                target: request.target.clone(),
                detail: "token response holds no token".to_string(),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(1));
        Ok((Secret::new(token), lifetime))
    }

    fn count(&self, method: &Method) {
        let counters = &self.inner.counters;
        let counter = match *method {
            Method::HEAD => &counters.head,
            Method::PUT => &counters.put,
            Method::DELETE => &counters.delete,
            Method::POST => &counters.post,
            _ => &counters.get,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn read_capped(
        &self,
        answer: Answer,
        limit: u64,
        what: &'static str,
        target: &Target,
    ) -> Result<Bytes, OciError> {
        read_body_capped(&self.inner.counters, answer.response, limit)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge => OciError::TooLarge {
                    target: target.clone(),
                    what,
                    limit,
                },
                BodyError::Transport(detail) => OciError::Transport {
                    target: target.clone(),
                    detail,
                },
            })
    }

    /// Turns a non-success answer into the typed error for its status, with the registry's own
    /// error message (capped) as detail.
    async fn status_error(&self, answer: Answer, target: Target) -> OciError {
        // The permit is held until the error body is read (`answer` lives to the end).
        self.response_error(answer.response, target).await
    }

    /// [`Client::status_error`] for a response that holds no permit (a streamed upload's).
    async fn response_error(&self, response: reqwest::Response, target: Target) -> OciError {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let limit = self.inner.config.limits.small_body_bytes;
        let detail = match read_body_capped(&self.inner.counters, response, limit).await {
            Ok(body) => error_detail(&body),
            Err(_) => String::new(),
        };
        match status {
            StatusCode::NOT_FOUND => OciError::NotFound { target },
            StatusCode::UNAUTHORIZED => OciError::Unauthorized { target, detail },
            StatusCode::FORBIDDEN => OciError::Denied { target, detail },
            StatusCode::TOO_MANY_REQUESTS => OciError::RateLimited {
                target,
                retry_after,
            },
            _ => OciError::Server {
                target,
                status: status.as_u16(),
                detail,
            },
        }
    }
}

/// Streams a blob's bytes while verifying them. See [`Client::blob`].
pub struct BlobReader {
    answer: Answer,
    hasher: ContentHasher,
    expected: Descriptor,
    received: u64,
    target: Target,
    client: Client,
    finished: bool,
}

impl BlobReader {
    /// The next chunk, or `None` after the last one once size and digest have been verified.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, OciError> {
        if self.finished {
            return Ok(None);
        }
        let chunk = self
            .answer
            .response
            .chunk()
            .await
            .map_err(|error| send_error(&self.target, &error))?;
        match chunk {
            Some(chunk) => {
                self.received += chunk.len() as u64;
                self.client
                    .inner
                    .counters
                    .bytes_received
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if self.received > self.expected.size {
                    return Err(OciError::WrongSize {
                        target: self.target.clone(),
                        expected: self.expected.size,
                        actual: self.received,
                    });
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
            None => {
                self.finished = true;
                if self.received != self.expected.size {
                    return Err(OciError::WrongSize {
                        target: self.target.clone(),
                        expected: self.expected.size,
                        actual: self.received,
                    });
                }
                let actual = std::mem::replace(
                    &mut self.hasher,
                    ContentHasher::new(self.expected.digest.algorithm()),
                )
                .finish();
                if actual != self.expected.digest {
                    return Err(OciError::Corrupt {
                        target: self.target.clone(),
                        expected: self.expected.digest.to_string(),
                        actual: actual.to_string(),
                    });
                }
                Ok(None)
            }
        }
    }
}

enum BodyError {
    TooLarge,
    Transport(String),
}

/// Reads a body up to `limit` bytes, refusing early on a larger `Content-Length`.
async fn read_body_capped(
    counters: &Counters,
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Transport(transport_detail(&error)))?
    {
        counters
            .bytes_received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

fn target_of(image: &ImageRef) -> Target {
    Target {
        registry: image.registry().to_string(),
        repository: image.repository().to_string(),
        reference: image.reference().to_string(),
    }
}

fn blob_target(image: &ImageRef, digest: &Digest) -> Target {
    Target {
        registry: image.registry().to_string(),
        repository: image.repository().to_string(),
        reference: digest.to_string(),
    }
}

/// When a token that lives `lifetime` is treated as expired: a little before the realm says, so
/// that a request never goes out with a token about to lapse (a tenth of its life, at most 5 s).
fn token_expiry(lifetime: Duration) -> Instant {
    Instant::now() + lifetime - (lifetime / 10).min(Duration::from_secs(5))
}

fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// `/v2/<name>/blobs/uploads/` of the image's repository.
fn upload_url(
    registry: &RegistryState,
    image: &ImageRef,
    target: &Target,
) -> Result<url::Url, OciError> {
    registry
        .base_url
        .join(&format!("/v2/{}/blobs/uploads/", image.repository()))
        .map_err(|error| url_error(target, error))
}

/// The upload session's URL from a 202's `Location` (relative to the registry, or absolute).
fn upload_location(
    registry: &RegistryState,
    answer: &Answer,
    target: &Target,
) -> Result<url::Url, OciError> {
    let location = header_str(answer.response.headers(), header::LOCATION).ok_or_else(|| {
        OciError::Protocol {
            target: target.clone(),
            detail: "an upload was started without a Location".to_string(),
        }
    })?;
    registry
        .base_url
        .join(&location)
        .map_err(|error| url_error(target, error))
}

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// `/v2/<name>/manifests/<reference>`; tags and digests are validated types, so nothing
/// unexpected reaches the path.
fn manifest_url(registry: &RegistryState, repository: &str, reference: &Reference) -> url::Url {
    registry
        .base_url
        .join(&format!("/v2/{repository}/manifests/{reference}"))
        .expect("validated repository and reference always form a URL path")
}

fn url_error(target: &Target, error: url::ParseError) -> OciError {
    OciError::Protocol {
        target: target.clone(),
        detail: format!("bad URL: {error}"),
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// `Docker-Content-Digest`, validated; a malformed value is a protocol error, not ignored.
fn header_digest(headers: &HeaderMap, target: &Target) -> Result<Option<Digest>, OciError> {
    match headers.get("docker-content-digest") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            Digest::parse(text.trim())
                .map(Some)
                .map_err(|error| OciError::Protocol {
                    target: target.clone(),
                    detail: format!("bad Docker-Content-Digest: {error}"),
                })
        }
    }
}

/// The `next` target of a `Link: <url>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|param| {
                param.trim().replace(' ', "") == "rel=\"next\"" || param.trim() == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| target.to_string())
        })
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, header::RETRY_AFTER)?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exponential = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.min(16)));
    let jittered = exponential.mul_f64(0.5 + fastrand::f64());
    jittered.min(policy.max_delay)
}

fn basic_value(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// The registry's `{"errors":[{"code","message"}]}` as one short line.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        return String::new();
    };
    let text = parsed
        .errors
        .iter()
        .map(|entry| match (&entry.code, &entry.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    // The registry's words reach a terminal: no escape sequence, CR or LF goes through.
    let mut text = berth_core::quote::escape(&text).into_owned();
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The error of a request to the registry: [`OciError::PlainHttp`] when a TLS connection was
/// answered in plain HTTP (retrying cannot help), else [`OciError::Transport`].
fn send_error(target: &Target, error: &reqwest::Error) -> OciError {
    if answered_plain_http(error) {
        return OciError::PlainHttp {
            target: target.clone(),
        };
    }
    OciError::Transport {
        target: target.clone(),
        detail: transport_detail(error),
    }
}

/// Whether rustls gave up on the server's first bytes because they were no TLS record: a
/// plain-HTTP server answering the hello (`HTTP/1.1 400 ...`) is what that looks like.
fn answered_plain_http(error: &reqwest::Error) -> bool {
    find_in_chain(error, &|cause| {
        matches!(
            cause.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        )
    })
}

/// Whether an error of type `E` is among `error`'s causes.
fn chain_has<E: std::error::Error + 'static>(error: &reqwest::Error) -> bool {
    find_in_chain(error, &|cause| cause.is::<E>())
}

/// Whether `matches` holds for `error` or any of its causes, including the errors io::Error
/// wraps (its `source` skips them; hyper wraps rustls's errors in two).
fn find_in_chain(
    error: &(dyn std::error::Error + 'static),
    matches: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    if matches(error) {
        return true;
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        && find_in_chain(inner, matches)
    {
        return true;
    }
    error
        .source()
        .is_some_and(|source| find_in_chain(source, matches))
}

/// A transport error with its causes on one line (hyper's and rustls's reasons matter here).
fn transport_detail(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        let part = current.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = current.source();
    }
    berth_core::quote::escape(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_link_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</v2/_catalog?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        let mut other = HeaderMap::new();
        other.insert(
            header::LINK,
            HeaderValue::from_static("<https://x/y>; rel=\"prev\""),
        );
        assert_eq!(next_link(&other), None);
    }

    #[test]
    fn reads_docker_hubs_rate_limit_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(RateLimit::from_headers(&headers), None);
        headers.insert("ratelimit-limit", HeaderValue::from_static("100;w=21600"));
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from_static("76;w=21600"),
        );
        assert_eq!(
            RateLimit::from_headers(&headers),
            Some(RateLimit {
                limit: Some(100),
                remaining: 76,
                window_seconds: Some(21600)
            })
        );
        let mut bare = HeaderMap::new();
        bare.insert("ratelimit-remaining", HeaderValue::from_static("3"));
        assert_eq!(
            RateLimit::from_headers(&bare),
            Some(RateLimit {
                limit: None,
                remaining: 3,
                window_seconds: None
            })
        );
        bare.insert("ratelimit-remaining", HeaderValue::from_static("lots"));
        assert_eq!(RateLimit::from_headers(&bare), None);
    }

    #[test]
    fn docker_hub_is_reached_at_registry_1() {
        let client = Client::new(ClientConfig::default());
        let hub = client.registry("docker.io").unwrap();
        assert_eq!(hub.base_url.as_str(), "https://registry-1.docker.io/");
        let image = ImageRef::parse("alpine:3.20").unwrap();
        assert_eq!(image.registry(), "docker.io");
        assert_eq!(
            manifest_url(&hub, image.repository(), &image.reference()).as_str(),
            "https://registry-1.docker.io/v2/library/alpine/manifests/3.20"
        );
        assert_eq!(
            pull_scope(image.repository()),
            "repository:library/alpine:pull"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 0..10 {
            let delay = backoff(&policy, attempt);
            let nominal = policy.base_delay * 2u32.pow(attempt);
            assert!(
                delay >= (nominal / 2).min(policy.max_delay),
                "{attempt}: {delay:?}"
            );
            assert!(delay <= policy.max_delay);
        }
    }

    #[test]
    fn error_details_are_short() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_detail(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_detail(b"<html>"), "");
    }

    /// issue 15, item 8: escape sequences, CR and LF in a registry's message cleared the screen
    /// and forged a `berth:` line.
    #[test]
    fn error_details_escape_control_characters() {
        let body = br#"{"errors":[{"code":"DENIED","message":"\u001b[2J\u001b[H\r\nberth: synced 0 problems"}]}"#;
        assert_eq!(
            error_detail(body),
            r"DENIED: \u{1b}[2J\u{1b}[H\r\nberth: synced 0 problems"
        );
    }
}
