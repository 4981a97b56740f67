//! `berth provenance` against real manifests: the test bed's child image re-put with OCI
//! annotations (source, revision, base name and digest) into a registry of the test's own,
//! synced into a real SQLite store; the base claim is checked against layer lineage.

use std::process::{Command, Output};

use berth_testkit::{OwnRegistry, Testbed, sha256_hex, skopeo};
use serde_json::{Value, json};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_STORE")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn report(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_base_claim_is_checked_against_lineage() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-provenance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "team/base:1");
    registry.copy_from_testbed("berth/child:1", "team/app:plain");
    let base = testbed.digest("berth/base:1");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{own}/team/app:plain"),
    ]);
    let annotated = |base_digest: &str| {
        let mut manifest: Value = serde_json::from_str(&raw).unwrap();
        manifest["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        manifest["annotations"] = json!({
            "org.opencontainers.image.source": "https://git.example.org/team/app",
            "org.opencontainers.image.revision": "4f2c1e9",
            "org.opencontainers.image.base.name": format!("{own}/team/base:1"),
            "org.opencontainers.image.base.digest": base_digest,
        });
        manifest.to_string()
    };
    // The child's layers are the base's plus one: a claim of the base agrees, another does not.
    registry.put_manifest("team/app", "good", annotated(&base).as_bytes());
    let wrong = format!("sha256:{}", "ab".repeat(32));
    registry.put_manifest("team/app", "bad", annotated(&wrong).as_bytes());
    let sync = berth(&[
        "sync",
        "--repo",
        &format!("{own}/team/app"),
        "--repo",
        &format!("{own}/team/base"),
        "--insecure-registry",
        &own,
        "--store",
        &store,
    ]);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let provenance = |tag: &str, store: Option<&str>| {
        let reference = format!("{own}/team/app:{tag}");
        let mut args = vec![
            "provenance",
            reference.as_str(),
            "--json",
            "--insecure-registry",
            own.as_str(),
        ];
        if let Some(store) = store {
            args.extend(["--store", store]);
        }
        berth(&args)
    };

    let good = report(&provenance("good", Some(&store)), 0);
    assert_eq!(good["source"]["value"], "https://git.example.org/team/app");
    assert_eq!(good["source"]["from"], "annotation");
    assert_eq!(good["revision"]["value"], "4f2c1e9");
    assert_eq!(good["lineage_base"], base.as_str());
    assert_eq!(good["base_check"], "agrees", "{good:#}");

    let bad = report(&provenance("bad", Some(&store)), 1);
    assert_eq!(bad["base_digest"]["value"], wrong.as_str());
    assert_eq!(bad["base_check"], "disagrees", "{bad:#}");
    let text = berth(&[
        "provenance",
        &format!("{own}/team/app:bad"),
        "--insecure-registry",
        &own,
        "--store",
        &store,
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("DISAGREES"));

    // Without a store nothing can check the claim; without a claim there is nothing to check.
    assert_eq!(
        report(&provenance("good", None), 0)["base_check"],
        "unverified"
    );
    assert_eq!(
        report(&provenance("plain", Some(&store)), 0)["base_check"],
        "no-claim"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Pod running `image`, for the webhook.
fn review(image: &str) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "job",
            "namespace": "racetrack",
            "operation": "CREATE",
            "userInfo": {"username": "deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "job", "namespace": "racetrack"},
                "spec": {"containers": [{"name": "job", "image": image}]},
            },
            "dryRun": false,
        }
    })
    .to_string()
}

