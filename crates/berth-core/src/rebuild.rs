//! Rebuild dispatch, decided: which build target rebuilds each stale image, the `rebuild`
//! section of the config that declares targets and limits, and one pass's decision — what to
//! send now, what to hold and why, which open rebuilds closed (on the new base, or
//! `rebuilt-on-old-base`), which timed out — from the plan, what the store recorded of earlier
//! dispatches, and `now`.
//!
//! Pure: the caller (berth-rebuild) reads the ledger from the store, records every dispatch
//! before it sends it, and passes the clock in. Storm control lives here, in one place:
//! one dispatch per target per pass carrying all its wave-1 images, limits per hour overall
//! and per target, windows, a target with a rebuild in flight held until its images show new
//! digests or the timeout passes, and a target suspended after consecutive failures.
//!
//! ```yaml
//! rebuild:
//!   targets:
//!     - name: images                       # GitHub repository_dispatch
//!       github: {repository: org/images, event_type: berth-rebuild, token_env: GITHUB_TOKEN}
//!     - name: apps                         # GitLab pipeline trigger
//!       gitlab: {project: group/apps, ref: main, token_file: /run/secrets/trigger}
//!     - name: ci                           # a receiver of signed webhooks
//!       webhook: {url: "https://ci.example/hooks/berth", secret_env: BERTH_HOOK_SECRET}
//!   default_target: images                 # catalog entries without `build:`
//!   repositories:                          # images outside the catalog, first match wins
//!     - {pattern: "registry.example/team/**", target: apps}
//!   reasons: [base-moved, too-old]         # which reasons dispatch (default)
//!   per_hour: 10                           # dispatches per hour, all targets together
//!   per_target_per_hour: 2
//!   in_flight_timeout: 6h
//!   suspend_after: 3
//!   time_zone: Europe/Copenhagen
//!   windows: [{days: [mon, tue, wed, thu], from: "08:00", until: "18:00"}]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use foldhash::{HashMap, HashMapExt as _};
use serde::Serialize;

use crate::catalog::read::{Path, Walker};
use crate::catalog::yaml::Node;
use crate::catalog::{Catalog, suggest};
use crate::channels::Window;
use crate::channels::rule::parse_field;
use crate::freshness::{Facts, Plan, PlanItem, Reason, Report, StaleImage};
use crate::policy::RepositoryPattern;
use crate::reference::{Digest, ImageRef};

/// Where a target's token or signing secret comes from. The value is read by the adapter at
/// start; it never appears in a config dump, a log or the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// How a target is triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TargetKind {
    /// `POST {api_url}/repos/{repository}/dispatches` (GitHub's `repository_dispatch`).
    Github {
        /// `owner/repo`.
        repository: String,
        /// ≤ 100 characters, GitHub's limit.
        event_type: String,
        /// `https://api.github.com`, or GitHub Enterprise's `https://HOST/api/v3`.
        api_url: String,
    },
    /// `POST {api_url}/api/v4/projects/{project}/trigger/pipeline` (a pipeline trigger token).
    Gitlab {
        /// The numeric id or the `group/project` path (sent URL-encoded).
        project: String,
        /// The branch or tag the pipeline runs on.
        git_ref: String,
        /// `https://gitlab.com` or the instance's address.
        api_url: String,
    },
    /// A POST of JSON signed as Standard Webhooks sign.
    Webhook { url: String },
}

/// One build target: what rebuilds a set of images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: String,
    #[serde(flatten)]
    pub kind: TargetKind,
    /// The token (GitHub, GitLab) or the signing secret (webhook).
    pub secret: SecretSource,
}

/// Images outside the catalog, by repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryTarget {
    pub pattern: RepositoryPattern,
    pub target: String,
}

