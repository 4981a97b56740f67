//! Credentials and registry authentication: docker `config.json`, `WWW-Authenticate` challenges,
//! and the rules a token realm must pass before berth sends credentials to it.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

/// A secret string: `Debug` and `Display` print `***`, so it cannot leak through a log or error.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What berth presents to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User and password (or a registry token used as a password).
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken` in docker's config), exchanged at the realm.
    IdentityToken(Secret),
}

/// Why a docker config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("not a docker config.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("entry {key:?}: `auth` is not base64 of user:password")]
    BadAuth { key: String },
}

/// Credentials per registry host, read from docker's `config.json` format (also skopeo's and
/// podman's `auth.json`). Keys such as `https://index.docker.io/v1/` are normalised to the host
/// (`docker.io`). Credential helpers are named here and run by the client
/// ([`crate::helper`]); as docker reads them, `credHelpers` (per host) wins over `credsStore`
/// (every host) wins over `auths`.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    by_host: HashMap<String, Credentials>,
    /// `credHelpers`: host → helper name (`NAME` of `docker-credential-NAME`).
    helpers: HashMap<String, String>,
    /// `credsStore`: the helper for every host without its own.
    store: Option<String>,
}

impl AuthFile {
    pub fn parse(bytes: &[u8]) -> Result<AuthFile, AuthFileError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            auths: HashMap<String, Entry>,
            #[serde(default, rename = "credHelpers")]
            cred_helpers: HashMap<String, String>,
            #[serde(default, rename = "credsStore")]
            creds_store: Option<String>,
        }
        #[derive(Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
            identitytoken: Option<String>,
        }
        let file: File = serde_json::from_slice(bytes)?;
        let helpers = file
            .cred_helpers
            .into_iter()
            .filter(|(_, name)| !name.is_empty())
            .map(|(key, name)| (normalize_auth_key(&key), name))
            .collect();
        let store = file.creds_store.filter(|name| !name.is_empty());
        let mut by_host = HashMap::new();
        for (key, entry) in file.auths {
            let credentials = if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
                Credentials::IdentityToken(Secret::new(token))
            } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = BASE64
                    .decode(auth.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| AuthFileError::BadAuth { key: key.clone() })?;
                let (username, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| AuthFileError::BadAuth { key: key.clone() })?;
                Credentials::Basic {
                    username: username.to_string(),
                    password: Secret::new(password),
                }
            } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
                Credentials::Basic {
                    username,
                    password: Secret::new(password),
                }
            } else {
                continue;
            };
            by_host.insert(normalize_auth_key(&key), credentials);
        }
        Ok(AuthFile {
            by_host,
            helpers,
            store,
        })
    }

    /// Every host with an `auths` entry or a `credHelpers` entry.
    pub fn configured_hosts(&self) -> impl Iterator<Item = &str> {
        let mut hosts: Vec<&str> = self
            .by_host
            .keys()
            .chain(self.helpers.keys())
            .map(String::as_str)
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts.into_iter()
    }

    /// The helper to ask for a registry: its `credHelpers` entry, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.helpers
            .get(&registry.to_ascii_lowercase())
            .or(self.store.as_ref())
            .map(String::as_str)
    }

    /// Every registry host with credentials, and its credentials.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &Credentials)> {
        self.by_host
            .iter()
            .map(|(host, credentials)| (host.as_str(), credentials))
    }

    /// Credentials for a registry as `ImageRef::registry()` names it (`docker.io`, `host:port`).
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(&registry.to_ascii_lowercase())
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/path` → `host:5000`.
fn normalize_auth_key(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `insufficient_scope` when the token presented lacked a grant the request needs.
        error: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="https://…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
        error: params.get("error").cloned(),
    })
}

/// `key="quoted, value",other=token` → map, honouring quotes and backslash escapes.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// Checks a token realm before any credential is sent to it: https (http only when the registry
/// itself is plain http), and never a link-local or cloud metadata address.
pub fn check_realm(realm: &url::Url, registry_is_http: bool) -> Result<(), &'static str> {
    match realm.scheme() {
        "https" => {}
        "http" if registry_is_http => {}
        "http" => return Err("token realm must be https for an https registry"),
        _ => return Err("token realm must be an http(s) URL"),
    }
    if !realm.username().is_empty() || realm.password().is_some() {
        return Err("token realm must not carry credentials");
    }
    let host = match realm.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "metadata.google.internal" || name == "metadata" {
                return Err("token realm is a cloud metadata address");
            }
            return Ok(());
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        None => return Err("token realm has no host"),
    };
    if is_forbidden_address(host) {
        return Err("token realm is a link-local or metadata address");
    }
    Ok(())
}

/// Link-local (where cloud metadata services live: 169.254.169.254, fe80::/10, AWS's
/// fd00:ec2::254), unspecified and broadcast addresses: never a token realm.
pub fn is_forbidden_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast(),
        IpAddr::V6(ip) => {
            let mapped = ip.to_ipv4_mapped();
            (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.is_unspecified()
                || ip == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || mapped.is_some_and(|v4| v4.is_link_local() || v4.is_unspecified())
        }
    }
}

/// Host names → addresses for berth's HTTP clients. The default is the system's resolver; tests
/// inject one that maps names of their choosing.
#[derive(Clone)]
pub struct Resolver(pub std::sync::Arc<dyn reqwest::dns::Resolve>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver(..)")
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

/// What [`RealmGuard`] answers for a name that resolves to a forbidden address; found again in
/// the connection error's chain to report [`crate::OciError::TokenRealm`].
#[derive(Debug, thiserror::Error)]
#[error("token realm resolves to a link-local or metadata address ({address})")]
pub struct RealmAddressRefused {
    pub address: IpAddr,
}

/// The token client's resolver: resolves the realm's host name and hands the connector only
/// addresses that passed [`is_forbidden_address`], so the address checked is the address
/// connected to (no second lookup an attacker's DNS could answer differently). A name with any
/// forbidden address is refused whole. Literal IP realms never reach a resolver; `check_realm`
/// covers them.
pub(crate) struct RealmGuard {
    /// `None`: the system's resolver (getaddrinfo on tokio's blocking pool).
    pub(crate) inner: Option<Resolver>,
}

impl reqwest::dns::Resolve for RealmGuard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = self.inner.clone();
        Box::pin(async move {
            let addresses: Vec<std::net::SocketAddr> = match inner {
                Some(resolver) => resolver.0.resolve(name).await?.collect(),
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            if let Some(bad) = addresses
                .iter()
                .find(|address| is_forbidden_address(address.ip()))
            {
                return Err(Box::new(RealmAddressRefused { address: bad.ip() })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The body of a token response (Docker token auth and OAuth2 both appear in the wild).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_formats() {
        let auth = BASE64.encode("alice:s3cret:with:colons");
        let text = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{auth}"}},
                "127.0.0.1:5443":{{"username":"bob","password":"pw"}},
                "https://quay.io":{{"identitytoken":"refresh"}},
                "empty.example":{{}}
            }},"credsStore":"desktop"}}"#
        );
        let file = AuthFile::parse(text.as_bytes()).unwrap();
        assert_eq!(
            file.credentials_for("docker.io"),
            Some(&Credentials::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret:with:colons")
            })
        );
        assert!(matches!(
            file.credentials_for("127.0.0.1:5443"),
            Some(Credentials::Basic { username, .. }) if username == "bob"
        ));
        assert!(matches!(
            file.credentials_for("quay.io"),
            Some(Credentials::IdentityToken(_))
        ));
        assert_eq!(file.credentials_for("empty.example"), None);
        assert_eq!(file.helper_for("docker.io"), Some("desktop"));
        let helpers = AuthFile::parse(
            br#"{"credsStore":"pass","credHelpers":{"https://ghcr.io":"gh","public.ecr.aws":""},"auths":{"q.example":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            helpers.helper_for("ghcr.io"),
            Some("gh"),
            "credHelpers wins"
        );
        assert_eq!(helpers.helper_for("GHCR.io"), Some("gh"));
        assert_eq!(
            helpers.helper_for("quay.io"),
            Some("pass"),
            "then credsStore"
        );
        assert_eq!(AuthFile::default().helper_for("quay.io"), None);
        assert_eq!(helpers.configured_hosts().collect::<Vec<_>>(), ["ghcr.io"]);
        let bad = r#"{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}"#;
        assert!(matches!(
            AuthFile::parse(bad.as_bytes()),
            Err(AuthFileError::BadAuth { .. })
        ));
    }

    #[test]
    fn secrets_never_print() {
        let credentials = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: None,
            })
        );
        assert!(matches!(
            parse_challenge(
                r#"Bearer realm="https://a/token",service="s",scope="repository:a/b:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer { error: Some(error), .. }) if error == "insufficient_scope"
        ));
        // Docker Hub's own challenge: its realm passes the realm rules.
        let hub = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        let Some(Challenge::Bearer {
            realm,
            service,
            scope,
            ..
        }) = hub
        else {
            panic!("{hub:?}");
        };
        assert!(check_realm(&url::Url::parse(&realm).unwrap(), false).is_ok());
        assert_eq!(service.as_deref(), Some("registry.docker.io"));
        assert_eq!(scope.as_deref(), Some("repository:library/alpine:pull"));
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn refuses_dangerous_realms() {
        let check = |realm: &str, http: bool| check_realm(&url::Url::parse(realm).unwrap(), http);
        assert!(check("https://auth.docker.io/token", false).is_ok());
        assert!(check("http://127.0.0.1:5000/token", true).is_ok());
        assert!(check("http://auth.example/token", false).is_err());
        assert!(check("https://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check("http://169.254.169.254/", true).is_err());
        assert!(check("https://[fe80::1]/token", false).is_err());
        assert!(check("https://[::ffff:169.254.169.254]/token", false).is_err());
        assert!(check("https://metadata.google.internal/x", false).is_err());
        assert!(check("https://user:pw@auth.example/token", false).is_err());
        assert!(check("file:///etc/passwd", true).is_err());
    }
}
