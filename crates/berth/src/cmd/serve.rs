//! `berth serve`: resolves the config file, flags and environment into `ServeSettings`, binds
//! the listener and runs the server until SIGTERM or SIGINT (then finishes requests in flight).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use berth_core::catalog::Format;
use berth_files::catalog_source::CatalogSource;
use berth_server::config::{self, ServeFile, ServeSettings};
use berth_server::connections::ConnectionLimits;
use berth_server::leases::LeaseSettings;
use berth_server::namespaces::NamespaceSettings;
use berth_server::tls::TlsSettings;

use berth_store::RepositoryName;
use berth_sync::{PathPattern, RegistryScan, SyncOptions, Targets};

use crate::cmd::catalog::{SourceFormat, catalog_path};
use crate::environment::Environment;
use crate::exit::usage;
use crate::registry_args::RegistryArgs;
use crate::resolve_args::ResolveArgs;

#[derive(Debug, Clone, clap::Args)]
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
    /// The store (knowledge endpoints, the scheduled sync; the webhook's registry knowledge and
    /// usage records), overriding the config file (default: $BERTH_STORE; none: those endpoints
    /// answer 503).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Promotion rules the scheduler runs (docs/channels.md), overriding the config file's
    /// `promotions` (default: $BERTH_RULES; none: no scheduled promotions).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Serve the admission webhook (/admission/validate, /admission/mutate) with this policy
    /// (default: $BERTH_POLICY; without either, no webhook). See docs/policy.md.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// How often the webhook re-reads the store's knowledge (default: 1m): 500ms, 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub knowledge_refresh: Option<String>,
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// Read namespace labels from the Kubernetes API, so policy exceptions selecting namespaces
    /// by label apply at admission (needs `get` on namespaces; see docs/admission.md). Off:
    /// such exceptions never apply in the webhook.
    #[arg(long)]
    pub namespace_labels: bool,
    /// The Kubernetes API server (default: https://$KUBERNETES_SERVICE_HOST:
    /// $KUBERNETES_SERVICE_PORT, as set in every pod).
    #[arg(long, value_name = "URL", requires = "namespace_labels")]
    pub kube_api: Option<String>,
    /// The bearer token file, re-read on every request (default: the pod's service-account
    /// token, /var/run/secrets/kubernetes.io/serviceaccount/token).
    #[arg(long, value_name = "FILE", requires = "namespace_labels")]
    pub kube_token: Option<PathBuf>,
    /// The CA of the API server's certificate (default: the pod's service-account ca.crt).
    #[arg(long, value_name = "FILE", requires = "namespace_labels")]
    pub kube_ca: Option<PathBuf>,
    /// Serve HTTPS with this certificate (PEM, chain after it); re-read when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The dashboard under /ui/ (default: on; `--ui=false` turns it off, as `ui.enabled:
    /// false` does).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ui: Option<bool>,
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
        berth_server::run(listener, settings, shutdown_signal())
            .await
            .context("serving")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How often the store's knowledge is re-read unless --knowledge-refresh says.
const DEFAULT_KNOWLEDGE_REFRESH: Duration = Duration::from_secs(60);

