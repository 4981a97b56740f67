//! Carries out retention decisions (berth-core's `retention`) over berth-store and berth-oci:
//! `gather` reads what the store knows and adds the catalog's channels (each channel tag's
//! digest and its recent history, so a rollback target stays); `apply` plans, refuses on stale
//! usage sources unless told otherwise, and then, candidate by candidate and at most
//! `max_deletions` in all, re-checks against the registry and the store (the manifest still
//! there, each tag still at that digest, no channel tag on it now, no use of it now), writes
//! the deletion to the audit log, sends the DELETE (by digest: the registry drops the tags with
//! it), and records the deletion in the store.
//!
//! A run cut short anywhere leaves nothing inconsistent: before the audit entry nothing
//! happened; between the audit entry and the DELETE the next run decides again; between the
//! DELETE and its record the next run finds the manifest gone (404) and records it then.
//!
//! The caller holds the `retention` lease and passes a fenced store (berth-server's task, or
//! `berth retention apply`), so two replicas never delete in the same run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_core::catalog::Catalog;
use berth_core::retention::{self, Candidate, Facts, KeepRule, Pinned, Plan, Settings};
use berth_core::{Digest, ImageRef};
use berth_oci::{Client, OciError};
use berth_store::{AuditEntry, RepositoryName, Store, StoreError, UsageQuery};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The lease (and `task_runs` task) retention runs under.
pub const LEASE: &str = "retention";
/// The audit log's action for a deletion, written before the DELETE is sent.
pub const AUDIT_ACTION: &str = "retention.delete";
/// How much channel history is read per catalog entry to find recent channel digests.
const HISTORY_PER_ENTRY: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision's blocking thread failed (a panic).
    #[error("the retention decision failed: {0}")]
    Decision(String),
}

/// What the store knows, with the catalog's channels as pins.
pub async fn gather(
    store: &Store,
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Facts, RetentionError> {
    let mut facts = store.retention_facts().await?;
    let live: HashMap<(&str, &str), &Digest> = facts
        .repositories
        .iter()
        .flat_map(|repository| {
            repository
                .tags
                .iter()
                .map(move |tag| ((repository.name.as_str(), tag.tag.as_str()), &tag.digest))
        })
        .collect();
    let mut pinned = Vec::new();
    for entry in catalog.entries() {
        let repositories: BTreeMap<Option<&str>, String> = entry
            .images()
            .map(|(variant, image)| (variant, image.canonical()))
            .collect();
        for repository in repositories.values() {
            for channel in &entry.channels {
                if let Some(digest) = live.get(&(repository.as_str(), channel.as_str())) {
                    pinned.push(Pinned {
                        repository: repository.clone(),
                        digest: (*digest).clone(),
                        rule: KeepRule::Channel,
                        channel: format!("{}:{}", entry.name, channel.as_str()),
                    });
                }
            }
        }
        if settings.keep_channel_history == 0 {
            continue;
        }
        // Newest first: each (variant, channel)'s earlier digests, up to the depth.
        let history = store
            .channel_history(Some(&entry.name), HISTORY_PER_ENTRY)
            .await?;
        let mut seen: BTreeMap<(Option<String>, String), BTreeSet<Digest>> = BTreeMap::new();
        for logged in history {
            let change = logged.entry;
            let Some(repository) = repositories.get(&change.variant.as_deref()) else {
                continue;
            };
            let key = (change.variant.clone(), change.channel.clone());
            let digests = seen.entry(key).or_default();
            // The current digest plus `keep_channel_history` earlier ones.
            for digest in [Some(change.digest), change.previous].into_iter().flatten() {
                if digests.len() > settings.keep_channel_history {
                    break;
                }
                if digests.insert(digest.clone()) {
                    pinned.push(Pinned {
                        repository: repository.clone(),
                        digest,
                        rule: KeepRule::ChannelHistory,
                        channel: format!("{}:{}", entry.name, change.channel),
                    });
                }
            }
        }
    }
    facts.pinned = pinned;
    Ok(facts)
}

/// The plan at `now`, decided off the async threads (it is CPU work over the whole store).
pub async fn plan(
    store: &Store,
    catalog: &Catalog,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Plan, RetentionError> {
    let facts = gather(store, catalog, settings).await?;
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || retention::plan(&settings, &facts, now))
        .await
        .map_err(|error| RetentionError::Decision(error.to_string()))
}

/// How `apply` may proceed.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Sources (`cluster`) or source scopes (`cluster/prod`) whose staleness is accepted.
    pub force_stale_usage: Vec<String>,
    /// At most this many deletions (the settings' `max_deletions` unless lower).
    pub max_deletions: usize,
    /// Who the audit log names.
    pub actor: String,
}

