//! The scheduler: at each tick, every promotion rule for every image variant it applies to —
//! a first publish when the target has nothing yet, and a scheduled promotion when a slot is due
//! (once per slot, claimed in the store so replicas do not both run it, catching up once after
//! downtime). [`tick`] is one pass at a given `now`; [`run`] calls it on an interval with the
//! clock it is given, until shutdown.

use std::future::Future;
use std::time::Duration;

use berth_core::catalog::Catalog;
use berth_core::channels::{self, Due, FirstPublish, PromotionRule, Request, RulesFile, Trigger};
use berth_oci::Client;
use berth_store::{PromotionKey, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ChannelError;
use crate::ops::{self, Outcome, PromoteRequest};
use crate::subject::Subject;

/// The actor of the scheduler's moves.
pub const SCHEDULER_ACTOR: &str = "berth-scheduler";

/// What one tick did for one rule and image variant.
#[derive(Debug, Serialize)]
pub struct Ran {
    pub subject: String,
    pub from: String,
    pub to: String,
    /// The schedule slot this run was for; `None` for a first publish.
    pub slot: Option<DateTime<Utc>>,
    /// Slots missed during downtime and not run one by one.
    pub missed: u32,
    pub outcome: Result<Outcome, String>,
}

/// One pass at `now`. Errors of one image do not stop the others: they are in its [`Ran`].
pub async fn tick(
    client: &Client,
    store: &Store,
    catalog: &Catalog,
    rules: &RulesFile,
    now: DateTime<Utc>,
) -> Result<Vec<Ran>, ChannelError> {
    let mut ran = Vec::new();
    for rule in &rules.promotions {
        for entry in catalog
            .entries()
            .iter()
            .filter(|entry| rule.applies_to(entry))
        {
            for (variant, image) in entry.images() {
                let subject = Subject {
                    name: entry.name.clone(),
                    variant: variant.map(str::to_string),
                    image: image.clone(),
                };
                // A rule to another variant runs from one source: its `from_variant`, else the
                // entry's default image.
                if rule.to_variant.is_some() && subject.variant != rule.from_variant {
                    continue;
                }
                // Soak counts from when berth saw a digest on the source: look every tick.
                if let Err(error) = ops::check(client, store, &subject, &rule.from, now).await {
                    tracing::warn!(image = %subject.label(), channel = %rule.from, error = %error_text(&error), "cannot read the source channel");
                    continue;
                }
                if let Some(done) = first_publish(client, store, &subject, entry, rule, now).await {
                    ran.push(done);
                    continue;
                }
                if let Some(done) = scheduled(client, store, &subject, entry, rule, now).await? {
                    ran.push(done);
                }
            }
        }
    }
    Ok(ran)
}

/// Promotes at once when the rule says so and the target has nothing, in berth's history and
/// in the registry.
async fn first_publish(
    client: &Client,
    store: &Store,
    subject: &Subject,
    entry: &berth_core::catalog::CatalogEntry,
    rule: &PromotionRule,
    now: DateTime<Utc>,
) -> Option<Ran> {
    if rule.first_publish != FirstPublish::Immediate {
        return None;
    }
    let run = async {
        // Records a tag that exists without berth knowing it, so it is not published over.
        let target_subject = ops::target_of(subject, entry, rule)?;
        let (target, _) = ops::check(client, store, &target_subject, &rule.to, now).await?;
        if target.current().is_some() {
            return Ok(None);
        }
        let request = PromoteRequest {
            rule,
            request: Request::Scheduled,
            actor: SCHEDULER_ACTOR.to_string(),
            reason: "first publish".to_string(),
            force: false,
            stamp: rule.stamp,
        };
        let outcome = ops::promote(client, store, subject, entry, &request, now).await?;
        Ok::<_, ChannelError>(Some(outcome))
    };
    let outcome = match run.await {
        Ok(None) => return None,
        Ok(Some(outcome)) if matches!(outcome.action, ops::Action::Unchanged { digest: None }) => {
            return None;
        }
        Ok(Some(outcome)) => Ok(outcome),
        Err(error) => Err(error_text(&error)),
    };
    Some(Ran {
        subject: subject.label(),
        from: rule.from.to_string(),
        to: rule.to.to_string(),
        slot: None,
        missed: 0,
        outcome,
    })
}

/// Runs the rule's due slot, if any, once: the slot is claimed in the store first.
async fn scheduled(
    client: &Client,
    store: &Store,
    subject: &Subject,
    entry: &berth_core::catalog::CatalogEntry,
    rule: &PromotionRule,
    now: DateTime<Utc>,
) -> Result<Option<Ran>, ChannelError> {
    if matches!(rule.trigger, Trigger::Manual) {
        return Ok(None);
    }
    let key = PromotionKey {
        catalog_name: subject.name.clone(),
        variant: subject.variant.clone(),
        from: rule.from.to_string(),
        to: rule.to.to_string(),
    };
    let Some(last) = store.promotion_slot(&key).await? else {
        // First sight of this rule for this image: slots count from now on.
        store.claim_promotion_slot(&key, None, now, now).await?;
        return Ok(None);
    };
    let Due::Now { slot, missed } = channels::due(rule, last, now) else {
        return Ok(None);
    };
    if !store
        .claim_promotion_slot(&key, Some(last), slot, now)
        .await?
    {
        // Another replica claimed it: it runs this slot.
        return Ok(None);
    }
    let request = PromoteRequest {
        rule,
        request: Request::Scheduled,
        actor: SCHEDULER_ACTOR.to_string(),
        reason: format!("scheduled ({})", slot.to_rfc3339()),
        force: false,
        stamp: rule.stamp,
    };
    let outcome = ops::promote(client, store, subject, entry, &request, now)
        .await
        .map_err(|error| error_text(&error));
    if let Ok(outcome) = &outcome {
        tracing::info!(image = %subject.label(), to = %rule.to, %slot, missed, action = ?outcome.action, "scheduled promotion");
        // A slot that found the promotion blocked is an audit entry (notifications read it).
        if let ops::Action::Blocked { digest, reasons } = &outcome.action {
            let target = ops::target_of(subject, entry, rule)?;
            store
                .append_audit(&berth_store::AuditEntry {
                    at: now,
                    actor: SCHEDULER_ACTOR.to_string(),
                    action: berth_core::notify::AUDIT_BLOCKED.to_string(),
                    subject: crate::history::audit_subject(&target, &rule.to),
                    before: None,
                    after: Some(serde_json::json!({
                        "digest": digest,
                        "from": rule.from.to_string(),
                        "slot": slot,
                        "reasons": reasons,
                    })),
                })
                .await?;
        }
    }
    Ok(Some(Ran {
        subject: subject.label(),
        from: rule.from.to_string(),
        to: rule.to.to_string(),
        slot: Some(slot),
        missed,
        outcome,
    }))
}

/// The error and its causes on one line.
fn error_text(error: &ChannelError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Calls `pass(now)` now and then every `interval` until `shutdown` completes; `clock` is the
/// only place time is read (tests hand in one driven by paused tokio time).
pub async fn run<Pass, PassFuture>(
    clock: impl Fn() -> DateTime<Utc>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
    mut pass: Pass,
) where
    Pass: FnMut(DateTime<Utc>) -> PassFuture,
    PassFuture: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        pass(clock()).await;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use chrono::TimeDelta;

    use super::*;

    /// With paused time the loop passes at start and then once per interval, each time with the
    /// clock's `now`, and stops at shutdown without another pass.
    #[tokio::test(start_paused = true)]
    async fn the_loop_passes_every_interval_with_the_clock_it_is_given() {
        let base = DateTime::parse_from_rfc3339("2026-11-18T08:00:00Z")
            .unwrap()
            .to_utc();
        let started = tokio::time::Instant::now();
        let clock = || base + TimeDelta::from_std(started.elapsed()).unwrap();
        let passes = RefCell::new(Vec::new());
        let shutdown = tokio::time::sleep(Duration::from_secs(3 * 3600 + 1800));
        run(clock, Duration::from_secs(3600), shutdown, |now| {
            passes.borrow_mut().push(now.to_rfc3339());
            async {}
        })
        .await;
        assert_eq!(
            passes.into_inner(),
            [
                "2026-11-18T08:00:00+00:00",
                "2026-11-18T09:00:00+00:00",
                "2026-11-18T10:00:00+00:00",
                "2026-11-18T11:00:00+00:00",
            ]
        );
    }
}
