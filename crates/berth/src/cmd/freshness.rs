//! `berth stale` and `berth rebuild plan|run|status|resume`: which images in scope should be
//! rebuilt and why (berth-core's `freshness`, over what the store knows), the plan that orders
//! them in waves by lineage, one dispatch pass from the CLI (berth-rebuild, under the same
//! `rebuild` lease `berth serve` takes), and what the dispatches came to. `berth stale --json`
//! prints what `GET /api/v1/stale` answers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_core::catalog::{self, Catalog};
use berth_core::freshness::{self, Plan, Reason, Report, Settings, oslife};
use berth_core::rebuild::{RebuildSettings, SecretSource};
use berth_files::catalog_source::CatalogSource;
use berth_rebuild::Dispatcher;
use berth_server::config::ServeFile;
use chrono::{DateTime, Utc};

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{
    open_store, open_store_read_only, print_json, print_text, runtime, store_url, under_cli_lease,
};
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
    /// One dispatch pass: close rebuilds that landed, send what is stale to its build target
    /// (recorded and audited first), within the config's limits. Takes the `rebuild` lease.
    Run(RunArgs),
    /// Dispatches in flight, closed, failed and timed out, and suspended targets.
    Status(StatusArgs),
    /// Resume a target suspended after consecutive failures.
    Resume(ResumeArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// The config file whose `rebuild` section names the build targets (and whose
    /// `freshness` section gives defaults for --max-age and --eol-warning).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// The config file with the `rebuild` section (targets, limits, windows), as for
    /// `berth serve --config`; its `catalog`, `store` and `freshness` apply unless flags say
    /// otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Decide and print, without recording or sending anything.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, help = crate::cmd::channels::ACTOR_HELP)]
    pub actor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Only this target's dispatches.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// How many of the newest dispatches to show.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The suspended target.
    pub target: String,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    #[arg(long, help = crate::cmd::channels::ACTOR_HELP)]
    pub actor: Option<String>,
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

/// The moment, the freshness settings (flags over the config's `freshness` section) and the
/// catalog the commands decide with.
fn inputs(
    common: &Common,
    file: Option<(&ServeFile, Option<&Path>)>,
    env: &Environment,
) -> anyhow::Result<(DateTime<Utc>, Settings, Catalog)> {
    let now = match &common.now {
        Some(text) => {
            catalog::parse_moment(text).map_err(|error| usage(format!("--now: {error}")))?
        }
        None => Utc::now(),
    };
    let section = file
        .and_then(|(file, _)| file.freshness.clone())
        .unwrap_or_default();
    let mut settings = Settings {
        max_age: duration_flag("--max-age", &common.max_age)?.or(section.max_age),
        os_lifecycle: section.os_lifecycle,
        ..Settings::default()
    };
    if let Some(window) =
        duration_flag("--eol-warning", &common.eol_warning)?.or(section.eol_warning)
    {
        settings.eol_warning = window;
    }
    // A catalog the config file names is relative to the file's directory, as for serve.
    let from_file = file.and_then(|(file, base)| {
        let path = file.catalog.clone()?;
        Some(match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        })
    });
    let source = CatalogSource {
        path: match common.catalog.clone().or(from_file) {
            Some(path) => path,
            None => catalog_path(None, env),
        },
        format: common.catalog_format.into(),
    };
    let catalog = read_valid(&source, now)?;
    Ok((now, settings, catalog))
}

fn decide(common: &Common, env: &Environment) -> anyhow::Result<Decided> {
    let (now, settings, catalog) = inputs(common, None, env)?;
    let url = store_url(common.store.clone(), env);
    let report = runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let report = store.stale(&catalog, &settings, now).await;
        store.close().await;
        anyhow::Ok(report?)
    })?;
    Ok(Decided { now, report })
}

/// The `rebuild` section with every target's secret read (files relative to `base`, the
/// config file's directory): what `berth serve` and `berth rebuild run` dispatch with.
pub(crate) fn dispatcher(
    section: &RebuildSettings,
    base: Option<&Path>,
    env: &Environment,
    actor: &str,
) -> anyhow::Result<Dispatcher> {
    let mut section = section.clone();
    for target in &mut section.targets {
        if let (SecretSource::File(path), Some(base)) = (&mut target.secret, base)
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }
    let lookup = |name: &str| env.get(name);
    Dispatcher::new(section, &lookup, DISPATCH_TIMEOUT, actor)
        .map_err(|error| usage(error.to_string()))
}

