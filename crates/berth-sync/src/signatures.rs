//! A digest's cosign signatures and attestations, as the registry holds them under cosign's
//! tag scheme (`sha256-<hex>.sig`, `sha256-<hex>.att` in the image's repository), fetched
//! within bounds (at most [`LAYERS_MAX`] layers of at most [`berth_trust::MAX_PAYLOAD_BYTES`]
//! each, digests verified by berth-oci) and checked with berth-trust against trusted keys.
//! Only what a trusted key verified counts; everything else is reported with why not.
//! OCI 1.1 referrers are not read yet.

use berth_core::{Digest, ImageRef, Tag};
use berth_oci::{Client, ManifestKind, OciError};
use berth_trust::{Predicate, TrustedKey};
use serde::Serialize;

/// cosign's simple signing layer, and the annotation carrying its signature.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A DSSE envelope layer of cosign's `.att` manifest.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layers read per signature or attestation manifest.
pub const LAYERS_MAX: usize = 16;

/// One signature or attestation layer, checked.
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
    /// An attestation's predicate type, when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// What a verified SLSA provenance or test-result statement says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests_url: Option<String>,
}

impl Checked {
    fn new(kind: &'static str, tag: &str, layer: &Digest) -> Checked {
        Checked {
            kind,
            tag: tag.to_string(),
            layer: layer.clone(),
            verified_by: None,
            refusal: None,
            predicate_type: None,
            builder: None,
            source_repository: None,
            source_commit: None,
            tests: None,
            tests_url: None,
        }
    }
}

/// The cosign tag of `digest` with `suffix` (`sig`, `att`).
pub fn cosign_tag(digest: &Digest, suffix: &str) -> Option<Tag> {
    let hex = digest.as_str().strip_prefix("sha256:")?;
    Tag::parse(&format!("sha256-{hex}.{suffix}")).ok()
}

/// The signatures and attestations of `digest` in `image`'s repository, each checked against
/// `keys`. A missing `.sig` or `.att` tag is no error (nothing there); a registry failure is.
pub async fn check(
    client: &Client,
    image: &ImageRef,
    digest: &Digest,
    keys: &[TrustedKey],
) -> Result<Vec<Checked>, OciError> {
    let repository = image.name();
    let mut checked = Vec::new();
    for (suffix, kind) in [("sig", "signature"), ("att", "attestation")] {
        let Some(tag) = cosign_tag(digest, suffix) else {
            continue;
        };
        let at = image.with_tag(tag.clone());
        let manifest = match client.manifest(&at).await {
            Ok(manifest) => manifest,
            Err(OciError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let ManifestKind::Image(manifest) = manifest.kind else {
            continue;
        };
        for layer in manifest.layers.iter().take(LAYERS_MAX) {
            let mut found = Checked::new(kind, tag.as_str(), &layer.digest);
            let bytes = match client
                .blob_bytes(&at, layer, berth_trust::MAX_PAYLOAD_BYTES as u64, kind)
                .await
            {
                Ok(bytes) => bytes,
                Err(error @ OciError::TooLarge { .. }) => {
                    found.refusal = Some(error.to_string());
                    checked.push(found);
                    continue;
                }
                Err(error) => return Err(error),
            };
            match (kind, layer.media_type.as_str()) {
                ("signature", SIMPLE_SIGNING_MEDIA_TYPE) => {
                    let signature = layer
                        .annotations
                        .get(SIGNATURE_ANNOTATION)
                        .map(String::as_str)
                        .unwrap_or_default();
                    match berth_trust::verify_simple_signing(
                        &bytes,
                        signature,
                        keys,
                        digest.as_str(),
                        &repository,
                    ) {
                        Ok(verified) => found.verified_by = Some(verified.key),
                        Err(refusal) => found.refusal = Some(refusal.to_string()),
                    }
                }
                ("attestation", DSSE_MEDIA_TYPE) => {
                    match berth_trust::verify_attestation(&bytes, keys, digest.as_str()) {
                        Ok(attestation) => {
                            found.verified_by = Some(attestation.key);
                            found.predicate_type =
                                Some(attestation.statement.predicate_type.clone());
                            match &attestation.statement.predicate {
                                Predicate::Provenance(provenance) => {
                                    found.builder = provenance.builder.clone();
                                    found.source_repository = provenance.source_repository.clone();
                                    found.source_commit = provenance.source_commit.clone();
                                }
                                Predicate::TestResult(result) => {
                                    found.tests = Some(result.result.clone());
                                    found.tests_url = result.url.clone();
                                }
                                Predicate::Other(_) => {}
                            }
                        }
                        Err(refusal) => found.refusal = Some(refusal.to_string()),
                    }
                }
                (_, media_type) => {
                    found.refusal =
                        Some(format!("a layer of media type {media_type:?} is not read"));
                }
            }
            checked.push(found);
        }
        if manifest.layers.len() > LAYERS_MAX {
            tracing::warn!(image = %at, layers = manifest.layers.len(), "only the first {LAYERS_MAX} layers of a signature manifest are read");
        }
    }
    Ok(checked)
}
