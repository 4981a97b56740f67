//! Promotions and rollbacks against the test bed's real registry (CNCF distribution), each test
//! in its own repository; what berth did is read back with skopeo, an independent client.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_channels::ops::OUTSIDE_ACTOR;
use berth_channels::{Action, PromoteRequest, RollbackRequest, Subject, history, tag};
use berth_core::catalog::{self, Catalog, CatalogEntry, Format, Source};
use berth_core::channels::{
    BlockReason, ChangeKind, Observation, PromotionRule, Request, RulesFile, channel_tag,
};
use berth_core::{Digest, Tag};
use berth_oci::{Client, ClientConfig, RegistryConfig};
use berth_store::Store;
use berth_testkit::{Testbed, skopeo};
use chrono::{DateTime, TimeDelta, Utc};

/// One test's world: its own repository with `staging` set from a test bed image, a catalog
/// naming it, an in-memory store.
struct World {
    client: Client,
    store: Store,
    repository: String,
    catalog: Catalog,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn tag(text: &str) -> Tag {
    channel_tag(text).unwrap()
}

async fn world(name: &str, staging_from: &str) -> World {
    let testbed = Testbed::get();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repository = format!("berth-channels/{name}-{}-{nanos}", std::process::id());
    let world = {
        let mut registries = HashMap::new();
        registries.insert(
            testbed.plain().to_string(),
            RegistryConfig {
                plain_http: true,
                ..RegistryConfig::default()
            },
        );
        let yaml = format!(
            "images:\n  app:\n    image: {}/{repository}\n    channels: [staging, latest]\n",
            testbed.plain()
        );
        let loaded = catalog::load(
            &[Source {
                name: "catalog.yaml",
                text: &yaml,
            }],
            Format::Berth,
            at("2026-11-01T00:00:00Z"),
        );
        World {
            client: Client::new(ClientConfig {
                registries,
                ..ClientConfig::default()
            }),
            store: Store::open("sqlite::memory:").await.unwrap(),
            repository,
            catalog: loaded.catalog.expect("the test catalog is valid"),
        }
    };
    world.push(staging_from, "staging");
    world
}

impl World {
    /// Copies a test bed image (`berth/base:1`) to `tag` of this world's repository with skopeo.
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

    /// The digest skopeo sees under `tag`, computed by skopeo from the raw manifest.
    fn digest_seen(&self, tag: &str) -> Option<String> {
        let plain = Testbed::get().plain();
        let output = std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{plain}/{}:{tag}", self.repository),
            ])
            .output()
            .unwrap();
        if !output.status.success() {
            return None;
        }
        let file = std::env::temp_dir().join(format!(
            "berth-channels-manifest-{}",
            self.repository.replace('/', "_")
        ));
        std::fs::write(&file, &output.stdout).unwrap();
        let digest = skopeo(&["manifest-digest", file.to_str().unwrap()]);
        std::fs::remove_file(&file).unwrap();
        Some(digest.trim().to_string())
    }

    fn subject(&self) -> (Subject, &CatalogEntry) {
        Subject::find(&self.catalog, "app").unwrap()
    }

    async fn promote(
        &self,
        rule: &PromotionRule,
        force: bool,
        now: &str,
    ) -> berth_channels::Outcome {
        let (subject, entry) = self.subject();
        let request = PromoteRequest {
            rule,
            request: Request::ByHand { digest: None },
            actor: "alice".into(),
            reason: "weekly rollout".into(),
            force,
            stamp: false,
        };
        berth_channels::promote(
            &self.client,
            &self.store,
            &subject,
            entry,
            &request,
            at(now),
        )
        .await
        .unwrap()
    }

    async fn rollback(&self, now: &str) -> berth_channels::Outcome {
        let (subject, _) = self.subject();
        let request = RollbackRequest {
            channel: tag("latest"),
            to: None,
            actor: "bob".into(),
            reason: String::new(),
            force: false,
        };
        berth_channels::rollback(&self.client, &self.store, &subject, &request, at(now))
            .await
            .unwrap()
    }

    /// `latest`'s history as `kind digest-of(image)` lines, oldest first.
    async fn latest_history(&self) -> Vec<String> {
        let (subject, _) = self.subject();
        let names: HashMap<String, &str> = ["berth/base:1", "berth/child:1", "berth/multi:1"]
            .into_iter()
            .map(|image| (Testbed::get().digest(image), image))
            .collect();
        history::load(&self.store, &subject, &tag("latest"))
            .await
            .unwrap()
            .history
            .iter()
            .map(|entry| {
                format!(
                    "{} {} by {}",
                    entry.kind.as_str(),
                    names.get(entry.digest.as_str()).unwrap_or(&"?"),
                    entry.actor
                )
            })
            .collect()
    }
}

