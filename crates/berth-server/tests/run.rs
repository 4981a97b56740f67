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
        Arc::new(now),
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
        let response = self
            .client
            .post(format!("http://{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body.to_string())
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
