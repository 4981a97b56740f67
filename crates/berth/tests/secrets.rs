//! No credential in any output or log: `berth sync` against the test bed's token-auth registry
//! with a password, a refresh token and a credential helper, logging at `trace`, then the test
//! secrets are looked for in what berth printed and in the test bed's registry and issuer logs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use berth_testkit::Testbed;

/// What must never be seen: the password, `user:password` in base64 (a Basic header), the
/// refresh token, and any JWT (they start with the base64 of `{"`).
fn secrets() -> Vec<String> {
    let testbed = Testbed::get();
    let (user, password) = testbed.token_user();
    vec![
        password.to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
        testbed.token_refresh().to_string(),
        "eyJ".to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(
            !text.contains(&secret),
            "{what} holds a credential ({}…)",
            &secret[..3]
        );
    }
}

/// Runs `berth sync` of the token registry's berth/child with this config.json (and PATH), at
/// log level trace; returns stdout and stderr together.
fn sync_with(dir: &Path, config: &str, path: Option<&Path>) -> String {
    let testbed = Testbed::get();
    let authfile = dir.join("config.json");
    std::fs::write(&authfile, config).unwrap();
    let registry = testbed.token_registry();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["sync", "--json", "--no-layers", "--authfile"])
        .arg(&authfile)
        .arg("--repo")
        .arg(format!("{registry}/berth/child"))
        .arg("--registry-ca")
        .arg(format!("{registry}={}", testbed.var("BERTH_TEST_CA")))
        .arg("--store")
        .arg(format!("sqlite://{}", dir.join("berth.db").display()))
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env("BERTH_LOG", "trace");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let output = command.output().expect("berth runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "berth sync failed: {text}");
    assert!(text.contains("\"synced\""), "{text}");
    text
}

fn scratch(name: &str) -> PathBuf {
    let dir = Testbed::get()
        .dir
        .join(format!("secrets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn no_credential_appears_in_output_or_logs() {
    let testbed = Testbed::get();
    let registry = testbed.token_registry();
    let (user, password) = testbed.token_user();

    let dir = scratch("basic");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let basic = sync_with(
        &dir,
        &format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
        None,
    );
    assert_clean("berth's output with a password", &basic);

    let dir = scratch("identity");
    let refresh = testbed.token_refresh();
    let identity = sync_with(
        &dir,
        &format!(r#"{{"auths":{{"{registry}":{{"identitytoken":"{refresh}"}}}}}}"#),
        None,
    );
    assert_clean("berth's output with a refresh token", &identity);

    let dir = scratch("helper");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-testbed");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread -r url\necho \"helper was asked for $url with {password}\" >&2\nprintf '%s' '{{\"ServerURL\":\"'\"$url\"'\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path =
        std::env::join_paths([bin.as_path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    let helped = sync_with(
        &dir,
        &format!(r#"{{"credHelpers":{{"{registry}":"testbed"}}}}"#),
        Some(Path::new(&path)),
    );
    assert_clean("berth's output with a credential helper", &helped);
    assert!(
        helped.contains("asking the credential helper"),
        "the helper ran"
    );

    // The test bed's own logs: the registries' and the issuer's.
    for name in ["plain.log", "tls.log", "token.log", "issuer.log"] {
        let log = testbed.dir.join(name);
        if let Ok(text) = std::fs::read_to_string(&log) {
            assert_clean(&log.display().to_string(), &text);
        }
    }
}
