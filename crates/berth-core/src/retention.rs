//! Retention, decided: the config's `retention` section and `plan(settings, facts, now)` — which
//! manifests of each repository may be deleted and why, and which are kept and by which rule.
//!
//! Keep always wins, and is decided first: a digest on a channel tag or among a channel's
//! recent digests (rollback targets), in use by any usage source, younger than
//! `keep_younger_than`, tagged with a `keep_tags` match, or among the last `keep_last` by first
//! seen is kept; so is the index of a kept platform image and every platform image of a kept
//! index (to a fixed point). Only then are candidates chosen: a digest whose every live tag
//! matches `delete_tags` and has pointed at it for longer than `delete_older_than`, an untagged
//! manifest untagged for longer than `untagged_older_than`, and the children of a candidate
//! index that nothing else keeps. A repository matching no policy is left alone; a repository
//! whose last sync failed or was truncated is planned but `blocked`, and stale usage sources are
//! reported: the caller (berth-retention) refuses to delete on partial knowledge.
//!
//! ```yaml
//! retention:
//!   interval: 24h            # berth serve: plan this often (under the `retention` lease)
//!   apply: false             # berth serve deletes only when true (`berth retention apply` may)
//!   max_deletions: 10        # per run
//!   keep_channel_history: 1  # earlier digests of each channel kept for a rollback
//!   usage:                   # usage sources that must be fresh, and how fresh
//!     admission: {fresh_within: 30d}
//!     cluster: {fresh_within: 1d}
//!   policies:                # the first whose `repositories` matches applies
//!     - repositories: ["registry.example/team/**"]
//!       keep_last: 3
//!       keep_younger_than: 7d
//!       keep_tags: [latest, "v*"]
//!       delete_tags: ["pr-*", "nightly-*"]
//!       delete_older_than: 30d
//!       untagged_older_than: 14d
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use serde::Serialize;

use crate::catalog::read::{Path, Walker};
use crate::catalog::yaml::Node;
use crate::channels::rule::parse_field;
use crate::policy::pattern::{RepositoryPattern, glob_match};
use crate::reference::Digest;

const RETENTION_FIELDS: &[&str] = &[
    "interval",
    "apply",
    "max_deletions",
    "keep_channel_history",
    "usage",
    "policies",
];
const POLICY_FIELDS: &[&str] = &[
    "repositories",
    "keep_last",
    "keep_younger_than",
    "keep_tags",
    "delete_tags",
    "delete_older_than",
    "untagged_older_than",
];
const USAGE_FIELDS: &[&str] = &["fresh_within"];
/// The usage sources, as the store names them.
pub const SOURCES: &[&str] = &["admission", "cluster", "ci", "source"];

/// How often `berth serve` plans unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Deletions per run unless told otherwise: a small number, so a mistake is small.
pub const DEFAULT_MAX_DELETIONS: usize = 10;

/// The `retention` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
    /// Whether `berth serve` deletes (it only plans otherwise).
    pub apply: bool,
    pub max_deletions: usize,
    /// How many earlier digests of each channel stay (rollback targets), besides its current.
    pub keep_channel_history: usize,
    /// Usage sources that must be fresh, by name; empty: every source that ever reported, at
    /// its default freshness ([`default_fresh_within`]).
    pub usage: BTreeMap<String, Duration>,
    pub policies: Vec<Policy>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            interval: DEFAULT_INTERVAL,
            apply: false,
            max_deletions: DEFAULT_MAX_DELETIONS,
            keep_channel_history: 1,
            usage: BTreeMap::new(),
            policies: Vec::new(),
        }
    }
}

/// How fresh a source must be when the config does not say: admissions and CI reports arrive
/// as workloads and pipelines run, cluster imports are expected daily, source scans weekly.
pub fn default_fresh_within(source: &str) -> Duration {
    let days = match source {
        "cluster" => 1,
        "source" => 7,
        _ => 30,
    };
    Duration::from_secs(days * 86_400)
}

