//! Reading trusted keys from PEMs openssl wrote, and refusing the ones berth cannot use.

use berth_trust::{KeyAlgorithm, KeyProblem, TrustedKey};

const P256: &str = include_str!("fixtures/p256.pub.pem");
const ED25519: &str = include_str!("fixtures/ed25519.pub.pem");

fn problem(pem: &str) -> KeyProblem {
    TrustedKey::from_pem("k", pem).unwrap_err().problem
}

#[test]
fn p256_and_ed25519_keys_read_with_openssls_fingerprints() {
    let p256 = TrustedKey::from_pem("release", P256).unwrap();
    assert_eq!(p256.name(), "release");
    assert_eq!(p256.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
    assert_eq!(
        p256.fingerprint(),
        include_str!("fixtures/p256.fingerprint")
    );
    let ed = TrustedKey::from_pem("ci", ED25519).unwrap();
    assert_eq!(ed.algorithm(), KeyAlgorithm::Ed25519);
    assert_eq!(
        ed.fingerprint(),
        include_str!("fixtures/ed25519.fingerprint")
    );
    assert_ne!(p256.fingerprint(), ed.fingerprint());
}

#[test]
fn debug_shows_the_name_only() {
    let key = TrustedKey::from_pem("release", P256).unwrap();
    assert_eq!(format!("{key:?}"), r#"TrustedKey("release")"#);
}

#[test]
fn explanatory_text_around_the_block_is_ignored() {
    let pem = format!("release key, 2026\n\n{P256}\n");
    let key = TrustedKey::from_pem("release", &pem).unwrap();
    assert_eq!(key.fingerprint(), include_str!("fixtures/p256.fingerprint"));
}

#[test]
fn rsa_keys_are_refused_by_name() {
    let error = TrustedKey::from_pem("old", include_str!("fixtures/rsa.pub.pem")).unwrap_err();
    assert_eq!(error.problem, KeyProblem::Rsa);
    assert_eq!(
        error.to_string(),
        "trusted key old: RSA keys are not supported (ECDSA P-256 and Ed25519 are)"
    );
    assert_eq!(
        problem("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"),
        KeyProblem::Rsa
    );
}

#[test]
fn other_curves_and_compressed_points_are_refused() {
    assert_eq!(
        problem(include_str!("fixtures/p384.pub.pem")),
        KeyProblem::UnsupportedCurve("P-384 (secp384r1)".to_owned())
    );
    assert_eq!(
        problem(include_str!("fixtures/p256-compressed.pub.pem")),
        KeyProblem::CompressedPoint
    );
}

#[test]
fn garbage_private_keys_and_broken_pems_are_refused() {
    assert_eq!(problem("hello"), KeyProblem::NotPem);
    assert_eq!(problem(""), KeyProblem::NotPem);
    assert!(
        TrustedKey::from_pem("k", "hello")
            .unwrap_err()
            .to_string()
            .contains("not a PEM public key")
    );
    assert_eq!(
        problem(include_str!("fixtures/p256.test-key.pem")),
        KeyProblem::PrivateKey
    );
    // No END line.
    assert_eq!(
        problem(P256.trim_end().trim_end_matches("-----END PUBLIC KEY-----")),
        KeyProblem::NotPem
    );
    // Not base64 inside.
    assert_eq!(
        problem("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
        KeyProblem::NotBase64
    );
    // Two keys in one.
    assert_eq!(
        problem(&format!("{P256}{ED25519}")),
        KeyProblem::SeveralBlocks
    );
    // A DER cut short: the base64 of the first 30 bytes of the key.
    let truncated = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    assert!(matches!(problem(truncated), KeyProblem::Malformed(_)));
    // Too large to be a key at all.
    assert!(matches!(
        problem(&"a".repeat(100_000)),
        KeyProblem::TooLarge { size: 100_000, .. }
    ));
}

#[test]
fn a_key_needs_a_name() {
    assert_eq!(
        TrustedKey::from_pem(" ", P256).unwrap_err().problem,
        KeyProblem::NoName
    );
}