/// How long one dispatch request may take.
const DISPATCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
fn config_file(path: &Path) -> anyhow::Result<(ServeFile, Option<PathBuf>)> {
    let file = crate::cmd::serve::read_config(path)?;
    Ok((file, path.parent().map(Path::to_path_buf)))
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
        RebuildCommand::Run(args) => run(args, env),
        RebuildCommand::Status(args) => status(args, env),
        RebuildCommand::Resume(args) => resume(args, env),
    }
}

fn plan(args: PlanArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let file = args.config.as_deref().map(config_file).transpose()?;
    let (now, settings, catalog) = inputs(
        &args.common,
        file.as_ref().map(|(file, base)| (file, base.as_deref())),
        env,
    )?;
    let url = store_url(
        args.common
            .store
            .clone()
            .or_else(|| file.as_ref().and_then(|(file, _)| file.store.clone())),
        env,
    );
    let report = runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let report = store.stale(&catalog, &settings, now).await;
        store.close().await;
        anyhow::Ok(report?)
    })?;
    let rebuild = file.as_ref().and_then(|(file, _)| file.rebuild.clone());
    let plan = freshness::plan(&report, |image| {
        rebuild
            .as_ref()
            .and_then(|rebuild| rebuild.target_of(&catalog, image))
            .map(str::to_string)
    });
    if args.common.json {
        print_json(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_text(&plan_text(&plan));
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let (file, base) = config_file(&args.config)?;
    let Some(section) = &file.rebuild else {
        return Err(usage(format!(
            "{}: no `rebuild` section (targets to dispatch to)",
            args.config.display()
        )));
    };
    let (now, settings, catalog) = inputs(&args.common, Some((&file, base.as_deref())), env)?;
    for problem in section.unknown_builds(&catalog) {
        eprintln!("warning: {problem}");
    }
    let actor = crate::cmd::channels::actor(args.actor, env);
    let dispatcher = dispatcher(section, base.as_deref(), env, &actor)?;
    let url = store_url(args.common.store.clone().or(file.store.clone()), env);
    let report = runtime()?.block_on(async {
        let store = open_store(&url).await?;
        let outcome = under_cli_lease(&store, berth_rebuild::LEASE, &actor, |fenced| async move {
            Ok(dispatcher
                .pass(&fenced, &catalog, &settings, now, args.dry_run)
                .await?)
        })
        .await;
        store.close().await;
        outcome
    })?;
    if args.common.json {
        print_json(&report)?;
    } else {
        print_text(&run_text(&report));
    }
    let failed = report
        .dispatched
        .iter()
        .chain(&report.redelivered)
        .any(|sent| sent.result == "failed");
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_text(report: &berth_rebuild::PassReport) -> String {
    let mut text = String::new();
    let verb = if report.dry_run {
        "would dispatch"
    } else {
        "dispatched"
    };
    for sent in report.redelivered.iter().chain(&report.dispatched) {
        let key = sent.key.as_deref().unwrap_or("-");
        text.push_str(&format!(
            "{verb} to {} ({} image(s)): {}{}  key {key}\n",
            sent.target,
            sent.images.len(),
            sent.result,
            sent.error
                .as_ref()
                .map(|error| format!(" ({error})"))
                .unwrap_or_default(),
        ));
        for image in &sent.images {
            text.push_str(&format!("    {image}\n"));
        }
    }
    for closed in &report.closed {
        let fresh = closed
            .time_to_fresh_seconds
            .map(|seconds| format!(" after {}", human(seconds)))
            .unwrap_or_default();
        text.push_str(&format!(
            "{} {}: {}{fresh}\n",
            closed.reference, closed.platform, closed.state
        ));
    }
    for held in &report.held {
        let target = held.target.as_deref().unwrap_or("(no build target)");
        text.push_str(&format!(
            "held: {target}, {}: {} image(s)\n",
            held.hold.as_str(),
            held.images.len()
        ));
    }
    for target in &report.suspended {
        text.push_str(&format!(
            "suspended: {target} (consecutive failures; `berth rebuild resume {target}`)\n"
        ));
    }
    if text.is_empty() {
        text.push_str("nothing to dispatch\n");
    }
    text
}

fn human(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// `berth rebuild status --json`: dispatches newest first, and targets that failed.
#[derive(serde::Serialize)]
struct StatusView {
    dispatches: Vec<DispatchView>,
    targets: Vec<TargetView>,
}

#[derive(serde::Serialize)]
struct DispatchView {
    id: i64,
    key: String,
    target: String,
    wave: u32,
    state: &'static str,
    attempts: u32,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    images: Vec<ImageView>,
}

#[derive(serde::Serialize)]
struct ImageView {
    reference: String,
    platform: String,
    digest: String,
    reasons: Vec<&'static str>,
    state: &'static str,
    new_digest: Option<String>,
    stale_since: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

#[derive(serde::Serialize)]
struct TargetView {
    name: String,
    failures: u32,
    suspended_at: Option<DateTime<Utc>>,
    suspended_reason: Option<String>,
}

fn status(args: StatusArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let url = store_url(args.store.clone(), env);
    let (dispatches, targets) = runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let dispatches = store
            .rebuild_dispatches(args.target.as_deref(), args.limit)
            .await;
        let targets = store.rebuild_targets().await;
        store.close().await;
        anyhow::Ok((dispatches?, targets?))
    })?;
    let view = StatusView {
        dispatches: dispatches
            .into_iter()
            .map(|record| DispatchView {
                id: record.id,
                key: record.key,
                target: record.target,
                wave: record.wave,
                state: record.state.as_str(),
                attempts: record.attempts,
                created_at: record.created_at,
                sent_at: record.sent_at,
                finished_at: record.finished_at,
                last_error: record.last_error,
                images: record
                    .items
                    .into_iter()
                    .map(|item| ImageView {
                        reference: item.item.reference.to_string(),
                        platform: item.item.platform,
                        digest: item.item.digest.to_string(),
                        reasons: item.item.reasons,
                        state: item.state.as_str(),
                        new_digest: item.new_digest.map(|digest| digest.to_string()),
                        stale_since: item.item.stale_since,
                        closed_at: item.closed_at,
                    })
                    .collect(),
            })
            .collect(),
        targets: targets
            .into_iter()
            .map(|target| TargetView {
                name: target.name,
                failures: target.failures,
                suspended_at: target.suspended_at,
                suspended_reason: target.suspended_reason,
            })
            .collect(),
    };
    if args.json {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for dispatch in &view.dispatches {
        text.push_str(&format!(
            "#{} {} {} wave {}, {} image(s), {} attempt(s), created {}{}\n",
            dispatch.id,
            dispatch.target,
            dispatch.state,
            dispatch.wave,
            dispatch.images.len(),
            dispatch.attempts,
            dispatch.created_at.format("%Y-%m-%d %H:%M"),
            dispatch
                .last_error
                .as_ref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default()
        ));
        for image in &dispatch.images {
            text.push_str(&format!(
                "    {} {}  {}  {}\n",
                image.reference,
                image.platform,
                short(&image.digest),
                image.state
            ));
        }
    }
    for target in &view.targets {
        match &target.suspended_at {
            Some(at) => text.push_str(&format!(
                "target {} suspended since {}: {}\n",
                target.name,
                at.format("%Y-%m-%d %H:%M"),
                target.suspended_reason.as_deref().unwrap_or("")
            )),
            None if target.failures > 0 => text.push_str(&format!(
                "target {}: {} consecutive failure(s)\n",
                target.name, target.failures
            )),
            None => {}
        }
    }
    if text.is_empty() {
        text.push_str("no rebuilds dispatched\n");
    }
    print_text(&text);
    Ok(ExitCode::SUCCESS)
}

fn resume(args: ResumeArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let url = store_url(args.store.clone(), env);
    let actor = crate::cmd::channels::actor(args.actor, env);
    let resumed = runtime()?.block_on(async {
        let store = open_store(&url).await?;
        let resumed = store
            .resume_rebuild_target(&args.target, &actor, Utc::now())
            .await;
        store.close().await;
        anyhow::Ok(resumed?)
    })?;
    if resumed {
        print_text(&format!("resumed {}\n", args.target));
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} is not suspended", args.target);
        Ok(ExitCode::from(1))
    }
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
