//! `berth promote`, `rollback`, `history`, `channels` and `audit` end to end: the real binary,
//! the test bed's registry, a SQLite store file, and simulated time (`--now`) walking through the
//! weekly rollout of docs/channels.md. What the registry holds is read back with skopeo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_testkit::{Testbed, skopeo};

/// The example rules: Wednesdays 10:00 Copenhagen, 2 days soak, a window, a freeze, first
/// publish at once.
const RULES: &str = include_str!("../../../examples/channels.yaml");

struct Demo {
    dir: PathBuf,
    repository: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Demo {
    fn new(name: &str) -> Demo {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let unique = format!("{name}-{}-{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(format!("berth-channels-cli-{unique}"));
        std::fs::create_dir_all(&dir).unwrap();
        let repository = format!("berth-cli/{unique}");
        std::fs::write(
            dir.join("catalog.yaml"),
            format!(
                "images:\n  app:\n    image: {}/{repository}\n    channels: [staging, latest]\n",
                Testbed::get().plain()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("channels.yaml"), RULES).unwrap();
        Demo { dir, repository }
    }

    /// Publishes a test bed image to `tag`, as CI would.
    fn push(&self, image: &str, tag: &str) {
        let plain = Testbed::get().plain();
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{plain}/{image}"),
            &format!("docker://{plain}/{}:{tag}", self.repository),
        ]);
    }

    fn seen(&self, tag: &str) -> String {
        let plain = Testbed::get().plain();
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{plain}/{}:{tag}", self.repository),
        ]);
        let file = self.dir.join("manifest.json");
        std::fs::write(&file, raw).unwrap();
        skopeo(&["manifest-digest", file.to_str().unwrap()])
            .trim()
            .to_string()
    }

    /// Runs `berth COMMAND ARGS --now NOW` with this demo's catalog, rules and store.
    fn berth(&self, args: &[&str], now: &str) -> Output {
        let dir: &Path = &self.dir;
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .args([
                "--catalog",
                "catalog.yaml",
                "--rules",
                "channels.yaml",
                "--store",
                "sqlite://berth.db",
                "--insecure-registry",
                Testbed::get().plain(),
                "--now",
                now,
            ])
            .current_dir(dir)
            .env_remove("BERTH_CATALOG")
            .env_remove("BERTH_STORE")
            .env_remove("BERTH_RULES")
            .env_remove("BERTH_ACTOR")
            // The actor when --actor is not given.
            .env("USER", "carol")
            .env_remove("BERTH_LOG")
            .output()
            .unwrap()
    }

    /// Runs berth and checks the exit code; returns stdout.
    fn expect(&self, args: &[&str], now: &str, code: i32) -> String {
        let output = self.berth(args, now);
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(
            output.status.code(),
            Some(code),
            "berth {args:?} at {now}\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }
}

#[test]
fn the_weekly_rollout_with_soak_first_publish_and_rollback() {
    let demo = Demo::new("weekly");
    let base = Testbed::get().digest("berth/base:1");
    let child = Testbed::get().digest("berth/child:1");
    demo.push("berth/base:1", "staging");
    const PROMOTE: &[&str] = &["promote", "app", "--from", "staging", "--to", "latest"];

    // Monday: a brand-new image gets `latest` at once.
    let status = demo.expect(&["channels"], "2026-11-16T09:00:00Z", 0);
    assert!(
        status.contains(&format!("would publish {base} at once (first publish)")),
        "{status}"
    );
    demo.expect(
        &[PROMOTE, &["--actor", "alice"]].concat(),
        "2026-11-16T09:05:00Z",
        0,
    );
    assert_eq!(demo.seen("latest"), base);

    // CI publishes a new staging image on Monday noon; Wednesday 10:00 it has soaked 45 hours.
    demo.push("berth/child:1", "staging");
    let status = demo.expect(&["channels"], "2026-11-16T12:00:00Z", 0);
    assert!(
        status.contains("soaking on the source until 2026-11-18 12:00:00 UTC"),
        "{status}"
    );
    let blocked = demo.expect(PROMOTE, "2026-11-18T09:00:00Z", 1);
    assert!(blocked.contains("not promoting"), "{blocked}");
    assert_eq!(demo.seen("latest"), base);

    // The next Wednesday it goes out; then it breaks builds and is rolled back in one command.
    demo.expect(PROMOTE, "2026-11-25T09:00:00Z", 0);
    assert_eq!(demo.seen("latest"), child);
    let again = demo.expect(PROMOTE, "2026-11-25T09:01:00Z", 0);
    assert!(again.contains("nothing to do"), "{again}");
    demo.expect(
        &[
            "rollback",
            "app",
            "--channel",
            "latest",
            "--actor",
            "bob",
            "--reason",
            "breaks builds",
        ],
        "2026-11-25T10:00:00Z",
        0,
    );
    assert_eq!(demo.seen("latest"), base);
    // The next Wednesday the scheduler's view does not bring the bad image back.
    let status = demo.expect(&["channels"], "2026-12-02T09:00:00Z", 0);
    assert!(status.contains("rolled back from it"), "{status}");
    let refused = demo.berth(
        &[
            "rollback",
            "app",
            "--channel",
            "latest",
            "--to",
            &format!("sha256:{}", "e".repeat(64)),
        ],
        "2026-11-25T10:05:00Z",
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");

    let history = demo.expect(
        &["history", "app", "--channel", "latest", "--json"],
        "2026-11-25T11:00:00Z",
        0,
    );
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let moves: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            format!(
                "{} {} {}",
                entry["kind"].as_str().unwrap(),
                entry["digest"].as_str().unwrap() == base,
                entry["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            "promotion true alice",
            "promotion false carol",
            "rollback true bob"
        ]
    );
    let audit = demo.expect(&["audit", "--json"], "2026-11-25T11:00:00Z", 0);
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["channel.rollback", "channel.promote", "channel.promote"]
    );
}

#[test]
fn drift_on_a_channel_berth_manages_is_reported_and_exits_one() {
    let demo = Demo::new("drift");
    demo.push("berth/base:1", "staging");
    demo.expect(
        &["promote", "app", "--from", "staging", "--to", "latest"],
        "2026-11-16T09:05:00Z",
        0,
    );
    // Someone re-points latest with skopeo.
    demo.push("berth/child:1", "latest");
    let status = demo.expect(&["channels"], "2026-11-16T10:00:00Z", 1);
    assert!(status.contains("(drift: recorded)"), "{status}");
    let history = demo.expect(
        &["history", "app", "--channel", "latest"],
        "2026-11-16T10:00:00Z",
        0,
    );
    assert!(history.contains("outside-change"), "{history}");
    // The drift of the managed channel is an audit entry (what notifications tell); the
    // source channel CI publishes to is not.
    let audit = demo.expect(&["audit", "--json"], "2026-11-16T10:00:00Z", 0);
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let drifts: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "channel.drift")
        .map(|entry| entry["subject"].as_str().unwrap())
        .collect();
    assert_eq!(drifts, ["app:latest"], "{audit:#}");
}

