//! `berth retention plan|apply`: which manifests the config's `retention` policies would
//! delete and which they keep, by which rule (berth-core's `retention` over what the store
//! knows), and one guarded deletion run (berth-retention, under the same `retention` lease
//! `berth serve` takes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_core::retention::{Plan, Settings};
use berth_files::catalog_source::CatalogSource;
use berth_retention::{Applied, ApplyOptions};
use berth_server::config::ServeFile;
use chrono::{DateTime, Utc};

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{
    open_store, open_store_read_only, print_json, print_text, runtime, store_url, under_cli_lease,
};
use crate::environment::Environment;
use crate::exit::usage;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// What the policies would delete and why, what they keep and by which rule, the bytes
    /// it would free, and what would stop `apply` (stale usage sources, partial syncs).
    Plan(PlanArgs),
    /// Delete the plan's candidates through the registry API, within the guards: refuses on
    /// stale usage sources, skips partially synced repositories, re-checks each candidate,
    /// writes each deletion to the audit log first, at most `max_deletions` per run. Takes
    /// the `retention` lease.
    Apply(ApplyArgs),
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// The config file whose `retention` section holds the policies (as for `berth serve
    /// --config`); its `catalog`, `store`, `authfile` and `registries` apply unless flags
    /// say otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The catalog, whose channels are kept (default: the config's, then $BERTH_CATALOG,
    /// then ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// The store (default: the config's, then $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Decide as if it were this moment (RFC 3339 or a day).
    #[arg(long, value_name = "MOMENT")]
    pub now: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Delete although this usage source (`cluster`) or scope (`cluster/prod`) is stale.
    /// Repeatable.
    #[arg(long, value_name = "SOURCE[/SCOPE]")]
    pub force_stale_usage: Vec<String>,
    /// At most this many deletions in this run (never more than the config's
    /// `max_deletions`).
    #[arg(long, value_name = "N")]
    pub max_deletions: Option<usize>,
    #[arg(long, help = crate::cmd::channels::ACTOR_HELP)]
    pub actor: Option<String>,
}

struct Inputs {
    file: ServeFile,
    base: Option<PathBuf>,
    settings: Settings,
    catalog: berth_core::catalog::Catalog,
    store: String,
}

fn inputs(common: &Common, now: DateTime<Utc>, env: &Environment) -> anyhow::Result<Inputs> {
    let file = crate::cmd::serve::read_config(&common.config)?;
    let base = common.config.parent().map(Path::to_path_buf);
    let Some(settings) = file.retention.clone() else {
        return Err(usage(format!(
            "{}: no `retention` section (docs/retention.md)",
            common.config.display()
        )));
    };
    if settings.policies.is_empty() {
        return Err(usage(format!(
            "{}: `retention` has no `policies`: nothing would be planned",
            common.config.display()
        )));
    }
    let relative = |path: PathBuf| match &base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    };
    let source = CatalogSource {
        path: match common
            .catalog
            .clone()
            .or(file.catalog.clone().map(relative))
        {
            Some(path) => path,
            None => catalog_path(None, env),
        },
        format: common.catalog_format.into(),
    };
    let catalog = read_valid(&source, now)?;
    let store = store_url(common.store.clone().or(file.store.clone()), env);
    Ok(Inputs {
        file,
        base,
        settings,
        catalog,
        store,
    })
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Plan(args) => plan(args, env),
        Command::Apply(args) => apply(args, env),
    }
}