fn manual() -> PromotionRule {
    PromotionRule::manual(tag("staging"), tag("latest"))
}

fn digest(image: &str) -> Digest {
    Digest::parse(&Testbed::get().digest(image)).unwrap()
}

#[tokio::test]
async fn promotion_moves_the_tag_and_rollback_moves_it_back() {
    let world = world("promote", "berth/base:1").await;
    let base = digest("berth/base:1");
    let child = digest("berth/child:1");

    let first = world
        .promote(&manual(), false, "2026-11-20T10:00:00Z")
        .await;
    assert_eq!(
        first.action,
        Action::Moved {
            from: None,
            to: base.clone(),
            kind: ChangeKind::Promotion,
            stamp: None,
            copied: None,
        }
    );
    assert_eq!(world.digest_seen("latest").as_deref(), Some(base.as_str()));
    // The source was pushed by someone else: berth records it when it first sees it.
    assert!(matches!(
        first.noticed.as_slice(),
        [n] if n.channel == "staging" && n.observation == Observation::FirstSight { found: base.clone() }
    ));

    // Promoting what is already there changes nothing.
    let again = world
        .promote(&manual(), false, "2026-11-20T10:05:00Z")
        .await;
    assert_eq!(
        again.action,
        Action::Unchanged {
            digest: Some(base.clone())
        }
    );
    assert_eq!(
        world.latest_history().await,
        ["promotion berth/base:1 by alice"]
    );

    world.push("berth/child:1", "staging");
    let second = world
        .promote(&manual(), false, "2026-11-27T10:00:00Z")
        .await;
    assert!(matches!(&second.action, Action::Moved { to, .. } if *to == child));
    assert_eq!(world.digest_seen("latest").as_deref(), Some(child.as_str()));

    let back = world.rollback("2026-11-27T11:00:00Z").await;
    assert_eq!(
        back.action,
        Action::Moved {
            from: Some(child.clone()),
            to: base.clone(),
            kind: ChangeKind::Rollback,
            stamp: None,
            copied: None,
        }
    );
    assert_eq!(world.digest_seen("latest").as_deref(), Some(base.as_str()));
    assert_eq!(
        world.latest_history().await,
        [
            "promotion berth/base:1 by alice",
            "promotion berth/child:1 by alice",
            "rollback berth/base:1 by bob"
        ]
    );
    // Every move is in the audit log, newest first.
    let (subject, _) = world.subject();
    let audit = world
        .store
        .audit_log(Some(&history::audit_subject(&subject, &tag("latest"))), 10)
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .map(|logged| logged.entry.action.as_str())
        .collect();
    assert_eq!(
        actions,
        ["channel.rollback", "channel.promote", "channel.promote"]
    );
    assert_eq!(
        audit[0].entry.before,
        Some(serde_json::json!({ "digest": child }))
    );
}

#[tokio::test]
async fn an_index_is_promoted_as_an_index_with_the_same_digest() {
    let world = world("index", "berth/multi:1").await;
    let multi = digest("berth/multi:1");
    let outcome = world
        .promote(&manual(), false, "2026-11-20T10:00:00Z")
        .await;
    assert!(matches!(&outcome.action, Action::Moved { to, .. } if *to == multi));
    assert_eq!(world.digest_seen("latest").as_deref(), Some(multi.as_str()));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{}/{}:latest",
            Testbed::get().plain(),
            world.repository
        ),
    ]);
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );
}

