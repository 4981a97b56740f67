//! `berth usage`: who uses which image. `scan DIR` finds the image references in a source tree
//! (read by berth-core's `usage`, walked by berth-files' `source_tree`), `import` reads what a
//! cluster runs from `kubectl get -o json` (berth-core's `usage::cluster`), and both record into
//! the store's usage inventory; `berth usage QUERY` answers who uses an image, a catalog entry or
//! a digest, `--state eol|deprecated` lists who still runs images on their way out, `sources`
//! says when each source last reported (docs/usage.md).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::catalog::{State, parse_moment};
use berth_core::quote::escape;
use berth_core::usage::{self, Resolution, SourceKind, Use, cluster};
use berth_core::{Digest, ImageRef};
use berth_files::catalog_source::CatalogSource;
use berth_files::source_tree::{self, Limits, SkipReason, TreeError};
use berth_store::{RepositoryName, Store, UsageEntry, UsageQuery, UsageSource, UsageView};
use chrono::Utc;
use serde::Serialize;

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{open_store, open_store_read_only, print_json, print_text, runtime, store_url};
use crate::environment::Environment;
use crate::exit::usage as usage_error;

/// The largest `kubectl get -o json` document `berth usage import` reads (a cluster of 10,000
/// Pods lists in about 100 MiB).
pub const IMPORT_MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<UsageCommand>,
    /// Who uses this: an image reference (`registry/repo:tag`, also matching uses pinned to the
    /// digest the store knows for the tag), a catalog name (`python3.11`, `python3.11/jobs`:
    /// every tag of its repositories), or a digest.
    #[arg(value_name = "IMAGE|NAME[/VARIANT]|DIGEST", conflicts_with = "state")]
    pub query: Option<String>,
    /// The campaign list: who still runs images whose catalog entry is (or will be on --at)
    /// deprecated (or eol), or eol; grouped by namespace, with the replacement.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// With --state: the moment the lifecycle is read at (a day or RFC 3339; default: now).
    #[arg(long, value_name = "DATE", requires = "state")]
    pub at: Option<String>,
    /// Include uses a full report no longer holds (`gone_at` set).
    #[arg(long)]
    pub include_gone: bool,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL", global = true)]
    pub store: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// The catalog, for names and lifecycles (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long = "catalog", value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long = "catalog-format", value_enum, default_value_t = SourceFormat::Berth)]
    pub format: SourceFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    /// Deprecated or eol.
    Deprecated,
    Eol,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Find every container image reference in a source tree: Dockerfile FROM (ARG defaults
    /// resolved), Kubernetes manifests, docker-compose, GitHub Actions, GitLab CI, Azure
    /// Pipelines; `--record` writes them into the inventory.
    Scan(ScanArgs),
    /// Record what a cluster runs, from `kubectl get pods,deployments,statefulsets,daemonsets,
    /// jobs,cronjobs -A -o json` (a file, or - for stdin). A full import marks the cluster's
    /// workloads it no longer lists gone.
    Import(ImportArgs),
    /// When each source last reported, and last reported in full.
    Sources,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// The directory to scan (a repository checkout); paths are printed relative to it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The repository's name: the JSON output's `repo`, and the inventory scope with --record
    /// (default there: the directory's name).
    #[arg(long, value_name = "NAME")]
    pub repo: Option<String>,
    /// Record the findings in the store's usage inventory (source `source`). A scan that
    /// skipped nothing is a full report: references the tree no longer holds are marked gone.
    #[arg(long)]
    pub record: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// `kubectl get ... -o json` output; - reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: String,
    /// The cluster's name: the inventory scope of these uses.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub cluster: String,
    /// The list is not the whole cluster (one namespace, a label selector): mark nothing gone.
    #[arg(long)]
    pub partial: bool,
}

