//! One sync: list tags, resolve each known tag with a HEAD and each new one with a GET, fetch
//! only digests the store does not hold (manifests, index children, configs, layers; configs
//! and layers once per run across repositories), record each repository in one transaction,
//! then recompute lineage. A failure records itself beside what was known and erases nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::lineage::LineageIndex;
use berth_core::osrelease::Architecture;
use berth_core::reference::Reference;
use berth_core::{Digest, ImageRef, Tag};
use berth_layers::LayerSummary;
use berth_oci::{Client, Descriptor, Manifest, ManifestKind, OciError, RateLimit, RequestStats};
use berth_store::{
    ConfigFacts, ImageRecord, IndexEntry, LayerFact, LayerRecord, ManifestKind as StoredKind,
    ManifestRecord, Platform, RepoSnapshot, RepositoryName, Store, StoreError, SyncSummary,
};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, stream};
use tokio::sync::OnceCell;

use crate::layers::{SharedSummaries, scan_layers};
use crate::signatures;
use crate::targets::Targets;

/// How a sync behaves; `Default` is what `berth sync` uses.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// At most this many tags per repository (the listing reports truncation).
    pub tag_cap: usize,
    /// At most this many repositories from one registry's `_catalog`.
    pub repository_cap: usize,
    /// Repositories synced at once (requests per registry are also bounded by the client).
    pub repository_concurrency: usize,
    /// Tags resolved at once within a repository.
    pub tag_concurrency: usize,
    /// Read layers for OS identity and libc. Off, a sync records manifests and configs only.
    pub scan_layers: bool,
    pub layer_limits: berth_layers::Limits,
    /// Read the signatures and attestations of digests (cosign's `.sig`/`.att` tags and the
    /// referrers tag schema), when the listing shows a new or moved one.
    pub read_signatures: bool,
    /// The keys signatures are checked against (the policy's `signatures.keys`). Layers read
    /// earlier are checked against a key they have not met without asking the registry.
    pub trusted_keys: Vec<berth_trust::TrustedKey>,
    /// Digests tagged this recently are asked of the referrers API at every run, not only
    /// when a tag first reaches them (zero: only then). At most [`REFERRERS_RECHECK_MAX`]
    /// per repository and run.
    pub referrers_recheck: Duration,
}

/// Where a referrer the referrers API listed was found, in the store's signature sources.
pub const REFERRERS_API: &str = "referrers API";

/// Recently tagged digests asked of the referrers API again, at most, per repository and run.
pub const REFERRERS_RECHECK_MAX: usize = 256;

/// The default [`SyncOptions::referrers_recheck`]: a day.
pub const REFERRERS_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Stored layers re-checked against keys they have not met, at most, per run.
const RECHECK_MAX: usize = 10_000;

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            tag_cap: 10_000,
            repository_cap: 10_000,
            repository_concurrency: 4,
            tag_concurrency: 16,
            scan_layers: true,
            layer_limits: berth_layers::Limits::default(),
            read_signatures: true,
            trusted_keys: Vec::new(),
            referrers_recheck: REFERRERS_RECHECK,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Registry(#[from] OciError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{repository}: {message}")]
    Invalid { repository: String, message: String },
    /// The registry does not know the repository's tag list (404): a repository `_catalog`
    /// still lists after its content went (distribution keeps them), or a push that never got
    /// to a manifest.
    #[error("{repository}: the registry has no tag list for it (404)")]
    NoTagList { repository: String },
    /// A manifest berth does not read as an image: its tags are skipped, the repository is not
    /// failed for it.
    #[error("{digest}: {reason}")]
    Unreadable { digest: Digest, reason: String },
}

