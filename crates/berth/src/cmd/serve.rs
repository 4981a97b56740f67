//! `berth serve`: resolves the config file, flags and environment into `ServeSettings`, binds
//! the listener and runs the server until SIGTERM or SIGINT (then finishes requests in flight).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::catalog::Format;
use berth_server::catalog_source::CatalogSource;
use berth_server::config::{self, ServeFile, ServeSettings};

use berth_store::RepositoryName;
use berth_sync::{PathPattern, RegistryScan, SyncOptions, Targets};

use crate::cmd::catalog::{SourceFormat, catalog_path};
use crate::environment::Environment;
use crate::exit::usage;
use crate::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (YAML): listen, catalog, catalog_format, catalog_poll_interval. See
    /// docs/serve.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding the config file (default: 127.0.0.1:8080; port 0
    /// picks a free port, logged at start).
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// Catalog file or directory, overriding the config file (default: $BERTH_CATALOG, then
    /// ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format, overriding the config file (default: berth).
    #[arg(long, value_enum)]
    pub catalog_format: Option<SourceFormat>,
    /// The store (knowledge endpoints, the scheduled sync), overriding the config file
    /// (default: $BERTH_STORE; none: those endpoints answer 503).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Promotion rules the scheduler runs (docs/channels.md), overriding the config file's
    /// `promotions` (default: $BERTH_RULES; none: no scheduled promotions).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let settings = settings(args, env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        berth_server::run(
            listener,
            settings,
            berth_server::system_clock(),
            shutdown_signal(),
        )
        .await
        .context("serving")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The config file (if any), then flags over it, then the environment and defaults.
fn settings(args: Args, env: &Environment) -> anyhow::Result<ServeSettings> {
    let (file, base) = match &args.config {
        Some(path) => (read_config(path)?, path.parent().map(Path::to_path_buf)),
        None => (ServeFile::default(), None),
    };
    let listen = match &args.listen {
        Some(text) => config::listen(text).map_err(|error| usage(format!("--listen: {error}")))?,
        None => match file.listen {
            Some(listen) => listen,
            None => config::listen(config::DEFAULT_LISTEN).map_err(usage)?,
        },
    };
    let catalog = match (args.catalog, file.catalog.clone()) {
        (Some(flag), _) => flag,
        // A path in the config file is relative to the file's directory.
        (None, Some(path)) => match &base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        },
        (None, None) => catalog_path(None, env),
    };
    let format = match args.catalog_format {
        Some(format) => format.into(),
        None => file.catalog_format.unwrap_or(Format::Berth),
    };
    let relative = |path: &Path| match &base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    };
    let store = args
        .store
        .or(file.store.clone())
        .or_else(|| env.get("BERTH_STORE"));
    let sync = match &file.sync {
        None => None,
        Some(section) => {
            if store.is_none() {
                return Err(usage(
                    "the config has a `sync` section but no `store` to sync into",
                ));
            }
            Some(sync_settings(&file, section, &relative, env)?)
        }
    };
    let rules = args
        .rules
        .or_else(|| file.promotions.as_deref().map(&relative))
        .or_else(|| env.get("BERTH_RULES").map(PathBuf::from));
    let promotions = match rules {
        None => None,
        Some(_) if store.is_none() => {
            return Err(usage(
                "promotion rules are configured but no `store` to record the history in",
            ));
        }
        Some(path) => Some(config::PromotionSettings {
            rules: read_rules(&path)?,
            interval: config::PROMOTION_TICK,
            client: file_registry_args(&file, &relative).client_config(env)?,
        }),
    };
    let channels_api = match (&store, file.api_tokens.is_empty()) {
        (_, true) => None,
        (None, false) => {
            return Err(usage(
                "api_tokens are configured but no `store` to keep the history in",
            ));
        }
        (Some(_), false) => Some(config::ChannelsApiSettings {
            tokens: file.api_tokens.clone(),
            client: file_registry_args(&file, &relative).client_config(env)?,
        }),
    };
    Ok(ServeSettings {
        listen,
        catalog: CatalogSource {
            path: catalog,
            format,
        },
        poll_interval: file
            .catalog_poll_interval
            .unwrap_or(config::DEFAULT_POLL_INTERVAL),
        store,
        sync,
        promotions,
        channels_api,
    })
}

/// The promotion rules file, every problem reported.
fn read_rules(path: &Path) -> anyhow::Result<berth_core::channels::RulesFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| usage(format!("promotion rules {}: {error}", path.display())))?;
    berth_core::channels::RulesFile::parse(&path.display().to_string(), &text).map_err(
        |diagnostics| {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            usage(format!(
                "{}: {} error(s) in the promotion rules",
                path.display(),
                diagnostics.len()
            ))
        },
    )
}

/// Requests in flight per registry, as the CLI's `--max-concurrency` default.
const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// The `sync` section made ready: targets checked, the registry client configured as the CLI's
/// flags would (`authfile`, `registries.*.insecure`, `registries.*.ca_file`).
fn sync_settings(
    file: &ServeFile,
    section: &config::SyncFile,
    relative: &dyn Fn(&Path) -> PathBuf,
    env: &Environment,
) -> anyhow::Result<config::SyncSettings> {
    let mut targets = Targets::default();
    for text in &section.repositories {
        let name = RepositoryName::parse(text)
            .map_err(|error| usage(format!("sync.repositories: {text:?}: {error}")))?;
        targets.repositories.insert(name);
    }
    for scan in &section.registries {
        let patterns = |texts: &[String]| -> anyhow::Result<Vec<PathPattern>> {
            texts
                .iter()
                .map(|text| {
                    PathPattern::parse(text).map_err(|error| {
                        usage(format!("sync.registries {}: {error}", scan.registry))
                    })
                })
                .collect()
        };
        targets.registries.push(RegistryScan {
            registry: scan.registry.clone(),
            include: patterns(&scan.include)?,
            exclude: patterns(&scan.exclude)?,
        });
    }
    Ok(config::SyncSettings {
        interval: section.interval.unwrap_or(config::DEFAULT_SYNC_INTERVAL),
        targets,
        client: file_registry_args(file, relative).client_config(env)?,
        options: SyncOptions {
            scan_layers: section.layers.unwrap_or(true),
            ..SyncOptions::default()
        },
    })
}

/// How to reach registries, from the config file, as the CLI's flags would say it (`authfile`,
/// `registries.*.insecure`, `registries.*.ca_file`).
fn file_registry_args(file: &ServeFile, relative: &dyn Fn(&Path) -> PathBuf) -> RegistryArgs {
    RegistryArgs {
        authfile: file.authfile.as_deref().map(relative),
        insecure_registries: file
            .registries
            .iter()
            .filter(|registry| registry.insecure)
            .map(|registry| registry.host.clone())
            .collect(),
        registry_cas: file
            .registries
            .iter()
            .filter_map(|registry| {
                let ca = registry.ca_file.as_deref()?;
                Some(format!("{}={}", registry.host, relative(ca).display()))
            })
            .collect(),
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
    }
}

fn read_config(path: &Path) -> anyhow::Result<ServeFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage(format!("no config file at {}", path.display())));
        }
        Err(error) => {
            return Err(
                anyhow::Error::new(error).context(format!("cannot read {}", path.display()))
            );
        }
    };
    ServeFile::parse(&path.display().to_string(), &text).map_err(|diagnostics| {
        for diagnostic in &diagnostics {
            eprintln!("{diagnostic}");
        }
        usage(format!(
            "{}: {} error{} in the config file",
            path.display(),
            diagnostics.len(),
            if diagnostics.len() == 1 { "" } else { "s" }
        ))
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
