//! Promotion, rollback and check: each reads the channel's history and the registry's tag,
//! asks the core what to do, moves the tag (registry first), then records history and audit.

use berth_core::Digest;
use berth_core::Tag;
use berth_core::catalog::CatalogEntry;
use berth_core::channels::{
    self, BlockReason, ChangeKind, ChannelState, Decision, Evidence, HistoryEntry, Idle,
    Observation, PromotionRule, Request,
};
use berth_oci::{Client, CopyReport};
use berth_store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ChannelError;
use crate::history;
use crate::subject::Subject;
use crate::tag;

/// The actor of moves berth did not make.
pub const OUTSIDE_ACTOR: &str = "outside berth";
/// Appended to the reason of an entry recorded after the registry write it belongs to.
const REPAIRED: &str = "recorded on a later run: the registry already pointed there";

/// A promotion as asked for.
#[derive(Debug, Clone)]
pub struct PromoteRequest<'a> {
    pub rule: &'a PromotionRule,
    pub request: Request,
    pub actor: String,
    pub reason: String,
    /// Promote past blocking reasons and over a tag someone else moved (recorded as `manual`).
    pub force: bool,
    /// Also publish the immutable tag `<to>-<YYYYMMDDTHHMMZ>`.
    pub stamp: bool,
}

/// A rollback as asked for.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub channel: Tag,
    /// The digest to go back to (it must be in the history); `None`: one step back.
    pub to: Option<Digest>,
    pub actor: String,
    pub reason: String,
    /// Roll back over a tag someone else moved.
    pub force: bool,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub subject: String,
    pub channel: String,
    pub action: Action,
    /// Outside changes recorded on the way (a source channel CI pushed, a drifted target).
    pub noticed: Vec<Noticed>,
}

impl Outcome {
    /// Whether the answer is "no": blocked, or refused because of drift.
    pub fn is_negative(&self) -> bool {
        matches!(
            self.action,
            Action::Blocked { .. } | Action::DriftRefused { .. }
        )
    }