/// The `rebuild` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildSettings {
    pub targets: Vec<Target>,
    /// For catalog entries without `build:`.
    pub default_target: Option<String>,
    /// For images outside the catalog: the first pattern matching the image's repository.
    pub repositories: Vec<RepositoryTarget>,
    /// The reasons that dispatch a rebuild. A rebuild alone cannot fix `os-eol` or
    /// `base-retired` (someone must change the Dockerfile), so by default they are reported,
    /// not dispatched: dispatching them would rebuild the same stale image again and again.
    pub reasons: BTreeSet<&'static str>,
    /// Dispatches per rolling hour, all targets together.
    pub per_hour: u32,
    /// Dispatches per rolling hour to one target.
    pub per_target_per_hour: u32,
    /// How long a sent rebuild may take to show new digests before it counts as failed.
    pub in_flight_timeout: Duration,
    /// Consecutive failures (rejected or undeliverable dispatches, timeouts) that suspend a
    /// target until a rebuild of it closes or a person resumes it.
    pub suspend_after: u32,
    /// Delivery attempts of one dispatch (5xx, 429, no connection) before it counts as failed.
    pub attempts: u32,
    /// When dispatches may be sent (empty: any time), read in `time_zone`.
    pub windows: Vec<Window>,
    pub time_zone: Tz,
}

impl Default for RebuildSettings {
    fn default() -> RebuildSettings {
        RebuildSettings {
            targets: Vec::new(),
            default_target: None,
            repositories: Vec::new(),
            reasons: ["base-moved", "too-old"].into_iter().collect(),
            per_hour: 10,
            per_target_per_hour: 2,
            in_flight_timeout: Duration::from_secs(6 * 3600),
            suspend_after: 3,
            attempts: 5,
            windows: Vec::new(),
            time_zone: Tz::UTC,
        }
    }
}

impl RebuildSettings {
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|target| target.name == name)
    }

    /// The target that rebuilds `image`: its catalog entry's `build:`, else the default
    /// target; for an image outside the catalog, the first repository pattern that matches.
    pub fn target_of<'s>(&'s self, catalog: &'s Catalog, image: &StaleImage) -> Option<&'s str> {
        match &image.entry {
            Some(name) => catalog
                .entries()
                .iter()
                .find(|entry| &entry.name == name)
                .and_then(|entry| entry.build.as_deref())
                .or(self.default_target.as_deref()),
            None => self
                .repositories
                .iter()
                .find(|rule| rule.pattern.matches(&image.reference))
                .map(|rule| rule.target.as_str()),
        }
    }

    /// Catalog entries whose `build:` names no declared target, with the closest names.
    pub fn unknown_builds(&self, catalog: &Catalog) -> Vec<String> {
        let names = || self.targets.iter().map(|target| target.name.as_str());
        catalog
            .entries()
            .iter()
            .filter_map(|entry| {
                let build = entry.build.as_deref()?;
                if self.target(build).is_some() {
                    return None;
                }
                let close = suggest::closest(build, names(), suggest::SUGGESTIONS_MAX);
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", close.join(", "))
                };
                Some(format!(
                    "catalog entry {}: build: {build:?} is not a rebuild target{hint}",
                    entry.name
                ))
            })
            .collect()
    }
}

/// An image a dispatch carries, as recorded and as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchItem {
    pub reference: ImageRef,
    pub platform: String,
    /// The stale digest (what should be replaced).
    pub digest: Digest,
    pub reasons: Vec<&'static str>,
    /// For `base-moved`: the old base, to tell a rebuild on the new base from one that
    /// reused a cached old base.
    pub old_base: Option<Digest>,
    /// When it became stale: the base's move, else when the dispatch was decided.
    pub stale_since: DateTime<Utc>,
}

/// What became of an image a dispatch carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemState {
    /// Sent (or about to be); the channel still shows the stale digest.
    InFlight,
    /// The channel shows a new digest that is not stale for what was dispatched.
    Closed,
    /// The channel shows a new digest still built on the old base (a cached base layer):
    /// reported and left open.
    RebuiltOnOldBase,
    /// The tag is gone.
    Gone,
    /// The dispatch timed out with this image still open.
    TimedOut,
    /// The dispatch was rejected or could not be delivered.
    Failed,
}

