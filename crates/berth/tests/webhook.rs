//! The admission webhook end to end: the real `berth serve` over TLS on loopback (a CA and
//! serving certificates made by openssl), fed AdmissionReviews wrapping kubectl-made objects by
//! curl. Its verdicts equal `berth check`'s on the same objects, knowledge from the same store;
//! a renewed certificate is picked up without a restart, and a broken one is not; allowed
//! admissions are recorded as usage in the store; policy edits and newly synced knowledge are
//! served without a restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_testkit::ServeProcess;
use serde_json::{Value, json};

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
    let dir = std::env::temp_dir().join(format!("berth-webhook-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A CA (`{name}-ca.crt`) and a serving certificate for 127.0.0.1 signed by it
/// (`{name}.crt`, `{name}.key`), made with openssl in `dir`.
fn make_certificates(dir: &Path, name: &str) {
    let path = |file: String| dir.join(file).display().to_string();
    let (ca_key, ca_crt) = (
        path(format!("{name}-ca.key")),
        path(format!("{name}-ca.crt")),
    );
    let (key, csr, crt) = (
        path(format!("{name}.key")),
        path(format!("{name}.csr")),
        path(format!("{name}.crt")),
    );
    let ext = path(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap_or_else(|e| panic!("{e}"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args([
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}-ca"),
                "-keyout",
                &ca_key,
                "-out",
                &ca_crt,
            ]),
    );
    run_ok(Command::new("openssl").arg("req").args(ec).args([
        "-subj",
        "/CN=berth-webhook",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]));
    run_ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]));
}

/// A running `berth serve` (the testkit's `ServeProcess`), killed if the test ends early.
struct Server {
    process: ServeProcess,
    address: String,
}

impl Server {
    fn start(args: &[String]) -> Server {
        let mut command = berth();
        command.arg("--log-json").arg("serve").args(args);
        let process = ServeProcess::start(command);
        let address = process.address.clone();
        Server { process, address }
    }

    /// The next log event with `message`, within 30 s.
    fn wait_for_log(&self, message: &str) -> Value {
        self.process.wait_for_log(message)
    }

    /// POSTs `body` over HTTPS trusting `ca`; `None` when TLS or the connection fails.
    fn post(&self, ca: &Path, path: &str, body: &Value) -> Option<Value> {
        let output = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(ca)
            .args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                "@-",
            ])
            .arg(format!("https://{}{path}", self.address))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(body.to_string().as_bytes())?;
                }
                child.wait_with_output()
            })
            .unwrap_or_else(|error| panic!("cannot run curl: {error}"));
        if !output.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}")))
    }
}

fn fixture(name: &str) -> String {
    format!("crates/berth/tests/fixtures/k8s/{name}")
}

fn review(object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{}", object["metadata"]["name"].as_str().unwrap_or_default()),
            "kind": {"group": "", "version": "v1", "kind": object["kind"]},
            "resource": {"group": "", "version": "v1", "resource": "x"},
            "namespace": "tool-a",
            "operation": "CREATE",
            "userInfo": {"username": "someone"},
            "object": object,
            "dryRun": false
        }
    })
}

/// What the webhook says, in `berth check`'s terms: allowed, denial texts, warning texts,
/// patches.
fn expected_from_check(verdict: &Value) -> (Value, Vec<String>, Vec<String>, Value) {
    let text = |finding: &Value| {
        format!(
            "container {:?} ({}): {}: {}",
            finding["container"].as_str().unwrap_or_default(),
            finding["image"].as_str().unwrap_or_default(),
            finding["rule"].as_str().unwrap_or_default(),
            finding["message"].as_str().unwrap_or_default()
        )
    };
    let texts = |key: &str| -> Vec<String> {
        verdict[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect()
    };
    let patches = verdict.get("patches").cloned().unwrap_or(json!([]));
    (
        verdict["allowed"].clone(),
        texts("denials"),
        texts("warnings"),
        patches,
    )
}

/// Posts the fixture `name` to the webhook (validate, then mutate) and checks that it answers
/// as `berth check --json` did (`check_stdout`): allowed, denial message, warnings, patches.
fn assert_webhook_agrees(server: &Server, ca: &Path, name: &str, check_stdout: &[u8]) {
    let report: Value =
        serde_json::from_slice(check_stdout).unwrap_or_else(|error| panic!("{name}: {error}"));
    let verdict = &report["results"][0]["verdict"];
    let (allowed, denials, warnings, patches) = expected_from_check(verdict);

    let text = std::fs::read_to_string(repository_root().join(fixture(name)))
        .unwrap_or_else(|e| panic!("{e}"));
    let object: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let body = review(&object);
    let validated = server
        .post(ca, "/admission/validate", &body)
        .unwrap_or_else(|| panic!("{name}: the webhook did not answer"));
    let response = &validated["response"];
    assert_eq!(validated["apiVersion"], json!("admission.k8s.io/v1"));
    assert_eq!(response["uid"], body["request"]["uid"], "{name}");
    assert_eq!(response["allowed"], allowed, "{name}: {response}");
    let message = response["status"]["message"].as_str().map(str::to_string);
    let object_name = report["results"][0]["object"].as_str().unwrap_or_default();
    let expected_message = (!denials.is_empty())
        .then(|| format!("berth denied {object_name}: {}", denials.join("; ")));
    assert_eq!(message, expected_message, "{name}");
    let got_warnings: Vec<String> = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got_warnings, warnings, "{name}");

    let mutated = server
        .post(ca, "/admission/mutate", &body)
        .unwrap_or_else(|| panic!("{name}: the webhook did not answer"));
    let got_patches = match mutated["response"]["patch"].as_str() {
        Some(encoded) => serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}")),
        None => json!([]),
    };
    assert_eq!(got_patches, patches, "{name}");
    assert_eq!(mutated["response"]["allowed"], json!(true), "{name}");
}