#[tokio::test]
async fn a_tag_moved_outside_berth_is_recorded_and_not_overwritten_without_force() {
    let world = world("drift", "berth/base:1").await;
    let base = digest("berth/base:1");
    let child = digest("berth/child:1");
    world
        .promote(&manual(), false, "2026-11-20T10:00:00Z")
        .await;

    // Someone re-points latest by hand.
    world.push("berth/child:1", "latest");
    let refused = world
        .promote(&manual(), false, "2026-11-21T10:00:00Z")
        .await;
    assert_eq!(
        refused.action,
        Action::DriftRefused {
            recorded: base.clone(),
            found: Some(child.clone())
        }
    );
    assert!(refused.is_negative());
    assert_eq!(world.digest_seen("latest").as_deref(), Some(child.as_str()));
    assert_eq!(
        world.latest_history().await,
        [
            "promotion berth/base:1 by alice",
            &format!("outside-change berth/child:1 by {OUTSIDE_ACTOR}")
        ]
    );

    // Told to, berth puts staging's digest back, and says so in the history.
    let forced = world.promote(&manual(), true, "2026-11-21T10:05:00Z").await;
    assert!(
        matches!(&forced.action, Action::Moved { from: Some(from), to, .. } if *from == child && *to == base)
    );
    assert_eq!(world.digest_seen("latest").as_deref(), Some(base.as_str()));
    assert_eq!(world.latest_history().await.len(), 3);
}

#[tokio::test]
async fn a_crash_between_the_registry_write_and_the_history_is_repaired() {
    let world = world("crash", "berth/base:1").await;
    let base = digest("berth/base:1");
    let (subject, _) = world.subject();
    // The registry half of a promotion, then the process "dies": nothing recorded.
    tag::put(
        &world.client,
        (&subject.image, &subject.image),
        &base,
        &tag("latest"),
        None,
    )
    .await
    .unwrap();
    assert!(world.latest_history().await.is_empty());

    let repaired = world
        .promote(&manual(), false, "2026-11-20T10:00:00Z")
        .await;
    assert_eq!(
        repaired.action,
        Action::Repaired {
            digest: base.clone(),
            kind: ChangeKind::Promotion
        }
    );
    assert_eq!(
        world.latest_history().await,
        ["promotion berth/base:1 by alice"]
    );
    let state = history::load(&world.store, &subject, &tag("latest"))
        .await
        .unwrap();
    assert!(
        state.history[0].reason.contains("recorded on a later run"),
        "{:?}",
        state.history[0]
    );

    let after = world
        .promote(&manual(), false, "2026-11-20T10:05:00Z")
        .await;
    assert_eq!(after.action, Action::Unchanged { digest: Some(base) });
    assert_eq!(world.latest_history().await.len(), 1);
}

#[tokio::test]
async fn a_blocked_promotion_leaves_the_registry_alone() {
    let world = world("blocked", "berth/base:1").await;
    let mut rule = manual();
    rule.soak = TimeDelta::days(2);
    rule.gates.push(berth_core::channels::Gate::FactsKnown);
    let outcome = world.promote(&rule, false, "2026-11-20T10:00:00Z").await;
    assert_eq!(
        outcome.action,
        Action::Blocked {
            digest: digest("berth/base:1"),
            reasons: vec![
                BlockReason::FactsUnknown,
                BlockReason::Soaking {
                    until: at("2026-11-22T10:00:00Z")
                }
            ]
        }
    );
    assert_eq!(world.digest_seen("latest"), None);
    assert!(world.latest_history().await.is_empty());
}

#[tokio::test]
async fn a_stamped_promotion_keeps_an_immutable_tag() {
    let world = world("stamp", "berth/base:1").await;
    let (subject, entry) = world.subject();
    let rule = manual();
    let request = PromoteRequest {
        rule: &rule,
        request: Request::ByHand { digest: None },
        actor: "alice".into(),
        reason: String::new(),
        force: false,
        stamp: true,
    };
    let outcome = berth_channels::promote(
        &world.client,
        &world.store,
        &subject,
        entry,
        &request,
        at("2026-11-22T10:00:00Z"),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome.action, Action::Moved { stamp: Some(stamp), .. } if stamp == "latest-20261122T1000Z")
    );
    let base = Testbed::get().digest("berth/base:1");
    assert_eq!(world.digest_seen("latest-20261122T1000Z"), Some(base));
}

