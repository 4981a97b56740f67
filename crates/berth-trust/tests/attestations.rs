//! DSSE envelopes of in-toto statements signed by openssl: provenance and test results read,
//! wrong keys and hostile inputs refused.

use berth_trust::{
    IN_TOTO_PAYLOAD_TYPE, MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, MAX_SIGNATURES, Predicate, Refusal,
    SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02, STATEMENT_V01, STATEMENT_V1, Statement, TrustedKey,
    verify_attestation, verify_dsse,
};
use serde_json::Value;

const IMAGE: &str = "sha256:2f1d9d8e6a4b3c5e7f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7";
const OTHER_IMAGE: &str = "sha256:9b7c2a1f0e3d4c5b6a79880716253443526170819fae0bdc1e2f3a4b5c6d7e8f";

const V1: &[u8] = include_bytes!("fixtures/provenance-v1.p256.dsse.json");

fn p256() -> TrustedKey {
    TrustedKey::from_pem("release", include_str!("fixtures/p256.pub.pem")).unwrap()
}

fn ed25519() -> TrustedKey {
    TrustedKey::from_pem("ci", include_str!("fixtures/ed25519.pub.pem")).unwrap()
}

fn other() -> TrustedKey {
    TrustedKey::from_pem("backup", include_str!("fixtures/other-p256.pub.pem")).unwrap()
}