/// `--json`'s document (docs/usage.md names each field).
#[derive(Debug, Serialize)]
struct Report {
    repo: Option<String>,
    findings: Vec<Found>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
struct Found {
    path: String,
    line: usize,
    column: usize,
    kind: SourceKind,
    context: String,
    /// As written in the file.
    image: String,
    /// Normalized (`docker.io/library/alpine:3.20`); null when unresolved or invalid.
    reference: Option<String>,
    /// False when the reference is filled in later (a variable, an expression).
    resolved: bool,
    /// Why `reference` is null: what is missing, or why the text is no reference.
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct Skipped {
    path: String,
    /// Where in the file, when the problem is a part of it; null for a whole file.
    line: Option<usize>,
    column: Option<usize>,
    reason: String,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let url = store_url(args.store.clone(), env);
    match args.command {
        Some(UsageCommand::Scan(scan_args)) => scan(scan_args, args.json, &url),
        Some(UsageCommand::Import(import_args)) => import(import_args, args.json, &url),
        Some(UsageCommand::Sources) => sources(args.json, &url),
        None => match (&args.query, args.state) {
            (Some(query), _) => who_uses(query, &args, &url, env),
            (None, Some(state)) => campaign(state, &args, &url, env),
            (None, None) => Err(usage_error(
                "say what to look up (berth usage IMAGE|NAME|DIGEST), --state eol|deprecated, \
                 or a subcommand: scan, import, sources",
            )),
        },
    }
}

fn scan(args: ScanArgs, json: bool, url: &str) -> anyhow::Result<ExitCode> {
    let scope = args
        .repo
        .clone()
        .unwrap_or_else(|| directory_name(&args.dir));
    let mut report = Report {
        repo: args.repo.clone(),
        findings: Vec::new(),
        skipped: Vec::new(),
    };
    let walked = source_tree::walk(
        &args.dir,
        &Limits::default(),
        |path| usage::recognize(path).is_some(),
        |path, text| {
            let scanned = usage::scan(path, text);
            report
                .findings
                .extend(scanned.findings.into_iter().map(|finding| {
                    let (reference, problem) = match &finding.resolution {
                        Resolution::Image(reference) => (Some(reference.canonical()), None),
                        Resolution::Invalid(error) => (None, Some(error.to_string())),
                        Resolution::Unresolved { reason } => (None, Some(reason.clone())),
                    };
                    Found {
                        path: path.to_string(),
                        line: finding.position.line,
                        column: finding.position.column,
                        kind: finding.kind,
                        resolved: finding.resolution.is_resolved(),
                        context: finding.context,
                        image: finding.image,
                        reference,
                        problem,
                    }
                }));
            report
                .skipped
                .extend(scanned.problems.into_iter().map(|problem| Skipped {
                    path: path.to_string(),
                    line: Some(problem.position.line),
                    column: Some(problem.position.column),
                    reason: problem.message,
                }));
        },
    );
    let skipped = match walked {
        Ok(skipped) => skipped,
        Err(error @ (TreeError::NotFound { .. } | TreeError::NotADirectory { .. })) => {
            return Err(usage_error(error.to_string()));
        }
        Err(error) => return Err(error).context("cannot scan the source tree"),
    };
    report
        .skipped
        .extend(skipped.into_iter().map(|skipped| match skipped.reason {
            SkipReason::NotUtf8 {
                line,
                column,
                message,
            } => Skipped {
                path: skipped.path,
                line: Some(line),
                column: Some(column),
                reason: message,
            },
            reason => Skipped {
                path: skipped.path,
                line: None,
                column: None,
                reason: reason.to_string(),
            },
        }));
    // In walk order (path components compared one by one), each file's own in file order.
    report
        .skipped
        .sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    let recorded = if args.record {
        let uses = source_uses(&report);
        let full = report.skipped.is_empty();
        Some(record(url, UsageSource::Source, &scope, &uses, full)?)
    } else {
        None
    };
    if json {
        print_json(&report)?;
    } else {
        print_text(&findings_text(&report));
        for skipped in &report.skipped {
            let place = match (skipped.line, skipped.column) {
                (Some(line), Some(column)) => format!("{}:{line}:{column}", skipped.path),
                _ => skipped.path.clone(),
            };
            eprintln!("{}: skipped: {}", escape(&place), escape(&skipped.reason));
        }
    }
    if let Some(recorded) = recorded {
        eprintln!("{}", recorded.summary("source", &scope));
    }
    Ok(ExitCode::SUCCESS)
}

/// `path:line:col  kind  context  image`, one line per finding, with what an image resolved
/// to when the text does not say it, or why it did not.
fn findings_text(report: &Report) -> String {
    let mut text = String::new();
    for found in &report.findings {
        let note = match (&found.reference, &found.problem) {
            (Some(reference), _) if found.image.contains('$') => format!("  (= {reference})"),
            (None, Some(problem)) if found.resolved => format!("  (invalid: {problem})"),
            (None, Some(problem)) => format!("  (unresolved: {problem})"),
            _ => String::new(),
        };
        let line = format!(
            "{}:{}:{}  {}  {}  {}{note}",
            found.path, found.line, found.column, found.kind, found.context, found.image
        );
        text.push_str(&escape(&line));
        text.push('\n');
    }
    text
}

/// The directory's own name (`.` is the current directory's), the default scope of a scan.
fn directory_name(dir: &std::path::Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|dir| {
            dir.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| dir.display().to_string())
}

/// A scan's findings as inventory uses: the file kind, its path, and where in it (a second
/// finding with the same context in the same file is `context #2`).
fn source_uses(report: &Report) -> Vec<Use> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    report
        .findings
        .iter()
        .map(|found| {
            let count = seen
                .entry((found.path.clone(), found.context.clone()))
                .or_default();
            *count += 1;
            let container = match *count {
                1 => found.context.clone(),
                n => format!("{} #{n}", found.context),
            };
            let reference = found
                .reference
                .as_deref()
                .and_then(|text| ImageRef::parse(text).ok());
            Use {
                namespace: String::new(),
                kind: found.kind.to_string(),
                name: found.path.clone(),
                container,
                image: found.image.clone(),
                digest: reference
                    .as_ref()
                    .and_then(|reference| reference.digest().cloned()),
                reference,
            }
        })
        .collect()
}

/// What a report wrote, for a line on stderr and `--json`.
#[derive(Debug, Serialize)]
struct RecordOutcome {
    /// Uses written.
    recorded: u64,
    /// Uses of the scope marked gone (a full report only).
    gone: u64,
    /// Whether the report counted as the whole scope.
    full: bool,
}

impl RecordOutcome {
    fn summary(&self, source: &str, scope: &str) -> String {
        let scope = escape(scope);
        if self.full {
            format!(
                "recorded {} uses of {source} {scope:?}; {} no longer listed marked gone",
                self.recorded, self.gone
            )
        } else {
            format!(
                "recorded {} uses of {source} {scope:?}; not a full report, nothing marked gone",
                self.recorded
            )
        }
    }
}

/// Writes one report into the store, resolving the digests the store knows for tagged uses
/// that do not name one.
fn record(
    url: &str,
    source: UsageSource,
    scope: &str,
    uses: &[Use],
    full: bool,
) -> anyhow::Result<RecordOutcome> {
    runtime()?.block_on(async {
        let store = open_store(url).await?;
        let mut uses = uses.to_vec();
        resolve_digests(&store, &mut uses).await?;
        let recorded = store
            .record_usage(source, scope, &uses, full, Utc::now())
            .await?;
        store.close().await;
        Ok(RecordOutcome {
            recorded: recorded.recorded,
            gone: recorded.gone,
            full,
        })
    })
}

/// Fills in the digest of each use whose reference is a tag the store knows, one read per
/// repository.
async fn resolve_digests(store: &Store, uses: &mut [Use]) -> anyhow::Result<()> {
    let mut known = TagDigests::default();
    for usage in uses.iter_mut() {
        if usage.digest.is_none()
            && let Some(reference) = &usage.reference
        {
            usage.digest = known.digest_of(store, reference).await?;
        }
    }
    Ok(())
}

/// The digests of tags the store knows, read once per repository.
#[derive(Default)]
struct TagDigests(BTreeMap<String, Vec<(berth_core::Tag, Digest)>>);

impl TagDigests {
    /// What `reference` runs: its digest, or the one its tag points at in the store.
    async fn digest_of(
        &mut self,
        store: &Store,
        reference: &ImageRef,
    ) -> anyhow::Result<Option<Digest>> {
        if let Some(digest) = reference.digest() {
            return Ok(Some(digest.clone()));
        }
        let Some(tag) = reference.tag() else {
            return Ok(None);
        };
        let name = reference.name();
        if !self.0.contains_key(&name) {
            let tags = store.tag_digests(&RepositoryName::of(reference)).await?;
            self.0.insert(name.clone(), tags);
        }
        Ok(self.0[&name]
            .iter()
            .find(|(known, _)| known == tag)
            .map(|(_, digest)| digest.clone()))
    }
}

/// `--json` of `berth usage import`.
#[derive(Debug, Serialize)]
struct ImportReport<'a> {
    cluster: &'a str,
    items: usize,
    #[serde(flatten)]
    outcome: RecordOutcome,
    problems: Vec<ImportProblem>,
}

