//! The requests each kind of build target gets, checked against the receiving API's
//! documentation by a real HTTP receiver (no GitHub or GitLab runs here): GitHub's
//! `POST /repos/{owner}/{repo}/dispatches` (REST API 2022-11-28: `event_type` ≤ 100 characters,
//! `client_payload` ≤ 10 top-level keys, answered 204), GitLab's
//! `POST /projects/:id/trigger/pipeline` (`token`, `ref`, `variables[KEY]` form fields, the
//! project path URL-encoded, answered 201), and a Standard Webhooks receiver (the signature
//! checked with the `openssl` command).

use std::time::Duration;

use berth_core::rebuild::{RebuildSettings, SecretSource, Target, TargetKind};
use berth_hooks::{Outcome, Sender};
use berth_rebuild::Dispatcher;
use berth_store::rebuild::{DispatchRecord, DispatchState};
use berth_testkit::receiver::{Receiver, Reply, verify_standard_signature};
use chrono::{DateTime, Utc};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn target(name: &str, kind: TargetKind, secret: SecretSource) -> Target {
    Target {
        name: name.to_string(),
        kind,
        secret,
    }
}

fn record(target: &str) -> DispatchRecord {
    DispatchRecord {
        id: 1,
        key: "rb-0123456789abcdef01234567-1".into(),
        target: target.to_string(),
        wave: 1,
        body: r#"[{"reference":"r.test/app:latest","platform":"linux/amd64","digest":"sha256:aa","reasons":["base-moved"],"stale_since":"2026-12-01T00:00:00Z"}]"#.into(),
        state: DispatchState::Pending,
        attempts: 0,
        created_at: now(),
        sent_at: None,
        next_attempt_at: None,
        finished_at: None,
        last_error: None,
        items: Vec::new(),
    }
}

fn now() -> DateTime<Utc> {
    "2026-12-04T10:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn each_target_kind_gets_the_request_its_api_documents() {
    let receiver = Receiver::start(vec![Reply::from(204), Reply::from(201), Reply::from(200)]);
    let token_file =
        std::env::temp_dir().join(format!("berth-gitlab-token-{}", std::process::id()));
    std::fs::write(&token_file, "glptt-trigger-token\n").unwrap();
    let settings = RebuildSettings {
        targets: vec![
            target(
                "images",
                TargetKind::Github {
                    repository: "org/images".into(),
                    event_type: "berth-rebuild".into(),
                    api_url: receiver.url("/api/v3"),
                },
                SecretSource::Env("GH_TOKEN".into()),
            ),
            target(
                "apps",
                TargetKind::Gitlab {
                    project: "group/apps".into(),
                    git_ref: "main".into(),
                    api_url: receiver.url(""),
                },
                SecretSource::File(token_file.clone()),
            ),
            target(
                "ci",
                TargetKind::Webhook {
                    url: receiver.url("/hooks/berth"),
                },
                SecretSource::Env("HOOK_SECRET".into()),
            ),
        ],
        ..RebuildSettings::default()
    };
    let env = |name: &str| match name {
        "GH_TOKEN" => Some("ghp_secret".to_string()),
        "HOOK_SECRET" => Some(SECRET.to_string()),
        _ => None,
    };
    let dispatcher = Dispatcher::new(settings, &env, Duration::from_secs(5), "berth").unwrap();
    assert!(
        !format!("{dispatcher:?}").contains("ghp_secret"),
        "secrets never print"
    );
    let sender = Sender::new(Duration::from_secs(5)).unwrap();
    for name in ["images", "apps", "ci"] {
        let outgoing = dispatcher.request(&record(name), now()).unwrap();
        assert!(matches!(
            sender.send(&outgoing).await,
            Outcome::Delivered { .. }
        ));
    }
    let requests = receiver.wait_for(3, Duration::from_secs(5));

    let github = &requests[0];
    assert_eq!(github.method, "POST");
    assert_eq!(github.path, "/api/v3/repos/org/images/dispatches");
    assert_eq!(github.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(github.header("authorization"), Some("Bearer ghp_secret"));
    assert_eq!(github.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(github.header("content-type"), Some("application/json"));
    let body = github.json();
    assert_eq!(body["event_type"], "berth-rebuild");
    let payload = body["client_payload"].as_object().unwrap();
    assert!(
        payload.len() <= 10,
        "GitHub takes at most 10 top-level keys"
    );
    assert_eq!(payload["key"], "rb-0123456789abcdef01234567-1");
    assert_eq!(payload["images"][0]["reference"], "r.test/app:latest");
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only event_type and client_payload"
    );

    let gitlab = &requests[1];
    assert_eq!(gitlab.method, "POST");
    assert_eq!(
        gitlab.path,
        "/api/v4/projects/group%2Fapps/trigger/pipeline"
    );
    assert_eq!(
        gitlab.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&gitlab.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(field("token"), Some("glptt-trigger-token"));
    assert_eq!(field("ref"), Some("main"));
    assert_eq!(
        field("variables[BERTH_REBUILD_KEY]"),
        Some("rb-0123456789abcdef01234567-1")
    );
    assert_eq!(field("variables[BERTH_REBUILD_WAVE]"), Some("1"));
    let images: serde_json::Value =
        serde_json::from_str(field("variables[BERTH_REBUILD_IMAGES]").unwrap()).unwrap();
    assert_eq!(images[0]["digest"], "sha256:aa");
    assert!(
        gitlab.header("authorization").is_none(),
        "the trigger token goes in the body"
    );

    let hook = &requests[2];
    assert_eq!(hook.path, "/hooks/berth");
    assert_eq!(
        hook.header("webhook-id"),
        Some("rb-0123456789abcdef01234567-1")
    );
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap()
    };
    verify_standard_signature(&key, hook).unwrap();
    let body = hook.json();
    assert_eq!(body["type"], "berth.rebuild");
    assert_eq!(body["data"]["target"], "ci");
    assert_eq!(body["data"]["images"][0]["platform"], "linux/amd64");
    let _ = std::fs::remove_file(token_file);
}

#[test]
fn a_missing_secret_names_its_target() {
    let settings = RebuildSettings {
        targets: vec![target(
            "images",
            TargetKind::Github {
                repository: "org/images".into(),
                event_type: "berth-rebuild".into(),
                api_url: "https://api.github.com".into(),
            },
            SecretSource::Env("GH_TOKEN".into()),
        )],
        ..RebuildSettings::default()
    };
    let error = Dispatcher::new(settings, &|_| None, Duration::from_secs(1), "berth").unwrap_err();
    assert_eq!(
        error.to_string(),
        "rebuild target images: $GH_TOKEN is not set"
    );
}