/// Issue 15, item 10: a hand fix on `latest` is not overwritten by the next promotion (the
/// first refusal records the drift; before the fix, the second promotion went over it). The
/// channel stays held, shown by `berth channels`, until a person acknowledges it.
#[test]
fn a_hand_fix_holds_the_channel_until_acknowledged() {
    let demo = Demo::new("held");
    let base = Testbed::get().digest("berth/base:1");
    let child = Testbed::get().digest("berth/child:1");
    const PROMOTE: &[&str] = &["promote", "app", "--from", "staging", "--to", "latest"];
    demo.push("berth/base:1", "staging");
    demo.expect(PROMOTE, "2026-11-16T09:05:00Z", 0);
    // The hand fix, then a new build on staging that soaked long enough.
    demo.push("berth/child:1", "latest");
    demo.push("berth/upper:1", "staging");
    let wednesday = "2026-11-25T09:30:00Z";
    let first = demo.expect(PROMOTE, wednesday, 1);
    assert!(first.contains("the tag was moved outside berth"), "{first}");
    let second = demo.expect(PROMOTE, wednesday, 1);
    assert!(second.contains("is held"), "{second}");
    assert_eq!(demo.seen("latest"), child, "the hand fix stays");

    let status = demo.expect(&["channels"], wednesday, 1);
    assert!(
        status.contains("latest: HELD since 2026-11-25T09:30:00Z"),
        "{status}"
    );
    let views: serde_json::Value =
        serde_json::from_str(&demo.expect(&["channels", "--json"], wednesday, 1)).unwrap();
    let latest = &views[0]["channels"][1];
    assert_eq!(latest["channel"], "latest");
    assert_eq!(latest["held"]["digest"], child.as_str(), "{views:#}");
    assert!(views[0]["channels"][0]["held"].is_null(), "{views:#}");

    let acked = demo.expect(
        &[
            "channels",
            "ack",
            "app",
            "latest",
            "--reason",
            "hotfix stays",
        ],
        wednesday,
        0,
    );
    assert!(
        acked.contains(&format!("app:latest: acknowledged {child}")),
        "{acked}"
    );
    let views: serde_json::Value =
        serde_json::from_str(&demo.expect(&["channels", "--json"], wednesday, 0)).unwrap();
    assert!(views[0]["channels"][1]["held"].is_null(), "{views:#}");
    let audit = demo.expect(&["audit", "app:latest"], wednesday, 0);
    assert!(audit.contains("channel.ack"), "{audit}");
    // Promotions resume (once the new build has soaked since berth first saw it).
    demo.expect(PROMOTE, "2026-11-30T09:30:00Z", 0);
    assert_ne!(demo.seen("latest"), child);
    assert_ne!(demo.seen("latest"), base);
}

