//! Notifications end to end: `berth serve` with a `notifications` section over a real SQLite
//! store filled by `berth sync` from a registry of the test's own, and real HTTP receivers. An
//! entry near its end of life still in use (a kubectl import) is told once; berth is killed
//! (SIGKILL) while that message is in flight, and after the restart it goes out again with the
//! same `webhook-id` and never again; a promotion made while serve runs reaches the signed
//! webhook (checked with openssl) and the Slack-compatible target; history from before
//! notifications were configured is not sent. `berth notifications list` shows the outbox and
//! `berth notifications test` sends a sample, exit 1 when the target refuses it. A base moved
//! while serve runs makes it and its child stale: the freshness pass finds them and each is
//! told once with its reasons, while an image already stale when notifications started is not.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use berth_testkit::receiver::{Receiver, Reply, verify_standard_signature};
use berth_testkit::{OwnRegistry, ServeProcess, sha256_hex};
use serde_json::{Value, json};

const SECRET: &str = "notify-secret-for-tests";

fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_RULES")
        .env("BERTH_ACTOR", "ci")
        .env("SLACK_URL_FOR_TESTS", "http://127.0.0.1:9/unused")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn serve(dir: &Path, slack: &str) -> ServeProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", "berth.yaml"])
        .current_dir(dir)
        .env_remove("BERTH_LOG")
        .env("SLACK_URL_FOR_TESTS", slack);
    ServeProcess::start(command)
}

/// The requests of one kind (`berth.eol-soon`) among those received.
fn of_type(requests: &[berth_testkit::receiver::Received], kind: &str) -> usize {
    requests
        .iter()
        .filter(|request| request.json()["type"] == kind)
        .count()
}

