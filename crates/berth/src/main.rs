//! The `berth` binary: parses the command line, sets up logging, runs one command, maps the
//! outcome to an exit code.
//!
//! Exit codes: 0 success; 1 a negative answer (a check failed, an image was denied); 2 a usage
//! error (bad arguments, an invalid file or reference the user gave); 3 a fault (a registry,
//! the network, the disk).

mod cmd;
mod environment;
mod exit;
mod registry_args;
mod resolve_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Keeps a platform's container images known, trusted, fresh and tidy."
)]
struct Cli {
    /// Log as JSON lines instead of human text (logs go to stderr).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what berth sees of an image in its registry.
    Inspect(cmd::inspect::Args),
    /// Why a digest changed: base, OS, layers, config and files between two images.
    Diff(cmd::diff::Args),
    /// Where a digest came from, as the image states it, checked against layer lineage.
    Provenance(cmd::provenance::Args),
    /// The platform's image catalog: check, list, show, resolve, which, export, import.
    Catalog(cmd::catalog::Args),
    /// Read the registries the catalog names into the store: tags, digests, manifests,
    /// configs, OS identity from layers, lineage.
    Sync(cmd::sync::Args),
    /// What the store knows about images: by repository, OS, or the base they are built on.
    Images(cmd::images::Args),
    /// Images in scope that should be rebuilt, and why: base moved, too old, OS end of life,
    /// base retired.
    Stale(cmd::freshness::StaleArgs),
    /// Rebuilds of stale images: the plan, in waves by lineage.
    Rebuild(cmd::freshness::RebuildArgs),
    /// Retention: what the policies would delete and keep, and a guarded deletion run.
    Retention(cmd::retention::Args),
    /// Notifications: send a sample to a target, list the outbox and what became of it.
    Notifications(cmd::notifications::Args),
    /// Decide images and Kubernetes manifests with the admission policy, as the webhook would.
    Check(cmd::check::Args),
    /// Run the HTTP API (catalog, probes, status, metrics) until SIGTERM or SIGINT.
    Serve(cmd::serve::Args),
    /// Move a channel (tag) of a catalog image to what another channel holds.
    Promote(cmd::channels::PromoteArgs),
    /// Move a channel back one step, or to a digest it held.
    Rollback(cmd::channels::RollbackArgs),
    /// Every move of an image's channels: when, who, why, how.
    History(cmd::channels::HistoryArgs),
    /// The state of every channel, what is due next and what blocks it.
    Channels(cmd::channels::ChannelsArgs),
    /// The audit log: every change berth made.
    Audit(cmd::channels::AuditArgs),
    /// Make a CA and the webhook's serving certificate (for clusters without cert-manager).
    Certs(cmd::certs::Args),
    /// The effective `berth serve` settings, with where each came from (secrets redacted).
    Config(cmd::config::Args),
    /// Who uses which image: the inventory (admission, cluster imports, CI, source trees).
    Usage(cmd::usage::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = environment::Environment::capture();
    // The server reports what it does at info level; one-shot commands only warn.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_json, &env, default_level);
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::exec(args, &env),
        Command::Diff(args) => cmd::diff::exec(args, &env),
        Command::Provenance(args) => cmd::provenance::exec(args, &env),
        Command::Catalog(args) => cmd::catalog::exec(args, &env),
        Command::Serve(args) => cmd::serve::exec(args, &env),
        Command::Sync(args) => cmd::sync::exec(args, &env),
        Command::Images(args) => cmd::images::exec(args, &env),
        Command::Check(args) => cmd::check::exec(args, &env),
        Command::Stale(args) => cmd::freshness::stale(args, &env),
        Command::Rebuild(args) => cmd::freshness::rebuild(args, &env),
        Command::Retention(args) => cmd::retention::exec(args, &env),
        Command::Notifications(args) => cmd::notifications::exec(args, &env),
        Command::Promote(args) => cmd::channels::promote(args, &env),
        Command::Rollback(args) => cmd::channels::rollback(args, &env),
        Command::History(args) => cmd::channels::history(args, &env),
        Command::Channels(args) => cmd::channels::channels(args, &env),
        Command::Audit(args) => cmd::channels::audit(args, &env),
        Command::Certs(args) => cmd::certs::exec(args, &env),
        Command::Config(args) => cmd::config::exec(args, &env),
        Command::Usage(args) => cmd::usage::exec(args, &env),
    };
    exit::report(result)
}

/// Logs go to stderr; `BERTH_LOG` takes a filter such as `info` or `berth_oci=debug`
/// (default: `default_level`).
fn init_logging(json: bool, env: &environment::Environment, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let directives = env
        .get("BERTH_LOG")
        .unwrap_or_else(|| default_level.to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal as _;
    // Colours only for a person at a terminal: not in files, pipes or a pod's log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Issue 15, item 20: every option and argument of every command says what it is in
    /// `--help` (`promote --from`, `images --json` had nothing).
    #[test]
    fn every_option_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "berth", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:#?}");
    }
}