impl ItemState {
    pub const ALL: [ItemState; 6] = [
        ItemState::InFlight,
        ItemState::Closed,
        ItemState::RebuiltOnOldBase,
        ItemState::Gone,
        ItemState::TimedOut,
        ItemState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::InFlight => "in-flight",
            ItemState::Closed => "closed",
            ItemState::RebuiltOnOldBase => "rebuilt-on-old-base",
            ItemState::Gone => "gone",
            ItemState::TimedOut => "timed-out",
            ItemState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ItemState> {
        ItemState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Whether the image still waits for its rebuild.
    pub fn is_open(self) -> bool {
        matches!(self, ItemState::InFlight | ItemState::RebuiltOnOldBase)
    }
}

/// An open dispatch as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDispatch {
    pub id: i64,
    pub target: String,
    pub created_at: DateTime<Utc>,
    /// When it was delivered; `None` while it is still being delivered.
    pub sent_at: Option<DateTime<Utc>>,
    pub items: Vec<(DispatchItem, ItemState)>,
}

/// What the store recorded that a pass decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Dispatches being delivered or in flight.
    pub open: Vec<OpenDispatch>,
    /// Every dispatch decided in the last hour, by target.
    pub last_hour: Vec<(String, DateTime<Utc>)>,
    /// Suspended targets.
    pub suspended: BTreeSet<String>,
}

/// Why a target (or an image) was not dispatched this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    /// No build target rebuilds it.
    NoTarget,
    /// Its `build:` names a target the config does not declare.
    UnknownTarget,
    /// Only reasons that do not dispatch (`rebuild.reasons`).
    NotDispatched,
    /// A base it is built on is rebuilt first (a later wave).
    WaitingForBase,
    /// The target has a rebuild in flight.
    InFlight,
    /// The target is suspended after consecutive failures.
    Suspended,
    /// Outside every dispatch window.
    OutsideWindow,
    /// The target's hourly limit is reached.
    TargetLimit,
    /// The hourly limit of all targets together is reached.
    HourlyLimit,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::NoTarget => "no-target",
            Hold::UnknownTarget => "unknown-target",
            Hold::NotDispatched => "not-dispatched",
            Hold::WaitingForBase => "waiting-for-base",
            Hold::InFlight => "in-flight",
            Hold::Suspended => "suspended",
            Hold::OutsideWindow => "outside-window",
            Hold::TargetLimit => "target-limit",
            Hold::HourlyLimit => "hourly-limit",
        }
    }
}

/// One dispatch to make: every wave-1 image of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDispatch {
    pub target: String,
    pub wave: u32,
    pub items: Vec<DispatchItem>,
}

impl NewDispatch {
    /// The text the idempotency key is a hash of: the target and each image's digest,
    /// platform and reasons, in order. The same rebuild decided twice has the same content.
    pub fn content(&self) -> String {
        let mut text = self.target.clone();
        for item in &self.items {
            text.push('\n');
            text.push_str(item.digest.as_str());
            text.push(' ');
            text.push_str(&item.platform);
            text.push(' ');
            text.push_str(&item.reasons.join(","));
        }
        text
    }
}

/// Images held back, per target and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub target: Option<String>,
    pub hold: Hold,
    pub images: Vec<ImageRef>,
}

/// An open image whose channel now shows something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub dispatch: i64,
    pub reference: ImageRef,
    pub platform: String,
    pub state: ItemState,
    pub new_digest: Option<Digest>,
    /// For `closed`: from when it became stale until now.
    pub time_to_fresh: Option<Duration>,
}

/// One pass's decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub send: Vec<NewDispatch>,
    pub held: Vec<Held>,
    pub closings: Vec<Closing>,
    /// Open dispatches whose time ran out with images still open.
    pub timed_out: Vec<i64>,
    /// Open dispatches every image of which is now closed or gone.
    pub finished: Vec<i64>,
}

/// Where each live tag points, and each index's platform images: what a channel shows now.
struct Current<'f> {
    tags: HashMap<String, &'f Digest>,
    indexes: HashMap<&'f Digest, &'f [(Digest, String)]>,
}

