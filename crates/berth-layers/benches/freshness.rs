//! Benchmark: freshness (`berth_core::freshness::stale` and `plan`) over 100,000 images of the
//! lineage bench's synthetic graph: 100 catalog bases, half of whose channels moved to a new
//! image; every other image at its own tag outside the catalog, so all are in scope; ages spread
//! over two years (max_age 365d); every tenth image on Debian 11 (end of life). Baseline in the
//! same run: copying the input once (`Facts::clone`), the floor of any pass that reads it all.
//! Also measured: what a rebuild pass adds on top (`rebuild::dispatchable`, its plan with
//! targets, and `rebuild::decide` with nothing in flight; every image to one target).
//! Run: `cargo bench -p berth-layers --bench freshness`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_core::catalog::{self, Source};
use berth_core::freshness::{self, Facts, ImageFacts, Settings, TagFacts, TagMove};
use berth_core::lineage::LineageIndex;
use berth_core::osrelease::OsIdentity;
use berth_core::rebuild;
use berth_core::{Digest, ImageRef};
use chrono::{DateTime, Utc};

mod common;
use common::{BASES, digest, status_kb, synthetic_images};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid moment")
}

fn facts() -> Facts {
    let images = synthetic_images();
    let lineage = LineageIndex::build(images.clone());
    let start = at("2025-01-01T00:00:00Z");
    let mut facts = Facts::default();
    for (number, (image, chain)) in images.iter().enumerate() {
        let key: Vec<&str> = chain.iter().map(Digest::as_str).collect();
        let created = start + chrono::Duration::days((number % 700) as i64);
        let os = if number % 10 == 0 {
            "debian-11-amd64"
        } else {
            "debian-12-amd64"
        };
        facts.images.push(ImageFacts {
            digest: image.clone(),
            platform: "linux/amd64".into(),
            created: Some(created),
            first_seen: created,
            os_id: Some(OsIdentity { id: os.into() }),
            base: lineage.base_of(image).map(|base| base.base),
            chain_key: Some(key.join(",")),
        });
        let reference = if number < BASES {
            format!("registry.test/base-{number}:latest")
        } else {
            format!("registry.test/app-{}:t{number}", number % 1000)
        };
        facts.tags.push(TagFacts {
            reference: ImageRef::parse(&reference).expect("a valid reference"),
            digest: image.clone(),
            since: created,
        });
    }
    // Half of the bases get a new image on their channel.
    for base in 0..BASES / 2 {
        let new = digest(0xbb, base);
        facts.images.push(ImageFacts {
            digest: new.clone(),
            platform: "linux/amd64".into(),
            created: Some(at("2026-11-30T00:00:00Z")),
            first_seen: at("2026-11-30T00:00:00Z"),
            os_id: Some(OsIdentity {
                id: "debian-12-amd64".into(),
            }),
            base: None,
            chain_key: Some(digest(0x1b, base).to_string()),
        });
        let tag = &mut facts.tags[base];
        facts.moves.push(TagMove {
            reference: tag.reference.clone(),
            from: tag.digest.clone(),
            to: new.clone(),
            at: at("2026-11-30T00:00:00Z"),
        });
        tag.digest = new;
        tag.since = at("2026-11-30T00:00:00Z");
    }
    facts
}

fn catalog() -> catalog::Catalog {
    let mut text = String::from("images:\n");
    for base in 0..BASES {
        text.push_str(&format!(
            "  base-{base}:\n    image: registry.test/base-{base}\n"
        ));
    }
    let loaded = catalog::load(
        &[Source {
            name: "catalog.yaml",
            text: &text,
        }],
        catalog::Format::Berth,
        at("2026-12-01T00:00:00Z"),
    );
    loaded.catalog.expect("the bench's catalog is valid")
}

fn median(mut runs: Vec<Duration>) -> (Duration, Duration) {
    runs.sort();
    (runs[0], runs[runs.len() / 2])
}

fn main() {
    let facts = facts();
    let catalog = catalog();
    let settings = Settings {
        max_age: Some(Duration::from_secs(365 * 86_400)),
        ..Settings::default()
    };
    let now = at("2026-12-04T00:00:00Z");
    let rss_input = status_kb("VmRSS");
    const RUNS: usize = 5;

    let mut copies = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        black_box(facts.clone());
        copies.push(started.elapsed());
    }
    let mut stales = Vec::new();
    let mut plans = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = freshness::stale(&catalog, &facts, &settings, now);
        stales.push(started.elapsed());
        let started = Instant::now();
        let plan = freshness::plan(&report, |_| None);
        plans.push(started.elapsed());
        let summary = (plan.items.len(), plan.waves);
        drop(plan);
        last = Some((report, summary));
    }
    let (report, (plan_items, plan_waves)) = last.expect("RUNS > 0");
    let rebuild = rebuild::RebuildSettings {
        targets: vec![rebuild::Target {
            name: "ci".into(),
            kind: rebuild::TargetKind::Webhook {
                url: "http://127.0.0.1:9/".into(),
            },
            secret: rebuild::SecretSource::Env("S".into()),
        }],
        default_target: Some("ci".into()),
        repositories: vec![rebuild::RepositoryTarget {
            pattern: berth_core::policy::RepositoryPattern::parse("registry.test/**")
                .expect("a valid pattern"),
            target: "ci".into(),
        }],
        ..rebuild::RebuildSettings::default()
    };
    let mut decides = Vec::new();
    let mut sent = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let (dispatchable, _held) = rebuild::dispatchable(&report, &catalog, &rebuild);
        let plan = freshness::plan(&dispatchable, |image| {
            rebuild.target_of(&catalog, image).map(str::to_string)
        });
        let decision = rebuild::decide(
            &plan,
            &dispatchable,
            &facts,
            &rebuild::Ledger::default(),
            &rebuild,
            now,
        );
        decides.push(started.elapsed());
        sent = decision.send.iter().map(|d| d.items.len()).sum();
    }
    let counts = freshness::count_by_reason(&report);
    println!(
        "{} images, {} in scope, {} stale ({counts:?}); plan: {} items in {} waves",
        facts.images.len(),
        report.checked,
        report.stale.len(),
        plan_items,
        plan_waves
    );
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let (copy_best, copy_median) = median(copies);
    let (stale_best, stale_median) = median(stales);
    let (plan_best, plan_median) = median(plans);
    let (decide_best, decide_median) = median(decides);
    println!("| measure ({RUNS} runs) | best | median |");
    println!("|---|---|---|");
    println!(
        "| baseline: `Facts::clone` (read the input once) | {:.0} ms | {:.0} ms |",
        ms(copy_best),
        ms(copy_median)
    );
    println!(
        "| `stale` (scope, four reasons) | {:.0} ms | {:.0} ms |",
        ms(stale_best),
        ms(stale_median)
    );
    println!(
        "| `plan` (waves) | {:.0} ms | {:.0} ms |",
        ms(plan_best),
        ms(plan_median)
    );
    println!(
        "| stale + plan | {:.0} ms | {:.0} ms |",
        ms(stale_best + plan_best),
        ms(stale_median + plan_median)
    );
    println!(
        "| rebuild pass on top (dispatchable + plan + decide; {sent} images in wave 1) | {:.0} ms | {:.0} ms |",
        ms(decide_best),
        ms(decide_median)
    );
    println!(
        "| RSS of the input / peak (VmHWM) | {:.0} MB / {:.0} MB | |",
        rss_input as f64 / 1024.0,
        status_kb("VmHWM") as f64 / 1024.0
    );
}
