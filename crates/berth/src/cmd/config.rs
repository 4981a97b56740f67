//! `berth config show`: the settings `berth serve` would run with — the config file, flags and
//! environment resolved exactly as `berth serve` resolves them — each with where it came from
//! (default, file:line:column, flag, environment variable), secrets redacted: passwords in
//! store URLs masked, API tokens shown by name and scope only.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth_server::config::{ServeFile, ServeSettings, field_positions};
use berth_store::StoreUrl;
use serde::Serialize;

use crate::cmd::{print_json, print_text};
use crate::environment::Environment;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The effective `berth serve` settings and where each came from. Takes every `berth
    /// serve` option, so a flag's effect can be seen before starting the server.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print JSON: `{"config_file", "settings": [{"key", "value", "source", "origin"}]}`;
    /// `source` is `default`, `file`, `flag` or `env`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub serve: crate::cmd::serve::Args,
}

/// One effective setting.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// The config file's field path (`sync.interval`).
    pub key: String,
    pub value: serde_json::Value,
    /// `default`, `file`, `flag` or `env`.
    pub source: &'static str,
    /// `berth.yaml:3:11`, `--listen`, `BERTH_STORE`; empty for a default.
    pub origin: String,
}

#[derive(Debug, Serialize)]
struct Report {
    config_file: Option<String>,
    settings: Vec<Shown>,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let Command::Show(show) = args.command;
    let serve = show.serve.clone();
    let settings = crate::cmd::serve::settings(show.serve, env)?;
    let (file, positions) = match &serve.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            (
                crate::cmd::serve::read_config(path)?,
                field_positions(&text),
            )
        }
        None => (ServeFile::default(), Vec::new()),
    };
    let shown = explain(
        &serve,
        &file,
        &positions,
        serve.config.as_deref(),
        &settings,
        env,
    );
    let report = Report {
        config_file: serve.config.as_ref().map(|path| path.display().to_string()),
        settings: shown,
    };
    if show.json {
        print_json(&report)?;
    } else {
        let width = report
            .settings
            .iter()
            .map(|s| s.key.len())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for setting in &report.settings {
            let value = match &setting.value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => "-".to_string(),
                other => other.to_string(),
            };
            let origin = match setting.source {
                "default" => "default".to_string(),
                source => format!("{source} {}", setting.origin),
            };
            text.push_str(&format!("{:width$}  {value}  ({origin})\n", setting.key));
        }
        print_text(&text);
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration as the config file would say it (`90s` → `1m30s`).
pub fn duration_text(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0".to_string();
    }
    let mut text = String::new();
    for (unit, size) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            text.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    text
}