/// What one scheduler tick did, as `subject from->to slot|first: action` lines.
async fn tick(world: &World, rules: &RulesFile, now: &str) -> Vec<String> {
    let ran = berth_channels::scheduler::tick(
        &world.client,
        &world.store,
        &world.catalog,
        rules,
        at(now),
    )
    .await
    .unwrap();
    let names: HashMap<String, &str> = ["berth/base:1", "berth/child:1"]
        .into_iter()
        .map(|image| (Testbed::get().digest(image), image))
        .collect();
    ran.iter()
        .map(|ran| {
            let when = ran.slot.map_or("first publish".to_string(), |slot| {
                format!("slot {} missed {}", slot.to_rfc3339(), ran.missed)
            });
            let action = match &ran.outcome {
                Ok(outcome) => match &outcome.action {
                    Action::Moved { to, .. } => format!("moved to {}", names[to.as_str()]),
                    Action::Blocked { reasons, .. } => format!(
                        "blocked: {}",
                        reasons
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    other => format!("{other:?}"),
                },
                Err(error) => format!("error: {error}"),
            };
            format!("{} {}->{} {when}: {action}", ran.subject, ran.from, ran.to)
        })
        .collect()
}

/// The weekly rollout of examples/channels.yaml, run by the scheduler at chosen moments: first
/// publish at once; the Wednesday slot runs once, respects the soak, and after three weeks down
/// runs once for the latest slot.
#[tokio::test]
async fn the_scheduler_promotes_when_due_and_catches_up_once() {
    let rules = RulesFile::parse(
        "examples/channels.yaml",
        include_str!("../../../examples/channels.yaml"),
    )
    .unwrap();
    let world = world("scheduler", "berth/base:1").await;

    // Monday 10:00 Copenhagen: a brand-new image reaches latest at once.
    assert_eq!(
        tick(&world, &rules, "2026-11-16T09:00:00Z").await,
        ["app staging->latest first publish: moved to berth/base:1"]
    );
    assert_eq!(
        world.digest_seen("latest").as_deref(),
        Some(digest("berth/base:1").as_str())
    );
    // The next tick sees the rule for the first time on schedule: slots count from here.
    assert!(
        tick(&world, &rules, "2026-11-16T09:01:00Z")
            .await
            .is_empty()
    );

    // Monday noon CI pushes to staging; the scheduler sees it on its next tick.
    world.push("berth/child:1", "staging");
    assert!(
        tick(&world, &rules, "2026-11-16T12:00:00Z")
            .await
            .is_empty()
    );
    // Wednesday 09:59 Copenhagen: not yet. 10:00: due, but only 45 hours of soak.
    assert!(
        tick(&world, &rules, "2026-11-18T08:59:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        tick(&world, &rules, "2026-11-18T09:00:00Z").await,
        [
            "app staging->latest slot 2026-11-18T09:00:00+00:00 missed 0: blocked: soaking on the source until 2026-11-18 12:00:00 UTC"
        ]
    );
    // That slot ran; the soak ending the same afternoon does not make it run again.
    assert!(
        tick(&world, &rules, "2026-11-18T13:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        world.digest_seen("latest").as_deref(),
        Some(digest("berth/base:1").as_str())
    );

    // Down from before the next slot until three Wednesdays later: one run, for the latest.
    assert_eq!(
        tick(&world, &rules, "2026-12-09T10:00:00Z").await,
        ["app staging->latest slot 2026-12-09T09:00:00+00:00 missed 2: moved to berth/child:1"]
    );
    assert_eq!(
        world.digest_seen("latest").as_deref(),
        Some(digest("berth/child:1").as_str())
    );
    assert!(
        tick(&world, &rules, "2026-12-09T10:30:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        world.latest_history().await,
        [
            "promotion berth/base:1 by berth-scheduler",
            "promotion berth/child:1 by berth-scheduler"
        ]
    );
}

#[tokio::test]
async fn nothing_is_promoted_from_a_source_tag_that_was_deleted() {
    let world = world("source-gone", "berth/base:1").await;
    let (subject, _) = world.subject();
    // berth sees staging once, then the tag goes (deleting its manifest removes the tag).
    berth_channels::check(
        &world.client,
        &world.store,
        &subject,
        &tag("staging"),
        at("2026-11-20T09:00:00Z"),
    )
    .await
    .unwrap();
    world
        .client
        .delete_manifest(&subject.image.at(&tag("staging")), &digest("berth/base:1"))
        .await
        .unwrap();
    let outcome = world
        .promote(&manual(), false, "2026-11-20T10:00:00Z")
        .await;
    assert_eq!(outcome.action, Action::Unchanged { digest: None });
    assert!(matches!(
        outcome.noticed.as_slice(),
        [n] if n.channel == "staging" && matches!(n.observation, Observation::Drift { found: None, .. })
    ));
    assert_eq!(world.digest_seen("latest"), None);
}