/// The rules for the repositories one policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub repositories: Vec<RepositoryPattern>,
    pub keep_last: usize,
    pub keep_younger_than: Duration,
    pub keep_tags: Vec<String>,
    pub delete_tags: Vec<String>,
    /// How long a tag matching `delete_tags` must have pointed at its digest.
    pub delete_older_than: Option<Duration>,
    /// How long a manifest must have been untagged; `None`: untagged manifests stay.
    pub untagged_older_than: Option<Duration>,
}

impl Settings {
    /// The first policy naming `repository` (`host/path`).
    pub fn policy_for(&self, repository: &str) -> Option<(usize, &Policy)> {
        let reference = crate::ImageRef::parse(repository).ok()?;
        self.policies.iter().enumerate().find(|(_, policy)| {
            policy
                .repositories
                .iter()
                .any(|pattern| pattern.matches(&reference))
        })
    }

    /// How fresh `source` must be; `None` when it is not checked.
    pub fn fresh_within(&self, source: &str, reported: bool) -> Option<Duration> {
        if self.usage.is_empty() {
            reported.then(|| default_fresh_within(source))
        } else {
            self.usage.get(source).copied()
        }
    }
}

/// Reads the `retention` section; `None` after reporting its problems.
pub fn read_section(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Settings> {
    let fields = walker.fields(node, path, RETENTION_FIELDS)?;
    let mut settings = Settings::default();
    let mut ok = true;
    for (name, field) in fields.iter() {
        let at = path.field(name);
        let value = field.value;
        match name {
            "interval" => match walker.duration(value, &at) {
                Some(interval) if interval >= Duration::from_secs(60) => {
                    settings.interval = interval
                }
                Some(_) => {
                    walker.error(value.position, &at, "must be at least 1m");
                    ok = false;
                }
                None => ok = false,
            },
            "apply" => match parse_field(walker, value, &at, boolean) {
                Some(apply) => settings.apply = apply,
                None => ok = false,
            },
            "max_deletions" => match parse_field(walker, value, &at, |text| count(text, 1)) {
                Some(max) => settings.max_deletions = max,
                None => ok = false,
            },
            "keep_channel_history" => {
                match parse_field(walker, value, &at, |text| count(text, 0)) {
                    Some(depth) => settings.keep_channel_history = depth,
                    None => ok = false,
                }
            }
            "usage" => {
                let Some(sources) = walker.fields(value, &at, SOURCES) else {
                    ok = false;
                    continue;
                };
                for (source, entry) in sources.iter() {
                    let source_at = at.field(source);
                    let fresh = walker
                        .fields(entry.value, &source_at, USAGE_FIELDS)
                        .and_then(|inner| match inner.get("fresh_within") {
                            Some(found) => {
                                walker.duration(found.value, &source_at.field("fresh_within"))
                            }
                            None => {
                                walker.error(
                                    entry.value.position,
                                    &source_at,
                                    "needs `fresh_within`",
                                );
                                None
                            }
                        });
                    match fresh {
                        Some(fresh) => {
                            settings.usage.insert(source.to_string(), fresh);
                        }
                        None => ok = false,
                    }
                }
            }
            "policies" => {
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    match read_policy(walker, item, &at.index(index)) {
                        Some(policy) => settings.policies.push(policy),
                        None => ok = false,
                    }
                }
            }
            other => unreachable!("field {other} is in RETENTION_FIELDS but not read"),
        }
    }
    ok.then_some(settings)
}