impl<'f> Current<'f> {
    fn new(facts: &'f Facts) -> Current<'f> {
        let mut tags = HashMap::with_capacity(facts.tags.len());
        for tag in &facts.tags {
            tags.insert(tag.reference.canonical(), &tag.digest);
        }
        let indexes = facts
            .indexes
            .iter()
            .map(|(index, children)| (index, children.as_slice()))
            .collect();
        Current { tags, indexes }
    }

    /// The platform image `reference` shows for `platform` now.
    fn image(&self, reference: &ImageRef, platform: &str) -> Option<&'f Digest> {
        let digest = *self.tags.get(&reference.canonical())?;
        match self.indexes.get(digest) {
            Some(children) => children
                .iter()
                .find(|(_, child_platform)| child_platform == platform)
                .map(|(child, _)| child),
            None => Some(digest),
        }
    }
}

/// What `settings` can dispatch: the stale images with at least one dispatching reason and a
/// declared target (planned among themselves, an image waits only for bases berth will
/// rebuild), and the rest, held with why.
pub fn dispatchable(
    report: &Report,
    catalog: &Catalog,
    settings: &RebuildSettings,
) -> (Report, Vec<Held>) {
    let mut held: BTreeMap<(Option<String>, Hold), Vec<ImageRef>> = BTreeMap::new();
    let mut kept = Vec::new();
    for image in &report.stale {
        let target = settings.target_of(catalog, image);
        let hold = if !image
            .reasons
            .iter()
            .any(|reason| settings.reasons.contains(reason.kind()))
        {
            Some(Hold::NotDispatched)
        } else {
            match target {
                None => Some(Hold::NoTarget),
                Some(name) if settings.target(name).is_none() => Some(Hold::UnknownTarget),
                Some(_) => None,
            }
        };
        match hold {
            Some(hold) => held
                .entry((target.map(str::to_string), hold))
                .or_default()
                .push(image.reference.clone()),
            None => kept.push(image.clone()),
        }
    }
    let held = held
        .into_iter()
        .map(|((target, hold), images)| Held {
            target,
            hold,
            images,
        })
        .collect();
    (
        Report {
            checked: report.checked,
            stale: kept,
        },
        held,
    )
}

