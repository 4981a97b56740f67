//! `berth inspect REF`: digest, media type, platforms, config and layers of an image, read from
//! its registry.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::osrelease::{Architecture, LibcFamily};
use berth_core::{Digest, ImageRef};
use berth_oci::{Client, Descriptor, ManifestKind, Platform};
use berth_store::{ImageFilter, Store};
use serde::Serialize;

use crate::environment::Environment;
use crate::exit::usage;
use crate::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image reference (`registry/repo:tag`, `repo@sha256:...`).
    pub reference: String,
    /// Platform to describe, as os/arch[/variant]; an image without it is a "no" (exit 1)
    /// naming the platforms it has (default: this machine's, e.g. linux/amd64, when the image
    /// is an index; a single-platform image is described whatever its platform).
    #[arg(long)]
    pub platform: Option<String>,
    /// Take OS identity and lineage from this store when it knows the image (default:
    /// $BERTH_STORE when set); otherwise they are read from the image's layers.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Do not read layers for the OS identity of an image the store does not know.
    #[arg(long)]
    pub no_layers: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What `inspect` reports; also the `--json` shape.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// The entries of an index; empty for a single-platform manifest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<IndexEntry>,
    /// The platform manifest described below (the image itself when it is not an index).
    pub image: PlatformImage,
    /// OS identity from os-release in the layers; `None` when not read (`--no-layers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The base found by layer lineage; only the store knows other images to compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
}

#[derive(Debug, Serialize)]
pub struct Identity {
    /// `debian-12-amd64`; `None` when the image has no os-release (scratch, static).
    pub os: Option<String>,
    pub pretty_name: Option<String>,
    pub libc: Option<LibcFamily>,
    /// Where this came from: `store` (an earlier sync) or `layers` (read now).
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Lineage {
    /// The known image whose layers are the longest proper prefix of this one's.
    pub base: Option<Digest>,
    pub shared_layers: Option<usize>,
    /// Where the base is tagged.
    pub base_tags: Vec<String>,
    /// The indexes through which those tags reach the base (a base claimed by its index).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub base_indexes: Vec<Digest>,
}

#[derive(Debug, Serialize)]
pub struct IndexEntry {
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub attestation: bool,
}

#[derive(Debug, Serialize)]
pub struct PlatformImage {
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
    pub config: ConfigSummary,
    pub layers: Vec<Layer>,
    /// The platform manifest's annotations (OCI `org.opencontainers.image.*` and others).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct ConfigSummary {
    pub digest: Digest,
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The uncompressed digest from the config's rootfs, at the same position.
    pub diff_id: Option<Digest>,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let image = ImageRef::parse(&args.reference).map_err(|error| usage(error.to_string()))?;
    let wanted = match &args.platform {
        Some(text) => Wanted::Asked(
            Platform::parse(text)
                .ok_or_else(|| usage(format!("--platform {text:?}: expected os/arch[/variant]")))?,
        ),
        None => Wanted::Host(Platform::host()),
    };
    let client = Client::new(args.registry.client_config(env)?);
    let runtime = crate::cmd::runtime()?;
    let store_url = args.store.clone().or_else(|| env.get("BERTH_STORE"));
    let inspection = runtime.block_on(async {
        let store = match &store_url {
            Some(url) => Some(crate::cmd::open_store_read_only(url).await?),
            None => None,
        };
        let described = describe(&client, &image, &wanted, store.as_ref(), !args.no_layers).await;
        if let Some(store) = store {
            store.close().await;
        }
        described
    })?;
    let inspection = match inspection {
        Ok(inspection) => inspection,
        // The image exists, but not for that platform: a "no".
        Err(missing) => {
            eprintln!("berth: {missing}");
            return Ok(ExitCode::from(crate::exit::NEGATIVE));
        }
    };
    if args.json {
        crate::cmd::print_json(&inspection)?;
    } else {
        print_text(&inspection);
    }
    Ok(ExitCode::SUCCESS)
}

/// [`inspect`], then OS identity and lineage from `store` when it knows the image, else (with
/// `read_layers`) the identity from the image's layers.
pub async fn describe(
    client: &Client,
    image: &ImageRef,
    wanted: &Wanted,
    store: Option<&Store>,
    read_layers: bool,
) -> anyhow::Result<Result<Inspection, PlatformMissing>> {
    let mut inspection = match inspect(client, image, wanted).await? {
        Ok(inspection) => inspection,
        Err(missing) => return Ok(Err(missing)),
    };
    if let Some(store) = store {
        add_knowledge(store, &mut inspection).await?;
    }
    if inspection.identity.is_none() && read_layers {
        let descriptors = inspection.image.descriptors();
        let config = &inspection.image.config;
        let architecture =
            Architecture::from_platform(&config.architecture, config.variant.as_deref());
        let scan = berth_sync::identify(client, image, &descriptors, architecture)
            .await
            .with_context(|| format!("{image}: reading os-release from the layers"))?;
        inspection.identity = Some(Identity {
            os: scan.identity.map(|id| id.to_string()),
            pretty_name: scan
                .os_release
                .and_then(|found| found.os_release.pretty_name),
            libc: Some(scan.libc),
            source: "layers",
        });
    }
    Ok(Ok(inspection))
}

impl PlatformImage {
    /// The layers as registry descriptors, to read them.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        self.layers
            .iter()
            .map(|layer| Descriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                platform: None,
                annotations: BTreeMap::new(),
            })
            .collect()
    }
}

