//! `berth sync`, `berth images` and `berth inspect` end to end: the real binary against the test
//! bed's registry, with the demo catalog, a SQLite store in a scratch directory.

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{OwnRegistry, Testbed, skopeo};
use serde_json::Value;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(repository_root())
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_LOG")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn json(args: &[&str], code: i32) -> Value {
    let output = berth(args);
    assert_eq!(
        output.status.code(),
        Some(code),
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

/// A scratch directory with the demo catalog pointed at the test bed's plain registry.
fn scratch(name: &str) -> (PathBuf, String, String) {
    let testbed = Testbed::get();
    let dir = testbed
        .dir
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repository_root().join("examples/testbed-catalog.yaml"))
        .unwrap()
        .replace("127.0.0.1:5050", testbed.plain());
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, text).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    (dir, catalog.display().to_string(), store)
}

#[test]
fn sync_then_images_and_inspect_answer_from_the_store() {
    let testbed = Testbed::get();
    let plain = testbed.plain();
    let (dir, catalog, store) = scratch("sync");
    let common = ["--store", &store, "--insecure-registry", plain];

    let report = json(
        &[&["sync", "--catalog", &catalog, "--json"][..], &common].concat(),
        0,
    );
    assert_eq!(
        report["repositories"].as_array().unwrap().len(),
        4,
        "{report:#}"
    );
    // A cold sync resolves no tag by HEAD: each tag it has never seen is one GET.
    assert_eq!(report["requests"]["head"], 0, "{:#}", report["requests"]);
    let checks = report["declared_bases"].as_array().unwrap();
    let python = checks.iter().find(|c| c["entry"] == "python3.11").unwrap();
    assert_eq!(python["result"], "match", "{python:#}");
    let toolbox = checks.iter().find(|c| c["entry"] == "toolbox").unwrap();
    assert_eq!(toolbox["result"], "mismatch", "{toolbox:#}");
    assert_eq!(toolbox["actual_entry"], "bookworm");

    // A second sync of the same registry: one HEAD per tag, GETs only for the tag listings.
    let again = json(
        &[&["sync", "--catalog", &catalog, "--json"][..], &common].concat(),
        0,
    );
    assert_eq!(again["requests"]["get"], 4, "{:#}", again["requests"]);
    assert_eq!(again["requests"]["head"], 8, "{:#}", again["requests"]);

    let alpine = json(
        &["images", "--store", &store, "--os", "alpine", "--json"],
        0,
    );
    let alpine = alpine.as_array().unwrap();
    assert_eq!(alpine.len(), 1);
    assert_eq!(alpine[0]["os"], "alpine-3.20-amd64");
    assert_eq!(alpine[0]["libc"], "musl");
    assert!(
        alpine[0]["tags"]
            .as_array()
            .unwrap()
            .contains(&Value::from(format!("{plain}/berth/upper:1")))
    );

    let built_on = json(
        &[
            "images",
            "--store",
            &store,
            "--catalog",
            &catalog,
            "--built-on",
            "bookworm",
            "--json",
        ],
        0,
    );
    let mut digests: Vec<&str> = built_on
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let mut expected = vec![
        testbed.image("berth/child:1")["digest"].as_str().unwrap(),
        testbed.image("berth/upper:1")["digest"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(digests, expected);

    let inspected = json(
        &[
            &["inspect", &format!("{plain}/berth/child:1"), "--json"][..],
            &common,
        ]
        .concat(),
        0,
    );
    assert_eq!(inspected["identity"]["source"], "store");
    assert_eq!(inspected["lineage"]["base"], testbed.digest("berth/base:1"));

    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn inspect_reads_os_identity_from_layers_without_a_store() {
    let plain = Testbed::get().plain();
    let inspected = json(
        &[
            "inspect",
            "--insecure-registry",
            plain,
            &format!("{plain}/berth/upper:1"),
            "--json",
        ],
        0,
    );
    assert_eq!(inspected["identity"]["source"], "layers");
    assert_eq!(inspected["identity"]["os"], "alpine-3.20-amd64");
    assert!(
        inspected.get("lineage").is_none(),
        "lineage needs the store: {inspected:#}"
    );
}

#[test]
fn sync_of_a_missing_repository_fails_that_repository_only() {
    let plain = Testbed::get().plain();
    let (dir, _, store) = scratch("missing");
    let repo_missing = format!("{plain}/berth/no-such-repository");
    let repo_base = format!("{plain}/berth/base");
    let report = json(
        &[
            "sync",
            "--store",
            &store,
            "--insecure-registry",
            plain,
            "--repo",
            &repo_missing,
            "--repo",
            &repo_base,
            "--json",
        ],
        1,
    );
    let outcomes: Vec<(&str, &str)> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (repo_base.as_str(), "synced"),
            (repo_missing.as_str(), "failed")
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `berth sync` killed with SIGKILL while one repository hangs: what it recorded stays
/// readable, and the next sync completes the work without fetching anything twice.
#[test]
fn a_sync_killed_midway_leaves_a_store_the_next_sync_completes() {
    use std::net::TcpListener;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let testbed = Testbed::get();
    let plain = testbed.plain();
    let (dir, _, store) = scratch("killed");
    // A "registry" that accepts connections and never answers: the sync waits on it.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_address = hanging.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in hanging.incoming().take(8) {
            connections.push(stream);
        }
        std::thread::sleep(Duration::from_secs(120));
        drop(connections);
    });
    let good = [
        format!("{plain}/berth/base"),
        format!("{plain}/berth/child"),
    ];
    let stuck = format!("{hanging_address}/never/answers");
    let mut sync = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["sync", "--store", &store, "--insecure-registry", plain])
        .args(["--insecure-registry", &hanging_address])
        .args(["--repo", &good[0], "--repo", &good[1], "--repo", &stuck])
        .env_remove("BERTH_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until both good repositories are recorded, then kill the sync mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = berth(&["images", "--store", &store, "--json"]);
        let images: Value = serde_json::from_slice(&listed.stdout).unwrap_or(Value::Null);
        if images.as_array().is_some_and(|images| images.len() >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the good repositories were never recorded"
        );
        assert!(
            sync.try_wait().unwrap().is_none(),
            "the sync ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sync.kill().unwrap(); // SIGKILL
    sync.wait().unwrap();

    let report = json(
        &[
            "sync",
            "--store",
            &store,
            "--insecure-registry",
            plain,
            "--repo",
            &good[0],
            "--repo",
            &good[1],
            "--json",
        ],
        0,
    );
    for repository in report["repositories"].as_array().unwrap() {
        assert_eq!(repository["result"], "synced", "{repository:#}");
        assert_eq!(repository["manifests_fetched"], 0, "{repository:#}");
        assert_eq!(repository["tags_added"], 0, "{repository:#}");
    }
    let lineage = json(
        &["images", "--store", &store, "--repo", &good[1], "--json"],
        0,
    );
    assert_eq!(lineage[0]["base"], testbed.digest("berth/base:1"));
    std::fs::remove_dir_all(dir).unwrap();
    drop(held);
}

/// Issue 15, item 7: the commands that only read the store neither create a missing SQLite
/// file (nor its directory) nor answer from an empty store: exit 3 with a hint.
#[test]
fn read_only_commands_never_create_a_missing_store() {
    let plain = Testbed::get().plain();
    let (dir, catalog, _) = scratch("readers");
    let missing = dir.join("nope");
    let store = format!("sqlite://{}/none.db", missing.display());
    let image = format!("{plain}/berth/base:1");
    let commands: [&[&str]; 5] = [
        &["images", "--store", &store],
        &[
            "check",
            "--store",
            &store,
            "--catalog",
            &catalog,
            "--policy",
            "examples/policy.yaml",
            "--image",
            &image,
        ],
        &[
            "history",
            "python3.11",
            "--store",
            &store,
            "--catalog",
            &catalog,
        ],
        &["audit", "--store", &store],
        &[
            "inspect",
            "--store",
            &store,
            "--insecure-registry",
            plain,
            &image,
        ],
    ];
    for args in commands {
        let output = berth(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "berth {args:?}: {stderr}");
        assert!(
            stderr.contains("there is no store at") && stderr.contains("`berth sync` creates it"),
            "berth {args:?}: {stderr}"
        );
        assert!(
            !missing.exists(),
            "berth {args:?} created {}",
            missing.display()
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 15, items 5 and 20: a password in the store URL's query string is masked, and the
/// PostgreSQL driver's error is printed once, not followed by its own source again.
#[test]
fn a_postgres_store_error_names_no_password_and_says_it_once() {
    let base = Testbed::get().var("BERTH_TEST_PG_URL");
    let (authority, database) = base
        .trim_start_matches("postgres://")
        .split_once('/')
        .unwrap();
    let host = authority.rsplit('@').next().unwrap();
    let store = format!("postgres://nosuchrole@{host}/{database}?password=hunter2");
    let output = berth(&["images", "--store", &store]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("password=***"), "{stderr}");
    assert_eq!(
        stderr
            .matches(r#"role "nosuchrole" does not exist"#)
            .count(),
        1,
        "{stderr}"
    );
}

/// Issue 15, item 16: a whole-registry sync skips, with a warning, a repository `_catalog`
/// lists whose tag list is 404, and exits 0; one whose manifests were deleted (skopeo delete:
/// an empty tag list) syncs with no tags.
#[test]
fn a_whole_registry_sync_skips_a_listed_repository_without_a_tag_list() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let address = registry.address.clone();
    registry.copy_from_testbed("berth/base:1", "team/kept:1");
    registry.copy_from_testbed("berth/base:1", "team/deleted:1");
    let digest = testbed.digest("berth/base:1");
    skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{address}/team/deleted@{digest}"),
    ]);
    registry.push_blob_only("team/orphan");
    let (dir, _, store) = scratch("whole-registry");
    let args = [
        "sync",
        "--registry",
        &address,
        "--insecure-registry",
        &address,
        "--store",
        &store,
        "--no-layers",
        "--json",
    ];
    let output = berth(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("skipping a listed repository without tags"),
        "{stderr}"
    );
    // Issue 15, item 20: stderr is a pipe here, so the WARN line carries no ANSI colours.
    assert!(stderr.contains(" WARN "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let outcomes: Vec<(String, String, u64)> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["tags"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expected = |name: &str, result: &str, tags: u64| {
        (format!("{address}/team/{name}"), result.to_string(), tags)
    };
    assert_eq!(
        outcomes,
        [
            expected("deleted", "synced", 0),
            expected("kept", "synced", 1),
            expected("orphan", "skipped", 0),
        ],
        "{report:#}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 15, item 14: `--platform` names a platform the image must have: a single-platform
/// image of another platform, like an index without it, is a "no" (exit 1) that lists what the
/// image has, not the other platform's image with exit 0.
#[test]
fn inspect_of_a_platform_the_image_lacks_says_no_and_lists_what_it_has() {
    let plain = Testbed::get().plain();
    let cases = [
        ("berth/base:1", "linux/arm64", "linux/amd64"),
        ("berth/multi:1", "linux/s390x", "linux/amd64, linux/arm64"),
    ];
    for (image, platform, available) in cases {
        let reference = format!("{plain}/{image}");
        let args = [
            "inspect",
            "--insecure-registry",
            plain,
            "--no-layers",
            "--platform",
            platform,
            &reference,
        ];
        let output = berth(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed an image");
        assert!(
            stderr.contains(&format!(
                "no manifest for platform {platform} (the image has: {available})"
            )),
            "{stderr}"
        );
    }
    // The platform it has is described as before.
    let reference = format!("{plain}/berth/base:1");
    let inspected = json(
        &[
            "inspect",
            "--insecure-registry",
            plain,
            "--no-layers",
            "--platform",
            "linux/amd64",
            &reference,
            "--json",
        ],
        0,
    );
    assert_eq!(inspected["image"]["platform"], "linux/amd64");
}