fn plan(args: PlanArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => berth_core::catalog::parse_moment(text)
            .map_err(|error| usage(format!("--now: {error}")))?,
        None => Utc::now(),
    };
    let inputs = inputs(&args.common, now, env)?;
    let plan = runtime()?.block_on(async {
        let store = open_store_read_only(&inputs.store).await?;
        let plan = berth_retention::plan(&store, &inputs.catalog, &inputs.settings, now).await;
        store.close().await;
        anyhow::Ok(plan?)
    })?;
    if args.common.json {
        print_json(&plan)?;
    } else {
        print_text(&plan_text(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

fn apply(args: ApplyArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let inputs = inputs(&args.common, Utc::now(), env)?;
    for named in &args.force_stale_usage {
        let source = named.split_once('/').map_or(named.as_str(), |(s, _)| s);
        if !berth_core::retention::SOURCES.contains(&source) {
            return Err(usage(format!(
                "--force-stale-usage {named:?}: not a usage source; expected one of {}",
                berth_core::retention::SOURCES.join(", ")
            )));
        }
    }
    let relative = |path: &Path| match &inputs.base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    };
    let client = berth_oci::Client::new(
        crate::cmd::serve::file_registry_args(&inputs.file, &relative).client_config(env)?,
    );
    let actor = crate::cmd::channels::actor(args.actor, env);
    let options = ApplyOptions {
        force_stale_usage: args.force_stale_usage.clone(),
        max_deletions: args.max_deletions.unwrap_or(usize::MAX),
        actor: actor.clone(),
    };
    let applied = runtime()?.block_on(async {
        let store = open_store(&inputs.store).await?;
        let outcome = under_cli_lease(&store, berth_retention::LEASE, &actor, |fenced| {
            let (catalog, settings, options, client) =
                (&inputs.catalog, &inputs.settings, &options, &client);
            async move {
                Ok(
                    berth_retention::apply(&fenced, client, catalog, settings, options, Utc::now)
                        .await?,
                )
            }
        })
        .await;
        store.close().await;
        outcome
    })?;
    if args.common.json {
        print_json(&applied)?;
    } else {
        print_text(&apply_text(&applied));
    }
    Ok(if applied.failed() > 0 {
        ExitCode::from(3)
    } else if applied.refused.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn short(digest: &berth_core::Digest) -> String {
    let text = digest.as_str();
    text.chars().take(19).collect()
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `2.0 GiB`.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn serialized<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn plan_text(plan: &Plan) -> String {
    let mut text = String::new();
    let mut kept = 0;
    for repository in &plan.repositories {
        text.push_str(&format!(
            "{}  (policy {})\n",
            repository.repository,
            repository.policy + 1
        ));
        if let Some(reason) = &repository.blocked {
            text.push_str(&format!(
                "  blocked: {reason}; apply deletes nothing here\n"
            ));
        }
        for candidate in &repository.delete {
            text.push_str(&format!(
                "  delete {}  {}  {}: {}  {}\n",
                short(&candidate.digest),
                tags_text(&candidate.tags),
                serialized(&candidate.rule),
                candidate.detail,
                bytes(candidate.bytes)
            ));
        }
        for keep in &repository.keep {
            kept += 1;
            text.push_str(&format!(
                "  keep   {}  {}  {}: {}\n",
                short(&keep.digest),
                tags_text(&keep.tags),
                serialized(&keep.rule),
                keep.detail
            ));
        }
    }
    for stale in &plan.stale_sources {
        let scope = stale
            .scope
            .as_deref()
            .map(|scope| format!("/{scope}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "stale usage source {}{scope}: {}; apply refuses\n",
            stale.source, stale.reason
        ));
    }
    text.push_str(&format!(
        "{} to delete, {kept} kept, {} to free after the registry's garbage collection\n",
        plan.candidates,
        bytes(plan.bytes)
    ));
    text
}

fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        "(untagged)".to_string()
    } else {
        tags.join(",")
    }
}

fn apply_text(applied: &Applied) -> String {
    let mut text = String::new();
    if let Some(refused) = &applied.refused {
        text.push_str(&format!("refused: {refused}\n"));
    }
    for blocked in &applied.blocked {
        text.push_str(&format!("blocked: {blocked}\n"));
    }
    for done in &applied.done {
        text.push_str(&format!(
            "{:<12} {}@{}  {}  {}\n",
            done.outcome,
            done.repository,
            short(&done.digest),
            tags_text(&done.tags),
            done.detail
        ));
    }
    text.push_str(&format!(
        "{} deleted, {} failed, {} left for a later run\n",
        applied.deleted,
        applied.failed(),
        applied.deferred
    ));
    text
}