#[test]
fn webhook_over_tls_answers_as_berth_check_and_reloads_its_certificate() {
    let testbed = berth_testkit::Testbed::get();
    let dir = scratch("tls");
    make_certificates(&dir, "first");
    make_certificates(&dir, "second");
    let (cert, key) = (dir.join("serving.crt"), dir.join("serving.key"));
    std::fs::copy(dir.join("first.crt"), &cert).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(dir.join("first.key"), &key).unwrap_or_else(|e| panic!("{e}"));
    // Knowledge: a store synced from the test bed's registry.
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    run_ok(berth().args([
        "sync",
        &format!("--store={store}"),
        &format!("--insecure-registry={}", testbed.plain()),
        "--repo=127.0.0.1:5050/berth/base",
        "--repo=127.0.0.1:5050/berth/child",
        "--repo=127.0.0.1:5050/berth/multi",
    ]));
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "registries:\n  allow: [127.0.0.1:5050/berth/**]\ncatalog: {}\nlifecycle: {}\n\
         base:\n  approved: [bookworm]\n  unknown: warn\ndigest:\n  action: pin\n  unknown: warn\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("serve.yaml");
    let catalog = repository_root().join("examples/catalog.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: {}\ncatalog_poll_interval: 100ms\n",
            catalog.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = |p: &Path| p.display().to_string();
    let server = Server::start(&[
        format!("--config={}", path(&config)),
        format!("--policy={}", path(&policy)),
        format!("--store={store}"),
        format!("--tls-cert={}", path(&cert)),
        format!("--tls-key={}", path(&key)),
        "--knowledge-refresh=100ms".to_string(),
    ]);
    let first_ca = dir.join("first-ca.crt");

    for name in ["deployment.json", "pod.json", "job.json", "cronjob.json"] {
        let check = berth()
            .args(["check", &format!("--policy={}", path(&policy))])
            .args([
                "--catalog=examples/catalog.yaml",
                &format!("--store={store}"),
            ])
            .args(["--json", &fixture(name)])
            .output()
            .unwrap_or_else(|error| panic!("{error}"));
        assert_webhook_agrees(&server, &first_ca, name, &check.stdout);
    }
    // The job's base:1 was pinned to the digest the registry serves (checked by skopeo).
    let job_check = berth()
        .args(["check", &format!("--policy={}", path(&policy))])
        .args([
            "--catalog=examples/catalog.yaml",
            &format!("--store={store}"),
        ])
        .args(["--json", &fixture("job.json")])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let report: Value = serde_json::from_slice(&job_check.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report["results"][0]["verdict"]["patches"][0]["value"],
        json!(format!(
            "127.0.0.1:5050/berth/base:1@{}",
            testbed.digest("berth/base:1")
        ))
    );

    // Knowledge refresh: a repository synced after the start gets pinned without a restart.
    let upper = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "upper"},
        "spec": {"containers": [{"name": "u", "image": "127.0.0.1:5050/berth/upper:1"}]}});
    let mut upper_review = review(&upper);
    upper_review["request"]["dryRun"] = json!(true);
    let pinned = |server: &Server| {
        let answer = server
            .post(&first_ca, "/admission/mutate", &upper_review)
            .unwrap_or_else(|| panic!("the webhook did not answer"));
        answer["response"].get("patch").is_some()
    };
    assert!(!pinned(&server), "berth/upper is not synced yet");
    run_ok(berth().args([
        "sync",
        &format!("--store={store}"),
        &format!("--insecure-registry={}", testbed.plain()),
        "--repo=127.0.0.1:5050/berth/upper",
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pinned(&server) {
        assert!(
            Instant::now() < deadline,
            "the new knowledge was never used"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Policy reload: an edit is served from the next request; a broken edit is not.
    let evil = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evil"},
        "spec": {"containers": [{"name": "e", "image": "evil.io/x:1"}]}});
    let mut evil_review = review(&evil);
    evil_review["request"]["dryRun"] = json!(true);
    let evil_allowed = |server: &Server| {
        server
            .post(&first_ca, "/admission/validate", &evil_review)
            .unwrap_or_else(|| panic!("the webhook did not answer"))["response"]["allowed"]
            .clone()
    };
    assert_eq!(evil_allowed(&server), json!(false));
    std::fs::write(
        &policy,
        "registries:\n  mode: warn\n  allow: [127.0.0.1:5050/berth/**]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.wait_for_log("policy reloaded");
    assert_eq!(evil_allowed(&server), json!(true));
    std::fs::write(&policy, "registries:\n  allow: []\n").unwrap_or_else(|e| panic!("{e}"));
    server.wait_for_log("policy not reloaded; the last good one is kept");
    assert_eq!(evil_allowed(&server), json!(true));

    // Renewal: the files are replaced in place; the new certificate is served without restart.
    let second_ca = dir.join("second-ca.crt");
    // A dry run, so the probe is not recorded as usage.
    let mut probe = review(&json!({"kind": "Pod", "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "probe", "image": "127.0.0.1:5050/berth/base:1"}]}}));
    probe["request"]["dryRun"] = json!(true);
    assert!(
        server
            .post(&second_ca, "/admission/validate", &probe)
            .is_none()
    );
    std::fs::copy(dir.join("second.key"), &key).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(dir.join("second.crt"), &cert).unwrap_or_else(|e| panic!("{e}"));
    server.wait_for_log("serving certificate reloaded");
    let answer = server
        .post(&second_ca, "/admission/validate", &probe)
        .unwrap_or_else(|| panic!("the renewed certificate is not served"));
    assert_eq!(answer["response"]["allowed"], json!(true));
    assert!(
        server
            .post(&first_ca, "/admission/validate", &probe)
            .is_none()
    );

    // A broken renewal is reported and the last good certificate keeps being served.
    std::fs::write(&cert, "not a certificate\n").unwrap_or_else(|e| panic!("{e}"));
    server.wait_for_log("serving certificate not reloaded; the last good one is kept");
    assert!(
        server
            .post(&second_ca, "/admission/validate", &probe)
            .is_some()
    );

    // SIGTERM: the server stops cleanly and the usage writer drains. Only the Job was allowed
    // (the probe Pod runs no container), so one container was recorded, with its digest.
    let mut server = server;
    let killed = Command::new("kill")
        .args(["-TERM", &server.process.pid().to_string()])
        .status()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(killed.success());
    let status = server.process.wait();
    assert!(status.success(), "berth serve exited with {status}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let usage = runtime.block_on(async {
        let store = berth_store::Store::open(&store)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let usage = store
            .usage(&berth_store::UsageQuery::default())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        store.close().await;
        usage
    });
    let recorded: Vec<_> = usage
        .into_iter()
        .map(|entry| {
            assert_eq!(entry.source, berth_store::UsageSource::Admission);
            let usage = entry.usage;
            (
                usage.namespace,
                usage.kind,
                usage.name,
                usage.container,
                usage.image,
                usage.digest.map(|digest| digest.to_string()),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [(
            "tool-a".to_string(),
            "Job".to_string(),
            "migrate".to_string(),
            "migrate".to_string(),
            "127.0.0.1:5050/berth/base:1".to_string(),
            Some(testbed.digest("berth/base:1"))
        )]
    );
}

#[test]
fn webhook_and_check_resolve_tags_the_store_does_not_know_alike() {
    let testbed = berth_testkit::Testbed::get();
    let dir = scratch("resolve");
    make_certificates(&dir, "first");
    // No store: every tag is unknown to berth's knowledge and must be resolved to be pinned.
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "registries:\n  allow: [127.0.0.1:5050/berth/**]\ncatalog: {}\nlifecycle: {}\n\
         base:\n  approved: [bookworm]\n  unknown: warn\ndigest:\n  action: pin\n  unknown: deny\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("serve.yaml");
    let catalog = repository_root().join("examples/catalog.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: {}\nregistries:\n  {}: {{insecure: true}}\n",
            catalog.display(),
            testbed.plain()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = |p: &Path| p.display().to_string();
    let server = Server::start(&[
        format!("--config={}", path(&config)),
        format!("--policy={}", path(&policy)),
        format!("--tls-cert={}", path(&dir.join("first.crt"))),
        format!("--tls-key={}", path(&dir.join("first.key"))),
        "--resolve".to_string(),
        "--resolve-deadline=3s".to_string(),
    ]);
    let ca = dir.join("first-ca.crt");
    let check = |name: &str| {
        berth()
            .args(["check", &format!("--policy={}", path(&policy))])
            .args(["--catalog=examples/catalog.yaml", "--resolve"])
            .arg(format!("--insecure-registry={}", testbed.plain()))
            .args(["--json", &fixture(name)])
            .output()
            .unwrap_or_else(|error| panic!("{error}"))
    };
    for name in ["deployment.json", "job.json"] {
        assert_webhook_agrees(&server, &ca, name, &check(name).stdout);
    }
    // The job's base:1 is pinned to the digest skopeo recorded, though no store knows it.
    let report: Value =
        serde_json::from_slice(&check("job.json").stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report["results"][0]["verdict"]["patches"][0]["value"],
        json!(format!(
            "127.0.0.1:5050/berth/base:1@{}",
            testbed.digest("berth/base:1")
        ))
    );
    assert_eq!(report["allowed"], json!(true), "{report}");
}
