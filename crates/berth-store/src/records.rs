//! The types the store takes and returns for registry knowledge, and the checks that turn a
//! column's text back into a validated value.

use std::collections::BTreeMap;
use std::fmt;

use berth_core::lineage::{BaseMatch, LineageMethod};
use berth_core::osrelease::{LibcFamily, OsIdentity};
use berth_core::{Digest, ImageRef, RefError, Tag, reference::Reference};
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A repository in a registry, normalized as image references are (`docker.io/library/ubuntu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    registry: String,
    repository: String,
}

impl RepositoryName {
    /// A repository from a registry host and a path, as a registry names them.
    pub fn new(registry: &str, repository: &str) -> Result<RepositoryName, RefError> {
        // Without this check `from_parts` would read a dotless host as a path component.
        if !(registry.contains(['.', ':']) || registry == "localhost") {
            return Err(RefError::Invalid {
                input: format!("{registry}/{repository}"),
                reason: "registry host must contain '.' or ':' or be localhost",
            });
        }
        let latest = Tag::parse("latest")?;
        let image = ImageRef::from_parts(registry, repository, Reference::Tag(latest))?;
        Ok(RepositoryName::of(&image))
    }

    /// `registry/path` as people type it (`ubuntu`, `ghcr.io/org/app`); no tag, no digest.
    pub fn parse(text: &str) -> Result<RepositoryName, RefError> {
        let last_component = text.rsplit('/').next().unwrap_or(text);
        if text.contains('@') || last_component.contains(':') {
            return Err(RefError::Invalid {
                input: text.to_string(),
                reason: "a repository name has no tag or digest",
            });
        }
        Ok(RepositoryName::of(&ImageRef::parse(text)?))
    }

    /// The repository an image reference lives in.
    pub fn of(image: &ImageRef) -> RepositoryName {
        RepositoryName {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// An OCI platform: what an index entry is for, or what an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    /// From the `mediaType` field or, when absent (umoci), the `Content-Type` header.
    pub media_type: String,
    /// The bytes, unchanged: a promotion PUTs them elsewhere and must keep the digest.
    pub raw: Vec<u8>,
    pub kind: ManifestKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// A per-platform image manifest; its facts are an [`ImageRecord`].
    Image,
    /// An index (or Docker manifest list) and its entries, in order.
    Index(Vec<IndexEntry>),
}

/// One entry of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub child: Digest,
    pub media_type: String,
    /// Absent when the entry says none.
    pub platform: Option<Platform>,
    /// An attestation or signature manifest (`vnd.docker.reference.type`), not a runnable image.
    pub is_attestation: bool,
}

/// Facts about one per-platform image, read from its manifest, config and layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// The digest of the image manifest (the row's key).
    pub digest: Digest,
    pub config_digest: Digest,
    /// The config's `created`; images built reproducibly may have none or the epoch.
    pub created: Option<DateTime<Utc>>,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations (`org.opencontainers.image.*` among them).
    pub annotations: BTreeMap<String, String>,
    /// Config plus compressed layers, as a pull would download.
    pub total_size: u64,
    /// OS identity from os-release (`debian-12-amd64`), when the layer reader found one.
    pub os_id: Option<OsIdentity>,
    /// os-release's `PRETTY_NAME`, for people.
    pub os_pretty: Option<String>,
    /// When the layer reader got far enough to decide it.
    pub libc: Option<LibcFamily>,
    /// The layer chain, base first.
    pub layers: Vec<LayerRecord>,
}

/// What an image config says that berth records, read back from an image already stored
/// with that config: a config is content-addressed, so a new manifest sharing it needs no fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFacts {
    pub created: Option<DateTime<Utc>>,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    /// `rootfs.diff_ids`, base first.
    pub diff_ids: Vec<Digest>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// The compressed blob's digest (what the registry stores).
    pub digest: Digest,
    /// The uncompressed content's digest from the config: stable across recompression, so
    /// lineage compares these.
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

/// What the layer reader found in one layer (an opaque JSON summary), cached by layer digest so
/// a layer shared by many images is read once.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerFact {
    pub layer: Digest,
    pub summary: serde_json::Value,
}

/// Everything one successful sync of a repository learned: recorded in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoSnapshot {
    /// Every tag the registry listed, with the digest it resolves to. A tag known before and
    /// missing here is marked gone.
    pub tags: Vec<(Tag, Digest)>,
    /// The registry's tag listing was cut at the cap: tags past it kept what was known, and
    /// the repository's knowledge is partial (retention deletes nothing there).
    pub truncated: bool,
    /// Manifests fetched in this sync (known ones may be left out: they never change). Every
    /// tag's digest must be here or already in the store.
    pub manifests: Vec<ManifestRecord>,
    /// Facts of the image manifests among them; each image's manifest must be here or already
    /// in the store.
    pub images: Vec<ImageRecord>,
    pub layer_facts: Vec<LayerFact>,
}

/// What a recorded sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub manifests_added: u64,
    pub tags_added: u64,
    pub tags_moved: u64,
    /// Tags that had been gone and came back.
    pub tags_returned: u64,
    pub tags_gone: u64,
}

/// A tag and its history in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub tag: Tag,
    pub digest: Digest,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Since when the tag has pointed at `digest`.
    pub digest_since: DateTime<Utc>,
    /// When a sync first missed the tag; `None` while the registry lists it.
    pub gone_at: Option<DateTime<Utc>>,
}

/// How syncs of a registry or repository went. Knowledge stays when they fail: these fields
/// say how old it is and why it is not newer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub last_sync_ok_at: Option<DateTime<Utc>>,
    pub last_sync_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryStatus {
    pub repository: RepositoryName,
    pub sync: SyncStatus,
    pub registry: SyncStatus,
    pub live_tags: u64,
    pub gone_tags: u64,
    /// Since when its syncs fail: the first failure after its last success (`None` when its
    /// last sync succeeded).
    pub failing_since: Option<DateTime<Utc>>,
}

/// An image's layer chain, base first, for building the lineage index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChain {
    pub image: Digest,
    pub layers: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
}

/// What `Store::images` selects; every field narrows, `Default` selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// Images reachable from the repository's live tags (directly or through an index).
    pub repository: Option<RepositoryName>,
    /// An OS identity or a prefix of it at a `-` boundary: `debian`, `debian-12`, `debian-12-amd64`.
    pub os: Option<String>,
    /// Images built on this digest, directly or through intermediate bases. An index digest
    /// stands for its platform manifests.
    pub built_on: Option<Digest>,
    /// Only this image (a point lookup).
    pub digest: Option<Digest>,
    /// A page: at most `limit` images after skipping `offset`, in the listing's order.
    pub limit: Option<u32>,
    pub offset: u32,
}

/// An image as the store knows it, with where it is tagged.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSummary {
    pub digest: Digest,
    pub config_digest: Digest,
    pub created: Option<DateTime<Utc>>,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub total_size: u64,
    pub os_id: Option<OsIdentity>,
    pub os_pretty: Option<String>,
    pub libc: Option<LibcFamily>,
    /// The lineage edge, once lineage has run (`Store::set_base`).
    pub base: Option<BaseMatch>,
    /// Live tags that resolve to this image.
    pub references: Vec<ImageLocation>,
}

/// A live tag that resolves to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    pub repository: RepositoryName,
    pub tag: Tag,
    /// The index the tag points at, when the image is one of its entries.
    pub index: Option<Digest>,
}

pub(crate) fn digest_from(column: &'static str, text: String) -> Result<Digest, StoreError> {
    Digest::parse(&text).map_err(|_| StoreError::Corrupt {
        column,
        value: text,
    })
}

pub(crate) fn optional_digest_from(
    column: &'static str,
    text: Option<String>,
) -> Result<Option<Digest>, StoreError> {
    text.map(|text| digest_from(column, text)).transpose()
}

pub(crate) fn tag_from(text: String) -> Result<Tag, StoreError> {
    Tag::parse(&text).map_err(|_| StoreError::Corrupt {
        column: "tags.tag",
        value: text,
    })
}

pub(crate) fn repository_from(
    registry: String,
    repository: String,
) -> Result<RepositoryName, StoreError> {
    RepositoryName::new(&registry, &repository)
        .ok()
        .filter(|name| name.registry == registry && name.repository == repository)
        .ok_or_else(|| StoreError::Corrupt {
            column: "repository",
            value: format!("{registry}/{repository}"),
        })
}

/// Lineage methods as stored. Exhaustive on purpose: a method added in core must be given
/// its column text here.
pub(crate) fn lineage_method_text(method: LineageMethod) -> &'static str {
    match method {
        LineageMethod::LayerPrefix => "layer-prefix",
    }
}

pub(crate) fn lineage_method_from(text: String) -> Result<LineageMethod, StoreError> {
    match text.as_str() {
        "layer-prefix" => Ok(LineageMethod::LayerPrefix),
        _ => Err(StoreError::Corrupt {
            column: "images.base_method",
            value: text,
        }),
    }
}

pub(crate) fn libc_text(libc: LibcFamily) -> &'static str {
    match libc {
        LibcFamily::Glibc => "glibc",
        LibcFamily::Musl => "musl",
        LibcFamily::Unknown => "unknown",
    }
}

pub(crate) fn libc_from(text: String) -> Result<LibcFamily, StoreError> {
    match text.as_str() {
        "glibc" => Ok(LibcFamily::Glibc),
        "musl" => Ok(LibcFamily::Musl),
        "unknown" => Ok(LibcFamily::Unknown),
        _ => Err(StoreError::Corrupt {
            column: "images.libc",
            value: text,
        }),
    }
}

pub(crate) fn unsigned_from(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

pub(crate) fn signed(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field })
}

/// A platform from nullable columns: present only when both os and architecture are.
pub(crate) fn platform_from(
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
) -> Option<Platform> {
    Some(Platform {
        os: os?,
        architecture: architecture?,
        variant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_normalize_like_references() {
        let cases = [
            ("ubuntu", Ok("docker.io/library/ubuntu")),
            (
                "index.docker.io/library/ubuntu",
                Ok("docker.io/library/ubuntu"),
            ),
            ("ghcr.io/org/app", Ok("ghcr.io/org/app")),
            ("127.0.0.1:5000/berth/base", Ok("127.0.0.1:5000/berth/base")),
            ("ubuntu:22.04", Err(())),
            ("127.0.0.1:5000/base@sha256:abc", Err(())),
            ("Ubuntu", Err(())),
        ];
        for (input, expected) in cases {
            let got = RepositoryName::parse(input)
                .map(|name| name.to_string())
                .map_err(|_| ());
            assert_eq!(got, expected.map(str::to_string), "{input}");
        }
        assert_eq!(
            RepositoryName::new("docker.io", "ubuntu")
                .unwrap()
                .to_string(),
            "docker.io/library/ubuntu"
        );
        assert!(RepositoryName::new("myhost", "app").is_err());
    }
}
