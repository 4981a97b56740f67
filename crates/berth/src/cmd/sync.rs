//! `berth sync`: reads the registries the catalog (and the command line) name into the store:
//! tags, digests, indexes, manifests, configs, OS identity from layers, lineage.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_core::lineage::BaseCheck;
use berth_files::catalog_source::CatalogSource;
use berth_oci::Client;
use berth_store::RepositoryName;
use berth_sync::{
    DeclaredBase, PathPattern, Progress, RegistryRateLimit, RegistryScan, RepositoryOutcome,
    SyncOptions, SyncReport, Syncer, Targets, check_declared_bases,
};
use chrono::Utc;

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{open_store, print_json, print_text, store_url};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};
use crate::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Walk the repositories this catalog's entries and variants name (default:
    /// $BERTH_CATALOG, then ./catalog.yaml, when no --repo or --registry is given).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// Also walk this repository (`registry/path`). Repeatable.
    #[arg(long = "repo", value_name = "REPOSITORY")]
    pub repositories: Vec<String>,
    /// Walk every repository this registry lists (`_catalog`), narrowed by --include and
    /// --exclude. Repeatable.
    #[arg(long = "registry", value_name = "HOST")]
    pub registries: Vec<String>,
    /// With --registry: only repositories matching this path pattern (`team/*`, `**/app`).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// With --registry: skip repositories matching this path pattern.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Check the signatures and attestations found against this policy's trusted keys
    /// (`signatures.keys`; default: $BERTH_POLICY when set). Without it they are read and kept,
    /// and checked when a sync with the keys runs.
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Do not read signatures and attestations (cosign's `.sig`/`.att` tags, referrers tags).
    #[arg(long)]
    pub no_signatures: bool,
    /// Ask the OCI 1.1 referrers API again about digests tagged within this long (a signature
    /// or attestation attached after the push has no tag to show it); `0` asks only when a
    /// tag first reaches a digest. With trusted keys only.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub referrers_recheck: String,
    /// Do not read layers (no OS identity or libc; manifests, configs and lineage only).
    #[arg(long)]
    pub no_layers: bool,
    /// At most this many tags per repository.
    #[arg(long, default_value_t = 10_000)]
    pub tag_cap: usize,
    /// Repositories synced at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let mut targets = Targets::default();
    for text in &args.repositories {
        let name = RepositoryName::parse(text)
            .map_err(|error| usage(format!("--repo {text:?}: {error}")))?;
        targets.repositories.insert(name);
    }
    let patterns = |flag: &str, texts: &[String]| -> anyhow::Result<Vec<PathPattern>> {
        texts
            .iter()
            .map(|text| PathPattern::parse(text).map_err(|error| usage(format!("{flag}: {error}"))))
            .collect()
    };
    let include = patterns("--include", &args.include)?;
    let exclude = patterns("--exclude", &args.exclude)?;
    if args.registries.is_empty() && !(include.is_empty() && exclude.is_empty()) {
        return Err(usage(
            "--include and --exclude narrow a --registry; none was given",
        ));
    }
    for registry in &args.registries {
        targets.registries.push(RegistryScan {
            registry: registry.to_ascii_lowercase(),
            include: include.clone(),
            exclude: exclude.clone(),
        });
    }
    let mut catalog = None;
    if args.catalog.is_some() || targets.is_empty() {
        let source = CatalogSource {
            path: catalog_path(args.catalog.clone(), env),
            format: args.catalog_format.into(),
        };
        let loaded = read_valid(&source, Utc::now())?;
        targets.add_catalog(&loaded);
        catalog = Some(loaded);
    }
    let client = Client::new(args.registry.client_config(env)?);
    let options = SyncOptions {
        tag_cap: args.tag_cap,
        repository_concurrency: args.concurrency,
        scan_layers: !args.no_layers,
        read_signatures: !args.no_signatures,
        referrers_recheck: berth_core::duration::parse(&args.referrers_recheck)
            .map_err(|error| usage(format!("--referrers-recheck: {error}")))?,
        trusted_keys: match args
            .policy
            .clone()
            .or_else(|| env.get("BERTH_POLICY").map(PathBuf::from))
        {
            Some(path) => crate::cmd::check::read_policy_keys(&path)?,
            None => Vec::new(),
        },
        ..SyncOptions::default()
    };
    let url = store_url(args.store.clone(), env);
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let output = runtime.block_on(async {
        let store = open_store(&url).await?;
        let syncer = Syncer::new(client.clone(), store.clone(), options);
        let ticker = show_progress.then(|| spawn_progress(syncer.progress(), client.clone()));
        let report = syncer.run(&targets).await;
        if let Some(ticker) = ticker {
            ticker.abort();
            eprint!("\r\x1b[2K");
        }
        let report = report?;
        let declared_bases = match &catalog {
            Some(catalog) => check_declared_bases(&store, catalog).await?,
            None => Vec::new(),
        };
        store.close().await;
        anyhow::Ok(Output {
            report,
            declared_bases,
        })
    })?;
    if args.json {
        print_json(&output)?;
    } else {
        print_text(&report_text(&output.report));
        print_text(&declared_text(&output.declared_bases));
    }
    let report = output.report;
    Ok(if report.failed() > 0 {
        ExitCode::from(NEGATIVE)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--json`'s shape: the sync report and the declared-base checks.
#[derive(serde::Serialize)]
struct Output {
    #[serde(flatten)]
    report: SyncReport,
    declared_bases: Vec<DeclaredBase>,
}

fn declared_text(checks: &[DeclaredBase]) -> String {
    let mut out = String::new();
    for check in checks {
        let subject = format!(
            "{}{} ({} {})",
            check.entry,
            check
                .variant
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default(),
            check.image,
            short(&check.digest),
        );
        let verdict = match &check.check {
            BaseCheck::Match { generations: 1, .. } => {
                format!("built on {} as declared", check.declared)
            }
            BaseCheck::Match { generations, .. } => format!(
                "built on {} as declared, through {} intermediate image(s)",
                check.declared,
                generations - 1
            ),
            BaseCheck::Mismatch { actual, .. } => format!(
                "MISMATCH: declared base {}, actually built on {}",
                check.declared,
                match &check.actual_entry {
                    Some(name) => format!("{name} ({})", short(actual)),
                    None => short(actual),
                }
            ),
            BaseCheck::Unknown { reason } => format!(
                "declared base {} not confirmed: {}",
                check.declared,
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default()
            ),
        };
        out.push_str(&format!("base of {subject}: {verdict}\n"));
    }
    out
}

fn short(digest: &berth_core::Digest) -> String {
    format!("{}:{}", digest.algorithm().name(), &digest.hex()[..12])
}

/// A one-line progress display on stderr, redrawn while the sync runs.
fn spawn_progress(progress: Arc<Progress>, client: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            eprint!(
                "\r\x1b[2Ksync: repositories {}/{} · tags {} · requests {}",
                progress.repositories_done.load(Ordering::Relaxed),
                progress.repositories_total.load(Ordering::Relaxed),
                progress.tags_resolved.load(Ordering::Relaxed),
                client.stats().total()
            );
        }
    })
}

fn report_text(report: &SyncReport) -> String {
    let mut out = String::new();
    for (registry, error) in &report.registry_failures {
        out.push_str(&format!(
            "{registry}: FAILED to list repositories: {error}\n"
        ));
    }
    for repository in &report.repositories {
        match &repository.outcome {
            RepositoryOutcome::Synced(counts) => {
                let mut changes = Vec::new();
                for (count, what) in [
                    (counts.tags_added, "new"),
                    (counts.tags_moved, "moved"),
                    (counts.tags_gone, "gone"),
                    (counts.tags_returned, "back"),
                ] {
                    if count > 0 {
                        changes.push(format!("{count} {what}"));
                    }
                }
                let changes = if changes.is_empty() {
                    "unchanged".to_string()
                } else {
                    changes.join(", ")
                };
                out.push_str(&format!(
                    "{}: {} tags ({changes}){}; {} manifests fetched, {} images added, layers {} read / {} cached\n",
                    repository.repository,
                    counts.tags,
                    if counts.truncated { ", TRUNCATED at the cap" } else { "" },
                    counts.manifests_fetched,
                    counts.images_added,
                    counts.layers_read,
                    counts.layers_cached,
                ));
                if counts.signatures_read > 0 {
                    out.push_str(&format!(
                        "  {} signature or attestation manifests read\n",
                        counts.signatures_read
                    ));
                }
                for warning in &counts.warnings {
                    out.push_str(&format!("  warning: {warning}\n"));
                }
            }
            RepositoryOutcome::Failed { error } => {
                out.push_str(&format!(
                    "{}: FAILED, kept what was known: {error}\n",
                    repository.repository
                ));
            }
            RepositoryOutcome::Skipped { reason } => {
                out.push_str(&format!(
                    "{}: skipped, kept what was known: {reason}\n",
                    repository.repository
                ));
            }
        }
    }
    if report.signatures_rechecked > 0 {
        out.push_str(&format!(
            "{} stored signature layers checked against keys they had not met\n",
            report.signatures_rechecked
        ));
    }
    let requests = &report.requests;
    out.push_str(&format!(
        "{} repositories, {} failed; {} requests ({} HEAD, {} GET, {} token), {} bytes received; lineage: {} bases changed; {:.2}s\n",
        report.repositories.len(),
        report.failed(),
        requests.total(),
        requests.head,
        requests.get,
        requests.token,
        requests.bytes_received,
        report.lineage_updates,
        report.elapsed.as_secs_f64(),
    ));
    for stated in &report.rate_limits {
        out.push_str(&rate_limit_line(stated));
    }
    out
}

/// `docker.io: pull rate limit 76 of 100 left (window 21600 s)`.
fn rate_limit_line(stated: &RegistryRateLimit) -> String {
    let limit = &stated.limit;
    let of = limit.limit.map(|n| format!(" of {n}")).unwrap_or_default();
    let window = limit
        .window_seconds
        .map(|s| format!(" (window {s} s)"))
        .unwrap_or_default();
    format!(
        "{}: pull rate limit {}{of} left{window}\n",
        stated.registry, limit.remaining
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_reported_as_the_registry_stated_them() {
        let stated = RegistryRateLimit {
            registry: "docker.io".into(),
            limit: berth_oci::RateLimit {
                limit: Some(100),
                remaining: 76,
                window_seconds: Some(21600),
            },
        };
        assert_eq!(
            rate_limit_line(&stated),
            "docker.io: pull rate limit 76 of 100 left (window 21600 s)\n"
        );
        let bare = RegistryRateLimit {
            limit: berth_oci::RateLimit {
                limit: None,
                remaining: 3,
                window_seconds: None,
            },
            ..stated
        };
        assert_eq!(
            rate_limit_line(&bare),
            "docker.io: pull rate limit 3 left\n"
        );
    }
}
