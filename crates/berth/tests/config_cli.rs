//! `berth config show` end to end: every value with its source (flag over file over
//! environment over default, with file:line:column), secrets redacted, and config mistakes
//! reported all at once with "did you mean".

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-config-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    dir
}

fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_POLICY")
        .env_remove("BERTH_RULES")
        .env_remove("BERTH_LOG");
    command
}

const TOKEN_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn config_show_names_each_source_and_redacts_secrets() {
    let dir = scratch("show");
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:9000\nstore: postgres://berth:s3cret@db/berth?password=hunter2\nknowledge_refresh: 30s\napi_tokens:\n  - {{name: release-bot, sha256: {TOKEN_HASH}, scope: promote}}\nleases: {{ttl: 1m30s}}\n"
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let output = berth()
        .current_dir(&dir)
        .env("BERTH_CATALOG", "from-env.yaml")
        .env("HOSTNAME", "pod-7")
        .args(["config", "show", "--config", "berth.yaml", "--json"])
        .args(["--listen", "0.0.0.0:8443"])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains(TOKEN_HASH), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}"));
    let setting = |key: &str| -> (String, String, String) {
        let found = report["settings"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["key"] == key))
            .unwrap_or_else(|| panic!("no {key} in {report}"));
        let value = match &found["value"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        (
            value,
            found["source"].as_str().unwrap_or_default().to_string(),
            found["origin"].as_str().unwrap_or_default().to_string(),
        )
    };
    let triple = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        setting("listen"),
        triple("0.0.0.0:8443", "flag", "--listen")
    );
    assert_eq!(
        setting("catalog"),
        triple("from-env.yaml", "env", "BERTH_CATALOG")
    );
    let (store, source, origin) = setting("store");
    assert!(
        store.starts_with("postgres://berth:***@db/berth"),
        "{store}"
    );
    assert_eq!(
        (source.as_str(), origin.as_str()),
        ("file", "berth.yaml:2:8")
    );
    assert_eq!(
        setting("knowledge_refresh"),
        triple("30s", "file", "berth.yaml:3:20")
    );
    assert_eq!(
        setting("api_tokens").0,
        "[\"release-bot (promote)\"]".to_string()
    );
    assert_eq!(
        setting("leases.ttl"),
        triple("1m30s", "file", "berth.yaml:6:15")
    );
    assert_eq!(
        setting("catalog_poll_interval"),
        triple("2s", "default", "")
    );
    let (holder, source, _) = setting("leases.holder");
    assert!(holder.starts_with("pod-7/"), "{holder}");
    assert_eq!(source, "env");
}

#[test]
fn config_show_reports_every_mistake_at_once() {
    let dir = scratch("mistakes");
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        "polcy: p.yaml\nknowledge_refresh: soon\nresolve: {cahce: 5}\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let output = berth()
        .args(["config", "show", "--config"])
        .arg(&config)
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let name = config.display().to_string();
    for expected in [
        format!("{name}:1:1: error: polcy: unknown field `polcy`; did you mean `policy`?"),
        format!(
            "{name}:2:20: error: knowledge_refresh: \"soon\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)"
        ),
        format!("{name}:3:11: error: resolve.cahce: unknown field `cahce`; did you mean `cache`?"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nin\n{stderr}");
    }
    assert!(stderr.contains("3 errors in the config file"), "{stderr}");
}
