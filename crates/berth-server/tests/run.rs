//! `berth_server::run_with_clock` called directly on port 0: every task starts under one
//! shutdown signal, queued usage is written before it returns, and a policy broken at start
//! keeps the server unready (503 with its errors) until it is fixed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::catalog::{self, Format};
use berth_server::Stopped;
use berth_server::catalog_source::CatalogSource;
use berth_server::config::ServeSettings;
use berth_server::leases::LeaseSettings;
use berth_testkit::metrics::Samples;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;

fn now() -> DateTime<Utc> {
    catalog::parse_moment("2026-08-01T12:00:00Z").unwrap_or_else(|error| panic!("{error}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "berth-run-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const POLICY: &str = "registries:\n  allow: [127.0.0.1:5050/berth/**]\n";

fn settings(dir: &Path, policy: &Path) -> ServeSettings {
    ServeSettings {
        listen: "127.0.0.1:0"
            .parse()
            .unwrap_or_else(|error| panic!("{error}")),
        catalog: CatalogSource {
            path: repository_root().join("examples/catalog.yaml"),
            format: Format::Berth,
        },
        poll_interval: Duration::from_millis(50),
        tls: None,
        store: Some(format!("sqlite://{}", dir.join("berth.db").display())),
        sync: None,
        promotions: None,
        channels_api: None,
        resolve: None,
        namespace_labels: None,
        policy: Some(policy.to_path_buf()),
        knowledge_refresh: Duration::from_millis(100),
        leases: LeaseSettings {
            holder: LeaseSettings::holder_for("test"),
            ttl: LeaseSettings::DEFAULT_TTL,
        },
        connections: Default::default(),
        freshness: None,
        rebuild: None,
        retention: None,
        notifications: None,
        ui: None,
    }
}

/// A Pod of `containers` containers, all on the test bed's base image.
fn review(name: &str, containers: usize) -> Value {
    let containers: Vec<Value> = (0..containers)
        .map(|index| json!({"name": format!("c{index}"), "image": "127.0.0.1:5050/berth/base:1"}))
        .collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{name}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": "tool-a",
            "operation": "CREATE",
            "userInfo": {"username": "tool-a"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "tool-a"},
                "spec": {"containers": containers},
            },
            "dryRun": false,
        }
    })
}

struct Running {
    address: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<Stopped>>,
    client: reqwest::Client,
}

async fn start(settings: ServeSettings) -> Running {
    start_with_clock(settings, Arc::new(now)).await
}

async fn start_with_clock(settings: ServeSettings, clock: berth_server::Clock) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"))
        .to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(berth_server::run_with_clock(
        listener,
        settings,
        clock,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        address,
        stop,
        server,
        client: reqwest::Client::new(),
    }
}

