//! `berth serve`'s configuration file, read in two stages: [`ServeFile`] is what the operator
//! typed (every problem reported at once, with file, line and column; unknown fields rejected),
//! and [`ServeSettings`] is the validated result once command-line flags and defaults are
//! applied (by the binary).
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! catalog: /etc/berth/catalog.yaml   # a file or a directory of *.yaml files
//! catalog_format: berth              # or toolforge (serve an images-v1.yaml as is)
//! catalog_poll_interval: 2s          # how often to look for an edit (ms, s or m)
//! store: sqlite:///var/lib/berth/berth.db   # or postgres://...; needed by sync and /images
//! authfile: /etc/berth/auth.json     # docker config.json credentials
//! registries:                        # how to reach registries, by host
//!   registry.internal:5000: {ca_file: /etc/berth/internal-ca.pem}
//!   127.0.0.1:5050: {insecure: true}
//! sync:                              # the registry sync, on a schedule
//!   interval: 15m
//!   repositories: [registry.example.com/team/app]   # besides the catalog's
//!   registries:                      # whole registries, narrowed by path patterns
//!     - {registry: registry.example.com, include: ["team/**"], exclude: ["team/cache/**"]}
//!   layers: true                     # read layers for OS identity
//!   referrers_recheck: 24h           # ask the referrers API again about digests tagged this recently
//! promotions: channels.yaml          # promotion rules the scheduler runs (docs/channels.md)
//! api_tokens:                        # who may call the channel API; SHA-256 of each token
//!   - {name: release-bot, sha256: 9f86d081884c7d65..., scope: promote}  # read|promote|admin
//! ```
//!
//! New sections (`registries`, `store`, `webhook`) are added as one more entry in [`FIELDS`],
//! one more `Option` in [`ServeFile`] and one more arm in [`ServeFile::parse`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::catalog::Format;
use berth_core::catalog::diagnostic::{Diagnostic, Diagnostics};
use berth_core::catalog::read::{Path, Walker};
use berth_core::catalog::yaml::Node;

use crate::catalog_source::CatalogSource;

/// The fields a config file may hold.
pub const FIELDS: &[&str] = &[
    "listen",
    "catalog",
    "catalog_format",
    "catalog_poll_interval",
    "store",
    "authfile",
    "registries",
    "sync",
    "promotions",
    "api_tokens",
    "policy",
    "knowledge_refresh",
    "tls",
    "resolve",
    "namespace_labels",
    "leases",
    "connections",
    "freshness",
    "rebuild",
    "retention",
    "notifications",
    "ui",
];
const UI_FIELDS: &[&str] = &["enabled", "anonymous"];
const FRESHNESS_FIELDS: &[&str] = &["interval", "max_age", "eol_warning", "os_lifecycle"];
const OS_LIFECYCLE_FIELDS: &[&str] = &["distribution", "version", "eol_on"];
const CONNECTION_FIELDS: &[&str] = &["handshake_timeout", "header_read_timeout", "max"];
const TLS_FIELDS: &[&str] = &["cert", "key"];
const RESOLVE_FIELDS: &[&str] = &["enabled", "deadline", "ttl", "failure_ttl", "cache"];
const NAMESPACE_FIELDS: &[&str] = &["enabled", "api", "token_file", "ca_file"];
const LEASE_FIELDS: &[&str] = &["ttl"];
const TOKEN_FIELDS: &[&str] = &["name", "sha256", "scope"];
const REGISTRY_FIELDS: &[&str] = &["insecure", "ca_file", "mirrors"];
const SYNC_FIELDS: &[&str] = &[
    "interval",
    "repositories",
    "registries",
    "layers",
    "referrers_recheck",
];
const SCAN_FIELDS: &[&str] = &["registry", "include", "exclude"];
/// How often the promotion scheduler looks for due slots, first publishes and source moves.
pub const PROMOTION_TICK: Duration = Duration::from_secs(60);
/// How often the registries are synced unless told otherwise.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The shortest sync interval accepted: each run costs a HEAD per tag.
const SYNC_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// Where `berth serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How often the catalog's files are checked for an edit unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest poll interval accepted: polling stats every file each time.
const POLL_INTERVAL_MIN: Duration = Duration::from_millis(50);

