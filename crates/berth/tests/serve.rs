//! `berth serve` end to end: the real binary on a free port with a config file. The API answers
//! exactly what `berth catalog ... --json` prints; a broken edit of the served catalog keeps the
//! old catalog answering while the status reports the error; fixing it serves the new one; and
//! SIGTERM stops the server cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::ServeProcess;
use serde_json::Value;

/// The moment every question is asked at, so the CLI and the server agree whatever the clock.
const AT: &str = "2026-11-22T12:00:00Z";

fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.env_remove("BERTH_CATALOG").env_remove("BERTH_LOG");
    command
}

/// A running `berth serve` (the testkit's `ServeProcess`), killed if the test ends early.
struct Server {
    process: ServeProcess,
}

impl Server {
    /// Starts the server and waits for its "listening" log line to learn the port.
    fn start(config: &Path) -> Server {
        let mut command = berth();
        command
            .args(["--log-json", "serve", "--config"])
            .arg(config);
        let process = ServeProcess::start(command);
        Server { process }
    }

    /// GETs `path` over HTTP/1.0 and returns the status code and the body as JSON (or as a
    /// JSON string when it is not JSON).
    fn get(&self, path: &str) -> (u16, Value) {
        self.process.get(path)
    }

    /// Polls `/api/v1/status` until `done` holds for it.
    fn wait_for_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, status) = self.get("/api/v1/status");
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `berth catalog --catalog CATALOG --now AT ARGS --json`: exit code and JSON output.
fn cli(catalog: &Path, args: &[&str]) -> (i32, Value) {
    let output = berth()
        .arg("catalog")
        .arg("--catalog")
        .arg(catalog)
        .args(["--now", AT, "--json"])
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "berth catalog {args:?}: {error}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), json)
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-serve-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn example() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn serves_what_the_cli_answers_and_survives_a_broken_edit() {
    let dir = scratch("reload");
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, example()).unwrap_or_else(|error| panic!("{error}"));
    let config = dir.join("berth.yaml");
    let config_text = "listen: 127.0.0.1:0\ncatalog: catalog.yaml\ncatalog_poll_interval: 100ms\n";
    std::fs::write(&config, config_text).unwrap_or_else(|error| panic!("{error}"));
    let mut server = Server::start(&config);
    server.wait_for_status("the first load", |status| {
        status["catalog"]["serving"]["generation"] == 1
    });
    assert_eq!(server.get("/readyz").0, 200);

    // The API and the CLI answer the same questions with the same JSON.
    let questions: &[(&str, &[&str], u16, i32)] = &[
        ("/api/v1/catalog", &["list"], 200, 0),
        ("/api/v1/catalog?all=true", &["list", "--all"], 200, 0),
        (
            "/api/v1/catalog/tf-python311",
            &["show", "tf-python311"],
            200,
            0,
        ),
        (
            "/api/v1/resolve/python3.11?variant=jobs",
            &["resolve", "python3.11", "--variant", "jobs"],
            200,
            0,
        ),
        (
            "/api/v1/resolve/node24?variant=jobs&channel=staging",
            &["resolve", "node24", "--variant=jobs", "--channel=staging"],
            200,
            0,
        ),
        (
            "/api/v1/which?ref=docker.io/library/python:3.12",
            &["which", "python:3.12"],
            404,
            1,
        ),
        (
            "/api/v1/which?ref=127.0.0.1:5050/berth/base:1",
            &["which", "127.0.0.1:5050/berth/base:1"],
            200,
            0,
        ),
        (
            "/api/v1/resolve/pyhton3.11",
            &["resolve", "pyhton3.11"],
            404,
            1,
        ),
        (
            "/api/v1/resolve/python3.12",
            &["resolve", "python3.12"],
            400,
            1,
        ),
    ];
    for (path, args, http_status, exit_code) in questions {
        let separator = if path.contains('?') { '&' } else { '?' };
        let (status, api) = server.get(&format!("{path}{separator}now={AT}"));
        let (code, printed) = cli(&catalog, args);
        assert_eq!(
            (status, code),
            (*http_status, *exit_code),
            "{path} / {args:?}"
        );
        assert_eq!(api, printed, "{path} / {args:?}");
    }

    // A broken edit: the old catalog keeps answering, the status says why.
    let broken = example().replace(
        "    image: 127.0.0.1:5050/berth/base\n",
        "    imgae: 127.0.0.1:5050/berth/base\n",
    );
    assert_ne!(broken, example());
    std::fs::write(&catalog, &broken).unwrap_or_else(|error| panic!("{error}"));
    let status = server.wait_for_status("the broken edit", |status| {
        status["catalog"]["last_attempt"]["ok"] == false
    });
    assert_eq!(status["catalog"]["serving"]["generation"], 1);
    let first = &status["catalog"]["last_attempt"]["diagnostics"][0];
    assert_eq!(first["message"], "an entry needs an `image` or `variants`");
    let (code, bookworm) = server.get("/api/v1/resolve/bookworm");
    assert_eq!(
        (code, &bookworm["image"]),
        (200, &Value::from("127.0.0.1:5050/berth/base:latest"))
    );
    assert_eq!(server.get("/readyz").0, 200);
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("berth_catalog_reload_total{result=\"failure\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_catalog_last_reload_success 0\n"),
        "{metrics}"
    );

    // The fix: a new image, served as the next generation.
    let fixed = format!(
        "{}\n  debian13:\n    aliases: [trixie]\n    image: 127.0.0.1:5050/berth/trixie\n",
        example()
    );
    std::fs::write(&catalog, fixed).unwrap_or_else(|error| panic!("{error}"));
    server.wait_for_status("the fix", |status| {
        status["catalog"]["serving"]["generation"] == 2
    });
    let (code, trixie) = server.get("/api/v1/resolve/trixie");
    assert_eq!((code, &trixie["name"]), (200, &Value::from("debian13")));

    // SIGTERM: a clean stop.
    let pid = server.process.pid().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.process.try_wait() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "berth serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "berth serve exited with {exit}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_config_file_with_mistakes_is_refused_with_every_one() {
    let dir = scratch("config");
    let config = dir.join("berth.yaml");
    std::fs::write(&config, "listen: everywhere\ncatalogue: c.yaml\n")
        .unwrap_or_else(|error| panic!("{error}"));
    let output = berth()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let path = config.display();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{path}:1:9: error: listen: \"everywhere\" is not an address and port (127.0.0.1:8080, [::]:8080)\n\
             {path}:2:1: error: catalogue: unknown field `catalogue`; did you mean `catalog`?\n\
             berth: {path}: 2 errors in the config file\n"
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_resolve_deadline_no_webhook_timeout_can_exceed_is_refused() {
    let output = berth()
        .args([
            "serve",
            "--listen=127.0.0.1:0",
            "--resolve",
            "--resolve-deadline=30s",
        ])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "berth: --resolve-deadline: must stay below the webhook's timeoutSeconds (under 30s)\n"
    );
}

