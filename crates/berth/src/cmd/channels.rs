//! `berth promote`, `berth rollback`, `berth history`, `berth channels` and `berth audit`: moving
//! and reading a catalog image's channels (tags) through `berth-channels`, with the history and
//! audit log in the store. Text for people, or `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_channels::status::{self, SubjectView};
use berth_channels::{ChannelError, Outcome, PromoteRequest, RollbackRequest, Subject};
use berth_core::catalog::{self, Catalog, CatalogEntry};
use berth_core::channels::{self, PromotionRule, Request, RulesFile};
use berth_core::{Digest, Tag};
use berth_files::catalog_source::CatalogSource;
use berth_oci::Client;
use berth_store::Store;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::cmd::catalog::{SourceFormat, catalog_path};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};
use crate::registry_args::RegistryArgs;

/// Options every channel command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The catalog: a file, or a directory whose *.yaml files are merged
    /// (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// The store: sqlite://FILE or postgres://... (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Promotion rules (docs/channels.md; default: $BERTH_RULES; none: manual rules only).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Act as if it were this moment (RFC 3339 or a day): for demos and rehearsals.
    #[arg(long, value_name = "MOMENT")]
    pub now: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// NAME or NAME/variant from the catalog.
    pub image: String,
    /// The channel whose digest is promoted (`staging`): one the entry publishes.
    #[arg(long, value_name = "CHANNEL")]
    pub from: String,
    /// The channel that moves to it (`latest`): one the entry publishes.
    #[arg(long, value_name = "CHANNEL")]
    pub to: String,
    /// The target is `--to` of this variant of the entry: its repository, maybe another registry
    /// (the blobs are copied first).
    #[arg(long, value_name = "VARIANT")]
    pub to_variant: Option<String>,
    /// Promote this digest (one the source channel held) instead of the source's current one.
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Why, recorded in the history and audit log.
    #[arg(long, default_value = "")]
    pub reason: String,
    #[arg(long, help = ACTOR_HELP)]
    pub actor: Option<String>,
    /// Promote past blocking reasons and over a tag moved outside berth (recorded as manual).
    #[arg(long)]
    pub force: bool,
    /// Also publish the immutable tag TO-YYYYMMDDTHHMMZ (default: the rule's `stamp`).
    #[arg(long)]
    pub stamp: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// NAME or NAME/variant from the catalog.
    pub image: String,
    /// The channel to move back: one the entry publishes.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: String,
    /// Go back to this digest (it must be in the channel's history); default: one step back.
    #[arg(long, value_name = "DIGEST")]
    pub to: Option<String>,
    /// Why, recorded in the history and audit log.
    #[arg(long, default_value = "")]
    pub reason: String,
    #[arg(long, help = ACTOR_HELP)]
    pub actor: Option<String>,
    /// Roll back over a tag moved outside berth.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// NAME or NAME/variant from the catalog.
    pub image: String,
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChannelsArgs {
    #[command(subcommand)]
    pub action: Option<ChannelsAction>,
    /// Only this NAME or NAME/variant.
    pub image: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum ChannelsAction {
    /// Accept a change made outside berth on a channel berth manages (a hand fix): the channel
    /// is held — neither the scheduler nor `promote` moves it — until this (or promote --force).
    Ack(AckArgs),
}

#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// NAME or NAME/variant from the catalog.
    pub image: String,
    /// The held channel.
    pub channel: String,
    /// Why the outside change stands (recorded in the history).
    /// Why, recorded in the history and audit log.
    #[arg(long, default_value = "")]
    pub reason: String,
    #[arg(long, help = ACTOR_HELP)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only entries about this subject: an image (`python3.11`: all its variants and
    /// channels), a variant (`python3.11/jobs`) or one channel (`python3.11/jobs:latest`).
    pub subject: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub common: Common,
}

/// What every command needs, resolved once.
struct Context {
    catalog: Catalog,
    rules: RulesFile,
    store: Store,
    client: Client,
    now: DateTime<Utc>,
}

impl Common {
    fn now(&self) -> anyhow::Result<DateTime<Utc>> {
        match &self.now {
            Some(text) => {
                catalog::parse_moment(text).map_err(|error| usage(format!("--now: {error}")))
            }
            None => Ok(Utc::now()),
        }
    }