/// The platform to describe: one the user asked for must exist; the host's is only a
/// preference (a single-platform image is described whatever its platform).
pub enum Wanted {
    Asked(Platform),
    Host(Platform),
}

/// The image has no manifest for the platform asked for; names those it has.
#[derive(Debug, thiserror::Error)]
#[error("{image}: no manifest for platform {wanted} (the image has: {})", available.join(", "))]
pub struct PlatformMissing {
    image: String,
    wanted: String,
    available: Vec<String>,
}

/// Reads an image from its registry: the manifest (or index, then the wanted platform's
/// manifest), and its config. `Ok(Err(..))`: the image has no manifest for the platform.
pub async fn inspect(
    client: &Client,
    image: &ImageRef,
    wanted: &Wanted,
) -> anyhow::Result<Result<Inspection, PlatformMissing>> {
    let (Wanted::Asked(platform) | Wanted::Host(platform)) = wanted;
    let missing = |available: Vec<String>| PlatformMissing {
        image: image.to_string(),
        wanted: platform.to_string(),
        available,
    };
    let top = client.manifest(image).await?;
    let (platforms, manifest) = match &top.kind {
        ManifestKind::Image(_) => (Vec::new(), top.clone()),
        ManifestKind::Index(index) => {
            let entries = index.manifests.iter().map(index_entry).collect();
            let Some(chosen) = index.select(platform) else {
                let available: Vec<String> = index
                    .runnable()
                    .filter_map(|entry| entry.platform.as_ref().map(Platform::to_string))
                    .collect();
                return Ok(Err(missing(available)));
            };
            (entries, client.manifest_of(image, chosen).await?)
        }
    };
    let ManifestKind::Image(image_manifest) = &manifest.kind else {
        anyhow::bail!(
            "{image}: an index entry points at another index; nested indexes are not supported"
        );
    };
    let (_, config) = client.config(image, &image_manifest.config).await?;
    let diff_ids = &config.rootfs.diff_ids;
    let layers = image_manifest
        .layers
        .iter()
        .enumerate()
        .map(|(position, layer)| Layer {
            digest: layer.digest.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
            diff_id: diff_ids.get(position).cloned(),
        })
        .collect();
    let platform = Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        os_version: None,
    };
    if let Wanted::Asked(asked) = wanted
        && !platform.satisfies(asked)
    {
        return Ok(Err(missing(vec![platform.to_string()])));
    }
    Ok(Ok(Inspection {
        reference: image.canonical(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        platforms,
        image: PlatformImage {
            platform: platform.to_string(),
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            config: ConfigSummary {
                digest: image_manifest.config.digest.clone(),
                created: config.created.clone(),
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                labels: config.config.labels.clone(),
                entrypoint: config.config.entrypoint.clone(),
                cmd: config.config.cmd.clone(),
                user: config.config.user.clone(),
                working_dir: config.config.working_dir.clone(),
                env: config.config.env.clone().unwrap_or_default(),
                exposed_ports: config.config.exposed_ports.keys().cloned().collect(),
            },
            layers,
            annotations: image_manifest.annotations.clone(),
        },
        identity: None,
        lineage: None,
    }))
}

