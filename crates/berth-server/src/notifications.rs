//! Notifications under `berth serve`: on the replica holding the `notifications` lease, every
//! interval, events are looked for — the audit log from its cursor (promotions, rollbacks,
//! drift, blocked slots, retention's deletions), the freshness pass's stale images, catalog
//! entries near their end of life still in use, repositories failing to sync, admission
//! denials gathered per window — and recorded once each with a delivery per target that hears
//! it (berth-store's outbox, fenced by the lease); then due deliveries are sent (Standard
//! Webhooks or Slack) and retried with backoff. Counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_core::notify::{self, Deletion, EVENT_KINDS, Event, Settings, TargetKind};
use berth_hooks::{Outcome, Outgoing, Sender, SigningSecret};
use berth_store::notifications::{Delivery, DeliveryResult, Found, StoredEvent};
use berth_store::{Store, StoreError, UsageQuery, UsageView};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::Clock;
use crate::freshness::FreshnessState;
use crate::leases::LeaseHolder;
use crate::reload::CatalogState;

/// The lease (and `task_runs` task) notifications run under.
pub const LEASE: &str = "notifications";
/// The audit log's cursor; the stale set's (set once its first look recorded what was
/// already stale without telling).
const AUDIT_CURSOR: &str = "audit";
const STALE_CURSOR: &str = "stale";
/// Audit entries read per look, deliveries sent per look.
const AUDIT_BATCH: u32 = 500;
const DELIVERY_BATCH: u32 = 100;
/// Workloads an eol-soon message names.
const USES_SHOWN_MAX: usize = 50;
/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one target's messages go, with its secret read.
#[derive(Clone)]
enum Destination {
    Webhook {
        url: url::Url,
        secret: SigningSecret,
    },
    Slack {
        url: url::Url,
    },
}