/// What happened to one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    /// `deleted`, `already-gone` (the registry no longer had it: recorded now), `skipped`
    /// (a re-check found it changed or in use), `failed`.
    pub outcome: &'static str,
    pub detail: String,
}

/// One apply run.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub plan: Plan,
    /// Why nothing was deleted at all (stale usage sources), if so.
    pub refused: Option<String>,
    pub done: Vec<Done>,
    pub deleted: usize,
    /// Repositories skipped because their knowledge is partial.
    pub blocked: Vec<String>,
    /// Candidates left for a later run (the deletion limit was reached).
    pub deferred: usize,
}

impl Applied {
    pub fn failed(&self) -> usize {
        self.done
            .iter()
            .filter(|done| done.outcome == "failed")
            .count()
    }
}

fn forced(options: &ApplyOptions, source: &str, scope: Option<&str>) -> bool {
    options.force_stale_usage.iter().any(|named| {
        named == source || scope.is_some_and(|scope| *named == format!("{source}/{scope}"))
    })
}

/// Plans and deletes, within the guards. `now` is read at each step (audit and record times
/// are when they happen).
pub async fn apply(
    store: &Store,
    client: &Client,
    catalog: &Catalog,
    settings: &Settings,
    options: &ApplyOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Applied, RetentionError> {
    let plan = plan(store, catalog, settings, now()).await?;
    let unforced: Vec<String> = plan
        .stale_sources
        .iter()
        .filter(|stale| !forced(options, &stale.source, stale.scope.as_deref()))
        .map(|stale| match &stale.scope {
            Some(scope) => format!("{}/{scope}: {}", stale.source, stale.reason),
            None => format!("{}: {}", stale.source, stale.reason),
        })
        .collect();
    let mut applied = Applied {
        refused: None,
        done: Vec::new(),
        deleted: 0,
        blocked: Vec::new(),
        deferred: 0,
        plan,
    };
    if !unforced.is_empty() {
        applied.refused = Some(format!(
            "usage knowledge is stale, so nothing is deleted ({}); bring the sources up to \
             date, or name them with --force-stale-usage",
            unforced.join("; ")
        ));
        return Ok(applied);
    }
    let limit = options.max_deletions.min(settings.max_deletions);
    let channel_tags = channel_tags(catalog);
    let mut attempts = 0;
    let repositories = applied.plan.repositories.clone();
    for repository in &repositories {
        if repository.delete.is_empty() {
            continue;
        }
        if let Some(reason) = &repository.blocked {
            applied
                .blocked
                .push(format!("{}: {reason}", repository.repository));
            continue;
        }
        let Ok(name) = RepositoryName::parse(&repository.repository) else {
            continue;
        };
        // Channel tags now, from the registry: a promotion since the plan must not lose.
        let mut on_channel: BTreeSet<Digest> = BTreeSet::new();
        let mut channel_failure = None;
        for tag in channel_tags
            .get(&repository.repository)
            .into_iter()
            .flatten()
        {
            let Ok(reference) = ImageRef::parse(&format!("{}:{tag}", repository.repository)) else {
                continue;
            };
            match client.resolve(&reference).await {
                Ok(resolved) => {
                    on_channel.insert(resolved.digest);
                }
                Err(OciError::NotFound { .. }) => {}
                Err(error) => channel_failure = Some(format!("channel tag {tag}: {error}")),
            }
        }
        for candidate in &repository.delete {
            if attempts >= limit {
                applied.deferred += 1;
                continue;
            }
            if let Some(failure) = &channel_failure {
                applied.done.push(done(
                    &repository.repository,
                    candidate,
                    "skipped",
                    format!("could not re-check the channels: {failure}"),
                ));
                continue;
            }
            attempts += 1;
            let result =
                delete_one(store, client, &name, candidate, &on_channel, options, &now).await?;
            if result.outcome == "deleted" {
                applied.deleted += 1;
            }
            let failed = result.outcome == "failed";
            applied.done.push(result);
            if failed {
                // The registry refuses (deletes disabled, no permission): stop here, leave
                // the rest of this repository for a later run.
                break;
            }
        }
    }
    Ok(applied)
}

fn done(repository: &str, candidate: &Candidate, outcome: &'static str, detail: String) -> Done {
    Done {
        repository: repository.to_string(),
        digest: candidate.digest.clone(),
        tags: candidate.tags.clone(),
        outcome,
        detail,
    }
}

/// Channel tags by repository (`host/path`), from the catalog.
fn channel_tags(catalog: &Catalog) -> HashMap<String, BTreeSet<String>> {
    let mut tags: HashMap<String, BTreeSet<String>> = HashMap::new();
    for entry in catalog.entries() {
        for (_, image) in entry.images() {
            let set = tags.entry(image.canonical()).or_default();
            set.extend(entry.channels.iter().map(|tag| tag.as_str().to_string()));
        }
    }
    tags
}

async fn delete_one(
    store: &Store,
    client: &Client,
    repository: &RepositoryName,
    candidate: &Candidate,
    on_channel: &BTreeSet<Digest>,
    options: &ApplyOptions,
    now: &impl Fn() -> DateTime<Utc>,
) -> Result<Done, RetentionError> {
    let name = repository.to_string();
    let by_digest = match ImageRef::parse(&format!("{name}@{}", candidate.digest)) {
        Ok(reference) => reference,
        Err(error) => {
            return Ok(done(&name, candidate, "failed", error.to_string()));
        }
    };
    if on_channel.contains(&candidate.digest) {
        return Ok(done(&name, candidate, "skipped", "on a channel now".into()));
    }
    // In use now, by the digest or (an index) by one of its platform images.
    let mut digests = vec![candidate.digest.clone()];
    if let Some(manifest) = store.manifest(&candidate.digest).await?
        && let berth_store::ManifestKind::Index(entries) = &manifest.kind
    {
        digests.extend(entries.iter().map(|entry| entry.child.clone()));
    }
    let uses = store
        .usage(&UsageQuery {
            digests,
            limit: Some(1),
            ..UsageQuery::default()
        })
        .await?;
    if let Some(use_) = uses.first() {
        let detail = format!(
            "in use now: {} {} {}/{}/{}",
            use_.source, use_.scope, use_.usage.namespace, use_.usage.kind, use_.usage.name
        );
        return Ok(done(&name, candidate, "skipped", detail));
    }
    // Still there, and each tag still at this digest.
    match client.resolve(&by_digest).await {
        Ok(_) => {}
        Err(OciError::NotFound { .. }) => {
            store
                .record_manifest_deleted(repository, &candidate.digest, &options.actor, now())
                .await?;
            return Ok(done(
                &name,
                candidate,
                "already-gone",
                "the registry no longer has it; recorded".into(),
            ));
        }
        Err(error) => return Ok(done(&name, candidate, "failed", error.to_string())),
    }
    for tag in &candidate.tags {
        let Ok(reference) = ImageRef::parse(&format!("{name}:{tag}")) else {
            continue;
        };
        match client.resolve(&reference).await {
            Ok(resolved) if resolved.digest == candidate.digest => {}
            Ok(resolved) => {
                let detail = format!("tag {tag} moved to {} since the plan", resolved.digest);
                return Ok(done(&name, candidate, "skipped", detail));
            }
            // Deleted by someone else meanwhile: the digest stays a candidate.
            Err(OciError::NotFound { .. }) => {}
            Err(error) => return Ok(done(&name, candidate, "failed", error.to_string())),
        }
    }
    store
        .append_audit(&AuditEntry {
            at: now(),
            actor: options.actor.clone(),
            action: AUDIT_ACTION.to_string(),
            subject: format!("{name}@{}", candidate.digest),
            before: Some(serde_json::json!({
                "tags": candidate.tags,
                "rule": candidate.rule,
                "detail": candidate.detail,
                "bytes": candidate.bytes,
            })),
            after: None,
        })
        .await?;
    match client.delete_manifest(&by_digest, &candidate.digest).await {
        Ok(()) | Err(OciError::NotFound { .. }) => {}
        Err(error) => return Ok(done(&name, candidate, "failed", error.to_string())),
    }
    store
        .record_manifest_deleted(repository, &candidate.digest, &options.actor, now())
        .await?;
    tracing::info!(repository = %name, digest = %candidate.digest, "retention deleted a manifest");
    Ok(done(&name, candidate, "deleted", candidate.detail.clone()))
}
