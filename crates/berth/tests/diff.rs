//! `berth diff` end to end against real images: builds made with umoci on the test bed's base
//! (two builds that differ in one file's content, a rebuild on a moved base), pushed with
//! skopeo to a registry of the test's own, synced into a real SQLite store for lineage; and a
//! channel's last move read from the history `berth promote` recorded.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{OwnRegistry, Testbed, derive_image};
use serde_json::Value;

fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_RULES")
        .env("BERTH_ACTOR", "ci")
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

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn paths(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|change| change["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diff_names_the_base_layers_config_and_files_that_changed() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    let base = format!("{}/berth/base:1", testbed.plain());
    // Two builds of the app on the base that differ only in one file's content (same size),
    // and a rebuild of the first on a base that moved.
    derive_image(
        &base,
        &format!("{own}/team/app:1"),
        "srv/app/version",
        "one",
    );
    derive_image(
        &base,
        &format!("{own}/team/app:2"),
        "srv/app/version",
        "two",
    );
    derive_image(
        &base,
        &format!("{own}/team/base:2"),
        "etc/base-version",
        "2",
    );
    derive_image(
        &format!("{own}/team/base:2"),
        &format!("{own}/team/app:3"),
        "srv/app/version",
        "one",
    );
    registry.copy_from_testbed("berth/base:1", "team/base:1");
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n  base:\n    image: {own}/team/base\n  app:\n    image: {own}/team/app\n    base: base\n    channels: [staging, latest]\n"
        ),
    )
    .unwrap();
    let registry_flags = ["--insecure-registry", own.as_str()];
    ok(&berth(
        &dir,
        &[
            &["sync", "--catalog", "catalog.yaml", "--store", &store][..],
            &registry_flags,
        ]
        .concat(),
    ));
    let diff = |before: &str, after: &str, extra: &[&str]| {
        let args = [
            &["diff", before, after, "--json"][..],
            &registry_flags,
            extra,
        ]
        .concat();
        json(&berth(&dir, &args))
    };

    // One file's content: one layer replaced, the file changed, nothing else.
    let one = format!("{own}/team/app:1");
    let two = format!("{own}/team/app:2");
    let report = diff(&one, &two, &["--store", &store]);
    assert_eq!(report["same"], false);
    assert_eq!(report["base_changed"], false, "{report:#}");
    assert_eq!(
        report["before"]["base"],
        testbed.digest("berth/base:1"),
        "{report:#}"
    );
    assert_eq!(report["layers"]["shared"], 1);
    assert_eq!(report["layers"]["replaced"].as_array().unwrap().len(), 1);
    assert_eq!(
        paths(&report["files"]["changed"]),
        ["srv/app/version"],
        "{report:#}"
    );
    let changed = &report["files"]["changed"][0];
    assert_eq!(changed["before"]["size"], changed["after"]["size"]);
    assert_ne!(changed["before"]["content"], changed["after"]["content"]);
    assert_eq!(paths(&report["files"]["added"]), Vec::<String>::new());
    assert_eq!(report["os_changed"], false);
    assert_eq!(report["before"]["os"], "debian-12-amd64");

    // A rebuild on the moved base: the base changed (by lineage), its layer is new.
    let three = format!("{own}/team/app:3");
    let report = diff(&one, &three, &["--store", &store]);
    assert_eq!(report["base_changed"], true, "{report:#}");
    assert_eq!(report["before"]["base"], testbed.digest("berth/base:1"));
    let moved_base = json(&berth(
        &dir,
        &[
            &["inspect", &format!("{own}/team/base:2"), "--json"][..],
            &registry_flags,
        ]
        .concat(),
    ));
    assert_eq!(
        report["after"]["base"], moved_base["image"]["digest"],
        "{report:#}"
    );
    assert_eq!(report["layers"]["shared"], 1);
    assert!(
        paths(&report["files"]["added"]).contains(&"etc/base-version".to_string()),
        "{report:#}"
    );
    let text = ok(&berth(
        &dir,
        &[
            &["diff", &one, &three, "--store", &store][..],
            &registry_flags,
        ]
        .concat(),
    ));
    assert!(text.contains("base    sha256:"), "{text}");
    assert!(text.contains("+ etc/base-version"), "{text}");

    // The same image: nothing differs; with --no-layers no file list.
    let report = diff(&one, &one, &["--no-layers"]);
    assert_eq!(report["same"], true);
    assert_eq!(report["files"], Value::Null);

    // A channel's last move, from the history `berth promote` recorded.
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest}\n",
    )
    .unwrap();
    let promote = || {
        let args = [
            &[
                "promote",
                "app",
                "--from",
                "staging",
                "--to",
                "latest",
                "--catalog",
                "catalog.yaml",
                "--rules",
                "channels.yaml",
                "--store",
                &store,
            ][..],
            &registry_flags,
        ]
        .concat();
        ok(&berth(&dir, &args));
    };
    let copy = |from: &str| {
        berth_testkit::skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{own}/team/app:{from}"),
            &format!("docker://{own}/team/app:staging"),
        ]);
    };
    copy("1");
    promote();
    copy("2");
    promote();
    let args = [
        &[
            "diff",
            "--channel",
            "app:latest",
            "--catalog",
            "catalog.yaml",
            "--store",
            &store,
            "--json",
        ][..],
        &registry_flags,
    ]
    .concat();
    let report = json(&berth(&dir, &args));
    assert_eq!(
        paths(&report["files"]["changed"]),
        ["srv/app/version"],
        "{report:#}"
    );
    assert!(
        report["before"]["reference"]
            .as_str()
            .unwrap()
            .contains("team/app")
    );

    // Usage errors name what is wrong, exit 2.
    let args = [
        &[
            "diff",
            "--channel",
            "app:latest",
            "--steps",
            "5",
            "--catalog",
            "catalog.yaml",
            "--store",
            &store,
        ][..],
        &registry_flags,
    ]
    .concat();
    let output = berth(&dir, &args);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing 5 move(s) back"));
    let output = berth(&dir, &["diff", "--channel", "app:latest"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--store"));
    let output = berth(&dir, &["diff", &one]);
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
