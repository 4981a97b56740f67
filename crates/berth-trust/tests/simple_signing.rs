//! cosign simple-signing signatures made by openssl, verified and refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use berth_trust::{MAX_PAYLOAD_BYTES, Refusal, TrustedKey, verify_simple_signing};

const IMAGE: &str = "sha256:2f1d9d8e6a4b3c5e7f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7";
const OTHER_IMAGE: &str = "sha256:9b7c2a1f0e3d4c5b6a79880716253443526170819fae0bdc1e2f3a4b5c6d7e8f";
const REPOSITORY: &str = "registry.example.com/platform/app";

const PAYLOAD: &[u8] = include_bytes!("fixtures/simple-signing.json");
const P256_SIG: &str = include_str!("fixtures/simple-signing.p256.sig");
const ED25519_SIG: &str = include_str!("fixtures/simple-signing.ed25519.sig");

fn p256() -> TrustedKey {
    TrustedKey::from_pem("release", include_str!("fixtures/p256.pub.pem")).unwrap()
}

fn ed25519() -> TrustedKey {
    TrustedKey::from_pem("ci", include_str!("fixtures/ed25519.pub.pem")).unwrap()
}

fn other() -> TrustedKey {
    TrustedKey::from_pem("backup", include_str!("fixtures/other-p256.pub.pem")).unwrap()
}

#[test]
fn p256_signature_verifies() {
    let verified = verify_simple_signing(PAYLOAD, P256_SIG, &[p256()], IMAGE, REPOSITORY).unwrap();
    assert_eq!(verified.key, "release");
    assert_eq!(verified.key_fingerprint, p256().fingerprint());
    assert_eq!(verified.image_digest, IMAGE);
    assert_eq!(verified.docker_reference, REPOSITORY);
    assert_eq!(verified.optional["creator"], "berth-trust fixtures");
    assert_eq!(verified.optional["build"], "42");
}

#[test]
fn ed25519_signature_verifies() {
    let verified =
        verify_simple_signing(PAYLOAD, ED25519_SIG, &[ed25519()], IMAGE, REPOSITORY).unwrap();
    assert_eq!(verified.key, "ci");
}

#[test]
fn the_key_that_verified_is_named_among_several() {
    let keys = [other(), ed25519(), p256()];
    let verified = verify_simple_signing(PAYLOAD, P256_SIG, &keys, IMAGE, REPOSITORY).unwrap();
    assert_eq!(verified.key, "release");
    let verified = verify_simple_signing(PAYLOAD, ED25519_SIG, &keys, IMAGE, REPOSITORY).unwrap();
    assert_eq!(verified.key, "ci");
}

#[test]
fn a_signature_over_another_digest_is_refused_naming_both() {
    let refusal = verify_simple_signing(
        include_bytes!("fixtures/simple-signing-other.json"),
        include_str!("fixtures/simple-signing-other.p256.sig"),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::OtherDigest {
            signed: OTHER_IMAGE.to_owned(),
            expected: IMAGE.to_owned()
        }
    );
    let message = refusal.to_string();
    assert!(
        message.contains(OTHER_IMAGE) && message.contains(IMAGE),
        "{message}"
    );
}

#[test]
fn a_signature_for_another_repository_is_refused() {
    let refusal = verify_simple_signing(
        include_bytes!("fixtures/simple-signing-other-repo.json"),
        include_str!("fixtures/simple-signing-other-repo.p256.sig"),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::OtherRepository {
            signed: "registry.example.com/platform/other".to_owned(),
            expected: REPOSITORY.to_owned()
        }
    );
}

#[test]
fn a_tag_on_the_signed_reference_is_not_the_repository() {
    let payload = include_bytes!("fixtures/simple-signing-tagged.json");
    let sig = include_str!("fixtures/simple-signing-tagged.p256.sig");
    let verified = verify_simple_signing(payload, sig, &[p256()], IMAGE, REPOSITORY).unwrap();
    assert_eq!(verified.docker_reference, format!("{REPOSITORY}:v1.2.3"));
    // The caller may name the repository with a tag too.
    assert!(
        verify_simple_signing(payload, sig, &[p256()], IMAGE, &format!("{REPOSITORY}:v2")).is_ok()
    );
    assert!(matches!(
        verify_simple_signing(
            payload,
            sig,
            &[p256()],
            IMAGE,
            "registry.example.com/platform"
        ),
        Err(Refusal::OtherRepository { .. })
    ));
}