fn edit(envelope: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(envelope).unwrap();
    change(&mut value);
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn dsse_verifies_and_returns_the_exact_payload() {
    let verified = verify_dsse(V1, &[other(), p256()]).unwrap();
    assert_eq!(verified.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(
        verified.payload,
        include_bytes!("fixtures/provenance-v1.statement.json")
    );
    assert_eq!(verified.key, "release");
    assert_eq!(verified.key_fingerprint, p256().fingerprint());
}

#[test]
fn dsse_ed25519_verifies() {
    let verified = verify_dsse(
        include_bytes!("fixtures/provenance-v1.ed25519.dsse.json"),
        &[p256(), ed25519()],
    )
    .unwrap();
    assert_eq!(verified.key, "ci");
}

#[test]
fn any_signature_by_any_trusted_key_is_enough() {
    let two = include_bytes!("fixtures/provenance-v1.two-sigs.dsse.json");
    assert_eq!(verify_dsse(two, &[p256()]).unwrap().key, "release");
    assert_eq!(verify_dsse(two, &[other()]).unwrap().key, "backup");
    // Neither signature has Ed25519's shape.
    assert!(matches!(
        verify_dsse(two, &[ed25519()]),
        Err(Refusal::SignatureMalformed { .. })
    ));
    // A key of another algorithm among the trusted ones changes nothing.
    assert_eq!(
        verify_dsse(two, &[ed25519(), p256()]).unwrap().key,
        "release"
    );
}

#[test]
fn dsse_with_the_wrong_key_is_refused() {
    assert_eq!(
        verify_dsse(V1, &[other(), ed25519()]),
        Err(Refusal::NotSignedByTrustedKey {
            keys: vec!["backup".to_owned(), "ci".to_owned()]
        })
    );
}

#[test]
fn the_payload_type_is_signed_too() {
    let retyped = edit(V1, |envelope| {
        envelope["payloadType"] = "application/json".into();
    });
    assert!(matches!(
        verify_dsse(&retyped, &[p256()]),
        Err(Refusal::NotSignedByTrustedKey { .. })
    ));
}

#[test]
fn a_tampered_dsse_payload_is_refused() {
    let statement =
        String::from_utf8(include_bytes!("fixtures/provenance-v1.statement.json").to_vec())
            .unwrap()
            .replace("example/app", "example/evil");
    let tampered = edit(V1, |envelope| {
        use base64::Engine as _;
        envelope["payload"] = base64::engine::general_purpose::STANDARD
            .encode(statement)
            .into();
    });
    assert!(matches!(
        verify_dsse(&tampered, &[p256()]),
        Err(Refusal::NotSignedByTrustedKey { .. })
    ));
}

#[test]
fn slsa_v1_provenance_is_read() {
    let attestation = verify_attestation(V1, &[p256()], IMAGE).unwrap();
    assert_eq!(attestation.key, "release");
    let statement = attestation.statement;
    assert_eq!(statement.statement_type, STATEMENT_V1);
    assert_eq!(statement.predicate_type, SLSA_PROVENANCE_V1);
    let provenance = statement.provenance().unwrap();
    assert_eq!(
        provenance.builder.as_deref(),
        Some("https://github.com/actions/runner/github-hosted")
    );
    assert_eq!(
        provenance.source_repository.as_deref(),
        Some("https://github.com/example/app")
    );
    assert_eq!(
        provenance.source_commit.as_deref(),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5")
    );
    assert_eq!(provenance.source_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        provenance.entry_point.as_deref(),
        Some(".github/workflows/release.yml")
    );
    assert_eq!(
        provenance.invocation.as_deref(),
        Some("https://github.com/example/app/actions/runs/1234/attempts/1")
    );
    assert_eq!(
        provenance.build_type.as_deref(),
        Some("https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1")
    );
    assert_eq!(provenance.dependencies.len(), 1);
    assert_eq!(
        provenance.dependencies[0].uri.as_deref(),
        Some("git+https://github.com/example/app@refs/heads/main")
    );
}

#[test]
fn slsa_v02_provenance_is_read() {
    let attestation = verify_attestation(
        include_bytes!("fixtures/provenance-v02.p256.dsse.json"),
        &[p256()],
        IMAGE,
    )
    .unwrap();
    let statement = attestation.statement;
    assert_eq!(statement.statement_type, STATEMENT_V01);
    assert_eq!(statement.predicate_type, SLSA_PROVENANCE_V02);
    let provenance = statement.provenance().unwrap();
    assert_eq!(
        provenance.builder.as_deref(),
        Some(
            "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"
        )
    );
    assert_eq!(
        provenance.source_repository.as_deref(),
        Some("git+https://github.com/example/app@refs/heads/main")
    );
    assert_eq!(
        provenance.source_commit.as_deref(),
        Some("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c")
    );
    assert_eq!(
        provenance.entry_point.as_deref(),
        Some(".github/workflows/release.yml")
    );
    assert_eq!(provenance.invocation.as_deref(), Some("1234-1"));
    assert_eq!(
        provenance.build_type.as_deref(),
        Some("https://github.com/slsa-framework/slsa-github-generator/container@v1")
    );
    assert_eq!(provenance.dependencies.len(), 1);
    assert_eq!(
        provenance.dependencies[0].digest["sha1"],
        "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
    );
}

#[test]
fn test_results_passed_and_failed_are_read() {
    let passed = verify_attestation(
        include_bytes!("fixtures/test-passed.p256.dsse.json"),
        &[p256()],
        IMAGE,
    )
    .unwrap();
    let result = passed.statement.test_result().unwrap();
    assert!(result.passed);
    assert_eq!(result.result, "PASSED");
    assert_eq!(
        result.url.as_deref(),
        Some("https://ci.example.com/runs/77")
    );
    assert_eq!(result.passed_tests, ["unit"]);
    assert!(result.failed_tests.is_empty());

    let failed = verify_attestation(
        include_bytes!("fixtures/test-failed.p256.dsse.json"),
        &[p256()],
        IMAGE,
    )
    .unwrap();
    let result = failed.statement.test_result().unwrap();
    assert!(!result.passed);
    assert_eq!(result.result, "FAILED");
    assert_eq!(result.failed_tests, ["integration"]);
}

#[test]
fn an_attestation_about_another_image_is_refused() {
    assert_eq!(
        verify_attestation(V1, &[p256()], OTHER_IMAGE).unwrap_err(),
        Refusal::SubjectNotCovered {
            image_digest: OTHER_IMAGE.to_owned()
        }
    );
    let statement =
        Statement::parse(include_bytes!("fixtures/provenance-v1.statement.json")).unwrap();
    assert!(statement.covers(IMAGE));
    assert!(statement.covers(&IMAGE.to_uppercase().replace("SHA256", "sha256")));
    assert!(!statement.covers(OTHER_IMAGE));
    assert!(!statement.covers("sha256:"));
    assert!(!statement.covers(IMAGE.trim_start_matches("sha256:")));
}

#[test]
fn unknown_predicates_are_kept_by_type() {
    let statement = Statement::parse(
        br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],
            "predicateType":"https://spdx.dev/Document","predicate":{"spdxVersion":"SPDX-2.3"}}"#,
    )
    .unwrap();
    assert_eq!(
        statement.predicate,
        Predicate::Other("https://spdx.dev/Document".to_owned())
    );
    assert_eq!(statement.predicate_json["spdxVersion"], "SPDX-2.3");
}