fn read_policy(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Policy> {
    let fields = walker.fields(node, path, POLICY_FIELDS)?;
    let mut policy = Policy {
        repositories: Vec::new(),
        keep_last: 0,
        keep_younger_than: Duration::ZERO,
        keep_tags: Vec::new(),
        delete_tags: Vec::new(),
        delete_older_than: None,
        untagged_older_than: None,
    };
    let mut ok = true;
    for (name, field) in fields.iter() {
        let at = path.field(name);
        let value = field.value;
        match name {
            "repositories" => {
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    match parse_field(walker, item, &at.index(index), RepositoryPattern::parse) {
                        Some(pattern) => policy.repositories.push(pattern),
                        None => ok = false,
                    }
                }
            }
            "keep_last" => match parse_field(walker, value, &at, |text| count(text, 0)) {
                Some(last) => policy.keep_last = last,
                None => ok = false,
            },
            "keep_younger_than" => match walker.duration(value, &at) {
                Some(age) => policy.keep_younger_than = age,
                None => ok = false,
            },
            "keep_tags" | "delete_tags" => {
                let mut globs = Vec::new();
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    match parse_field(walker, item, &at.index(index), tag_glob) {
                        Some(glob) => globs.push(glob),
                        None => ok = false,
                    }
                }
                if name == "keep_tags" {
                    policy.keep_tags = globs;
                } else {
                    policy.delete_tags = globs;
                }
            }
            "delete_older_than" | "untagged_older_than" => match walker.duration(value, &at) {
                Some(age) if name == "delete_older_than" => policy.delete_older_than = Some(age),
                Some(age) => policy.untagged_older_than = Some(age),
                None => ok = false,
            },
            other => unreachable!("field {other} is in POLICY_FIELDS but not read"),
        }
    }
    if policy.repositories.is_empty() && ok {
        walker.error(
            node.position,
            path,
            "needs `repositories`: the repository patterns this policy applies to",
        );
        ok = false;
    }
    if !policy.delete_tags.is_empty() && policy.delete_older_than.is_none() {
        walker.error(
            node.position,
            path,
            "`delete_tags` needs `delete_older_than`: how long a tag must have pointed at its \
             digest before it may go",
        );
        ok = false;
    }
    ok.then_some(policy)
}

fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

fn count(text: &str, at_least: usize) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|count| *count >= at_least)
        .ok_or_else(|| format!("{text:?} is not a whole number of at least {at_least}"))
}

/// A tag glob: tag characters and `*`.
fn tag_glob(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*'));
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a tag pattern (tag characters, `*` for any run of them)"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Facts: what the store knows, as plain values.

/// Everything `plan` reads.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub repositories: Vec<RepositoryFacts>,
    /// Every manifest known, by digest.
    pub manifests: HashMap<Digest, ManifestFacts>,
    /// Digests a channel holds now or held recently, per repository (`host/path`).
    pub pinned: Vec<Pinned>,
    /// Every live use the inventory holds.
    pub uses: Vec<UseFacts>,
    /// Each source scope's last reports.
    pub sources: Vec<SourceFacts>,
}

/// One repository: its sync health, live tags and the manifests it held.
#[derive(Debug, Clone, Default)]
pub struct RepositoryFacts {
    /// `host/path`.
    pub name: String,
    /// Why the store's knowledge of it is partial, if it is: never synced, last sync failed,
    /// listing truncated.
    pub partial: Option<String>,
    pub tags: Vec<TagFacts>,
    /// Manifests once tagged here and tagged no more, with the moment they lost their last tag.
    pub untagged: Vec<(Digest, DateTime<Utc>)>,
    /// Manifests berth deleted here.
    pub deleted: HashSet<Digest>,
}

/// A live tag and since when it has pointed at its digest.
#[derive(Debug, Clone)]
pub struct TagFacts {
    pub tag: String,
    pub digest: Digest,
    pub since: DateTime<Utc>,
}

/// A manifest as the store knows it.
#[derive(Debug, Clone, Default)]
pub struct ManifestFacts {
    pub first_seen: Option<DateTime<Utc>>,
    /// The manifest's own size.
    pub size: u64,
    /// An index's entries (platform images and attestations).
    pub children: Vec<Digest>,
    /// An image's config and layers, by digest, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
}