    /// Reads the catalog, rules and store. `writes`: the command records in the store (moves,
    /// outside changes it notices); otherwise the store is opened read-only and must exist.
    async fn context(&self, env: &Environment, writes: bool) -> anyhow::Result<Context> {
        let now = self.now()?;
        let source = CatalogSource {
            path: catalog_path(self.catalog.clone(), env),
            format: self.catalog_format.into(),
        };
        let loaded = crate::cmd::catalog::read(&source, now)?;
        let catalog = loaded.catalog.ok_or_else(|| {
            usage(format!(
                "{}: the catalog has errors; `berth catalog check` lists them",
                source.path.display()
            ))
        })?;
        let rules = match self
            .rules
            .clone()
            .or_else(|| env.get("BERTH_RULES").map(PathBuf::from))
        {
            Some(path) => {
                let bytes = std::fs::read(&path)
                    .map_err(|error| usage(format!("--rules {}: {error}", path.display())))?;
                let text = berth_core::catalog::read::utf8_text(&path.display().to_string(), bytes)
                    .map_err(|diagnostic| usage(format!("invalid rules file:\n{diagnostic}")))?;
                RulesFile::parse(&path.display().to_string(), &text).map_err(|diagnostics| {
                    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                    usage(format!("invalid rules file:\n{}", lines.join("\n")))
                })?
            }
            None => RulesFile::default(),
        };
        let url = crate::cmd::store_url(self.store.clone(), env);
        let store = if writes {
            crate::cmd::open_store(&url).await?
        } else {
            crate::cmd::open_store_read_only(&url).await?
        };
        let client = Client::new(self.registry.client_config(env)?);
        Ok(Context {
            catalog,
            rules,
            store,
            client,
            now,
        })
    }
}

/// How the actor is chosen, for `--help`.
pub(crate) const ACTOR_HELP: &str = "Who is acting, recorded in the history and audit log (default: \
$BERTH_ACTOR, then $USER, then the CI's user: $GITHUB_ACTOR, $GITLAB_USER_LOGIN, \
$BUILD_REQUESTEDFOR; then the host name)";

/// Who is acting: `--actor`, then the environment in [`ACTOR_HELP`]'s order, so that a
/// container or CI job without `$USER` still names someone.
pub(crate) fn actor(flag: Option<String>, env: &Environment) -> String {
    flag.or_else(|| {
        [
            "BERTH_ACTOR",
            "USER",
            "GITHUB_ACTOR",
            "GITLAB_USER_LOGIN",
            "BUILD_REQUESTEDFOR",
        ]
        .iter()
        .find_map(|name| env.get(name))
    })
    .or_else(|| env.hostname().map(|host| format!("someone on {host}")))
    .unwrap_or_else(|| "unknown".to_string())
}

fn channel(text: &str, flag: &str) -> anyhow::Result<Tag> {
    channels::channel_tag(text).map_err(|error| usage(format!("--{flag}: {error}")))
}

fn digest(text: &str, flag: &str) -> anyhow::Result<Digest> {
    Digest::parse(text).map_err(|error| usage(format!("--{flag}: {error}")))
}

fn subject<'c>(catalog: &'c Catalog, text: &str) -> anyhow::Result<(Subject, &'c CatalogEntry)> {
    Subject::find(catalog, text).map_err(usage)
}

/// A channel a command moves must be one the entry publishes (`channels` in the catalog):
/// anything else is a typo or the wrong image, a usage error with "did you mean".
fn published(entry: &CatalogEntry, channel: &Tag, flag: &str) -> anyhow::Result<()> {
    if entry.channels.contains(channel) {
        return Ok(());
    }
    let names: Vec<&str> = entry.channels.iter().map(Tag::as_str).collect();
    let mut message = format!(
        "--{flag} {channel}: {} is not published under that channel (its channels: {})",
        entry.name,
        names.join(", ")
    );
    let close = catalog::suggest::closest(channel.as_str(), names.iter().copied(), 3);
    if !close.is_empty() {
        message.push_str(&format!("; did you mean {}?", close.join(", ")));
    }
    Err(usage(message))
}