/// One pass: closes what landed, times out what took too long, and decides what to send.
/// `plan` is of the [`dispatchable`] report (its items carry their target); `report` is that
/// report (for the evidence), `facts` what the store knows now.
pub fn decide(
    plan: &Plan<'_>,
    report: &Report,
    facts: &Facts,
    ledger: &Ledger,
    settings: &RebuildSettings,
    now: DateTime<Utc>,
) -> Decision {
    let mut decision = Decision::default();
    let current = Current::new(facts);
    let stale: HashMap<(String, &str), &StaleImage> = report
        .stale
        .iter()
        .map(|image| {
            (
                (image.reference.canonical(), image.platform.as_str()),
                image,
            )
        })
        .collect();

    // Close what landed; time out what did not.
    let mut busy: BTreeSet<&str> = BTreeSet::new();
    let mut carried: BTreeSet<(String, &str, &Digest)> = BTreeSet::new();
    for dispatch in &ledger.open {
        let timed_out = dispatch.sent_at.is_some_and(|sent| {
            (now - sent).to_std().unwrap_or_default() >= settings.in_flight_timeout
        });
        let mut open = 0;
        for (item, state) in &dispatch.items {
            if !state.is_open() {
                continue;
            }
            let closing = close(dispatch.id, item, *state, &current, &stale, now);
            let still_open = closing.as_ref().is_none_or(|c| c.state.is_open());
            if still_open {
                open += 1;
                if !timed_out {
                    // Not dispatched again while this rebuild may still land.
                    carried.insert((
                        item.reference.canonical(),
                        item.platform.as_str(),
                        &item.digest,
                    ));
                }
            }
            decision.closings.extend(closing);
        }
        if open == 0 {
            decision.finished.push(dispatch.id);
        } else if timed_out {
            decision.timed_out.push(dispatch.id);
        } else {
            busy.insert(dispatch.target.as_str());
        }
    }

    // What each target would carry now: its wave-1 images not already carried.
    let mut by_target: BTreeMap<&str, Vec<&PlanItem>> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, Vec<ImageRef>> = BTreeMap::new();
    for item in &plan.items {
        let Some(target) = item.target.as_deref() else {
            continue;
        };
        if carried.contains(&(item.reference.canonical(), item.platform, item.digest)) {
            continue;
        }
        if item.wave > 1 {
            waiting
                .entry(target)
                .or_default()
                .push(item.reference.clone());
        } else {
            by_target.entry(target).or_default().push(item);
        }
    }
    for (target, images) in waiting {
        decision.held.push(Held {
            target: Some(target.to_string()),
            hold: Hold::WaitingForBase,
            images,
        });
    }

    let hour_ago = now - chrono::Duration::hours(1);
    let mut sent_overall = ledger
        .last_hour
        .iter()
        .filter(|(_, at)| *at > hour_ago)
        .count() as u64;
    let mut per_target: BTreeMap<&str, u64> = BTreeMap::new();
    for (target, at) in &ledger.last_hour {
        if *at > hour_ago {
            *per_target.entry(target.as_str()).or_default() += 1;
        }
    }
    let in_window = settings.windows.is_empty()
        || settings
            .windows
            .iter()
            .any(|window| window.contains(now, settings.time_zone));
    // Oldest need first when the hourly budget cannot serve every target.
    let mut order: Vec<(&str, Vec<&PlanItem>)> = by_target.into_iter().collect();
    order.sort_by_key(|(target, items)| {
        let oldest = items
            .iter()
            .map(|item| stale_since(item_image(&stale, item), now))
            .min();
        (oldest, *target)
    });
    for (target, items) in order {
        let hold = if ledger.suspended.contains(target) {
            Some(Hold::Suspended)
        } else if busy.contains(target) {
            Some(Hold::InFlight)
        } else if !in_window {
            Some(Hold::OutsideWindow)
        } else if per_target.get(target).copied().unwrap_or(0)
            >= u64::from(settings.per_target_per_hour)
        {
            Some(Hold::TargetLimit)
        } else if sent_overall >= u64::from(settings.per_hour) {
            Some(Hold::HourlyLimit)
        } else {
            None
        };
        if let Some(hold) = hold {
            decision.held.push(Held {
                target: Some(target.to_string()),
                hold,
                images: items.iter().map(|item| item.reference.clone()).collect(),
            });
            continue;
        }
        sent_overall += 1;
        let items = items
            .iter()
            .map(|item| {
                let image = item_image(&stale, item);
                DispatchItem {
                    reference: item.reference.clone(),
                    platform: item.platform.to_string(),
                    digest: item.digest.clone(),
                    reasons: item.reasons.clone(),
                    old_base: image.and_then(|image| {
                        image.reasons.iter().find_map(|reason| match reason {
                            Reason::BaseMoved { base, .. } => Some(base.clone()),
                            _ => None,
                        })
                    }),
                    stale_since: stale_since(image, now),
                }
            })
            .collect();
        decision.send.push(NewDispatch {
            target: target.to_string(),
            wave: 1,
            items,
        });
    }
    decision
        .held
        .sort_by(|a, b| (&a.target, a.hold).cmp(&(&b.target, b.hold)));
    decision
}

fn item_image<'s>(
    stale: &HashMap<(String, &str), &'s StaleImage>,
    item: &PlanItem<'_>,
) -> Option<&'s StaleImage> {
    stale
        .get(&(item.reference.canonical(), item.platform))
        .copied()
}

/// When an image became stale: its base's move, else now.
fn stale_since(image: Option<&StaleImage>, now: DateTime<Utc>) -> DateTime<Utc> {
    image
        .into_iter()
        .flat_map(|image| &image.reasons)
        .filter_map(|reason| match reason {
            Reason::BaseMoved { since, .. } => Some(*since),
            _ => None,
        })
        .min()
        .unwrap_or(now)
}