/// A digest a channel keeps.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub repository: String,
    pub digest: Digest,
    /// `channel` (on the tag now) or `channel-history`.
    pub rule: KeepRule,
    /// The channel (`python3.11:latest`).
    pub channel: String,
}

/// One place that uses an image, from the inventory.
#[derive(Debug, Clone)]
pub struct UseFacts {
    pub source: String,
    pub scope: String,
    /// `namespace/Kind/name[container]`, for messages.
    pub place: String,
    /// `host/path` of the image as written, when it parsed.
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    pub last_seen: DateTime<Utc>,
}

/// When one source scope last reported.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub source: String,
    pub scope: String,
    pub last_report_at: DateTime<Utc>,
    pub last_full_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------
// The plan.

/// Why a digest is kept; the first rule that kept it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepRule {
    Channel,
    ChannelHistory,
    InUse,
    /// A platform image of a kept index.
    ChildOfKept,
    /// The index of a kept platform image.
    IndexOfKept,
    YoungerThan,
    KeepTags,
    KeepLast,
    /// Tagged, and some tag matches no delete pattern (or is not old enough).
    NoDeleteRule,
    /// Untagged, not old enough or not deletable by the policy.
    Untagged,
}

/// Why a digest is a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteRule {
    DeleteTags,
    Untagged,
    /// A platform image or attestation of a deleted index that nothing else keeps.
    ChildOfDeleted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub rule: KeepRule,
    /// What the rule saw: the tag, the channel, the use, the index or child.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub rule: DeleteRule,
    pub detail: String,
    /// Bytes of blobs (and the manifest) only this candidate holds.
    pub bytes: u64,
}

/// One repository's plan.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryPlan {
    pub repository: String,
    /// The index of the policy that applied, in the config's `policies`.
    pub policy: usize,
    /// Why nothing may be deleted here now (the knowledge is partial).
    pub blocked: Option<String>,
    pub delete: Vec<Candidate>,
    pub keep: Vec<Kept>,
}

/// A usage source whose knowledge is too old to decide deletions on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleSource {
    pub source: String,
    /// The scope (cluster, repository checkout); `None` when the source never reported.
    pub scope: Option<String>,
    pub last_report_at: Option<DateTime<Utc>>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub at: DateTime<Utc>,
    pub repositories: Vec<RepositoryPlan>,
    pub stale_sources: Vec<StaleSource>,
    /// Candidates in all repositories.
    pub candidates: usize,
    /// Blob and manifest bytes the registry's garbage collection could free after the
    /// candidates go (blobs no manifest that stays refers to).
    pub bytes: u64,
}

fn older_than(since: DateTime<Utc>, age: Duration, now: DateTime<Utc>) -> bool {
    TimeDelta::from_std(age).is_ok_and(|age| since + age <= now)
}

/// Whether a source's full reports withdraw what they lack (cluster imports, source scans).
fn reports_in_full(source: &str) -> bool {
    matches!(source, "cluster" | "source")
}

/// The stale sources at `now`: an enabled source that never reported, or a scope whose last
/// report (full report, for cluster imports and source scans) is older than allowed.
pub fn stale_sources(settings: &Settings, facts: &Facts, now: DateTime<Utc>) -> Vec<StaleSource> {
    let mut stale = Vec::new();
    for source in SOURCES {
        let scopes: Vec<&SourceFacts> = facts
            .sources
            .iter()
            .filter(|scope| scope.source == *source)
            .collect();
        let Some(fresh_within) = settings.fresh_within(source, !scopes.is_empty()) else {
            continue;
        };
        if scopes.is_empty() {
            stale.push(StaleSource {
                source: source.to_string(),
                scope: None,
                last_report_at: None,
                reason: "never reported".to_string(),
            });
        }
        let needs_full = reports_in_full(source);
        for scope in scopes {
            let last = if needs_full {
                scope.last_full_at
            } else {
                Some(scope.last_report_at)
            };
            let reason = match last {
                None => Some("never reported in full".to_string()),
                Some(last) if older_than(last, fresh_within, now) => Some(format!(
                    "last {}report at {} is older than {}",
                    if needs_full { "full " } else { "" },
                    last.to_rfc3339(),
                    crate::duration::display(fresh_within)
                )),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                stale.push(StaleSource {
                    source: source.to_string(),
                    scope: Some(scope.scope.clone()),
                    last_report_at: Some(scope.last_report_at),
                    reason,
                });
            }
        }
    }
    stale
}