/// Polls `path` until `done` holds for its body.
fn wait_for(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server.get(path);
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {path}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn syncs_on_a_schedule_and_answers_from_the_store() {
    let testbed = berth_testkit::Testbed::get();
    let plain = testbed.plain();
    let dir = scratch("sync");
    let catalog = dir.join("catalog.yaml");
    let example = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/testbed-catalog.yaml"),
    )
    .unwrap_or_else(|error| panic!("{error}"))
    .replace("127.0.0.1:5050", plain);
    std::fs::write(&catalog, example).unwrap_or_else(|error| panic!("{error}"));
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: sqlite://{}\nregistries:\n  {plain}: {{insecure: true}}\nsync:\n  interval: 1h\n",
            dir.join("berth.db").display()
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let server = Server::start(&config);

    let runs = wait_for(&server, "/api/v1/sync", |runs| runs["runs_ok"] == 1);
    assert_eq!(runs["scheduled"], true);
    assert_eq!(
        runs["last_report"]["repositories"].as_array().map(Vec::len),
        Some(4)
    );

    let (status, images) = server.get("/api/v1/images?os=alpine");
    assert_eq!(status, 200, "{images}");
    let images = images.as_array().unwrap_or_else(|| panic!("{images}"));
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["os"], "alpine-3.20-amd64");

    let base = testbed.digest("berth/base:1");
    let (status, built_on) = server.get(&format!("/api/v1/images?built_on={base}"));
    assert_eq!(status, 200);
    assert_eq!(built_on.as_array().map(Vec::len), Some(2), "{built_on}");
    let (status, one) = server.get(&format!("/api/v1/images/{base}"));
    assert_eq!((status, &one["digest"]), (200, &Value::from(base.clone())));
    assert_eq!(one["libc"], "glibc", "{one}");
    let (status, _) = server.get("/api/v1/images/sha256:nothex");
    assert_eq!(status, 400);

    let (status, repositories) = server.get("/api/v1/repositories");
    assert_eq!(status, 200);
    assert_eq!(
        repositories.as_array().map(Vec::len),
        Some(4),
        "{repositories}"
    );
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("berth_sync_runs_total{result=\"success\"} 1"),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn knowledge_endpoints_answer_503_without_a_store() {
    let dir = scratch("nostore");
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, example()).unwrap_or_else(|error| panic!("{error}"));
    let config = dir.join("berth.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\ncatalog: catalog.yaml\n")
        .unwrap_or_else(|error| panic!("{error}"));
    let server = Server::start(&config);
    let (status, body) = server.get("/api/v1/images");
    assert_eq!((status, &body["error"]), (503, &Value::from("no_store")));
    let _ = std::fs::remove_dir_all(dir);
}

