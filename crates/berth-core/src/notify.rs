//! Notifications, decided: the `notifications` section (targets and what each hears), the
//! events berth tells people about, each with the key that makes it happen once, and how an
//! event reads as a Standard Webhooks JSON body or a Slack message. Pure: berth-server finds
//! the events (the audit log, the freshness report, the catalog's dates, sync status, admission
//! denials), records them, and delivers them.
//!
//! ```yaml
//! notifications:
//!   targets:
//!     - name: platform                 # JSON signed as Standard Webhooks sign
//!       webhook: {url: "https://hooks.example/berth", secret_env: BERTH_NOTIFY_SECRET}
//!       events: [promotion, rollback, drift, promotion-blocked, retention-applied]
//!     - name: chat                     # a Slack-compatible incoming webhook (the URL is the secret)
//!       slack: {url_file: /run/secrets/slack-webhook}
//!       events: [eol-soon, stale, sync-failing, admission-denied]
//!   eol_within: 30d                    # eol-soon: an entry's end of life this close, still in use
//!   sync_failing_for: 1h               # sync-failing: a repository failing this long
//!   denials_window: 10m                # admission-denied: one message per image per window
//!   attempts: 8                        # delivery attempts before a message counts as failed
//!   interval: 30s                      # how often events are looked for and messages sent
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::read::{Path, Walker};
use crate::catalog::suggest;
use crate::catalog::yaml::Node;
use crate::channels::rule::parse_field;
use crate::freshness::StaleImage;
use crate::rebuild::{SecretSource, required, secret_source, url_text};

/// Every kind of event, as written in `events:` and sent as `berth.<kind>`.
pub const EVENT_KINDS: &[&str] = &[
    "promotion",
    "rollback",
    "drift",
    "promotion-blocked",
    "stale",
    "eol-soon",
    "retention-applied",
    "sync-failing",
    "admission-denied",
];

/// Where a target's messages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TargetKind {
    /// A POST of JSON (`type`, `timestamp`, `data`) signed as Standard Webhooks sign.
    Webhook { url: String, secret: SecretSource },
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): `{"text": ...}`.
    /// Its URL is its secret, so it comes from the environment or a file.
    Slack { url: SecretSource },
}

/// One target and the events it hears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: String,
    #[serde(flatten)]
    pub kind: TargetKind,
    pub events: BTreeSet<&'static str>,
}

/// The `notifications` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub targets: Vec<Target>,
    pub eol_within: Duration,
    pub sync_failing_for: Duration,
    pub denials_window: Duration,
    pub attempts: u32,
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            targets: Vec::new(),
            eol_within: Duration::from_secs(30 * 86_400),
            sync_failing_for: Duration::from_secs(3600),
            denials_window: Duration::from_secs(600),
            attempts: 8,
            interval: Duration::from_secs(30),
        }
    }
}

impl Settings {
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|target| target.name == name)
    }

    /// Whether any target hears `kind` (events nobody hears are not looked for).
    pub fn heard(&self, kind: &str) -> bool {
        self.targets
            .iter()
            .any(|target| target.events.contains(kind))
    }
}

const FIELDS: &[&str] = &[
    "targets",
    "eol_within",
    "sync_failing_for",
    "denials_window",
    "attempts",
    "interval",
];
const TARGET_FIELDS: &[&str] = &["name", "webhook", "slack", "events"];
const WEBHOOK_FIELDS: &[&str] = &["url", "secret_env", "secret_file"];
const SLACK_FIELDS: &[&str] = &["url_env", "url_file"];

