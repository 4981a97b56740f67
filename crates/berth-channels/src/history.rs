//! Channel history and audit entries, between the core's types and the store's rows.

use berth_core::Tag;
use berth_core::channels::{ChangeKind, ChannelState, HistoryEntry};
use berth_store::{AuditEntry, ChannelChange, ChannelChangeKind, Store, StoreError};
use serde_json::json;

use crate::subject::Subject;

/// More moves than any one image's channels make; the store answers newest first.
const HISTORY_LIMIT: u32 = 100_000;

fn to_store(kind: ChangeKind) -> ChannelChangeKind {
    match kind {
        ChangeKind::Promotion => ChannelChangeKind::Promotion,
        ChangeKind::Rollback => ChannelChangeKind::Rollback,
        ChangeKind::Manual => ChannelChangeKind::Manual,
        ChangeKind::OutsideChange => ChannelChangeKind::Drift,
    }
}

fn from_store(kind: ChannelChangeKind) -> ChangeKind {
    match kind {
        ChannelChangeKind::Promotion => ChangeKind::Promotion,
        ChannelChangeKind::Rollback => ChangeKind::Rollback,
        ChannelChangeKind::Manual => ChangeKind::Manual,
        ChannelChangeKind::Drift => ChangeKind::OutsideChange,
    }
}

/// Every channel of `subject` with a history, in name order.
pub async fn channels_of(store: &Store, subject: &Subject) -> Result<Vec<Tag>, StoreError> {
    let rows = store
        .channel_history(Some(&subject.name), HISTORY_LIMIT)
        .await?;
    let mut channels: Vec<Tag> = rows
        .into_iter()
        .filter(|row| row.entry.variant == subject.variant)
        .filter_map(|row| Tag::parse(&row.entry.channel).ok())
        .collect();
    channels.sort();
    channels.dedup();
    Ok(channels)
}

/// What berth recorded of one channel, oldest first.
pub async fn load(
    store: &Store,
    subject: &Subject,
    channel: &Tag,
) -> Result<ChannelState, StoreError> {
    let rows = store
        .channel_history(Some(&subject.name), HISTORY_LIMIT)
        .await?;
    let mut history: Vec<HistoryEntry> = rows
        .into_iter()
        .filter(|row| row.entry.variant == subject.variant && row.entry.channel == channel.as_str())
        .map(|row| HistoryEntry {
            digest: row.entry.digest,
            previous: row.entry.previous,
            at: row.entry.at,
            actor: row.entry.actor,
            reason: row.entry.reason,
            kind: from_store(row.entry.kind),
        })
        .collect();
    history.reverse();
    Ok(ChannelState::new(history))
}

/// Appends a move to the channel's history and to `state`.
pub async fn append(
    store: &Store,
    subject: &Subject,
    channel: &Tag,
    state: &mut ChannelState,
    entry: HistoryEntry,
) -> Result<(), StoreError> {
    store
        .append_channel_change(&ChannelChange {
            catalog_name: subject.name.clone(),
            variant: subject.variant.clone(),
            channel: channel.to_string(),
            digest: entry.digest.clone(),
            previous: entry.previous.clone(),
            at: entry.at,
            actor: entry.actor.clone(),
            reason: entry.reason.clone(),
            kind: to_store(entry.kind),
        })
        .await?;
    state.history.push(entry);
    Ok(())
}

/// The audit subject of a channel: `python3.11/jobs:latest`.
pub fn audit_subject(subject: &Subject, channel: &Tag) -> String {
    format!("{}:{channel}", subject.label())
}

/// Records a move berth made (`channel.promote`, `channel.rollback`, `channel.repair`) with the
/// digest before and after.
pub async fn audit(
    store: &Store,
    subject: &Subject,
    channel: &Tag,
    action: &str,
    entry: &HistoryEntry,
) -> Result<(), StoreError> {
    store
        .append_audit(&AuditEntry {
            at: entry.at,
            actor: entry.actor.clone(),
            action: action.to_string(),
            subject: audit_subject(subject, channel),
            before: Some(json!({ "digest": entry.previous })),
            after: Some(json!({
                "digest": entry.digest,
                "kind": entry.kind,
                "reason": entry.reason,
            })),
        })
        .await?;
    Ok(())
}
