//! Retention decisions over hand-built facts: the repository (dated tags, uses, a
//! channel, an index whose arm64 child is reachable only through it), every keep rule beating
//! every delete rule, stale sources, blocked repositories, bytes freed; the `retention`
//! section's reading with its errors; and a property test that nothing on a channel, in use
//! or reachable from a kept index is ever planned for deletion.

use super::*;
use proptest::prelude::*;

const REPO: &str = "registry.test/team/app";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn now() -> DateTime<Utc> {
    at("2026-12-01T00:00:00Z")
}

fn digest(n: u32) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

fn settings_for(text: &str) -> Result<Settings, Vec<String>> {
    crate::catalog::read::section_for(text, read_section)
}

const SETTINGS: &str = "
usage:
  admission: {fresh_within: 30d}
  cluster: {fresh_within: 1d}
policies:
  - repositories: ['registry.test/team/**']
    keep_last: 2
    keep_tags: [stable]
    delete_tags: ['2026*']
    delete_older_than: 30d
    untagged_older_than: 7d
";

fn image(first_seen: &str, layer: u32, size: u64) -> ManifestFacts {
    ManifestFacts {
        first_seen: Some(at(first_seen)),
        size: 500,
        children: Vec::new(),
        blobs: vec![(digest(10_000 + layer), size), (digest(20_000), 100)],
    }
}

/// The repository: twelve dated tags 2026-01-01 … 2026-12-01 at digests 1..=12 (tag
/// n first seen on month n), digest 3 in use through an admission record, the tag of digest 5
/// in use through a cluster import, digest 7 on the channel `stable`'s tag … no: on a channel
/// pinned by the catalog, and digest 9 an index whose arm64 child 109 is reachable only
/// through it (an arm64 node runs it).
fn bed() -> Facts {
    let mut facts = Facts::default();
    let mut repository = RepositoryFacts {
        name: REPO.to_string(),
        ..RepositoryFacts::default()
    };
    for month in 1..=12u32 {
        let day = format!("2026-{month:02}-01T00:00:00Z");
        repository.tags.push(TagFacts {
            tag: format!("2026{month:02}01"),
            digest: digest(month),
            since: at(&day),
        });
        facts
            .manifests
            .insert(digest(month), image(&day, month, 1000 * u64::from(month)));
    }
    let index = facts.manifests.get_mut(&digest(9)).unwrap();
    index.blobs.clear();
    index.children = vec![digest(108), digest(109)];
    facts
        .manifests
        .insert(digest(108), image("2026-09-01T00:00:00Z", 108, 7));
    facts
        .manifests
        .insert(digest(109), image("2026-09-01T00:00:00Z", 109, 9));
    facts.repositories.push(repository);
    facts.pinned.push(Pinned {
        repository: REPO.to_string(),
        digest: digest(7),
        rule: KeepRule::Channel,
        channel: "app:latest".to_string(),
    });
    facts.uses.push(UseFacts {
        source: "admission".to_string(),
        scope: String::new(),
        place: "web/Deployment/front[app]".to_string(),
        repository: Some(REPO.to_string()),
        tag: None,
        digest: Some(digest(3)),
        last_seen: at("2026-11-30T00:00:00Z"),
    });
    facts.uses.push(UseFacts {
        source: "cluster".to_string(),
        scope: "prod".to_string(),
        place: "jobs/CronJob/report[main]".to_string(),
        repository: Some(REPO.to_string()),
        tag: Some("20260501".to_string()),
        digest: None,
        last_seen: at("2026-11-30T12:00:00Z"),
    });
    facts.uses.push(UseFacts {
        source: "cluster".to_string(),
        scope: "prod".to_string(),
        place: "arm/Deployment/edge[app]".to_string(),
        repository: Some(REPO.to_string()),
        tag: None,
        digest: Some(digest(109)),
        last_seen: at("2026-11-30T12:00:00Z"),
    });
    for (source, scope, full) in [
        ("admission", "", None),
        ("cluster", "prod", Some("2026-11-30T12:00:00Z")),
    ] {
        facts.sources.push(SourceFacts {
            source: source.to_string(),
            scope: scope.to_string(),
            last_report_at: at("2026-11-30T12:00:00Z"),
            last_full_at: full.map(at),
        });
    }
    facts
}