pub fn promote(args: PromoteArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let from = channel(&args.from, "from")?;
    let to = channel(&args.to, "to")?;
    let wanted = args
        .digest
        .as_deref()
        .map(|text| digest(text, "digest"))
        .transpose()?;
    crate::cmd::runtime()?.block_on(async {
        let context = args.common.context(env, true).await?;
        let (subject, entry) = subject(&context.catalog, &args.image)?;
        published(entry, &from, "from")?;
        published(entry, &to, "to")?;
        if let Some(variant) = args.to_variant.as_deref() {
            Subject::of(entry, Some(variant)).map_err(usage)?;
        }
        let mut manual = PromotionRule::manual(from.clone(), to.clone());
        manual.to_variant = args.to_variant.clone();
        let rule = context
            .rules
            .rule_to(entry, &from, &to, args.to_variant.as_deref())
            .unwrap_or(&manual);
        let request = PromoteRequest {
            rule,
            request: Request::ByHand { digest: wanted },
            actor: actor(args.actor, env),
            reason: args.reason,
            force: args.force,
            stamp: args.stamp || rule.stamp,
        };
        let outcome = berth_channels::promote(
            &context.client,
            &context.store,
            &subject,
            entry,
            &request,
            context.now,
        )
        .await
        .with_context(|| format!("promoting {} from {from} to {to}", subject.label()))?;
        report(&outcome, args.common.json)
    })
}

pub fn rollback(args: RollbackArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let channel_tag = channel(&args.channel, "channel")?;
    let to = args
        .to
        .as_deref()
        .map(|text| digest(text, "to"))
        .transpose()?;
    crate::cmd::runtime()?.block_on(async {
        let context = args.common.context(env, true).await?;
        let (subject, entry) = subject(&context.catalog, &args.image)?;
        published(entry, &channel_tag, "channel")?;
        let request = RollbackRequest {
            channel: channel_tag.clone(),
            to,
            actor: actor(args.actor, env),
            reason: args.reason,
            force: args.force,
        };
        let result = berth_channels::rollback(
            &context.client,
            &context.store,
            &subject,
            &request,
            context.now,
        )
        .await;
        match result {
            Ok(outcome) => report(&outcome, args.common.json),
            // Refused: a "no", not a fault.
            Err(error @ ChannelError::Rollback { .. }) => {
                eprintln!("berth: {error}");
                Ok(ExitCode::from(NEGATIVE))
            }
            Err(error) => Err(anyhow::Error::new(error)
                .context(format!("rolling back {}:{channel_tag}", subject.label()))),
        }
    })
}

/// Prints what a promotion or rollback did; "no" (blocked, drift) exits 1.
fn report(outcome: &Outcome, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        crate::cmd::print_json(outcome)?;
    } else {
        let mut text = String::new();
        for noticed in &outcome.noticed {
            text.push_str(&format!(
                "noticed: {} {}\n",
                noticed.channel,
                observation_text(&noticed.observation)
            ));
        }
        let line = outcome.summary();
        text.push_str(&line);
        text.push('\n');
        crate::cmd::print_text(&text);
    }
    Ok(if outcome.is_negative() {
        ExitCode::from(NEGATIVE)
    } else {
        ExitCode::SUCCESS
    })
}

fn observation_text(observation: &channels::Observation) -> String {
    match observation {
        channels::Observation::Agrees => "agrees with the history".into(),
        channels::Observation::FirstSight { found } => format!("first seen at {found}"),
        channels::Observation::Unrecorded { found } => format!("already at {found}"),
        channels::Observation::Drift { recorded, found } => format!(
            "moved outside berth: recorded {recorded}, registry has {}",
            found
                .as_ref()
                .map_or("no such tag".to_string(), Digest::to_string)
        ),
    }
}

/// One history line, as `--json` prints it.
#[derive(Debug, Serialize)]
struct HistoryLine<'a> {
    channel: String,
    #[serde(flatten)]
    entry: &'a channels::HistoryEntry,
}

