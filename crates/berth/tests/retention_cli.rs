//! `berth retention plan|apply` end to end against a real registry with deletes enabled (the
//! test bed's `docker-registry` binary, on a port of the test's own), a real SQLite store
//! filled by `berth sync`, an admission use recorded through the store, a kubectl List
//! imported with `berth usage import`, a catalog channel; skopeo confirms what is gone and
//! what still pulls. A stale usage source blocks `apply`; a run SIGKILLed part way, then run
//! again, leaves the registry and the store agreeing, with nothing kept touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_testkit::{OwnRegistry, ServeProcess, Testbed, skopeo};
use serde_json::{Value, json};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_LOG")
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-retention-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

/// Whether `reference` can be read from the registry (manifest by digest or tag).
fn present(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo is installed by scripts/testbed")
        .status
        .success()
}

fn plan_json(config: &str) -> Value {
    let output = berth(&["retention", "plan", "--config", config, "--json"]);
    serde_json::from_str(&ok(&output)).expect("plan JSON")
}

/// `digest → rule` of the plan's kept and deleted digests in its one repository.
fn rules(plan: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let repository = &plan["repositories"][0];
    let map = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["digest"].as_str().unwrap().to_string(),
                    item["rule"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    (map(&repository["keep"]), map(&repository["delete"]))
}

#[test]
fn plans_keeps_what_runs_and_deletes_the_rest_through_the_registry() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let repo = format!("{own}/team/app");
    let dir = scratch("e2e");
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let sync = || {
        ok(&berth(&[
            "sync",
            "--repo",
            &repo,
            "--insecure-registry",
            &own,
            "--store",
            &store,
        ]))
    };

    // An index (amd64, arm64, an attestation) first, then twelve dated manifests, each synced
    // as it lands so that their first-seen times are in push order.
    registry.copy_from_testbed("berth/multi:1", "team/app:multi");
    let index = testbed.digest("berth/multi:1");
    let arm64 = testbed.image("berth/multi:1")["manifests"]["linux/arm64"]
        .as_str()
        .unwrap()
        .to_string();
    let amd64 = testbed.image("berth/multi:1")["manifests"]["linux/amd64"]
        .as_str()
        .unwrap()
        .to_string();
    sync();
    let base = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}@{amd64}"),
    ]);
    let mut dated = Vec::new();
    for month in 1..=12 {
        let tag = format!("2026{month:02}01");
        let mut manifest: Value = serde_json::from_str(&base).unwrap();
        manifest["annotations"] =
            json!({"org.opencontainers.image.created": format!("2026-{month:02}-01T00:00:00Z")});
        let digest = registry.put_manifest("team/app", &tag, manifest.to_string().as_bytes());
        dated.push((tag, digest));
        sync();
    }
    let digest_of = |month: usize| dated[month - 1].1.clone();
    // The channel: `stable` on July's digest.
    let july: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:20260701"),
    ]))
    .unwrap();
    assert_eq!(
        registry.put_manifest("team/app", "stable", july.to_string().as_bytes()),
        digest_of(7)
    );
    sync();

    // Uses: March by an admission record, May's tag by a Deployment in an imported List, the
    // arm64 image by digest (a Pod on an arm64 node): only the index reaches it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = berth_store::Store::open(&store).await.unwrap();
        let reference = berth_core::ImageRef::parse(&format!("{repo}@{}", digest_of(3))).unwrap();
        let digest = berth_core::Digest::parse(&digest_of(3)).unwrap();
        let admitted = berth_store::Use {
            namespace: "web".to_string(),
            kind: "Deployment".to_string(),
            name: "front".to_string(),
            container: "app".to_string(),
            image: reference.to_string(),
            reference: Some(reference),
            digest: Some(digest),
        };
        store
            .record_usage(
                berth_store::UsageSource::Admission,
                "",
                &[admitted],
                false,
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        store.close().await;
    });
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "report", "namespace": "jobs"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "main", "image": format!("{repo}:20260501")}]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "edge", "namespace": "arm"},
         "spec": {"containers": [{"name": "app", "image": format!("{repo}@{arm64}")}]}},
    ]});
    let list_file = dir.join("pods.json");
    std::fs::write(&list_file, list.to_string()).unwrap();
    ok(&berth(&[
        "usage",
        "import",
        "--cluster",
        "prod",
        &list_file.display().to_string(),
        "--store",
        &store,
    ]));

    let catalog = dir.join("catalog.yaml");
    std::fs::write(
        &catalog,
        format!("images:\n  app:\n    image: {repo}\n    channels: [stable]\n"),
    )
    .unwrap();
    let write_config = |name: &str, usage: &str| {
        let config = dir.join(name);
        std::fs::write(
            &config,
            format!(
                "catalog: catalog.yaml\nstore: {store}\nregistries:\n  {own}: {{insecure: true}}\n\
                 retention:\n  max_deletions: 50\n  usage:\n{usage}  policies:\n\
                 \x20   - repositories: ['{own}/team/**']\n      keep_last: 2\n\
                 \x20     delete_tags: ['2026*', multi]\n      delete_older_than: 0\n\
                 \x20     untagged_older_than: 0\n"
            ),
        )
        .unwrap();
        config.display().to_string()
    };
    let fresh = "    admission: {fresh_within: 30d}\n    cluster: {fresh_within: 1d}\n";
    let config = write_config("berth.yaml", fresh);

    let plan = plan_json(&config);
    assert_eq!(plan["stale_sources"], json!([]), "{plan:#}");
    let (kept, deleted) = rules(&plan);
    let expect_kept: BTreeMap<String, String> = [
        (digest_of(3), "in-use"),
        (digest_of(5), "in-use"),
        (digest_of(7), "channel"),
        (arm64.clone(), "in-use"),
        (index.clone(), "index-of-kept"),
        (amd64.clone(), "child-of-kept"),
        (digest_of(11), "keep-last"),
        (digest_of(12), "keep-last"),
    ]
    .into_iter()
    .map(|(digest, rule)| (digest, rule.to_string()))
    .collect();
    for (digest, rule) in &expect_kept {
        assert_eq!(kept.get(digest), Some(rule), "{digest} in {plan:#}");
    }
    let expect_deleted: BTreeSet<String> =
        [1, 2, 4, 6, 8, 9, 10].into_iter().map(digest_of).collect();
    assert_eq!(
        deleted.keys().cloned().collect::<BTreeSet<_>>(),
        expect_deleted,
        "{plan:#}"
    );
    assert!(deleted.values().all(|rule| rule == "delete-tags"));
    assert_eq!(plan["candidates"], 7);
    assert!(plan["bytes"].as_u64().unwrap() > 0);
    let text = ok(&berth(&["retention", "plan", "--config", &config]));
    assert!(text.contains("7 to delete"), "{text}");

    // `berth serve` runs the same plan on the `retention` lease, dry by default: nothing is
    // deleted, and the last run is on the API and in the metrics. With `apply: true` it
    // deletes, at most `max_deletions` per run.
    let token_hash = berth_testkit::sha256_hex("retention-reader");
    let serve = |name: &str, apply: bool| {
        let config = dir.join(name);
        let text = std::fs::read_to_string(dir.join("berth.yaml"))
            .unwrap()
            .replace(
                "  max_deletions: 50\n",
                &format!("  max_deletions: 1\n  apply: {apply}\n"),
            );
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\nleases: {{ttl: 2s}}\napi_tokens:\n  - {{name: reader, sha256: {token_hash}, scope: read}}\n{text}"
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
        server.wait_for_log("retention run");
        let (status, run) = server.request(
            "GET",
            "/api/v1/retention",
            &[("Authorization", "Bearer retention-reader")],
            "",
        );
        assert_eq!(status, 200, "{run:#}");
        let (unauthorized, _) = server.get("/api/v1/retention");
        assert_eq!(unauthorized, 401);
        let (_, metrics) = server.get("/metrics");
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        // Stopped as Kubernetes stops it: the lease is released on the way out.
        Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .unwrap();
        let mut server = server;
        assert!(server.wait().success());
        (run, metrics)
    };
    let (dry, metrics) = serve("serve.yaml", false);
    assert_eq!(dry["apply"], false, "{dry:#}");
    assert_eq!(dry["plan"]["candidates"], 7, "{dry:#}");
    assert_eq!(dry["deleted"], 0);
    assert!(
        metrics.contains("berth_retention_candidates 7\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_retention_runs_total{result=\"success\"} 1\n"),
        "{metrics}"
    );
    for digest in &expect_deleted {
        assert!(
            present(&format!("{repo}@{digest}")),
            "a dry run deleted {digest}"
        );
    }
    let (applied, metrics) = serve("serve-apply.yaml", true);
    assert_eq!(applied["apply"], true, "{applied:#}");
    assert_eq!(applied["deleted"], 1, "{applied:#}");
    assert_eq!(applied["deferred"], 6, "{applied:#}");
    assert!(
        metrics.contains("berth_retention_deletions_total{result=\"deleted\"} 1\n"),
        "{metrics}"
    );
    let first_gone = applied["done"][0]["digest"].as_str().unwrap().to_string();
    assert!(expect_deleted.contains(&first_gone));
    assert!(!present(&format!("{repo}@{first_gone}")));

    // A source the config requires that never reported blocks apply: nothing is deleted.
    let stale_config = write_config(
        "stale.yaml",
        &format!("{fresh}    source: {{fresh_within: 7d}}\n"),
    );
    let refused = berth(&["retention", "apply", "--config", &stale_config]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr_and_out = String::from_utf8_lossy(&refused.stdout);
    assert!(
        stderr_and_out.contains("source: never reported"),
        "{stderr_and_out}"
    );
    for digest in expect_deleted
        .iter()
        .filter(|digest| **digest != first_gone)
    {
        assert!(
            present(&format!("{repo}@{digest}")),
            "a refused run deleted {digest}"
        );
    }
    let bad = berth(&[
        "retention",
        "apply",
        "--config",
        &stale_config,
        "--force-stale-usage",
        "sources",
    ]);
    assert_eq!(bad.status.code(), Some(2));

    // Forced past the stale source, three at most: three go, the rest wait.
    let first = ok(&berth(&[
        "retention",
        "apply",
        "--config",
        &stale_config,
        "--force-stale-usage",
        "source",
        "--max-deletions",
        "3",
        "--actor",
        "test",
    ]));
    assert!(first.contains("3 deleted, 0 failed, 3 left"), "{first}");

    // Killed part way: as soon as the run's first audit entry is in the store (so between an
    // audit entry and its DELETE, or a DELETE and its record, or later), then run again.
    let audited_count = |store: &berth_store::Store| {
        runtime.block_on(async {
            store
                .audit_log(None, 1000)
                .await
                .unwrap()
                .iter()
                .filter(|logged| logged.entry.action == "retention.delete")
                .count()
        })
    };
    let watcher = runtime
        .block_on(berth_store::Store::open_read_only(&store))
        .unwrap();
    let before = audited_count(&watcher);
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "retention",
            "apply",
            "--config",
            &config,
            "--max-deletions",
            "50",
        ])
        .env_remove("BERTH_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let watching = Instant::now();
    while audited_count(&watcher) == before && watching.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    let at_kill = audited_count(&watcher) - before;
    runtime.block_on(watcher.close());
    eprintln!("killed after {at_kill} audited deletion(s) of 3");
    // The killed run's lease lives out its TTL (10 s) before another run may start.
    let started = Instant::now();
    let last = loop {
        let output = berth(&["retention", "apply", "--config", &config, "--json"]);
        if output.status.code() == Some(0) {
            break serde_json::from_slice::<Value>(&output.stdout).unwrap();
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            stderr.contains("lease is held"),
            "{:?}: {stderr}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(last["refused"], Value::Null, "{last:#}");

    // The registry and the store agree: every candidate gone from both, everything kept
    // still pulls, and a new plan has nothing left to delete.
    for digest in &expect_deleted {
        assert!(
            !present(&format!("{repo}@{digest}")),
            "{digest} still in the registry"
        );
    }
    for digest in expect_kept.keys() {
        assert!(
            present(&format!("{repo}@{digest}")),
            "kept {digest} is gone"
        );
    }
    for tag in ["stable", "multi", "20260301", "20260501", "20261201"] {
        assert!(present(&format!("{repo}:{tag}")), "kept tag {tag} is gone");
    }
    assert!(!present(&format!("{repo}:20260101")));
    let after = plan_json(&config);
    assert_eq!(after["candidates"], 0, "{after:#}");
    let (kept_after, _) = rules(&after);
    for digest in expect_kept.keys() {
        assert!(
            kept_after.contains_key(digest),
            "{digest} not kept after: {after:#}"
        );
    }
    for digest in &expect_deleted {
        assert!(
            !kept_after.contains_key(digest),
            "deleted {digest} still known: {after:#}"
        );
    }
    // Every deletion was audited before it was sent: each deleted digest has an entry (a
    // killed run's entry without its DELETE is followed by the next run's).
    let audited: BTreeSet<String> = runtime.block_on(async {
        let store = berth_store::Store::open(&store).await.unwrap();
        let log = store.audit_log(None, 1000).await.unwrap();
        store.close().await;
        log.into_iter()
            .filter(|logged| logged.entry.action == "retention.delete")
            .map(|logged| logged.entry.subject.rsplit('@').next().unwrap().to_string())
            .collect()
    });
    assert_eq!(audited, expect_deleted);
    // A sync afterwards agrees with what retention recorded.
    sync();
    let resynced = plan_json(&config);
    assert_eq!(resynced["candidates"], 0, "{resynced:#}");
}