/// The promotion scheduler inside `berth serve`: with the example rules (first publish at once),
/// a new image on `staging` reaches `latest` without anyone running a command, and the history
/// in the store says the scheduler did it.
#[test]
fn the_promotion_scheduler_publishes_a_new_image_at_once() {
    let testbed = berth_testkit::Testbed::get();
    let plain = testbed.plain();
    let dir = scratch("promotions");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    // Unique per run: the registry outlives the test, and `latest` must not exist yet.
    let repository = format!("berth-serve/promotions-{}-{nanos}", std::process::id());
    berth_testkit::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{plain}/berth/base:1"),
        &format!("docker://{plain}/{repository}:staging"),
    ]);
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n  app:\n    image: {plain}/{repository}\n    channels: [staging, latest]\n"
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/channels.yaml");
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: sqlite://{}\nregistries:\n  {plain}: {{insecure: true}}\npromotions: {}\n",
            dir.join("berth.db").display(),
            rules.display()
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let _server = Server::start(&config);

    let latest = format!("docker://{plain}/{repository}:latest");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &latest])
        .output()
        .is_ok_and(|output| output.status.success())
    {
        assert!(Instant::now() < deadline, "latest was never published");
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = berth()
        .args([
            "history",
            "app",
            "--channel",
            "latest",
            "--json",
            "--catalog",
        ])
        .arg(dir.join("catalog.yaml"))
        .arg("--store")
        .arg(format!("sqlite://{}", dir.join("berth.db").display()))
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let history: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(history[0]["actor"], "berth-scheduler", "{history}");
    assert_eq!(history[0]["kind"], "promotion", "{history}");
    assert_eq!(history[0]["digest"], testbed.digest("berth/base:1"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `berth serve` with a store: a catalog edit that changes the entries is in the audit log
/// (`berth audit`), with actor `berth-serve` and the generations before and after.
#[test]
fn a_catalog_reload_is_in_the_audit_log() {
    let dir = scratch("reload-audit");
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, "images:\n  bookworm: {image: x/base}\n")
        .unwrap_or_else(|error| panic!("{error}"));
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!("listen: 127.0.0.1:0\ncatalog: catalog.yaml\ncatalog_poll_interval: 100ms\nstore: {store}\n"),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let server = Server::start(&config);
    server.wait_for_status("the first load", |status| {
        status["catalog"]["serving"]["generation"] == 1
    });
    std::fs::write(
        &catalog,
        "images:\n  bookworm: {image: x/base}\n  trixie: {image: x/next}\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    server.wait_for_status("the reload", |status| {
        status["catalog"]["serving"]["generation"] == 2
    });
    let audit = || {
        let output = berth()
            .args(["audit", "--json", "--store", &store])
            .output()
            .unwrap_or_else(|error| panic!("{error}"));
        serde_json::from_slice::<Value>(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "berth audit: {error}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    };
    // The entry is appended right after the new catalog is served: poll for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let entries = audit();
        if entries
            .as_array()
            .is_some_and(|entries| !entries.is_empty())
        {
            break entries;
        }
        assert!(Instant::now() < deadline, "no audit entry: {entries}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    let entry = &entries[0];
    assert_eq!(entry["action"], "catalog.reload");
    assert_eq!(entry["actor"], "berth-serve");
    assert_eq!(
        entry["before"],
        serde_json::json!({"generation": 1, "entries": 1})
    );
    assert_eq!(
        entry["after"],
        serde_json::json!({"generation": 2, "entries": 2})
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