/// Reads the `notifications` section; every problem is reported at its place, with "did you
/// mean" for misspelt fields and event kinds.
pub fn read_section(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Settings> {
    let fields = walker.fields(node, path, FIELDS)?;
    let mut settings = Settings::default();
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
            "eol_within" | "sync_failing_for" | "denials_window" | "interval" => {
                let minimum = if name == "interval" {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(60)
                };
                match walker.duration(value, &at) {
                    Some(duration) if duration >= minimum => match name {
                        "eol_within" => settings.eol_within = duration,
                        "sync_failing_for" => settings.sync_failing_for = duration,
                        "denials_window" => settings.denials_window = duration,
                        _ => settings.interval = duration,
                    },
                    Some(_) => {
                        let message =
                            format!("must be at least {}", crate::duration::display(minimum));
                        walker.error(value.position, &at, message);
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            "attempts" => {
                let count = parse_field(walker, value, &at, |text| {
                    text.parse::<u32>()
                        .ok()
                        .filter(|count| (1..=100).contains(count))
                        .ok_or_else(|| format!("{text:?} is not a whole number from 1 to 100"))
                });
                match count {
                    Some(count) => settings.attempts = count,
                    None => ok = false,
                }
            }
            other => unreachable!("field {other} is in FIELDS but not read"),
        }
    }
    ok.then_some(settings)
}

fn read_target(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Target> {
    let fields = walker.fields(node, path, TARGET_FIELDS)?;
    let name = required(walker, node, path, &fields, "name")
        .and_then(|found| walker.name(found, &path.field("name")));
    let kinds: Vec<&str> = ["webhook", "slack"]
        .into_iter()
        .filter(|kind| fields.contains(kind))
        .collect();
    let [kind] = kinds.as_slice() else {
        walker.error(
            node.position,
            path,
            "a target needs exactly one of `webhook`, `slack`",
        );
        return None;
    };
    let kind_node = fields.get(kind)?.value;
    let at = path.field(kind);
    let kind = if *kind == "webhook" {
        let inner = walker.fields(kind_node, &at, WEBHOOK_FIELDS);
        let inner = inner.as_ref();
        let url = inner.and_then(|inner| {
            required(walker, kind_node, &at, inner, "url").and_then(|found| {
                let text = walker.required_text(found, &at.field("url"))?;
                url_text(walker, found, &at.field("url"), &text)
            })
        });
        let secret = inner.and_then(|inner| {
            secret_source(walker, kind_node, &at, inner, ("secret_env", "secret_file"))
        });
        url.zip(secret)
            .map(|(url, secret)| TargetKind::Webhook { url, secret })
    } else {
        walker
            .fields(kind_node, &at, SLACK_FIELDS)
            .and_then(|inner| {
                secret_source(walker, kind_node, &at, &inner, ("url_env", "url_file"))
            })
            .map(|url| TargetKind::Slack { url })
    };
    let events_at = path.field("events");
    let events_node = required(walker, node, path, &fields, "events")?;
    let mut events = BTreeSet::new();
    let mut ok = true;
    for (index, item) in walker
        .sequence(events_node, &events_at)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let found = parse_field(walker, item, &events_at.index(index), |text| {
            EVENT_KINDS
                .iter()
                .find(|known| **known == text)
                .copied()
                .ok_or_else(|| {
                    let mut message = format!("{text:?} is not an event");
                    if let Some(close) = suggest::closest(text, EVENT_KINDS.iter().copied(), 1)
                        .into_iter()
                        .next()
                    {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    message.push_str(&format!(" (events: {})", EVENT_KINDS.join(", ")));
                    message
                })
        });
        match found {
            Some(kind) => {
                events.insert(kind);
            }
            None => ok = false,
        }
    }
    if ok && events.is_empty() {
        walker.error(
            events_node.position,
            &events_at,
            "names no event: a target that hears nothing is a mistake",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Target {
        name: name?,
        kind: kind?,
        events,
    })
}

/// Something that happened, worth telling. `key` makes it happen once: the same occurrence
/// found again (after a restart, by another replica) has the same key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub key: String,
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    /// What it is about: `python3.11:stable`, a repository, an image reference.
    pub subject: String,
    /// One line for a person.
    pub summary: String,
    /// The facts, for scripts (the webhook body's `data`, beside `subject` and `summary`).
    pub data: Value,
}

/// The audit log's action for a drift berth noticed on a channel tag.
pub const AUDIT_DRIFT: &str = "channel.drift";
/// The audit log's action for a scheduled promotion its slot found blocked.
pub const AUDIT_BLOCKED: &str = "channel.blocked";

/// The event an audit entry is, if it is one: a promotion, a rollback, a drift or a blocked
/// slot of a channel (`retention.delete` entries are gathered by [`retention_applied`]).
pub fn from_audit(
    id: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<Event> {
    let field = |value: Option<&Value>, name: &str| {
        value
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let from = field(before, "digest");
    let to = field(after, "digest");
    let reason = field(after, "reason").unwrap_or_default();
    let arrow = |to: &Option<String>| {
        format!(
            "{} → {}",
            from.as_deref().map(short).unwrap_or("nothing"),
            to.as_deref().map(short).unwrap_or("nothing")
        )
    };
    let (kind, summary) = match action {
        "channel.promote" => (
            "promotion",
            format!("{subject} promoted {} by {actor} ({reason})", arrow(&to)),
        ),
        "channel.rollback" => (
            "rollback",
            format!("{subject} rolled back {} by {actor} ({reason})", arrow(&to)),
        ),
        AUDIT_DRIFT => (
            "drift",
            format!("{subject} moved outside berth {}", arrow(&to)),
        ),
        AUDIT_BLOCKED => {
            let reasons = after
                .and_then(|after| after.get("reasons"))
                .map(Value::to_string)
                .unwrap_or_default();
            (
                "promotion-blocked",
                format!("{subject}: the scheduled promotion is blocked: {reasons}"),
            )
        }
        _ => return None,
    };
    Some(Event {
        key: format!("audit:{id}"),
        kind,
        at,
        subject: subject.to_string(),
        summary,
        data: json!({
            "actor": actor,
            "action": action,
            "before": before,
            "after": after,
            "audit_id": id,
        }),
    })
}

/// One deletion retention made, as its audit entry says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deletion {
    pub audit_id: i64,
    /// `repository@digest`.
    pub subject: String,
    pub bytes: Option<u64>,
    pub tags: Vec<String>,
}

/// The deletions of one look at the audit log, as one message (never one per manifest).
pub fn retention_applied(at: DateTime<Utc>, deletions: &[Deletion]) -> Option<Event> {
    let first = deletions.first()?;
    let last = deletions.last()?;
    let bytes: u64 = deletions.iter().filter_map(|deletion| deletion.bytes).sum();
    Some(Event {
        key: format!("retention:{}-{}", first.audit_id, last.audit_id),
        kind: "retention-applied",
        at,
        subject: "retention".to_string(),
        summary: format!(
            "retention deleted {} manifest{} ({} bytes before garbage collection)",
            deletions.len(),
            if deletions.len() == 1 { "" } else { "s" },
            bytes
        ),
        data: json!({ "deletions": deletions, "bytes": bytes }),
    })
}

/// An image the freshness pass found stale, once per digest and set of reasons.
pub fn stale(image: &StaleImage, at: DateTime<Utc>) -> Event {
    let reasons: Vec<&str> = image.reasons.iter().map(|reason| reason.kind()).collect();
    Event {
        key: format!(
            "stale:{}@{}:{}:{}",
            image.reference,
            image.digest,
            image.platform,
            reasons.join(",")
        ),
        kind: "stale",
        at,
        subject: image.reference.to_string(),
        summary: format!(
            "{} ({}, {}) is stale: {}",
            image.reference,
            short(image.digest.as_str()),
            image.platform,
            reasons.join(", ")
        ),
        data: json!({
            "reference": image.reference.to_string(),
            "digest": image.digest,
            "platform": image.platform,
            "entry": image.entry,
            "variant": image.variant,
            "reasons": image.reasons,
        }),
    }
}

/// A catalog entry whose end of life is near, with the workloads still using it.
pub fn eol_soon(
    entry: &str,
    eol_on: NaiveDate,
    replacement: Option<&str>,
    uses: &[Value],
    at: DateTime<Utc>,
) -> Event {
    let days = (eol_on - at.date_naive()).num_days();
    let instead = replacement
        .map(|replacement| format!("; move to {replacement}"))
        .unwrap_or_default();
    Event {
        key: format!("eol-soon:{entry}:{eol_on}"),
        kind: "eol-soon",
        at,
        subject: entry.to_string(),
        summary: format!(
            "{entry} reaches end of life on {eol_on} (in {days} days); {} workload{} still use it{instead}",
            uses.len(),
            if uses.len() == 1 { "" } else { "s" }
        ),
        data: json!({
            "entry": entry,
            "eol_on": eol_on,
            "days_left": days,
            "replacement": replacement,
            "uses": uses,
        }),
    }
}

/// A repository whose syncs have failed since `failing_since` (once per such stretch).
pub fn sync_failing(
    repository: &str,
    failing_since: DateTime<Utc>,
    last_ok: Option<DateTime<Utc>>,
    last_error: &str,
    at: DateTime<Utc>,
) -> Event {
    let last_good = last_ok.map_or_else(|| "never".to_string(), stamp);
    Event {
        key: format!("sync-failing:{repository}:{}", stamp(failing_since)),
        kind: "sync-failing",
        at,
        subject: repository.to_string(),
        summary: format!(
            "sync of {repository} has failed since {} (last good sync: {last_good}): {}",
            stamp(failing_since),
            crate::quote::escape(last_error)
        ),
        data: json!({
            "repository": repository,
            "failing_since": failing_since,
            "last_ok_at": last_ok,
            "last_error": last_error,
        }),
    }
}

/// Admission denials of one image over one window, gathered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denials {
    pub image: String,
    pub window_start: DateTime<Utc>,
    pub count: u64,
    pub namespaces: Vec<String>,
    /// The first denial's message.
    pub message: String,
}

pub fn admission_denied(denials: &Denials, at: DateTime<Utc>) -> Event {
    Event {
        key: format!("denied:{}:{}", denials.image, stamp(denials.window_start)),
        kind: "admission-denied",
        at,
        subject: denials.image.clone(),
        summary: format!(
            "admission denied {} {} time{} since {} (namespaces: {}): {}",
            denials.image,
            denials.count,
            if denials.count == 1 { "" } else { "s" },
            stamp(denials.window_start),
            denials.namespaces.join(", "),
            denials.message
        ),
        data: json!(denials),
    }
}

/// The body of a generic webhook: Standard Webhooks' recommended shape (`type`, `timestamp`,
/// `data`).
pub fn webhook_body(event: &Event) -> Vec<u8> {
    let mut data = json!({ "subject": event.subject, "summary": event.summary, "key": event.key });
    if let (Some(data), Value::Object(facts)) = (data.as_object_mut(), &event.data) {
        for (name, value) in facts {
            data.insert(name.clone(), value.clone());
        }
    }
    let body = json!({
        "type": format!("berth.{}", event.kind),
        "timestamp": stamp(event.at),
        "data": data,
    });
    body.to_string().into_bytes()
}

/// The body of a Slack-compatible incoming webhook.
pub fn slack_body(event: &Event) -> Vec<u8> {
    json!({ "text": format!("[berth] {}", event.summary) })
        .to_string()
        .into_bytes()
}

/// A sample event for `berth notifications test`.
pub fn sample(target: &str, at: DateTime<Utc>) -> Event {
    Event {
        key: format!("test:{target}:{}", stamp(at)),
        kind: "promotion",
        at,
        subject: "berth-test".to_string(),
        summary: format!("a test message from berth to {target}"),
        data: json!({ "test": true }),
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `sha256:0123456789ab`: enough of a digest for a person.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

#[cfg(test)]
mod tests;
