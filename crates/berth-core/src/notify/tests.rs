//! The `notifications` section's reading and its errors, events from audit entries, and the
//! two bodies a message is sent as.

use super::*;

fn settings_for(text: &str) -> Result<Settings, Vec<String>> {
    crate::catalog::read::section_for(text, read_section)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn the_section_reads_targets_events_and_limits() {
    let settings = settings_for(
        "
targets:
  - name: platform
    webhook: {url: 'https://hooks.example/berth/', secret_env: HOOK_SECRET}
    events: [promotion, rollback]
  - name: chat
    slack: {url_file: /run/secrets/slack}
    events: [eol-soon]
eol_within: 14d
denials_window: 5m
attempts: 3
interval: 10s
",
    )
    .unwrap();
    assert_eq!(settings.targets.len(), 2);
    assert_eq!(
        settings.targets[0].kind,
        TargetKind::Webhook {
            url: "https://hooks.example/berth".to_string(),
            secret: SecretSource::Env("HOOK_SECRET".to_string()),
        }
    );
    assert_eq!(
        settings.targets[1].kind,
        TargetKind::Slack {
            url: SecretSource::File("/run/secrets/slack".into()),
        }
    );
    assert!(settings.heard("eol-soon") && !settings.heard("stale"));
    assert_eq!(settings.eol_within, Duration::from_secs(14 * 86_400));
    assert_eq!(settings.denials_window, Duration::from_secs(300));
    assert_eq!(settings.sync_failing_for, Duration::from_secs(3600));
    assert_eq!(settings.attempts, 3);
    assert_eq!(settings.interval, Duration::from_secs(10));
}

#[test]
fn mistakes_are_named_at_their_place() {
    let errors = settings_for(
        "
targets:
  - name: platform
    webhook: {url: 'ftp://x', secret_env: A, secret_file: b}
    events: [promotoin]
  - name: platform
    slack: {url_env: SLACK}
    events: []
  - name: both
    slack: {url_env: SLACK}
    webhook: {url: 'https://x', secret_env: A}
    events: [stale]
interval: 0
atempts: 2
",
    )
    .unwrap_err();
    let text = errors.join("\n");
    assert!(text.contains("targets[0].webhook.url"), "{text}");
    assert!(
        text.contains("needs exactly one of `secret_env` and `secret_file`"),
        "{text}"
    );
    assert!(
        text.contains("\"promotoin\" is not an event; did you mean `promotion`?"),
        "{text}"
    );
    assert!(text.contains("names no event"), "{text}");
    assert!(
        text.contains("a target needs exactly one of `webhook`, `slack`"),
        "{text}"
    );
    assert!(text.contains("interval: must be at least 1s"), "{text}");
    assert!(text.contains("did you mean `attempts`"), "{text}");
    // Every message carries its file and line.
    assert!(
        errors.iter().all(|error| error.starts_with("berth.yaml:")),
        "{text}"
    );
}

#[test]
fn channel_audit_entries_are_events_and_others_are_not() {
    let before = json!({"digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"});
    let after = json!({"digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222", "kind": "promotion", "reason": "scheduled"});
    let event = from_audit(
        7,
        at("2026-12-01T10:00:00Z"),
        "berth-scheduler",
        "channel.promote",
        "python3.11:stable",
        Some(&before),
        Some(&after),
    )
    .unwrap();
    assert_eq!(event.kind, "promotion");
    assert_eq!(event.key, "audit:7");
    assert_eq!(
        event.summary,
        "python3.11:stable promoted sha256:111111111111 → sha256:222222222222 by berth-scheduler (scheduled)"
    );
    let rollback = from_audit(
        8,
        event.at,
        "alice",
        "channel.rollback",
        "s:stable",
        None,
        Some(&after),
    )
    .unwrap();
    assert_eq!(rollback.kind, "rollback");
    assert!(
        rollback.summary.contains("nothing → sha256:222222222222"),
        "{}",
        rollback.summary
    );
    assert_eq!(
        from_audit(
            9,
            event.at,
            "x",
            AUDIT_DRIFT,
            "s:stable",
            Some(&before),
            Some(&after)
        )
        .unwrap()
        .kind,
        "drift"
    );
    assert!(from_audit(10, event.at, "x", "catalog.reload", "catalog", None, None).is_none());
    assert!(from_audit(11, event.at, "x", "retention.delete", "r@d", None, None).is_none());
}

#[test]
fn a_webhook_body_has_type_timestamp_and_data_and_slack_gets_text() {
    let event = sync_failing(
        "registry.test/team/app",
        at("2026-12-01T08:30:00Z"),
        Some(at("2026-12-01T08:00:00Z")),
        "connection refused\n",
        at("2026-12-01T10:00:00Z"),
    );
    assert_eq!(
        event.key,
        "sync-failing:registry.test/team/app:2026-12-01T08:30:00Z"
    );
    let body: Value = serde_json::from_slice(&webhook_body(&event)).unwrap();
    assert_eq!(body["type"], "berth.sync-failing");
    assert_eq!(body["timestamp"], "2026-12-01T10:00:00Z");
    assert_eq!(body["data"]["repository"], "registry.test/team/app");
    assert_eq!(body["data"]["key"], event.key);
    assert!(
        body["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("connection refused\\n")
    );
    let slack: Value = serde_json::from_slice(&slack_body(&event)).unwrap();
    assert!(slack["text"].as_str().unwrap().starts_with(
        "[berth] sync of registry.test/team/app has failed since 2026-12-01T08:30:00Z \
                 (last good sync: 2026-12-01T08:00:00Z)"
    ));
}

#[test]
fn retention_deletions_are_one_message_and_eol_counts_days_and_uses() {
    let deletions = [
        Deletion {
            audit_id: 4,
            subject: "r/a@sha256:1".into(),
            bytes: Some(100),
            tags: vec!["old".into()],
        },
        Deletion {
            audit_id: 9,
            subject: "r/a@sha256:2".into(),
            bytes: Some(50),
            tags: vec![],
        },
    ];
    let event = retention_applied(at("2026-12-01T10:00:00Z"), &deletions).unwrap();
    assert_eq!(event.key, "retention:4-9");
    assert!(
        event.summary.contains("2 manifests (150 bytes"),
        "{}",
        event.summary
    );
    assert!(retention_applied(event.at, &[]).is_none());

    let uses = [
        json!({"namespace": "tool-a"}),
        json!({"namespace": "tool-b"}),
    ];
    let eol = eol_soon(
        "python3.9",
        NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
        Some("python3.11"),
        &uses,
        at("2026-12-01T10:00:00Z"),
    );
    assert_eq!(eol.key, "eol-soon:python3.9:2026-12-15");
    assert_eq!(eol.data["days_left"], 14);
    assert!(
        eol.summary
            .contains("2 workloads still use it; move to python3.11"),
        "{}",
        eol.summary
    );
}