/// Racetrack's pre-built job: CI builds and tests a digest and records it; the platform admits
/// exactly that digest. A rebuild pushed to the same tag is denied until its pipeline records
/// it — by `berth check --store` and by the webhook of `berth serve`, which learns the record
/// from `POST /api/v1/provenance` (a `ci` token) through its knowledge refresh.
#[test]
fn the_tested_digest_is_admitted_and_an_untested_rebuild_is_not() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-tested-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "provenance: {require: [tested, source]}\n").unwrap();
    let catalog = dir.join("catalog.yaml");
    std::fs::write(
        &catalog,
        "images:\n  other:\n    image: registry.example/other\n",
    )
    .unwrap();
    let job = format!("{own}/racetrack/job:1");
    let sync = || {
        let output = berth(&[
            "sync",
            "--repo",
            &format!("{own}/racetrack/job"),
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let check = || {
        berth(&[
            "check",
            "--policy",
            policy.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--store",
            &store,
            "--image",
            &job,
        ])
    };
    registry.copy_from_testbed("berth/base:1", "racetrack/job:1");
    sync();
    let built = testbed.digest("berth/base:1");

    // Not recorded yet: denied, saying how to record it.
    let denied = check();
    assert_eq!(denied.status.code(), Some(1));
    let text = String::from_utf8_lossy(&denied.stdout).to_string();
    assert!(
        text.contains("has no provenance record (the policy requires: tested, source)")
            && text.contains(&format!("berth provenance record {built}")),
        "{text}"
    );

    // CI records what it built and tested.
    let recorded = berth(&[
        "provenance",
        "record",
        &format!("{own}/racetrack/job@{built}"),
        "--source",
        "https://git.example/racetrack/job",
        "--commit",
        "4f2c1e9",
        "--tests",
        "passed",
        "--tests-url",
        "https://ci.example/runs/41",
        "--actor",
        "ci-pipeline",
        "--store",
        &store,
    ]);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let allowed = check();
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stdout)
    );
    let shown = report(
        &berth(&[
            "provenance",
            &job,
            "--json",
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]),
        0,
    );
    assert_eq!(shown["record"]["tests"], "passed", "{shown:#}");
    assert_eq!(shown["record"]["recorded_by"], "ci-pipeline");
    assert_eq!(shown["record"]["commit"], "4f2c1e9");

    // Bad records are refused, naming the flag; a tag is not a digest.
    let tag = berth(&[
        "provenance",
        "record",
        &job,
        "--tests",
        "passed",
        "--store",
        &store,
    ]);
    assert_eq!(tag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&tag.stderr).contains("names a tag, which can move"));
    let url = berth(&[
        "provenance",
        "record",
        built.as_str(),
        "--source",
        "git@example:x",
        "--store",
        &store,
    ]);
    assert_eq!(url.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&url.stderr)
            .contains("--source: \"git@example:x\" is not an http:// or https:// URL"),
        "{}",
        String::from_utf8_lossy(&url.stderr)
    );

    // A rebuild pushed to the same tag: another digest, not tested, denied.
    registry.copy_from_testbed("berth/child:1", "racetrack/job:1");
    sync();
    let rebuilt = testbed.digest("berth/child:1");
    let denied = check();
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stdout).contains(rebuilt.as_str()));

    // The webhook decides the same; its pipeline records the rebuild through the API.
    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: {store}\npolicy: policy.yaml\n\
             knowledge_refresh: 100ms\n\
             api_tokens:\n\
             \x20 - {{name: job-pipeline, sha256: {}, scope: ci}}\n\
             \x20 - {{name: reader, sha256: {}, scope: read}}\n",
            sha256_hex("ci-secret"),
            sha256_hex("reader-secret")
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", "berth.yaml"])
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = berth_testkit::ServeProcess::start(command);
    let json_header = ("Content-Type", "application/json");
    let admit = |image: &str| {
        let (status, answer) = server.request(
            "POST",
            "/admission/validate",
            &[json_header],
            &review(image),
        );
        assert_eq!(status, 200, "{answer}");
        answer["response"].clone()
    };
    let answer = admit(&job);
    assert_eq!(answer["allowed"], false, "{answer}");
    assert!(
        answer["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no provenance record")
    );
    // The tested digest, by digest, is admitted.
    assert_eq!(
        admit(&format!("{own}/racetrack/job@{built}"))["allowed"],
        true
    );

    let body = json!({
        "digest": rebuilt,
        "source": "https://git.example/racetrack/job",
        "commit": "9a8b7c6",
        "tests": "passed",
    })
    .to_string();
    let ci = ("Authorization", "Bearer ci-secret");
    let reader = ("Authorization", "Bearer reader-secret");
    let (status, _) = server.request("POST", "/api/v1/provenance", &[json_header, reader], &body);
    assert_eq!(status, 403, "a read token cannot record");
    let (status, _) = server.request("GET", "/api/v1/audit", &[ci], "");
    assert_eq!(status, 403, "a ci token can do nothing else");
    let (status, answer) = server.request(
        "POST",
        "/api/v1/provenance",
        &[json_header, ci],
        &json!({"digest": rebuilt, "tests": "maybe"}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("tests: \"maybe\""),
        "{answer}"
    );
    let (status, answer) = server.request("POST", "/api/v1/provenance", &[json_header, ci], &body);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["record"]["recorded_by"], "job-pipeline");
    // Within a few refreshes the webhook admits the recorded rebuild.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if admit(&job)["allowed"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record never reached the webhook"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The record is in the audit log.
    let (_, audit) = server.request("GET", "/api/v1/audit", &[reader], "");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "provenance.record"
                && entry["subject"] == rebuilt.as_str()),
        "{audit:#}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `openssl` with `args` in `dir`; its stdout.
fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run openssl: {error}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A P-256 key pair made by openssl: `NAME.key` (private) and `NAME.pem` (public) in `dir`.
fn key_pair(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            &format!("{name}.key"),
            "-pubout",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// `bytes` signed by openssl with `NAME.key` (ECDSA P-256, SHA-256, DER), in base64.
fn sign(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    let file = dir.join(format!("to-sign-{}", bytes.len()));
    std::fs::write(&file, bytes).unwrap();
    let signature = openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            &format!("{name}.key"),
            file.to_str().unwrap(),
        ],
    );
    base64::engine::general_purpose::STANDARD.encode(signature)
}

/// cosign's simple signing payload for `digest` in `repository`.
fn simple_signing(repository: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": {"creator": "openssl in berth's tests"}
    })
    .to_string()
    .into_bytes()
}

