//! Manifests, indexes and image configs as registries serve them, and platform selection.
//!
//! Parsing is tolerant the way the OCI spec asks: unknown fields are ignored and a missing
//! `mediaType` field is taken from the response's `Content-Type` (umoci omits it). Docker schema 1
//! is recognised only to be refused with a clear error.

use std::collections::BTreeMap;

use berth_core::Digest;
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The Accept header for manifest requests: every kind berth reads, images and indexes alike.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// Attestations and other non-runnable entries of an index (BuildKit writes them as
    /// `unknown/unknown` with a `vnd.docker.reference.type` annotation).
    pub fn is_attestation(&self) -> bool {
        self.annotations.contains_key("vnd.docker.reference.type")
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

/// An OS/architecture/variant triple (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant,
            os_version: None,
        })
    }

    /// The platform this binary runs on, in OCI's spelling.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: None,
            os_version: None,
        }
    }

    /// Whether an index entry with platform `self` satisfies a request for `wanted`.
    /// A wanted variant must match; `arm64` without variant means `v8`, as containerd reads it.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        let normal = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            (_, variant) => variant.map(str::to_string),
        };
        match normal(wanted) {
            None => true,
            Some(variant) => normal(self).as_deref() == Some(variant.as_str()),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A multi-platform index (OCI image index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// The entry for `wanted`, skipping attestations. The first match wins, as in containerd.
    pub fn select(&self, wanted: &Platform) -> Option<&Descriptor> {
        self.runnable().find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|platform| platform.satisfies(wanted))
        })
    }

    /// The entries that are images to run (not attestations).
    pub fn runnable(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests
            .iter()
            .filter(|entry| !entry.is_attestation())
    }
}

/// What a manifest request returned, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// The parts of an image config berth reads. Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
}

/// The `config` section: how the image runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `{"80/tcp": {}}`: only the keys matter.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_empty_set"
    )]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
}

/// The `rootfs` section: the uncompressed layer digests (diff_ids), the basis of lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

fn null_as_empty_set<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    Ok(Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Why manifest bytes could not be read as a manifest berth supports.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseFailure {
    Unsupported(String),
    Invalid(String),
}

/// Decides the media type (the document's own field, else the `Content-Type`, else the shape)
/// and parses the document.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<(String, ManifestKind), ParseFailure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|error| ParseFailure::Invalid(format!("manifest is not JSON: {error}")))?;
    if probe.schema_version == Some(1) {
        return Err(ParseFailure::Unsupported("schemaVersion 1".to_string()));
    }
    let content_type = content_type
        .map(|value| value.split(';').next().unwrap_or("").trim())
        .filter(|value| !value.is_empty() && *value != "application/json");
    let media_type = match (probe.media_type, content_type) {
        (Some(own), _) => own,
        (None, Some(header)) => header.to_string(),
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if probe.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err(ParseFailure::Invalid("no media type".to_string())),
    };
    let invalid =
        |error: serde_json::Error| ParseFailure::Invalid(format!("{media_type}: {error}"));
    let kind = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            ManifestKind::Index(serde_json::from_slice(bytes).map_err(invalid)?)
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            ManifestKind::Image(serde_json::from_slice(bytes).map_err(invalid)?)
        }
        other => return Err(ParseFailure::Unsupported(other.to_string())),
    };
    Ok((media_type, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index() -> ImageIndex {
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"digest":"{D3}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
              {{"digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}},"future":1}}
            ]}}"#
        );
        match parse_manifest(text.as_bytes(), None).unwrap() {
            (media_type, ManifestKind::Index(index)) => {
                assert_eq!(media_type, OCI_INDEX);
                index
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selects_platforms_and_skips_attestations() {
        let index = index();
        let pick = |p: &str| {
            index
                .select(&Platform::parse(p).unwrap())
                .map(|d| d.digest.to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some(D1));
        assert_eq!(pick("linux/arm64").as_deref(), Some(D2));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some(D2));
        assert_eq!(pick("linux/arm64/v9"), None);
        assert_eq!(pick("unknown/unknown"), None);
        assert_eq!(index.runnable().count(), 2);
    }

    #[test]
    fn media_type_from_field_then_header_then_shape() {
        let manifest =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":2}},"layers":[]}}"#);
        let (media_type, _) = parse_manifest(manifest.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(media_type, DOCKER_MANIFEST);
        let (media_type, _) =
            parse_manifest(manifest.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(media_type, OCI_MANIFEST);
        let with_field = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{D1}","size":2}}}}"#
        );
        let (media_type, _) = parse_manifest(with_field.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(media_type, OCI_MANIFEST);
    }

    #[test]
    fn refuses_schema1_and_unknown_types() {
        let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            parse_manifest(schema1, Some(DOCKER_SCHEMA1_SIGNED)),
            Err(ParseFailure::Unsupported("schemaVersion 1".to_string()))
        );
        let helm = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D1}","size":2}}}}"#);
        assert!(matches!(
            parse_manifest(helm.as_bytes(), Some("application/vnd.cncf.helm.chart.v1")),
            Err(ParseFailure::Unsupported(_))
        ));
        assert!(matches!(
            parse_manifest(b"nope", None),
            Err(ParseFailure::Invalid(_))
        ));
    }

    #[test]
    fn config_tolerates_nulls_and_unknown_fields() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Labels":null,"Entrypoint":["/bin/sh"]},
            "rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x"}]}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        assert!(config.config.labels.is_empty());
        assert_eq!(config.config.entrypoint, Some(vec!["/bin/sh".to_string()]));
    }
}