/// The config file (if any), then flags over it, then the environment and defaults.
pub(crate) fn settings(args: Args, env: &Environment) -> anyhow::Result<ServeSettings> {
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
    let policy = args
        .policy
        .clone()
        .or_else(|| file.policy.as_deref().map(&relative))
        .or_else(|| env.get("BERTH_POLICY").map(PathBuf::from));
    let knowledge_refresh = match &args.knowledge_refresh {
        Some(text) => config::poll_interval(text)
            .map_err(|error| usage(format!("--knowledge-refresh: {error}")))?,
        None => file.knowledge_refresh.unwrap_or(DEFAULT_KNOWLEDGE_REFRESH),
    };
    // Flags win over the config file's `resolve` section, field by field.
    let resolve_args = match &file.resolve {
        Some(section) if section.enabled != Some(false) || args.resolve.resolve => {
            let millis = |duration: Option<Duration>| {
                duration.map(|duration| format!("{}ms", duration.as_millis()))
            };
            ResolveArgs {
                resolve: true,
                resolve_deadline: args
                    .resolve
                    .resolve_deadline
                    .clone()
                    .or_else(|| millis(section.deadline)),
                resolve_ttl: args
                    .resolve
                    .resolve_ttl
                    .clone()
                    .or_else(|| millis(section.ttl)),
                resolve_failure_ttl: args
                    .resolve
                    .resolve_failure_ttl
                    .clone()
                    .or_else(|| millis(section.failure_ttl)),
                resolve_cache: args.resolve.resolve_cache.or(section.cache),
            }
        }
        _ => args.resolve.clone(),
    };
    let resolve =
        resolve_args.settings(|| file_registry_args(&file, &relative).client_config(env))?;
    let namespace_file = file
        .namespace_labels
        .clone()
        .filter(|section| section.enabled != Some(false));
    let namespace_labels = if args.namespace_labels || namespace_file.is_some() {
        let section = namespace_file.unwrap_or_default();
        Some(namespace_settings(
            args.kube_api.clone().or(section.api),
            args.kube_token
                .clone()
                .or_else(|| section.token_file.as_deref().map(&relative)),
            args.kube_ca
                .clone()
                .or_else(|| section.ca_file.as_deref().map(&relative)),
            env,
        )?)
    } else {
        None
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
    let has_store = store.is_some();
    let rebuild = match (&file.rebuild, has_store) {
        (Some(section), true) => Some(crate::cmd::freshness::dispatcher(
            section,
            base.as_deref(),
            env,
            "berth",
        )?),
        (Some(_), false) => {
            return Err(usage(
                "the config has a `rebuild` section but no `store` to record dispatches in",
            ));
        }
        (None, _) => None,
    };
    let retention = match (&file.retention, has_store) {
        (Some(section), true) => Some(berth_server::retention::RetentionSettings {
            settings: section.clone(),
            client: file_registry_args(&file, &relative).client_config(env)?,
        }),
        (Some(_), false) => {
            return Err(usage(
                "the config has a `retention` section but no `store` to plan from",
            ));
        }
        (None, _) => None,
    };
    let notifications = match (&file.notifications, has_store) {
        (Some(section), true) => Some(
            berth_server::notifications::Notifier::new(section.clone(), &|name| env.get(name))
                .map_err(usage)?,
        ),
        (Some(_), false) => {
            return Err(usage(
                "the config has a `notifications` section but no `store` to keep the outbox in",
            ));
        }
        (None, _) => None,
    };
    let ui_file = file.ui.clone().unwrap_or_default();
    let ui = args
        .ui
        .or(ui_file.enabled)
        .unwrap_or(true)
        .then(|| berth_server::ui::UiSettings {
            anonymous: ui_file.anonymous.unwrap_or_default(),
        });
    Ok(ServeSettings {
        rebuild,
        retention,
        notifications,
        ui,
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
        resolve,
        namespace_labels,
        tls: match (args.tls_cert, args.tls_key, &file.tls) {
            (Some(cert), Some(key), _) => Some(TlsSettings { cert, key }),
            (_, _, Some(tls)) => Some(TlsSettings {
                cert: relative(&tls.cert),
                key: relative(&tls.key),
            }),
            _ => None,
        },
        policy,
        knowledge_refresh,
        freshness: has_store.then(|| {
            let section = file.freshness.clone().unwrap_or_default();
            let defaults = berth_core::freshness::Settings::default();
            berth_server::freshness::FreshnessSettings {
                interval: section
                    .interval
                    .unwrap_or(berth_server::freshness::DEFAULT_INTERVAL),
                settings: berth_core::freshness::Settings {
                    max_age: section.max_age,
                    eol_warning: section.eol_warning.unwrap_or(defaults.eol_warning),
                    os_lifecycle: section.os_lifecycle,
                },
            }
        }),
        leases: LeaseSettings {
            holder: LeaseSettings::holder_for(
                &env.get("HOSTNAME").unwrap_or_else(|| "berth".to_string()),
            ),
            ttl: file.lease_ttl.unwrap_or(LeaseSettings::DEFAULT_TTL),
        },
        connections: {
            let defaults = ConnectionLimits::default();
            let section = file.connections.clone().unwrap_or_default();
            ConnectionLimits {
                handshake_timeout: section
                    .handshake_timeout
                    .unwrap_or(defaults.handshake_timeout),
                header_read_timeout: section
                    .header_read_timeout
                    .unwrap_or(defaults.header_read_timeout),
                max_connections: section.max.unwrap_or(defaults.max_connections),
            }
        },
    })
}

/// Where the Kubernetes API is, for namespace labels: the flags, else the pod's defaults.
fn namespace_settings(
    api: Option<String>,
    token: Option<PathBuf>,
    ca: Option<PathBuf>,
    env: &Environment,
) -> anyhow::Result<NamespaceSettings> {
    let api = match api {
        Some(api) => api,
        None => match (
            env.get("KUBERNETES_SERVICE_HOST"),
            env.get("KUBERNETES_SERVICE_PORT"),
        ) {
            (Some(host), Some(port)) if host.contains(':') => format!("https://[{host}]:{port}"),
            (Some(host), Some(port)) => format!("https://{host}:{port}"),
            _ => {
                return Err(usage(
                    "--namespace-labels: no --kube-api and no KUBERNETES_SERVICE_HOST/PORT \
                     (not in a pod)",
                ));
            }
        },
    };
    Ok(NamespaceSettings {
        api,
        token_file: token.unwrap_or_else(|| NamespaceSettings::IN_CLUSTER_TOKEN.into()),
        ca_file: Some(ca.unwrap_or_else(|| NamespaceSettings::IN_CLUSTER_CA.into())),
        ttl: NamespaceSettings::DEFAULT_TTL,
        deadline: NamespaceSettings::DEFAULT_DEADLINE,
        capacity: NamespaceSettings::DEFAULT_CAPACITY,
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
            referrers_recheck: section
                .referrers_recheck
                .unwrap_or(berth_sync::REFERRERS_RECHECK),
            ..SyncOptions::default()
        },
    })
}