/// The plan at `now`. Deterministic: the same facts give the same plan.
pub fn plan(settings: &Settings, facts: &Facts, now: DateTime<Utc>) -> Plan {
    let stale = stale_sources(settings, facts, now);
    let stale_scopes: HashSet<(&str, &str)> = stale
        .iter()
        .filter_map(|s| Some((s.source.as_str(), s.scope.as_deref()?)))
        .collect();

    // A cluster import or source scan in full marks what it lacks gone, so each of their live
    // uses counts (the scope's own freshness is the guard). Admissions and CI reports are
    // never withdrawn: theirs count while seen within the source's freshness, or while the
    // scope is stale (then berth cannot tell). Uses by tag keep what the tag points at.
    let mut used_digests: HashMap<&Digest, &UseFacts> = HashMap::new();
    let mut used_tags: HashMap<(&str, &str), &UseFacts> = HashMap::new();
    for use_ in &facts.uses {
        let fresh = reports_in_full(&use_.source)
            || settings
                .fresh_within(&use_.source, true)
                .is_none_or(|fresh| !older_than(use_.last_seen, fresh, now));
        if !fresh && !stale_scopes.contains(&(use_.source.as_str(), use_.scope.as_str())) {
            continue;
        }
        if let Some(digest) = &use_.digest {
            used_digests.entry(digest).or_insert(use_);
        }
        if let (Some(repository), Some(tag)) = (&use_.repository, &use_.tag) {
            used_tags
                .entry((repository.as_str(), tag.as_str()))
                .or_insert(use_);
        }
    }

    let mut plans = Vec::new();
    let mut deleting: HashSet<(&str, &Digest)> = HashSet::new();
    for repository in &facts.repositories {
        let Some((index, policy)) = settings.policy_for(&repository.name) else {
            continue;
        };
        let plan = plan_repository(
            repository,
            index,
            policy,
            facts,
            &used_digests,
            &used_tags,
            now,
        );
        for candidate in &plan.delete {
            // Keys borrow from the facts, so the plans stay free to take their bytes.
            if let Some((digest, _)) = facts.manifests.get_key_value(&candidate.digest) {
                deleting.insert((repository.name.as_str(), digest));
            }
        }
        plans.push(plan);
    }

    let bytes = attribute_bytes(facts, &deleting, &mut plans);
    let candidates = plans.iter().map(|plan| plan.delete.len()).sum();
    Plan {
        at: now,
        repositories: plans,
        stale_sources: stale,
        candidates,
        bytes,
    }
}