/// Config media types of runnable images; anything else (a Helm chart, an SBOM) is an artifact.
const IMAGE_CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What happened to one repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepositoryReport {
    pub repository: String,
    #[serde(flatten)]
    pub outcome: RepositoryOutcome,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum RepositoryOutcome {
    Synced(RepositoryCounts),
    /// Nothing was changed; the store keeps what it knew, marked with this error.
    Failed {
        error: String,
    },
    /// A repository a registry scan listed but that has no tag list any more: left alone, with
    /// a warning; not a failure.
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepositoryCounts {
    pub tags: u64,
    /// The tag listing hit the cap: tags beyond it were not seen (and not marked gone).
    pub truncated: bool,
    /// Manifests read (by tag for a new tag, by digest for a moved tag or an index's child).
    pub manifests_fetched: u64,
    pub images_added: u64,
    /// Configs fetched by this repository's trees (a config another repository fetched in the
    /// same run, or one the store holds, is not fetched again).
    pub configs_fetched: u64,
    pub layers_read: u64,
    pub layers_cached: u64,
    pub tags_added: u64,
    pub tags_moved: u64,
    pub tags_gone: u64,
    pub tags_returned: u64,
    /// Signature and attestation manifests read (a cosign or referrers tag new or moved).
    pub signatures_read: u64,
    /// Images whose layers could not be read within limits (recorded without OS identity).
    pub warnings: Vec<String>,
}

/// The outcome of a whole sync.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    pub repositories: Vec<RepositoryReport>,
    /// Registries whose repository listing failed.
    pub registry_failures: Vec<(String, String)>,
    pub requests: RequestStats,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Images whose base changed in this sync's lineage pass.
    pub lineage_updates: u64,
    /// Stored signature layers checked against a key they had not met (a key the policy
    /// gained), without asking the registry.
    pub signatures_rechecked: u64,
    /// The sync was stopped (shutdown, a lost lease) at a repository boundary: the repositories
    /// not reached were left as they were, and the lineage pass did not run.
    pub cancelled: bool,
    /// Pull rate limits the registries stated (Docker Hub's `ratelimit-*` headers), as their
    /// last answers of this sync gave them.
    pub rate_limits: Vec<RegistryRateLimit>,
}

/// One registry's stated pull rate limit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistryRateLimit {
    pub registry: String,
    #[serde(flatten)]
    pub limit: RateLimit,
}

fn seconds<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration.as_secs_f64())
}

impl SyncReport {
    pub fn failed(&self) -> usize {
        self.repositories
            .iter()
            .filter(|r| matches!(r.outcome, RepositoryOutcome::Failed { .. }))
            .count()
            + self.registry_failures.len()
    }
}

/// Counters a progress display reads while a sync runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub repositories_total: AtomicU64,
    pub repositories_done: AtomicU64,
    pub tags_resolved: AtomicU64,
}

/// Walks registries into the store.
pub struct Syncer {
    client: Client,
    store: Store,
    options: SyncOptions,
    summaries: SharedSummaries,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    /// Registries known this run to have (true) or lack (false) the OCI 1.1 referrers API.
    referrers_api: Mutex<HashMap<String, bool>>,
}

impl Syncer {
    pub fn new(client: Client, store: Store, options: SyncOptions) -> Syncer {
        Syncer {
            client,
            store,
            options,
            summaries: SharedSummaries::default(),
            progress: Arc::new(Progress::default()),
            cancel: Arc::new(AtomicBool::new(false)),
            referrers_api: Mutex::new(HashMap::new()),
        }
    }

    /// Set it to stop the sync at the next repository boundary: the repository being synced
    /// finishes (its one transaction commits or not), no other starts.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Syncs every target. Individual failures are reported and recorded, not returned: only
    /// a store that cannot be read or written fails the whole sync.
    pub async fn run(&self, targets: &Targets) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let before = self.client.stats();
        let mut repositories: BTreeSet<RepositoryName> = targets.repositories.clone();
        // Named repositories that vanish are failures; scanned ones may be leftovers.
        let named = &targets.repositories;
        let mut registry_failures = Vec::new();
        for scan in &targets.registries {
            match self.list_registry(&scan.registry).await {
                Ok(names) => {
                    for name in names.into_iter().filter(|name| scan.selects(name)) {
                        match RepositoryName::new(&scan.registry, &name) {
                            Ok(repository) => {
                                repositories.insert(repository);
                            }
                            Err(error) => tracing::warn!(
                                registry = %scan.registry, %name, %error,
                                "skipping a repository name the registry listed"
                            ),
                        }
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    self.store
                        .record_registry_failure(&scan.registry, &message, Utc::now())
                        .await?;
                    registry_failures.push((scan.registry.clone(), message));
                }
            }
        }
        self.progress
            .repositories_total
            .store(repositories.len() as u64, Ordering::Relaxed);

        let cancel = &self.cancel;
        let run = &RunCache::default();
        let reports: Vec<Result<RepositoryReport, SyncError>> = stream::iter(repositories)
            .take_while(|_| std::future::ready(!cancel.load(Ordering::Relaxed)))
            .map(|repository| async move {
                let outcome = match self.sync_repository(&repository, run).await {
                    Ok(counts) => RepositoryOutcome::Synced(counts),
                    Err(SyncError::Store(error)) => return Err(SyncError::Store(error)),
                    Err(error @ SyncError::NoTagList { .. }) if !named.contains(&repository) => {
                        tracing::warn!(%repository, %error, "skipping a listed repository without tags");
                        RepositoryOutcome::Skipped {
                            reason: "the registry lists it, but its tag list is 404 (no tags left)"
                                .to_string(),
                        }
                    }
                    Err(error) => {
                        let message = error.to_string();
                        tracing::warn!(%repository, error = %message, "repository sync failed");
                        self.store
                            .record_repository_failure(&repository, &message, Utc::now())
                            .await?;
                        RepositoryOutcome::Failed { error: message }
                    }
                };
                self.progress
                    .repositories_done
                    .fetch_add(1, Ordering::Relaxed);
                Ok(RepositoryReport {
                    repository: repository.to_string(),
                    outcome,
                })
            })
            .buffer_unordered(self.options.repository_concurrency.max(1))
            .collect()
            .await;
        let mut repositories: Vec<RepositoryReport> =
            reports.into_iter().collect::<Result<_, _>>()?;
        repositories.sort_by(|a, b| a.repository.cmp(&b.repository));

        let cancelled = self.cancel.load(Ordering::Relaxed);
        let (lineage_updates, signatures_rechecked) = if cancelled {
            (0, 0)
        } else {
            (
                update_lineage(&self.store).await?,
                self.recheck_signatures().await?,
            )
        };
        Ok(SyncReport {
            cancelled,
            signatures_rechecked,
            repositories,
            registry_failures,
            requests: self.client.stats().since(&before),
            elapsed: started.elapsed(),
            lineage_updates,
            rate_limits: self
                .client
                .rate_limits()
                .into_iter()
                .map(|(registry, limit)| RegistryRateLimit { registry, limit })
                .collect(),
        })
    }