/// What became of one open image: `None` while its channel still shows the stale digest.
fn close(
    dispatch: i64,
    item: &DispatchItem,
    state: ItemState,
    current: &Current<'_>,
    stale: &HashMap<(String, &str), &StaleImage>,
    now: DateTime<Utc>,
) -> Option<Closing> {
    let closing = |state: ItemState, new_digest: Option<Digest>, time_to_fresh| Closing {
        dispatch,
        reference: item.reference.clone(),
        platform: item.platform.clone(),
        state,
        new_digest,
        time_to_fresh,
    };
    let Some(shown) = current.image(&item.reference, &item.platform) else {
        return Some(closing(ItemState::Gone, None, None));
    };
    if *shown == item.digest {
        return None;
    }
    let now_stale = stale
        .get(&(item.reference.canonical(), item.platform.as_str()))
        .filter(|image| image.digest == *shown);
    let on_old_base = now_stale.is_some_and(|image| {
        image.reasons.iter().any(|reason| {
            matches!(reason, Reason::BaseMoved { base, .. } if Some(base) == item.old_base.as_ref())
        })
    });
    if on_old_base {
        if state == ItemState::RebuiltOnOldBase {
            return None; // already reported
        }
        return Some(closing(
            ItemState::RebuiltOnOldBase,
            Some(shown.clone()),
            None,
        ));
    }
    let time_to_fresh = (now - item.stale_since).to_std().unwrap_or_default();
    Some(closing(
        ItemState::Closed,
        Some(shown.clone()),
        Some(time_to_fresh),
    ))
}

const REBUILD_FIELDS: &[&str] = &[
    "targets",
    "default_target",
    "repositories",
    "reasons",
    "per_hour",
    "per_target_per_hour",
    "in_flight_timeout",
    "suspend_after",
    "attempts",
    "time_zone",
    "windows",
];
const TARGET_FIELDS: &[&str] = &["name", "github", "gitlab", "webhook"];
const GITHUB_FIELDS: &[&str] = &[
    "repository",
    "event_type",
    "api_url",
    "token_env",
    "token_file",
];
const GITLAB_FIELDS: &[&str] = &["project", "ref", "api_url", "token_env", "token_file"];
const WEBHOOK_FIELDS: &[&str] = &["url", "secret_env", "secret_file"];
const REPOSITORY_FIELDS: &[&str] = &["pattern", "target"];
const REASONS: &[&str] = &["base-moved", "too-old", "os-eol", "base-retired"];
/// GitHub's limit on `event_type`.
pub const EVENT_TYPE_MAX: usize = 100;

