//! Channels: the moving tags of a catalog image (`staging`, `latest`), what each has pointed at
//! (its history), and the pure decisions about moving them — what is due, what may be promoted
//! now and why not, where a rollback goes, and whether the registry still agrees with berth.
//!
//! Pure like the rest of the core: every function takes `now`; the adapter (`berth-channels`)
//! reads the registry, the store and the clock, and carries the decisions out.
//!
//! - [`schedule`]: cron expressions in an IANA time zone; next and previous slots.
//! - [`rule`]: a promotion rule (from, to, schedule, soak, gates, windows, freezes,
//!   first publish) and its YAML file.
//! - [`decide`]: [`due`], [`evaluate_promotion`], [`rollback_target`], [`observe`].

pub mod decide;
pub mod rule;
pub mod schedule;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::reference::{Digest, Tag};

pub use decide::{
    BlockReason, Decision, Due, Evidence, Idle, Observation, Request, RollbackRefused, due,
    evaluate_promotion, observe, rollback_target,
};
pub(crate) use rule::read_window;
pub use rule::{FirstPublish, Freeze, Gate, PromotionRule, RulesFile, Trigger, Window};
pub use schedule::Schedule;

/// How a channel came to point at a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Moved by a promotion rule, scheduled or asked for.
    Promotion,
    /// Moved back to an earlier digest.
    Rollback,
    /// Set by a person to a digest of their choosing.
    Manual,
    /// Moved without berth (a CI push, a person with skopeo), noticed afterwards.
    OutsideChange,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Promotion => "promotion",
            ChangeKind::Rollback => "rollback",
            ChangeKind::Manual => "manual",
            ChangeKind::OutsideChange => "outside-change",
        }
    }
}

/// One move of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub digest: Digest,
    /// What the channel pointed at before; `None` for its first digest. A rollback's
    /// `previous` is the digest it rolled back from, which later rollbacks skip.
    pub previous: Option<Digest>,
    pub at: DateTime<Utc>,
    /// Who moved it: a person, a token's name, or `berth-scheduler`.
    pub actor: String,
    pub reason: String,
    pub kind: ChangeKind,
}

/// A channel as berth has recorded it: every digest it pointed at, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelState {
    pub history: Vec<HistoryEntry>,
}

impl ChannelState {
    pub fn new(mut history: Vec<HistoryEntry>) -> ChannelState {
        // Stable: entries recorded at the same moment keep their recorded order.
        history.sort_by_key(|entry| entry.at);
        ChannelState { history }
    }

    /// The digest the channel points at, as far as berth knows.
    pub fn current(&self) -> Option<&Digest> {
        self.history.last().map(|entry| &entry.digest)
    }

    /// When the channel's latest stint on `digest` began and ended (`None`: still on it):
    /// consecutive entries for the same digest (a repaired or re-observed move) are one stint.
    pub fn stint(&self, digest: &Digest) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let last = self
            .history
            .iter()
            .rposition(|entry| entry.digest == *digest)?;
        let end = self.history.get(last + 1).map(|entry| entry.at);
        let mut start = last;
        while start > 0 && self.history[start - 1].digest == *digest {
            start -= 1;
        }
        Some((self.history[start].at, end))
    }

    /// The outside change that holds the channel, if any: berth moved it before (an entry that
    /// is not an outside change), then someone else did (the latest entry), and no person has
    /// acknowledged that since. A held channel is not promoted over — by the scheduler or by
    /// hand — until a person acknowledges it (a `manual` entry at the digest found, which
    /// `berth channels ack` records) or promotes with force.
    pub fn held(&self) -> Option<&HistoryEntry> {
        let latest = self.history.last()?;
        let managed = self
            .history
            .iter()
            .any(|entry| entry.kind != ChangeKind::OutsideChange);
        (latest.kind == ChangeKind::OutsideChange && managed).then_some(latest)
    }

    /// Whether the channel ever pointed at `digest`.
    pub fn has_held(&self, digest: &Digest) -> bool {
        self.history.iter().any(|entry| entry.digest == *digest)
    }
}

/// A channel's name as a tag; channel names in rules and on the command line are tags.
pub fn channel_tag(text: &str) -> Result<Tag, String> {
    Tag::parse(text).map_err(|error| format!("{text:?} is not a channel (a tag): {error}"))
}

/// The immutable tag that keeps one promotion addressable: `latest-20261122T1000Z`; `None`
/// when the channel's name is too long to carry the stamp (tags hold at most 128 characters).
pub fn stamp_tag(channel: &Tag, at: DateTime<Utc>) -> Option<Tag> {
    Tag::parse(&format!("{channel}-{}", at.format("%Y%m%dT%H%MZ"))).ok()
}

#[cfg(test)]
mod tests;