/// Pushes a cosign-style manifest under `tag` whose layers are `layers` (bytes, media type,
/// annotations), each uploaded as a blob; the manifest's digest and size.
fn push_cosign(
    registry: &OwnRegistry,
    repository: &str,
    tag: &str,
    layers: &[(Vec<u8>, &str, Value)],
) -> (String, usize) {
    let config = b"{}".to_vec();
    let config_digest = registry.put_blob(repository, &config);
    let layers: Vec<Value> = layers
        .iter()
        .map(|(bytes, media_type, annotations)| {
            let digest = registry.put_blob(repository, bytes);
            json!({"mediaType": media_type, "digest": digest, "size": bytes.len(), "annotations": annotations})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    let body = manifest.to_string();
    (
        registry.put_manifest(repository, tag, body.as_bytes()),
        body.len(),
    )
}

/// A DSSE envelope of an in-toto `statement`, signed by `NAME.key` over its PAE.
fn dsse(dir: &std::path::Path, name: &str, statement: &str) -> Vec<u8> {
    use base64::Engine as _;
    let payload_type = "application/vnd.in-toto+json";
    let pae = format!(
        "DSSEv1 {} {payload_type} {} {statement}",
        payload_type.len(),
        statement.len()
    );
    json!({
        "payloadType": payload_type,
        "payload": base64::engine::general_purpose::STANDARD.encode(statement),
        "signatures": [{"keyid": "", "sig": sign(dir, name, pae.as_bytes())}]
    })
    .to_string()
    .into_bytes()
}

fn cosign_tag(digest: &str, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", digest.trim_start_matches("sha256:"))
}

/// Signatures made by openssl in cosign's format (simple signing under the `.sig` tag, a DSSE
/// in-toto test-result statement under `.att`), pushed with curl to a registry of the test's
/// own and verified by `berth provenance --key`: a signed digest passes; a wrong key, a
/// signature over another digest, a tampered payload, a truncated signature, an unsigned
/// digest and an oversized layer are each refused with a clear message.
#[test]
fn signatures_and_attestations_are_verified_with_trusted_keys() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    key_pair(&dir, "other");
    let repository = format!("{own}/team/app");
    registry.copy_from_testbed("berth/base:1", "team/app:signed");
    registry.copy_from_testbed("berth/child:1", "team/app:other-digest");
    registry.copy_from_testbed("berth/upper:1", "team/app:tampered");
    registry.copy_from_testbed("berth/multi:1", "team/app:unsigned");
    let signed = testbed.digest("berth/base:1");
    let child = testbed.digest("berth/child:1");
    let upper = testbed.digest("berth/upper:1");
    let annotation = |signature: &str| json!({"dev.cosignproject.cosign/signature": signature});
    const SIMPLE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

    // The signed digest: a simple signing signature and a test-result attestation.
    let payload = simple_signing(&repository, &signed);
    let signature = sign(&dir, "release", &payload);
    push_cosign(
        &registry,
        "team/app",
        &cosign_tag(&signed, "sig"),
        &[(payload.clone(), SIMPLE, annotation(&signature))],
    );
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repository, "digest": {"sha256": signed.trim_start_matches("sha256:")}}],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {"result": "PASSED", "configuration": [{"name": "ci", "uri": "https://ci.example/runs/9"}], "url": "https://ci.example/runs/9"}
    })
    .to_string();
    let envelope = dsse(&dir, "release", &statement);
    push_cosign(
        &registry,
        "team/app",
        &cosign_tag(&signed, "att"),
        &[(
            envelope,
            "application/vnd.dsse.envelope.v1+json",
            json!({"predicateType": "https://in-toto.io/attestation/test-result/v0.1"}),
        )],
    );
    // Another digest carries the signed digest's payload (a signature over another digest).
    push_cosign(
        &registry,
        "team/app",
        &cosign_tag(&child, "sig"),
        &[(payload.clone(), SIMPLE, annotation(&signature))],
    );
    // A tampered payload: the right digest, the signature of another text; and a truncated one.
    let tampered = simple_signing(&repository, &upper);
    let truncated = &signature[..signature.len() / 2];
    push_cosign(
        &registry,
        "team/app",
        &cosign_tag(&upper, "sig"),
        &[
            (tampered.clone(), SIMPLE, annotation(&signature)),
            (tampered, SIMPLE, annotation(truncated)),
            (vec![b'x'; 2 * 1024 * 1024], SIMPLE, annotation(&signature)),
        ],
    );

    let provenance = |tag: &str, keys: &[&str]| {
        let reference = format!("{repository}:{tag}");
        let mut args = vec![
            "provenance".to_string(),
            reference,
            "--json".into(),
            "--insecure-registry".into(),
            own.clone(),
        ];
        for key in keys {
            args.push("--key".into());
            args.push(dir.join(key).display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        berth(&args)
    };
    let found = report(&provenance("signed", &["other.pem", "release.pem"]), 0);
    let checked = found["signatures"].as_array().unwrap();
    assert_eq!(checked.len(), 2, "{found:#}");
    assert_eq!(checked[0]["kind"], "signature");
    assert_eq!(checked[0]["verified_by"], "release", "{found:#}");
    assert_eq!(checked[1]["kind"], "attestation");
    assert_eq!(checked[1]["verified_by"], "release", "{found:#}");
    assert_eq!(checked[1]["tests"], "passed");
    assert_eq!(checked[1]["tests_url"], "https://ci.example/runs/9");

    // The wrong key only.
    let wrong = report(&provenance("signed", &["other.pem"]), 1);
    assert_eq!(
        wrong["signatures"][0]["refusal"], "signed by none of the trusted keys: other",
        "{wrong:#}"
    );
    // A signature over another digest.
    let moved = report(&provenance("other-digest", &["release.pem"]), 1);
    let refusal = moved["signatures"][0]["refusal"].as_str().unwrap();
    assert!(
        refusal.contains(&signed) && refusal.contains(&child),
        "{refusal}"
    );
    // Tampered, truncated, oversized.
    let bad = report(&provenance("tampered", &["release.pem"]), 1);
    let refusals: Vec<&str> = bad["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|one| one["refusal"].as_str().unwrap())
        .collect();
    assert_eq!(refusals.len(), 3, "{bad:#}");
    assert_eq!(refusals[0], "signed by none of the trusted keys: release");
    assert!(
        refusals[1].starts_with("the signature is truncated or malformed"),
        "{}",
        refusals[1]
    );
    assert!(
        refusals[2].ends_with("signature larger than the limit of 1048576 bytes"),
        "{}",
        refusals[2]
    );
    // Unsigned: nothing found, exit 1.
    let unsigned = report(&provenance("unsigned", &["release.pem"]), 1);
    assert_eq!(unsigned["signatures"], json!([]));
    // Without keys nothing is checked; a key that is not a public key is refused at once.
    assert_eq!(
        report(&provenance("signed", &[]), 0)["signatures"],
        Value::Null
    );
    let output = provenance("signed", &["release.key"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("release.key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `berth sync` reads what the registry holds about each digest — cosign's `.sig` tag and an
/// OCI 1.1 referrers tag index holding a signed SLSA provenance and a test result — and checks
/// it against the policy's keys; `berth check --store` then admits the signed, tested digest
/// and denies an unsigned rebuild of the same tag. A key the policy gains is checked against
/// the stored layers by the next sync without reading them again; a key limited to a namespace
/// vouches only there (Toolforge's per-tool keys).
#[test]
fn synced_signatures_admit_the_signed_digest_and_deny_an_unsigned_rebuild() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-synced-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    key_pair(&dir, "tool");
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let catalog = dir.join("catalog.yaml");
    std::fs::write(
        &catalog,
        "images:\n  other:\n    image: registry.example/other\n",
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    let write_policy = |keys: &str| {
        std::fs::write(
            &policy,
            format!(
                "signatures:\n  keys:\n{keys}provenance:\n  require: [tested, source]\n  from: [attestation]\n"
            ),
        )
        .unwrap();
    };
    write_policy("    - {name: release, file: release.pem}\n");
    let repository = format!("{own}/tool/hello");
    registry.copy_from_testbed("berth/base:1", "tool/hello:1");
    let signed = testbed.digest("berth/base:1");
    let hex = signed.trim_start_matches("sha256:").to_string();

    // cosign sign: the simple signing payload under the `.sig` tag.
    let payload = simple_signing(&repository, &signed);
    let signature = sign(&dir, "release", &payload);
    push_cosign(
        &registry,
        "tool/hello",
        &cosign_tag(&signed, "sig"),
        &[(
            payload,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            json!({"dev.cosignproject.cosign/signature": signature}),
        )],
    );
    // Attestations as OCI 1.1 referrers, in the referrers tag index `sha256-<hex>`.
    let subject = json!([{"name": repository, "digest": {"sha256": hex}}]);
    let provenance_statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://ci.example/build/v1",
                "resolvedDependencies": [{"uri": "git+https://git.example/tool/hello", "digest": {"gitCommit": "4f2c1e9"}}]
            },
            "runDetails": {"builder": {"id": "https://ci.example/builder"}}
        }
    })
    .to_string();
    let tests_statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {"result": "PASSED", "configuration": [], "url": "https://ci.example/runs/12"}
    })
    .to_string();
    let mut referrers = Vec::new();
    for (index, statement) in [provenance_statement, tests_statement].iter().enumerate() {
        let envelope = dsse(&dir, "release", statement);
        let tag = format!("referrer-{index}");
        let (digest, size) = push_cosign(
            &registry,
            "tool/hello",
            &tag,
            &[(envelope, "application/vnd.dsse.envelope.v1+json", json!({}))],
        );
        referrers.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "artifactType": "application/vnd.dsse.envelope.v1+json"
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": referrers,
    });
    registry.put_manifest(
        "tool/hello",
        &format!("sha256-{hex}"),
        index.to_string().as_bytes(),
    );

    let sync = || {
        report(
            &berth(&[
                "sync",
                "--repo",
                &repository,
                "--insecure-registry",
                &own,
                "--store",
                &store,
                "--policy",
                policy.to_str().unwrap(),
                "--json",
            ]),
            0,
        )
    };
    let check = |image: &str| {
        berth(&[
            "check",
            "--policy",
            policy.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--store",
            &store,
            "--image",
            image,
        ])
    };
    let first = sync();
    let counts = &first["repositories"][0];
    assert_eq!(
        counts["signatures_read"], 2,
        "the .sig tag and the referrers tag: {first:#}"
    );
    let allowed = check(&format!("{repository}:1"));
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&allowed.stdout),
        String::from_utf8_lossy(&allowed.stderr)
    );
    // What berth holds, shown by `berth provenance`.
    let shown = report(
        &berth(&[
            "provenance",
            &format!("{repository}:1"),
            "--json",
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]),
        0,
    );
    let synced = &shown["synced_signatures"];
    assert_eq!(synced["layers"].as_array().unwrap().len(), 3, "{shown:#}");
    let verified: Vec<&Value> = synced["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["verified"] == true)
        .collect();
    assert_eq!(verified.len(), 3, "{shown:#}");
    assert!(
        verified.iter().any(
            |c| c["source_repository"] == "git+https://git.example/tool/hello"
                && c["builder"] == "https://ci.example/builder"
        ),
        "{shown:#}"
    );
    assert!(verified.iter().any(|c| c["tests"] == "passed"), "{shown:#}");

    // An unchanged re-sync reads no signature again.
    let again = sync();
    assert_eq!(again["repositories"][0]["signatures_read"], 0, "{again:#}");

    // A rebuild pushed to the same tag, unsigned: denied by both rules, saying what to do.
    registry.copy_from_testbed("berth/child:1", "tool/hello:1");
    let rebuilt = testbed.digest("berth/child:1");
    sync();
    let denied = check(&format!("{repository}:1"));
    assert_eq!(denied.status.code(), Some(1));
    let text = String::from_utf8_lossy(&denied.stdout).to_string();
    assert!(
        text.contains(&format!(
            "({rebuilt}) carries no signature by a trusted key (release)"
        )) && text.contains("cosign sign --key KEY")
            && text.contains("has no attestation signed by a trusted key"),
        "{text}"
    );
    // The signed digest is still admitted by digest.
    let by_digest = check(&format!("{repository}@{signed}"));
    assert_eq!(
        by_digest.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&by_digest.stdout)
    );

    // Toolforge: a tool's own key, trusted for its namespace only. The release key goes; the
    // stored layers are checked against the new key by the next sync, reading nothing again.
    write_policy("    - {name: tool-hello, file: tool.pem, namespaces: [tool-hello]}\n");
    let rotated = sync();
    assert_eq!(
        rotated["repositories"][0]["signatures_read"], 0,
        "{rotated:#}"
    );
    assert_eq!(rotated["signatures_rechecked"], 3, "{rotated:#}");
    assert_eq!(
        check(&format!("{repository}@{signed}")).status.code(),
        Some(1)
    );
    // Signed by the tool's key now (cosign sign again: the .sig tag moves): admitted in the
    // tool's namespace, not in another.
    // cosign adds a signer by repeating the payload's blob with the new signature.
    let payload = simple_signing(&repository, &signed);
    let tool_signature = sign(&dir, "tool", &payload);
    let simple = "application/vnd.dev.cosign.simplesigning.v1+json";
    push_cosign(
        &registry,
        "tool/hello",
        &cosign_tag(&signed, "sig"),
        &[
            (
                payload.clone(),
                simple,
                json!({"dev.cosignproject.cosign/signature": signature}),
            ),
            (
                payload,
                simple,
                json!({"dev.cosignproject.cosign/signature": tool_signature}),
            ),
        ],
    );
    std::fs::write(
        &policy,
        "signatures:\n  keys:\n    - {name: tool-hello, file: tool.pem, namespaces: [tool-hello]}\n",
    )
    .unwrap();
    let resigned = sync();
    assert_eq!(
        resigned["repositories"][0]["signatures_read"], 1,
        "{resigned:#}"
    );
    let shown = report(
        &berth(&[
            "provenance",
            &format!("{repository}@{signed}"),
            "--json",
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]),
        0,
    );
    let layers = shown["synced_signatures"]["layers"].as_array().unwrap();
    let signatures: Vec<&Value> = layers.iter().filter(|l| l["kind"] == "signature").collect();
    assert_eq!(signatures.len(), 2, "two signers of one payload: {shown:#}");
    assert_eq!(signatures[0]["blob"], signatures[1]["blob"]);
    assert_ne!(signatures[0]["layer"], signatures[1]["layer"]);
    let pod = |namespace: &str| {
        let file = dir.join(format!("pod-{namespace}.json"));
        std::fs::write(
            &file,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "hello", "namespace": namespace},
                "spec": {"containers": [{"name": "hello", "image": format!("{repository}@{signed}")}]}
            })
            .to_string(),
        )
        .unwrap();
        berth(&[
            "check",
            "--policy",
            policy.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--store",
            &store,
            file.to_str().unwrap(),
        ])
    };
    let inside = pod("tool-hello");
    assert_eq!(
        inside.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inside.stdout)
    );
    let outside = pod("tool-other");
    assert_eq!(outside.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&outside.stdout)
            .contains("none of the trusted keys may vouch for it in namespace tool-other"),
        "{}",
        String::from_utf8_lossy(&outside.stdout)
    );

    // A key file that is not a public key: named at its place, exit 2.
    std::fs::write(
        &policy,
        "signatures:\n  keys:\n    - {name: broken, file: tool.key}\n",
    )
    .unwrap();
    let refused = check(&format!("{repository}@{signed}"));
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("policy.yaml:3:7: error: signatures.keys[0].file:"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under `berth serve`, the scheduled sync checks signatures against the served policy's keys
/// and the webhook decides from them: the signed digest is admitted, an unsigned one of the
/// same repository is denied, both without any `berth sync` by hand.
#[test]
fn the_webhook_admits_what_the_scheduled_sync_verified() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-served-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    let repository = format!("{own}/team/web");
    registry.copy_from_testbed("berth/base:1", "team/web:1");
    registry.copy_from_testbed("berth/child:1", "team/web:2");
    let signed = testbed.digest("berth/base:1");
    let unsigned = testbed.digest("berth/child:1");
    let payload = simple_signing(&repository, &signed);
    let signature = sign(&dir, "release", &payload);
    push_cosign(
        &registry,
        "team/web",
        &cosign_tag(&signed, "sig"),
        &[(
            payload,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            json!({"dev.cosignproject.cosign/signature": signature}),
        )],
    );
    std::fs::write(
        dir.join("policy.yaml"),
        "signatures:\n  keys:\n    - {name: release, file: release.pem}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("catalog.yaml"),
        "images:\n  other:\n    image: registry.example/other\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: sqlite://{}\npolicy: policy.yaml\n\
             knowledge_refresh: 100ms\nregistries:\n  {own}: {{insecure: true}}\n\
             sync:\n  interval: 1h\n  repositories: [{repository}]\n  layers: false\n",
            dir.join("berth.db").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", "berth.yaml"])
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = berth_testkit::ServeProcess::start(command);
    let admit = |image: &str| {
        let (status, answer) = server.request(
            "POST",
            "/admission/validate",
            &[("Content-Type", "application/json")],
            &review(image),
        );
        assert_eq!(status, 200, "{answer}");
        answer["response"].clone()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if admit(&format!("{repository}@{signed}"))["allowed"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the signed digest was never admitted: {}",
            admit(&format!("{repository}@{signed}"))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let denied = admit(&format!("{repository}:2"));
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "({unsigned}) carries no signature by a trusted key (release)"
        )),
        "{message}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A hostile referrers index — a thousand entries, forty distinct artifacts — costs a bounded
/// read: the first 32 distinct referrers, each once, and nothing is recorded as an image tag.
#[test]
fn a_thousand_referrers_are_read_within_bounds() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-referrers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "many/app:1");
    let subject = testbed.digest("berth/base:1");
    let mut distinct = Vec::new();
    for index in 0..40 {
        let envelope = json!({"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [], "n": index})
            .to_string()
            .into_bytes();
        let (digest, size) = push_cosign(
            &registry,
            "many/app",
            &format!("artifact-{index}"),
            &[(envelope, "application/vnd.dsse.envelope.v1+json", json!({}))],
        );
        distinct.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size}));
    }
    let entries: Vec<Value> = (0..1000).map(|i| distinct[i % 40].clone()).collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let tag = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    registry.put_manifest("many/app", &tag, index.to_string().as_bytes());
    let synced = report(
        &berth(&[
            "sync",
            "--repo",
            &format!("{own}/many/app"),
            "--insecure-registry",
            &own,
            "--store",
            &store,
            "--no-layers",
            "--json",
        ]),
        0,
    );
    let counts = &synced["repositories"][0];
    assert_eq!(counts["signatures_read"], 1, "{synced:#}");
    // The listing, base:1 by GET and its config, the 40 artifact tags by GET (they are not
    // images: skipped with a warning) and their one shared config; the referrers tag by HEAD,
    // then its index, 32 distinct referrers and one layer each: 1 + 2 + 41 + 1 + 32 + 32.
    assert_eq!(synced["requests"]["get"], 109, "{}", synced["requests"]);
    assert_eq!(synced["requests"]["head"], 1, "{}", synced["requests"]);
    let shown = report(
        &berth(&[
            "provenance",
            &format!("{own}/many/app@{subject}"),
            "--json",
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]),
        0,
    );
    let layers = shown["synced_signatures"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 32, "{shown:#}");
    let images = report(&berth(&["images", "--store", &store, "--json"]), 0);
    let tags = images.to_string();
    assert!(
        !tags.contains(&tag),
        "the referrers tag is no image tag: {images:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signature attached through the OCI 1.1 referrers API after berth first synced the
/// image (CI pushes, then signs): the tag did not move and a referrer has no tag of its own,
/// so only asking again about recently tagged digests finds it. The registry is the test's
/// own `docker-registry` behind a front that adds the referrers API it lacks.
#[test]
fn a_signature_attached_after_the_first_sync_is_found_through_the_referrers_api() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let front = berth_testkit::referrers::ReferrersFront::start(&registry.address);
    let at = front.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-late-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "signatures:\n  keys:\n    - {name: release, file: release.pem}\n",
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "late/app:1");
    let subject = testbed.digest("berth/base:1");
    let repository = format!("{at}/late/app");
    let sync = |recheck: &str| {
        report(
            &berth(&[
                "sync",
                "--repo",
                &repository,
                "--insecure-registry",
                &at,
                "--store",
                &store,
                "--policy",
                policy.to_str().unwrap(),
                "--no-layers",
                "--referrers-recheck",
                recheck,
                "--json",
            ]),
            0,
        )
    };
    let verified = || {
        let shown = report(
            &berth(&[
                "provenance",
                &format!("{repository}@{subject}"),
                "--json",
                "--insecure-registry",
                &at,
                "--store",
                &store,
            ]),
            0,
        );
        shown["synced_signatures"]["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|check| check["verified"] == true)
                    .map(|check| check["key_name"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let referrers_path = format!("/v2/late/app/referrers/{subject}");

    // The first sync: the tag reaches the digest, the API is asked, nothing is there yet.
    let first = sync("24h");
    assert_eq!(first["repositories"][0]["signatures_read"], 0, "{first:#}");
    assert_eq!(front.asked(), [referrers_path]);

    // cosign sign --registry-referrers-mode=oci-1-1: an untagged manifest whose subject is
    // the image, found only through the referrers API.
    let payload = simple_signing(&repository, &subject);
    let signature = sign(&dir, "release", &payload);
    let config = b"{}".to_vec();
    let config_digest = registry.put_blob("late/app", &config);
    let layer_digest = registry.put_blob("late/app", &payload);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": layer_digest, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature}
        }],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 0}
    })
    .to_string();
    let digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
    let answered = registry.put_manifest("late/app", &digest, manifest.as_bytes());
    assert_eq!(answered, digest);
    front.add(
        "late/app",
        &subject,
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": manifest.len(),
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"
        }),
    );

    // Without the recheck the unchanged tag is not asked about: the signature stays unseen.
    let blind = sync("0s");
    assert_eq!(blind["repositories"][0]["signatures_read"], 0, "{blind:#}");
    assert_eq!(front.asked().len(), 1);
    assert!(verified().is_empty());

    // With it (the default, a day) the digest tagged minutes ago is asked again.
    let found = sync("24h");
    assert_eq!(found["repositories"][0]["signatures_read"], 1, "{found:#}");
    assert_eq!(front.asked().len(), 2);
    assert_eq!(verified(), ["release"]);

    // Asked again at the next run, but an unchanged answer is not read again.
    let again = sync("24h");
    assert_eq!(again["repositories"][0]["signatures_read"], 0, "{again:#}");
    assert_eq!(front.asked().len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Promotion gates `signed` and `tested` decide from what the store holds about the candidate
/// digest: blocked while nothing is known, still blocked once a synced signature verified
/// (untested), promoted once a pipeline recorded passing tests; the target tag is read back
/// from the registry.
#[test]
fn promotion_gates_wait_for_a_verified_signature_and_a_passing_test() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-gated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "signatures:\n  keys:\n    - {name: release, file: release.pem}\n",
    )
    .unwrap();
    let repository = format!("{own}/gated/app");
    std::fs::write(
        dir.join("catalog.yaml"),
        format!("images:\n  app:\n    image: {repository}\n    channels: [staging, latest]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest, gates: [signed, tested]}\n",
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "gated/app:staging");
    let candidate = testbed.digest("berth/base:1");
    let catalog = dir.join("catalog.yaml");
    let rules = dir.join("channels.yaml");
    let promote = || {
        berth(&[
            "promote",
            "app",
            "--from",
            "staging",
            "--to",
            "latest",
            "--catalog",
            catalog.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--store",
            &store,
            "--insecure-registry",
            &own,
        ])
    };
    let latest = || {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repository}:latest"),
        ])
    };
    let text = |output: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };

    // Nothing known: both gates block, each saying how to satisfy it.
    let blocked = promote();
    assert_eq!(blocked.status.code(), Some(1), "{}", text(&blocked));
    let said = text(&blocked);
    assert!(
        said.contains("no signature by a trusted key is known"),
        "{said}"
    );
    assert!(said.contains("no passing test result is known"), "{said}");

    // cosign sign, then a sync with the policy's keys: signed, still untested.
    let payload = simple_signing(&repository, &candidate);
    let signature = sign(&dir, "release", &payload);
    push_cosign(
        &registry,
        "gated/app",
        &cosign_tag(&candidate, "sig"),
        &[(
            payload,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            json!({"dev.cosignproject.cosign/signature": signature}),
        )],
    );
    let synced = report(
        &berth(&[
            "sync",
            "--repo",
            &repository,
            "--insecure-registry",
            &own,
            "--store",
            &store,
            "--policy",
            policy.to_str().unwrap(),
            "--no-layers",
            "--json",
        ]),
        0,
    );
    assert_eq!(
        synced["repositories"][0]["signatures_read"], 1,
        "{synced:#}"
    );
    let blocked = promote();
    assert_eq!(blocked.status.code(), Some(1), "{}", text(&blocked));
    let said = text(&blocked);
    assert!(!said.contains("no signature by a trusted key"), "{said}");
    assert!(said.contains("no passing test result is known"), "{said}");

    // The pipeline records its passing tests: the promotion goes out.
    let recorded = berth(&[
        "provenance",
        "record",
        &format!("{repository}@{candidate}"),
        "--tests",
        "passed",
        "--store",
        &store,
    ]);
    assert!(recorded.status.success(), "{}", text(&recorded));
    let promoted = promote();
    assert_eq!(promoted.status.code(), Some(0), "{}", text(&promoted));
    let file = dir.join("latest.json");
    std::fs::write(&file, latest()).unwrap();
    assert_eq!(
        skopeo(&["manifest-digest", file.to_str().unwrap()]).trim(),
        candidate
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pushes an untagged OCI 1.1 referrer of `subject` in `repository` whose one layer is a
/// Sigstore bundle, as cosign 3 attaches signatures and attestations, and lists it on the
/// front's referrers API.
fn push_bundle_referrer(
    registry: &OwnRegistry,
    front: &berth_testkit::referrers::ReferrersFront,
    repository: &str,
    subject: &str,
    bundle: &[u8],
) {
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let config = b"{}".to_vec();
    let config_digest = registry.put_blob(repository, &config);
    let layer_digest = registry.put_blob(repository, bundle);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": BUNDLE, "digest": layer_digest, "size": bundle.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 0}
    })
    .to_string();
    let digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
    assert_eq!(
        registry.put_manifest(repository, &digest, manifest.as_bytes()),
        digest
    );
    front.add(
        repository,
        subject,
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
               "size": manifest.len(), "artifactType": BUNDLE}),
    );
}