    /// What happened, in one line for a person (`berth promote`, the dashboard).
    pub fn summary(&self) -> String {
        let target = format!("{}:{}", self.subject, self.channel);
        match &self.action {
            Action::Moved {
                from,
                to,
                kind,
                stamp,
                copied,
            } => {
                let mut line = format!(
                    "{target}: {} {} -> {to}",
                    kind.as_str(),
                    from.as_ref().map_or("(new)".to_string(), Digest::to_string)
                );
                if let Some(stamp) = stamp {
                    line.push_str(&format!(" (also tagged {stamp})"));
                }
                if let Some(copied) = copied {
                    line.push_str(&format!(
                        " (blobs: {} mounted, {} uploaded, {} already there)",
                        copied.mounted, copied.uploaded, copied.present
                    ));
                }
                line
            }
            Action::Repaired { digest, kind } => format!(
                "{target}: already at {digest}; recorded the {} an earlier run did not",
                kind.as_str()
            ),
            Action::Unchanged {
                digest: Some(digest),
            } => format!("{target}: already at {digest}; nothing to do"),
            Action::Unchanged { digest: None } => {
                format!("{target}: the source channel has no image; nothing to do")
            }
            Action::Blocked { digest, reasons } => {
                let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                format!("{target}: not promoting {digest}: {}", reasons.join("; "))
            }
            Action::DriftRefused { recorded, found } => format!(
                "{target}: the tag was moved outside berth (recorded {recorded}, registry has {}); recorded in the history, left as it is (use --force to overwrite)",
                found
                    .as_ref()
                    .map_or("no such tag".to_string(), Digest::to_string)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// The tag moved and the move is recorded.
    Moved {
        from: Option<Digest>,
        to: Digest,
        kind: ChangeKind,
        /// The immutable tag published alongside, if asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        stamp: Option<String>,
        /// For a target in another repository or registry: the blobs found, mounted and
        /// uploaded there first.
        #[serde(skip_serializing_if = "Option::is_none")]
        copied: Option<CopyReport>,
    },
    /// The registry already held the move (an earlier run stopped before recording it): the
    /// missing history entry is now recorded.
    Repaired { digest: Digest, kind: ChangeKind },
    /// Nothing to do: the channel already points there, or the source is empty.
    Unchanged { digest: Option<Digest> },
    Blocked {
        digest: Digest,
        reasons: Vec<BlockReason>,
    },
    /// The tag was moved outside berth; recorded and left alone (use force to overwrite).
    DriftRefused {
        recorded: Digest,
        found: Option<Digest>,
    },
}

/// An outside change berth noticed (and recorded, when the tag still exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Noticed {
    pub channel: String,
    #[serde(flatten)]
    pub observation: Observation,
}

/// Reads `channel`'s tag, compares it with the history and records an outside change (first
/// sight or drift). An unrecorded move of our own (`intended`) is left to the caller, which
/// knows what kind of move it was.
async fn reconcile(
    (client, store, subject): (&Client, &Store, &Subject),
    channel: &Tag,
    state: &mut ChannelState,
    intended: Option<&Digest>,
    now: DateTime<Utc>,
    noticed: &mut Vec<Noticed>,
) -> Result<Observation, ChannelError> {
    let found = tag::current(client, &subject.image, channel).await?;
    let observation = channels::observe(state, found.as_ref(), intended);
    let reason = match &observation {
        Observation::FirstSight { .. } => "first seen in the registry".to_string(),
        Observation::Drift { recorded, .. } => {
            format!("moved outside berth (berth had recorded {recorded})")
        }
        Observation::Agrees | Observation::Unrecorded { .. } => return Ok(observation),
    };
    if let Some(found) = found {
        tracing::info!(image = %subject.label(), channel = %channel, digest = %found, "{reason}");
        // Drift of a tag berth itself moved last (a channel it manages), not a source channel
        // that CI publishes to: that is worth telling people.
        let managed = state
            .history
            .last()
            .is_some_and(|last| last.kind != ChangeKind::OutsideChange);
        let entry = HistoryEntry {
            previous: state.current().cloned(),
            digest: found,
            at: now,
            actor: OUTSIDE_ACTOR.to_string(),
            reason,
            kind: ChangeKind::OutsideChange,
        };
        history::append(store, subject, channel, state, entry.clone()).await?;
        // A drift of a managed channel is also an audit entry: what notifications are told from.
        if managed && matches!(observation, Observation::Drift { .. }) {
            history::audit(
                store,
                subject,
                channel,
                berth_core::notify::AUDIT_DRIFT,
                &entry,
            )
            .await?;
        }
    }
    noticed.push(Noticed {
        channel: channel.to_string(),
        observation: observation.clone(),
    });
    Ok(observation)
}

/// Records our own move: history (what repair relies on), then audit.
async fn record(
    store: &Store,
    subject: &Subject,
    channel: &Tag,
    state: &mut ChannelState,
    action: &str,
    entry: HistoryEntry,
) -> Result<(), ChannelError> {
    // A concurrent run (a person and the scheduler at once) may have recorded this very move
    // while the registry was being written: record it once.
    let recorded = history::load(store, subject, channel).await?;
    if recorded.current() == Some(&entry.digest) && state.current() != Some(&entry.digest) {
        tracing::debug!(image = %subject.label(), channel = %channel, "move already recorded by a concurrent run");
        *state = recorded;
        return Ok(());
    }
    history::append(store, subject, channel, state, entry.clone()).await?;
    history::audit(store, subject, channel, action, &entry).await?;
    Ok(())
}

/// Whose `rule.to` channel a promotion of `subject` moves: the rule's `to_variant` of the
/// entry, else `subject` itself.
pub fn target_of(
    subject: &Subject,
    entry: &CatalogEntry,
    rule: &PromotionRule,
) -> Result<Subject, ChannelError> {
    match &rule.to_variant {
        Some(variant) => Subject::of(entry, Some(variant))
            .map_err(|problem| ChannelError::UnknownVariant { problem }),
        None => Ok(subject.clone()),
    }
}

/// Promotes `subject` from `request.rule.from` to `request.rule.to` if the rule allows it now
/// (or `force`), repairing a half-recorded earlier run and refusing to overwrite drift. With the
/// rule's `to_variant`, the target channel is that variant's (its history, its repository).
pub async fn promote(
    client: &Client,
    store: &Store,
    subject: &Subject,
    entry: &CatalogEntry,
    request: &PromoteRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome, ChannelError> {
    let rule = request.rule;
    let mut noticed = Vec::new();
    let mut source = history::load(store, subject, &rule.from).await?;
    let source_seen = reconcile(
        (client, store, subject),
        &rule.from,
        &mut source,
        None,
        now,
        &mut noticed,
    )
    .await?;
    if let Observation::Drift { found: None, .. } = source_seen {
        // The source tag was deleted: what berth recorded there is not on offer any more.
        return Ok(Outcome {
            subject: subject.label(),
            channel: rule.to.to_string(),
            action: Action::Unchanged { digest: None },
            noticed,
        });
    }
    let target_subject = target_of(subject, entry, rule)?;
    let mut target = history::load(store, &target_subject, &rule.to).await?;
    let decide = async |target: &ChannelState| -> Result<Decision, ChannelError> {
        let candidate = match &request.request {
            Request::ByHand {
                digest: Some(digest),
            } => Some(digest.clone()),
            _ => source.current().cloned(),
        };
        let evidence = match &candidate {
            Some(digest) => evidence(store, digest).await?,
            None => Evidence::default(),
        };
        Ok(channels::evaluate_promotion(
            &source,
            target,
            rule,
            entry,
            evidence,
            &request.request,
            now,
        ))
    };
    let mut decision = decide(&target).await?;
    let intended = match &decision {
        Decision::Promote { digest, .. } => Some(digest.clone()),
        Decision::Blocked { digest, .. } if request.force => Some(digest.clone()),
        _ => None,
    };
    let outcome = |action| Outcome {
        subject: target_subject.label(),
        channel: rule.to.to_string(),
        action,
        noticed: Vec::new(),
    };
    let kind = if matches!(decision, Decision::Blocked { .. }) {
        ChangeKind::Manual
    } else {
        ChangeKind::Promotion
    };
    let observation = reconcile(
        (client, store, &target_subject),
        &rule.to,
        &mut target,
        intended.as_ref(),
        now,
        &mut noticed,
    )
    .await?;
    match observation {
        Observation::Agrees => {}
        Observation::Unrecorded { found } => {
            let entry = HistoryEntry {
                previous: target.current().cloned(),
                digest: found.clone(),
                at: now,
                actor: request.actor.clone(),
                reason: join_reason(&request.reason, REPAIRED),
                kind,
            };
            record(
                store,
                &target_subject,
                &rule.to,
                &mut target,
                "channel.repair",
                entry,
            )
            .await?;
            return Ok(Outcome {
                noticed,
                ..outcome(Action::Repaired {
                    digest: found,
                    kind,
                })
            });
        }
        Observation::Drift { recorded, found } if !request.force => {
            return Ok(Outcome {
                noticed,
                ..outcome(Action::DriftRefused { recorded, found })
            });
        }
        Observation::Drift { .. } | Observation::FirstSight { .. } => {
            decision = decide(&target).await?;
        }
    }
    let digest = match decision {
        Decision::NothingToDo {
            why: Idle::AlreadyThere { digest },
        } => Some(digest),
        Decision::NothingToDo { .. } => None,
        Decision::Blocked { digest, reasons } if !request.force => {
            return Ok(Outcome {
                noticed,
                ..outcome(Action::Blocked { digest, reasons })
            });
        }
        Decision::Blocked { digest, .. } | Decision::Promote { digest, .. } => {
            let stamp = if request.stamp {
                channels::stamp_tag(&rule.to, now)
            } else {
                None
            };
            let copied = tag::put(
                client,
                (&subject.image, &target_subject.image),
                &digest,
                &rule.to,
                stamp.as_ref(),
            )
            .await?;
            let from = target.current().cloned();
            let entry = HistoryEntry {
                previous: from.clone(),
                digest: digest.clone(),
                at: now,
                actor: request.actor.clone(),
                reason: request.reason.clone(),
                kind,
            };
            record(
                store,
                &target_subject,
                &rule.to,
                &mut target,
                "channel.promote",
                entry,
            )
            .await?;
            return Ok(Outcome {
                noticed,
                ..outcome(Action::Moved {
                    from,
                    to: digest,
                    kind,
                    stamp: stamp.map(|stamp| stamp.to_string()),
                    copied,
                })
            });
        }
    };
    Ok(Outcome {
        noticed,
        ..outcome(Action::Unchanged { digest })
    })
}

/// Rolls `request.channel` back one step (or to `request.to`): a new history entry of kind
/// rollback whose `previous` is the digest rolled back from.
pub async fn rollback(
    client: &Client,
    store: &Store,
    subject: &Subject,
    request: &RollbackRequest,
    now: DateTime<Utc>,
) -> Result<Outcome, ChannelError> {
    let channel = &request.channel;
    let mut noticed = Vec::new();
    let mut state = history::load(store, subject, channel).await?;
    let refused = |refused| ChannelError::Rollback {
        subject: subject.label(),
        channel: channel.clone(),
        refused,
    };
    let target = channels::rollback_target(&state, request.to.as_ref()).map_err(refused)?;
    let outcome = |action, noticed| Outcome {
        subject: subject.label(),
        channel: channel.to_string(),
        action,
        noticed,
    };
    let observation = reconcile(
        (client, store, subject),
        channel,
        &mut state,
        Some(&target),
        now,
        &mut noticed,
    )
    .await?;
    // After a forced drift this is the digest someone else put there.
    let from = state.current().cloned();
    let reason = if request.reason.is_empty() {
        format!(
            "rollback from {}",
            from.as_ref()
                .map_or("nothing".to_string(), Digest::to_string)
        )
    } else {
        request.reason.clone()
    };
    let entry = |reason: String| HistoryEntry {
        previous: from.clone(),
        digest: target.clone(),
        at: now,
        actor: request.actor.clone(),
        reason,
        kind: ChangeKind::Rollback,
    };
    match observation {
        Observation::Unrecorded { .. } => {
            let entry = entry(join_reason(&reason, REPAIRED));
            record(store, subject, channel, &mut state, "channel.repair", entry).await?;
            return Ok(outcome(
                Action::Repaired {
                    digest: target,
                    kind: ChangeKind::Rollback,
                },
                noticed,
            ));
        }
        Observation::Drift { recorded, found } if !request.force => {
            return Ok(outcome(Action::DriftRefused { recorded, found }, noticed));
        }
        _ => {}
    }
    tag::put(
        client,
        (&subject.image, &subject.image),
        &target,
        channel,
        None,
    )
    .await?;
    record(
        store,
        subject,
        channel,
        &mut state,
        "channel.rollback",
        entry(reason),
    )
    .await?;
    Ok(outcome(
        Action::Moved {
            from,
            to: target,
            kind: ChangeKind::Rollback,
            stamp: None,
            copied: None,
        },
        noticed,
    ))
}

/// What [`acknowledge`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Acknowledged {
    /// The outside change is accepted: the channel is no longer held.
    Released {
        digest: Digest,
        held_since: DateTime<Utc>,
    },
    /// The channel was not held: nothing recorded.
    NotHeld { digest: Option<Digest> },
}

/// A person accepts the outside change that holds `channel` ([`ChannelState::held`]): after
/// reading the registry (a newer outside change is what gets accepted), a `manual` entry at
/// the digest found, and an audit entry `channel.ack`.
pub async fn acknowledge(
    client: &Client,
    store: &Store,
    subject: &Subject,
    channel: &Tag,
    (actor, reason): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(Acknowledged, Vec<Noticed>), ChannelError> {
    let mut noticed = Vec::new();
    let mut state = history::load(store, subject, channel).await?;
    reconcile(
        (client, store, subject),
        channel,
        &mut state,
        None,
        now,
        &mut noticed,
    )
    .await?;
    let Some(held) = state.held().cloned() else {
        let digest = state.current().cloned();
        return Ok((Acknowledged::NotHeld { digest }, noticed));
    };
    let entry = HistoryEntry {
        previous: Some(held.digest.clone()),
        digest: held.digest.clone(),
        at: now,
        actor: actor.to_string(),
        reason: join_reason(reason, "acknowledged the change made outside berth"),
        kind: ChangeKind::Manual,
    };
    history::append(store, subject, channel, &mut state, entry.clone()).await?;
    history::audit(store, subject, channel, "channel.ack", &entry).await?;
    Ok((
        Acknowledged::Released {
            digest: held.digest,
            held_since: held.at,
        },
        noticed,
    ))
}

/// Compares `channel`'s tag with its history and records what moved outside berth.
pub async fn check(
    client: &Client,
    store: &Store,
    subject: &Subject,
    channel: &Tag,
    now: DateTime<Utc>,
) -> Result<(ChannelState, Vec<Noticed>), ChannelError> {
    let mut noticed = Vec::new();
    let mut state = history::load(store, subject, channel).await?;
    reconcile(
        (client, store, subject),
        channel,
        &mut state,
        None,
        now,
        &mut noticed,
    )
    .await?;
    Ok((state, noticed))
}

fn join_reason(reason: &str, note: &str) -> String {
    if reason.is_empty() {
        note.to_string()
    } else {
        format!("{reason} ({note})")
    }
}

/// What the store knows of `digest` that gates ask: its facts, a verified signature, a passing
/// test result (a pipeline's record, or a verified test-result attestation).
pub(crate) async fn evidence(store: &Store, digest: &Digest) -> Result<Evidence, ChannelError> {
    use berth_core::provenance::{SignedKind, Tests};
    let facts_known = store.known_manifest(digest).await?;
    let signed = store
        .verified_signatures(std::slice::from_ref(digest))
        .await?
        .into_iter()
        .flat_map(|(_, signed)| signed)
        .collect::<Vec<_>>();
    let recorded = store
        .provenance_of(digest)
        .await?
        .is_some_and(|record| record.tests == Some(Tests::Passed));
    Ok(Evidence {
        facts_known,
        signed: signed.iter().any(|s| s.kind == SignedKind::Signature),
        tested: recorded || signed.iter().any(|s| s.tests == Some(Tests::Passed)),
    })
}