fn plan_repository(
    repository: &RepositoryFacts,
    policy_index: usize,
    policy: &Policy,
    facts: &Facts,
    used_digests: &HashMap<&Digest, &UseFacts>,
    used_tags: &HashMap<(&str, &str), &UseFacts>,
    now: DateTime<Utc>,
) -> RepositoryPlan {
    let name = repository.name.as_str();
    // Top-level manifests: tagged now, or once tagged and not deleted.
    let mut tags_of: HashMap<&Digest, Vec<&TagFacts>> = HashMap::new();
    for tag in &repository.tags {
        tags_of.entry(&tag.digest).or_default().push(tag);
    }
    let mut untagged_since: HashMap<&Digest, DateTime<Utc>> = HashMap::new();
    for (digest, since) in &repository.untagged {
        if !tags_of.contains_key(digest) && !repository.deleted.contains(digest) {
            let entry = untagged_since.entry(digest).or_insert(*since);
            *entry = (*entry).max(*since);
        }
    }
    let top: BTreeSet<&Digest> = tags_of
        .keys()
        .copied()
        .chain(untagged_since.keys().copied())
        .collect();
    let children_of = |digest: &Digest| -> &[Digest] {
        facts
            .manifests
            .get(digest)
            .map_or(&[][..], |manifest| manifest.children.as_slice())
    };
    // Every manifest this repository holds: the top level and their children.
    let mut parents: BTreeMap<&Digest, Vec<&Digest>> = BTreeMap::new();
    for digest in &top {
        for child in children_of(digest) {
            parents.entry(child).or_default().push(digest);
        }
    }
    // Children of an index berth deleted, still here: orphans.
    let mut orphans: BTreeMap<&Digest, &Digest> = BTreeMap::new();
    let mut deleted: Vec<&Digest> = repository.deleted.iter().collect();
    deleted.sort();
    for deleted in deleted {
        for child in children_of(deleted) {
            if !top.contains(child) && !repository.deleted.contains(child) {
                orphans.entry(child).or_insert(deleted);
            }
        }
    }

    let mut kept: HashMap<&Digest, (KeepRule, String)> = HashMap::new();

    for pinned in facts
        .pinned
        .iter()
        .filter(|pinned| pinned.repository == name)
    {
        if let Some(digest) = top.get(&pinned.digest).copied() {
            kept.entry(digest)
                .or_insert((pinned.rule, pinned.channel.clone()));
        } else if let Some((digest, _)) = parents.get_key_value(&pinned.digest) {
            kept.entry(*digest)
                .or_insert((pinned.rule, pinned.channel.clone()));
        }
    }
    for digest in top.iter().copied().chain(parents.keys().copied()) {
        if let Some(use_) = used_digests.get(digest) {
            kept.entry(digest)
                .or_insert((KeepRule::InUse, use_detail(use_)));
        }
    }
    for tag in &repository.tags {
        if let Some(use_) = used_tags.get(&(name, tag.tag.as_str())) {
            kept.entry(&tag.digest)
                .or_insert((KeepRule::InUse, use_detail(use_)));
        }
    }
    let young = |digest: &Digest| {
        facts
            .manifests
            .get(digest)
            .and_then(|manifest| manifest.first_seen)
            .is_none_or(|first| !older_than(first, policy.keep_younger_than, now))
    };
    for digest in &top {
        if !policy.keep_younger_than.is_zero() && young(digest) {
            kept.entry(digest)
                .or_insert((KeepRule::YoungerThan, first_seen_detail(facts, digest)));
        }
    }
    for tag in &repository.tags {
        if let Some(glob) = policy
            .keep_tags
            .iter()
            .find(|glob| glob_match(glob, &tag.tag))
        {
            kept.entry(&tag.digest)
                .or_insert((KeepRule::KeepTags, format!("{} matches {glob:?}", tag.tag)));
        }
    }
    if policy.keep_last > 0 {
        let mut newest: Vec<&Digest> = top.iter().copied().collect();
        newest.sort_by_cached_key(|digest| {
            std::cmp::Reverse(
                facts
                    .manifests
                    .get(*digest)
                    .and_then(|manifest| manifest.first_seen),
            )
        });
        for (rank, digest) in newest.into_iter().take(policy.keep_last).enumerate() {
            kept.entry(digest).or_insert((
                KeepRule::KeepLast,
                format!("{} of the last {}", rank + 1, policy.keep_last),
            ));
        }
    }
    // Indexes and their platform images keep one another, to a fixed point: a walk from every
    // kept digest (in digest order, so the reported detail is always the same).
    let mut queue: Vec<&Digest> = kept.keys().copied().collect();
    queue.sort();
    let mut queue: VecDeque<&Digest> = queue.into();
    while let Some(digest) = queue.pop_front() {
        for child in children_of(digest) {
            if let Some(child) = top
                .get(child)
                .copied()
                .or_else(|| parents.get_key_value(child).map(|(child, _)| *child))
                && !kept.contains_key(child)
            {
                kept.insert(child, (KeepRule::ChildOfKept, format!("in index {digest}")));
                queue.push_back(child);
            }
        }
        for parent in parents.get(digest).into_iter().flatten() {
            if !kept.contains_key(*parent) {
                kept.insert(parent, (KeepRule::IndexOfKept, format!("holds {digest}")));
                queue.push_back(parent);
            }
        }
    }

    // Candidates among what is not kept.
    let mut delete: Vec<Candidate> = Vec::new();
    let mut chosen: HashSet<&Digest> = HashSet::new();
    let mut rest: Vec<Kept> = Vec::new();
    for digest in &top {
        let tag_names = |digest: &Digest| -> Vec<String> {
            tags_of
                .get(digest)
                .map(|tags| tags.iter().map(|tag| tag.tag.clone()).collect())
                .unwrap_or_default()
        };
        if let Some((rule, detail)) = kept.get(digest) {
            rest.push(Kept {
                digest: (*digest).clone(),
                tags: tag_names(digest),
                rule: *rule,
                detail: detail.clone(),
            });
            continue;
        }
        let decision = match tags_of.get(digest) {
            Some(tags) => deletable_tags(policy, tags, now),
            None => match (policy.untagged_older_than, untagged_since.get(digest)) {
                (Some(age), Some(since)) if older_than(*since, age, now) => Ok((
                    DeleteRule::Untagged,
                    format!("untagged since {}", since.to_rfc3339()),
                )),
                (_, since) => Err((
                    KeepRule::Untagged,
                    match since {
                        Some(since) => format!("untagged since {}", since.to_rfc3339()),
                        None => "untagged".to_string(),
                    },
                )),
            },
        };
        match decision {
            Ok((rule, detail)) => {
                chosen.insert(digest);
                delete.push(Candidate {
                    digest: (*digest).clone(),
                    tags: tag_names(digest),
                    rule,
                    detail,
                    bytes: 0,
                });
            }
            Err((rule, detail)) => rest.push(Kept {
                digest: (*digest).clone(),
                tags: tag_names(digest),
                rule,
                detail,
            }),
        }
    }
    // Children: kept with a kept index, candidates when every index holding them goes.
    for (child, holders) in &parents {
        if top.contains(child) {
            continue;
        }
        if let Some((rule, detail)) = kept.get(child) {
            rest.push(Kept {
                digest: (*child).clone(),
                tags: Vec::new(),
                rule: *rule,
                detail: detail.clone(),
            });
        } else if holders.iter().all(|holder| chosen.contains(holder)) {
            delete.push(Candidate {
                digest: (*child).clone(),
                tags: Vec::new(),
                rule: DeleteRule::ChildOfDeleted,
                detail: format!("in index {}", holders[0]),
                bytes: 0,
            });
        }
    }
    for (child, index) in orphans {
        if parents.contains_key(child) {
            continue;
        }
        match kept.get(child) {
            Some(_) => {}
            None if used_digests.contains_key(child) => rest.push(Kept {
                digest: child.clone(),
                tags: Vec::new(),
                rule: KeepRule::InUse,
                detail: use_detail(used_digests[child]),
            }),
            None => delete.push(Candidate {
                digest: child.clone(),
                tags: Vec::new(),
                rule: DeleteRule::ChildOfDeleted,
                detail: format!("in deleted index {index}"),
                bytes: 0,
            }),
        }
    }
    // Indexes first, then their children: a run cut short leaves orphans the next run finds.
    delete.sort_by_key(|candidate| candidate.rule == DeleteRule::ChildOfDeleted);
    RepositoryPlan {
        repository: repository.name.clone(),
        policy: policy_index,
        blocked: repository.partial.clone(),
        delete,
        keep: rest,
    }
}