/// The config file as typed: every field optional, so flags and defaults can fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeFile {
    pub listen: Option<SocketAddr>,
    /// Relative paths are relative to the config file's directory (the binary resolves them).
    pub catalog: Option<PathBuf>,
    pub catalog_format: Option<Format>,
    pub catalog_poll_interval: Option<Duration>,
    /// The store's URL (`sqlite://...`, `postgres://...`).
    pub store: Option<String>,
    pub authfile: Option<PathBuf>,
    /// How to reach registries, by host, in file order.
    pub registries: Vec<RegistryFile>,
    pub sync: Option<SyncFile>,
    /// The promotion rules file (docs/channels.md); relative to the config file's directory.
    pub promotions: Option<PathBuf>,
    /// API tokens, by the SHA-256 of their secret (never the secret itself).
    pub api_tokens: Vec<ApiToken>,
    /// The admission webhook's policy file (`--policy`); relative to the config file.
    pub policy: Option<PathBuf>,
    /// How often the webhook re-reads the store's knowledge (`--knowledge-refresh`).
    pub knowledge_refresh: Option<Duration>,
    /// HTTPS certificate and key (`--tls-cert`, `--tls-key`); relative to the config file.
    pub tls: Option<TlsFile>,
    /// Resolving unknown tags at admission (`--resolve*`).
    pub resolve: Option<ResolveFile>,
    /// Namespace labels from the Kubernetes API (`--namespace-labels`, `--kube-*`).
    pub namespace_labels: Option<NamespaceFile>,
    /// How long this replica's leases last (`leases.ttl`).
    pub lease_ttl: Option<Duration>,
    /// Connection limits (`connections`).
    pub connections: Option<ConnectionsFile>,
    /// The freshness pass (`freshness`).
    pub freshness: Option<FreshnessFile>,
    /// Rebuild targets and limits (`rebuild`, docs/freshness.md).
    pub rebuild: Option<berth_core::rebuild::RebuildSettings>,
    /// Retention policies and guards (`retention`, docs/retention.md).
    pub retention: Option<berth_core::retention::Settings>,
    /// Notification targets and what each hears (`notifications`, docs/notifications.md).
    pub notifications: Option<berth_core::notify::Settings>,
    /// The dashboard (`ui`, docs/dashboard.md).
    pub ui: Option<UiFile>,
}

/// The `ui` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UiFile {
    pub enabled: Option<bool>,
    pub anonymous: Option<crate::ui::Anonymous>,
}

/// The `freshness` section (docs/freshness.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreshnessFile {
    /// How often the pass runs.
    pub interval: Option<Duration>,
    /// The catalog-wide default age after which an image is `too-old`.
    pub max_age: Option<Duration>,
    /// How close to an OS's end of life it is reported.
    pub eol_warning: Option<Duration>,
    /// Rows that add to or override berth's OS lifecycle table.
    pub os_lifecycle: Vec<berth_core::freshness::OsLifecycle>,
}

/// The `connections` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionsFile {
    pub handshake_timeout: Option<Duration>,
    pub header_read_timeout: Option<Duration>,
    pub max: Option<usize>,
}

/// The `tls` section: both files are needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The `resolve` section; present and not `enabled: false` means on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveFile {
    pub enabled: Option<bool>,
    pub deadline: Option<Duration>,
    pub ttl: Option<Duration>,
    pub failure_ttl: Option<Duration>,
    pub cache: Option<usize>,
}

/// The `namespace_labels` section; present and not `enabled: false` means on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFile {
    pub enabled: Option<bool>,
    pub api: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// What an API token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read channel history and the audit log.
    Read,
    /// Also promote and roll back.
    Promote,
    /// Everything (later: deletions, configuration).
    Admin,
    /// Only `POST /api/v1/registry-events`: what a registry's notifications carry. Outside
    /// the read < promote < admin chain, so a registry's token can do nothing else.
    Events,
    /// Only `POST /api/v1/provenance`: what a pipeline reports about the digest it built and
    /// tested. Outside the chain too: a CI token cannot promote or read.
    Ci,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text {
            "read" => Ok(Scope::Read),
            "promote" => Ok(Scope::Promote),
            "admin" => Ok(Scope::Admin),
            "events" => Ok(Scope::Events),
            "ci" => Ok(Scope::Ci),
            _ => Err(format!(
                "unknown scope {text:?}; expected read, promote, admin, events or ci"
            )),
        }
    }

    /// The scope as the config spells it ([`Scope::parse`] reads it back).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Promote => "promote",
            Scope::Admin => "admin",
            Scope::Events => "events",
            Scope::Ci => "ci",
        }
    }

    /// Whether a token of this scope may do what `needed` guards.
    pub fn allows(self, needed: Scope) -> bool {
        match (self, needed) {
            (Scope::Admin, _) => true,
            (Scope::Events, needed) => needed == Scope::Events,
            (_, Scope::Events) => false,
            (Scope::Ci, needed) => needed == Scope::Ci,
            (_, Scope::Ci) => false,
            (have, needed) => have >= needed,
        }
    }
}

/// An API token as configured: a name (the actor in history and audit), the SHA-256 of the
/// secret in lowercase hex, and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub sha256: String,
    pub scope: Scope,
}

/// How to reach one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryFile {
    pub host: String,
    /// Plain HTTP: only for registries configured so.
    pub insecure: bool,
    /// A CA bundle (PEM) trusted for this registry.
    pub ca_file: Option<PathBuf>,
    /// Mirrors (`host:port`) read before this registry, in order; writes never go to them.
    pub mirrors: Vec<String>,
}

