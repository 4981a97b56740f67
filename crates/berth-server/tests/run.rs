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
        .admission_usage(None, None, 1000)
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
