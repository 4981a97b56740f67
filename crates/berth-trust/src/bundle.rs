//! Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.N+json`), the form cosign 3 writes
//! an image's signatures and attestations in, attached as OCI 1.1 referrers: the DSSE envelope
//! inside is verified with a trusted key, offline, exactly as a bare envelope is. What a bundle
//! adds for keyless signing (a Fulcio certificate, transparency-log entries, timestamps) is not
//! verified here: a bundle counts only when a trusted key signed its envelope.

use serde_json::Value;

use crate::dsse::{Attestation, decode, verify_attestation};
use crate::{Refusal, TrustedKey, json};

/// What every Sigstore bundle's media type starts with (v0.1 to v0.3 so far).
pub const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The predicate type of a cosign 3 image signature: an in-toto statement whose subject is
/// the signed manifest's digest, with an empty predicate.
pub const COSIGN_SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

/// Verifies a Sigstore bundle's DSSE envelope with `keys` and requires its in-toto statement
/// to cover `image_digest`. A message-signature bundle (`cosign sign-blob`) signs a blob, not
/// a statement about an image, and is refused; so is a keyless bundle no trusted key signed,
/// saying so.
pub fn verify_bundle(
    bundle: &[u8],
    keys: &[TrustedKey],
    image_digest: &str,
) -> Result<Attestation, Refusal> {
    let document = json::parse(bundle, "bundle")?;
    let not_bundle = |problem: &str| Refusal::NotBundle(problem.to_owned());
    let top = document
        .as_object()
        .ok_or_else(|| not_bundle("not a JSON object"))?;
    match top.get("mediaType") {
        Some(Value::String(media_type)) if media_type.starts_with(SIGSTORE_BUNDLE_PREFIX) => {}
        Some(Value::String(media_type)) => {
            return Err(not_bundle(&format!(
                "its mediaType {media_type:?} is not a Sigstore bundle's"
            )));
        }
        _ => return Err(not_bundle("mediaType is missing")),
    }
    let envelope = match (top.get("dsseEnvelope"), top.get("messageSignature")) {
        (Some(envelope @ Value::Object(_)), _) => envelope,
        (Some(_), _) => return Err(not_bundle("dsseEnvelope is not an object")),
        (None, Some(_)) => {
            return Err(not_bundle(
                "it holds a message signature (cosign sign-blob), which signs a blob, not a \
                 statement about an image",
            ));
        }
        (None, None) => {
            return Err(not_bundle(
                "it has neither dsseEnvelope nor messageSignature",
            ));
        }
    };
    let bytes = serde_json::to_vec(envelope).map_err(|error| not_bundle(&error.to_string()))?;
    verify_attestation(&bytes, keys, image_digest).map_err(|refusal| {
        let keyless = ["certificate", "x509CertificateChain"]
            .iter()
            .any(|field| json::get(&document, &["verificationMaterial", field]).is_some());
        match refusal {
            Refusal::NotSignedByTrustedKey { .. } | Refusal::SignatureMalformed { .. }
                if keyless =>
            {
                Refusal::Keyless
            }
            other => other,
        }
    })
}

/// The predicate type a bundle's statement claims, read without verifying anything: what
/// sorts a bundle into signature or attestation before any key has looked at it.
pub fn bundle_predicate_type(bundle: &[u8]) -> Option<String> {
    let document = json::parse(bundle, "bundle").ok()?;
    let payload = decode(&json::string(&document, &["dsseEnvelope", "payload"])?)?;
    let statement = json::parse(&payload, "statement").ok()?;
    json::string(&statement, &["predicateType"])
}