/// Pairs each resolved setting with its source: the flag if given, else the config file's
/// field, else the environment variable, else the default.
fn explain(
    flags: &crate::cmd::serve::Args,
    file: &ServeFile,
    positions: &[(String, usize, usize)],
    config: Option<&Path>,
    settings: &ServeSettings,
    env: &Environment,
) -> Vec<Shown> {
    let file_name = config
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let at = |key: &str| {
        positions
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, line, column)| format!("{file_name}:{line}:{column}"))
    };
    let mut shown = Vec::new();
    let mut push = |key: &str,
                    value: serde_json::Value,
                    flag: Option<&'static str>,
                    env_name: Option<&'static str>| {
        let (source, origin) = if let Some(flag) = flag {
            ("flag", flag.to_string())
        } else if let Some(place) = at(key) {
            ("file", place)
        } else if let Some(name) = env_name.filter(|name| env.get(name).is_some()) {
            ("env", name.to_string())
        } else {
            ("default", String::new())
        };
        shown.push(Shown {
            key: key.to_string(),
            value,
            source,
            origin,
        });
    };
    let text = |value: String| serde_json::Value::String(value);
    let path = |value: &Path| serde_json::Value::String(value.display().to_string());
    let given = |present: bool, flag: &'static str| present.then_some(flag);
    // A field absent from the file is a default even inside a section the file has.
    push(
        "listen",
        text(settings.listen.to_string()),
        given(flags.listen.is_some(), "--listen"),
        None,
    );
    push(
        "catalog",
        path(&settings.catalog.path),
        given(flags.catalog.is_some(), "--catalog"),
        Some("BERTH_CATALOG"),
    );
    push(
        "catalog_format",
        text(berth_server::reload::format_name(settings.catalog.format).to_string()),
        given(flags.catalog_format.is_some(), "--catalog-format"),
        None,
    );
    push(
        "catalog_poll_interval",
        text(duration_text(settings.poll_interval)),
        None,
        None,
    );
    push(
        "store",
        match &settings.store {
            Some(url) => text(StoreUrl::new(url.clone()).redacted()),
            None => serde_json::Value::Null,
        },
        given(flags.store.is_some(), "--store"),
        Some("BERTH_STORE"),
    );
    push(
        "authfile",
        match &file.authfile {
            Some(file) => path(file),
            None => text("docker's search: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG, ~/.docker".into()),
        },
        None,
        None,
    );
    for registry in &file.registries {
        let mut parts = Vec::new();
        if registry.insecure {
            parts.push("insecure (plain HTTP)".to_string());
        }
        if let Some(ca) = &registry.ca_file {
            parts.push(format!("ca_file {}", ca.display()));
        }
        if !registry.mirrors.is_empty() {
            parts.push(format!("mirrors {}", registry.mirrors.join(", ")));
        }
        push(
            &format!("registries.{}", registry.host),
            text(parts.join("; ")),
            None,
            None,
        );
    }
    match &settings.sync {
        Some(sync) => {
            push(
                "sync.interval",
                text(duration_text(sync.interval)),
                None,
                None,
            );
            push(
                "sync.repositories",
                serde_json::json!(
                    sync.targets
                        .repositories
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
                None,
                None,
            );
            push(
                "sync.registries",
                serde_json::json!(
                    sync.targets
                        .registries
                        .iter()
                        .map(|scan| scan.registry.clone())
                        .collect::<Vec<_>>()
                ),
                None,
                None,
            );
            push(
                "sync.layers",
                serde_json::Value::Bool(sync.options.scan_layers),
                None,
                None,
            );
            push(
                "sync.referrers_recheck",
                text(duration_text(sync.options.referrers_recheck)),
                None,
                None,
            );
        }
        None => push("sync", text("off".into()), None, None),
    }
    push(
        "promotions",
        match &settings.promotions {
            Some(promotions) => text(format!("{} rule(s)", promotions.rules.promotions.len())),
            None => text("off".into()),
        },
        given(flags.rules.is_some(), "--rules"),
        Some("BERTH_RULES"),
    );
    push(
        "api_tokens",
        serde_json::json!(
            file.api_tokens
                .iter()
                .map(|token| format!("{} ({:?})", token.name, token.scope).to_lowercase())
                .collect::<Vec<_>>()
        ),
        None,
        None,
    );
    push(
        "policy",
        match &settings.policy {
            Some(policy) => path(policy),
            None => text("off (no webhook)".into()),
        },
        given(flags.policy.is_some(), "--policy"),
        Some("BERTH_POLICY"),
    );
    push(
        "knowledge_refresh",
        text(duration_text(settings.knowledge_refresh)),
        given(flags.knowledge_refresh.is_some(), "--knowledge-refresh"),
        None,
    );
    push(
        "freshness",
        match &settings.freshness {
            Some(freshness) => text(format!(
                "every {}, max_age {}, eol_warning {}, {} os_lifecycle row(s)",
                duration_text(freshness.interval),
                freshness
                    .settings
                    .max_age
                    .map_or("none".to_string(), duration_text),
                duration_text(freshness.settings.eol_warning),
                freshness.settings.os_lifecycle.len()
            )),
            None => text("off (no store)".into()),
        },
        None,
        None,
    );
    push(
        "rebuild",
        match &settings.rebuild {
            Some(dispatcher) => {
                let rebuild = &dispatcher.settings;
                let targets: Vec<&str> = rebuild
                    .targets
                    .iter()
                    .map(|target| target.name.as_str())
                    .collect();
                text(format!(
                    "targets {}, at most {}/h ({}/h per target), in flight for {}, suspended after {} failures",
                    targets.join(", "),
                    rebuild.per_hour,
                    rebuild.per_target_per_hour,
                    duration_text(rebuild.in_flight_timeout),
                    rebuild.suspend_after
                ))
            }
            None => text("off (no rebuild section)".into()),
        },
        None,
        None,
    );
    push(
        "retention",
        match &settings.retention {
            Some(retention) => {
                let rules = &retention.settings;
                text(format!(
                    "{} every {}, {} policies, at most {} deletions per run",
                    if rules.apply {
                        "deletes"
                    } else {
                        "plans only (apply: false)"
                    },
                    duration_text(rules.interval),
                    rules.policies.len(),
                    rules.max_deletions
                ))
            }
            None => text("off (no retention section)".into()),
        },
        None,
        None,
    );
    push(
        "notifications",
        match &settings.notifications {
            Some(notifier) => {
                let section = &notifier.settings;
                let targets: Vec<String> = section
                    .targets
                    .iter()
                    .map(|target| {
                        let events: Vec<&str> = target.events.iter().copied().collect();
                        format!("{} ({})", target.name, events.join(", "))
                    })
                    .collect();
                text(format!(
                    "targets {}, every {}, {} attempts",
                    targets.join("; "),
                    duration_text(section.interval),
                    section.attempts
                ))
            }
            None => text("off (no notifications section)".into()),
        },
        None,
        None,
    );
    push(
        "tls",
        match &settings.tls {
            Some(tls) => text(format!(
                "cert {}, key {}",
                tls.cert.display(),
                tls.key.display()
            )),
            None => text("off (plain HTTP)".into()),
        },
        given(flags.tls_cert.is_some(), "--tls-cert"),
        None,
    );
    push(
        "resolve",
        match &settings.resolve {
            Some(resolve) => text(format!(
                "deadline {}, ttl {}, failure_ttl {}, cache {}",
                duration_text(resolve.deadline),
                duration_text(resolve.ttl),
                duration_text(resolve.failure_ttl),
                resolve.capacity
            )),
            None => text("off".into()),
        },
        given(flags.resolve.resolve, "--resolve"),
        None,
    );
    push(
        "namespace_labels",
        match &settings.namespace_labels {
            Some(namespaces) => text(format!(
                "api {}, token_file {}",
                namespaces.api,
                namespaces.token_file.display()
            )),
            None => text("off".into()),
        },
        given(flags.namespace_labels, "--namespace-labels"),
        None,
    );
    push(
        "leases.ttl",
        text(duration_text(settings.leases.ttl)),
        None,
        None,
    );
    push(
        "leases.holder",
        text(settings.leases.holder.clone()),
        None,
        Some("HOSTNAME"),
    );
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_the_config_file_writes_them() {
        for (millis, expected) in [
            (0, "0"),
            (500, "500ms"),
            (90_000, "1m30s"),
            (60_000, "1m"),
            (900_000, "15m"),
            (172_800_000, "2d"),
        ] {
            let text = duration_text(Duration::from_millis(millis));
            assert_eq!(text, expected);
            assert_eq!(
                berth_core::duration::parse(&text),
                Ok(Duration::from_millis(millis)),
                "round trip"
            );
        }
    }
}