fn kept_by(plan: &RepositoryPlan) -> BTreeMap<Digest, KeepRule> {
    plan.keep
        .iter()
        .map(|kept| (kept.digest.clone(), kept.rule))
        .collect()
}

fn deleted(plan: &RepositoryPlan) -> BTreeSet<Digest> {
    plan.delete.iter().map(|c| c.digest.clone()).collect()
}

#[test]
fn keeps_the_channel_the_uses_the_index_and_the_last_n_and_deletes_the_rest() {
    let settings = settings_for(SETTINGS).unwrap();
    let plan = plan(&settings, &bed(), now());
    assert!(plan.stale_sources.is_empty(), "{:?}", plan.stale_sources);
    let [repository] = plan.repositories.as_slice() else {
        panic!("one repository: {plan:?}");
    };
    assert_eq!(repository.blocked, None);
    let kept = kept_by(repository);
    assert_eq!(kept.get(&digest(3)), Some(&KeepRule::InUse));
    assert_eq!(kept.get(&digest(5)), Some(&KeepRule::InUse));
    assert_eq!(kept.get(&digest(7)), Some(&KeepRule::Channel));
    // The arm64 child is in use; its index is kept for it, and the index's amd64 child too.
    assert_eq!(kept.get(&digest(109)), Some(&KeepRule::InUse));
    assert_eq!(kept.get(&digest(9)), Some(&KeepRule::IndexOfKept));
    assert_eq!(kept.get(&digest(108)), Some(&KeepRule::ChildOfKept));
    // The last two by first seen.
    assert_eq!(kept.get(&digest(12)), Some(&KeepRule::KeepLast));
    assert_eq!(kept.get(&digest(11)), Some(&KeepRule::KeepLast));
    // Tag 20261101 and 20261201 are last-kept anyway; 20261001 is older than 30 days.
    let expected: BTreeSet<Digest> = [1, 2, 4, 6, 8, 10].into_iter().map(digest).collect();
    assert_eq!(deleted(repository), expected);
    assert_eq!(plan.candidates, 6);
    for candidate in &repository.delete {
        assert_eq!(candidate.rule, DeleteRule::DeleteTags);
        assert_eq!(candidate.tags.len(), 1);
    }
    // Each candidate frees its own layer and manifest; the shared layer 20000 stays.
    let freed: u64 = [1u64, 2, 4, 6, 8, 10].iter().map(|n| 1000 * n + 500).sum();
    assert_eq!(plan.bytes, freed);
    assert_eq!(repository.delete[0].bytes, 1000 + 500);
}

#[test]
fn a_kept_tag_or_a_young_manifest_beats_a_delete_pattern() {
    let mut settings = settings_for(SETTINGS).unwrap();
    settings.policies[0].keep_younger_than = Duration::from_secs(100 * 86_400);
    let mut facts = bed();
    facts.repositories[0].tags.push(TagFacts {
        tag: "stable".to_string(),
        digest: digest(1),
        since: at("2026-01-02T00:00:00Z"),
    });
    let plan = plan(&settings, &facts, now());
    let repository = &plan.repositories[0];
    let kept = kept_by(repository);
    assert_eq!(kept.get(&digest(1)), Some(&KeepRule::KeepTags));
    // Seen within 100 days of 2026-12-01: September on.
    assert_eq!(kept.get(&digest(10)), Some(&KeepRule::YoungerThan));
    let expected: BTreeSet<Digest> = [2, 4, 6, 8].into_iter().map(digest).collect();
    assert_eq!(deleted(repository), expected);
}

#[test]
fn a_digest_with_one_tag_outside_the_delete_patterns_stays() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut facts = bed();
    facts.repositories[0].tags.push(TagFacts {
        tag: "release-1".to_string(),
        digest: digest(2),
        since: at("2026-02-01T00:00:00Z"),
    });
    let plan = plan(&settings, &facts, now());
    let repository = &plan.repositories[0];
    assert_eq!(
        kept_by(repository).get(&digest(2)),
        Some(&KeepRule::NoDeleteRule)
    );
    assert!(!deleted(repository).contains(&digest(2)));
}