/// OS identity and lineage from the store, when it holds the platform image.
pub async fn add_knowledge(store: &Store, inspection: &mut Inspection) -> anyhow::Result<()> {
    let images = store.images(&ImageFilter::default()).await?;
    let Some(known) = images.iter().find(|i| i.digest == inspection.image.digest) else {
        return Ok(());
    };
    inspection.identity = Some(Identity {
        os: known.os_id.as_ref().map(|id| id.to_string()),
        pretty_name: known.os_pretty.clone(),
        libc: known.libc,
        source: "store",
    });
    let base = known
        .base
        .as_ref()
        .and_then(|found| images.iter().find(|i| i.digest == found.base));
    let base_tags = base.map_or_else(Vec::new, |base| {
        base.references
            .iter()
            .map(|at| format!("{}:{}", at.repository, at.tag.as_str()))
            .collect()
    });
    let mut base_indexes: Vec<Digest> = base.map_or_else(Vec::new, |base| {
        base.references
            .iter()
            .filter_map(|at| at.index.clone())
            .collect()
    });
    base_indexes.sort();
    base_indexes.dedup();
    inspection.lineage = Some(Lineage {
        base: known.base.as_ref().map(|found| found.base.clone()),
        shared_layers: known.base.as_ref().map(|found| found.shared_layers),
        base_tags,
        base_indexes,
    });
    Ok(())
}

fn index_entry(entry: &Descriptor) -> IndexEntry {
    IndexEntry {
        platform: entry
            .platform
            .as_ref()
            .map_or_else(|| "-".to_string(), Platform::to_string),
        digest: entry.digest.clone(),
        media_type: entry.media_type.clone(),
        size: entry.size,
        attestation: entry.is_attestation(),
    }
}

/// The inspection as text. What the registry and the image say (media types, config, labels,
/// os-release) is escaped: it comes from outside and goes to a terminal.
fn print_text(inspection: &Inspection) {
    use berth_core::quote::escape;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(inspection.reference.clone());
    line(format!("  digest      {}", inspection.digest));
    line(format!("  media type  {}", escape(&inspection.media_type)));
    if !inspection.platforms.is_empty() {
        line("  platforms".to_string());
        for entry in &inspection.platforms {
            let note = if entry.attestation {
                "  (attestation)"
            } else {
                ""
            };
            let platform = escape(&entry.platform);
            line(format!("    {platform:<16} {}{note}", entry.digest));
        }
    }
    let image = &inspection.image;
    line(format!("  platform    {}", escape(&image.platform)));
    if !inspection.platforms.is_empty() {
        line(format!("  manifest    {}", image.digest));
    }
    line(format!("  config      {}", image.config.digest));
    line(format!(
        "  created     {}",
        escape(image.config.created.as_deref().unwrap_or("-"))
    ));
    if let Some(entrypoint) = &image.config.entrypoint {
        line(format!("  entrypoint  {}", escape(&entrypoint.join(" "))));
    }
    if let Some(cmd) = &image.config.cmd {
        line(format!("  cmd         {}", escape(&cmd.join(" "))));
    }
    if !image.config.labels.is_empty() {
        line("  labels".to_string());
        for (key, value) in &image.config.labels {
            line(format!("    {}={}", escape(key), escape(value)));
        }
    }
    if let Some(identity) = &inspection.identity {
        let libc = identity
            .libc
            .and_then(|libc| serde_json::to_value(libc).ok())
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        line(format!(
            "  os          {} ({}; libc {libc}; from {})",
            escape(identity.os.as_deref().unwrap_or("unknown")),
            escape(identity.pretty_name.as_deref().unwrap_or("no os-release")),
            identity.source
        ));
    }
    if let Some(lineage) = &inspection.lineage {
        match &lineage.base {
            Some(base) => line(format!(
                "  base        {base} ({} shared layers){}",
                lineage.shared_layers.unwrap_or(0),
                if lineage.base_tags.is_empty() {
                    String::new()
                } else {
                    format!(", tagged {}", lineage.base_tags.join(" "))
                }
            )),
            None => line("  base        none known".to_string()),
        }
    }
    line(format!("  layers ({})", image.layers.len()));
    for layer in &image.layers {
        line(format!(
            "    {}  {:>10}  {}",
            layer.digest,
            layer.size,
            escape(&layer.media_type)
        ));
    }
    crate::cmd::print_text(&out);
}
