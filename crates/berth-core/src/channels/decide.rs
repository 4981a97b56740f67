//! The decisions about channels, as values: whether a scheduled rule is due (catching up once
//! after downtime), whether a promotion may happen now and what blocks it, where a rollback goes,
//! and whether the registry's tag agrees with the history berth recorded.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rule::{FirstPublish, Gate, PromotionRule, Trigger};
use super::{ChangeKind, ChannelState};
use crate::catalog::{CatalogEntry, State};
use crate::reference::Digest;

/// Whether a rule's schedule asks for a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "due", rename_all = "kebab-case")]
pub enum Due {
    /// Run now, once, for this slot (the latest one that has come: missed slots are not run
    /// one by one).
    Now {
        slot: DateTime<Utc>,
        /// Slots that passed without a run before `slot` (downtime), for the report.
        missed: u32,
    },
    /// Nothing until this slot.
    Later { at: DateTime<Utc> },
    /// The rule runs only by hand.
    Manual,
    /// The schedule has no slot after the last run (a cron naming a past year).
    Never,
}

/// The most missed slots [`due`] counts; past that the report says "at least".
const MISSED_COUNT_LIMIT: u32 = 1000;

/// Whether `rule` is due at `now`, given when it last ran (or, before its first run, when the
/// scheduler first saw it). The next slot is computed from the last run, so a scheduler that was
/// down for three slots runs once, for the latest.
pub fn due(rule: &PromotionRule, last_run: DateTime<Utc>, now: DateTime<Utc>) -> Due {
    let Trigger::Scheduled(schedule) = &rule.trigger else {
        return Due::Manual;
    };
    let Some(next) = schedule.next_after(last_run) else {
        return Due::Never;
    };
    if next > now {
        return Due::Later { at: next };
    }
    let slot = schedule.latest_at_or_before(now).unwrap_or(next);
    let mut missed = 0;
    let mut cursor = next;
    while cursor < slot && missed < MISSED_COUNT_LIMIT {
        missed += 1;
        match schedule.next_after(cursor) {
            Some(following) => cursor = following,
            None => break,
        }
    }
    Due::Now { slot, missed }
}

/// What is being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The scheduler at a due slot: the source's current digest, if everything allows.
    Scheduled,
    /// A person: the source's current digest, or one it held before (`--digest`).
    ByHand { digest: Option<Digest> },
}

/// What the store knows that gates need, about the candidate digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// The candidate's facts (platforms, OS, layers) are in the store.
    pub facts_known: bool,
    /// A trusted key's signature over the candidate was verified at sync.
    pub signed: bool,
    /// The candidate's tests passed (a pipeline's record or a verified attestation).
    pub tested: bool,
}

/// The outcome of [`evaluate_promotion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    Promote {
        digest: Digest,
        /// The target channel had nothing yet and the rule publishes new variants at once.
        first_publish: bool,
    },
    Blocked {
        digest: Digest,
        reasons: Vec<BlockReason>,
    },
    NothingToDo {
        why: Idle,
    },
}

/// Why there is nothing to promote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "idle", rename_all = "kebab-case")]
pub enum Idle {
    /// The source channel has no digest.
    SourceEmpty,
    /// The target already points at the candidate.
    AlreadyThere { digest: Digest },
}

/// One reason a promotion may not happen now. Each says when it would stop blocking, where
/// that is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "block", rename_all = "kebab-case")]
pub enum BlockReason {
    /// Not on the source long enough.
    Soaking { until: DateTime<Utc> },
    /// The catalog entry is deprecated or eol at `now`.
    Retired { state: State },
    /// berth has not read the candidate's facts yet.
    FactsUnknown,
    /// No trusted key's signature over the candidate is known.
    Unsigned,
    /// No passing test result is known for the candidate.
    Untested,
    /// Outside every promotion window.
    OutsideWindow,
    /// Inside a freeze.
    Frozen {
        until: DateTime<Utc>,
        reason: String,
    },
    /// `--digest` names a digest the source channel never held.
    NotOnSource,
    /// The target was rolled back from this digest: the scheduler does not bring it back (a
    /// person may, by hand).
    RolledBack { at: DateTime<Utc> },
    /// The target was moved outside berth after berth had moved it (a hand fix): it stays as
    /// it is until a person acknowledges the change ([`ChannelState::held`]).
    Held {
        since: DateTime<Utc>,
        digest: Digest,
    },
}