#[test]
fn untagged_manifests_go_after_their_age_and_take_their_children_along() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut facts = bed();
    // Digest 9's tag moved away 3 days ago: too recent. Digest 1's tag moved away long ago.
    let repository = &mut facts.repositories[0];
    repository.tags.retain(|tag| tag.digest != digest(9));
    repository.untagged = vec![(digest(9), at("2026-11-28T00:00:00Z"))];
    facts.uses.retain(|use_| use_.digest != Some(digest(109)));
    let first = plan(&settings, &facts, now());
    let kept = kept_by(&first.repositories[0]);
    assert_eq!(kept.get(&digest(9)), Some(&KeepRule::Untagged));
    assert!(!deleted(&first.repositories[0]).contains(&digest(108)));

    let later = at("2026-12-10T00:00:00Z");
    let second = plan(&settings, &facts, later);
    let repository = &second.repositories[0];
    let candidates: Vec<(Digest, DeleteRule)> = repository
        .delete
        .iter()
        .map(|c| (c.digest.clone(), c.rule))
        .collect();
    assert!(candidates.contains(&(digest(9), DeleteRule::Untagged)));
    assert!(candidates.contains(&(digest(108), DeleteRule::ChildOfDeleted)));
    assert!(candidates.contains(&(digest(109), DeleteRule::ChildOfDeleted)));
    // The index is deleted before its children.
    let position = |d: u32| candidates.iter().position(|c| c.0 == digest(d)).unwrap();
    assert!(position(9) < position(108) && position(9) < position(109));

    // Once the index is gone, its remaining children are orphans and go too.
    let mut facts = facts;
    facts.repositories[0].untagged.clear();
    facts.repositories[0].deleted.insert(digest(9));
    let third = plan(&settings, &facts, later);
    let candidates = deleted(&third.repositories[0]);
    assert!(candidates.contains(&digest(108)) && candidates.contains(&digest(109)));
    assert!(!candidates.contains(&digest(9)));
}

#[test]
fn a_stale_source_is_reported_and_its_old_uses_still_keep() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut facts = bed();
    let later = at("2026-12-05T00:00:00Z");
    let plan = plan(&settings, &facts, later);
    assert_eq!(plan.stale_sources.len(), 1, "{:?}", plan.stale_sources);
    let stale = &plan.stale_sources[0];
    assert_eq!(
        (stale.source.as_str(), stale.scope.as_deref()),
        ("cluster", Some("prod"))
    );
    assert!(stale.reason.contains("older than 1d"), "{}", stale.reason);
    let kept = kept_by(&plan.repositories[0]);
    assert_eq!(kept.get(&digest(5)), Some(&KeepRule::InUse));

    // A fresh scope's old admission no longer keeps, 60 days later; a cluster's live use does
    // (a full import would have marked it gone).
    facts.sources[0].last_report_at = at("2027-01-29T12:00:00Z");
    facts.sources[1].last_full_at = Some(at("2027-01-29T12:00:00Z"));
    let plan = super::plan(&settings, &facts, at("2027-01-30T00:00:00Z"));
    assert!(plan.stale_sources.is_empty(), "{:?}", plan.stale_sources);
    assert!(deleted(&plan.repositories[0]).contains(&digest(3)));
    assert!(!deleted(&plan.repositories[0]).contains(&digest(5)));
}

#[test]
fn an_enabled_source_that_never_reported_is_stale() {
    let settings = settings_for(&format!("{SETTINGS}\n")).unwrap();
    let mut facts = bed();
    facts.sources.retain(|scope| scope.source != "cluster");
    let plan = plan(&settings, &facts, now());
    assert_eq!(
        plan.stale_sources,
        vec![StaleSource {
            source: "cluster".to_string(),
            scope: None,
            last_report_at: None,
            reason: "never reported".to_string(),
        }]
    );
    // Without a `usage` section, only sources that reported are checked.
    let mut settings = settings;
    settings.usage.clear();
    assert!(
        super::plan(&settings, &facts, now())
            .stale_sources
            .is_empty()
    );
}

