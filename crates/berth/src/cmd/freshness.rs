//! `berth stale` and `berth rebuild plan`: which images in scope should be rebuilt and why
//! (berth-core's `freshness`, over what the store knows), and the plan that orders them in waves
//! by lineage. `--json` prints what `GET /api/v1/stale` answers.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::catalog;
use berth_core::freshness::{self, Plan, Reason, Report, Settings, oslife};
use berth_files::catalog_source::CatalogSource;
use chrono::{DateTime, Utc};

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{open_store_read_only, print_json, print_text, runtime, store_url};
use crate::environment::Environment;
use crate::exit::usage;

/// Options `berth stale` and `berth rebuild plan` share.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The catalog: a file, or a directory whose *.yaml files are merged
    /// (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Images older than this are `too-old` (an entry's `max_age` wins): `30d`, `2w`.
    /// Default: age alone makes nothing stale.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Report an OS this close to its end of life (default 90d).
    #[arg(long, value_name = "DURATION")]
    pub eol_warning: Option<String>,
    /// Decide as if it were this moment (RFC 3339 or a day): for reports about a date ahead.
    #[arg(long, value_name = "MOMENT")]
    pub now: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = oslife::TABLE_NOTE)]
pub struct StaleArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(subcommand)]
    pub command: RebuildCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RebuildCommand {
    /// What to rebuild, grouped by build target, in waves by lineage.
    Plan(PlanArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
}

struct Decided {
    now: DateTime<Utc>,
    report: Report,
}

fn duration_flag(flag: &str, text: &Option<String>) -> anyhow::Result<Option<std::time::Duration>> {
    text.as_deref()
        .map(|text| {
            berth_core::duration::parse(text).map_err(|error| usage(format!("{flag}: {error}")))
        })
        .transpose()
}

fn decide(common: &Common, env: &Environment) -> anyhow::Result<Decided> {
    let now = match &common.now {
        Some(text) => {
            catalog::parse_moment(text).map_err(|error| usage(format!("--now: {error}")))?
        }
        None => Utc::now(),
    };
    let mut settings = Settings {
        max_age: duration_flag("--max-age", &common.max_age)?,
        ..Settings::default()
    };
    if let Some(window) = duration_flag("--eol-warning", &common.eol_warning)? {
        settings.eol_warning = window;
    }
    let source = CatalogSource {
        path: catalog_path(common.catalog.clone(), env),
        format: common.catalog_format.into(),
    };
    let catalog = read_valid(&source, now)?;
    let url = store_url(common.store.clone(), env);
    let report = runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let report = store.stale(&catalog, &settings, now).await;
        store.close().await;
        anyhow::Ok(report?)
    })?;
    Ok(Decided { now, report })
}

pub fn stale(args: StaleArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let Decided { now, report } = decide(&args.common, env)?;
    if args.common.json {
        print_json(&freshness::Listing::new(&report, now))?;
        return Ok(ExitCode::SUCCESS);
    }
    let counts = freshness::count_by_reason(&report);
    let mut text = String::new();
    for image in &report.stale {
        text.push_str(&format!(
            "{}  {}  {}\n",
            image.reference,
            image.platform,
            short(image.digest.as_str())
        ));
        for reason in &image.reasons {
            text.push_str(&format!("    {}\n", describe(reason)));
        }
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    text.push_str(&format!(
        "{} stale of {} in scope ({})\n",
        report.stale.len(),
        report.checked,
        summary.join(", ")
    ));
    print_text(&text);
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(args: RebuildArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    match args.command {
        RebuildCommand::Plan(args) => plan(args, env),
    }
}

fn plan(args: PlanArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let Decided { report, .. } = decide(&args.common, env)?;
    let plan = freshness::plan(&report, |_| None);
    if args.common.json {
        print_json(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_text(&plan_text(&plan));
    Ok(ExitCode::SUCCESS)
}

fn plan_text(plan: &Plan) -> String {
    if plan.items.is_empty() {
        return "nothing to rebuild\n".to_string();
    }
    let mut text = String::new();
    let mut last: Option<(Option<&str>, u32)> = None;
    for item in &plan.items {
        let group = (item.target.as_deref(), item.wave);
        if last != Some(group) {
            let target = item.target.as_deref().unwrap_or("(no build target)");
            text.push_str(&format!("{target}, wave {}:\n", item.wave));
            last = Some(group);
        }
        text.push_str(&format!(
            "    {}  {}  {}  {}\n",
            item.reference,
            item.platform,
            short(item.digest.as_str()),
            item.reasons.join(", ")
        ));
    }
    text.push_str(&format!(
        "{} to rebuild in {} wave(s)\n",
        plan.items.len(),
        plan.waves
    ));
    text
}

fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

fn day(moment: &DateTime<Utc>) -> String {
    moment.format("%Y-%m-%d").to_string()
}

/// One reason as a line of text.
fn describe(reason: &Reason) -> String {
    match reason {
        Reason::BaseMoved {
            base,
            channel,
            now,
            since,
        } => format!(
            "base-moved: built on {} of {channel}, which points at {} since {}",
            short(base.as_str()),
            short(now.as_str()),
            day(since)
        ),
        Reason::TooOld {
            age_days,
            max_age_days,
            from,
            source,
        } => {
            let from_text = match source {
                freshness::AgeSource::Created => "created",
                freshness::AgeSource::FirstSeen => "first seen (its created cannot be right)",
            };
            format!(
                "too-old: {age_days} days (max {max_age_days}), counted from {from_text} {}",
                day(from)
            )
        }
        Reason::OsEol {
            os,
            eol_on,
            warning,
            ..
        } => {
            if *warning {
                format!("os-eol: {os} reaches end of life on {eol_on}")
            } else {
                format!("os-eol: {os} is end of life since {eol_on}")
            }
        }
        Reason::BaseRetired {
            base,
            entry,
            state,
            replacement,
        } => {
            let instead = replacement
                .as_ref()
                .map(|name| format!("; move to {name}"))
                .unwrap_or_default();
            format!(
                "base-retired: built on {} of {entry}, which is {}{instead}",
                short(base.as_str()),
                state.as_str()
            )
        }
    }
}
