//! Carries out rebuild decisions (berth-core's `rebuild`) over berth-store and berth-hooks: one
//! pass reads what the store knows, records what landed, records each new dispatch with its
//! audit entry *before* sending it, and sends it to its target — GitHub `repository_dispatch`,
//! a GitLab pipeline trigger, or a webhook signed as Standard Webhooks sign — retrying 5xx, 429
//! and lost connections with backoff. A dispatch recorded but not delivered (a crash, a
//! receiver down) is sent again by the next pass with the same idempotency key: never lost,
//! and never sent under a new key.
//!
//! The caller holds the `rebuild` lease and passes a fenced store (berth-server's task, or
//! `berth rebuild run`), so two replicas never dispatch the same pass.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_core::catalog::Catalog;
use berth_core::freshness::{self, Settings};
use berth_core::rebuild::{self, Held, ItemState, RebuildSettings, TargetKind};
use berth_hooks::{Outcome, Outgoing, Sender, SigningSecret};
use berth_store::rebuild::{Attempt, DispatchRecord};
use berth_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The lease (and `task_runs` task) rebuild passes run under.
pub const LEASE: &str = "rebuild";
/// GitHub's limit on a `repository_dispatch` body's `client_payload`.
pub const GITHUB_PAYLOAD_MAX: usize = 64 * 1024;

/// Why a rebuild pass could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A target's token or secret cannot be read.
    #[error("rebuild target {target}: {problem}")]
    Secret { target: String, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision's blocking thread failed (a panic).
    #[error("the rebuild decision failed: {0}")]
    Decision(String),
}

/// A target's token or signing secret, read once. `Debug` never shows it.
#[derive(Clone)]
enum Secret {
    Token(String),
    Signing(SigningSecret),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Settings with their secrets read, and the one HTTP sender.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pub settings: RebuildSettings,
    secrets: BTreeMap<String, Secret>,
    sender: Sender,
    /// Who the audit log names for dispatches (`berth`, or the person running the CLI).
    pub actor: String,
}

impl PartialEq for Dispatcher {
    fn eq(&self, other: &Self) -> bool {
        // Secrets and the HTTP client are not comparable; settings are compared only in tests.
        self.settings == other.settings && self.actor == other.actor
    }
}

impl Eq for Dispatcher {}

/// What one pass did (what `berth rebuild run --json` prints).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub dry_run: bool,
    pub decided_at: String,
    /// Dispatches decided this pass (and, unless dry, sent).
    pub dispatched: Vec<Sent>,
    /// Earlier dispatches delivered this pass (after a crash or a retry wait).
    pub redelivered: Vec<Sent>,
    pub held: Vec<Held>,
    pub closed: Vec<ClosedImage>,
    pub timed_out: Vec<i64>,
    pub suspended: Vec<String>,
}

/// One dispatch and how its delivery went.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub id: Option<i64>,
    pub key: Option<String>,
    pub target: String,
    pub images: Vec<String>,
    /// `delivered`, `retry` (will be sent again), `failed`, or `planned` (dry run).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An image whose channel moved since its dispatch.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedImage {
    pub dispatch: i64,
    pub reference: String,
    pub platform: String,
    /// `closed`, `rebuilt-on-old-base` or `gone`.
    pub state: &'static str,
    pub new_digest: Option<String>,
    pub time_to_fresh_seconds: Option<u64>,
}

impl Dispatcher {
    /// Reads every target's secret (`env` looks up environment variables) and builds the
    /// sender, whose every request ends within `timeout`.
    pub fn new(
        settings: RebuildSettings,
        env: &dyn Fn(&str) -> Option<String>,
        timeout: Duration,
        actor: &str,
    ) -> Result<Dispatcher, RebuildError> {
        let mut secrets = BTreeMap::new();
        for target in &settings.targets {
            let problem = |problem: String| RebuildError::Secret {
                target: target.name.clone(),
                problem,
            };
            let text = berth_hooks::read_secret(&target.secret, env).map_err(problem)?;
            let secret = match target.kind {
                TargetKind::Webhook { .. } => Secret::Signing(
                    SigningSecret::parse(&text).map_err(|error| problem(error.to_string()))?,
                ),
                _ => Secret::Token(text),
            };
            secrets.insert(target.name.clone(), secret);
        }
        let sender = Sender::new(timeout).map_err(|error| RebuildError::Secret {
            target: String::new(),
            problem: error.to_string(),
        })?;
        Ok(Dispatcher {
            settings,
            secrets,
            sender,
            actor: actor.to_string(),
        })
    }