#[test]
fn a_partial_repository_is_blocked_and_one_without_a_policy_is_left_alone() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut facts = bed();
    facts.repositories[0].partial = Some("the last sync failed".to_string());
    let mut other = facts.repositories[0].clone();
    other.name = "registry.test/elsewhere/app".to_string();
    facts.repositories.push(other);
    let plan = plan(&settings, &facts, now());
    assert_eq!(plan.repositories.len(), 1);
    assert_eq!(
        plan.repositories[0].blocked.as_deref(),
        Some("the last sync failed")
    );
    // The same digests held by the other repository keep their blobs: nothing is freed.
    assert_eq!(
        plan.bytes,
        plan.repositories[0].delete.iter().map(|_| 500).sum::<u64>()
    );
}

#[test]
fn reads_the_section_and_reports_every_problem_at_its_place() {
    let settings = settings_for(SETTINGS).unwrap();
    assert_eq!(settings.max_deletions, DEFAULT_MAX_DELETIONS);
    assert!(!settings.apply);
    assert_eq!(settings.usage["cluster"], Duration::from_secs(86_400));
    assert_eq!(settings.policies[0].keep_last, 2);
    assert_eq!(settings.policies[0].delete_tags, vec!["2026*".to_string()]);

    let errors = settings_for(
        "
apply: yes
max_deletions: 0
usage:
  clusters: {fresh_within: 1d}
  ci: {}
policies:
  - keep_lats: 3
  - repositories: ['team/app:1']
  - repositories: ['registry.test/**']
    delete_tags: ['pr/*']
  - repositories: ['registry.test/**']
    delete_tags: ['pr-*']
",
    )
    .unwrap_err();
    let text = errors.join("\n");
    for expected in [
        "berth.yaml:2:8: error: apply: \"yes\" is not true or false",
        "berth.yaml:3:16: error: max_deletions: \"0\" is not a whole number of at least 1",
        "clusters",
        "did you mean `cluster`",
        "usage.ci: needs `fresh_within`",
        "did you mean `keep_last`",
        "policies[1].repositories[0]",
        "policies[2].delete_tags[0]: \"pr/*\" is not a tag pattern",
        "policies[3]: `delete_tags` needs `delete_older_than`",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

// --- The property: nothing kept is ever a candidate. -----------------------------------------

#[derive(Debug, Clone)]
struct World {
    facts: Facts,
    settings: Settings,
}

fn world() -> impl Strategy<Value = World> {
    // Up to 3 repositories over a shared pool of 30 manifests; 0..=9 are indexes of 1..3
    // children among 20..30 (children may be shared by indexes); tags and untagged among 0..20.
    let repository = (
        prop::collection::vec((0u32..20, 0u32..6, 0i64..400), 0..10),
        prop::collection::vec((0u32..20, 0i64..400), 0..4),
        prop::bool::weighted(0.1),
    );
    (
        prop::collection::vec(repository, 1..4),
        prop::collection::vec(prop::collection::vec(20u32..30, 1..4), 10),
        prop::collection::vec(0i64..400, 30),
        prop::collection::vec((0usize..3, 0u32..30, prop::bool::ANY), 0..6),
        prop::collection::vec((0usize..3, 0u32..6, 0i64..60, 0usize..2), 0..6),
        (0usize..4, 0u64..200, 0u64..200, prop::option::of(0u64..100)),
    )
        .prop_map(
            |(repositories, children, first_seen, pins, uses, (last, young, older, untagged))| {
                let day = |n: i64| now() - TimeDelta::days(n);
                let mut facts = Facts::default();
                for n in 0..30u32 {
                    facts.manifests.insert(
                        digest(n),
                        ManifestFacts {
                            first_seen: Some(day(first_seen[n as usize])),
                            size: 10,
                            children: if n < 10 {
                                children[n as usize].iter().map(|c| digest(*c)).collect()
                            } else {
                                Vec::new()
                            },
                            blobs: vec![(digest(100 + n), 1)],
                        },
                    );
                }
                for (index, (tags, untagged, partial)) in repositories.into_iter().enumerate() {
                    let mut repository = RepositoryFacts {
                        name: format!("registry.test/team/r{index}"),
                        partial: partial.then(|| "failed".to_string()),
                        ..RepositoryFacts::default()
                    };
                    let mut seen = BTreeSet::new();
                    for (manifest, tag, since) in tags {
                        let tag = format!("t{tag}");
                        if seen.insert(tag.clone()) {
                            repository.tags.push(TagFacts {
                                tag,
                                digest: digest(manifest),
                                since: day(since),
                            });
                        }
                    }
                    for (manifest, since) in untagged {
                        repository.untagged.push((digest(manifest), day(since)));
                    }
                    facts.repositories.push(repository);
                }
                let count = facts.repositories.len();
                for (repository, manifest, history) in pins {
                    facts.pinned.push(Pinned {
                        repository: facts.repositories[repository % count].name.clone(),
                        digest: digest(manifest),
                        rule: if history {
                            KeepRule::ChannelHistory
                        } else {
                            KeepRule::Channel
                        },
                        channel: "c:latest".to_string(),
                    });
                }
                for (repository, target, seen, source) in uses {
                    let repository = facts.repositories[repository % count].name.clone();
                    let (tag, digest_) = if target < 3 {
                        (Some(format!("t{target}")), None)
                    } else {
                        (None, Some(digest(target * 5 % 30)))
                    };
                    facts.uses.push(UseFacts {
                        source: ["admission", "cluster"][source].to_string(),
                        scope: "s".to_string(),
                        place: "p".to_string(),
                        repository: Some(repository),
                        tag,
                        digest: digest_,
                        last_seen: day(seen),
                    });
                }
                let settings = Settings {
                    policies: vec![Policy {
                        repositories: vec![RepositoryPattern::parse("registry.test/**").unwrap()],
                        keep_last: last,
                        keep_younger_than: Duration::from_secs(young * 86_400),
                        keep_tags: vec!["t5".to_string()],
                        delete_tags: vec!["t*".to_string()],
                        delete_older_than: Some(Duration::from_secs(older * 86_400)),
                        untagged_older_than: untagged.map(|d| Duration::from_secs(d * 86_400)),
                    }],
                    ..Settings::default()
                };
                World { facts, settings }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_pinned_in_use_or_reachable_from_a_kept_index_is_planned(world in world()) {
        let World { facts, settings } = world;
        let plan = plan(&settings, &facts, now());
        let children = |d: &Digest| facts.manifests.get(d).map(|m| m.children.clone()).unwrap_or_default();
        for repository in &plan.repositories {
            let facts_of = facts.repositories.iter().find(|r| r.name == repository.repository).unwrap();
            let candidates = deleted(repository);
            let kept: BTreeSet<Digest> = repository.keep.iter().map(|k| k.digest.clone()).collect();
            prop_assert!(candidates.is_disjoint(&kept), "kept and deleted: {:?}", candidates.intersection(&kept).collect::<Vec<_>>());
            for pinned in facts.pinned.iter().filter(|p| p.repository == repository.repository) {
                prop_assert!(!candidates.contains(&pinned.digest), "pinned {} planned", pinned.digest);
            }
            for use_ in facts.uses.iter().filter(|u| u.repository.as_deref() == Some(&repository.repository)) {
                // No source reported in these worlds, so none is stale: a use counts while it
                // is within its source's default freshness.
                if older_than(use_.last_seen, default_fresh_within(&use_.source), now()) {
                    continue;
                }
                if let Some(d) = &use_.digest {
                    prop_assert!(!candidates.contains(d), "used digest {d} planned");
                }
                if let Some(tag) = &use_.tag {
                    for t in facts_of.tags.iter().filter(|t| &t.tag == tag) {
                        prop_assert!(!candidates.contains(&t.digest), "digest of used tag {tag} planned");
                    }
                }
            }
            // Kept by a keep rule (not merely "no delete rule applies").
            let held: BTreeSet<Digest> = repository.keep.iter()
                .filter(|k| !matches!(k.rule, KeepRule::NoDeleteRule | KeepRule::Untagged))
                .map(|k| k.digest.clone())
                .collect();
            for k in &held {
                for child in children(k) {
                    prop_assert!(!candidates.contains(&child), "child {child} of kept {k} planned");
                }
            }
            for c in &candidates {
                for child in children(c) {
                    prop_assert!(!held.contains(&child), "index {c} planned while its child {child} is kept");
                }
            }
            for t in &facts_of.tags {
                if t.tag == "t5" {
                    prop_assert!(!candidates.contains(&t.digest), "keep_tags t5 planned");
                }
            }
        }
    }
}
