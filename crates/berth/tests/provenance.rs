//! `berth provenance` against real manifests: the test bed's child image re-put with OCI
//! annotations (source, revision, base name and digest) into a registry of the test's own,
//! synced into a real SQLite store; the base claim is checked against layer lineage.

use std::process::{Command, Output};

use berth_testkit::{OwnRegistry, Testbed, skopeo};
use serde_json::{Value, json};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_STORE")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn report(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_base_claim_is_checked_against_lineage() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-provenance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    registry.copy_from_testbed("berth/base:1", "team/base:1");
    registry.copy_from_testbed("berth/child:1", "team/app:plain");
    let base = testbed.digest("berth/base:1");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{own}/team/app:plain"),
    ]);
    let annotated = |base_digest: &str| {
        let mut manifest: Value = serde_json::from_str(&raw).unwrap();
        manifest["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        manifest["annotations"] = json!({
            "org.opencontainers.image.source": "https://git.example.org/team/app",
            "org.opencontainers.image.revision": "4f2c1e9",
            "org.opencontainers.image.base.name": format!("{own}/team/base:1"),
            "org.opencontainers.image.base.digest": base_digest,
        });
        manifest.to_string()
    };
    // The child's layers are the base's plus one: a claim of the base agrees, another does not.
    registry.put_manifest("team/app", "good", annotated(&base).as_bytes());
    let wrong = format!("sha256:{}", "ab".repeat(32));
    registry.put_manifest("team/app", "bad", annotated(&wrong).as_bytes());
    let sync = berth(&[
        "sync",
        "--repo",
        &format!("{own}/team/app"),
        "--repo",
        &format!("{own}/team/base"),
        "--insecure-registry",
        &own,
        "--store",
        &store,
    ]);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let provenance = |tag: &str, store: Option<&str>| {
        let reference = format!("{own}/team/app:{tag}");
        let mut args = vec![
            "provenance",
            reference.as_str(),
            "--json",
            "--insecure-registry",
            own.as_str(),
        ];
        if let Some(store) = store {
            args.extend(["--store", store]);
        }
        berth(&args)
    };

    let good = report(&provenance("good", Some(&store)), 0);
    assert_eq!(good["source"]["value"], "https://git.example.org/team/app");
    assert_eq!(good["source"]["from"], "annotation");
    assert_eq!(good["revision"]["value"], "4f2c1e9");
    assert_eq!(good["lineage_base"], base.as_str());
    assert_eq!(good["base_check"], "agrees", "{good:#}");

    let bad = report(&provenance("bad", Some(&store)), 1);
    assert_eq!(bad["base_digest"]["value"], wrong.as_str());
    assert_eq!(bad["base_check"], "disagrees", "{bad:#}");
    let text = berth(&[
        "provenance",
        &format!("{own}/team/app:bad"),
        "--insecure-registry",
        &own,
        "--store",
        &store,
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("DISAGREES"));

    // Without a store nothing can check the claim; without a claim there is nothing to check.
    assert_eq!(
        report(&provenance("good", None), 0)["base_check"],
        "unverified"
    );
    assert_eq!(
        report(&provenance("plain", Some(&store)), 0)["base_check"],
        "no-claim"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
