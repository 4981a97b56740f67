//! Benchmark: the webhook's snapshot of a large store — time and memory of the whole load
//! (`Store::knowledge`, what `berth serve` reads at start) and of one incremental refresh
//! (`knowledge_changes` + `Knowledge::apply`), without a registry: the store is filled
//! directly with the shape `scripts/bench-scale` syncs (N_REPOS × N_TAGS tags, each its own
//! image manifest, all sharing one config and one layer).
//! Run: `cargo bench -p berth-store --bench snapshot -- [N_REPOS] [N_TAGS]` (default 1000 100).
//! `BERTH_BENCH_KEEP=DIR` leaves the filled store in DIR/store.db.
//! Memory is the process's resident set (VmRSS) and its peak (VmHWM) from /proc/self/status.

use std::time::Instant;

use berth_core::policy::Knowledge;
use berth_core::{Digest, Tag};
use berth_store::{
    ImageRecord, LayerRecord, ManifestKind, ManifestRecord, Platform, RepoSnapshot, RepositoryName,
    Store,
};
use chrono::{TimeZone, Utc};

fn digest(kind: u8, number: usize) -> Digest {
    Digest::parse(&format!("sha256:{kind:02x}{number:062x}")).expect("valid digest")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn repo_snapshot(repo: usize, tags: usize) -> RepoSnapshot {
    let config = digest(0xc0, 0);
    let layer = digest(0x1a, 0);
    let diff_id = digest(0xd1, 0);
    let mut snapshot = RepoSnapshot::default();
    for number in 0..tags {
        let image = digest(0x1e, repo * tags + number);
        snapshot.tags.push((
            Tag::parse(&format!("2026.{number:04}")).expect("valid tag"),
            image.clone(),
        ));
        snapshot.manifests.push(ManifestRecord {
            digest: image.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            raw: format!("{{\"schemaVersion\":2,\"annotations\":{{\"n\":\"{repo}-{number}\"}}}}")
                .into_bytes(),
            kind: ManifestKind::Image,
        });
        snapshot.images.push(ImageRecord {
            digest: image,
            config_digest: config.clone(),
            created: Utc.timestamp_opt(1_764_000_000, 0).single(),
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            labels: Default::default(),
            annotations: Default::default(),
            total_size: 2_000_000,
            os_id: None,
            os_pretty: None,
            libc: None,
            layers: vec![LayerRecord {
                digest: layer.clone(),
                diff_id: diff_id.clone(),
                size: 2_000_000,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
        });
    }
    snapshot
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    let repos = numbers.first().copied().unwrap_or(1000);
    let tags = numbers.get(1).copied().unwrap_or(100);
    // `BERTH_BENCH_KEEP=DIR` keeps the filled store as DIR/store.db for other benchmarks
    // (scripts/bench-dashboard).
    let keep = std::env::var_os("BERTH_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("berth-bench-snapshot-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/store.db", dir.display());
    let store = Store::open(&url).await.expect("open the store");

    let start = Instant::now();
    let now = Utc.timestamp_opt(1_764_000_000, 0).single().expect("time");
    for repo in 0..repos {
        let name = RepositoryName::new("registry.bench:5000", &format!("bench/r{repo:04}"))
            .expect("valid repository");
        store
            .record_repository_sync(&name, &repo_snapshot(repo, tags), now)
            .await
            .expect("record a repository");
    }
    eprintln!(
        "filled {} tags in {:.1} s",
        repos * tags,
        start.elapsed().as_secs_f64()
    );
    store.close().await;

    // A fresh process's view: open, then load the whole snapshot as `berth serve` does.
    let store = Store::open(&url).await.expect("reopen the store");
    let rss_before = status_kib("VmRSS:");
    let start = Instant::now();
    let (knowledge, generation) = store.knowledge().await.expect("load the snapshot");
    let load = start.elapsed();
    let rss_loaded = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");

    // One refresh with nothing changed, and one after a repository's sync moved every tag.
    let start = Instant::now();
    let idle = store.knowledge_generation().await.expect("generation");
    let idle_time = start.elapsed();
    assert_eq!(idle, generation);
    let name = RepositoryName::new("registry.bench:5000", "bench/r0000").expect("valid");
    store
        .record_repository_sync(&name, &repo_snapshot(repos, tags), now)
        .await
        .expect("record a move");
    let start = Instant::now();
    let changes = store.knowledge_changes(generation).await.expect("changes");
    let knowledge: Knowledge = knowledge.apply(&changes);
    let refresh = start.elapsed();
    let rss_refreshed = status_kib("VmRSS:");
    std::hint::black_box(&knowledge);

    // `berth serve` refreshes a snapshot requests still share: it clones it, applies the
    // changes to the clone, and swaps; until the swap both are held.
    store
        .record_repository_sync(&name, &repo_snapshot(repos + 1, tags), now)
        .await
        .expect("record a second move");
    let changes = store
        .knowledge_changes(changes.generation)
        .await
        .expect("changes");
    let next: Knowledge = knowledge.clone().apply(&changes);
    let rss_both = status_kib("VmRSS:");
    std::hint::black_box(&next);
    drop(next);

    println!(
        "| what ({repos} x {tags} = {} tags) | figure |",
        repos * tags
    );
    println!("|---|---|");
    println!(
        "| whole load (`Store::knowledge`) | {:.0} ms |",
        load.as_secs_f64() * 1e3
    );
    println!(
        "| RSS before the load / after / peak | {} / {} / {} |",
        mib(rss_before),
        mib(rss_loaded),
        mib(peak)
    );
    println!(
        "| idle refresh (the one-row generation read) | {:.2} ms |",
        idle_time.as_secs_f64() * 1e3
    );
    println!(
        "| refresh after {tags} tags moved | {:.0} ms, RSS after {} |",
        refresh.as_secs_f64() * 1e3,
        mib(rss_refreshed)
    );
    println!(
        "| refresh as `berth serve` does it (a clone, applied; both held) | RSS {} / peak {} |",
        mib(rss_both),
        mib(status_kib("VmHWM:"))
    );
    drop(knowledge);

    // Retention over the same store, as `berth retention plan` reads and decides it: every
    // tag a candidate (`delete_tags: ["*"]`), the last 10 per repository kept.
    let start = Instant::now();
    let facts = store.retention_facts().await.expect("retention facts");
    let read = start.elapsed();
    let settings = berth_core::retention::Settings {
        policies: vec![berth_core::retention::Policy {
            repositories: vec![
                berth_core::policy::pattern::RepositoryPattern::parse("registry.bench:5000/**")
                    .expect("a pattern"),
            ],
            keep_last: 10,
            keep_younger_than: std::time::Duration::ZERO,
            keep_tags: Vec::new(),
            delete_tags: vec!["*".to_string()],
            delete_older_than: Some(std::time::Duration::ZERO),
            untagged_older_than: None,
        }],
        ..berth_core::retention::Settings::default()
    };
    let start = Instant::now();
    let plan = berth_core::retention::plan(&settings, &facts, Utc::now());
    let decided = start.elapsed();
    println!(
        "| retention: the store's facts (`Store::retention_facts`) / the plan ({} candidates) | {:.0} ms / {:.0} ms |",
        plan.candidates,
        read.as_secs_f64() * 1e3,
        decided.as_secs_f64() * 1e3
    );
    store.close().await;
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