    async fn list_registry(&self, registry: &str) -> Result<Vec<String>, OciError> {
        let listing = self
            .client
            .list_repositories(registry, self.options.repository_cap)
            .await?;
        if listing.truncated {
            tracing::warn!(
                registry,
                cap = self.options.repository_cap,
                "the registry lists more repositories than the cap; the rest are not synced"
            );
        }
        Ok(listing.items)
    }

    async fn sync_repository(
        &self,
        repository: &RepositoryName,
        run: &RunCache,
    ) -> Result<RepositoryCounts, SyncError> {
        let invalid = |message: String| SyncError::Invalid {
            repository: repository.to_string(),
            message,
        };
        let latest = Tag::parse("latest").expect("a valid tag");
        let image = ImageRef::from_parts(
            repository.registry(),
            repository.repository(),
            Reference::Tag(latest),
        )
        .map_err(|error| invalid(error.to_string()))?;
        let listing = match self.client.list_tags(&image, self.options.tag_cap).await {
            Ok(listing) => listing,
            Err(OciError::NotFound { .. }) => {
                return Err(SyncError::NoTagList {
                    repository: repository.to_string(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let mut counts = RepositoryCounts {
            truncated: listing.truncated,
            ..RepositoryCounts::default()
        };
        let mut tags = Vec::new();
        for name in &listing.items {
            match Tag::parse(name) {
                Ok(tag) => tags.push(tag),
                Err(error) => counts
                    .warnings
                    .push(format!("tag {name:?} skipped: {error}")),
            }
        }
        let stored = self.store.tag_digests(repository).await?;
        let stored_tags: HashSet<&str> = stored.iter().map(|(tag, _)| tag.as_str()).collect();

        // A tag the store knows costs one HEAD (unchanged, it costs nothing more); a tag it has
        // never seen costs one GET, which is its resolution and its manifest at once. A tag
        // deleted between the listing and its request is simply not there; any other failure
        // fails the repository, so no tag is marked gone on partial knowledge.
        let resolved: Vec<(Tag, Result<Resolution, OciError>)> = stream::iter(tags)
            .map(|tag| {
                let reference = image.with_tag(tag.clone());
                let known = stored_tags.contains(tag.as_str());
                let artifact = signatures::artifact_tag(tag.as_str()).is_some();
                async move {
                    let result = if artifact {
                        self.client
                            .resolve(&reference)
                            .await
                            .map(|resolved| Resolution::Artifact(resolved.digest))
                    } else if known {
                        self.client
                            .resolve(&reference)
                            .await
                            .map(|resolved| Resolution::Head(resolved.digest))
                    } else {
                        self.fetch_new_tag(&reference).await
                    };
                    self.progress.tags_resolved.fetch_add(1, Ordering::Relaxed);
                    (tag, result)
                }
            })
            .buffer_unordered(self.options.tag_concurrency.max(1))
            .collect()
            .await;
        let mut snapshot = RepoSnapshot::default();
        let mut prefetched: HashMap<Digest, Manifest> = HashMap::new();
        let mut unreadable: HashMap<Digest, String> = HashMap::new();
        let mut artifacts: Vec<(Tag, Digest)> = Vec::new();
        for (tag, result) in resolved {
            match result {
                Ok(Resolution::Artifact(digest)) => artifacts.push((tag, digest)),
                Ok(Resolution::Head(digest)) => snapshot.tags.push((tag, digest)),
                Ok(Resolution::Fetched(manifest)) => {
                    snapshot.tags.push((tag, manifest.digest.clone()));
                    prefetched.insert(manifest.digest.clone(), *manifest);
                }
                Ok(Resolution::Unreadable { digest, reason }) => {
                    snapshot.tags.push((tag, digest.clone()));
                    unreadable.insert(digest, reason);
                }
                Err(OciError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        snapshot.truncated = listing.truncated;
        if listing.truncated {
            // Tags past the cap were not seen, so they are not gone: they keep what was known.
            let listed: HashSet<&str> = listing.items.iter().map(String::as_str).collect();
            for (tag, digest) in &stored {
                if !listed.contains(tag.as_str()) {
                    snapshot.tags.push((tag.clone(), digest.clone()));
                }
            }
        }
        snapshot.tags.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));

        let digests: Vec<Digest> = snapshot
            .tags
            .iter()
            .map(|(_, digest)| digest.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let known = self.store.known_manifests(&digests).await?;
        let claimed = Mutex::new(HashSet::new());
        let wanted: Vec<(Digest, Option<Manifest>)> = digests
            .iter()
            .filter(|digest| !known.contains(*digest) && !unreadable.contains_key(*digest))
            .map(|digest| (digest.clone(), prefetched.remove(digest)))
            .collect();
        // Trees are fetched concurrently (the client bounds requests per registry); each
        // gathers its own records, merged below in digest order.
        let mut trees: Vec<(Digest, Tree, Result<(), SyncError>)> = stream::iter(wanted)
            .map(|(digest, manifest)| {
                let image = &image;
                let claimed = &claimed;
                async move {
                    let mut tree = Tree::default();
                    let result = self
                        .fetch_tree(image, &digest, None, manifest, &mut tree, claimed, run)
                        .await;
                    (digest, tree, result)
                }
            })
            .buffer_unordered(self.options.tag_concurrency.max(1))
            .collect()
            .await;
        trees.sort_by(|a, b| a.0.cmp(&b.0));
        let mut failures: Vec<(Digest, String)> = unreadable.into_iter().collect();
        for (digest, tree, result) in trees {
            tree.merge_into(&mut snapshot, &mut counts);
            match result {
                Ok(()) => {}
                Err(SyncError::Unreadable { reason, .. }) => failures.push((digest, reason)),
                Err(error) => return Err(error),
            }
        }
        // A manifest berth cannot read (Docker schema 1, an artifact that is no image) is the
        // tag's problem, not the repository's: its tags are left out, warned of.
        failures.sort();
        for (digest, reason) in failures {
            let skipped: Vec<String> = snapshot
                .tags
                .iter()
                .filter(|(_, target)| *target == digest)
                .map(|(tag, _)| tag.as_str().to_string())
                .collect();
            snapshot.tags.retain(|(_, target)| *target != digest);
            counts.warnings.push(format!(
                "tags {} skipped: {digest}: {reason}",
                skipped.join(", ")
            ));
        }
        counts.tags = snapshot.tags.len() as u64;
        let summary = self
            .store
            .record_repository_sync(repository, &snapshot, Utc::now())
            .await?;
        apply_summary(&mut counts, &summary);
        if self.options.read_signatures {
            counts.signatures_read = self.read_signatures(repository, &image, &artifacts).await?;
            // Digests this repository's tags reach for the first time (new or moved tags):
            // what the referrers API is asked about.
            let before: HashMap<&str, &Digest> = stored
                .iter()
                .map(|(tag, digest)| (tag.as_str(), digest))
                .collect();
            let arrived: BTreeSet<&Digest> = snapshot
                .tags
                .iter()
                .filter(|(tag, digest)| before.get(tag.as_str()) != Some(&digest))
                .map(|(_, digest)| digest)
                .collect();
            // Signatures and attestations are often attached after the push (CI signs, then
            // tests and attests), and a referrer has no tag the listing would show: digests
            // tagged within the recheck window are asked again, newest first, within a cap.
            let mut recent = Vec::new();
            if !self.options.referrers_recheck.is_zero()
                && !self.options.trusted_keys.is_empty()
                && self.referrers_api_known(repository) != Some(false)
            {
                let window = chrono::Duration::from_std(self.options.referrers_recheck)
                    .unwrap_or(chrono::Duration::MAX);
                let since = Utc::now()
                    .checked_sub_signed(window)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                recent = self
                    .store
                    .digests_tagged_since(repository, since, REFERRERS_RECHECK_MAX)
                    .await?;
                recent.retain(|digest| !arrived.contains(&digest));
            }
            counts.signatures_read += self
                .ask_referrers(repository, &image, arrived.into_iter().chain(&recent))
                .await?;
        }
        Ok(counts)
    }

    /// Reads the artifact manifests of the repository's cosign and referrers tags (resolved by
    /// HEAD, never recorded as image tags) that are new or moved since last read, checks their layers against the trusted keys and records
    /// them, one transaction per tag. Costs nothing for a repository without such tags.
    async fn read_signatures(
        &self,
        repository: &RepositoryName,
        image: &ImageRef,
        tags: &[(Tag, Digest)],
    ) -> Result<u64, SyncError> {
        let artifacts: Vec<(&Tag, &Digest, Digest)> = tags
            .iter()
            .filter_map(|(tag, manifest)| {
                signatures::artifact_tag(tag.as_str()).map(|(subject, _)| (tag, manifest, subject))
            })
            .collect();
        if artifacts.is_empty() {
            return Ok(0);
        }
        let read = self.store.signature_sources(repository).await?;
        let name = image.name();
        let mut count = 0;
        for (tag, manifest, subject) in artifacts {
            let key = (subject.clone(), tag.as_str().to_string());
            if read.get(&key) == Some(manifest) {
                continue;
            }
            let at = image.with_tag(tag.clone()).with_digest(manifest.clone());
            let Some(layers) = signatures::read_artifact(&self.client, &at).await? else {
                continue;
            };
            let checks: Vec<_> = layers
                .iter()
                .flat_map(|layer| {
                    self.options
                        .trusted_keys
                        .iter()
                        .map(|key| signatures::verify(layer, key, &subject, &name))
                })
                .collect();
            let source = berth_store::signatures::SignatureSource {
                subject,
                repository: repository.clone(),
                found_at: tag.as_str().to_string(),
                manifest: manifest.clone(),
            };
            self.store
                .record_signatures(&source, &layers, &checks, Utc::now())
                .await?;
            count += 1;
        }
        Ok(count)
    }

    /// Whether `repository`'s registry was found this run to have the referrers API.
    fn referrers_api_known(&self, repository: &RepositoryName) -> Option<bool> {
        self.referrers_api
            .lock()
            .expect("referrers lock")
            .get(repository.registry())
            .copied()
    }

    /// Asks the OCI 1.1 referrers API about `digests` (with trusted keys only: it costs a
    /// request per digest) and records what a changed answer lists. A registry that answers
    /// 404 has no such API: it is asked once per run, and its referrers tag schema is read
    /// from the listing instead.
    async fn ask_referrers(
        &self,
        repository: &RepositoryName,
        image: &ImageRef,
        digests: impl Iterator<Item = &Digest>,
    ) -> Result<u64, SyncError> {
        if self.options.trusted_keys.is_empty() {
            return Ok(0);
        }
        let registry = repository.registry().to_string();
        let name = image.name();
        let mut read: Option<HashMap<(Digest, String), Digest>> = None;
        let mut count = 0;
        for digest in digests {
            if self.referrers_api_known(repository) == Some(false) {
                break;
            }
            let Some((answered, layers)) =
                signatures::read_referrers(&self.client, image, digest).await?
            else {
                tracing::debug!(%registry, "no referrers API; the referrers tag schema is read");
                self.referrers_api
                    .lock()
                    .expect("referrers lock")
                    .insert(registry.clone(), false);
                break;
            };
            self.referrers_api
                .lock()
                .expect("referrers lock")
                .insert(registry.clone(), true);
            if layers.is_empty() {
                continue;
            }
            if read.is_none() {
                read = Some(self.store.signature_sources(repository).await?);
            }
            let key = (digest.clone(), REFERRERS_API.to_string());
            if read.as_ref().and_then(|read| read.get(&key)) == Some(&answered) {
                continue;
            }
            let checks: Vec<_> = layers
                .iter()
                .flat_map(|layer| {
                    self.options
                        .trusted_keys
                        .iter()
                        .map(|key| signatures::verify(layer, key, digest, &name))
                })
                .collect();
            let source = berth_store::signatures::SignatureSource {
                subject: digest.clone(),
                repository: repository.clone(),
                found_at: REFERRERS_API.to_string(),
                manifest: answered,
            };
            self.store
                .record_signatures(&source, &layers, &checks, Utc::now())
                .await?;
            count += 1;
        }
        Ok(count)
    }

    /// Checks stored layers against the trusted keys they have not met (a key added to the
    /// policy since they were read), from the store alone.
    async fn recheck_signatures(&self) -> Result<u64, SyncError> {
        let keys = &self.options.trusted_keys;
        let fingerprints: Vec<String> = keys.iter().map(|k| k.fingerprint().to_string()).collect();
        let stored = self
            .store
            .unchecked_signature_layers(&fingerprints, RECHECK_MAX)
            .await?;
        if stored.is_empty() {
            return Ok(0);
        }
        let known = self.store.signature_check_keys(&stored).await?;
        let mut checks = Vec::new();
        for layer in &stored {
            for key in keys {
                let met = (
                    layer.subject.clone(),
                    layer.layer.layer.clone(),
                    key.fingerprint().to_string(),
                );
                if known.contains(&met) {
                    continue;
                }
                let name = layer.repository.to_string();
                checks.push((
                    layer.subject.clone(),
                    signatures::verify(&layer.layer, key, &layer.subject, &name),
                ));
            }
        }
        self.store
            .record_signature_checks(&checks, Utc::now())
            .await?;
        Ok(stored.len() as u64)
    }

    /// Resolves a tag the store has never seen with one GET: the digest (checked against
    /// `Docker-Content-Digest` by the client) and the manifest at once. A manifest berth does
    /// not read gets a HEAD too, for the digest its warning names.
    async fn fetch_new_tag(&self, reference: &ImageRef) -> Result<Resolution, OciError> {
        match self.client.manifest(reference).await {
            Ok(manifest) => Ok(Resolution::Fetched(Box::new(manifest))),
            Err(OciError::UnsupportedMediaType { media_type, .. }) => {
                let digest = self.client.resolve(reference).await?.digest;
                Ok(Resolution::Unreadable {
                    digest,
                    reason: format!("a {media_type} manifest, which berth does not read"),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Fetches a manifest the store does not hold (unless `prefetched` is it) and, for an
    /// index, its runnable children; for an image, its config and (optionally) its layers'
    /// facts. `entry` is the index entry that names the manifest (its size is checked too);
    /// `None` for what a tag points at. `claimed` holds the digests this repository's trees
    /// have taken on, so each is fetched once. On failure `tree` keeps what was fetched.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_tree(
        &self,
        image: &ImageRef,
        digest: &Digest,
        entry: Option<&Descriptor>,
        prefetched: Option<Manifest>,
        tree: &mut Tree,
        claimed: &Mutex<HashSet<Digest>>,
        run: &RunCache,
    ) -> Result<(), SyncError> {
        if !claimed.lock().expect("claimed lock").insert(digest.clone()) {
            return Ok(());
        }
        let fetched_manifest = match (prefetched, entry) {
            (Some(manifest), _) => Ok(manifest),
            (None, None) => {
                self.client
                    .manifest(&image.with_digest_only(digest.clone()))
                    .await
            }
            (None, Some(entry)) => self.client.manifest_of(image, entry).await,
        };
        let unreadable = |reason: String| SyncError::Unreadable {
            digest: digest.clone(),
            reason,
        };
        let manifest = match fetched_manifest {
            Ok(manifest) => manifest,
            Err(OciError::UnsupportedMediaType { media_type, .. }) => {
                return Err(unreadable(format!(
                    "a {media_type} manifest, which berth does not read"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        tree.counts.manifests_fetched += 1;
        match &manifest.kind {
            ManifestKind::Index(index) => {
                if entry.is_some() {
                    return Err(unreadable(
                        "an index inside an index; berth reads one level".to_string(),
                    ));
                }
                let entries: Vec<IndexEntry> = index
                    .manifests
                    .iter()
                    .map(|entry| IndexEntry {
                        child: entry.digest.clone(),
                        media_type: entry.media_type.clone(),
                        platform: entry.platform.as_ref().map(|p| Platform {
                            os: p.os.clone(),
                            architecture: p.architecture.clone(),
                            variant: p.variant.clone(),
                        }),
                        is_attestation: entry.is_attestation(),
                    })
                    .collect();
                tree.manifests.push(ManifestRecord {
                    digest: manifest.digest.clone(),
                    media_type: manifest.media_type.clone(),
                    raw: manifest.bytes.to_vec(),
                    kind: StoredKind::Index(entries),
                });
                let children: Vec<Digest> =
                    index.runnable().map(|entry| entry.digest.clone()).collect();
                let known = self.store.known_manifests(&children).await?;
                for entry in index.runnable() {
                    if !known.contains(&entry.digest) {
                        Box::pin(self.fetch_tree(
                            image,
                            &entry.digest,
                            Some(entry),
                            None,
                            tree,
                            claimed,
                            run,
                        ))
                        .await?;
                    }
                }
            }
            ManifestKind::Image(image_manifest) => {
                let config_type = image_manifest.config.media_type.as_str();
                if !config_type.is_empty() && !IMAGE_CONFIG_TYPES.contains(&config_type) {
                    return Err(unreadable(format!(
                        "an artifact (config {config_type}), not a runnable image"
                    )));
                }
                let config = self
                    .config_facts(image, &image_manifest.config, run, &mut tree.counts)
                    .await?;
                if config.diff_ids.len() != image_manifest.layers.len() {
                    return Err(unreadable(format!(
                        "{} layers but {} diff_ids in its config",
                        image_manifest.layers.len(),
                        config.diff_ids.len()
                    )));
                }
                let layers: Vec<LayerRecord> = image_manifest
                    .layers
                    .iter()
                    .zip(&config.diff_ids)
                    .map(|(layer, diff_id)| LayerRecord {
                        digest: layer.digest.clone(),
                        diff_id: diff_id.clone(),
                        size: layer.size,
                        media_type: layer.media_type.clone(),
                    })
                    .collect();
                let mut record = ImageRecord {
                    digest: manifest.digest.clone(),
                    config_digest: image_manifest.config.digest.clone(),
                    created: config.created,
                    platform: config.platform.clone(),
                    labels: config.labels.clone(),
                    annotations: image_manifest.annotations.clone(),
                    total_size: image_manifest.config.size
                        + image_manifest.layers.iter().map(|l| l.size).sum::<u64>(),
                    os_id: None,
                    os_pretty: None,
                    libc: None,
                    layers,
                };
                if self.options.scan_layers && !image_manifest.layers.is_empty() {
                    self.read_layers(image, &image_manifest.layers, &mut record, tree, run)
                        .await?;
                }
                tree.manifests.push(ManifestRecord {
                    digest: manifest.digest.clone(),
                    media_type: manifest.media_type.clone(),
                    raw: manifest.bytes.to_vec(),
                    kind: StoredKind::Image,
                });
                tree.images.push(record);
                tree.counts.images_added += 1;
            }
        }
        Ok(())
    }

    /// An image config's facts: from this run's cache, else from an image the store holds
    /// with that config, else fetched (once per run, however many manifests share it).
    async fn config_facts(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
        run: &RunCache,
        counts: &mut RepositoryCounts,
    ) -> Result<Arc<ConfigFacts>, SyncError> {
        let cell = run
            .configs
            .lock()
            .expect("config cache lock")
            .entry(descriptor.digest.clone())
            .or_default()
            .clone();
        let mut fetched = false;
        let facts = cell
            .get_or_try_init(|| async {
                if let Some(facts) = self.store.config_facts(&descriptor.digest).await? {
                    return Ok::<_, SyncError>(Arc::new(facts));
                }
                let (_, config) = self.client.config(image, descriptor).await?;
                fetched = true;
                Ok(Arc::new(ConfigFacts {
                    created: config.created.as_deref().and_then(parse_created),
                    platform: Platform {
                        os: config.os,
                        architecture: config.architecture,
                        variant: config.variant,
                    },
                    labels: config.config.labels,
                    diff_ids: config.rootfs.diff_ids,
                }))
            })
            .await?
            .clone();
        if fetched {
            counts.configs_fetched += 1;
        }
        Ok(facts)
    }

    async fn read_layers(
        &self,
        image: &ImageRef,
        layers: &[Descriptor],
        record: &mut ImageRecord,
        tree: &mut Tree,
        run: &RunCache,
    ) -> Result<(), SyncError> {
        // Summaries the store has from earlier syncs join the shared cache first.
        for layer in layers {
            if !self.summaries.contains(&layer.digest)
                && let Some(fact) = self.store.layer_fact(&layer.digest).await?
                && let Ok(summary) = serde_json::from_value::<LayerSummary>(fact)
            {
                self.summaries.insert(summary);
            }
        }
        // Layers still unread are read under their locks (taken in digest order, so two images
        // never wait on each other in a cycle): an image sharing a layer with one being read
        // waits, then finds the summary cached. Each layer is read at most once per run.
        let mut unread: Vec<&Digest> = layers
            .iter()
            .map(|layer| &layer.digest)
            .filter(|digest| !self.summaries.contains(digest))
            .collect();
        unread.sort();
        unread.dedup();
        let mut held = Vec::with_capacity(unread.len());
        for digest in unread {
            let lock = run
                .layer_locks
                .lock()
                .expect("layer lock map")
                .entry(digest.clone())
                .or_default()
                .clone();
            held.push(lock.lock_owned().await);
        }
        let architecture = Architecture::from_platform(
            &record.platform.architecture,
            record.platform.variant.as_deref(),
        );
        let scan = scan_layers(
            &self.client,
            image,
            layers,
            architecture,
            &self.summaries,
            &self.options.layer_limits,
        )
        .await;
        drop(held);
        tree.counts.layers_read += scan.layers_read;
        tree.counts.layers_cached += scan.layers_cached;
        for summary in scan.added {
            let summary_json = serde_json::to_value(&summary).expect("summaries serialize");
            tree.layer_facts.push(LayerFact {
                layer: summary.digest.clone(),
                summary: summary_json,
            });
        }
        match scan.result {
            Ok(found) => {
                record.os_id = found.identity.clone();
                record.os_pretty = found
                    .os_release
                    .as_ref()
                    .and_then(|f| f.os_release.pretty_name.clone());
                record.libc = Some(found.libc);
            }
            // A registry failure mid-layer fails the repository (nothing recorded); a layer
            // that breaks a limit is the image's problem: it is recorded without OS identity.
            Err(berth_layers::LayerError::Read { layer, source }) => {
                return Err(SyncError::Invalid {
                    repository: format!("{}/{}", image.registry(), image.repository()),
                    message: format!("layer {layer}: {source}"),
                });
            }
            Err(error) => tree
                .counts
                .warnings
                .push(format!("image {}: {error}", record.digest)),
        }
        Ok(())
    }
}

/// How one listed tag was resolved.
enum Resolution {
    /// By HEAD (a tag the store knew): the digest only.
    Head(Digest),
    /// By GET (a tag the store had never seen): the verified manifest, digest included.
    Fetched(Box<Manifest>),
    /// By GET, a manifest berth does not read; its digest came from a HEAD.
    Unreadable { digest: Digest, reason: String },
    /// By HEAD, a cosign or referrers tag: not an image, read by the signatures pass.
    Artifact(Digest),
}

/// What one run shares across repositories, so content is fetched at most once per digest:
/// configs (many manifests share one) and a lock per layer being read.
#[derive(Default)]
struct RunCache {
    configs: Mutex<HashMap<Digest, Arc<OnceCell<Arc<ConfigFacts>>>>>,
    layer_locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

/// The records and counts one tag's tree gathered, merged into the repository's snapshot.
#[derive(Default)]
struct Tree {
    manifests: Vec<ManifestRecord>,
    images: Vec<ImageRecord>,
    layer_facts: Vec<LayerFact>,
    counts: RepositoryCounts,
}

impl Tree {
    fn merge_into(self, snapshot: &mut RepoSnapshot, counts: &mut RepositoryCounts) {
        snapshot.manifests.extend(self.manifests);
        snapshot.images.extend(self.images);
        snapshot.layer_facts.extend(self.layer_facts);
        counts.manifests_fetched += self.counts.manifests_fetched;
        counts.images_added += self.counts.images_added;
        counts.configs_fetched += self.counts.configs_fetched;
        counts.layers_read += self.counts.layers_read;
        counts.layers_cached += self.counts.layers_cached;
        counts.warnings.extend(self.counts.warnings);
    }
}

fn parse_created(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn apply_summary(counts: &mut RepositoryCounts, summary: &SyncSummary) {
    counts.tags_added = summary.tags_added;
    counts.tags_moved = summary.tags_moved;
    counts.tags_gone = summary.tags_gone;
    counts.tags_returned = summary.tags_returned;
}

/// Recomputes every image's base from the layer chains (diff_ids) the store holds and records
/// the edges that changed. Returns how many changed.
pub async fn update_lineage(store: &Store) -> Result<u64, StoreError> {
    let chains = store.all_layer_chains().await?;
    let index = LineageIndex::build(
        chains
            .into_iter()
            .map(|chain| (chain.image, chain.diff_ids)),
    );
    let current = store.images(&Default::default()).await?;
    let mut changed = 0;
    for image in current {
        let found = index.base_of(&image.digest);
        if found != image.base {
            store.set_base(&image.digest, found.as_ref()).await?;
            changed += 1;
        }
    }
    Ok(changed)
}
