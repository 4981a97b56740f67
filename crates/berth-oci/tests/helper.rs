//! Docker credential helpers, run for real: helper scripts written by the tests (one that
//! answers, one that answers an identity token, one that has nothing, one that fails, one that
//! hangs, one that prints a megabyte, one that is missing), asked by the client for the test
//! bed's token-auth registry.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::ImageRef;
use berth_oci::{
    Client, ClientConfig, CredentialHelper, Credentials, HelperLimits, OciError, RegistryConfig,
    Secret,
};
use berth_testkit::Testbed;

/// Writes `docker-credential-NAME` (a shell script with `body`) into a directory of the test's
/// own and returns it as a helper. The script logs the server URL it was asked about to
/// `<dir>/asked`.
fn helper(name: &str, body: &str) -> (CredentialHelper, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "berth-helper-{name}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join(format!("docker-credential-{name}"));
    let asked = dir.join("asked");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 9\nread -r url\necho \"$url\" >>{}\n{body}\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    (
        CredentialHelper {
            name: name.to_string(),
            program: Some(program),
        },
        asked,
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn client(helper: CredentialHelper, fallback: Option<Credentials>) -> Client {
    let testbed = Testbed::get();
    let mut registries = HashMap::new();
    registries.insert(
        testbed.token_registry().to_string(),
        RegistryConfig {
            ca_pem: Some(std::fs::read(testbed.var("BERTH_TEST_CA")).unwrap()),
            credentials: fallback,
            credential_helper: Some(helper),
            ..RegistryConfig::default()
        },
    );
    Client::new(ClientConfig {
        registries,
        helper_limits: HelperLimits {
            timeout: Duration::from_millis(500),
            output_bytes: 64 << 10,
        },
        ..ClientConfig::default()
    })
}

fn image(name: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{name}", Testbed::get().token_registry())).unwrap()
}

fn answer(username: &str, secret: &str) -> String {
    let registry = Testbed::get().token_registry();
    format!(
        "printf '%s' '{{\"ServerURL\":\"{registry}\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}'"
    )
}

#[tokio::test]
async fn a_helpers_answer_is_used_and_asked_for_once() {
    let testbed = Testbed::get();
    let (user, password) = testbed.token_user();
    let (helper, asked) = helper("answers", &answer(user, password));
    let client = client(helper, None);
    for name in ["berth/child:1", "berth/multi:1", "berth/child:1"] {
        client.resolve(&image(name)).await.unwrap();
    }
    let asked = std::fs::read_to_string(asked).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [testbed.token_registry()],
        "asked once, with the registry's host on stdin"
    );
}

#[tokio::test]
async fn a_token_username_means_an_identity_token() {
    let testbed = Testbed::get();
    let (helper, _) = helper("identity", &answer("<token>", testbed.token_refresh()));
    let client = client(helper, None);
    let resolved = client.resolve(&image("berth/multi:1")).await.unwrap();
    assert_eq!(resolved.digest.to_string(), testbed.digest("berth/multi:1"));
}

#[tokio::test]
async fn a_helper_with_nothing_leaves_the_config_files_credentials() {
    let testbed = Testbed::get();
    let (helper, _) = helper(
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    let (user, password) = testbed.token_reader();
    let fallback = Credentials::Basic {
        username: user.to_string(),
        password: Secret::new(password),
    };
    let client = client(helper, Some(fallback));
    client.resolve(&image("berth/child:1")).await.unwrap();
}

async fn helper_error(name: &str, body: &str) -> String {
    let (helper, _) = helper(name, body);
    let client = client(helper, None);
    let error = client.resolve(&image("berth/child:1")).await.unwrap_err();
    assert!(
        matches!(&error, OciError::CredentialHelper { registry, helper, .. }
            if registry == Testbed::get().token_registry()
                && *helper == format!("docker-credential-{name}")),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        !text.contains("hunter2"),
        "the helper's output is not repeated: {text}"
    );
    text
}

#[tokio::test]
async fn a_failing_helper_is_an_error_naming_helper_and_registry() {
    let text = helper_error(
        "fails",
        "echo 'login hunter2 failed'; echo hunter2 >&2; exit 3",
    )
    .await;
    assert!(text.ends_with("exited with status 3"), "{text}");
}

#[tokio::test]
async fn a_hanging_helper_is_stopped() {
    let text = helper_error("hangs", "sleep 30").await;
    assert!(text.contains("did not answer within 0.5 s"), "{text}");
}

#[tokio::test]
async fn a_helper_printing_a_megabyte_is_cut_off() {
    let text = helper_error("floods", "head -c 1048576 /dev/zero | tr '\\0' h").await;
    assert!(text.contains("printed more than 65536 bytes"), "{text}");
}

#[tokio::test]
async fn a_helper_that_answers_garbage_is_an_error() {
    let text = helper_error("garbage", "echo hunter2").await;
    assert!(text.contains("not its JSON"), "{text}");
}

#[tokio::test]
async fn a_missing_helper_is_an_error_naming_it() {
    let client = client(
        CredentialHelper {
            name: "nowhere".to_string(),
            program: None,
        },
        None,
    );
    let error = client.resolve(&image("berth/child:1")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "registry {}: credential helper docker-credential-nowhere is not on PATH",
            Testbed::get().token_registry()
        )
    );
}
