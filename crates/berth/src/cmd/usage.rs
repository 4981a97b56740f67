//! `berth usage scan DIR`: every container image reference in a source tree (Dockerfiles,
//! Kubernetes manifests, compose files, GitHub Actions, GitLab CI, Azure Pipelines), walked by
//! berth-files' `source_tree` and read by berth-core's `usage`. It prints; recording what it
//! finds in the store's usage inventory is later work (docs/usage.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::quote::escape;
use berth_core::usage::{self, Resolution, SourceKind};
use berth_files::source_tree::{self, Limits, SkipReason, TreeError};
use serde::Serialize;

use crate::cmd::{print_json, print_text};
use crate::environment::Environment;
use crate::exit::usage as usage_error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: UsageCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Find every container image reference in a source tree: Dockerfile FROM (ARG defaults
    /// resolved), Kubernetes manifests, docker-compose, GitHub Actions, GitLab CI, Azure
    /// Pipelines.
    Scan(ScanArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// The directory to scan (a repository checkout); paths are printed relative to it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The repository's name, carried into the JSON output (`repo`).
    #[arg(long, value_name = "NAME")]
    pub repo: Option<String>,
    /// Print JSON instead of one line per finding.
    #[arg(long)]
    pub json: bool,
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

pub fn exec(args: UsageCommand, _env: &Environment) -> anyhow::Result<ExitCode> {
    match args {
        UsageCommand::Scan(args) => scan(args),
    }
}

fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report {
        repo: args.repo,
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
    if args.json {
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