impl std::fmt::Display for BlockReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockReason::Soaking { until } => {
                write!(f, "soaking on the source until {}", seconds(*until))
            }
            BlockReason::Retired { state } => write!(f, "the image is {state}"),
            BlockReason::FactsUnknown => f.write_str("berth does not know the image's facts yet"),
            BlockReason::Unsigned => f.write_str(
                "no signature by a trusted key is known (cosign sign, then berth sync --policy)",
            ),
            BlockReason::Untested => f.write_str(
                "no passing test result is known (berth provenance record --tests passed, or a \
                 signed test-result attestation)",
            ),
            BlockReason::OutsideWindow => f.write_str("outside every promotion window"),
            BlockReason::Frozen { until, reason } => {
                write!(f, "frozen until {} ({reason})", seconds(*until))
            }
            BlockReason::NotOnSource => f.write_str("the source channel never held this digest"),
            BlockReason::RolledBack { at } => write!(
                f,
                "the target was rolled back from it at {}; promote it by hand to bring it back",
                seconds(*at)
            ),
            BlockReason::Held { since, digest } => write!(
                f,
                "the target was moved outside berth at {} (to {digest}) and is held; \
                 `berth channels ack` accepts that change, --force promotes over it",
                seconds(*since)
            ),
        }
    }
}

/// A moment for people, to the second: history times carry microseconds, which a deadline
/// computed from them ("soaking until") would print otherwise.
fn seconds(at: DateTime<Utc>) -> impl std::fmt::Display {
    at.format("%Y-%m-%d %H:%M:%S UTC")
}

/// Whether `rule` may move `target` to a digest of `source` at `now`, and which; every
/// blocking reason is listed, not just the first.
pub fn evaluate_promotion(
    source: &ChannelState,
    target: &ChannelState,
    rule: &PromotionRule,
    entry: &CatalogEntry,
    evidence: Evidence,
    request: &Request,
    now: DateTime<Utc>,
) -> Decision {
    let candidate = match request {
        Request::ByHand {
            digest: Some(digest),
        } => digest.clone(),
        _ => match source.current() {
            Some(digest) => digest.clone(),
            None => {
                return Decision::NothingToDo {
                    why: Idle::SourceEmpty,
                };
            }
        },
    };
    if target.current() == Some(&candidate) {
        return Decision::NothingToDo {
            why: Idle::AlreadyThere { digest: candidate },
        };
    }
    let first_publish = target.current().is_none() && rule.first_publish == FirstPublish::Immediate;
    let mut reasons = Vec::new();
    if let Some(held) = target.held() {
        reasons.push(BlockReason::Held {
            since: held.at,
            digest: held.digest.clone(),
        });
    }
    for gate in &rule.gates {
        match gate {
            Gate::NotRetired => {
                let state = entry.lifecycle.at(now).state;
                if state != State::Stable {
                    reasons.push(BlockReason::Retired { state });
                }
            }
            Gate::FactsKnown => {
                if !evidence.facts_known {
                    reasons.push(BlockReason::FactsUnknown);
                }
            }
            Gate::Signed => {
                if !evidence.signed {
                    reasons.push(BlockReason::Unsigned);
                }
            }
            Gate::Tested => {
                if !evidence.tested {
                    reasons.push(BlockReason::Untested);
                }
            }
        }
    }
    if *request == Request::Scheduled
        && let Some(rollback) = target.history.iter().rev().find(|entry| {
            entry.kind == ChangeKind::Rollback && entry.previous.as_ref() == Some(&candidate)
        })
    {
        reasons.push(BlockReason::RolledBack { at: rollback.at });
    }
    match source.stint(&candidate) {
        None => reasons.push(BlockReason::NotOnSource),
        Some((start, end)) if !first_publish => {
            let ready = start + rule.soak;
            // A digest that left the source counts the time it was there.
            if end.unwrap_or(now) < ready {
                reasons.push(BlockReason::Soaking { until: ready });
            }
        }
        Some(_) => {}
    }
    if !first_publish {
        if !rule.windows.is_empty()
            && !rule
                .windows
                .iter()
                .any(|window| window.contains(now, rule.zone))
        {
            reasons.push(BlockReason::OutsideWindow);
        }
        if let Some(freeze) = rule
            .freezes
            .iter()
            .find(|freeze| freeze.from <= now && now < freeze.until)
        {
            reasons.push(BlockReason::Frozen {
                until: freeze.until,
                reason: freeze.reason.clone(),
            });
        }
    }
    if reasons.is_empty() {
        Decision::Promote {
            digest: candidate,
            first_publish,
        }
    } else {
        Decision::Blocked {
            digest: candidate,
            reasons,
        }
    }
}