/// The `sync` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncFile {
    pub interval: Option<Duration>,
    pub repositories: Vec<String>,
    pub registries: Vec<ScanFile>,
    pub layers: Option<bool>,
    pub referrers_recheck: Option<Duration>,
}

/// A whole registry to walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanFile {
    pub registry: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// What `berth serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub catalog: CatalogSource,
    /// How often the catalog's files are checked for an edit (and the TLS pair, if any).
    pub poll_interval: Duration,
    /// Serve HTTPS with this certificate and key (the admission webhook needs it).
    pub tls: Option<crate::tls::TlsSettings>,
    /// The store's URL; without one, knowledge endpoints answer 503 and nothing syncs.
    pub store: Option<String>,
    pub sync: Option<SyncSettings>,
    pub promotions: Option<PromotionSettings>,
    /// The channel API (needs a store and at least one token); `None`: its routes answer 404.
    pub channels_api: Option<ChannelsApiSettings>,
    /// The webhook resolves tags its snapshot does not know, for pins (`--resolve`); `None`:
    /// such tags are unknown and the rule's `unknown:` applies.
    pub resolve: Option<crate::resolve::ResolveSettings>,
    /// The webhook reads namespace labels from the Kubernetes API for label-selected
    /// exceptions (`--namespace-labels`); `None`: such exceptions never apply at admission.
    pub namespace_labels: Option<crate::namespaces::NamespaceSettings>,
    /// The admission webhook's policy file; `None`: no webhook.
    pub policy: Option<PathBuf>,
    /// How often the webhook re-reads the store's knowledge.
    pub knowledge_refresh: Duration,
    /// Who this replica is and how long its leases last.
    pub leases: crate::leases::LeaseSettings,
    /// Handshake and header timeouts and the bound on open connections.
    pub connections: crate::connections::ConnectionLimits,
    /// The freshness pass (`freshness`); `None` without a store.
    pub freshness: Option<crate::freshness::FreshnessSettings>,
    /// Rebuild dispatch on the `rebuild` lease's holder (`rebuild`); `None` without the
    /// section or a store.
    pub rebuild: Option<berth_rebuild::Dispatcher>,
    /// Retention on the `retention` lease's holder (`retention`); `None` without the section
    /// or a store.
    pub retention: Option<crate::retention::RetentionSettings>,
    /// Notifications on the `notifications` lease's holder (`notifications`); `None` without
    /// the section or a store.
    pub notifications: Option<crate::notifications::Notifier>,
    /// The dashboard under `/ui/` (`ui`, `--ui`); `None`: off.
    pub ui: Option<crate::ui::UiSettings>,
}

/// The channel API, ready to serve.
#[derive(Debug, Clone)]
pub struct ChannelsApiSettings {
    pub tokens: Vec<ApiToken>,
    pub client: berth_oci::ClientConfig,
}

impl PartialEq for ChannelsApiSettings {
    fn eq(&self, other: &Self) -> bool {
        self.tokens == other.tokens
    }
}

impl Eq for ChannelsApiSettings {}

/// The promotion scheduler, ready to run.
#[derive(Debug, Clone)]
pub struct PromotionSettings {
    pub rules: berth_core::channels::RulesFile,
    /// How often to tick ([`PROMOTION_TICK`]; tests shorten it).
    pub interval: Duration,
    pub client: berth_oci::ClientConfig,
}

impl PartialEq for PromotionSettings {
    fn eq(&self, other: &Self) -> bool {
        // As for the sync: the client's configuration holds secrets and is not comparable.
        self.interval == other.interval && self.rules == other.rules
    }
}

impl Eq for PromotionSettings {}

/// The scheduled sync, ready to run.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub interval: Duration,
    /// Repositories and registries besides the catalog's (re-read at every run).
    pub targets: berth_sync::Targets,
    pub client: berth_oci::ClientConfig,
    pub options: berth_sync::SyncOptions,
}

impl PartialEq for SyncSettings {
    fn eq(&self, other: &Self) -> bool {
        // The client's configuration holds secrets and is not comparable; settings are compared
        // only in tests, by what they schedule.
        self.interval == other.interval
            && self.targets.repositories == other.targets.repositories
            && self.targets.registries == other.targets.registries
    }
}

impl Eq for SyncSettings {}