/// cosign 3's defaults: the image signature is a Sigstore bundle whose DSSE envelope holds an
/// in-toto statement of type `https://sigstore.dev/cosign/sign/v1`, attached as an OCI 1.1
/// referrer; a test-result attestation the same way. Made with openssl, synced through the
/// referrers API, and admitted by `berth check --store` under the `signatures` and
/// `provenance` rules; a keyless bundle by a certificate is kept and refused, saying why.
#[test]
fn cosign_3_bundles_attached_as_referrers_are_verified() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let front = berth_testkit::referrers::ReferrersFront::start(&registry.address);
    let at = front.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-bundles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    key_pair(&dir, "release");
    key_pair(&dir, "stranger");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "signatures:\n  keys:\n    - {name: release, file: release.pem}\n\
         provenance:\n  require: [tested]\n  from: [attestation]\n",
    )
    .unwrap();
    let catalog = dir.join("catalog.yaml");
    std::fs::write(
        &catalog,
        "images:\n  other:\n    image: registry.example/other\n",
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "v3/app:1");
    let subject = testbed.digest("berth/base:1");
    let hex = subject.trim_start_matches("sha256:");
    let repository = format!("{at}/v3/app");
    let statement = |predicate_type: &str, predicate: Value| {
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": repository, "digest": {"sha256": hex}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        })
        .to_string()
    };
    let bundle = |key: &str, statement: &str, material: Value| {
        let envelope: Value = serde_json::from_slice(&dsse(&dir, key, statement)).unwrap();
        json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
            "dsseEnvelope": envelope,
        })
        .to_string()
        .into_bytes()
    };
    let keyed = json!({"publicKey": {"hint": "release"}, "tlogEntries": []});
    let signed = statement("https://sigstore.dev/cosign/sign/v1", json!({}));
    let tested = statement(
        "https://in-toto.io/attestation/test-result/v0.1",
        json!({"result": "PASSED", "configuration": [], "url": "https://ci.example/runs/7"}),
    );
    push_bundle_referrer(
        &registry,
        &front,
        "v3/app",
        &subject,
        &bundle("release", &signed, keyed.clone()),
    );
    push_bundle_referrer(
        &registry,
        &front,
        "v3/app",
        &subject,
        &bundle("release", &tested, keyed),
    );
    push_bundle_referrer(
        &registry,
        &front,
        "v3/app",
        &subject,
        &bundle(
            "stranger",
            &signed,
            json!({"certificate": {"rawBytes": "MIIB"}}),
        ),
    );

    let synced = report(
        &berth(&[
            "sync",
            "--repo",
            &repository,
            "--insecure-registry",
            &at,
            "--store",
            &store,
            "--policy",
            policy.to_str().unwrap(),
            "--no-layers",
            "--json",
        ]),
        0,
    );
    assert_eq!(
        synced["repositories"][0]["signatures_read"], 1,
        "{synced:#}"
    );
    let shown = report(
        &berth(&[
            "provenance",
            &format!("{repository}@{subject}"),
            "--json",
            "--insecure-registry",
            &at,
            "--store",
            &store,
        ]),
        0,
    );
    let layers = shown["synced_signatures"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{shown:#}");
    let checks = shown["synced_signatures"]["checks"].as_array().unwrap();
    let verified: Vec<(&str, &str)> = checks
        .iter()
        .filter(|check| check["verified"] == true)
        .map(|check| {
            (
                check["predicate_type"].as_str().unwrap_or(""),
                check["tests"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(verified.len(), 2, "{shown:#}");
    assert!(
        verified.contains(&("https://sigstore.dev/cosign/sign/v1", "")),
        "{shown:#}"
    );
    assert!(
        verified.contains(&("https://in-toto.io/attestation/test-result/v0.1", "passed")),
        "{shown:#}"
    );
    assert!(
        checks.iter().any(|check| check["verified"] == false
            && check["refusal"]
                .as_str()
                .is_some_and(|refusal| refusal.contains("keyless bundle"))),
        "{shown:#}"
    );
    let kinds: Vec<&str> = layers
        .iter()
        .map(|layer| layer["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "signature").count(),
        2,
        "{kinds:?}"
    );

    let check = berth(&[
        "check",
        "--policy",
        policy.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--store",
        &store,
        "--image",
        &format!("{repository}@{subject}"),
    ]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