/// Why a rollback cannot happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefused {
    #[error("the channel has no earlier digest to roll back to")]
    NothingEarlier,
    #[error("the channel never pointed at {0}; a rollback goes only to a digest it held")]
    NotInHistory(Digest),
    #[error("the channel already points at {0}")]
    AlreadyThere(Digest),
}

/// Where a rollback of `channel` goes: `to` when given (it must be in the history), else the
/// latest earlier digest that is neither the current one nor one a rollback moved away from —
/// so rolling back twice goes two steps back instead of returning to the bad digest.
pub fn rollback_target(
    channel: &ChannelState,
    to: Option<&Digest>,
) -> Result<Digest, RollbackRefused> {
    let current = channel.current();
    if let Some(to) = to {
        if current == Some(to) {
            return Err(RollbackRefused::AlreadyThere(to.clone()));
        }
        if !channel.has_held(to) {
            return Err(RollbackRefused::NotInHistory(to.clone()));
        }
        return Ok(to.clone());
    }
    let rolled_back_from: Vec<&Digest> = channel
        .history
        .iter()
        .filter(|entry| entry.kind == ChangeKind::Rollback)
        .filter_map(|entry| entry.previous.as_ref())
        .collect();
    channel
        .history
        .iter()
        .rev()
        .map(|entry| &entry.digest)
        .find(|digest| Some(*digest) != current && !rolled_back_from.contains(digest))
        .cloned()
        .ok_or(RollbackRefused::NothingEarlier)
}

/// What the registry's tag says compared with berth's history of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "observation", rename_all = "kebab-case")]
pub enum Observation {
    /// The tag points where berth last put it (or both are empty).
    Agrees,
    /// berth has no history of this channel and the tag exists: adopt it as the first entry.
    FirstSight { found: Digest },
    /// The tag points at `intended`, which berth meant to put there but had not recorded: a run
    /// stopped between the registry write and the history write. Record the missing entry.
    Unrecorded { found: Digest },
    /// Someone else moved the tag. Record it as an outside change and report it.
    Drift {
        recorded: Digest,
        found: Option<Digest>,
    },
}

/// Compares the tag's digest in the registry (`found`, `None`: no such tag) with the history,
/// knowing which digest the current operation means to put there (`intended`).
pub fn observe(
    channel: &ChannelState,
    found: Option<&Digest>,
    intended: Option<&Digest>,
) -> Observation {
    match (channel.current(), found) {
        (recorded, found) if recorded == found => Observation::Agrees,
        (None, Some(found)) if Some(found) == intended => Observation::Unrecorded {
            found: found.clone(),
        },
        (None, Some(found)) => Observation::FirstSight {
            found: found.clone(),
        },
        (Some(_), Some(found)) if Some(found) == intended => Observation::Unrecorded {
            found: found.clone(),
        },
        (Some(recorded), found) => Observation::Drift {
            recorded: recorded.clone(),
            found: found.cloned(),
        },
        (None, None) => Observation::Agrees,
    }
}
