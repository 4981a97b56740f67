//! `berth stale` and `berth rebuild plan` end to end: images built with umoci and pushed with
//! skopeo to the test bed's plain registry, synced into a SQLite store, a base moved, a child
//! rebuilt; age and OS end of life decided at a `--now` ahead.

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{ServeProcess, Testbed, derive_image, skopeo};
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

/// The digest skopeo sees at a reference.
fn digest_of(reference: &str) -> String {
    let text = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{reference}"),
    ]);
    text.trim().to_string()
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
    let base_v1 = digest_of(&format!("{prefix}/base:latest"));
    let child_v1 = digest_of(&format!("{prefix}/child:latest"));

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
    let base_v2 = digest_of(&format!("{prefix}/base:latest"));
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
