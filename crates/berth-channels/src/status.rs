//! Where a catalog image's channels stand: each channel's digest, since when, whether berth
//! manages it and whether a hand fix holds it, and each promotion rule's next slot and what it
//! would decide now. One answer for `berth channels` and the dashboard's channel page.

use berth_core::catalog::CatalogEntry;
use berth_core::channels::{
    self, ChannelState, Decision, Due, Evidence, Idle, Request, RulesFile, Trigger,
};
use berth_core::{Digest, Tag};
use berth_oci::Client;
use berth_store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{ChannelError, Noticed, Subject};

/// How the channels' digests are learnt.
#[derive(Clone, Copy)]
pub enum Look<'c> {
    /// Ask the registry (and record what moved outside berth), as `berth channels` does.
    Registry(&'c Client),
    /// From the store's history only: no registry request (the dashboard, on every render).
    Recorded,
}

/// One channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub channel: String,
    /// What berth recorded last (after noticing outside changes just now).
    pub digest: Option<Digest>,
    pub since: Option<DateTime<Utc>>,
    /// berth moves this channel (a rule promotes to it, or berth moved it before): a change
    /// made outside berth is drift. Other channels (`staging`, pushed by CI) move outside berth
    /// by design.
    pub managed: bool,
    /// A hand fix holds the channel: set when it was moved outside berth after berth moved
    /// it, until `berth channels ack` (or `promote --force`). `null` when not held.
    pub held: Option<HeldView>,
    pub noticed: Vec<Noticed>,
}

/// Why a channel is held: the outside change, when and to what.
#[derive(Debug, Clone, Serialize)]
pub struct HeldView {
    pub since: DateTime<Utc>,
    pub digest: Digest,
}

/// One rule: when it runs next and what it would do now.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub from: String,
    /// The target channel; `IMAGE/VARIANT:channel` when the rule promotes into another variant.
    pub to: String,
    /// The target channel's tag alone (`to` without the image of another variant).
    pub to_channel: String,
    /// The variant the rule promotes into, when not this one.
    pub to_variant: Option<String>,
    pub schedule: Option<String>,
    pub next: Due,
    pub now: Decision,
}

impl RuleView {
    /// When the rule runs next, for a person; `at` formats a moment.
    pub fn next_text(&self, at: impl Fn(DateTime<Utc>) -> String) -> String {
        match &self.next {
            Due::Later { at: when } => format!("next run {}", at(*when)),
            Due::Now { slot, .. } => format!("due now (slot {})", at(*slot)),
            Due::Manual => "by hand only".to_string(),
            Due::Never => "never runs again".to_string(),
        }
    }

    /// What the rule would decide now, for a person: what it would promote or what blocks it.
    pub fn now_text(&self) -> String {
        match &self.now {
            Decision::Promote {
                digest,
                first_publish: true,
            } => format!("would publish {digest} at once (first publish)"),
            Decision::Promote { digest, .. } => format!("would promote {digest}"),
            Decision::Blocked { digest, reasons } => {
                let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                format!("{digest} blocked: {}", reasons.join("; "))
            }
            Decision::NothingToDo {
                why: Idle::SourceEmpty,
            } => "nothing on the source".to_string(),
            Decision::NothingToDo {
                why: Idle::AlreadyThere { .. },
            } => "up to date".to_string(),
        }
    }
}

/// One image (an entry, or one variant of it).
#[derive(Debug, Clone, Serialize)]
pub struct SubjectView {
    pub image: String,
    pub repository: String,
    pub channels: Vec<ChannelView>,
    pub rules: Vec<RuleView>,
}

impl SubjectView {
    /// A channel berth manages was moved outside berth: held, or drift noticed just now.
    pub fn drifted(&self) -> bool {
        self.channels
            .iter()
            .filter(|channel| channel.managed)
            .any(|channel| {
                channel.held.is_some()
                    || channel.noticed.iter().any(|noticed| {
                        matches!(noticed.observation, channels::Observation::Drift { .. })
                    })
            })
    }
}