/// The targets, ready to send to.
#[derive(Clone)]
pub struct Notifier {
    pub settings: Settings,
    destinations: BTreeMap<String, Destination>,
    sender: Sender,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.destinations.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PartialEq for Notifier {
    fn eq(&self, other: &Self) -> bool {
        // Secrets and the HTTP client are not comparable; settings are compared only in tests.
        self.settings == other.settings
    }
}

impl Eq for Notifier {}

impl Notifier {
    /// Reads every target's secret (`env` looks up environment variables). An error names the
    /// target and what is wrong, never the secret.
    pub fn new(
        settings: Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Notifier, String> {
        let mut destinations = BTreeMap::new();
        for target in &settings.targets {
            let problem =
                |problem: String| format!("notification target {}: {problem}", target.name);
            let destination = match &target.kind {
                TargetKind::Webhook { url, secret } => {
                    let text = berth_hooks::read_secret(secret, env).map_err(problem)?;
                    Destination::Webhook {
                        url: url::Url::parse(url).map_err(|error| problem(error.to_string()))?,
                        secret: SigningSecret::parse(&text)
                            .map_err(|error| problem(error.to_string()))?,
                    }
                }
                TargetKind::Slack { url } => {
                    let text = berth_hooks::read_secret(url, env).map_err(problem)?;
                    let url = url::Url::parse(&text)
                        .ok()
                        .filter(|url| matches!(url.scheme(), "https" | "http"))
                        .ok_or_else(|| problem("the secret is not an http(s) URL".to_string()))?;
                    Destination::Slack { url }
                }
            };
            destinations.insert(target.name.clone(), destination);
        }
        let sender = Sender::new(SEND_TIMEOUT).map_err(|error| error.to_string())?;
        Ok(Notifier {
            settings,
            destinations,
            sender,
        })
    }

    /// The request that tells `target` about `event`; `message_id` is its idempotency key.
    pub fn outgoing(
        &self,
        target: &str,
        event: &Event,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Option<Outgoing> {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        let (url, body) = match self.destinations.get(target)? {
            Destination::Webhook { url, secret } => {
                let body = notify::webhook_body(event);
                for (name, value) in
                    berth_hooks::standard_headers(secret, message_id, now.timestamp(), &body)
                {
                    headers.push((name.to_string(), value));
                }
                (url.clone(), body)
            }
            Destination::Slack { url } => (url.clone(), notify::slack_body(event)),
        };
        Some(Outgoing { url, headers, body })
    }

    /// Sends `event` to `target` once.
    pub async fn send(
        &self,
        target: &str,
        event: &Event,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Option<Outcome> {
        let outgoing = self.outgoing(target, event, message_id, now)?;
        Some(self.sender.send(&outgoing).await)
    }

    /// The targets that hear `kind`.
    fn hearing(&self, kind: &str) -> Vec<String> {
        self.settings
            .targets
            .iter()
            .filter(|target| target.events.contains(kind))
            .map(|target| target.name.clone())
            .collect()
    }
}

/// The idempotency key of a recorded event: the same on every attempt, distinct across stores.
pub fn message_id(event: &StoredEvent) -> String {
    let hash = Sha256::digest(event.key.as_bytes());
    let hex: String = hash
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("msg_berth_{}_{hex}", event.id)
}

/// A recorded event as the bodies read it; `None` for a kind this build does not know.
fn as_event(stored: &StoredEvent) -> Option<Event> {
    let kind = EVENT_KINDS.iter().find(|kind| **kind == stored.kind)?;
    Some(Event {
        key: stored.key.clone(),
        kind,
        at: stored.at,
        subject: stored.subject.clone(),
        summary: stored.summary.clone(),
        data: stored.data.clone(),
    })
}

/// What this replica's looks did, for `/metrics`.
#[derive(Default)]
struct Counters {
    /// (target, result) → attempts.
    sent: BTreeMap<(String, &'static str), u64>,
    /// Events recorded.
    recorded: u64,
    looks_ok: u64,
    looks_failed: u64,
}

pub struct NotifyState {
    pub notifier: Notifier,
    counters: Mutex<Counters>,
}

impl NotifyState {
    pub fn new(notifier: Notifier) -> NotifyState {
        NotifyState {
            notifier,
            counters: Mutex::default(),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `berth_notifications_sent_total{target,result}`, `berth_notifications_events_total{kind}`
    /// and `berth_notifications_look_total{result}`.
    pub fn metrics(&self) -> String {
        let counters = self.counters();
        let mut text = String::new();
        let sent: Vec<(String, f64)> = counters
            .sent
            .iter()
            .map(|((target, result), count)| {
                (
                    format!("{{target=\"{target}\",result=\"{result}\"}}"),
                    *count as f64,
                )
            })
            .collect();
        let sent: Vec<(&str, f64)> = sent
            .iter()
            .map(|(labels, n)| (labels.as_str(), *n))
            .collect();
        crate::metrics::write_metric(
            &mut text,
            "berth_notifications_sent_total",
            "counter",
            "Notification delivery attempts by target and result (delivered, retry, failed).",
            &sent,
        );
        crate::metrics::write_metric(
            &mut text,
            "berth_notifications_events_total",
            "counter",
            "Events this replica recorded for notification.",
            &[("", counters.recorded as f64)],
        );
        crate::metrics::write_metric(
            &mut text,
            "berth_notifications_look_total",
            "counter",
            "Looks for events and due deliveries on this replica by result.",
            &[
                (r#"{result="success"}"#, counters.looks_ok as f64),
                (r#"{result="failure"}"#, counters.looks_failed as f64),
            ],
        );
        text
    }
}

/// What the notifications task runs with.
pub struct NotifyTask {
    pub state: Arc<NotifyState>,
    pub store: Store,
    pub catalog: Arc<CatalogState>,
    /// This replica's freshness pass, when freshness is configured (for `stale`).
    pub freshness: Option<Arc<FreshnessState>>,
    pub clock: Clock,
    pub lease: LeaseHolder,
}

/// Looks for events and delivers due messages every interval on the lease holder, until
/// `stopped`.
pub async fn schedule(task: NotifyTask, mut stopped: watch::Receiver<bool>) {
    let NotifyTask {
        state,
        store,
        catalog,
        freshness,
        clock,
        lease,
    } = task;
    let interval = state.notifier.settings.interval;
    let mut held;
    loop {
        held = lease.claim().await;
        if let Some(fence) = &held {
            let fenced = store.fenced(fence.clone());
            let work = look(&state, &fenced, &catalog, freshness.as_deref(), &clock);
            match lease.renewing(fence, work, || {}).await {
                Ok(()) => state.counters().looks_ok += 1,
                Err(error) => {
                    state.counters().looks_failed += 1;
                    tracing::warn!(error = %error, "notifications: look failed");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::until_stopped(&mut stopped) => break,
        }
    }
    if let Some(fence) = &held {
        lease.release(fence).await;
    }
}

/// One look: find and record events, then send what is due.
async fn look(
    state: &NotifyState,
    store: &Store,
    catalog: &CatalogState,
    freshness: Option<&FreshnessState>,
    clock: &Clock,
) -> Result<(), StoreError> {
    let notifier = &state.notifier;
    let now = clock();
    let mut recorded = from_audit(notifier, store, now).await?;
    if notifier.settings.heard("stale")
        && let Some(freshness) = freshness
    {
        recorded += stale(notifier, store, freshness, now).await?;
    }
    if notifier.settings.heard("eol-soon")
        && let Some(snapshot) = catalog.snapshot()
    {
        recorded += eol_soon(notifier, store, &snapshot.catalog, now).await?;
    }
    if notifier.settings.heard("sync-failing") {
        recorded += sync_failing(notifier, store, now).await?;
    }
    if notifier.settings.heard("admission-denied") {
        recorded += denials(notifier, store, now).await?;
    }
    state.counters().recorded += recorded as u64;
    deliver(state, store, clock).await
}

/// Records `events` (each with the targets hearing it) and the rest of `found`; returns the
/// number of events recorded for the first time.
async fn record(
    notifier: &Notifier,
    store: &Store,
    events: &[Event],
    mut found: Found<'_>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    found.events = events
        .iter()
        .map(|event| (event, notifier.hearing(event.kind)))
        .filter(|(_, targets)| !targets.is_empty())
        .collect();
    if found.events.is_empty() && found.cursor.is_none() && found.consumed_denials.is_empty() {
        return Ok(0);
    }
    store.record_notifications(&found, now).await
}

/// The audit log from its cursor. The first look starts at the log's end: history from before
/// notifications were configured is not sent.
async fn from_audit(
    notifier: &Notifier,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let Some(cursor) = store.notification_cursor(AUDIT_CURSOR).await? else {
        let end = store.last_audit_id().await?;
        let found = Found {
            cursor: Some((AUDIT_CURSOR, end)),
            ..Found::default()
        };
        store.record_notifications(&found, now).await?;
        return Ok(0);
    };
    let entries = store.audit_after(cursor, AUDIT_BATCH).await?;
    let Some(last) = entries.last().map(|entry| entry.id) else {
        return Ok(0);
    };
    let mut events = Vec::new();
    let mut deletions = Vec::new();
    for logged in &entries {
        let entry = &logged.entry;
        if entry.action == berth_retention::AUDIT_ACTION {
            let before = entry.before.as_ref();
            deletions.push(Deletion {
                audit_id: logged.id,
                subject: entry.subject.clone(),
                bytes: before
                    .and_then(|before| before.get("bytes"))
                    .and_then(serde_json::Value::as_u64),
                tags: before
                    .and_then(|before| before.get("tags"))
                    .and_then(|tags| serde_json::from_value(tags.clone()).ok())
                    .unwrap_or_default(),
            });
            continue;
        }
        if let Some(event) = notify::from_audit(
            logged.id,
            entry.at,
            &entry.actor,
            &entry.action,
            &entry.subject,
            entry.before.as_ref(),
            entry.after.as_ref(),
        ) {
            events.push(event);
        }
    }
    events.extend(notify::retention_applied(now, &deletions));
    let found = Found {
        cursor: Some((AUDIT_CURSOR, last)),
        ..Found::default()
    };
    record(notifier, store, &events, found, now).await
}

/// The last freshness pass's stale images, once per digest and reasons. The first look records
/// what is already stale without telling anyone.
async fn stale(
    notifier: &Notifier,
    store: &Store,
    freshness: &FreshnessState,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let Some((report, _)) = freshness.last() else {
        return Ok(0);
    };
    let events: Vec<Event> = report
        .stale
        .iter()
        .map(|image| notify::stale(image, now))
        .collect();
    if store.notification_cursor(STALE_CURSOR).await?.is_none() {
        let quiet: Vec<(&Event, Vec<String>)> =
            events.iter().map(|event| (event, Vec::new())).collect();
        let found = Found {
            events: quiet,
            cursor: Some((STALE_CURSOR, 1)),
            ..Found::default()
        };
        store.record_notifications(&found, now).await?;
        return Ok(0);
    }
    record(notifier, store, &events, Found::default(), now).await
}

/// Catalog entries whose end of life is within `eol_within`, with the workloads still using
/// them (entries nobody uses are not worth a message).
async fn eol_soon(
    notifier: &Notifier,
    store: &Store,
    catalog: &berth_core::catalog::Catalog,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let today = now.date_naive();
    let horizon = now
        + chrono::Duration::from_std(notifier.settings.eol_within).unwrap_or(chrono::Duration::MAX);
    let mut events = Vec::new();
    for entry in catalog.entries() {
        let Some(eol_on) = entry.lifecycle.eol_on else {
            continue;
        };
        if eol_on < today || eol_on > horizon.date_naive() {
            continue;
        }
        let repositories: Vec<String> =
            entry.images().map(|(_, image)| image.canonical()).collect();
        if repositories.is_empty() {
            continue;
        }
        let uses = store
            .usage(&UsageQuery {
                repositories,
                limit: Some(USES_SHOWN_MAX as u32),
                ..UsageQuery::default()
            })
            .await?;
        if uses.is_empty() {
            continue;
        }
        let uses: Vec<serde_json::Value> = uses
            .iter()
            .map(|entry| serde_json::to_value(UsageView::from(entry)).unwrap_or_default())
            .collect();
        events.push(notify::eol_soon(
            &entry.name,
            eol_on,
            entry.lifecycle.replacement.as_deref(),
            &uses,
            now,
        ));
    }
    record(notifier, store, &events, Found::default(), now).await
}

/// Repositories whose sync has been failing longer than `sync_failing_for`.
async fn sync_failing(
    notifier: &Notifier,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let threshold = chrono::Duration::from_std(notifier.settings.sync_failing_for)
        .unwrap_or(chrono::Duration::MAX);
    let mut events = Vec::new();
    for status in store.failing_repositories().await? {
        let sync = &status.sync;
        let (Some(error), Some(since)) = (&sync.last_error, status.failing_since) else {
            continue;
        };
        if now - since < threshold {
            continue;
        }
        events.push(notify::sync_failing(
            &status.repository.to_string(),
            since,
            sync.last_sync_ok_at,
            error,
            now,
        ));
    }
    record(notifier, store, &events, Found::default(), now).await
}

/// Admission denials gathered per image over windows that have closed.
async fn denials(
    notifier: &Notifier,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let window = chrono::Duration::from_std(notifier.settings.denials_window)
        .unwrap_or(chrono::Duration::MAX);
    let closed = store.closed_denials(now - window).await?;
    if closed.is_empty() {
        return Ok(0);
    }
    let events: Vec<Event> = closed
        .iter()
        .map(|denials| notify::admission_denied(denials, now))
        .collect();
    let found = Found {
        consumed_denials: closed
            .iter()
            .map(|denials| (denials.image.clone(), denials.window_start))
            .collect(),
        ..Found::default()
    };
    record(notifier, store, &events, found, now).await
}

/// Sends every due delivery once and records what came of it.
async fn deliver(state: &NotifyState, store: &Store, clock: &Clock) -> Result<(), StoreError> {
    let notifier = &state.notifier;
    let due = store.due_notifications(clock(), DELIVERY_BATCH).await?;
    for delivery in due {
        let Delivery {
            target,
            event: stored,
            attempts,
            ..
        } = delivery;
        let now = clock();
        let result = match as_event(&stored) {
            None => DeliveryResult::Failed {
                error: format!("unknown event kind {:?}", stored.kind),
            },
            Some(event) => match notifier
                .send(&target, &event, &message_id(&stored), now)
                .await
            {
                // The target left the config: nothing to send it with.
                None => DeliveryResult::Failed {
                    error: "the target is no longer configured".to_string(),
                },
                Some(Outcome::Delivered { .. }) => DeliveryResult::Delivered,
                Some(Outcome::Rejected { status, excerpt }) => DeliveryResult::Failed {
                    error: format!("answered {status}: {excerpt}"),
                },
                Some(Outcome::Retry { reason, after }) => {
                    if attempts + 1 >= notifier.settings.attempts {
                        DeliveryResult::Failed {
                            error: format!("{reason} (after {} attempts)", attempts + 1),
                        }
                    } else {
                        let wait = after.unwrap_or_else(|| berth_hooks::backoff(attempts));
                        DeliveryResult::Retry {
                            error: reason,
                            next: now
                                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
                        }
                    }
                }
            },
        };
        let label = match &result {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retry { .. } => "retry",
            DeliveryResult::Failed { .. } => "failed",
        };
        if let DeliveryResult::Failed { error } = &result {
            tracing::warn!(target_name = %target, event = %stored.key, error = %error, "notification not delivered");
        }
        *state
            .counters()
            .sent
            .entry((target.clone(), label))
            .or_default() += 1;
        store
            .record_notification_attempt(stored.id, &target, &result, clock())
            .await?;
    }
    Ok(())
}
