//! `berth stale` and `berth rebuild plan|run|status` end to end: images built with umoci and
//! pushed with skopeo to the test bed's plain registry, synced into a SQLite store, a base
//! moved, a child rebuilt; age and OS end of life decided at a `--now` ahead; rebuilds
//! dispatched to a real receiver that checks their signatures, closed when the rebuild lands on
//! the new base, reported when it lands on the old one; a dispatch killed mid-send is sent
//! again with the same key, never twice under two; `berth serve` dispatching on its lease.

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::receiver::{Receiver, Reply, verify_standard_signature};
use berth_testkit::{ServeProcess, Testbed, derive_image, digest_at, skopeo};
use serde_json::Value;

fn berth(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_LOG")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn json(dir: &std::path::Path, args: &[&str]) -> Value {
    let output = berth(dir, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "berth {args:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn copy(from: &str, to: &str) {
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{from}"),
        &format!("docker://{to}"),
    ]);
}

/// (repository name, reasons) of each stale image.
fn stale_of(report: &Value) -> Vec<(String, Vec<String>)> {
    report["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let reference = image["reference"].as_str().unwrap();
            let name = reference.rsplit('/').next().unwrap().to_string();
            let reasons = image["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason["reason"].as_str().unwrap().to_string())
                .collect();
            (name, reasons)
        })
        .collect()
}