pub fn history(args: HistoryArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let only = args
        .channel
        .as_deref()
        .map(|text| channel(text, "channel"))
        .transpose()?;
    crate::cmd::runtime()?.block_on(async {
        let context = args.common.context(env, false).await?;
        let (subject, entry) = subject(&context.catalog, &args.image)?;
        let mut names: Vec<Tag> = match only {
            Some(only) => vec![only],
            None => {
                let mut names = entry.channels.clone();
                names.extend(berth_channels::history::channels_of(&context.store, &subject).await?);
                names.sort();
                names.dedup();
                names
            }
        };
        names.sort();
        let mut states = Vec::new();
        for name in names {
            let state = berth_channels::history::load(&context.store, &subject, &name).await?;
            states.push((name, state));
        }
        let mut lines: Vec<HistoryLine<'_>> = states
            .iter()
            .flat_map(|(name, state)| {
                state.history.iter().map(|entry| HistoryLine {
                    channel: name.to_string(),
                    entry,
                })
            })
            .collect();
        lines.sort_by_key(|line| line.entry.at);
        if args.common.json {
            crate::cmd::print_json(&lines)?;
        } else if lines.is_empty() {
            crate::cmd::print_text(&format!("{}: no channel history\n", subject.label()));
        } else {
            let text: String = lines
                .iter()
                .map(|line| {
                    format!(
                        "{}  {:<10} {:<14} {}  {}  {}\n",
                        moment(line.entry.at),
                        line.channel,
                        line.entry.kind.as_str(),
                        line.entry.digest,
                        line.entry.actor,
                        line.entry.reason
                    )
                })
                .collect();
            crate::cmd::print_text(&text);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn channels(args: ChannelsArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    if let Some(ChannelsAction::Ack(ack_args)) = args.action {
        return ack(ack_args, env);
    }
    crate::cmd::runtime()?.block_on(async {
        let context = args.common.context(env, true).await?;
        let subjects: Vec<(Subject, &CatalogEntry)> = match &args.image {
            Some(text) => vec![subject(&context.catalog, text)?],
            None => status::subjects(context.catalog.entries()),
        };
        let mut views = Vec::new();
        for (subject, entry) in &subjects {
            let look = status::Look::Registry(&context.client);
            views.push(
                status::status(
                    look,
                    &context.store,
                    &context.rules,
                    subject,
                    entry,
                    context.now,
                )
                .await
                .with_context(|| format!("checking the channels of {}", subject.label()))?,
            );
        }
        if args.common.json {
            crate::cmd::print_json(&views)?;
        } else {
            crate::cmd::print_text(&channels_text(&views));
        }
        Ok(if views.iter().any(SubjectView::drifted) {
            ExitCode::from(NEGATIVE)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn channels_text(views: &[SubjectView]) -> String {
    let mut text = String::new();
    for view in views {
        text.push_str(&format!("{}  ({})\n", view.image, view.repository));
        for channel in &view.channels {
            for noticed in &channel.noticed {
                let (mark, note) = match (&noticed.observation, channel.managed) {
                    (channels::Observation::Drift { .. }, true) => ("!", " (drift: recorded)"),
                    _ => ("·", ""),
                };
                text.push_str(&format!(
                    "  {mark} {}: {}{note}\n",
                    channel.channel,
                    observation_text(&noticed.observation)
                ));
            }
            if let Some(held) = &channel.held {
                text.push_str(&format!(
                    "  ! {}: HELD since {}: moved outside berth to {}; `berth channels ack {} {}` accepts it, `promote --force` overrides it\n",
                    channel.channel,
                    moment(held.since),
                    held.digest,
                    view.image,
                    channel.channel
                ));
            }
            match (&channel.digest, channel.since) {
                (Some(digest), Some(since)) => text.push_str(&format!(
                    "  {:<10} {digest}  since {}\n",
                    channel.channel,
                    moment(since)
                )),
                _ => text.push_str(&format!("  {:<10} (nothing)\n", channel.channel)),
            }
        }
        for rule in &view.rules {
            let next = rule.next_text(moment);
            let schedule = rule
                .schedule
                .as_ref()
                .map_or(String::new(), |schedule| format!(" [{schedule}]"));
            let now = rule.now_text();
            text.push_str(&format!(
                "  {} -> {}: {next}{schedule}; now: {now}\n",
                rule.from, rule.to
            ));
        }
    }
    text
}

/// `berth channels ack NAME CHANNEL`: accepts the hand fix that holds a channel.
fn ack(args: AckArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let channel_tag = channel(&args.channel, "channel")?;
    crate::cmd::runtime()?.block_on(async {
        let context = args.common.context(env, true).await?;
        let (subject, entry) = subject(&context.catalog, &args.image)?;
        published(entry, &channel_tag, "channel")?;
        let actor = actor(args.actor, env);
        let (outcome, noticed) = berth_channels::acknowledge(
            &context.client,
            &context.store,
            &subject,
            &channel_tag,
            (&actor, &args.reason),
            context.now,
        )
        .await
        .with_context(|| format!("acknowledging {}:{channel_tag}", subject.label()))?;
        if args.common.json {
            crate::cmd::print_json(&serde_json::json!({
                "subject": subject.label(),
                "channel": channel_tag.to_string(),
                "outcome": outcome,
                "noticed": noticed,
            }))?;
        } else {
            let target = format!("{}:{channel_tag}", subject.label());
            let line = match &outcome {
                berth_channels::Acknowledged::Released { digest, held_since } => format!(
                    "{target}: acknowledged {digest} (held since {}); promotions resume\n",
                    moment(*held_since)
                ),
                berth_channels::Acknowledged::NotHeld { .. } => {
                    format!("{target}: not held; nothing to acknowledge\n")
                }
            };
            crate::cmd::print_text(&line);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn audit(args: AuditArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    crate::cmd::runtime()?.block_on(async {
        // The audit log needs neither the catalog nor a registry.
        let url = crate::cmd::store_url(args.common.store.clone(), env);
        let store = crate::cmd::open_store_read_only(&url).await?;
        let entries = store.audit_log(args.subject.as_deref(), args.limit).await?;
        if args.common.json {
            let entries: Vec<serde_json::Value> = entries
                .iter()
                .map(|logged| {
                    serde_json::json!({
                        "id": logged.id,
                        "at": logged.entry.at,
                        "actor": logged.entry.actor,
                        "action": logged.entry.action,
                        "subject": logged.entry.subject,
                        "before": logged.entry.before,
                        "after": logged.entry.after,
                    })
                })
                .collect();
            crate::cmd::print_json(&entries)?;
        } else {
            let text: String = entries
                .iter()
                .map(|logged| {
                    // A channel move's digest, or a catalog reload's generation and size.
                    let digest = |state: &Option<serde_json::Value>| {
                        let Some(state) = state.as_ref() else {
                            return "-".to_string();
                        };
                        if let Some(digest) =
                            state.get("digest").and_then(serde_json::Value::as_str)
                        {
                            return digest.to_string();
                        }
                        match (state.get("generation"), state.get("entries")) {
                            (Some(generation), Some(entries)) => {
                                format!("generation {generation} ({entries} entries)")
                            }
                            _ => "-".to_string(),
                        }
                    };
                    format!(
                        "{}  {:<16} {:<28} {}  {} -> {}\n",
                        moment(logged.entry.at),
                        logged.entry.action,
                        logged.entry.subject,
                        logged.entry.actor,
                        digest(&logged.entry.before),
                        digest(&logged.entry.after)
                    )
                })
                .collect();
            crate::cmd::print_text(&text);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn moment(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::actor;
    use crate::environment::Environment;

    /// Issue 15, item 17: without $USER (containers, CI) the actor is the CI's user, then the
    /// host, not a silent "unknown".
    #[test]
    fn the_actor_falls_back_to_ci_variables_then_the_host() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: [Case<'_>; 6] = [
            (&[("BERTH_ACTOR", "bot"), ("USER", "carol")], None, "bot"),
            (
                &[("USER", "carol"), ("GITHUB_ACTOR", "octo")],
                None,
                "carol",
            ),
            (&[("GITHUB_ACTOR", "octo")], Some("runner-1"), "octo"),
            (&[("GITLAB_USER_LOGIN", "lab")], None, "lab"),
            (
                &[("BUILD_REQUESTEDFOR", "Ada Lovelace")],
                None,
                "Ada Lovelace",
            ),
            (&[], Some("runner-1"), "someone on runner-1"),
        ];
        for (pairs, host, expected) in cases {
            let mut env = Environment::from_pairs(pairs);
            if let Some(host) = host {
                env = env.on_host(host);
            }
            assert_eq!(actor(None, &env), expected, "{pairs:?}");
        }
        let env = Environment::from_pairs(&[("USER", "carol")]);
        assert_eq!(actor(Some("alice".into()), &env), "alice");
        assert_eq!(actor(None, &Environment::from_pairs(&[])), "unknown");
    }
}