#[test]
fn an_unknown_image_is_a_usage_error() {
    let demo = Demo::new("usage");
    let output = demo.berth(
        &["promote", "ap", "--from", "staging", "--to", "latest"],
        "2026-11-16T09:05:00Z",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"ap\" is not in the catalog; did you mean app?"),
        "{stderr}"
    );
}

/// Issue 15, item 12: a channel the entry does not publish (a typo, or the wrong image) is a
/// usage error with "did you mean", not "nothing to do" with exit 0.
#[test]
fn promote_with_a_channel_the_entry_does_not_publish_is_a_usage_error() {
    let demo = Demo::new("unpublished");
    demo.push("berth/base:1", "staging");
    let cases: [(&[&str], &str); 3] = [
        (
            &["promote", "app", "--from", "stagin", "--to", "latest"],
            "--from stagin: app is not published under that channel (its channels: staging, latest); did you mean staging?",
        ),
        (
            &["promote", "app", "--from", "staging", "--to", "prod"],
            "--to prod: app is not published under that channel (its channels: staging, latest)",
        ),
        (
            &["rollback", "app", "--channel", "lates"],
            "--channel lates: app is not published under that channel (its channels: staging, latest); did you mean latest?",
        ),
    ];
    for (args, message) in cases {
        let output = demo.berth(args, "2026-11-16T09:05:00Z");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), format!("berth: {message}"), "{args:?}");
    }
    // Nothing was recorded for the typo.
    let history = demo.expect(&["history", "app"], "2026-11-16T09:05:00Z", 0);
    assert!(!history.contains("stagin "), "{history}");
}

#[test]
fn promote_to_another_variant_copies_into_its_repository() {
    let demo = Demo::new("to-variant");
    let plain = Testbed::get().plain();
    let public = format!("{}-public", demo.repository);
    std::fs::write(
        demo.dir.join("catalog.yaml"),
        format!(
            "images:\n  app:\n    image: {plain}/{}\n    channels: [staging, latest]\n    variants:\n      public: {{image: {plain}/{public}}}\n",
            demo.repository
        ),
    )
    .unwrap();
    demo.push("berth/base:1", "staging");
    let now = "2026-11-16T09:05:00Z";

    let output = demo.berth(
        &[
            "promote",
            "app",
            "--from",
            "staging",
            "--to",
            "latest",
            "--to-variant",
            "nope",
        ],
        now,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("app has no variant \"nope\""), "{stderr}");

    let args = [
        "promote",
        "app",
        "--from",
        "staging",
        "--to",
        "latest",
        "--to-variant",
        "public",
    ];
    let stdout = demo.expect(&args, now, 0);
    let base = Testbed::get().digest("berth/base:1");
    assert!(
        stdout.contains(&format!("app/public:latest: promotion (new) -> {base}")),
        "{stdout}"
    );
    assert!(stdout.contains("mounted, 0 uploaded"), "{stdout}");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{plain}/{public}:latest"),
    ]);
    let file = demo.dir.join("public.json");
    std::fs::write(&file, raw).unwrap();
    assert_eq!(
        skopeo(&["manifest-digest", file.to_str().unwrap()]).trim(),
        base
    );
    let history = demo.expect(&["history", "app/public", "--channel", "latest"], now, 0);
    assert!(
        history.contains("promotion") && history.contains(&base),
        "{history}"
    );
    // Again: already there.
    let again = demo.expect(&args, now, 0);
    assert!(again.contains("nothing to do"), "{again}");

    // With the rule written down, `berth channels` shows it once, under its source, with the
    // target variant's state.
    std::fs::write(
        demo.dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest, to_variant: public}\n",
    )
    .unwrap();
    let overview = demo.expect(&["channels"], now, 0);
    assert_eq!(
        overview
            .matches("staging -> app/public:latest: by hand only; now: up to date")
            .count(),
        1,
        "{overview}"
    );
}