fn reason<'v>(report: &'v Value, name: &str, kind: &str) -> &'v Value {
    report["stale"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| {
            image["reference"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{name}"))
        })
        .and_then(|image| {
            image["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|reason| reason["reason"] == kind)
        })
        .unwrap_or_else(|| panic!("{name} has no {kind}: {report:#}"))
}

fn waves(plan: &Value) -> Vec<(String, u64)> {
    plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let reference = item["reference"].as_str().unwrap();
            let name = reference.rsplit('/').next().unwrap().to_string();
            (name, item["wave"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn a_moved_base_makes_its_family_stale_and_the_plan_follows_lineage() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let prefix = format!("{plain}/fresh-{}", std::process::id());
    let dir: PathBuf = testbed
        .dir
        .join(format!("cli-fresh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // base v1 (Debian 12's os-release), a child on it (the test bed's), a grandchild on the child.
    copy(
        &format!("{plain}/berth/base:1"),
        &format!("{prefix}/base:latest"),
    );
    copy(
        &format!("{plain}/berth/child:1"),
        &format!("{prefix}/child:latest"),
    );
    derive_image(
        &format!("{prefix}/child:latest"),
        &format!("{prefix}/grandchild:latest"),
        "/srv/grandchild.txt",
        "the grandchild's layer\n",
    );
    let base_v1 = digest_at(&format!("{prefix}/base:latest"));
    let child_v1 = digest_at(&format!("{prefix}/child:latest"));

    let catalog = dir.join("catalog.yaml");
    std::fs::write(
        &catalog,
        format!(
            "images:\n  base:\n    image: {prefix}/base\n  child:\n    image: {prefix}/child\n    base: base\n  grandchild:\n    image: {prefix}/grandchild\n    base: child\n"
        ),
    )
    .unwrap();
    let catalog = catalog.display().to_string();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let sync = || {
        json(
            &dir,
            &[
                "sync",
                "--catalog",
                &catalog,
                "--store",
                &store,
                "--insecure-registry",
                plain,
                "--json",
            ],
        )
    };
    let stale = |extra: &[&str]| {
        let args = [
            &["stale", "--catalog", &catalog, "--store", &store, "--json"][..],
            if extra.is_empty() {
                &["--now", "2026-12-04"][..]
            } else {
                extra
            },
        ]
        .concat();
        json(&dir, &args)
    };
    let plan = || {
        json(
            &dir,
            &[
                "rebuild",
                "plan",
                "--catalog",
                &catalog,
                "--store",
                &store,
                "--json",
                "--now",
                "2026-12-04",
            ],
        )
    };

    sync();
    let report = stale(&[]);
    assert_eq!(report["checked"], 3, "{report:#}");
    assert_eq!(stale_of(&report), Vec::<(String, Vec<String>)>::new());

    // The base gets a fix: v2 is v1 plus a layer (the test bed's `upper`, whose layer makes it
    // Alpine 3.20, end of life since 2026-04-01), pushed to its channel. v2 is built on v1, but
    // the channel moving to v2 does not make v2 stale.
    copy(
        &format!("{plain}/berth/upper:1"),
        &format!("{prefix}/base:latest"),
    );
    let base_v2 = digest_at(&format!("{prefix}/base:latest"));
    sync();
    let report = stale(&[]);
    assert_eq!(
        stale_of(&report),
        [
            ("base:latest".to_string(), vec!["os-eol".to_string()]),
            ("child:latest".to_string(), vec!["base-moved".to_string()]),
            (
                "grandchild:latest".to_string(),
                vec!["base-moved".to_string()]
            ),
        ]
    );
    let moved = reason(&report, "child:latest", "base-moved");
    assert_eq!(moved["base"], base_v1.as_str(), "{moved:#}");
    assert_eq!(moved["now"], base_v2.as_str(), "{moved:#}");
    assert_eq!(moved["channel"], format!("{prefix}/base:latest"));
    assert_eq!(report["counts"]["base-moved"], 2);
    assert_eq!(report["counts"]["os-eol"], 1);
    // The grandchild's nearest moved ancestor is the base: its own base (the child) did not move.
    let moved = reason(&report, "grandchild:latest", "base-moved");
    assert_eq!(moved["base"], base_v1.as_str(), "{moved:#}");
    // The plan: the new base is itself stale (its OS), so it comes first; the child waits for
    // its rebuild, the grandchild for the child's.
    assert_eq!(
        waves(&plan()),
        [
            ("base:latest".to_string(), 1),
            ("child:latest".to_string(), 2),
            ("grandchild:latest".to_string(), 3)
        ]
    );

    // The child is rebuilt on v2: it is fresh, and the grandchild now waits on nothing.
    derive_image(
        &format!("{prefix}/base:latest"),
        &format!("{prefix}/child:latest"),
        "/srv/app/hello.txt",
        "hello from the child layer\n",
    );
    sync();
    let report = stale(&[]);
    assert_eq!(
        stale_of(&report),
        [
            ("base:latest".to_string(), vec!["os-eol".to_string()]),
            ("child:latest".to_string(), vec!["os-eol".to_string()]),
            (
                "grandchild:latest".to_string(),
                vec!["base-moved".to_string()]
            ),
        ]
    );
    let moved = reason(&report, "grandchild:latest", "base-moved");
    assert_eq!(moved["base"], child_v1.as_str(), "{moved:#}");
    // The plan keeps the order: the Alpine base, its rebuilt child, then the grandchild, whose
    // moved base (the child) is itself to be rebuilt.
    assert_eq!(
        waves(&plan()),
        [
            ("base:latest".to_string(), 1),
            ("child:latest".to_string(), 2),
            ("grandchild:latest".to_string(), 3),
        ]
    );

    // Ahead in time: everything is too old for 30 days, and the grandchild's Debian 12 (the test
    // bed's os-release) is past its end of life on 2028-07-01.
    let report = stale(&["--now", "2028-08-01", "--max-age", "30d"]);
    let kinds = stale_of(&report);
    assert_eq!(kinds.len(), 3, "{report:#}");
    for (name, reasons) in &kinds {
        assert!(
            reasons.contains(&"too-old".to_string()),
            "{name}: {reasons:?}"
        );
    }
    let eol = reason(&report, "grandchild:latest", "os-eol");
    assert_eq!(eol["eol_on"], "2028-07-01", "{eol:#}");
    assert_eq!(eol["warning"], false);
    let warned = stale(&["--now", "2028-05-01"]);
    assert_eq!(
        reason(&warned, "grandchild:latest", "os-eol")["warning"],
        true
    );

    // `berth serve` runs the pass and answers GET /api/v1/stale with the same list; its
    // config's os_lifecycle extends Alpine 3.20 (so only the grandchild is stale).
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: {catalog}\nstore: {store}\nfreshness:\n  interval: 1h\n  os_lifecycle:\n    - {{distribution: alpine, version: \"3.20\", eol_on: 2031-01-01}}\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config"])
        .arg(&config)
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = ServeProcess::start(command);
    let (status, listing) = server.get("/api/v1/stale");
    assert_eq!(status, 200, "{listing:#}");
    assert_eq!(
        stale_of(&listing),
        [(
            "grandchild:latest".to_string(),
            vec!["base-moved".to_string()]
        )]
    );
    assert_eq!(listing["checked"], 3);
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("berth_stale_images{reason=\"base-moved\"} 1\n")
            && metrics.contains("berth_stale_images{reason=\"os-eol\"} 0\n"),
        "{metrics}"
    );
    drop(server);

    // Bad input names the flag.
    let output = berth(
        &dir,
        &[
            "stale",
            "--catalog",
            &catalog,
            "--store",
            &store,
            "--max-age",
            "soon",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-age"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Standard Webhooks secret of the tests' receiver, and its key bytes.
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hook_key() -> Vec<u8> {
    // `whsec_` + base64 of the key; decoded here by hand to keep berth's decoder out of it.
    let text = HOOK_SECRET.trim_start_matches("whsec_");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut key = Vec::new();
    for c in text.chars().filter(|c| *c != '=') {
        bits = (bits << 6) | alphabet.find(c).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            key.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    key
}

/// A family for rebuilds: base v1, a child on it (also kept at `child:v1`) and a grandchild on
/// the child; a catalog whose child and grandchild are rebuilt by target `ci`; a config whose
/// `rebuild` section sends to `receiver`. Returns (dir, prefix, config path).
fn rebuild_bed(name: &str, receiver: &Receiver) -> (PathBuf, String, String) {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let prefix = format!("{plain}/{name}-{}", std::process::id());
    let dir: PathBuf = testbed
        .dir
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    copy(
        &format!("{plain}/berth/base:1"),
        &format!("{prefix}/base:latest"),
    );
    copy(
        &format!("{plain}/berth/child:1"),
        &format!("{prefix}/child:latest"),
    );
    copy(
        &format!("{plain}/berth/child:1"),
        &format!("{prefix}/child:v1"),
    );
    derive_image(
        &format!("{prefix}/child:latest"),
        &format!("{prefix}/grandchild:latest"),
        "/srv/grandchild.txt",
        "the grandchild's layer\n",
    );
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n  base:\n    image: {prefix}/base\n  child:\n    image: {prefix}/child\n    base: base\n    build: ci\n  grandchild:\n    image: {prefix}/grandchild\n    base: child\n    build: ci\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("hook.secret"), format!("{HOOK_SECRET}\n")).unwrap();
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: sqlite://{}\nfreshness:\n  interval: 1h\nrebuild:\n  targets:\n    - name: ci\n      webhook: {{url: '{}', secret_file: hook.secret}}\n",
            dir.join("berth.db").display(),
            receiver.url("/hooks/rebuild"),
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    json(
        &dir,
        &[
            "sync",
            "--catalog",
            &dir.join("catalog.yaml").display().to_string(),
            "--store",
            &store,
            "--insecure-registry",
            plain,
            "--json",
        ],
    );
    (dir, prefix, config)
}

fn sync_bed(dir: &std::path::Path) {
    let plain = Testbed::get().plain();
    json(
        dir,
        &[
            "sync",
            "--catalog",
            &dir.join("catalog.yaml").display().to_string(),
            "--store",
            &format!("sqlite://{}", dir.join("berth.db").display()),
            "--insecure-registry",
            plain,
            "--json",
        ],
    );
}

/// Repository names (`child:latest`) of a list of references.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|reference| {
            let text = reference
                .as_str()
                .unwrap_or_else(|| reference["reference"].as_str().unwrap());
            text.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn rebuilds_go_out_once_per_wave_and_close_on_the_new_base() {
    let receiver = Receiver::start(Vec::new());
    let (dir, prefix, config) = rebuild_bed("rebuild", &receiver);
    let plain = Testbed::get().plain();
    let run = || json(&dir, &["rebuild", "run", "--config", &config, "--json"]);

    // Nothing is stale: nothing goes out.
    let report = run();
    assert_eq!(report["dispatched"], serde_json::json!([]), "{report:#}");

    // The base moves (v2: Alpine 3.20, itself os-eol, which a rebuild alone cannot fix).
    copy(
        &format!("{plain}/berth/upper:1"),
        &format!("{prefix}/base:latest"),
    );
    sync_bed(&dir);
    let dry = json(
        &dir,
        &["rebuild", "run", "--config", &config, "--json", "--dry-run"],
    );
    assert_eq!(dry["dispatched"][0]["result"], "planned");
    assert!(receiver.requests().is_empty(), "a dry run sends nothing");

    let report = run();
    let dispatched = report["dispatched"].as_array().unwrap();
    assert_eq!(dispatched.len(), 1, "{report:#}");
    assert_eq!(dispatched[0]["target"], "ci");
    assert_eq!(dispatched[0]["result"], "delivered");
    assert_eq!(names(&dispatched[0]["images"]), ["child:latest"]);
    let held: Vec<(String, Vec<String>)> = report["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|held| {
            (
                held["hold"].as_str().unwrap().to_string(),
                names(&held["images"]),
            )
        })
        .collect();
    assert!(
        held.contains(&(
            "not-dispatched".to_string(),
            vec!["base:latest".to_string()]
        )),
        "{held:?}"
    );
    assert!(
        held.contains(&(
            "waiting-for-base".to_string(),
            vec!["grandchild:latest".to_string()]
        )),
        "{held:?}"
    );

    let requests = receiver.wait_for(1, std::time::Duration::from_secs(5));
    assert_eq!(requests.len(), 1);
    let first = &requests[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/hooks/rebuild")
    );
    verify_standard_signature(&hook_key(), first).unwrap();
    let body = first.json();
    assert_eq!(body["type"], "berth.rebuild");
    assert_eq!(body["data"]["wave"], 1);
    assert_eq!(body["data"]["key"], dispatched[0]["key"]);
    assert_eq!(first.header("webhook-id"), dispatched[0]["key"].as_str());
    let child_v1 = digest_at(&format!("{prefix}/child:latest"));
    assert_eq!(body["data"]["images"][0]["digest"], child_v1.as_str());
    assert_eq!(
        body["data"]["images"][0]["reasons"],
        serde_json::json!(["base-moved"])
    );

    // A second pass sends nothing: the child's rebuild is in flight.
    let report = run();
    assert_eq!(report["dispatched"], serde_json::json!([]), "{report:#}");
    assert_eq!(receiver.requests().len(), 1);

    // The child is rebuilt on v2: it closes, and the grandchild goes out.
    derive_image(
        &format!("{prefix}/base:latest"),
        &format!("{prefix}/child:latest"),
        "/srv/app/hello.txt",
        "hello from the child layer\n",
    );
    let child_v2 = digest_at(&format!("{prefix}/child:latest"));
    sync_bed(&dir);
    let report = run();
    let closed = &report["closed"][0];
    assert_eq!(closed["state"], "closed", "{report:#}");
    assert_eq!(closed["new_digest"], child_v2.as_str());
    assert!(closed["time_to_fresh_seconds"].as_u64().is_some());
    assert_eq!(
        names(&report["dispatched"][0]["images"]),
        ["grandchild:latest"],
        "{report:#}"
    );
    let requests = receiver.wait_for(2, std::time::Duration::from_secs(5));
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );

    // The grandchild is rebuilt on the old child (a cached base): reported, left open.
    derive_image(
        &format!("{prefix}/child:v1"),
        &format!("{prefix}/grandchild:latest"),
        "/srv/grandchild.txt",
        "rebuilt, but on the old child\n",
    );
    sync_bed(&dir);
    let report = run();
    assert_eq!(
        report["closed"][0]["state"], "rebuilt-on-old-base",
        "{report:#}"
    );
    assert_eq!(report["dispatched"], serde_json::json!([]));
    assert_eq!(receiver.requests().len(), 2);

    let status = json(
        &dir,
        &[
            "rebuild",
            "status",
            "--store",
            &format!("sqlite://{}", dir.join("berth.db").display()),
            "--json",
        ],
    );
    let dispatches = status["dispatches"].as_array().unwrap();
    assert_eq!(dispatches.len(), 2, "{status:#}");
    assert_eq!(dispatches[0]["state"], "in-flight");
    assert_eq!(dispatches[0]["images"][0]["state"], "rebuilt-on-old-base");
    assert_eq!(dispatches[1]["state"], "closed");
    assert_eq!(dispatches[1]["images"][0]["state"], "closed");
    assert_eq!(dispatches[1]["images"][0]["new_digest"], child_v2.as_str());
    let text = berth(
        &dir,
        &[
            "rebuild",
            "status",
            "--store",
            &format!("sqlite://{}", dir.join("berth.db").display()),
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("rebuilt-on-old-base"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dispatch_killed_mid_send_is_sent_again_with_its_key_and_serve_dispatches_on_its_lease() {
    // The first answer hangs: berth is killed while the request is in flight.
    let receiver = Receiver::start(vec![
        Reply::from(200).after(std::time::Duration::from_secs(60)),
    ]);
    let (dir, prefix, config) = rebuild_bed("rebuild-kill", &receiver);
    let plain = Testbed::get().plain();
    copy(
        &format!("{plain}/berth/upper:1"),
        &format!("{prefix}/base:latest"),
    );
    sync_bed(&dir);
    let mut running = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["rebuild", "run", "--config", &config, "--json"])
        .current_dir(&dir)
        .env_remove("BERTH_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let requests = receiver.wait_for(1, std::time::Duration::from_secs(30));
    assert_eq!(requests.len(), 1, "the dispatch reached the receiver");
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();

    // Restarted once the killed run's lease expired (10 s): the recorded dispatch goes out again
    // under the same key; nothing new.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let output = berth(&dir, &["rebuild", "run", "--config", &config, "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() == Some(3)
            && stderr.contains("rebuild lease is held")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(500));
            continue;
        }
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        break serde_json::from_slice::<Value>(&output.stdout).unwrap();
    };
    assert_eq!(report["dispatched"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        report["redelivered"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    let requests = receiver.wait_for(2, std::time::Duration::from_secs(5));
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    assert_eq!(requests[0].json()["data"], requests[1].json()["data"]);
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let status = json(&dir, &["rebuild", "status", "--store", &store, "--json"]);
    assert_eq!(
        status["dispatches"].as_array().unwrap().len(),
        1,
        "{status:#}"
    );
    assert_eq!(status["dispatches"][0]["state"], "in-flight");
    assert_eq!(status["dispatches"][0]["attempts"], 1);

    // `berth serve` with the same config: its first pass (on the rebuild lease) closes the
    // child once rebuilt and sends the grandchild's wave.
    derive_image(
        &format!("{prefix}/base:latest"),
        &format!("{prefix}/child:latest"),
        "/srv/app/hello.txt",
        "hello from the child layer\n",
    );
    sync_bed(&dir);
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", &config])
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = ServeProcess::start(command);
    server.wait_for_log("rebuild pass");
    let requests = receiver.wait_for(3, std::time::Duration::from_secs(10));
    assert_eq!(requests.len(), 3);
    assert_eq!(
        names(&requests[2].json()["data"]["images"]),
        ["grandchild:latest"]
    );
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("berth_rebuild_dispatch_total{target=\"ci\",result=\"delivered\"} 1\n")
            && metrics.contains("berth_rebuild_time_to_fresh_seconds_count 1\n")
            && metrics.contains("berth_lease_held{lease=\"rebuild\""),
        "{metrics}"
    );
    // While serve holds the lease, the CLI refuses to dispatch beside it.
    let output = berth(&dir, &["rebuild", "run", "--config", &config]);
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rebuild lease is held"), "{stderr}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
