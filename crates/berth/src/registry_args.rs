//! Command-line options that say how to reach registries, shared by every command that talks to
//! one, and their resolution into a `berth_oci::ClientConfig`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use berth_oci::{AuthFile, ClientConfig, CredentialHelper, RegistryConfig};

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
    /// Read UPSTREAM's images from MIRROR first (`host:port`), as `UPSTREAM=MIRROR`. Repeatable;
    /// mirrors are tried in the order given, then the upstream. Writes go to the upstream only.
    #[arg(long = "registry-mirror", value_name = "UPSTREAM=MIRROR")]
    pub registry_mirrors: Vec<String>,
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
            credential_helper: auth.helper_for(host).map(|name| find_helper(name, env)),
            ..RegistryConfig::default()
        };
        let mut registries: HashMap<String, RegistryConfig> = auth
            .configured_hosts()
            .map(|host| (host.to_string(), base(host)))
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
            mirrors: self.mirrors()?,
            ..ClientConfig::default()
        })
    }

    /// `--registry-mirror UPSTREAM=MIRROR` pairs, by upstream, mirrors in the order given.
    fn mirrors(&self) -> anyhow::Result<HashMap<String, Vec<String>>> {
        let mut mirrors: HashMap<String, Vec<String>> = HashMap::new();
        for pair in &self.registry_mirrors {
            let bad = |why: &str| usage(format!("--registry-mirror {pair:?}: {why}"));
            let (upstream, mirror) = pair
                .split_once('=')
                .ok_or_else(|| bad("expected UPSTREAM=MIRROR"))?;
            let host_of = |text: &str| {
                berth_core::ImageRef::parse(&format!("{text}/x"))
                    .ok()
                    .map(|image| image.registry().to_string())
            };
            let upstream = host_of(upstream).ok_or_else(|| bad("UPSTREAM is not a registry"))?;
            let mirror = mirror.to_ascii_lowercase();
            if host_of(&mirror).as_deref() != Some(mirror.as_str()) {
                return Err(bad(
                    "MIRROR must be a registry host (host:port, or a name with a dot)",
                ));
            }
            if mirror == upstream {
                return Err(bad("a registry cannot mirror itself"));
            }
            mirrors.entry(upstream).or_default().push(mirror);
        }
        Ok(mirrors)
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

/// `docker-credential-NAME` on `$PATH`, as docker finds it; `program: None` when it is not there
/// (an error, naming the helper and the registry, only when a registry asks for credentials).
fn find_helper(name: &str, env: &Environment) -> CredentialHelper {
    let helper = CredentialHelper {
        name: name.to_string(),
        program: None,
    };
    let program_name = helper.program_name();
    let program = env.get("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(&program_name))
            .find(|candidate| is_executable(candidate))
    });
    CredentialHelper { program, ..helper }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn read_auth_file(path: &Path) -> anyhow::Result<AuthFile> {
    let bytes = std::fs::read(path).context("cannot read")?;
    Ok(AuthFile::parse(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_are_found_on_path_per_host_then_for_every_host() {
        let dir = std::env::temp_dir().join(format!("berth-registry-args-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("docker-credential-gh");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"credsStore":"pass","credHelpers":{"ghcr.io":"gh"},
                "auths":{"ghcr.io":{"username":"u","password":"p"},"quay.io":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let args = RegistryArgs {
            authfile: Some(config),
            ..RegistryArgs::default()
        };
        let path = format!("/nonexistent:{}", bin.display());
        let env = Environment::from_pairs(&[("PATH", &path)]);
        let resolved = args.client_config(&env).unwrap();
        let ghcr = &resolved.registries["ghcr.io"];
        assert_eq!(
            ghcr.credential_helper,
            Some(CredentialHelper {
                name: "gh".into(),
                program: Some(program)
            })
        );
        assert!(ghcr.credentials.is_some(), "kept as the fallback");
        let quay = &resolved.registries["quay.io"];
        assert_eq!(
            quay.credential_helper,
            Some(CredentialHelper {
                name: "pass".into(),
                program: None
            }),
            "credsStore, not on PATH"
        );
        assert_eq!(
            resolved
                .default_registry
                .credential_helper
                .as_ref()
                .map(|h| h.name.as_str()),
            Some("pass")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mirrors_keep_their_order_and_are_checked() {
        let args = |pairs: &[&str]| RegistryArgs {
            registry_mirrors: pairs.iter().map(|p| p.to_string()).collect(),
            ..RegistryArgs::default()
        };
        let env = Environment::from_pairs(&[]);
        let resolved = args(&[
            "docker.io=mirror.internal:5000",
            "index.docker.io=Backup.Example",
        ])
        .client_config(&env)
        .unwrap();
        assert_eq!(
            resolved.mirrors["docker.io"],
            ["mirror.internal:5000", "backup.example"]
        );
        for (bad, why) in [
            ("docker.io", "expected UPSTREAM=MIRROR"),
            ("docker.io=mirror", "MIRROR must be a registry host"),
            ("docker.io=docker.io", "cannot mirror itself"),
        ] {
            let error = args(&[bad]).client_config(&env).unwrap_err();
            assert!(format!("{error:#}").contains(why), "{bad}: {error:#}");
        }
    }
}
