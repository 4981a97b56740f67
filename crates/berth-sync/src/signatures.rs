//! A digest's cosign signatures and attestations as the registry holds them, read within bounds
//! and checked with berth-trust against trusted keys. Two places are read: cosign's tag scheme
//! (`sha256-<hex>.sig`, `sha256-<hex>.att` in the image's repository) and the OCI 1.1 referrers
//! tag schema (`sha256-<hex>`: an index whose entries are artifacts about the digest, what
//! registries without the referrers API hold). At most [`LAYERS_MAX`] layers per manifest and
//! [`REFERRERS_MAX`] distinct referrers per digest are read (a manifest or layer named twice is
//! read once), each layer at most
//! [`berth_trust::MAX_PAYLOAD_BYTES`] (digests verified by berth-oci).
//!
//! Reading ([`read_artifact`]) and verifying ([`verify`], pure) are apart: a sync stores what it
//! read, so a key the policy gains later is checked against the stored layers without asking
//! the registry again. Only what a trusted key verified counts; the rest is kept with why not.

use berth_core::provenance::{Signed, SignedKind, Tests};
use berth_core::{Digest, ImageRef, Tag};
use berth_oci::{Client, Descriptor, ManifestKind, OciError};
use berth_store::signatures::{SignatureCheck, SignatureLayer};
use berth_trust::{Predicate, TrustedKey};
use serde::Serialize;

/// cosign's simple signing layer, and the annotation carrying its signature.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A DSSE envelope layer (cosign's `.att` manifest, and in-toto referrers).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Sigstore bundles (cosign 3's form, as OCI 1.1 referrers): their DSSE envelope is verified
/// with the trusted keys; a cosign image signature (`https://sigstore.dev/cosign/sign/v1`)
/// counts as a signature, any other statement as an attestation.
pub use berth_trust::SIGSTORE_BUNDLE_PREFIX;
/// Layers read per signature or attestation manifest.
pub const LAYERS_MAX: usize = 16;
/// Referrers read per digest from its referrers tag index.
pub const REFERRERS_MAX: usize = 32;

/// Where a tag says artifacts about a digest are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactTag {
    /// `sha256-<hex>.sig`
    Signatures,
    /// `sha256-<hex>.att`
    Attestations,
    /// `sha256-<hex>`: the OCI 1.1 referrers tag schema.
    Referrers,
}

/// The digest a cosign or referrers tag is about, and which kind of tag it is.
pub fn artifact_tag(tag: &str) -> Option<(Digest, ArtifactTag)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, kind) = match rest.split_once('.') {
        Some((hex, "sig")) => (hex, ArtifactTag::Signatures),
        Some((hex, "att")) => (hex, ArtifactTag::Attestations),
        Some(_) => return None,
        None => (rest, ArtifactTag::Referrers),
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Digest::parse(&format!("sha256:{hex}"))
        .ok()
        .map(|digest| (digest, kind))
}

/// The cosign tag of `digest` with `suffix` (`sig`, `att`).
pub fn cosign_tag(digest: &Digest, suffix: &str) -> Option<Tag> {
    let hex = digest.as_str().strip_prefix("sha256:")?;
    Tag::parse(&format!("sha256-{hex}.{suffix}")).ok()
}