/// How to reach registries, from the config file, as the CLI's flags would say it (`authfile`,
/// `registries.*.insecure`, `registries.*.ca_file`).
pub(crate) fn file_registry_args(
    file: &ServeFile,
    relative: &dyn Fn(&Path) -> PathBuf,
) -> RegistryArgs {
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
        registry_mirrors: file
            .registries
            .iter()
            .flat_map(|registry| {
                let host = &registry.host;
                registry
                    .mirrors
                    .iter()
                    .map(move |mirror| format!("{host}={mirror}"))
            })
            .collect(),
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
    }
}

pub(crate) fn read_config(path: &Path) -> anyhow::Result<ServeFile> {
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

#[cfg(test)]
mod namespace_tests {
    use super::*;

    #[test]
    fn the_kube_api_defaults_to_the_pods_service_environment() {
        let in_pod = Environment::from_pairs(&[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ]);
        let settings =
            namespace_settings(None, None, None, &in_pod).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.api, "https://10.96.0.1:443");
        assert_eq!(
            settings.token_file,
            PathBuf::from(NamespaceSettings::IN_CLUSTER_TOKEN)
        );
        assert_eq!(
            settings.ca_file,
            Some(PathBuf::from(NamespaceSettings::IN_CLUSTER_CA))
        );
        let ipv6 = Environment::from_pairs(&[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ]);
        let settings =
            namespace_settings(None, None, None, &ipv6).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(settings.api, "https://[fd00::1]:443");
        let flags = namespace_settings(
            Some("https://api.example:6443".to_string()),
            Some(PathBuf::from("t")),
            Some(PathBuf::from("c")),
            &in_pod,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (flags.api.as_str(), flags.token_file, flags.ca_file),
            (
                "https://api.example:6443",
                PathBuf::from("t"),
                Some(PathBuf::from("c"))
            )
        );
        assert!(namespace_settings(None, None, None, &Environment::default()).is_err());
    }
}