#[derive(Debug, Serialize)]
struct ImportProblem {
    item: String,
    message: String,
}

fn import(args: ImportArgs, json: bool, url: &str) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_input(&args.file)?;
    let document: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        usage_error(format!(
            "{name}:{}:{}: not JSON: {error}",
            error.line(),
            error.column()
        ))
    })?;
    let read = cluster::read(&document).map_err(|error| usage_error(format!("{name}: {error}")))?;
    // An item berth could not read may hold uses: the import is then not the whole cluster.
    let full = !args.partial && read.problems.is_empty();
    let outcome = record(url, UsageSource::Cluster, &args.cluster, &read.uses, full)?;
    for problem in &read.problems {
        eprintln!(
            "{name}: {}: skipped: {}",
            escape(&problem.item),
            escape(&problem.message)
        );
    }
    if json {
        print_json(&ImportReport {
            cluster: &args.cluster,
            items: read.items,
            outcome,
            problems: read
                .problems
                .into_iter()
                .map(|problem| ImportProblem {
                    item: problem.item,
                    message: problem.message,
                })
                .collect(),
        })?;
    } else {
        print_text(&format!(
            "{} (from {} items)\n",
            outcome.summary("cluster", &args.cluster),
            read.items
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// A file's bytes, or stdin's for `-`, refused past [`IMPORT_MAX_BYTES`].
fn read_input(file: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let name = if file == "-" {
        std::io::stdin()
            .lock()
            .take(IMPORT_MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        "<stdin>".to_string()
    } else {
        std::fs::File::open(file)
            .map_err(|error| usage_error(format!("{file}: {error}")))?
            .take(IMPORT_MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {file}"))?;
        file.to_string()
    };
    if bytes.len() as u64 > IMPORT_MAX_BYTES {
        return Err(usage_error(format!(
            "{name}: larger than {} MiB; import one namespace at a time with --partial",
            IMPORT_MAX_BYTES / (1024 * 1024)
        )));
    }
    Ok((name, bytes))
}

fn sources(json: bool, url: &str) -> anyhow::Result<ExitCode> {
    let sources = runtime()?.block_on(async {
        let store = open_store_read_only(url).await?;
        let sources = store.usage_sources().await?;
        store.close().await;
        anyhow::Ok(sources)
    })?;
    if json {
        print_json(&sources)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for source in &sources {
        let full = source
            .last_full_at
            .map_or("never".to_string(), |at| at.to_rfc3339());
        text.push_str(&escape(&format!(
            "{}  {:?}  {} uses  last report {}  last full report {full}",
            source.source,
            source.scope,
            source.uses,
            source.last_report_at.to_rfc3339()
        )));
        text.push('\n');
    }
    print_text(&text);
    Ok(ExitCode::SUCCESS)
}

/// `--json` of `berth usage QUERY`: what the query matched, and every use of it.
#[derive(Debug, Serialize)]
struct WhoUses {
    query: String,
    digests: Vec<String>,
    references: Vec<String>,
    repositories: Vec<String>,
    uses: Vec<UsageView>,
}

fn who_uses(query: &str, args: &Args, url: &str, env: &Environment) -> anyhow::Result<ExitCode> {
    let (entries, matched) = runtime()?.block_on(async {
        let store = open_store_read_only(url).await?;
        let mut matched = interpret(query, args, env)?;
        matched.include_gone = args.include_gone;
        // A tag also stands for the digest it points at now: uses pinned to it are its users.
        let mut known = TagDigests::default();
        for reference in matched.references.clone() {
            if reference.digest().is_none() {
                matched
                    .digests
                    .extend(known.digest_of(&store, &reference).await?);
            }
        }
        let entries = store.usage(&matched).await?;
        store.close().await;
        anyhow::Ok((entries, matched))
    })?;
    if args.json {
        print_json(&WhoUses {
            query: query.to_string(),
            digests: matched.digests.iter().map(Digest::to_string).collect(),
            references: matched.references.iter().map(ImageRef::canonical).collect(),
            repositories: matched.repositories.clone(),
            uses: entries.iter().map(UsageView::from).collect(),
        })?;
    } else {
        print_text(&uses_text(&entries));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a query names: a digest, a catalog entry (its repositories), else an image reference.
fn interpret(query: &str, args: &Args, env: &Environment) -> anyhow::Result<UsageQuery> {
    if let Ok(digest) = Digest::parse(query) {
        return Ok(UsageQuery {
            digests: vec![digest],
            ..UsageQuery::default()
        });
    }
    let looks_like_reference = query.contains(':') || query.contains('@');
    if !looks_like_reference {
        let source = CatalogSource {
            path: catalog_path(args.catalog.path.clone(), env),
            format: args.catalog.format.into(),
        };
        let (name, variant) = match query.split_once('/') {
            Some((name, variant)) => (name, Some(variant)),
            None => (query, None),
        };
        if source.path.exists()
            && let Some(entry) = read_valid(&source, Utc::now())?.get(name)
        {
            let repositories: Vec<String> = entry
                .images()
                .filter(|(of, _)| variant.is_none() || *of == variant)
                .map(|(_, image)| image.canonical())
                .collect();
            if repositories.is_empty() {
                return Err(usage_error(format!(
                    "{query:?}: catalog entry {} has no variant {:?}",
                    entry.name,
                    variant.unwrap_or_default()
                )));
            }
            return Ok(UsageQuery {
                repositories,
                ..UsageQuery::default()
            });
        }
    }
    let reference = ImageRef::parse(query).map_err(|error| {
        usage_error(format!(
            "{query:?}: not a digest, a catalog name or an image reference: {error}"
        ))
    })?;
    Ok(match reference.digest() {
        Some(digest) => UsageQuery {
            digests: vec![digest.clone()],
            references: vec![reference.clone()],
            ..UsageQuery::default()
        },
        None => UsageQuery {
            references: vec![reference],
            ..UsageQuery::default()
        },
    })
}

/// One line per use: source and scope, the place, the image and what it runs.
fn uses_text(entries: &[UsageEntry]) -> String {
    let mut text = String::new();
    for entry in entries {
        let usage = &entry.usage;
        let place = match usage.namespace.as_str() {
            "" => format!("{}/{}", usage.kind, usage.name),
            namespace => format!("{namespace}/{}/{}", usage.kind, usage.name),
        };
        let digest = usage
            .digest
            .as_ref()
            .map_or(String::new(), |digest| format!("  {digest}"));
        let gone = entry
            .gone_at
            .map_or(String::new(), |at| format!("  (gone {})", at.date_naive()));
        let scope = match entry.scope.as_str() {
            "" => String::new(),
            scope => format!(" {scope}"),
        };
        text.push_str(&escape(&format!(
            "{}{scope}  {place}  {}  {}{digest}  last seen {}{gone}",
            entry.source,
            usage.container,
            usage.image,
            entry.last_seen.date_naive()
        )));
        text.push('\n');
    }
    text
}

fn campaign(
    wanted: StateArg,
    args: &Args,
    url: &str,
    env: &Environment,
) -> anyhow::Result<ExitCode> {
    let at = match &args.at {
        Some(text) => parse_moment(text).map_err(|error| usage_error(format!("--at: {error}")))?,
        None => Utc::now(),
    };
    let wanted = match wanted {
        StateArg::Deprecated => State::Deprecated,
        StateArg::Eol => State::Eol,
    };
    let source = CatalogSource {
        path: catalog_path(args.catalog.path.clone(), env),
        format: args.catalog.format.into(),
    };
    let catalog = read_valid(&source, Utc::now())?;
    let entries = runtime()?.block_on(async {
        let store = open_store_read_only(url).await?;
        let entries = store
            .usage(&UsageQuery {
                include_gone: args.include_gone,
                ..UsageQuery::default()
            })
            .await?;
        store.close().await;
        anyhow::Ok(entries)
    })?;
    let report = berth_store::usage::campaign(&catalog, &entries, wanted, at);
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&campaign_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Per namespace, each use on its way out with the entry's state and replacement.
fn campaign_text(report: &berth_store::usage::Campaign) -> String {
    let mut text = String::new();
    for group in &report.namespaces {
        let namespace = match group.namespace.as_str() {
            "" => "(no namespace)",
            namespace => namespace,
        };
        text.push_str(&escape(namespace));
        text.push('\n');
        for found in &group.uses {
            let usage = &found.usage;
            let since = found
                .since
                .map_or(String::new(), |since| format!(" since {since}"));
            let replacement = found
                .replacement
                .as_ref()
                .map_or(String::new(), |replacement| format!("  -> {replacement}"));
            text.push_str(&escape(&format!(
                "  {} {}/{} {}  {}  {} {}{since}{replacement}",
                usage.source,
                usage.kind,
                usage.name,
                usage.container,
                usage.image,
                found.entry,
                found.state
            )));
            text.push('\n');
        }
    }
    if report.namespaces.is_empty() {
        text.push_str(&format!(
            "no use of an image that is {} at {}\n",
            report.state,
            report.at.date_naive()
        ));
    }
    text
}