/// `Ok` when every tag of a digest matches a delete pattern and is old enough.
fn deletable_tags(
    policy: &Policy,
    tags: &[&TagFacts],
    now: DateTime<Utc>,
) -> Result<(DeleteRule, String), (KeepRule, String)> {
    let Some(age) = policy.delete_older_than else {
        return Err((KeepRule::NoDeleteRule, "no delete_tags".to_string()));
    };
    let mut matched = Vec::new();
    for tag in tags {
        let Some(glob) = policy
            .delete_tags
            .iter()
            .find(|glob| glob_match(glob, &tag.tag))
        else {
            return Err((
                KeepRule::NoDeleteRule,
                format!("{} matches no delete pattern", tag.tag),
            ));
        };
        if !older_than(tag.since, age, now) {
            return Err((
                KeepRule::NoDeleteRule,
                format!(
                    "{} has pointed here only since {}",
                    tag.tag,
                    tag.since.to_rfc3339()
                ),
            ));
        }
        matched.push(format!("{} matches {glob:?}", tag.tag));
    }
    Ok((DeleteRule::DeleteTags, matched.join(", ")))
}

fn use_detail(use_: &UseFacts) -> String {
    format!("{} {} {}", use_.source, use_.scope, use_.place)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_seen_detail(facts: &Facts, digest: &Digest) -> String {
    match facts.manifests.get(digest).and_then(|m| m.first_seen) {
        Some(first) => format!("first seen {}", first.to_rfc3339()),
        None => "first seen unknown".to_string(),
    }
}

/// Sets each candidate's unique bytes and returns the total freed: a blob is freed when every
/// (repository, manifest) holding it is a candidate; the total counts blobs shared only among
/// candidates once, a candidate's own figure only the blobs no other holder has.
fn attribute_bytes(
    facts: &Facts,
    deleting: &HashSet<(&str, &Digest)>,
    plans: &mut [RepositoryPlan],
) -> u64 {
    // Holders per blob: (repository, manifest) pairs, and how many of them stay.
    // Blob → (holders, holders that stay, size).
    let mut holders: HashMap<&Digest, (u32, u32, u64)> = HashMap::new();
    let mut count = |repository: &str, manifest: &Digest, deleting: &HashSet<(&str, &Digest)>| {
        let goes = deleting.contains(&(repository, manifest));
        if let Some(facts) = facts.manifests.get(manifest) {
            for (blob, size) in &facts.blobs {
                let entry = holders.entry(blob).or_insert((0, 0, *size));
                entry.0 += 1;
                if !goes {
                    entry.1 += 1;
                }
            }
        }
    };
    for repository in &facts.repositories {
        let mut seen: HashSet<&Digest> = HashSet::new();
        let top = repository
            .tags
            .iter()
            .map(|tag| &tag.digest)
            .chain(repository.untagged.iter().map(|(digest, _)| digest))
            .filter(|digest| !repository.deleted.contains(*digest));
        for digest in top {
            if !seen.insert(digest) {
                continue;
            }
            count(&repository.name, digest, deleting);
            if let Some(manifest) = facts.manifests.get(digest) {
                for child in &manifest.children {
                    if seen.insert(child) {
                        count(&repository.name, child, deleting);
                    }
                }
            }
        }
    }
    let total_blobs: u64 = holders
        .values()
        .filter(|(_, staying, _)| *staying == 0)
        .map(|(_, _, size)| size)
        .sum();
    let mut total_manifests = 0;
    for plan in plans.iter_mut() {
        for candidate in &mut plan.delete {
            let Some(manifest) = facts.manifests.get(&candidate.digest) else {
                continue;
            };
            let unique: u64 = manifest
                .blobs
                .iter()
                .filter(|(blob, _)| holders.get(blob).is_some_and(|(all, _, _)| *all == 1))
                .map(|(_, size)| *size)
                .sum();
            candidate.bytes = unique + manifest.size;
            total_manifests += manifest.size;
        }
    }
    total_blobs + total_manifests
}

#[cfg(test)]
mod tests;
