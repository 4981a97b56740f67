//! cosign "simple signing": a signature over a JSON payload naming an image digest and repository.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::{MAX_PAYLOAD_BYTES, MAX_SIGNATURE_BASE64, Refusal, TrustedKey, json, verify_with_keys};

/// `critical.type` of a cosign container image signature.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// A simple-signing signature that verified, for the image and repository asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The name of the trusted key that verified the signature.
    pub key: String,
    /// That key's fingerprint (`sha256:…` of its SubjectPublicKeyInfo).
    pub key_fingerprint: String,
    /// `critical.identity.docker-reference` as signed (may carry a tag or digest).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest` as signed (equal to the digest asked about).
    pub image_digest: String,
    /// The signer's `optional` claims; empty when absent or null. Signed, but not checked.
    pub optional: Map<String, Value>,
}

/// Verifies a cosign simple-signing signature.
///
/// `payload` is the signed blob (the `.sig` manifest's layer), `signature_base64` its
/// `dev.cosignproject.cosign/signature` annotation. The signature is checked against each key
/// over the exact payload bytes first; only a verified payload is parsed, and then its signed
/// digest must be `image_digest` and its docker-reference's repository `repository` (tags and
/// digests on the reference are ignored, Docker Hub names normalized: `library/x`, `x` and
/// `docker.io/library/x` are one repository).
///
/// A digest suffix on `docker-reference` is not compared; `critical.image` is what is signed for.
pub fn verify_simple_signing(
    payload: &[u8],
    signature_base64: &str,
    keys: &[TrustedKey],
    image_digest: &str,
    repository: &str,
) -> Result<Verified, Refusal> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Refusal::TooLarge {
            what: "payload",
            size: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let signature_text = signature_base64.trim();
    if signature_text.len() > MAX_SIGNATURE_BASE64 {
        return Err(Refusal::TooLarge {
            what: "signature",
            size: signature_text.len(),
            limit: MAX_SIGNATURE_BASE64,
        });
    }
    let signature = STANDARD
        .decode(signature_text)
        .map_err(|_| Refusal::SignatureNotBase64)?;
    let key = verify_with_keys(keys, payload, &signature)?;

    let document = json::parse(payload, "payload")?;
    let top = document
        .as_object()
        .ok_or_else(|| not_simple("the payload is not a JSON object"))?;
    let critical = object(top, "critical", "critical")?;
    let kind = string(critical, "type", "critical.type")?;
    if kind != SIMPLE_SIGNING_TYPE {
        return Err(not_simple(&format!(
            "critical.type is {kind:?}, not {SIMPLE_SIGNING_TYPE:?}"
        )));
    }
    let image = object(critical, "image", "critical.image")?;
    let signed_digest = string(
        image,
        "docker-manifest-digest",
        "critical.image.docker-manifest-digest",
    )?;
    let identity = object(critical, "identity", "critical.identity")?;
    let docker_reference = string(
        identity,
        "docker-reference",
        "critical.identity.docker-reference",
    )?;
    let optional = match field(top, "optional", "optional")? {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(optional)) => optional.clone(),
        Some(_) => return Err(not_simple("optional is not an object")),
    };

    if signed_digest != image_digest {
        return Err(Refusal::OtherDigest {
            signed: signed_digest.to_owned(),
            expected: image_digest.to_owned(),
        });
    }
    let signed_repository = normalize_repository(repository_of(docker_reference));
    if signed_repository != normalize_repository(repository_of(repository)) {
        return Err(Refusal::OtherRepository {
            signed: docker_reference.to_owned(),
            expected: repository.to_owned(),
        });
    }
    Ok(Verified {
        key: key.name().to_owned(),
        key_fingerprint: key.fingerprint().to_owned(),
        docker_reference: docker_reference.to_owned(),
        image_digest: signed_digest.to_owned(),
        optional,
    })
}

/// The repository part of an image reference: without `@digest` and without `:tag` (a colon
/// before the last `/` is a registry port, not a tag).
pub fn repository_of(reference: &str) -> &str {
    let without_digest = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

/// Docker's normalization of a repository name: a first component without `.` or `:` (and not
/// `localhost`) is a Docker Hub path, and a one-component Docker Hub path is under `library/`.
fn normalize_repository(repository: &str) -> String {
    let (domain, path) = match repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => ("docker.io", repository),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    if domain == "docker.io" && !path.contains('/') {
        format!("docker.io/library/{path}")
    } else {
        format!("{domain}/{path}")
    }
}

fn not_simple(problem: &str) -> Refusal {
    Refusal::NotSimpleSigning(problem.to_owned())
}

/// The value under `name`, matched as Go's encoding/json (and so cosign) matches keys: ignoring
/// ASCII case. Two keys that match are refused rather than one chosen.
fn field<'v>(
    object: &'v Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<&'v Value>, Refusal> {
    let mut matches = object
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name));
    let found = matches.next().map(|(_, value)| value);
    if matches.next().is_some() {
        return Err(not_simple(&format!(
            "{path} appears twice (keys differing only in case)"
        )));
    }
    Ok(found)
}

fn object<'v>(
    parent: &'v Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'v Map<String, Value>, Refusal> {
    match field(parent, name, path)? {
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(not_simple(&format!("{path} is not an object"))),
        None => Err(not_simple(&format!("{path} is missing"))),
    }
}

fn string<'v>(parent: &'v Map<String, Value>, name: &str, path: &str) -> Result<&'v str, Refusal> {
    match field(parent, name, path)? {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(not_simple(&format!("{path} is not a string"))),
        None => Err(not_simple(&format!("{path} is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_strips_tags_and_digests_not_ports() {
        assert_eq!(
            repository_of("registry.example.com/app:v1"),
            "registry.example.com/app"
        );
        assert_eq!(
            repository_of("registry.example.com:5000/app@sha256:abc"),
            "registry.example.com:5000/app"
        );
        assert_eq!(
            repository_of("registry.example.com:5000/app:v1@sha256:abc"),
            "registry.example.com:5000/app"
        );
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository_of("ubuntu"), "ubuntu");
    }

    #[test]
    fn docker_hub_names_normalize() {
        let hub = "docker.io/library/ubuntu";
        assert_eq!(normalize_repository("ubuntu"), hub);
        assert_eq!(normalize_repository("library/ubuntu"), hub);
        assert_eq!(normalize_repository("docker.io/library/ubuntu"), hub);
        assert_eq!(normalize_repository("index.docker.io/library/ubuntu"), hub);
        assert_eq!(normalize_repository("docker.io/ubuntu"), hub);
        assert_eq!(normalize_repository("someone/app"), "docker.io/someone/app");
        assert_eq!(
            normalize_repository("ghcr.io/someone/app"),
            "ghcr.io/someone/app"
        );
        assert_eq!(normalize_repository("localhost/app"), "localhost/app");
        assert_ne!(normalize_repository("ghcr.io/library/ubuntu"), hub);
    }
}
