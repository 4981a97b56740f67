//! `berth usage` end to end: `scan` over a tree the test writes, one file of each kind berth
//! reads plus the things it must skip, compared as JSON and as text; the inventory in a real
//! SQLite store filled by `scan --record`, `import` of kubectl Lists and `check --report`, and
//! asked who uses an image, a catalog entry or a digest, and who still runs eol images; exit
//! codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_LOG")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-usage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn write(dir: &Path, relative: &str, content: &[u8]) {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{error}"));
    }
    std::fs::write(path, content).unwrap_or_else(|error| panic!("{error}"));
}

/// A repository with one file of each kind (a workload with a typo among them), a vendored
/// directory, a file too large, one not UTF-8, and a link out of the tree.
fn repository(dir: &Path, outside: &Path) {
    write(
        dir,
        "src/app/Dockerfile",
        b"ARG REPO=mcr.microsoft.com/dotnet/aspnet\nARG TAG\n\
          FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:8.0 AS build\n\
          RUN dotnet publish -o /app\n\
          FROM $REPO:8.0-jammy AS final\nCOPY --from=build /app .\n\
          FROM build AS test\nFROM scratch\nFROM alpine:$TAG\n",
    );
    write(
        dir,
        "deploy/app.yaml",
        b"apiVersion: v1\nkind: Service\nmetadata: {name: app}\n---\n\
          apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n\
          \x20     containers:\n        - name: app\n          image: ghcr.io/example/app:1.4\n\
          \x20       - name: sidecar\n          imgae: envoyproxy/envoy:v1.31.0\n",
    );
    write(
        dir,
        "compose.yaml",
        b"services:\n  db:\n    image: postgres:16-alpine\n",
    );
    write(
        dir,
        ".github/workflows/ci.yml",
        b"on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container: ${{ matrix.image }}\n\
          \x20   services:\n      redis:\n        image: redis:7\n    steps:\n\
          \x20     - uses: docker://hadolint/hadolint:v2.12.0\n",
    );
    write(
        dir,
        ".gitlab-ci.yml",
        b"image: ruby:3.3\ntest:\n  services:\n    - name: Postgres:16\n      alias: db\n  script:\n\
          \x20   - !reference [.setup, script]\n",
    );
    write(
        dir,
        "azure-pipelines.yml",
        b"resources:\n  containers:\n  - container: sdk\n    image: mcr.microsoft.com/dotnet/sdk:8.0\n\
          jobs:\n- job: Build\n  container: sdk\n- job: Lint\n  container: $(lintImage)\n",
    );
    write(dir, "vendor/lib/Dockerfile", b"FROM never/seen\n");
    write(
        dir,
        "node_modules/x/compose.yaml",
        b"services: {a: {image: never}}\n",
    );
    let mut large = b"# generated\n".to_vec();
    large.resize(1024 * 1024 + 1, b'#');
    write(dir, "assets/big.yaml", &large);
    write(
        dir,
        "legacy/Dockerfile.win",
        b"FROM mcr.microsoft.com/windows:caf\xe9\n",
    );
    write(dir, "README.md", b"FROM not/a/dockerfile\n");
    write(outside, "Dockerfile", b"FROM outside/secret\n");
    std::os::unix::fs::symlink(outside.join("Dockerfile"), dir.join("linked.Dockerfile"))
        .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn scan_finds_every_kind_and_reports_what_it_skipped() {
    let dir = scratch("tree");
    let outside = scratch("outside");
    repository(&dir, &outside);
    let root = dir.display().to_string();
    let output = berth(&["usage", "scan", &root, "--repo", "shop", "--json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("not JSON: {error}"));
    let found = |path: &str,
                 line: usize,
                 column: usize,
                 kind: &str,
                 context: &str,
                 image: &str,
                 reference: Option<&str>,
                 resolved: bool,
                 problem: Option<&str>| {
        json!({"path": path, "line": line, "column": column, "kind": kind, "context": context,
               "image": image, "reference": reference, "resolved": resolved, "problem": problem})
    };
    let expect = json!({
        "repo": "shop",
        "findings": [
            found(".github/workflows/ci.yml", 5, 16, "github-actions", "job test container",
                  "${{ matrix.image }}", None, false,
                  Some("an expression filled in when the pipeline runs")),
            found(".github/workflows/ci.yml", 8, 16, "github-actions", "job test service redis",
                  "redis:7", Some("docker.io/library/redis:7"), true, None),
            found(".github/workflows/ci.yml", 10, 15, "github-actions", "job test step 1",
                  "hadolint/hadolint:v2.12.0", Some("docker.io/hadolint/hadolint:v2.12.0"),
                  true, None),
            found(".gitlab-ci.yml", 1, 8, "gitlab-ci", "global image", "ruby:3.3",
                  Some("docker.io/library/ruby:3.3"), true, None),
            found(".gitlab-ci.yml", 4, 13, "gitlab-ci", "job test service db", "Postgres:16",
                  None, true, Some("invalid image reference \"Postgres:16\": repository name \
                  must be lowercase")),
            found("azure-pipelines.yml", 4, 12, "azure-pipelines", "resource container sdk",
                  "mcr.microsoft.com/dotnet/sdk:8.0", Some("mcr.microsoft.com/dotnet/sdk:8.0"),
                  true, None),
            found("azure-pipelines.yml", 9, 14, "azure-pipelines", "job Lint container",
                  "$(lintImage)", None, false,
                  Some("a pipeline variable `$(...)` filled in when the pipeline runs")),
            found("compose.yaml", 3, 12, "compose", "service db", "postgres:16-alpine",
                  Some("docker.io/library/postgres:16-alpine"), true, None),
            found("deploy/app.yaml", 13, 18, "kubernetes", "Deployment/app container app",
                  "ghcr.io/example/app:1.4", Some("ghcr.io/example/app:1.4"), true, None),
            found("src/app/Dockerfile", 3, 32, "dockerfile", "stage build",
                  "mcr.microsoft.com/dotnet/sdk:8.0", Some("mcr.microsoft.com/dotnet/sdk:8.0"),
                  true, None),
            found("src/app/Dockerfile", 5, 6, "dockerfile", "stage final", "$REPO:8.0-jammy",
                  Some("mcr.microsoft.com/dotnet/aspnet:8.0-jammy"), true, None),
            found("src/app/Dockerfile", 9, 6, "dockerfile", "stage 4", "alpine:$TAG", None,
                  false, Some("ARG TAG has no default (the build passes it with --build-arg)")),
        ],
        "skipped": [
            {"path": "assets/big.yaml", "line": null, "column": null,
             "reason": "1048577 bytes, larger than the 1048576 bytes berth reads"},
            {"path": "deploy/app.yaml", "line": 14, "column": 11,
             "reason": "Deployment/app: /spec/template/spec/containers/1: the container has no \
             `image` (Kubernetes requires one)"},
            {"path": "deploy/app.yaml", "line": 15, "column": 18,
             "reason": "Deployment/app: /spec/template/spec/containers/1/imgae: unknown field \
             `imgae` in a container; did you mean `image`?"},
            {"path": "legacy/Dockerfile.win", "line": 1, "column": 35,
             "reason": "not UTF-8 text (byte 0xe9); save the file as UTF-8"},
            {"path": "linked.Dockerfile", "line": null, "column": null,
             "reason": "a symbolic link out of the scanned directory; not followed"},
        ],
    });
    assert_eq!(
        got,
        expect,
        "{}",
        serde_json::to_string_pretty(&got).unwrap_or_default()
    );

    // The same scan as text: one line per finding on stdout, what was skipped on stderr.
    let output = berth(&["usage", "scan", &root]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{stdout}");
    assert_eq!(
        lines[10],
        "src/app/Dockerfile:5:6  dockerfile  stage final  $REPO:8.0-jammy  \
         (= mcr.microsoft.com/dotnet/aspnet:8.0-jammy)"
    );
    assert_eq!(
        lines[1],
        ".github/workflows/ci.yml:8:16  github-actions  job test service redis  redis:7"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("legacy/Dockerfile.win:1:35: skipped: not UTF-8 text (byte 0xe9)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}

#[test]
fn a_missing_directory_is_the_users_mistake() {
    let dir = scratch("missing");
    let missing = dir.join("nowhere");
    let output = berth(&["usage", "scan", &missing.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("berth: {} does not exist\n", missing.display())
    );
    write(&dir, "file.yaml", b"a: 1\n");
    let file = dir.join("file.yaml").display().to_string();
    let output = berth(&["usage", "scan", &file]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(berth(&["usage", "scan"]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

fn json_of(output: &Output) -> serde_json::Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("not JSON: {error}"))
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A kubectl List: a Deployment on the eol image and the Pod its ReplicaSet made (which knows
/// the digest it runs), and a CronJob on a stable one.
fn cluster_list(with_cronjob: bool) -> String {
    let digest = format!("sha256:{}", "1".repeat(64));
    let mut items = vec![
        json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "tool-a"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "app", "image": "127.0.0.1:5050/berth/bullseye:latest"}]}}}}),
        json!({"kind": "Pod",
               "metadata": {"name": "web-7d-x", "namespace": "tool-a",
                            "labels": {"pod-template-hash": "7d"},
                            "ownerReferences": [
                                {"kind": "ReplicaSet", "name": "web-7d", "controller": true}]},
               "spec": {"containers": [
                   {"name": "app", "image": "127.0.0.1:5050/berth/bullseye:latest"}]},
               "status": {"containerStatuses": [
                   {"name": "app", "image": "127.0.0.1:5050/berth/bullseye:latest",
                    "imageID": format!("127.0.0.1:5050/berth/bullseye@{digest}")}]}}),
    ];
    if with_cronjob {
        items.push(
            json!({"kind": "CronJob", "metadata": {"name": "nightly", "namespace": "tool-b"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "job", "image": "127.0.0.1:5050/berth/base:1"}]}}}}}}),
        );
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[test]
fn the_inventory_answers_who_uses_what_from_every_source() {
    let dir = scratch("inventory");
    let outside = scratch("inventory-outside");
    repository(&dir.join("shop"), &outside);
    let store = format!("sqlite://{}/berth.db", dir.display());
    let catalog = repository_root().join("examples/catalog.yaml");
    let catalog = catalog.display().to_string();
    let policy = repository_root().join("examples/policy.yaml");
    let shop = dir.join("shop").display().to_string();

    // A scan that skipped files is recorded, but is no full report of its tree.
    let scanned = berth(&["usage", "scan", &shop, "--record", "--store", &store]);
    assert_eq!(scanned.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&scanned.stderr);
    assert!(
        stderr.contains("of source \"shop\"; not a full report, nothing marked gone"),
        "{stderr}"
    );

    // A full cluster import, then one without the CronJob: it is gone, not deleted.
    let lists = dir.join("cluster.json");
    std::fs::write(&lists, cluster_list(true)).unwrap_or_else(|error| panic!("{error}"));
    let imported = json_of(&berth(&[
        "usage",
        "import",
        "--cluster",
        "prod",
        &lists.display().to_string(),
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        imported,
        json!({"cluster": "prod", "items": 3, "recorded": 2, "gone": 0, "full": true,
               "problems": []})
    );
    std::fs::write(&lists, cluster_list(false)).unwrap_or_else(|error| panic!("{error}"));
    let imported = json_of(&berth(&[
        "usage",
        "import",
        "--cluster",
        "prod",
        &lists.display().to_string(),
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        (&imported["recorded"], &imported["gone"]),
        (&json!(1), &json!(1))
    );

    // A pipeline's check is recorded under its name and branch.
    let checked = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "check",
            "--policy",
            &policy.display().to_string(),
            "--catalog",
            &catalog,
        ])
        .args([
            "--image",
            "127.0.0.1:5050/berth/base:1",
            "--report",
            "--store",
            &store,
        ])
        .env_remove("BERTH_LOG")
        .env("GITHUB_REPOSITORY", "org/shop")
        .env("GITHUB_WORKFLOW", "build")
        .env("GITHUB_REF_NAME", "main")
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        String::from_utf8_lossy(&checked.stderr)
            .contains("recorded 1 uses of pipeline \"org/shop/build\""),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let places = |answer: &serde_json::Value| -> Vec<String> {
        answer["uses"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|usage| {
                format!(
                    "{} {} {}/{}/{} {}",
                    usage["source"].as_str().unwrap_or_default(),
                    usage["scope"].as_str().unwrap_or_default(),
                    usage["namespace"].as_str().unwrap_or_default(),
                    usage["kind"].as_str().unwrap_or_default(),
                    usage["name"].as_str().unwrap_or_default(),
                    usage["container"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    };
    // By reference: the CronJob is gone, so only the pipeline uses base:1 now.
    let base = json_of(&berth(&[
        "usage",
        "127.0.0.1:5050/berth/base:1",
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        places(&base),
        ["ci org/shop/build main/image/127.0.0.1:5050/berth/base:1 "]
    );
    let with_gone = json_of(&berth(&[
        "usage",
        "127.0.0.1:5050/berth/base:1",
        "--include-gone",
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        places(&with_gone),
        [
            "ci org/shop/build main/image/127.0.0.1:5050/berth/base:1 ",
            "cluster prod tool-b/CronJob/nightly job",
        ]
    );
    assert!(with_gone["uses"][1]["gone_at"].is_string(), "{with_gone}");
    // By digest: what the Pod's imageID said the Deployment runs.
    let digest = format!("sha256:{}", "1".repeat(64));
    let by_digest = json_of(&berth(&["usage", &digest, "--store", &store, "--json"]));
    assert_eq!(
        places(&by_digest),
        ["cluster prod tool-a/Deployment/web app"]
    );
    // By catalog name: every tag of the entry's repositories; the source tree's references.
    let by_name = json_of(&berth(&[
        "usage",
        "bullseye",
        "--catalog",
        &catalog,
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        by_name["repositories"],
        json!(["127.0.0.1:5050/berth/bullseye"])
    );
    assert_eq!(places(&by_name), ["cluster prod tool-a/Deployment/web app"]);
    let from_tree = json_of(&berth(&[
        "usage",
        "ghcr.io/example/app:1.4",
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(
        places(&from_tree),
        ["source shop /kubernetes/deploy/app.yaml Deployment/app container app"]
    );

    // The campaign: bullseye is eol since 2026-08-31 (examples/catalog.yaml), with its
    // replacement; nothing is eol a year before.
    let campaign = json_of(&berth(&[
        "usage",
        "--state",
        "eol",
        "--at",
        "2026-12-01",
        "--catalog",
        &catalog,
        "--store",
        &store,
        "--json",
    ]));
    assert_eq!(campaign["namespaces"][0]["namespace"], json!("tool-a"));
    let only = &campaign["namespaces"][0]["uses"];
    assert_eq!(
        (
            &only[0]["entry"],
            &only[0]["state"],
            &only[0]["since"],
            &only[0]["replacement"]
        ),
        (
            &json!("bullseye"),
            &json!("eol"),
            &json!("2026-08-31"),
            &json!("bookworm")
        )
    );
    assert_eq!(
        campaign["namespaces"].as_array().map(Vec::len),
        Some(1),
        "{campaign}"
    );
    let text = berth(&[
        "usage",
        "--state",
        "eol",
        "--at",
        "2025-12-01",
        "--catalog",
        &catalog,
        "--store",
        &store,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&text.stdout),
        "no use of an image that is eol at 2025-12-01\n"
    );

    let sources = json_of(&berth(&["usage", "sources", "--store", &store, "--json"]));
    let freshness: Vec<(String, String, bool, u64)> = sources
        .as_array()
        .unwrap_or_else(|| panic!("{sources}"))
        .iter()
        .map(|source| {
            (
                source["source"].as_str().unwrap_or_default().to_string(),
                source["scope"].as_str().unwrap_or_default().to_string(),
                source["last_full_at"].is_string(),
                source["uses"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        freshness[0],
        ("ci".into(), "org/shop/build".into(), false, 1)
    );
    assert_eq!(freshness[1], ("cluster".into(), "prod".into(), true, 1));
    assert_eq!((freshness[2].0.as_str(), freshness[2].2), ("source", false));

    // Bad input names its place and records nothing.
    std::fs::write(&lists, "{\"kind\": \"List\",\n \"items\": [}")
        .unwrap_or_else(|e| panic!("{e}"));
    let broken = berth(&[
        "usage",
        "import",
        &lists.display().to_string(),
        "--store",
        &store,
    ]);
    assert_eq!(broken.status.code(), Some(2));
    let message = String::from_utf8_lossy(&broken.stderr);
    assert!(
        message.starts_with(&format!("berth: {}:2:", lists.display())),
        "{message}"
    );
    assert_eq!(berth(&["usage", "--store", &store]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}