/// Reads the `rebuild` section, reporting every problem at `walker`'s file and position.
pub fn read_section(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Option<RebuildSettings> {
    let fields = walker.fields(node, path, REBUILD_FIELDS)?;
    let mut settings = RebuildSettings::default();
    let mut ok = true;
    for (name, field) in fields.iter() {
        let at = path.field(name);
        let value = field.value;
        match name {
            "targets" => {
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    match read_target(walker, item, &at.index(index)) {
                        Some(target) => {
                            if settings.target(&target.name).is_some() {
                                let message = format!("target {:?} is declared twice", target.name);
                                walker.error(item.position, &at.index(index), message);
                                ok = false;
                            }
                            settings.targets.push(target);
                        }
                        None => ok = false,
                    }
                }
            }
            "default_target" => settings.default_target = walker.required_text(value, &at),
            "repositories" => {
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let item_path = at.index(index);
                    let Some(fields) = walker.fields(item, &item_path, REPOSITORY_FIELDS) else {
                        ok = false;
                        continue;
                    };
                    let pattern =
                        required(walker, item, &item_path, &fields, "pattern").and_then(|found| {
                            parse_field(walker, found, &item_path.field("pattern"), |text| {
                                RepositoryPattern::parse(text)
                            })
                        });
                    let target = required(walker, item, &item_path, &fields, "target")
                        .and_then(|found| walker.required_text(found, &item_path.field("target")));
                    match (pattern, target) {
                        (Some(pattern), Some(target)) => settings
                            .repositories
                            .push(RepositoryTarget { pattern, target }),
                        _ => ok = false,
                    }
                }
            }
            "reasons" => {
                let mut reasons = BTreeSet::new();
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let found = parse_field(walker, item, &at.index(index), |text| {
                        REASONS
                            .iter()
                            .find(|known| **known == text)
                            .copied()
                            .ok_or_else(|| {
                                format!(
                                    "{text:?} is not a reason; expected one of: {}",
                                    REASONS.join(", ")
                                )
                            })
                    });
                    match found {
                        Some(reason) => {
                            reasons.insert(reason);
                        }
                        None => ok = false,
                    }
                }
                settings.reasons = reasons;
            }
            "per_hour" | "per_target_per_hour" | "suspend_after" | "attempts" => {
                let count = parse_field(walker, value, &at, |text| {
                    text.parse::<u32>()
                        .ok()
                        .filter(|count| *count > 0)
                        .ok_or_else(|| format!("{text:?} is not a whole number above 0"))
                });
                match (name, count) {
                    ("per_hour", Some(count)) => settings.per_hour = count,
                    ("per_target_per_hour", Some(count)) => settings.per_target_per_hour = count,
                    ("suspend_after", Some(count)) => settings.suspend_after = count,
                    ("attempts", Some(count)) => settings.attempts = count,
                    _ => ok = false,
                }
            }
            "in_flight_timeout" => match walker.duration(value, &at) {
                Some(timeout) if !timeout.is_zero() => settings.in_flight_timeout = timeout,
                Some(_) => {
                    walker.error(value.position, &at, "must be more than 0");
                    ok = false;
                }
                None => ok = false,
            },
            "time_zone" => match parse_field(walker, value, &at, |text| {
                text.parse::<Tz>().map_err(|_| {
                    format!("{text:?} is not an IANA time zone (Europe/Copenhagen, UTC)")
                })
            }) {
                Some(zone) => settings.time_zone = zone,
                None => ok = false,
            },
            "windows" => {
                for (index, item) in walker
                    .sequence(value, &at)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    match crate::channels::read_window(walker, item, &at.index(index)) {
                        Some(window) => settings.windows.push(window),
                        None => ok = false,
                    }
                }
            }
            other => unreachable!("field {other} is in REBUILD_FIELDS but not read"),
        }
    }
    let names: Vec<&str> = settings
        .targets
        .iter()
        .map(|target| target.name.as_str())
        .collect();
    let unknown = |name: &str, position, at: &Path<'_>, walker: &mut Walker<'_>| {
        if names.contains(&name) {
            return true;
        }
        let close = suggest::closest(name, names.iter().copied(), suggest::SUGGESTIONS_MAX);
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", close.join(", "))
        };
        walker.error(
            position,
            at,
            format!("{name:?} is not a declared target{hint}"),
        );
        false
    };
    if let (Some(name), Some(field)) = (&settings.default_target, fields.get("default_target")) {
        ok &= unknown(
            name,
            field.value.position,
            &path.field("default_target"),
            walker,
        );
    }
    if let Some(field) = fields.get("repositories") {
        let items = walker.sequence(field.value, &path.field("repositories"));
        for (rule, item) in settings.repositories.iter().zip(items.unwrap_or_default()) {
            let at = path.field("repositories");
            ok &= unknown(&rule.target, item.position, &at, walker);
        }
    }
    ok.then_some(settings)
}

pub(crate) fn required<'n, 'a>(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
    fields: &crate::catalog::read::Fields<'n, 'a>,
    name: &'static str,
) -> Option<&'n Node<'a>> {
    match fields.get(name) {
        Some(found) => Some(found.value),
        None => {
            walker.error(node.position, path, format!("needs `{name}`"));
            None
        }
    }
}