    /// One pass at `now`: deliver what is due, close what landed, dispatch what is stale.
    /// `dry_run` decides and reports without writing or sending anything.
    pub async fn pass(
        &self,
        store: &Store,
        catalog: &Catalog,
        freshness_settings: &Settings,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PassReport, RebuildError> {
        let mut report = PassReport {
            dry_run,
            decided_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ..PassReport::default()
        };
        if !dry_run {
            report.redelivered = self.deliver_due(store, now).await?;
        }
        let facts = store.freshness_facts().await?;
        let ledger = store.rebuild_ledger(now).await?;
        // A second of work at 100k images: off the async threads, as the freshness pass is.
        let (catalog, freshness_settings, settings) = (
            catalog.clone(),
            freshness_settings.clone(),
            self.settings.clone(),
        );
        let (held, decision) = tokio::task::spawn_blocking(move || {
            let stale = freshness::stale(&catalog, &facts, &freshness_settings, now);
            let (dispatchable, held) = rebuild::dispatchable(&stale, &catalog, &settings);
            let plan = freshness::plan(&dispatchable, |image| {
                settings.target_of(&catalog, image).map(str::to_string)
            });
            let decision = rebuild::decide(&plan, &dispatchable, &facts, &ledger, &settings, now);
            (held, decision)
        })
        .await
        .map_err(|error| RebuildError::Decision(error.to_string()))?;
        report.held = held;
        report.held.extend(decision.held.iter().cloned());
        report.timed_out = decision.timed_out.clone();
        report.closed = decision
            .closings
            .iter()
            .map(|closing| ClosedImage {
                dispatch: closing.dispatch,
                reference: closing.reference.to_string(),
                platform: closing.platform.clone(),
                state: closing.state.as_str(),
                new_digest: closing.new_digest.as_ref().map(|d| d.to_string()),
                time_to_fresh_seconds: closing.time_to_fresh.map(|t| t.as_secs()),
            })
            .collect();
        if dry_run {
            report.dispatched = decision
                .send
                .iter()
                .map(|dispatch| Sent {
                    id: None,
                    key: None,
                    target: dispatch.target.clone(),
                    images: dispatch
                        .items
                        .iter()
                        .map(|item| item.reference.to_string())
                        .collect(),
                    result: "planned",
                    error: None,
                })
                .collect();
            return Ok(report);
        }
        report.suspended = store
            .record_rebuild_outcomes(
                &decision.closings,
                &decision.finished,
                &decision.timed_out,
                self.settings.suspend_after,
                now,
            )
            .await?;
        for closing in &decision.closings {
            match closing.state {
                ItemState::RebuiltOnOldBase => tracing::warn!(
                    image = %closing.reference,
                    platform = %closing.platform,
                    "rebuilt on the old base: the build reused a cached base layer"
                ),
                ItemState::Closed => tracing::info!(
                    image = %closing.reference,
                    time_to_fresh_s = closing.time_to_fresh.map(|t| t.as_secs()),
                    "rebuild landed on the new base"
                ),
                _ => {}
            }
        }
        for dispatch in &decision.send {
            let images: Vec<serde_json::Value> = dispatch
                .items
                .iter()
                .map(|item| {
                    serde_json::json!({
                        "reference": item.reference.to_string(),
                        "platform": item.platform,
                        "digest": item.digest.as_str(),
                        "reasons": item.reasons,
                        "stale_since": item.stale_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    })
                })
                .collect();
            let body = serde_json::Value::Array(images).to_string();
            // Recorded (with its audit entry) before the first byte goes out.
            let record = store
                .record_dispatch(dispatch, &body, &self.actor, now)
                .await?;
            let record = DispatchRecord {
                items: Vec::new(),
                ..record
            };
            report
                .dispatched
                .push(self.deliver(store, &record, now).await?);
        }
        Ok(report)
    }

    /// Sends every recorded dispatch whose next attempt is due (after a crash, or a receiver
    /// that answered 5xx or 429), with its key unchanged.
    pub async fn deliver_due(
        &self,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Vec<Sent>, RebuildError> {
        let mut sent = Vec::new();
        for record in store.due_dispatches(now).await? {
            sent.push(self.deliver(store, &record, now).await?);
        }
        Ok(sent)
    }

    /// One delivery attempt of a recorded dispatch, and its outcome recorded.
    async fn deliver(
        &self,
        store: &Store,
        record: &DispatchRecord,
        now: DateTime<Utc>,
    ) -> Result<Sent, RebuildError> {
        let images: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&record.body)
            .unwrap_or_default()
            .iter()
            .filter_map(|image| image["reference"].as_str().map(str::to_string))
            .collect();
        let mut sent = Sent {
            id: Some(record.id),
            key: Some(record.key.clone()),
            target: record.target.clone(),
            images,
            result: "delivered",
            error: None,
        };
        let attempt = match self.request(record, now) {
            Err(problem) => Attempt::Failed { error: problem },
            Ok(outgoing) => match self.sender.send(&outgoing).await {
                Outcome::Delivered { .. } => Attempt::Delivered,
                Outcome::Rejected { status, excerpt } => Attempt::Failed {
                    error: format!("answered {status}: {excerpt}"),
                },
                Outcome::Retry { reason, after } => {
                    if record.attempts + 1 >= self.settings.attempts {
                        Attempt::Failed {
                            error: format!("{reason}, after {} attempts", record.attempts + 1),
                        }
                    } else {
                        let wait = after.unwrap_or_else(|| berth_hooks::backoff(record.attempts));
                        Attempt::Retry {
                            error: reason,
                            next: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                        }
                    }
                }
            },
        };
        match &attempt {
            Attempt::Delivered => {
                tracing::info!(target_name = %record.target, key = %record.key, "rebuild dispatched")
            }
            Attempt::Retry { error, next } => {
                tracing::warn!(target_name = %record.target, key = %record.key, error = %error, next = %next, "rebuild dispatch will be retried");
                sent.result = "retry";
                sent.error = Some(error.clone());
            }
            Attempt::Failed { error } => {
                tracing::warn!(target_name = %record.target, key = %record.key, error = %error, "rebuild dispatch failed");
                sent.result = "failed";
                sent.error = Some(error.clone());
            }
        }
        store
            .record_attempt(record.id, &attempt, self.settings.suspend_after, now)
            .await?;
        Ok(sent)
    }

    /// The request for one attempt of `record`, as its target's API documents it.
    pub fn request(&self, record: &DispatchRecord, now: DateTime<Utc>) -> Result<Outgoing, String> {
        let target = self
            .settings
            .target(&record.target)
            .ok_or_else(|| format!("no rebuild target {} is configured any more", record.target))?;
        let secret = self
            .secrets
            .get(&record.target)
            .ok_or_else(|| format!("no secret for {}", record.target))?;
        let images: serde_json::Value = serde_json::from_str(&record.body)
            .map_err(|error| format!("corrupt record: {error}"))?;
        let document = serde_json::json!({
            "key": record.key,
            "target": record.target,
            "wave": record.wave,
            "images": images,
        });
        let parse = |text: &str| {
            url::Url::parse(text).map_err(|error| format!("{text:?} is not a URL: {error}"))
        };
        match (&target.kind, secret) {
            (TargetKind::Webhook { url }, Secret::Signing(signing)) => {
                let body = serde_json::json!({
                    "type": "berth.rebuild",
                    "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "data": document,
                })
                .to_string()
                .into_bytes();
                let mut headers: Vec<(String, String)> =
                    berth_hooks::standard_headers(signing, &record.key, now.timestamp(), &body)
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect();
                headers.push(("content-type".into(), "application/json".into()));
                Ok(Outgoing {
                    url: parse(url)?,
                    headers,
                    body,
                })
            }
            (
                TargetKind::Github {
                    repository,
                    event_type,
                    api_url,
                },
                Secret::Token(token),
            ) => {
                let mut payload = document;
                if payload.to_string().len() > GITHUB_PAYLOAD_MAX {
                    // Keep what a workflow needs to act: the images as reference@digest.
                    let compact: Vec<String> = payload["images"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|image| {
                            format!(
                                "{}@{}",
                                image["reference"].as_str().unwrap_or_default(),
                                image["digest"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    payload["images"] = serde_json::json!(compact);
                    payload["compact"] = serde_json::json!(true);
                    if payload.to_string().len() > GITHUB_PAYLOAD_MAX {
                        return Err(format!(
                            "{} images do not fit GitHub's 64 KB client_payload; split the target",
                            compact.len()
                        ));
                    }
                }
                let body = serde_json::json!({
                    "event_type": event_type,
                    "client_payload": payload,
                })
                .to_string()
                .into_bytes();
                let mut url = parse(api_url)?;
                url.path_segments_mut()
                    .map_err(|()| format!("{api_url:?} cannot have a path"))?
                    .pop_if_empty()
                    .push("repos")
                    .extend(repository.split('/'))
                    .push("dispatches");
                Ok(Outgoing {
                    url,
                    headers: vec![
                        ("accept".into(), "application/vnd.github+json".into()),
                        ("authorization".into(), format!("Bearer {token}")),
                        ("x-github-api-version".into(), "2022-11-28".into()),
                        ("content-type".into(), "application/json".into()),
                    ],
                    body,
                })
            }
            (
                TargetKind::Gitlab {
                    project,
                    git_ref,
                    api_url,
                },
                Secret::Token(token),
            ) => {
                let mut url = parse(api_url)?;
                url.path_segments_mut()
                    .map_err(|()| format!("{api_url:?} cannot have a path"))?
                    .pop_if_empty()
                    .extend(["api", "v4", "projects"])
                    .push(project)
                    .extend(["trigger", "pipeline"]);
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("ref", git_ref)
                    .append_pair("variables[BERTH_REBUILD_KEY]", &record.key)
                    .append_pair("variables[BERTH_REBUILD_TARGET]", &record.target)
                    .append_pair("variables[BERTH_REBUILD_WAVE]", &record.wave.to_string())
                    .append_pair(
                        "variables[BERTH_REBUILD_IMAGES]",
                        &document["images"].to_string(),
                    )
                    .finish()
                    .into_bytes();
                Ok(Outgoing {
                    url,
                    headers: vec![(
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    )],
                    body,
                })
            }
            _ => Err(format!(
                "the secret of {} does not fit its kind",
                record.target
            )),
        }
    }
}