#[test]
fn malformed_statements_are_refused() {
    let refusal = |text: &str| Statement::parse(text.as_bytes()).unwrap_err();
    assert_eq!(
        refusal(r#"{"_type":"https://example.com/Statement","subject":[],"predicateType":"x"}"#),
        Refusal::NotStatement(
            r#"_type is "https://example.com/Statement", not "https://in-toto.io/Statement/v0.1" or "https://in-toto.io/Statement/v1""#
                .to_owned()
        )
    );
    assert_eq!(
        refusal(r#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x"}"#),
        Refusal::NotStatement("subject is empty".to_owned())
    );
    assert_eq!(
        refusal(
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}],"predicateType":"x"}"#
        ),
        Refusal::NotStatement(
            "subject[0].digest is missing or not an object of strings".to_owned()
        )
    );
    assert!(matches!(
        refusal(
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],
                "predicateType":"https://in-toto.io/attestation/test-result/v0.1","predicate":{"result":"MAYBE"}}"#
        ),
        Refusal::BadPredicate { .. }
    ));
    assert!(matches!(
        refusal(
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],
                "predicateType":"https://slsa.dev/provenance/v1"}"#
        ),
        Refusal::BadPredicate { .. }
    ));
}

#[test]
fn an_oversized_envelope_is_refused_unread() {
    let huge = vec![b'['; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        verify_dsse(&huge, &[p256()]),
        Err(Refusal::TooLarge {
            what: "envelope",
            size: MAX_PAYLOAD_BYTES + 1,
            limit: MAX_PAYLOAD_BYTES
        })
    );
    assert!(matches!(
        Statement::parse(&huge),
        Err(Refusal::TooLarge {
            what: "statement",
            ..
        })
    ));
}

#[test]
fn deeply_nested_json_is_refused_without_crashing() {
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let unclosed = "[".repeat(10_000);
    for text in [&arrays, &objects, &unclosed] {
        assert_eq!(
            verify_dsse(text.as_bytes(), &[p256()]),
            Err(Refusal::TooDeep {
                what: "envelope",
                limit: MAX_JSON_DEPTH
            })
        );
        assert_eq!(
            Statement::parse(text.as_bytes()),
            Err(Refusal::TooDeep {
                what: "statement",
                limit: MAX_JSON_DEPTH
            })
        );
    }
    // Deep inside a statement that is otherwise fine.
    let nested_predicate = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"ab"}}}}],"predicateType":"x","predicate":{arrays}}}"#
    );
    assert!(matches!(
        Statement::parse(nested_predicate.as_bytes()),
        Err(Refusal::TooDeep { .. })
    ));
}

#[test]
fn too_many_signatures_are_refused() {
    let crowded = edit(V1, |envelope| {
        let signature = envelope["signatures"][0].clone();
        envelope["signatures"] = Value::Array(vec![signature; MAX_SIGNATURES + 1]);
    });
    assert_eq!(
        verify_dsse(&crowded, &[p256()]),
        Err(Refusal::TooManySignatures {
            count: MAX_SIGNATURES + 1,
            limit: MAX_SIGNATURES
        })
    );
    let full = edit(V1, |envelope| {
        let signature = envelope["signatures"][0].clone();
        envelope["signatures"] = Value::Array(vec![signature; MAX_SIGNATURES]);
    });
    assert!(verify_dsse(&full, &[p256()]).is_ok());
}

#[test]
fn envelopes_that_are_not_dsse_are_refused_naming_the_field() {
    let without = |field: &str| {
        edit(V1, |envelope| {
            envelope.as_object_mut().unwrap().remove(field);
        })
    };
    assert_eq!(
        verify_dsse(&without("payloadType"), &[p256()]),
        Err(Refusal::NotDsse("payloadType is missing".to_owned()))
    );
    assert_eq!(
        verify_dsse(&without("signatures"), &[p256()]),
        Err(Refusal::NotDsse("signatures is missing".to_owned()))
    );
    let bad_sig = edit(V1, |envelope| {
        envelope["signatures"][0]["sig"] = "*".into();
    });
    assert_eq!(
        verify_dsse(&bad_sig, &[p256()]),
        Err(Refusal::SignatureNotBase64)
    );
    let duplicated = br#"{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}"#;
    assert!(matches!(
        verify_dsse(duplicated, &[p256()]),
        Err(Refusal::NotJson {
            what: "envelope",
            ..
        })
    ));
}

#[test]
fn a_non_in_toto_payload_type_is_not_an_attestation() {
    let envelope = include_bytes!("fixtures/test-passed.json-type.p256.dsse.json");
    assert_eq!(
        verify_dsse(envelope, &[p256()]).unwrap().payload_type,
        "application/json"
    );
    assert_eq!(
        verify_attestation(envelope, &[p256()], IMAGE).unwrap_err(),
        Refusal::OtherPayloadType {
            found: "application/json".to_owned(),
            expected: IN_TOTO_PAYLOAD_TYPE.to_owned()
        }
    );
}