fn read_target(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Target> {
    let fields = walker.fields(node, path, TARGET_FIELDS)?;
    let name = required(walker, node, path, &fields, "name")
        .and_then(|found| walker.name(found, &path.field("name")));
    let kinds: Vec<&str> = ["github", "gitlab", "webhook"]
        .into_iter()
        .filter(|kind| fields.contains(kind))
        .collect();
    let [kind] = kinds.as_slice() else {
        walker.error(
            node.position,
            path,
            "a target needs exactly one of `github`, `gitlab`, `webhook`",
        );
        return None;
    };
    let kind_node = fields.get(kind)?.value;
    let at = path.field(kind);
    let allowed = match *kind {
        "github" => GITHUB_FIELDS,
        "gitlab" => GITLAB_FIELDS,
        _ => WEBHOOK_FIELDS,
    };
    let inner = walker.fields(kind_node, &at, allowed)?;
    let text = |walker: &mut Walker<'_>, field: &'static str| {
        required(walker, kind_node, &at, &inner, field)
            .and_then(|found| walker.required_text(found, &at.field(field)))
    };
    let secret_names = if *kind == "webhook" {
        ("secret_env", "secret_file")
    } else {
        ("token_env", "token_file")
    };
    let secret = secret_source(walker, kind_node, &at, &inner, secret_names);
    let api_url = |walker: &mut Walker<'_>, default: &str| match inner.get("api_url") {
        Some(found) => {
            let text = walker.required_text(found.value, &at.field("api_url"))?;
            url_text(walker, found.value, &at.field("api_url"), &text)
        }
        None => Some(default.to_string()),
    };
    let kind = match *kind {
        "github" => {
            let repository = text(walker, "repository").and_then(|repository| {
                let parts: Vec<&str> = repository.split('/').collect();
                if parts.len() == 2 && parts.iter().all(|part| !part.is_empty()) {
                    Some(repository)
                } else {
                    let found = inner.get("repository")?.value;
                    let message = format!("{repository:?} is not `owner/repository`");
                    walker.error(found.position, &at.field("repository"), message);
                    None
                }
            });
            let event_type = match inner.get("event_type") {
                Some(found) => walker
                    .required_text(found.value, &at.field("event_type"))
                    .and_then(|event| {
                        if event.chars().count() <= EVENT_TYPE_MAX {
                            Some(event)
                        } else {
                            let message = format!(
                                "is {} characters; GitHub allows at most {EVENT_TYPE_MAX}",
                                event.chars().count()
                            );
                            walker.error(found.value.position, &at.field("event_type"), message);
                            None
                        }
                    }),
                None => Some("berth-rebuild".to_string()),
            };
            let api_url = api_url(walker, "https://api.github.com");
            TargetKind::Github {
                repository: repository?,
                event_type: event_type?,
                api_url: api_url?,
            }
        }
        "gitlab" => {
            let project = text(walker, "project");
            let git_ref = text(walker, "ref");
            let api_url = api_url(walker, "https://gitlab.com");
            TargetKind::Gitlab {
                project: project?,
                git_ref: git_ref?,
                api_url: api_url?,
            }
        }
        _ => {
            let url = text(walker, "url").and_then(|url| {
                let found = inner.get("url")?.value;
                url_text(walker, found, &at.field("url"), &url)
            });
            TargetKind::Webhook { url: url? }
        }
    };
    Some(Target {
        name: name?,
        kind,
        secret: secret?,
    })
}

/// A secret named by exactly one of two fields (`names.0` an environment variable, `names.1`
/// a file) of the mapping `node` at `at`.
pub(crate) fn secret_source(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    at: &Path<'_>,
    inner: &crate::catalog::read::Fields<'_, '_>,
    names: (&str, &str),
) -> Option<SecretSource> {
    match (inner.get(names.0), inner.get(names.1)) {
        (Some(env), None) => walker
            .required_text(env.value, &at.field(names.0))
            .map(SecretSource::Env),
        (None, Some(file)) => walker
            .required_text(file.value, &at.field(names.1))
            .map(|file| SecretSource::File(PathBuf::from(file))),
        _ => {
            let message = format!("needs exactly one of `{}` and `{}`", names.0, names.1);
            walker.error(node.position, at, message);
            None
        }
    }
}

/// An `http://` or `https://` address, kept as written without a trailing `/`.
pub(crate) fn url_text(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
    text: &str,
) -> Option<String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            Some(text.trim_end_matches('/').to_string())
        }
        _ => {
            let message = format!("{text:?} is not an http:// or https:// address");
            walker.error(node.position, path, message);
            None
        }
    }
}

#[cfg(test)]
mod tests;