/// Every image of `entries` (each variant on its own).
pub fn subjects(entries: &[CatalogEntry]) -> Vec<(Subject, &CatalogEntry)> {
    let mut subjects = Vec::new();
    for entry in entries {
        for (variant, image) in entry.images() {
            let subject = Subject {
                name: entry.name.clone(),
                variant: variant.map(str::to_string),
                image: image.clone(),
            };
            subjects.push((subject, entry));
        }
    }
    subjects
}

/// Where `subject`'s channels stand at `now`, under `rules`.
pub async fn status(
    look: Look<'_>,
    store: &Store,
    rules: &RulesFile,
    subject: &Subject,
    entry: &CatalogEntry,
    now: DateTime<Utc>,
) -> Result<SubjectView, ChannelError> {
    let mut states: Vec<(Tag, ChannelState)> = Vec::new();
    let mut channel_views = Vec::new();
    for name in &entry.channels {
        let targeted = rules.promotions.iter().any(|rule| {
            // A rule to another variant manages that variant's channel, not this one's.
            let here = match &rule.to_variant {
                Some(variant) => subject.variant.as_deref() == Some(variant.as_str()),
                None => true,
            };
            rule.to == *name && here && rule.applies_to(entry)
        });
        let (state, noticed) = match look {
            Look::Registry(client) => crate::check(client, store, subject, name, now).await?,
            Look::Recorded => (
                crate::history::load(store, subject, name).await?,
                Vec::new(),
            ),
        };
        let digest = state.current().cloned();
        let managed = targeted
            || state
                .history
                .iter()
                .any(|entry| entry.kind != channels::ChangeKind::OutsideChange);
        channel_views.push(ChannelView {
            managed,
            held: state.held().map(|entry| HeldView {
                since: entry.at,
                digest: entry.digest.clone(),
            }),
            channel: name.to_string(),
            since: digest
                .as_ref()
                .and_then(|digest| state.stint(digest))
                .map(|(start, _)| start),
            digest,
            noticed,
        });
        states.push((name.clone(), state));
    }
    let state_of = |name: &Tag| {
        states
            .iter()
            .find(|(channel, _)| channel == name)
            .map(|(_, state)| state.clone())
            .unwrap_or_default()
    };
    let mut rule_views = Vec::new();
    for rule in rules
        .promotions
        .iter()
        .filter(|rule| rule.applies_to(entry))
        // A rule to another variant is shown with its source only.
        .filter(|rule| rule.to_variant.is_none() || subject.variant == rule.from_variant)
    {
        let source = state_of(&rule.from);
        let (target, to) = match &rule.to_variant {
            None => (state_of(&rule.to), rule.to.to_string()),
            Some(_) => {
                let target_subject = crate::ops::target_of(subject, entry, rule)?;
                let state = crate::history::load(store, &target_subject, &rule.to).await?;
                (state, format!("{}:{}", target_subject.label(), rule.to))
            }
        };
        let evidence = match source.current() {
            Some(digest) => crate::ops::evidence(store, digest).await?,
            None => Evidence::default(),
        };
        // The scheduler's last slot, if `berth serve` runs this rule: then "due now" means a
        // slot it has not run yet.
        let key = berth_store::PromotionKey {
            catalog_name: subject.name.clone(),
            variant: subject.variant.clone(),
            from: rule.from.to_string(),
            to: rule.to.to_string(),
        };
        let last_run = store.promotion_slot(&key).await?.unwrap_or(now);
        rule_views.push(RuleView {
            from: rule.from.to_string(),
            to,
            to_channel: rule.to.to_string(),
            to_variant: rule.to_variant.clone(),
            schedule: match &rule.trigger {
                Trigger::Manual => None,
                Trigger::Scheduled(schedule) => Some(schedule.to_string()),
            },
            next: channels::due(rule, last_run, now),
            now: channels::evaluate_promotion(
                &source,
                &target,
                rule,
                entry,
                evidence,
                &Request::Scheduled,
                now,
            ),
        });
    }
    Ok(SubjectView {
        image: subject.label(),
        repository: subject.image.canonical(),
        channels: channel_views,
        rules: rule_views,
    })
}