impl ServeFile {
    /// Parses a config file's text; `file` names it in diagnostics.
    pub fn parse(file: &str, text: &str) -> Result<ServeFile, Vec<Diagnostic>> {
        let mut diagnostics = Diagnostics::default();
        let mut walker = Walker {
            file,
            diagnostics: &mut diagnostics,
        };
        let mut config = ServeFile::default();
        let root = Path::Root;
        if let Some(node) = walker.document(text)
            && let Some(fields) = walker.fields(&node, &root, FIELDS)
        {
            for (name, field) in fields.iter() {
                let path = root.field(name);
                let value = field.value;
                match name {
                    "listen" => config.listen = parse_with(&mut walker, value, &path, listen),
                    "catalog" => {
                        config.catalog = walker.required_text(value, &path).map(PathBuf::from)
                    }
                    "catalog_format" => {
                        config.catalog_format = parse_with(&mut walker, value, &path, format)
                    }
                    "catalog_poll_interval" => {
                        config.catalog_poll_interval =
                            parse_with(&mut walker, value, &path, poll_interval);
                    }
                    "store" => config.store = walker.required_text(value, &path),
                    "authfile" => {
                        config.authfile = walker.required_text(value, &path).map(PathBuf::from)
                    }
                    "registries" => config.registries = registries(&mut walker, value, &path),
                    "sync" => config.sync = sync_section(&mut walker, value, &path),
                    "promotions" => {
                        config.promotions = walker.required_text(value, &path).map(PathBuf::from)
                    }
                    "api_tokens" => config.api_tokens = api_tokens(&mut walker, value, &path),
                    "policy" => {
                        config.policy = walker.required_text(value, &path).map(PathBuf::from)
                    }
                    "knowledge_refresh" => {
                        config.knowledge_refresh =
                            parse_with(&mut walker, value, &path, poll_interval)
                    }
                    "tls" => config.tls = tls_section(&mut walker, value, &path),
                    "resolve" => config.resolve = resolve_section(&mut walker, value, &path),
                    "namespace_labels" => {
                        config.namespace_labels = namespace_section(&mut walker, value, &path)
                    }
                    "connections" => {
                        if let Some(fields) = walker.fields(value, &path, CONNECTION_FIELDS) {
                            let mut section = ConnectionsFile::default();
                            for (name, field) in fields.iter() {
                                let field_path = path.field(name);
                                match name {
                                    "handshake_timeout" => {
                                        section.handshake_timeout = parse_with(
                                            &mut walker,
                                            field.value,
                                            &field_path,
                                            positive,
                                        )
                                    }
                                    "header_read_timeout" => {
                                        section.header_read_timeout = parse_with(
                                            &mut walker,
                                            field.value,
                                            &field_path,
                                            positive,
                                        )
                                    }
                                    "max" => {
                                        section.max =
                                            parse_with(&mut walker, field.value, &field_path, count)
                                                .filter(|max| *max > 0)
                                    }
                                    other => unreachable!(
                                        "field {other} is in CONNECTION_FIELDS but not read"
                                    ),
                                }
                            }
                            config.connections = Some(section);
                        }
                    }
                    "freshness" => config.freshness = freshness_section(&mut walker, value, &path),
                    "rebuild" => {
                        config.rebuild =
                            berth_core::rebuild::read_section(&mut walker, value, &path)
                    }
                    "ui" => {
                        if let Some(fields) = walker.fields(value, &path, UI_FIELDS) {
                            let mut section = UiFile::default();
                            for (name, field) in fields.iter() {
                                let at = path.field(name);
                                match name {
                                    "enabled" => {
                                        section.enabled =
                                            parse_with(&mut walker, field.value, &at, boolean)
                                    }
                                    "anonymous" => {
                                        section.anonymous = parse_with(
                                            &mut walker,
                                            field.value,
                                            &at,
                                            crate::ui::Anonymous::parse,
                                        )
                                    }
                                    other => {
                                        unreachable!("field {other} is in UI_FIELDS but not read")
                                    }
                                }
                            }
                            config.ui = Some(section);
                        }
                    }
                    "retention" => {
                        config.retention =
                            berth_core::retention::read_section(&mut walker, value, &path)
                    }
                    "notifications" => {
                        config.notifications =
                            berth_core::notify::read_section(&mut walker, value, &path)
                    }
                    "leases" => {
                        if let Some(fields) = walker.fields(value, &path, LEASE_FIELDS)
                            && let Some(ttl) = fields.get("ttl")
                        {
                            config.lease_ttl =
                                parse_with(&mut walker, ttl.value, &path.field("ttl"), lease_ttl);
                        }
                    }
                    other => unreachable!("field {other} is in FIELDS but not read"),
                }
            }
        }
        if diagnostics.has_errors() {
            return Err(diagnostics.into_sorted());
        }
        Ok(config)
    }
}