#[test]
fn a_tampered_payload_is_refused() {
    // The same payload, claiming the other image: the signature no longer matches.
    let tampered = String::from_utf8(PAYLOAD.to_vec())
        .unwrap()
        .replace(IMAGE, OTHER_IMAGE);
    assert_ne!(tampered.as_bytes(), PAYLOAD);
    let refusal = verify_simple_signing(
        tampered.as_bytes(),
        P256_SIG,
        &[p256(), other()],
        OTHER_IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "signed by none of the trusted keys: release, backup"
    );
    // One byte more (a trailing newline) is tampering too.
    let mut longer = PAYLOAD.to_vec();
    longer.push(b'\n');
    assert!(matches!(
        verify_simple_signing(&longer, ED25519_SIG, &[ed25519()], IMAGE, REPOSITORY),
        Err(Refusal::NotSignedByTrustedKey { .. })
    ));
}

#[test]
fn the_wrong_key_is_refused() {
    let refusal =
        verify_simple_signing(PAYLOAD, P256_SIG, &[other()], IMAGE, REPOSITORY).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::NotSignedByTrustedKey {
            keys: vec!["backup".to_owned()]
        }
    );
}

#[test]
fn a_truncated_signature_is_refused() {
    let mut der = STANDARD.decode(P256_SIG).unwrap();
    der.truncate(der.len() - 3);
    let refusal = verify_simple_signing(
        PAYLOAD,
        &STANDARD.encode(&der),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert_eq!(refusal, Refusal::SignatureMalformed { bytes: der.len() });
    assert!(refusal.to_string().contains("truncated or malformed"));

    let mut raw = STANDARD.decode(ED25519_SIG).unwrap();
    raw.pop();
    assert_eq!(
        verify_simple_signing(
            PAYLOAD,
            &STANDARD.encode(&raw),
            &[ed25519()],
            IMAGE,
            REPOSITORY
        ),
        Err(Refusal::SignatureMalformed { bytes: 63 })
    );
    assert_eq!(
        verify_simple_signing(PAYLOAD, "", &[p256()], IMAGE, REPOSITORY),
        Err(Refusal::SignatureMalformed { bytes: 0 })
    );
}

#[test]
fn a_signature_that_is_not_base64_is_refused() {
    assert_eq!(
        verify_simple_signing(PAYLOAD, "MEUCIQ*not base64*", &[p256()], IMAGE, REPOSITORY),
        Err(Refusal::SignatureNotBase64)
    );
}

#[test]
fn no_keys_means_no_trust() {
    assert_eq!(
        verify_simple_signing(PAYLOAD, P256_SIG, &[], IMAGE, REPOSITORY),
        Err(Refusal::NoTrustedKeys)
    );
}

#[test]
fn a_signed_payload_that_is_not_simple_signing_is_refused_naming_the_field() {
    let refusal = verify_simple_signing(
        include_bytes!("fixtures/simple-signing-no-digest.json"),
        include_str!("fixtures/simple-signing-no-digest.p256.sig"),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::NotSimpleSigning("critical.image.docker-manifest-digest is missing".to_owned())
    );
}

#[test]
fn an_oversized_payload_is_refused_before_anything_else() {
    let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        verify_simple_signing(&huge, "not base64 either!", &[p256()], IMAGE, REPOSITORY),
        Err(Refusal::TooLarge {
            what: "payload",
            size: MAX_PAYLOAD_BYTES + 1,
            limit: MAX_PAYLOAD_BYTES
        })
    );
    let long_signature = "A".repeat(10_000);
    assert!(matches!(
        verify_simple_signing(PAYLOAD, &long_signature, &[p256()], IMAGE, REPOSITORY),
        Err(Refusal::TooLarge {
            what: "signature",
            ..
        })
    ));
}

#[test]
fn the_signature_is_checked_before_the_payload_is_read() {
    // Not JSON, not simple signing, another digest: none of it matters unsigned.
    for payload in [&b"not json"[..], b"{}", b"[[[[[[[["] {
        assert_eq!(
            verify_simple_signing(payload, P256_SIG, &[p256()], IMAGE, REPOSITORY),
            Err(Refusal::NotSignedByTrustedKey {
                keys: vec!["release".to_owned()]
            })
        );
    }
}

#[test]
fn keys_match_ignoring_case_as_cosign_does_but_never_ambiguously() {
    let verified = verify_simple_signing(
        include_bytes!("fixtures/simple-signing-capitalized.json"),
        include_str!("fixtures/simple-signing-capitalized.p256.sig"),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap();
    assert_eq!(verified.image_digest, IMAGE);
    assert!(verified.optional.is_empty());
    let refusal = verify_simple_signing(
        include_bytes!("fixtures/simple-signing-two-cases.json"),
        include_str!("fixtures/simple-signing-two-cases.p256.sig"),
        &[p256()],
        IMAGE,
        REPOSITORY,
    )
    .unwrap_err();
    assert!(matches!(refusal, Refusal::NotSimpleSigning(_)), "{refusal}");
    assert!(refusal.to_string().contains("appears twice"), "{refusal}");
}
