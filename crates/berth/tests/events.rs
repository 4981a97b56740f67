//! Registry push events end to end: a real `docker-registry` configured with a
//! `notifications:` endpoint posts to a running `berth serve`; a push is in
//! `GET /api/v1/images` within seconds while no scheduled sync runs; bad bodies and tokens are
//! refused and queue nothing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{OwnRegistry, ServeProcess, Testbed, free_port, sha256_hex};
use serde_json::Value;

const TOKEN: &str = "registry-events-test-token";

/// POSTs `body` to the events endpoint with `token`.
fn post(server: &ServeProcess, token: &str, body: &str) -> (u16, Value) {
    let authorization = format!("Bearer {token}");
    server.request(
        "POST",
        "/api/v1/registry-events",
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

#[test]
fn a_push_reaches_the_store_through_the_registrys_notification() {
    let testbed = Testbed::get();
    let port = free_port();
    let registry = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("berth-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let catalog = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml");
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: {}\nstore: sqlite://{}\nregistries:\n  {registry}: {{insecure: true}}\n  {plain}: {{insecure: true}}\nsync:\n  interval: 1h\n  repositories: [{registry}/demo/app]\n  layers: false\napi_tokens:\n  - {{name: registry, sha256: {}, scope: events}}\n",
            catalog.display(),
            dir.join("berth.db").display(),
            sha256_hex(TOKEN),
            plain = testbed.plain(),
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env_remove("BERTH_LOG")
        .args(["--log-json", "serve", "--config"])
        .arg(&config);
    let server = ServeProcess::start(command);
    // The one scheduled run (the interval is an hour) finishes before anything is pushed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let (_, runs) = server.get("/api/v1/sync");
        let done = runs["runs_ok"].as_u64().unwrap_or(0)
            + runs["runs_with_failures"].as_u64().unwrap_or(0);
        if done >= 1 && runs["running"] == false {
            break runs;
        }
        assert!(Instant::now() < deadline, "no scheduled run: {runs}");
        std::thread::sleep(Duration::from_millis(100));
    };

    // Bad input: refused, nothing queued.
    let (status, _) = post(&server, "wrong", "{\"events\":[]}");
    assert_eq!(status, 401);
    let (status, body) = post(&server, TOKEN, "{\"nope\":1}");
    assert_eq!(status, 400, "{body}");
    let oversized = format!(
        "{{\"events\":[],\"pad\":\"{}\"}}",
        "x".repeat(1024 * 1024 + 1)
    );
    let (status, _) = post(&server, TOKEN, &oversized);
    assert_eq!(status, 400);
    // An event for a repository outside the sync's scope is ignored.
    let outside = format!(
        r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"other/app","tag":"1","url":"http://{registry}/v2/other/app/manifests/1"}}}}]}}"#
    );
    let (status, body) = post(&server, TOKEN, &outside);
    assert_eq!((status, body["ignored"].as_u64()), (202, Some(1)), "{body}");

    // The registry, configured to notify berth, takes a push.
    let notifications = format!(
        "notifications:\n  endpoints:\n    - name: berth\n      url: http://{}/api/v1/registry-events\n      headers: {{Authorization: [Bearer {TOKEN}]}}\n      timeout: 1s\n      threshold: 3\n      backoff: 1s\n",
        server.address
    );
    let own = OwnRegistry::start_on(port, &notifications);
    own.copy_from_testbed("berth/base:1", "demo/app:1");
    let expected = testbed.digest("berth/base:1").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, images) = server.get(&format!("/api/v1/images?repo={registry}/demo/app"));
        let tags = images.to_string();
        if tags.contains(&format!("{registry}/demo/app:1")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the push never reached the store: {images}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, image) = server.get(&format!("/api/v1/images/{expected}"));
    assert_eq!(image["digest"], Value::String(expected.clone()), "{image}");
    // Still the one scheduled run: the event did it.
    let (_, after) = server.get("/api/v1/sync");
    assert_eq!(
        (
            after["runs_ok"].clone(),
            after["runs_with_failures"].clone()
        ),
        (runs["runs_ok"].clone(), runs["runs_with_failures"].clone()),
        "{after}"
    );
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.lines().any(|line| line
            .starts_with("berth_registry_events_total{outcome=\"synced\"}")
            && !line.ends_with(" 0")),
        "{metrics}"
    );
}
