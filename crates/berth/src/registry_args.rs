//! Command-line options that say how to reach registries, shared by every command that talks to
//! one, and their resolution into a `berth_oci::ClientConfig`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use berth_oci::{AuthFile, ClientConfig, RegistryConfig};

use crate::environment::Environment;
use crate::exit::usage;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Credentials file in docker's config.json format (default: $REGISTRY_AUTH_FILE, then
    /// $DOCKER_CONFIG/config.json, then ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Speak plain HTTP to this registry (`host:port`). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Trust the CA certificates in FILE (PEM) for this registry, as `HOST=FILE`. Repeatable.
    #[arg(long = "registry-ca", value_name = "HOST=FILE")]
    pub registry_cas: Vec<String>,
    /// At most this many concurrent requests per registry.
    #[arg(long, default_value_t = 8)]
    pub max_concurrency: usize,
}

impl RegistryArgs {
    /// Resolves flags, the auth file and CA files into the client's configuration.
    pub fn client_config(&self, env: &Environment) -> anyhow::Result<ClientConfig> {
        let auth = self.auth_file(env)?;
        let base = |host: &str| RegistryConfig {
            max_concurrency: self.max_concurrency,
            credentials: auth.credentials_for(host).cloned(),
            ..RegistryConfig::default()
        };
        let mut registries: HashMap<String, RegistryConfig> = auth
            .hosts()
            .map(|(host, _)| (host.to_string(), base(host)))
            .collect();
        for host in &self.insecure_registries {
            let host = host.to_ascii_lowercase();
            registries
                .entry(host.clone())
                .or_insert_with(|| base(&host))
                .plain_http = true;
        }
        for pair in &self.registry_cas {
            let (host, file) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("--registry-ca {pair:?}: expected HOST=FILE")))?;
            let pem = std::fs::read(file).map_err(|error| {
                usage(format!("--registry-ca {host}: cannot read {file}: {error}"))
            })?;
            let host = host.to_ascii_lowercase();
            registries
                .entry(host.clone())
                .or_insert_with(|| base(&host))
                .ca_pem = Some(pem);
        }
        Ok(ClientConfig {
            registries,
            default_registry: base(""),
            ..ClientConfig::default()
        })
    }

    fn auth_file(&self, env: &Environment) -> anyhow::Result<AuthFile> {
        if let Some(path) = &self.authfile {
            return read_auth_file(path)
                .map_err(|error| usage(format!("--authfile {}: {error:#}", path.display())));
        }
        let candidates = [
            env.get("REGISTRY_AUTH_FILE").map(PathBuf::from),
            env.get("DOCKER_CONFIG")
                .map(|dir| Path::new(&dir).join("config.json")),
            env.get("HOME")
                .map(|home| Path::new(&home).join(".docker/config.json")),
        ];
        for path in candidates.into_iter().flatten() {
            if path.exists() {
                return read_auth_file(&path)
                    .with_context(|| format!("credentials file {}", path.display()));
            }
        }
        Ok(AuthFile::default())
    }
}

fn read_auth_file(path: &Path) -> anyhow::Result<AuthFile> {
    let bytes = std::fs::read(path).context("cannot read")?;
    Ok(AuthFile::parse(&bytes)?)
}
