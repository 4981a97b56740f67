//! `berth notifications test|list`: a sample message sent to one configured target (signed as
//! `berth serve` signs them), and the outbox as the store holds it — each event with each
//! target's delivery state, attempts and last error.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_hooks::Outcome;
use berth_server::notifications::Notifier;
use chrono::Utc;
use serde::Serialize;

use crate::cmd::{open_store_read_only, print_json, print_text, runtime, store_url};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Send a sample message to TARGET now. Exit 0 when it was delivered, 1 when the target
    /// refused it or could not be reached.
    Test(TestArgs),
    /// The newest messages and what became of them, per target.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// A target of the config's `notifications` section.
    pub target: String,
    /// The config file (as for `berth serve --config`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// How many deliveries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Test(args) => test(args, env),
        Command::List(args) => list(args, env),
    }
}

/// What `berth notifications test --json` prints.
#[derive(Debug, Serialize)]
struct TestView {
    target: String,
    /// `delivered`, `retry` (worth trying again: 5xx, 429, no connection) or `rejected`.
    result: &'static str,
    status: Option<u16>,
    detail: Option<String>,
}

fn test(args: TestArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let file = crate::cmd::serve::read_config(&args.config)?;
    let Some(section) = file.notifications else {
        return Err(usage(format!(
            "{} has no `notifications` section",
            args.config.display()
        )));
    };
    if section.target(&args.target).is_none() {
        let names: Vec<&str> = section
            .targets
            .iter()
            .map(|target| target.name.as_str())
            .collect();
        return Err(usage(format!(
            "no notification target {:?} (targets: {})",
            args.target,
            names.join(", ")
        )));
    }
    let notifier = Notifier::new(section, &|name| env.get(name)).map_err(usage)?;
    let now = Utc::now();
    let event = berth_core::notify::sample(&args.target, now);
    let id = format!("msg_berth_test_{}", now.timestamp_millis());
    let outcome = runtime()?
        .block_on(notifier.send(&args.target, &event, &id, now))
        .ok_or_else(|| usage(format!("no notification target {:?}", args.target)))?;
    let view = match outcome {
        Outcome::Delivered { status } => TestView {
            target: args.target,
            result: "delivered",
            status: Some(status),
            detail: None,
        },
        Outcome::Retry { reason, .. } => TestView {
            target: args.target,
            result: "retry",
            status: None,
            detail: Some(reason),
        },
        Outcome::Rejected { status, excerpt } => TestView {
            target: args.target,
            result: "rejected",
            status: Some(status),
            detail: Some(excerpt),
        },
    };
    let delivered = view.result == "delivered";
    if args.json {
        print_json(&view)?;
    } else {
        let status = view
            .status
            .map(|status| format!(" ({status})"))
            .unwrap_or_default();
        let detail = view
            .detail
            .as_ref()
            .map(|detail| format!(": {detail}"))
            .unwrap_or_default();
        print_text(&format!(
            "{}: {}{status}{detail}\n",
            view.target, view.result
        ));
    }
    Ok(if delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NEGATIVE)
    })
}

fn list(args: ListArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let url = store_url(args.store.clone(), env);
    let deliveries = runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let deliveries = store.notifications(args.limit).await;
        store.close().await;
        anyhow::Ok(deliveries?)
    })?;
    let views = deliveries;
    if args.json {
        print_json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for view in &views {
        text.push_str(&format!(
            "#{} {} → {}: {}, {} attempt(s){}\n    {}\n",
            view.event.id,
            view.event.kind,
            view.target,
            view.state,
            view.attempts,
            view.last_error
                .as_ref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default(),
            view.event.summary
        ));
    }
    if views.is_empty() {
        text.push_str("no notifications recorded\n");
    }
    print_text(&text);
    Ok(ExitCode::SUCCESS)
}
