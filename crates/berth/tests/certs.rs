//! `berth certs` end to end (issue 5), judged by tools that are not berth: openssl reads and
//! verifies what it wrote, and the real `berth serve` serves it to curl trusting only `ca.crt`
//! under the Service's name, as the API server would call the webhook. Existing files are never
//! replaced without `--force`, and `--reuse-ca` renews the leaf leaving the CA byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use berth_testkit::ServeProcess;
use serde_json::Value;

const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .current_dir(repository_root())
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_POLICY")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_LOG");
    command
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-certs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"))
}

fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `berth certs --out DIR --json ARGS...`, which must succeed; its report.
fn certs(dir: &Path, args: &[&str]) -> Value {
    let stdout = run_ok(
        berth()
            .arg("certs")
            .arg("--out")
            .arg(dir)
            .arg("--json")
            .args(args),
    );
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn openssl_text(path: &Path) -> String {
    run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(path),
    )
}

fn openssl_verify(dir: &Path) -> String {
    run_ok(
        Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dir.join("ca.crt"))
            .arg(dir.join("tls.crt")),
    )
}

/// Names in a directory, sorted: nothing but the set (no temporary files left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{error}"))
        .map(|entry| {
            entry
                .unwrap_or_else(|error| panic!("{error}"))
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// GET /healthz from `server` over HTTPS as `host`, trusting only `ca`; curl's output.
fn curl_healthz(server: &ServeProcess, ca: &Path, host: &str) -> Output {
    let port = server.port();
    run(Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/healthz")))
}

#[test]
fn the_webhook_serves_with_the_certificates_berth_certs_makes() {
    let dir = scratch("serve").join("out");
    let report = certs(&dir, &["--dns", "berth.example.org", "--ip", "127.0.0.1"]);

    // The report: the four files, the names, the caBundle.
    let written: Vec<PathBuf> = report["written"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|path| PathBuf::from(path.as_str().unwrap_or_default()))
        .collect();
    let mut written_names: Vec<String> = written
        .iter()
        .map(|path| {
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    written_names.sort();
    assert_eq!(written_names, FILES);
    assert_eq!(listing(&dir), FILES);
    let names = [
        "berth-webhook.berth.svc",
        "berth-webhook.berth.svc.cluster.local",
        "berth-webhook.berth",
        "berth-webhook",
        "berth.example.org",
        "127.0.0.1",
    ];
    assert_eq!(report["names"], serde_json::json!(names));
    assert_eq!(report["ca_reused"], false);
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(report["ca_bundle"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(bundle, read(&dir, "ca.crt"));

    // Keys are for the owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for (name, mode) in [
            ("ca.key", 0o600),
            ("tls.key", 0o600),
            ("ca.crt", 0o644),
            ("tls.crt", 0o644),
        ] {
            let metadata =
                std::fs::metadata(dir.join(name)).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(metadata.permissions().mode() & 0o777, mode, "{name}");
        }
    }

    // openssl: the leaf chains to the CA; the CA may sign, the leaf may not and serves TLS.
    assert!(openssl_verify(&dir).contains(": OK"));
    let ca = openssl_text(&dir.join("ca.crt"));
    assert!(ca.contains("CA:TRUE"), "{ca}");
    assert!(ca.contains("Certificate Sign"), "{ca}");
    let leaf = openssl_text(&dir.join("tls.crt"));
    assert!(leaf.contains("CA:FALSE"), "{leaf}");
    assert!(leaf.contains("TLS Web Server Authentication"), "{leaf}");
    assert!(!leaf.contains("Certificate Sign"), "{leaf}");
    for name in &names[..5] {
        assert!(
            leaf.contains(&format!("DNS:{name},")) || leaf.contains(&format!("DNS:{name}\n")),
            "{name}: {leaf}"
        );
    }
    assert!(leaf.contains("IP Address:127.0.0.1"), "{leaf}");
    for key in ["ca.key", "tls.key"] {
        let text = run_ok(
            Command::new("openssl")
                .args(["pkey", "-noout", "-text", "-in"])
                .arg(dir.join(key)),
        );
        assert!(text.contains("prime256v1"), "{key}: {text}");
    }

    // berth serve with them, called as the API server calls the webhook.
    let mut serve = berth();
    serve.args([
        "--log-json",
        "serve",
        "--listen=127.0.0.1:0",
        "--catalog=examples/catalog.yaml",
    ]);
    serve.arg("--tls-cert").arg(dir.join("tls.crt"));
    serve.arg("--tls-key").arg(dir.join("tls.key"));
    let server = ServeProcess::start(serve);
    let ca = dir.join("ca.crt");
    let answer = curl_healthz(&server, &ca, "berth-webhook.berth.svc");
    assert!(
        answer.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(!answer.stdout.is_empty());
    // A name the certificate does not carry is refused by the client: the names matter.
    let wrong = curl_healthz(&server, &ca, "other-service.berth.svc");
    assert!(
        !wrong.status.success(),
        "a name outside the certificate was accepted"
    );
}

#[test]
fn existing_files_are_kept_without_force() {
    let dir = scratch("force");
    certs(&dir, &[]);
    let before: Vec<Vec<u8>> = FILES.iter().map(|name| read(&dir, name)).collect();

    let again = run(berth().arg("certs").arg("--out").arg(&dir));
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!("{} already exists", dir.join("ca.crt").display())),
        "{stderr}"
    );
    let after: Vec<Vec<u8>> = FILES.iter().map(|name| read(&dir, name)).collect();
    assert_eq!(before, after);

    // Any one of the four is enough to refuse, and the message names it.
    let lone = scratch("force-lone");
    std::fs::write(lone.join("tls.key"), "mine").unwrap_or_else(|error| panic!("{error}"));
    let refused = run(berth().arg("certs").arg("--out").arg(&lone));
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("tls.key already exists"), "{stderr}");
    assert_eq!(listing(&lone), ["tls.key"]);
    assert_eq!(read(&lone, "tls.key"), b"mine");

    // --force replaces the whole set.
    let report = certs(&dir, &["--force"]);
    assert_eq!(report["written"].as_array().map(Vec::len), Some(4));
    for (name, old) in FILES.iter().zip(&before) {
        assert_ne!(&read(&dir, name), old, "{name} was not replaced");
    }
    assert_eq!(listing(&dir), FILES);
    assert!(openssl_verify(&dir).contains(": OK"));
}

#[test]
fn reuse_ca_renews_the_leaf_and_keeps_the_ca_byte_for_byte() {
    let dir = scratch("reuse");
    let first = certs(&dir, &[]);
    let (ca_crt, ca_key) = (read(&dir, "ca.crt"), read(&dir, "ca.key"));
    let (tls_crt, tls_key) = (read(&dir, "tls.crt"), read(&dir, "tls.key"));

    let renewed = certs(&dir, &["--reuse-ca", "--days", "30"]);
    assert_eq!(renewed["ca_reused"], true);
    assert_eq!(renewed["ca_bundle"], first["ca_bundle"]);
    assert_eq!(renewed["written"].as_array().map(Vec::len), Some(2));
    assert_eq!(read(&dir, "ca.crt"), ca_crt);
    assert_eq!(read(&dir, "ca.key"), ca_key);
    assert_ne!(read(&dir, "tls.crt"), tls_crt);
    assert_ne!(read(&dir, "tls.key"), tls_key);
    assert!(openssl_verify(&dir).contains(": OK"));
    assert_eq!(listing(&dir), FILES);

    // A CA made by openssl (the steps docs/admission.md used to give) can be reused too: the
    // leaf's issuer must match its subject exactly for openssl to chain them.
    let foreign = scratch("reuse-openssl");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/O=Example Platform/CN=platform webhooks CA"])
            .arg("-keyout")
            .arg(foreign.join("ca.key"))
            .arg("-out")
            .arg(foreign.join("ca.crt")),
    );
    // It expires in two days: a leaf for a year would outlive it and is refused.
    let outliving = run(berth().args(["certs", "--reuse-ca", "--out"]).arg(&foreign));
    assert_eq!(outliving.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&outliving.stderr);
    assert!(stderr.contains("ca.crt expires at"), "{stderr}");
    assert_eq!(listing(&foreign), ["ca.crt", "ca.key"]);
    certs(&foreign, &["--reuse-ca", "--days", "1"]);
    assert!(openssl_verify(&foreign).contains(": OK"));

    // A key that is not the CA's: refused before anything is written.
    let mismatched = scratch("reuse-mismatch");
    std::fs::copy(dir.join("ca.crt"), mismatched.join("ca.crt"))
        .unwrap_or_else(|error| panic!("{error}"));
    std::fs::copy(foreign.join("ca.key"), mismatched.join("ca.key"))
        .unwrap_or_else(|error| panic!("{error}"));
    let refused = run(berth()
        .args(["certs", "--reuse-ca", "--out"])
        .arg(&mismatched));
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("does not verify against"), "{stderr}");
    assert_eq!(listing(&mismatched), ["ca.crt", "ca.key"]);

    // Nothing to reuse: the message names the missing file.
    let empty = scratch("reuse-empty");
    let missing = run(berth().args(["certs", "--reuse-ca", "--out"]).arg(&empty));
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("ca.crt"), "{stderr}");
    assert!(listing(&empty).is_empty());
}