#[test]
fn messages_are_signed_sent_once_and_survive_a_kill() {
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let eol_on = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n\
             \x20 app:\n    image: {own}/team/app\n    channels: [staging, latest]\n\
             \x20 legacy:\n    image: {own}/team/legacy\n    deprecated_on: 2025-01-01\n\
             \x20   eol_on: {eol_on}\n    replacement: app\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest}\n",
    )
    .unwrap();
    let common = [
        "--catalog",
        "catalog.yaml",
        "--store",
        &store,
        "--insecure-registry",
        &own,
    ];
    let sync = || ok(&berth(&dir, &[&["sync"][..], &common].concat()));
    let promote = || {
        let args = [
            &["promote", "app", "--from", "staging", "--to", "latest"][..],
            &common,
            &["--rules", "channels.yaml"],
        ]
        .concat();
        ok(&berth(&dir, &args))
    };
    // A promotion before notifications exist: history, never sent.
    registry.copy_from_testbed("berth/base:1", "team/app:staging");
    registry.copy_from_testbed("berth/upper:1", "team/legacy:1");
    sync();
    promote();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "old-report", "namespace": "tools"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "main", "image": format!("{own}/team/legacy:1")}]}}}}]});
    std::fs::write(dir.join("pods.json"), list.to_string()).unwrap();
    ok(&berth(
        &dir,
        &[
            "usage",
            "import",
            "--cluster",
            "prod",
            "pods.json",
            "--store",
            &store,
        ],
    ));

    // The webhook's first answer hangs: berth is killed while it is in flight.
    let hook = Receiver::start(vec![Reply::from(200).after(Duration::from_secs(60))]);
    let slack = Receiver::start(Vec::new());
    std::fs::write(dir.join("hook.secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: {store}\n\
             registries:\n  {own}: {{insecure: true}}\n\
             leases: {{ttl: 1s}}\n\
             api_tokens: [{{name: reader, sha256: {}, scope: read}}]\n\
             notifications:\n\
             \x20 interval: 1s\n\
             \x20 eol_within: 30d\n\
             \x20 targets:\n\
             \x20   - name: hook\n\
             \x20     webhook: {{url: '{}', secret_file: hook.secret}}\n\
             \x20     events: [promotion, rollback, eol-soon]\n\
             \x20   - name: chat\n\
             \x20     slack: {{url_env: SLACK_URL_FOR_TESTS}}\n\
             \x20     events: [promotion]\n",
            sha256_hex("reader-secret"),
            hook.url("/hooks/berth"),
        ),
    )
    .unwrap();
    let slack_url = slack.url("/services/T000/B000/XXXX");
    let server = serve(&dir, &slack_url);
    let first = hook.wait_for(1, Duration::from_secs(30));
    assert_eq!(first.len(), 1, "the eol-soon message reached the receiver");
    let eol = first[0].json();
    assert_eq!(eol["type"], "berth.eol-soon", "{eol:#}");
    assert_eq!(eol["data"]["entry"], "legacy");
    assert_eq!(eol["data"]["days_left"], 10);
    assert_eq!(eol["data"]["replacement"], "app");
    assert_eq!(eol["data"]["uses"][0]["namespace"], "tools", "{eol:#}");
    verify_standard_signature(SECRET.as_bytes(), &first[0]).unwrap();
    // SIGKILL while the message is in flight.
    let killed = Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(server);

    // Restarted: the recorded message goes out again under the same id (the receiver's
    // idempotency key), once.
    let server = serve(&dir, &slack_url);
    let again = hook.wait_for(2, Duration::from_secs(30));
    assert_eq!(again.len(), 2, "redelivered after the restart");
    assert_eq!(again[1].json()["type"], "berth.eol-soon");
    assert_eq!(again[0].header("webhook-id"), again[1].header("webhook-id"));
    assert_eq!(again[0].json()["data"], again[1].json()["data"]);
    verify_standard_signature(SECRET.as_bytes(), &again[1]).unwrap();

    // A promotion while serve runs: to both targets, signed on the webhook.
    registry.copy_from_testbed("berth/child:1", "team/app:staging");
    sync();
    promote();
    let requests = hook.wait_for(3, Duration::from_secs(30));
    assert_eq!(requests.len(), 3, "the promotion was told");
    let promotion = requests[2].json();
    assert_eq!(promotion["type"], "berth.promotion", "{promotion:#}");
    assert_eq!(promotion["data"]["subject"], "app:latest");
    assert_eq!(promotion["data"]["actor"], "ci");
    assert_ne!(
        requests[2].header("webhook-id"),
        requests[0].header("webhook-id")
    );
    verify_standard_signature(SECRET.as_bytes(), &requests[2]).unwrap();
    let chat = slack.wait_for(1, Duration::from_secs(30));
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0].path, "/services/T000/B000/XXXX");
    let text = chat[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("[berth] app:latest promoted"), "{text}");
    assert!(chat[0].header("webhook-signature").is_none());

    // Several more looks: nothing is sent twice, the first promotion never.
    std::thread::sleep(Duration::from_secs(4));
    let all = hook.requests();
    assert_eq!(of_type(&all, "berth.eol-soon"), 2, "no third eol-soon");
    assert_eq!(
        of_type(&all, "berth.promotion"),
        1,
        "only the new promotion"
    );
    assert_eq!(slack.requests().len(), 1);
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics
            .contains("berth_notifications_sent_total{target=\"chat\",result=\"delivered\"} 1\n")
            && metrics.contains("berth_lease_held{lease=\"notifications\""),
        "{metrics}"
    );

    // The outbox: each delivery delivered; the killed attempt counted once the restart sent it.
    let listed: Value = serde_json::from_str(&ok(&berth(
        &dir,
        &["notifications", "list", "--store", &store, "--json"],
    )))
    .unwrap();
    let rows: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["event"]["kind"].as_str().unwrap().to_string(),
                row["target"].as_str().unwrap().to_string(),
                row["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "promotion".to_string(),
                "chat".to_string(),
                "delivered".to_string()
            ),
            (
                "promotion".to_string(),
                "hook".to_string(),
                "delivered".to_string()
            ),
            (
                "eol-soon".to_string(),
                "hook".to_string(),
                "delivered".to_string()
            ),
        ],
        "{listed:#}"
    );
    // The API answers the same, to a read token only.
    let (status, _) = server.get("/api/v1/notifications");
    assert_eq!(status, 401);
    let (status, answered) = server.request(
        "GET",
        "/api/v1/notifications",
        &[("Authorization", "Bearer reader-secret")],
        "",
    );
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered, listed);
    drop(server);

    // `berth notifications test`: a sample to the webhook; a refusing target exits 1.
    let sample = ok(&berth(
        &dir,
        &[
            "notifications",
            "test",
            "hook",
            "--config",
            "berth.yaml",
            "--json",
        ],
    ));
    let sample: Value = serde_json::from_str(&sample).unwrap();
    assert_eq!(sample["result"], "delivered");
    let sent = hook.wait_for(4, Duration::from_secs(10));
    assert_eq!(sent.len(), 4);
    verify_standard_signature(SECRET.as_bytes(), &sent[3]).unwrap();
    assert_eq!(sent[3].json()["data"]["subject"], "berth-test");
    let refusing = Receiver::start(vec![Reply::from(404).with_body("no such hook")]);
    let config = std::fs::read_to_string(dir.join("berth.yaml"))
        .unwrap()
        .replace(&hook.url("/hooks/berth"), &refusing.url("/gone"));
    std::fs::write(dir.join("refusing.yaml"), config).unwrap();
    let output = berth(
        &dir,
        &["notifications", "test", "hook", "--config", "refusing.yaml"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("hook: rejected (404): no such hook"),
        "{stdout}"
    );
    let output = berth(
        &dir,
        &["notifications", "test", "hoook", "--config", "berth.yaml"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no notification target \"hoook\" (targets: hook, chat)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A counter's value in a `/metrics` text (0 when absent).
fn counter(server: &ServeProcess, sample: &str) -> u64 {
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Waits until `sample` in `/metrics` reaches `at_least`.
fn wait_counter(server: &ServeProcess, sample: &str, at_least: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while counter(server, sample) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "{sample} never reached {at_least}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `reference` → reasons of the `berth.stale` messages received.
fn stale_messages(requests: &[berth_testkit::receiver::Received]) -> Vec<(String, Vec<String>)> {
    let mut told: Vec<(String, Vec<String>)> = requests
        .iter()
        .map(|request| request.json())
        .filter(|message| message["type"] == "berth.stale")
        .map(|message| {
            let data = &message["data"];
            let reference = data["reference"].as_str().unwrap().to_string();
            let reasons = data["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason["reason"].as_str().unwrap().to_string())
                .collect();
            (reference, reasons)
        })
        .collect();
    told.sort();
    told
}

#[test]
fn an_image_that_becomes_stale_while_serving_is_told_once_with_its_reasons() {
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-notify-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    // base v1 (Debian 12) with a child built on it, and a legacy image already stale when
    // notifications start: the test bed's `upper`, whose layer makes it Alpine 3.20 (end of
    // life since 2026-04-01).
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n\
             \x20 base:\n    image: {own}/team/base\n\
             \x20 child:\n    image: {own}/team/child\n    base: base\n\
             \x20 legacy:\n    image: {own}/team/legacy\n"
        ),
    )
    .unwrap();
    registry.copy_from_testbed("berth/base:1", "team/base:latest");
    registry.copy_from_testbed("berth/child:1", "team/child:latest");
    registry.copy_from_testbed("berth/upper:1", "team/legacy:latest");
    let sync = || {
        ok(&berth(
            &dir,
            &[
                "sync",
                "--catalog",
                "catalog.yaml",
                "--store",
                &store,
                "--insecure-registry",
                &own,
            ],
        ))
    };
    sync();

    let hook = Receiver::start(Vec::new());
    std::fs::write(dir.join("hook.secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: {store}\n\
             registries:\n  {own}: {{insecure: true}}\n\
             leases: {{ttl: 1s}}\n\
             freshness: {{interval: 10s}}\n\
             notifications:\n\
             \x20 interval: 1s\n\
             \x20 targets:\n\
             \x20   - name: hook\n\
             \x20     webhook: {{url: '{}', secret_file: hook.secret}}\n\
             \x20     events: [stale]\n",
            hook.url("/hooks/berth"),
        ),
    )
    .unwrap();
    let server = serve(&dir, "http://127.0.0.1:9/unused");
    // The first pass has decided (legacy is stale) and two looks have run since: what was
    // already stale is recorded, not told.
    let passes = "berth_freshness_pass_total{result=\"success\"}";
    let looks = "berth_notifications_look_total{result=\"success\"}";
    wait_counter(&server, passes, 1);
    let (_, listing) = server.get("/api/v1/stale");
    let already: Vec<&str> = listing["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        already,
        [format!("{own}/team/legacy:latest")],
        "{listing:#}"
    );
    wait_counter(&server, looks, counter(&server, looks) + 2);
    assert_eq!(hook.requests().len(), 0, "nothing already stale is told");

    // The base moves to v2 (Alpine 3.20): the base is now stale for its OS, and the child for its
    // moved base. The next pass finds both; each is told once, signed.
    registry.copy_from_testbed("berth/upper:1", "team/base:latest");
    let base_v2 = berth_testkit::digest_at(&format!("{own}/team/base:latest"));
    sync();
    let told = hook.wait_for(2, Duration::from_secs(60));
    assert_eq!(
        stale_messages(&told),
        [
            (
                format!("{own}/team/base:latest"),
                vec!["os-eol".to_string()]
            ),
            (
                format!("{own}/team/child:latest"),
                vec!["base-moved".to_string()]
            ),
        ]
    );
    for request in &told {
        verify_standard_signature(SECRET.as_bytes(), request).unwrap();
    }
    let child = told
        .iter()
        .map(|request| request.json())
        .find(|message| message["data"]["entry"] == "child")
        .unwrap();
    let moved = &child["data"]["reasons"][0];
    assert_eq!(moved["now"], base_v2.as_str(), "{child:#}");
    assert_eq!(moved["channel"], format!("{own}/team/base:latest"));
    assert_eq!(child["data"]["platform"], "linux/amd64", "{child:#}");

    // Another pass decides the same: nothing is told again.
    let after = counter(&server, passes);
    wait_counter(&server, passes, after + 1);
    wait_counter(&server, looks, counter(&server, looks) + 2);
    assert_eq!(hook.requests().len(), 2, "a stale image is told once");
    drop(server);
    let listed: Value = serde_json::from_str(&ok(&berth(
        &dir,
        &["notifications", "list", "--store", &store, "--json"],
    )))
    .unwrap();
    let rows: Vec<(&str, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["event"]["kind"].as_str().unwrap(),
                row["event"]["subject"].as_str().unwrap(),
                row["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "{listed:#}");
    assert!(
        rows.iter()
            .all(|(kind, _, state)| *kind == "stale" && *state == "delivered"),
        "{listed:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
