//! Sigstore bundles wrapping the openssl-signed DSSE fixtures, as cosign 3 writes them: a
//! keyed bundle verifies like its envelope; another key, a keyless bundle, a message
//! signature, another media type and a tampered envelope are refused, each saying why.

use berth_trust::{
    Predicate, Refusal, SLSA_PROVENANCE_V1, TrustedKey, bundle_predicate_type, verify_bundle,
};
use serde_json::{Value, json};

const IMAGE: &str = "sha256:2f1d9d8e6a4b3c5e7f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7";
const OTHER_IMAGE: &str = "sha256:9b7c2a1f0e3d4c5b6a79880716253443526170819fae0bdc1e2f3a4b5c6d7e8f";
const V1: &[u8] = include_bytes!("fixtures/provenance-v1.p256.dsse.json");

fn p256() -> TrustedKey {
    TrustedKey::from_pem("release", include_str!("fixtures/p256.pub.pem")).unwrap()
}

fn other() -> TrustedKey {
    TrustedKey::from_pem("backup", include_str!("fixtures/other-p256.pub.pem")).unwrap()
}

/// A v0.3 bundle around the fixture envelope, with `material` as its verification material.
fn bundle(material: Value) -> Vec<u8> {
    let envelope: Value = serde_json::from_slice(V1).unwrap();
    serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "dsseEnvelope": envelope,
    }))
    .unwrap()
}

#[test]
fn a_keyed_bundle_verifies_like_its_envelope() {
    let keyed = bundle(json!({"publicKey": {"hint": "release"}, "tlogEntries": []}));
    let attestation = verify_bundle(&keyed, &[other(), p256()], IMAGE).unwrap();
    assert_eq!(attestation.key, "release");
    assert_eq!(attestation.statement.predicate_type, SLSA_PROVENANCE_V1);
    assert!(matches!(
        attestation.statement.predicate,
        Predicate::Provenance(_)
    ));
    assert_eq!(
        bundle_predicate_type(&keyed).as_deref(),
        Some(SLSA_PROVENANCE_V1)
    );
    assert_eq!(
        verify_bundle(&keyed, &[p256()], OTHER_IMAGE).unwrap_err(),
        Refusal::SubjectNotCovered {
            image_digest: OTHER_IMAGE.to_owned()
        }
    );
    assert!(matches!(
        verify_bundle(&keyed, &[other()], IMAGE).unwrap_err(),
        Refusal::NotSignedByTrustedKey { .. }
    ));
}

#[test]
fn a_keyless_bundle_no_trusted_key_signed_says_so() {
    let keyless = bundle(json!({"certificate": {"rawBytes": "MIIB"}, "tlogEntries": []}));
    assert_eq!(
        verify_bundle(&keyless, &[other()], IMAGE).unwrap_err(),
        Refusal::Keyless
    );
    // The key decides, not the material: a trusted key's signature still counts.
    assert_eq!(
        verify_bundle(&keyless, &[p256()], IMAGE).unwrap().key,
        "release"
    );
}

#[test]
fn what_is_no_keyed_statement_bundle_is_refused() {
    let refusal =
        |value: Value| verify_bundle(&serde_json::to_vec(&value).unwrap(), &[p256()], IMAGE);
    assert!(matches!(
        refusal(json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"}, "signature": "AAAA"}
        })),
        Err(Refusal::NotBundle(problem)) if problem.contains("message signature")
    ));
    assert!(matches!(
        refusal(json!({"mediaType": "application/json", "dsseEnvelope": {}})),
        Err(Refusal::NotBundle(problem)) if problem.contains("not a Sigstore bundle")
    ));
    assert!(matches!(
        refusal(json!({"dsseEnvelope": {}})),
        Err(Refusal::NotBundle(problem)) if problem.contains("mediaType is missing")
    ));
    assert!(matches!(
        refusal(json!({"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2"})),
        Err(Refusal::NotBundle(problem)) if problem.contains("neither")
    ));
    // A payload changed after signing.
    let mut tampered: Value = serde_json::from_slice(&bundle(json!({}))).unwrap();
    tampered["dsseEnvelope"]["payload"] = json!("eyJfdHlwZSI6ICJ4In0=");
    assert!(matches!(
        refusal(tampered),
        Err(Refusal::NotSignedByTrustedKey { .. })
    ));
    assert_eq!(bundle_predicate_type(b"not json"), None);
}