impl Running {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("http://{}{path}", self.address))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_text(path, body.to_string()).await
    }

    async fn post_text(&self, path: &str, body: String) -> (u16, Value) {
        let response = self
            .client
            .post(format!("http://{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn metrics(&self) -> Samples {
        let response = self
            .client
            .get(format!("http://{}/metrics", self.address))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET /metrics: {error}"));
        assert_eq!(response.status().as_u16(), 200);
        Samples::parse(&response.text().await.unwrap_or_default())
    }

    async fn wait_ready(&self) -> Value {
        for _ in 0..200 {
            let (status, body) = self.get("/readyz").await;
            if status == 200 {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("never ready: {:?}", self.get("/readyz").await);
    }

    async fn shut_down(self) -> Stopped {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.server)
            .await
            .unwrap_or_else(|_| panic!("run did not return within 30 s of the shutdown signal"))
            .unwrap_or_else(|error| panic!("run panicked: {error}"))
            .unwrap_or_else(|error| panic!("run failed: {error}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_task_and_writes_the_queued_usage() {
    let dir = temp_dir("usage");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap_or_else(|error| panic!("{error}"));
    let settings = settings(&dir, &policy);
    let store_url = settings.store.clone().unwrap_or_default();
    let server = start(settings).await;
    server.wait_ready().await;

    // 20 admissions of 3 containers each, answered at once; their usage goes to the queue.
    for index in 0..20 {
        let (status, body) = server
            .post("/admission/validate", &review(&format!("pod-{index}"), 3))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"]["allowed"], true, "{body}");
    }
    let stopped = server.shut_down().await;
    assert_eq!(
        stopped.tasks,
        vec![
            "catalog reload",
            "policy reload",
            "knowledge refresh",
            "usage writer"
        ]
    );
    assert_eq!(stopped.usage_written, 60, "every queued record is written");
    let store = berth_store::Store::open(&store_url)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let usage = store
        .usage(&berth_store::UsageQuery::default())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(usage.len(), 60);
    store.close().await;
}

/// A Pod running `image`, as [`review`] makes them.
fn review_of(name: &str, image: &str) -> Value {
    let mut review = review(name, 1);
    review["request"]["object"]["spec"]["containers"][0]["image"] = json!(image);
    review
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_review_by_verdict_and_time_it() {
    let dir = temp_dir("metrics");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!("{POLICY}digest:\n  action: require\n  mode: warn\n"),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    // A clock the test moves: the snapshot's age counts on it.
    let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let clock_offset = Arc::clone(&offset);
    let clock: berth_server::Clock = Arc::new(move || {
        now() + chrono::Duration::seconds(clock_offset.load(std::sync::atomic::Ordering::Relaxed))
    });
    let server = start_with_clock(settings(&dir, &policy), clock).await;
    server.wait_ready().await;
    let before = server.metrics().await;
    assert_eq!(before.sum("berth_admission_requests_total", &[]), 0.0);
    assert_eq!(before.sum("berth_admission_errors_total", &[]), 0.0);
    assert_eq!(
        before.get(r#"berth_admission_errors_total{reason="not_json"}"#),
        0.0,
        "every reason is there from the start"
    );
    assert!(
        before
            .0
            .contains_key(r#"berth_admission_errors_total{reason="not_json"}"#)
    );

    let pinned = "127.0.0.1:5050/berth/base:1@sha256:696fe8dd90bb932151fbed1256e10b03d623b28e33d3535d16965eb611729df4";
    let answers = [
        ("/admission/validate", review_of("allowed", pinned), true),
        (
            "/admission/validate",
            review_of("warned", "127.0.0.1:5050/berth/base:1"),
            true,
        ),
        (
            "/admission/validate",
            review_of("denied", "docker.io/library/nginx:1"),
            false,
        ),
        (
            "/admission/mutate",
            review_of("mutated", "docker.io/library/nginx:1"),
            true,
        ),
    ];
    for (path, body, allowed) in &answers {
        let (status, answer) = server.post(path, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["response"]["allowed"], *allowed, "{answer}");
    }
    let (status, _) = server
        .post_text("/admission/validate", "{\"apiVersion\": ".to_string())
        .await;
    assert_eq!(status, 400);

    let samples = server.metrics().await;
    let requests = |endpoint: &str, verdict: &str| {
        samples.get(&format!(
            "berth_admission_requests_total{{endpoint=\"{endpoint}\",operation=\"CREATE\",kind=\"Pod\",verdict=\"{verdict}\"}}"
        ))
    };
    assert_eq!(requests("validate", "allowed"), 1.0, "{samples:?}");
    assert_eq!(requests("validate", "warned"), 1.0, "{samples:?}");
    assert_eq!(requests("validate", "denied"), 1.0, "{samples:?}");
    assert_eq!(requests("mutate", "allowed"), 1.0, "{samples:?}");
    assert_eq!(
        samples.get(r#"berth_admission_requests_total{endpoint="validate",operation="unknown",kind="unknown",verdict="error"}"#),
        1.0,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#"berth_admission_errors_total{reason="not_json"}"#),
        1.0
    );
    assert_eq!(samples.sum("berth_admission_errors_total", &[]), 1.0);
    // Findings of the validating answers only: the denied Pod's registry, and the digest
    // warnings of the two tags.
    assert_eq!(
        samples.get(r#"berth_admission_findings_total{rule="registries",action="enforce"}"#),
        1.0,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#"berth_admission_findings_total{rule="digest",action="warn"}"#),
        2.0,
        "{samples:?}"
    );
    assert_eq!(samples.sum("berth_admission_findings_total", &[]), 3.0);
    // The histogram counts what the counter counts, per endpoint, and its buckets add up.
    for endpoint in ["validate", "mutate"] {
        let label = format!("endpoint=\"{endpoint}\"");
        let counted = samples.sum("berth_admission_requests_total", &[&label]);
        let count = samples.get(&format!(
            "berth_admission_duration_seconds_count{{{label}}}"
        ));
        assert_eq!(count, counted, "{endpoint}: {samples:?}");
        assert_eq!(
            samples.get(&format!(
                "berth_admission_duration_seconds_bucket{{{label},le=\"+Inf\"}}"
            )),
            count
        );
        assert!(
            samples.get(&format!(
                "berth_admission_duration_seconds_bucket{{{label},le=\"10\"}}"
            )) == count,
            "a local review takes less than ten seconds"
        );
        assert!(samples.get(&format!("berth_admission_duration_seconds_sum{{{label}}}")) > 0.0);
    }
    assert_eq!(
        samples.get(r#"berth_admission_duration_seconds_count{endpoint="validate"}"#),
        4.0
    );

    // The snapshot was read from the store at start; a minute later, the refresh (every
    // 100 ms) has found it current again, so its age stays small.
    assert_eq!(samples.get("berth_knowledge_snapshot_age_seconds"), 0.0);
    assert!(
        samples
            .0
            .contains_key("berth_knowledge_snapshot_generation")
    );
    offset.store(60, std::sync::atomic::Ordering::Relaxed);
    let mut age = f64::MAX;
    for _ in 0..100 {
        age = server
            .metrics()
            .await
            .get("berth_knowledge_snapshot_age_seconds");
        if age < 60.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(age, 0.0, "the refresh marks the snapshot current");
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_broken_at_start_is_unready_until_fixed() {
    let dir = temp_dir("broken");
    let policy = dir.join("policy.yaml");
    // `registires` is a typo, reported with its place.
    std::fs::write(
        &policy,
        "registires:\n  allow: [127.0.0.1:5050/berth/**]\nbase:\n  approved: [no-such-entry]\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let server = start(settings(&dir, &policy)).await;
    let mut ready = (0, Value::Null);
    for _ in 0..100 {
        ready = server.get("/readyz").await;
        if ready.1["status"] == "no policy loaded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    let errors = ready.1["errors"].to_string();
    assert!(errors.contains("policy.yaml:1:1"), "{errors}");
    assert!(errors.contains("registires"), "{errors}");
    let (status, body) = server.post("/admission/validate", &review("pod", 1)).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("no_policy")));
    let (_, status_body) = server.get("/api/v1/status").await;
    assert_eq!(status_body["policy"]["loaded"], false, "{status_body}");
    let samples = server.metrics().await;
    assert_eq!(samples.get("berth_policy_loaded"), 0.0);
    assert_eq!(samples.get("berth_policy_last_reload_success"), 0.0);
    assert!(samples.get(r#"berth_policy_reload_total{result="failure"}"#) >= 1.0);
    assert_eq!(
        samples.get(r#"berth_admission_errors_total{reason="no_policy"}"#),
        1.0,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#"berth_admission_requests_total{endpoint="validate",operation="CREATE",kind="Pod",verdict="error"}"#),
        1.0,
        "{samples:?}"
    );

    // The typo fixed, the base the catalog does not name is still an error: the policy is
    // checked against the catalog as `berth check` checks it.
    std::fs::write(
        &policy,
        "registries:\n  allow: [127.0.0.1:5050/berth/**]\nbase:\n  approved: [no-such-entry]\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let mut errors = String::new();
    for _ in 0..100 {
        let (status, body) = server.get("/readyz").await;
        assert_eq!(status, 503, "{body}");
        errors = body["errors"].to_string();
        if errors.contains("no-such-entry") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(errors.contains("policy.yaml:4:"), "{errors}");

    // Fixed: the watcher picks it up and the server becomes ready.
    std::fs::write(&policy, POLICY).unwrap_or_else(|error| panic!("{error}"));
    server.wait_ready().await;
    let samples = server.metrics().await;
    assert_eq!(samples.get("berth_policy_loaded"), 1.0);
    assert_eq!(samples.get("berth_policy_last_reload_success"), 1.0);
    assert_eq!(
        samples.get(r#"berth_policy_reload_total{result="success"}"#),
        1.0
    );
    let (status, body) = server.post("/admission/validate", &review("pod", 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    let stopped = server.shut_down().await;
    assert!(
        stopped.tasks.contains(&"policy reload"),
        "{:?}",
        stopped.tasks
    );
}

/// Reads from `stream` until the server closes it or `limit` passes; true when it closed.
fn closed_by_server(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(limit))
        .unwrap_or_else(|error| panic!("{error}"));
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// issue 15, item 4: a client sending its headers a byte at a time, or never finishing a TLS
/// handshake, held its connection for minutes; enough of them starved everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_open_connections_are_bounded() {
    use std::io::Write as _;
    let dir = temp_dir("slow");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap_or_else(|error| panic!("{error}"));
    let mut plain = settings(&dir, &policy);
    plain.connections = berth_server::connections::ConnectionLimits {
        handshake_timeout: Duration::from_millis(500),
        header_read_timeout: Duration::from_secs(1),
        max_connections: 2,
    };
    let server = start(plain).await;
    server.wait_ready().await;
    let address = server.address.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // Two clients that send half a request line and stop: they hold both slots.
        let mut slow: Vec<std::net::TcpStream> = (0..2)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(&address)
                    .unwrap_or_else(|error| panic!("{error}"));
                stream
                    .write_all(b"GET /healthz HT")
                    .unwrap_or_else(|error| panic!("{error}"));
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // A third client is answered only once a slot frees, when the slow ones are cut off.
        let mut third =
            std::net::TcpStream::connect(&address).unwrap_or_else(|error| panic!("{error}"));
        third
            .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
            .unwrap_or_else(|error| panic!("{error}"));
        let answered = closed_by_server(&mut third, Duration::from_secs(10));
        let freed_a_slot = slow
            .iter_mut()
            .any(|stream| closed_by_server(stream, Duration::from_millis(50)));
        let all_cut_off = slow
            .iter_mut()
            .all(|stream| closed_by_server(stream, Duration::from_secs(5)));
        (answered, freed_a_slot, all_cut_off)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        outcome.0,
        "the third client was answered (and its HTTP/1.0 connection closed)"
    );
    assert!(
        outcome.1,
        "the third client was served only once a slow one had been cut off"
    );
    assert!(outcome.2, "every slow client is cut off");
    server.shut_down().await;

    // Over TLS: a client that connects and never says hello is cut off at the handshake timeout.
    let (cert, key) = berth_testkit::Testbed::get().server_cert_pair();
    let mut tls = settings(&temp_dir("slow-tls"), &policy);
    tls.tls = Some(berth_server::tls::TlsSettings { cert, key });
    tls.connections = berth_server::connections::ConnectionLimits {
        handshake_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let server = start(tls).await;
    let address = server.address.clone();
    let closed = tokio::task::spawn_blocking(move || {
        let mut silent =
            std::net::TcpStream::connect(&address).unwrap_or_else(|error| panic!("{error}"));
        closed_by_server(&mut silent, Duration::from_secs(10))
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(closed, "a silent TLS client is cut off");
    server.shut_down().await;
}

/// Denials are gathered per image and window by the usage writer and told once per window
/// by the notifications task (a webhook target), with their count and namespaces; allowed
/// admissions are not told. A repository failing for longer than `sync_failing_for` is told
/// once, counted from its first failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_denials_and_failing_syncs_are_told_once() {
    use berth_core::notify::{Settings, Target, TargetKind};
    use berth_core::rebuild::SecretSource;
    use berth_testkit::receiver::{Receiver, verify_standard_signature};

    let dir = temp_dir("denials");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap_or_else(|error| panic!("{error}"));
    let receiver = Receiver::start(Vec::new());
    let mut settings = settings(&dir, &policy);
    let section = Settings {
        targets: vec![Target {
            name: "hook".to_string(),
            kind: TargetKind::Webhook {
                url: receiver.url("/denied"),
                secret: SecretSource::Env("HOOK_SECRET".to_string()),
            },
            events: ["admission-denied", "sync-failing"].into_iter().collect(),
        }],
        denials_window: Duration::from_secs(60),
        sync_failing_for: Duration::from_secs(3600),
        interval: Duration::from_millis(200),
        ..Settings::default()
    };
    settings.notifications = Some(
        berth_server::notifications::Notifier::new(section, &|name| {
            (name == "HOOK_SECRET").then(|| "hook-secret".to_string())
        })
        .unwrap_or_else(|error| panic!("{error}")),
    );
    // One repository failing for two hours, one for ten minutes.
    let store = berth_store::Store::open(settings.store.as_deref().unwrap_or_default())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    for (name, minutes) in [("team/old-break", 120), ("team/new-break", 10)] {
        let repository = berth_store::RepositoryName::parse(&format!("127.0.0.1:5050/{name}"))
            .unwrap_or_else(|error| panic!("{error}"));
        for again in [0, 5] {
            store
                .record_repository_failure(
                    &repository,
                    "connection refused",
                    now() - chrono::Duration::minutes(minutes - again),
                )
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        }
    }
    store.close().await;
    let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let moved = Arc::clone(&offset);
    let clock: berth_server::Clock = Arc::new(move || {
        now() + chrono::Duration::seconds(moved.load(std::sync::atomic::Ordering::SeqCst))
    });
    let server = start_with_clock(settings, clock).await;
    server.wait_ready().await;
    let failing = tokio::task::block_in_place(|| receiver.wait_for(1, Duration::from_secs(20)));
    assert_eq!(failing.len(), 1, "{failing:?}");
    let body = failing[0].json();
    assert_eq!(body["type"], "berth.sync-failing", "{body}");
    assert_eq!(body["data"]["repository"], "127.0.0.1:5050/team/old-break");
    assert_eq!(
        body["data"]["failing_since"],
        json!(
            (now() - chrono::Duration::minutes(120))
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    );

    // Five denials of one image from two namespaces, one of another, one allowed Pod.
    for index in 0..5 {
        let mut review = review_of(&format!("bad-{index}"), "evil.example/miner:1");
        if index % 2 == 1 {
            review["request"]["namespace"] = json!("tool-b");
        }
        let (status, body) = server.post("/admission/validate", &review).await;
        assert_eq!(status, 200);
        assert_eq!(body["response"]["allowed"], false, "{body}");
    }
    let (_, body) = server
        .post(
            "/admission/validate",
            &review_of("other", "other.example/x:2"),
        )
        .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let (_, body) = server.post("/admission/validate", &review("fine", 1)).await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
    // The window is still open: nothing is told.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.requests().len(), 1, "{:?}", receiver.requests());

    // The window closes: one message per image.
    offset.store(120, std::sync::atomic::Ordering::SeqCst);
    let requests = tokio::task::block_in_place(|| receiver.wait_for(3, Duration::from_secs(20)));
    assert_eq!(requests.len(), 3, "{requests:?}");
    let mut told: Vec<(String, u64, Vec<String>)> = requests[1..]
        .iter()
        .map(|request| {
            verify_standard_signature(b"hook-secret", request)
                .unwrap_or_else(|error| panic!("{error}"));
            let body = request.json();
            assert_eq!(body["type"], "berth.admission-denied", "{body}");
            let data = &body["data"];
            assert!(
                data["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("evil.example")
                    == (data["image"] == "evil.example/miner:1"),
                "the first denial's text names its image: {data}"
            );
            (
                data["image"].as_str().unwrap_or_default().to_string(),
                data["count"].as_u64().unwrap_or_default(),
                serde_json::from_value(data["namespaces"].clone()).unwrap_or_default(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            (
                "evil.example/miner:1".to_string(),
                5,
                vec!["tool-a".to_string(), "tool-b".to_string()]
            ),
            (
                "other.example/x:2".to_string(),
                1,
                vec!["tool-a".to_string()]
            ),
        ]
    );
    // Later looks tell nothing again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.requests().len(), 3);
    let stopped = server.shut_down().await;
    assert!(
        stopped.tasks.contains(&"notifications"),
        "{:?}",
        stopped.tasks
    );
}
