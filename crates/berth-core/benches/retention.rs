//! Retention benchmark (not a test): `berth_core::retention::plan` over 100,000 digests in 200
//! repositories — dated nightlies, pull-request tags, release tags kept by pattern, untagged
//! manifests, one index of two platform images in ten, two channel tags per repository, 10,000
//! uses by digest and by tag —, beside the baseline of copying the input once (`Facts::clone`).
//! Run: `cargo bench -p berth-core --bench retention`. Figures go to docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_core::policy::pattern::RepositoryPattern;
use berth_core::retention::{
    Facts, KeepRule, ManifestFacts, Pinned, Policy, RepositoryFacts, Settings, SourceFacts,
    TagFacts, UseFacts, plan,
};
use chrono::{DateTime, TimeDelta, Utc};

const REPOSITORIES: u64 = 200;
/// Top-level manifests per repository; one in ten is an index of two more.
const TOP: u64 = 417;
const USES: u64 = 10_000;
const RUNS: usize = 5;

fn digest(n: u64) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).expect("a digest")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("a moment")
        .to_utc()
}

fn facts() -> Facts {
    let mut facts = Facts::default();
    let mut next = 1u64;
    let mut take = || {
        next += 1;
        next
    };
    for r in 0..REPOSITORIES {
        let name = format!("registry.example/team/app{r}");
        let shared = [digest(1_000_000_000 + r * 2), digest(1_000_000_001 + r * 2)];
        let mut repository = RepositoryFacts {
            name: name.clone(),
            ..RepositoryFacts::default()
        };
        for i in 0..TOP {
            let n = take();
            let day = now() - TimeDelta::days((TOP - i) as i64);
            let image = |n: u64| ManifestFacts {
                first_seen: Some(day),
                size: 1_500,
                children: Vec::new(),
                blobs: vec![
                    (shared[0].clone(), 30_000_000),
                    (shared[1].clone(), 5_000_000),
                    (digest(2_000_000_000 + n), 20_000_000),
                    (digest(3_000_000_000 + n), 1_000),
                ],
            };
            if i % 10 == 0 {
                let (a, b) = (take(), take());
                facts.manifests.insert(digest(a), image(a));
                facts.manifests.insert(digest(b), image(b));
                facts.manifests.insert(
                    digest(n),
                    ManifestFacts {
                        first_seen: Some(day),
                        size: 700,
                        children: vec![digest(a), digest(b)],
                        blobs: Vec::new(),
                    },
                );
            } else {
                facts.manifests.insert(digest(n), image(n));
            }
            let tag = match i % 20 {
                0..=15 => Some(format!("nightly-{i}")),
                16 | 17 => Some(format!("pr-{i}")),
                18 => Some(format!("v1.{i}")),
                _ => None,
            };
            match tag {
                Some(tag) => repository.tags.push(TagFacts {
                    tag,
                    digest: digest(n),
                    since: day,
                }),
                None => repository.untagged.push((digest(n), day)),
            }
            if i == TOP - 1 || i == TOP - 30 {
                facts.pinned.push(Pinned {
                    repository: name.clone(),
                    digest: digest(n),
                    rule: KeepRule::Channel,
                    channel: format!("app{r}:latest"),
                });
            }
        }
        facts.repositories.push(repository);
    }
    for u in 0..USES {
        let repository = u % REPOSITORIES;
        let i = (u * 7919) % TOP;
        let by_tag = u % 3 == 0 && i % 20 < 16;
        facts.uses.push(UseFacts {
            source: if u % 2 == 0 { "admission" } else { "cluster" }.to_string(),
            scope: "prod".to_string(),
            place: format!("ns{u}/Deployment/app{u}[main]"),
            repository: Some(format!("registry.example/team/app{repository}")),
            tag: by_tag.then(|| format!("nightly-{i}")),
            digest: (!by_tag).then(|| digest(u * 13 % 100_000 + 2)),
            last_seen: now() - TimeDelta::hours(1),
        });
    }
    for source in ["admission", "cluster"] {
        facts.sources.push(SourceFacts {
            source: source.to_string(),
            scope: "prod".to_string(),
            last_report_at: now() - TimeDelta::hours(1),
            last_full_at: Some(now() - TimeDelta::hours(1)),
        });
    }
    facts
}

fn settings() -> Settings {
    Settings {
        policies: vec![Policy {
            repositories: vec![RepositoryPattern::parse("registry.example/team/**").unwrap()],
            keep_last: 10,
            keep_younger_than: Duration::from_secs(7 * 86_400),
            keep_tags: vec!["v*".to_string()],
            delete_tags: vec!["nightly-*".to_string(), "pr-*".to_string()],
            delete_older_than: Some(Duration::from_secs(30 * 86_400)),
            untagged_older_than: Some(Duration::from_secs(14 * 86_400)),
        }],
        ..Settings::default()
    }
}

fn measure(label: &str, mut run: impl FnMut()) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{label:<28} best {:>7.1} ms  median {:>7.1} ms",
        times[0].as_secs_f64() * 1000.0,
        times[RUNS / 2].as_secs_f64() * 1000.0
    );
}

fn main() {
    let facts = facts();
    let settings = settings();
    println!(
        "{} manifests in {} repositories, {} uses",
        facts.manifests.len(),
        facts.repositories.len(),
        facts.uses.len()
    );
    measure("baseline: Facts::clone", || {
        black_box(facts.clone());
    });
    let mut last = None;
    measure("retention::plan", || {
        last = Some(black_box(plan(&settings, &facts, now())));
    });
    if let Some(plan) = last {
        let kept: usize = plan.repositories.iter().map(|r| r.keep.len()).sum();
        println!(
            "plan: {} candidates, {kept} kept, {:.1} GB freed",
            plan.candidates,
            plan.bytes as f64 / 1e9
        );
    }
}