/// Where each field of a config file's text is, two levels deep (`sync`, `sync.interval`):
/// `(field path, line, column)` of each value, for `berth config show`. A text that does not
/// parse yields nothing ([`ServeFile::parse`] reports why).
pub fn field_positions(text: &str) -> Vec<(String, usize, usize)> {
    let Ok(Some(root)) = berth_core::catalog::yaml::parse(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let berth_core::catalog::yaml::Value::Mapping(pairs) = &root.value else {
        return found;
    };
    for (key, value) in pairs {
        let berth_core::catalog::yaml::Value::Scalar(name) = &key.value else {
            continue;
        };
        found.push((
            name.text.to_string(),
            value.position.line,
            value.position.column,
        ));
        if let berth_core::catalog::yaml::Value::Mapping(inner) = &value.value {
            for (key, value) in inner {
                if let berth_core::catalog::yaml::Value::Scalar(inner_name) = &key.value {
                    found.push((
                        format!("{}.{}", name.text, inner_name.text),
                        value.position.line,
                        value.position.column,
                    ));
                }
            }
        }
    }
    found
}

fn freshness_section(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Option<FreshnessFile> {
    let fields = walker.fields(node, path, FRESHNESS_FIELDS)?;
    let mut section = FreshnessFile::default();
    for (name, field) in fields.iter() {
        let field_path = path.field(name);
        match name {
            "interval" => {
                section.interval = parse_with(walker, field.value, &field_path, sync_interval)
            }
            "max_age" => section.max_age = parse_with(walker, field.value, &field_path, positive),
            "eol_warning" => {
                section.eol_warning = parse_with(walker, field.value, &field_path, span)
            }
            "os_lifecycle" => section.os_lifecycle = os_lifecycle(walker, field.value, &field_path),
            other => unreachable!("field {other} is in FRESHNESS_FIELDS but not read"),
        }
    }
    Some(section)
}

fn os_lifecycle(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Vec<berth_core::freshness::OsLifecycle> {
    let mut rows = Vec::new();
    let Some(items) = walker.sequence(node, path) else {
        return rows;
    };
    for (index, item) in items.iter().enumerate() {
        let item_path = path.index(index);
        let Some(fields) = walker.fields(item, &item_path, OS_LIFECYCLE_FIELDS) else {
            continue;
        };
        let mut field = |name: &'static str| {
            let found = fields.get(name);
            if found.is_none() {
                let message = format!("an os_lifecycle row needs `{name}`");
                walker.error(item.position, &item_path, message);
            }
            found
        };
        let (distribution, version, eol_on) =
            (field("distribution"), field("version"), field("eol_on"));
        let distribution = distribution
            .and_then(|found| walker.required_text(found.value, &item_path.field("distribution")));
        let version = version
            .and_then(|found| walker.required_text(found.value, &item_path.field("version")));
        let eol_on = eol_on.and_then(|found| walker.date(found.value, &item_path.field("eol_on")));
        if let (Some(distribution), Some(version), Some(eol_on)) = (distribution, version, eol_on) {
            rows.push(berth_core::freshness::OsLifecycle {
                distribution,
                version,
                eol_on,
            });
        }
    }
    rows
}

fn api_tokens(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Vec<ApiToken> {
    let mut tokens = Vec::new();
    let Some(items) = walker.sequence(node, path) else {
        return tokens;
    };
    for (index, item) in items.iter().enumerate() {
        let item_path = path.index(index);
        let Some(fields) = walker.fields(item, &item_path, TOKEN_FIELDS) else {
            continue;
        };
        let mut field = |name: &'static str, parse: fn(&str) -> Result<String, String>| {
            let Some(found) = fields.get(name) else {
                walker.error(item.position, &item_path, format!("a token needs `{name}`"));
                return None;
            };
            parse_with(walker, found.value, &item_path.field(name), parse)
        };
        let name = field("name", |text| Ok(text.to_string()));
        let sha256 = field("sha256", |text| {
            if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                Ok(text.to_string())
            } else {
                Err("expected the token's SHA-256 as 64 lowercase hex digits \
                     (`printf %s TOKEN | sha256sum`), never the token itself"
                    .to_string())
            }
        });
        let scope = field("scope", |text| Scope::parse(text).map(|_| text.to_string()))
            .and_then(|text| Scope::parse(&text).ok());
        if let (Some(name), Some(sha256), Some(scope)) = (name, sha256, scope) {
            tokens.push(ApiToken {
                name,
                sha256,
                scope,
            });
        }
    }
    tokens
}

fn registries(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Vec<RegistryFile> {
    let mut found = Vec::new();
    let Some(pairs) = walker.mapping(node, path) else {
        return found;
    };
    for (key, value) in pairs {
        let Some(host) = walker.key_text(key, path) else {
            continue;
        };
        let path = path.field(host);
        let mut registry = RegistryFile {
            host: host.to_ascii_lowercase(),
            ..RegistryFile::default()
        };
        if let Some(fields) = walker.fields(value, &path, REGISTRY_FIELDS) {
            for (name, field) in fields.iter() {
                let field_path = path.field(name);
                match name {
                    "insecure" => {
                        registry.insecure =
                            parse_with(walker, field.value, &field_path, boolean).unwrap_or(false)
                    }
                    "ca_file" => {
                        registry.ca_file = walker
                            .required_text(field.value, &field_path)
                            .map(PathBuf::from)
                    }
                    "mirrors" => registry.mirrors = texts(walker, field.value, &field_path),
                    other => unreachable!("field {other} is in REGISTRY_FIELDS but not read"),
                }
            }
        }
        found.push(registry);
    }
    found
}

fn sync_section(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<SyncFile> {
    let fields = walker.fields(node, path, SYNC_FIELDS)?;
    let mut sync = SyncFile::default();
    for (name, field) in fields.iter() {
        let field_path = path.field(name);
        match name {
            "interval" => {
                sync.interval = parse_with(walker, field.value, &field_path, sync_interval)
            }
            "repositories" => sync.repositories = texts(walker, field.value, &field_path),
            "registries" => {
                let Some(items) = walker.sequence(field.value, &field_path) else {
                    continue;
                };
                for (index, item) in items.iter().enumerate() {
                    let item_path = field_path.index(index);
                    let Some(scan_fields) = walker.fields(item, &item_path, SCAN_FIELDS) else {
                        continue;
                    };
                    let mut scan = ScanFile::default();
                    for (name, field) in scan_fields.iter() {
                        let scan_path = item_path.field(name);
                        match name {
                            "registry" => {
                                scan.registry = walker
                                    .required_text(field.value, &scan_path)
                                    .unwrap_or_default()
                                    .to_ascii_lowercase()
                            }
                            "include" => scan.include = texts(walker, field.value, &scan_path),
                            "exclude" => scan.exclude = texts(walker, field.value, &scan_path),
                            other => unreachable!("field {other} is in SCAN_FIELDS but not read"),
                        }
                    }
                    if !scan_fields.contains("registry") {
                        walker.error(
                            item.position,
                            &item_path,
                            "a registry to walk needs `registry`",
                        );
                    }
                    sync.registries.push(scan);
                }
            }
            "layers" => sync.layers = parse_with(walker, field.value, &field_path, boolean),
            "referrers_recheck" => {
                sync.referrers_recheck = parse_with(walker, field.value, &field_path, span)
            }
            other => unreachable!("field {other} is in SYNC_FIELDS but not read"),
        }
    }
    Some(sync)
}

fn tls_section(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<TlsFile> {
    let fields = walker.fields(node, path, TLS_FIELDS)?;
    let mut file = |name: &'static str| match fields.get(name) {
        Some(field) => walker
            .required_text(field.value, &path.field(name))
            .map(PathBuf::from),
        None => {
            walker.error(node.position, path, format!("`tls` needs `{name}`"));
            None
        }
    };
    let cert = file("cert");
    let key = file("key");
    Some(TlsFile {
        cert: cert?,
        key: key?,
    })
}

fn resolve_section(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Option<ResolveFile> {
    let fields = walker.fields(node, path, RESOLVE_FIELDS)?;
    let mut resolve = ResolveFile::default();
    for (name, field) in fields.iter() {
        let field_path = path.field(name);
        match name {
            "enabled" => resolve.enabled = parse_with(walker, field.value, &field_path, boolean),
            "deadline" => resolve.deadline = parse_with(walker, field.value, &field_path, span),
            "ttl" => resolve.ttl = parse_with(walker, field.value, &field_path, span),
            "failure_ttl" => {
                resolve.failure_ttl = parse_with(walker, field.value, &field_path, span)
            }
            "cache" => resolve.cache = parse_with(walker, field.value, &field_path, count),
            other => unreachable!("field {other} is in RESOLVE_FIELDS but not read"),
        }
    }
    Some(resolve)
}

fn namespace_section(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Option<NamespaceFile> {
    let fields = walker.fields(node, path, NAMESPACE_FIELDS)?;
    let mut namespaces = NamespaceFile::default();
    for (name, field) in fields.iter() {
        let field_path = path.field(name);
        match name {
            "enabled" => namespaces.enabled = parse_with(walker, field.value, &field_path, boolean),
            "api" => namespaces.api = walker.required_text(field.value, &field_path),
            "token_file" => {
                namespaces.token_file = walker
                    .required_text(field.value, &field_path)
                    .map(PathBuf::from)
            }
            "ca_file" => {
                namespaces.ca_file = walker
                    .required_text(field.value, &field_path)
                    .map(PathBuf::from)
            }
            other => unreachable!("field {other} is in NAMESPACE_FIELDS but not read"),
        }
    }
    Some(namespaces)
}

fn count(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

/// Any duration in berth's one syntax, `0` included.
pub fn span(text: &str) -> Result<Duration, String> {
    berth_core::duration::parse(text)
}

/// A duration above zero.
fn positive(text: &str) -> Result<Duration, String> {
    let duration = span(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be more than 0"));
    }
    Ok(duration)
}

/// A lease's time to live: at least [`crate::leases::LeaseSettings::TTL_MIN`].
pub fn lease_ttl(text: &str) -> Result<Duration, String> {
    let ttl = span(text)?;
    if ttl < crate::leases::LeaseSettings::TTL_MIN {
        return Err(format!("{text:?} is shorter than the minimum, 300ms"));
    }
    Ok(ttl)
}

/// A list of text values.
fn texts(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Vec<String> {
    let Some(items) = walker.sequence(node, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| walker.required_text(item, &path.index(index)))
        .collect()
}

fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

/// A sync interval in berth's duration syntax; at least 10 seconds.
pub fn sync_interval(text: &str) -> Result<Duration, String> {
    let duration = span(text)?;
    if duration < SYNC_INTERVAL_MIN {
        return Err(format!("{text:?} is shorter than the minimum, 10s"));
    }
    Ok(duration)
}

/// Reads a required text field with `parse`, reporting its error at the value.
fn parse_with<T>(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let text = walker.required_text(node, path)?;
    match parse(&text) {
        Ok(value) => Some(value),
        Err(message) => {
            walker.error(node.position, path, message);
            None
        }
    }
}

pub fn listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address and port (127.0.0.1:8080, [::]:8080)"))
}

pub fn format(text: &str) -> Result<Format, String> {
    match text {
        "berth" => Ok(Format::Berth),
        "toolforge" => Ok(Format::Toolforge),
        _ => Err(format!(
            "unknown catalog format {text:?}; expected berth or toolforge"
        )),
    }
}

/// A poll interval in berth's duration syntax; at least 50 milliseconds.
pub fn poll_interval(text: &str) -> Result<Duration, String> {
    let duration = span(text)?;
    if duration < POLL_INTERVAL_MIN {
        return Err(format!("{text:?} is shorter than the minimum, 50ms"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &str) {
        let got = match ServeFile::parse("berth.yaml", text) {
            Ok(config) => format!("{config:?}"),
            Err(diagnostics) => diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert_eq!(got, expect.trim(), "{text}");
    }

    #[test]
    fn a_scope_reads_back_as_written() {
        for scope in [
            Scope::Read,
            Scope::Promote,
            Scope::Admin,
            Scope::Events,
            Scope::Ci,
        ] {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
    }

    #[test]
    fn the_freshness_section() {
        check(
            "freshness:\n  interval: 30m\n  max_age: 30d\n  eol_warning: 60d\n  os_lifecycle:\n    - {distribution: debian, version: \"11\", eol_on: 2031-06-30}\n",
            r#"ServeFile { listen: None, catalog: None, catalog_format: None, catalog_poll_interval: None, store: None, authfile: None, registries: [], sync: None, promotions: None, api_tokens: [], policy: None, knowledge_refresh: None, tls: None, resolve: None, namespace_labels: None, lease_ttl: None, connections: None, freshness: Some(FreshnessFile { interval: Some(1800s), max_age: Some(2592000s), eol_warning: Some(5184000s), os_lifecycle: [OsLifecycle { distribution: "debian", version: "11", eol_on: 2031-06-30 }] }), rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
        check(
            "freshness:\n  max_age: soon\n  os_lifecycle:\n    - {distribution: debian, eol_on: 2031-13-01}\n  every: 1h\n",
            r#"
berth.yaml:2:12: error: freshness.max_age: "soon" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)
berth.yaml:4:7: error: freshness.os_lifecycle[0]: an os_lifecycle row needs `version`
berth.yaml:4:38: error: freshness.os_lifecycle[0].eol_on: "2031-13-01" is not a date (YYYY-MM-DD)
berth.yaml:5:3: error: freshness.every: unknown field `every`; expected one of: interval, max_age, eol_warning, os_lifecycle"#,
        );
    }

    #[test]
    fn a_complete_file() {
        check(
            "listen: 0.0.0.0:9000\ncatalog: catalog.d\ncatalog_format: toolforge\ncatalog_poll_interval: 500ms\n",
            r#"ServeFile { listen: Some(0.0.0.0:9000), catalog: Some("catalog.d"), catalog_format: Some(Toolforge), catalog_poll_interval: Some(500ms), store: None, authfile: None, registries: [], sync: None, promotions: None, api_tokens: [], policy: None, knowledge_refresh: None, tls: None, resolve: None, namespace_labels: None, lease_ttl: None, connections: None, freshness: None, rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
        check(
            "catalog: c.yaml\n",
            r#"ServeFile { listen: None, catalog: Some("c.yaml"), catalog_format: None, catalog_poll_interval: None, store: None, authfile: None, registries: [], sync: None, promotions: None, api_tokens: [], policy: None, knowledge_refresh: None, tls: None, resolve: None, namespace_labels: None, lease_ttl: None, connections: None, freshness: None, rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
    }

    #[test]
    fn registry_mirrors() {
        check(
            "registries:\n  docker.io: {mirrors: [mirror.internal:5000, backup.example]}\n",
            r#"ServeFile { listen: None, catalog: None, catalog_format: None, catalog_poll_interval: None, store: None, authfile: None, registries: [RegistryFile { host: "docker.io", insecure: false, ca_file: None, mirrors: ["mirror.internal:5000", "backup.example"] }], sync: None, promotions: None, api_tokens: [], policy: None, knowledge_refresh: None, tls: None, resolve: None, namespace_labels: None, lease_ttl: None, connections: None, freshness: None, rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
    }

    #[test]
    fn store_registries_and_sync() {
        check(
            "
store: sqlite:///var/lib/berth/berth.db
authfile: auth.json
registries:
  Registry.Internal:5000: {ca_file: ca.pem}
  127.0.0.1:5050: {insecure: true}
sync:
  interval: 15m
  repositories: [r.example/team/app]
  registries:
    - {registry: r.example, include: ['team/**'], exclude: ['team/cache/**']}
  layers: false
promotions: channels.yaml
api_tokens:
  - {name: bot, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, scope: promote}
",
            r#"ServeFile { listen: None, catalog: None, catalog_format: None, catalog_poll_interval: None, store: Some("sqlite:///var/lib/berth/berth.db"), authfile: Some("auth.json"), registries: [RegistryFile { host: "registry.internal:5000", insecure: false, ca_file: Some("ca.pem"), mirrors: [] }, RegistryFile { host: "127.0.0.1:5050", insecure: true, ca_file: None, mirrors: [] }], sync: Some(SyncFile { interval: Some(900s), repositories: ["r.example/team/app"], registries: [ScanFile { registry: "r.example", include: ["team/**"], exclude: ["team/cache/**"] }], layers: Some(false), referrers_recheck: None }), promotions: Some("channels.yaml"), api_tokens: [ApiToken { name: "bot", sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", scope: Promote }], policy: None, knowledge_refresh: None, tls: None, resolve: None, namespace_labels: None, lease_ttl: None, connections: None, freshness: None, rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
        check(
            "
registries:
  r.example: {insecure: yes, tls: true}
sync:
  interval: 1s
  registries:
    - include: [x]
api_tokens:
  - {name: bot, sha256: hunter2, scope: root}
",
            "
berth.yaml:3:25: error: registries.r.example.insecure: \"yes\" is not true or false
berth.yaml:3:30: error: registries.r.example.tls: unknown field `tls`; expected one of: insecure, ca_file, mirrors
berth.yaml:5:13: error: sync.interval: \"1s\" is shorter than the minimum, 10s
berth.yaml:7:7: error: sync.registries[0]: a registry to walk needs `registry`
berth.yaml:9:25: error: api_tokens[0].sha256: expected the token's SHA-256 as 64 lowercase hex digits (`printf %s TOKEN | sha256sum`), never the token itself
berth.yaml:9:41: error: api_tokens[0].scope: unknown scope \"root\"; expected read, promote, admin, events or ci
",
        );
    }

    #[test]
    fn every_serve_flag_has_a_field() {
        check(
            "
policy: policy.yaml
knowledge_refresh: 30s
tls: {cert: tls.crt, key: tls.key}
resolve: {deadline: 1500ms, ttl: 1m, failure_ttl: 0, cache: 500}
namespace_labels: {api: 'https://10.0.0.1:443', token_file: t, ca_file: c}
leases: {ttl: 1m30s}
",
            r#"ServeFile { listen: None, catalog: None, catalog_format: None, catalog_poll_interval: None, store: None, authfile: None, registries: [], sync: None, promotions: None, api_tokens: [], policy: Some("policy.yaml"), knowledge_refresh: Some(30s), tls: Some(TlsFile { cert: "tls.crt", key: "tls.key" }), resolve: Some(ResolveFile { enabled: None, deadline: Some(1.5s), ttl: Some(60s), failure_ttl: Some(0ns), cache: Some(500) }), namespace_labels: Some(NamespaceFile { enabled: None, api: Some("https://10.0.0.1:443"), token_file: Some("t"), ca_file: Some("c") }), lease_ttl: Some(90s), connections: None, freshness: None, rebuild: None, retention: None, notifications: None, ui: None }"#,
        );
        check(
            "
tls: {cert: tls.crt}
resolve: {deadline: soon, cahce: 5}
leases: {ttl: 10ms}
polcy: p.yaml
",
            "
berth.yaml:2:6: error: tls: `tls` needs `key`
berth.yaml:3:21: error: resolve.deadline: \"soon\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)
berth.yaml:3:27: error: resolve.cahce: unknown field `cahce`; did you mean `cache`?
berth.yaml:4:15: error: leases.ttl: \"10ms\" is shorter than the minimum, 300ms
berth.yaml:5:1: error: polcy: unknown field `polcy`; did you mean `policy`?
",
        );
    }

    #[test]
    fn every_problem_at_once() {
        check(
            "
listen: localhost
catalog:
catalog_format: json
catalog_poll_interval: 2 hours
registries: {}
listen: 127.0.0.1:1
",
            "
berth.yaml:2:9: error: listen: \"localhost\" is not an address and port (127.0.0.1:8080, [::]:8080)
berth.yaml:3:8: error: catalog: expected text, found nothing
berth.yaml:4:17: error: catalog_format: unknown catalog format \"json\"; expected berth or toolforge
berth.yaml:5:24: error: catalog_poll_interval: \"2 hours\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)
berth.yaml:7:1: error: listen: field given twice (first at line 2, column 1)
",
        );
        check(
            "catalog_poll_interval: 10ms\n",
            "berth.yaml:1:24: error: catalog_poll_interval: \"10ms\" is shorter than the minimum, 50ms",
        );
        check("", "berth.yaml:1:1: error: the file is empty");
    }
}