/// Reads the artifact manifest at `at` (a cosign tag or the referrers tag, by reference or
/// pinned by digest) into its layers. A missing manifest is `Ok(None)`.
pub async fn read_artifact(
    client: &Client,
    at: &ImageRef,
) -> Result<Option<Vec<SignatureLayer>>, OciError> {
    let manifest = match client.manifest(at).await {
        Ok(manifest) => manifest,
        Err(OciError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut layers = Vec::new();
    match manifest.kind {
        ManifestKind::Image(image) => read_layers(client, at, &image.layers, &mut layers).await?,
        ManifestKind::Index(index) => read_index(client, at, &index, &mut layers).await?,
    }
    Ok(Some(layers))
}

/// The referrers the OCI 1.1 referrers API lists for `digest` in `image`'s repository, read
/// like the referrers tag's index: `None` when the registry has no referrers API; else the
/// answer's SHA-256 (it changes as referrers are added) and the layers.
pub async fn read_referrers(
    client: &Client,
    image: &ImageRef,
    digest: &Digest,
) -> Result<Option<(Digest, Vec<SignatureLayer>)>, OciError> {
    let Some((answered, index)) = client.referrers(image, digest).await? else {
        return Ok(None);
    };
    let mut layers = Vec::new();
    let at = image.with_digest_only(digest.clone());
    read_index(client, &at, &index, &mut layers).await?;
    Ok(Some((answered, layers)))
}

/// The signature and attestation layers of an index's entries: at most [`REFERRERS_MAX`]
/// distinct ones, each read once.
async fn read_index(
    client: &Client,
    at: &ImageRef,
    index: &berth_oci::ImageIndex,
    layers: &mut Vec<SignatureLayer>,
) -> Result<(), OciError> {
    if index.manifests.len() > REFERRERS_MAX {
        tracing::warn!(image = %at, referrers = index.manifests.len(), "only the first {REFERRERS_MAX} referrers are read");
    }
    let mut seen = std::collections::HashSet::new();
    for entry in index
        .manifests
        .iter()
        .filter(|entry| seen.insert(entry.digest.clone()))
        .take(REFERRERS_MAX)
    {
        let child = at.with_digest_only(entry.digest.clone());
        let manifest = match client.manifest(&child).await {
            Ok(manifest) => manifest,
            Err(OciError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        if let ManifestKind::Image(image) = manifest.kind {
            read_layers(client, &child, &image.layers, layers).await?;
        }
    }
    Ok(())
}

async fn read_layers(
    client: &Client,
    at: &ImageRef,
    descriptors: &[Descriptor],
    layers: &mut Vec<SignatureLayer>,
) -> Result<(), OciError> {
    if descriptors.len() > LAYERS_MAX {
        tracing::warn!(image = %at, layers = descriptors.len(), "only the first {LAYERS_MAX} layers of a signature manifest are read");
    }
    for descriptor in descriptors.iter().take(LAYERS_MAX) {
        let signature = descriptor.annotations.get(SIGNATURE_ANNOTATION);
        // cosign adds a signer by repeating the payload's blob with another signature: the
        // layer is the blob and its signature together; the same pair named twice is read once.
        let key = match signature {
            Some(signature) => berth_oci::digest::ContentHasher::digest_of(
                berth_core::DigestAlgorithm::Sha256,
                format!("{} {signature}", descriptor.digest).as_bytes(),
            ),
            None => descriptor.digest.clone(),
        };
        if layers.iter().any(|layer| layer.layer == key) {
            continue;
        }
        let media_type = descriptor.media_type.as_str();
        let bundle = media_type.starts_with(SIGSTORE_BUNDLE_PREFIX);
        let kind = match media_type {
            SIMPLE_SIGNING_MEDIA_TYPE => SignedKind::Signature,
            DSSE_MEDIA_TYPE => SignedKind::Attestation,
            // Sorted below, once its statement's predicate type is read.
            _ if bundle => SignedKind::Attestation,
            _ => continue, // an SBOM, a config: not a signature
        };
        let mut layer = SignatureLayer {
            layer: key,
            blob: descriptor.digest.clone(),
            kind,
            media_type: descriptor.media_type.clone(),
            payload: None,
            signature: descriptor.annotations.get(SIGNATURE_ANNOTATION).cloned(),
            problem: None,
        };
        let what = if bundle { "bundle" } else { kind.as_str() };
        match client
            .blob_bytes(at, descriptor, berth_trust::MAX_PAYLOAD_BYTES as u64, what)
            .await
        {
            Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => {
                    if bundle
                        && berth_trust::bundle_predicate_type(text.as_bytes()).as_deref()
                            == Some(berth_trust::COSIGN_SIGN_V1)
                    {
                        layer.kind = SignedKind::Signature;
                    }
                    layer.payload = Some(text);
                }
                Err(_) => layer.problem = Some("the layer is not UTF-8 JSON".to_string()),
            },
            Err(error @ OciError::TooLarge { .. }) => layer.problem = Some(error.to_string()),
            Err(error) => return Err(error),
        }
        layers.push(layer);
    }
    Ok(())
}

/// What `key` makes of `layer` about `subject`, found in `repository` (`registry/path`, what a
/// simple signing payload names): the verified facts, or the refusal. Pure.
pub fn verify(
    layer: &SignatureLayer,
    key: &TrustedKey,
    subject: &Digest,
    repository: &str,
) -> SignatureCheck {
    let outcome = match (&layer.problem, &layer.payload) {
        (Some(problem), _) => Err(problem.clone()),
        (None, None) => Err("the layer was not read".to_string()),
        (None, Some(payload)) => verify_payload(layer, payload, key, subject, repository),
    };
    SignatureCheck {
        layer: layer.layer.clone(),
        key: key.fingerprint().to_string(),
        key_name: key.name().to_string(),
        outcome,
    }
}

fn verify_payload(
    layer: &SignatureLayer,
    payload: &str,
    key: &TrustedKey,
    subject: &Digest,
    repository: &str,
) -> Result<Signed, String> {
    let keys = std::slice::from_ref(key);
    let mut signed = Signed {
        kind: layer.kind,
        key: key.fingerprint().to_string(),
        key_name: key.name().to_string(),
        predicate_type: None,
        builder: None,
        source_repository: None,
        source_commit: None,
        tests: None,
        tests_url: None,
    };
    let bundle = layer.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX);
    match layer.kind {
        SignedKind::Signature if bundle => {
            let attestation =
                berth_trust::verify_bundle(payload.as_bytes(), keys, subject.as_str())
                    .map_err(|refusal| refusal.to_string())?;
            let claimed = &attestation.statement.predicate_type;
            if claimed != berth_trust::COSIGN_SIGN_V1 {
                return Err(format!(
                    "the bundle's statement is a {claimed}, not a cosign image signature"
                ));
            }
            signed.predicate_type = Some(claimed.clone());
        }
        SignedKind::Signature => {
            let signature = layer.signature.as_deref().unwrap_or_default();
            berth_trust::verify_simple_signing(
                payload.as_bytes(),
                signature,
                keys,
                subject.as_str(),
                repository,
            )
            .map_err(|refusal| refusal.to_string())?;
        }
        SignedKind::Attestation => {
            let attestation = if bundle {
                berth_trust::verify_bundle(payload.as_bytes(), keys, subject.as_str())
            } else {
                berth_trust::verify_attestation(payload.as_bytes(), keys, subject.as_str())
            }
            .map_err(|refusal| refusal.to_string())?;
            signed.predicate_type = Some(attestation.statement.predicate_type.clone());
            match &attestation.statement.predicate {
                Predicate::Provenance(provenance) => {
                    signed.builder = provenance.builder.clone();
                    signed.source_repository = provenance.source_repository.clone();
                    signed.source_commit = provenance.source_commit.clone();
                }
                Predicate::TestResult(result) => {
                    signed.tests = Some(if result.result.eq_ignore_ascii_case("PASSED") {
                        Tests::Passed
                    } else {
                        Tests::Failed
                    });
                    signed.tests_url = result.url.clone();
                }
                Predicate::Other(_) => {}
            }
        }
    }
    Ok(signed)
}

/// One signature or attestation layer, checked against a set of keys: what `berth provenance
/// --key` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// `signature` or `attestation`.
    pub kind: &'static str,
    /// The tag it was found at (`sha256-<hex>.sig`).
    pub tag: String,
    /// The layer's digest.
    pub layer: Digest,
    /// The trusted key that verified it; `None`: unverified (see `refusal`).
    pub verified_by: Option<String>,
    pub refusal: Option<String>,
    /// What a verified attestation says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<Tests>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests_url: Option<String>,
}

/// The signatures and attestations of `digest` in `image`'s repository (cosign tags and the
/// referrers tag), read now and each checked against `keys`: the first key that verifies a
/// layer is named, else the first key's refusal. A missing tag is no error; a registry
/// failure is.
pub async fn check(
    client: &Client,
    image: &ImageRef,
    digest: &Digest,
    keys: &[TrustedKey],
) -> Result<Vec<Checked>, OciError> {
    let repository = image.name();
    let hex = digest.as_str().strip_prefix("sha256:").unwrap_or_default();
    let mut checked = Vec::new();
    for tag in [
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
        format!("sha256-{hex}"),
    ] {
        let Ok(parsed) = Tag::parse(&tag) else {
            continue;
        };
        let Some(layers) = read_artifact(client, &image.with_tag(parsed)).await? else {
            continue;
        };
        for layer in layers {
            let checks: Vec<SignatureCheck> = keys
                .iter()
                .map(|key| verify(&layer, key, digest, &repository))
                .collect();
            let verified = checks.iter().find_map(|check| check.outcome.as_ref().ok());
            let refusal = match (verified, checks.first(), &layer.problem) {
                (Some(_), _, _) => None,
                (None, Some(check), _) => check.outcome.clone().err(),
                (None, None, Some(problem)) => Some(problem.clone()),
                (None, None, None) => Some("no trusted keys to verify against".to_string()),
            };
            checked.push(Checked {
                kind: layer.kind.as_str(),
                tag: tag.clone(),
                layer: layer.blob.clone(),
                verified_by: verified.map(|signed| signed.key_name.clone()),
                refusal,
                predicate_type: verified.and_then(|s| s.predicate_type.clone()),
                builder: verified.and_then(|s| s.builder.clone()),
                source_repository: verified.and_then(|s| s.source_repository.clone()),
                source_commit: verified.and_then(|s| s.source_commit.clone()),
                tests: verified.and_then(|s| s.tests),
                tests_url: verified.and_then(|s| s.tests_url.clone()),
            });
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_tags_name_their_digest() {
        let hex = "ab".repeat(32);
        let digest = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(
            artifact_tag(&format!("sha256-{hex}.sig")),
            Some((digest.clone(), ArtifactTag::Signatures))
        );
        assert_eq!(
            artifact_tag(&format!("sha256-{hex}.att")),
            Some((digest.clone(), ArtifactTag::Attestations))
        );
        assert_eq!(
            artifact_tag(&format!("sha256-{hex}")),
            Some((digest, ArtifactTag::Referrers))
        );
        for other in [
            "latest".to_string(),
            format!("sha256-{hex}.sbom"),
            format!("sha256-{}", &hex[..63]),
            format!("sha256-{}", hex.to_uppercase()),
            format!("sha512-{hex}"),
        ] {
            assert_eq!(artifact_tag(&other), None, "{other}");
        }
    }
}
