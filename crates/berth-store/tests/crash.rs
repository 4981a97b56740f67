//! kill -9 in the middle of a sync: the SQLite file stays whole (integrity check, foreign keys),
//! holds all or nothing of the interrupted snapshot, and the next sync completes the work.
//!
//! `harness = false`: this binary is both the test and, run as `crash child URL ROUND`, the
//! writer it kills. It prints libtest's lines so test runners count it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use berth_store::{LayerFact, RepoSnapshot, RepositoryName, Store};
use common::{amd64, at, repo, tag};

const TEST_NAME: &str = "sigkill_mid_sync_leaves_the_store_whole";
/// Images per snapshot: enough that one transaction takes a while and spills pages to the WAL
/// before it commits.
const IMAGES: usize = 300;
const ATTEMPTS: u32 = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let url = &args[2];
        let round: i64 = args[3].parse().expect("round");
        return child(url, round);
    }
    if args.iter().any(|arg| arg == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    let filters: Vec<&String> = args[1..]
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|filter| TEST_NAME.contains(filter.as_str()))
    {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n"
        );
        return;
    }
    println!("\nrunning 1 test");
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(sigkill_mid_sync_leaves_the_store_whole());
    println!("test {TEST_NAME} ... ok");
    println!(
        "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}

fn app() -> RepositoryName {
    repo("registry.example/crash/app")
}

/// Snapshot `round`: IMAGES images, each tagged `t{i}`; every round has new digests, so each
/// sync moves every tag.
fn snapshot(round: i64) -> RepoSnapshot {
    let mut snapshot = RepoSnapshot::default();
    for i in 0..IMAGES {
        let seed = format!("round-{round}-image-{i}");
        let layers: Vec<String> = (0..4).map(|k| format!("{seed}-layer-{k}")).collect();
        let layers: Vec<&str> = layers.iter().map(String::as_str).collect();
        let (mut manifest, mut image) =
            common::image(&seed, amd64(), &layers, Some("debian-12-amd64"));
        // Trailing whitespace keeps it JSON and makes the transaction bigger than SQLite's cache.
        manifest.raw.extend(std::iter::repeat_n(b' ', 16 * 1024));
        manifest.digest = common::sha256(&manifest.raw);
        image.digest = manifest.digest.clone();
        snapshot.layer_facts.push(LayerFact {
            layer: image.layers[0].digest.clone(),
            summary: serde_json::json!({"round": round, "image": i}),
        });
        snapshot
            .tags
            .push((tag(&format!("t{i}")), manifest.digest.clone()));
        snapshot.manifests.push(manifest);
        snapshot.images.push(image);
    }
    snapshot
}

/// The writer: syncs round, round + 1, ... until killed, saying when each begins and ends.
fn child(url: &str, first_round: i64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(url).await.expect("child opens the store");
        for round in first_round.. {
            let snapshot = snapshot(round);
            say(&format!("begin {round}"));
            store
                .record_repository_sync(&app(), &snapshot, at(round))
                .await
                .expect("child sync");
            say(&format!("done {round}"));
        }
    });
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

/// Reads the child's lines until one equals `wanted`.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, wanted: &str) {
    for line in lines.by_ref() {
        if line.expect("child output") == wanted {
            return;
        }
    }
    panic!("the child ended before saying {wanted:?}");
}

async fn sigkill_mid_sync_leaves_the_store_whole() {
    let dir = common::temp_dir();
    let url = format!("sqlite://{}/berth.db", dir.display());
    let mut round = 0;
    for attempt in 1..=ATTEMPTS {
        // The child commits `round`, then is killed halfway through `round + 1`.
        let mut child: Child = Command::new(std::env::current_exe().unwrap())
            .args(["child", &url, &round.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        wait_for(&mut lines, &format!("begin {round}"));
        let began = Instant::now();
        wait_for(&mut lines, &format!("done {round}"));
        let one_sync = began.elapsed();
        wait_for(&mut lines, &format!("begin {}", round + 1));
        std::thread::sleep(one_sync / 2);
        child.kill().expect("SIGKILL the writer"); // std sends SIGKILL on Unix
        child.wait().expect("reap the writer");
        let after_kill: Vec<String> = lines.map_while(Result::ok).collect();

        let interrupted = round + 1;
        let landed = check_whole(&url, round, interrupted).await;
        let said_done = after_kill.contains(&format!("done {interrupted}"));
        assert!(
            !said_done || landed,
            "a sync reported done must be in the store"
        );
        if landed {
            // The commit won the race with the kill: nothing was interrupted. Try again.
            eprintln!(
                "attempt {attempt}: sync {interrupted} committed before SIGKILL ({one_sync:?} per sync); retrying"
            );
            round = interrupted;
            continue;
        }

        // The next sync completes the work.
        let store = Store::open(&url).await.unwrap();
        let summary = store
            .record_repository_sync(&app(), &snapshot(interrupted), at(interrupted))
            .await
            .unwrap();
        assert_eq!(summary.manifests_added, IMAGES as u64);
        assert_eq!(summary.tags_moved, IMAGES as u64);
        store.close().await;
        assert!(check_whole(&url, round, interrupted).await);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    panic!("in {ATTEMPTS} attempts the kill never landed inside a sync");
}

/// Checks the file after a crash: SQLite's own integrity and foreign-key checks pass; snapshot
/// `committed` is whole; snapshot `interrupted` is all there or not at all (returned), and the
/// tags are exactly one snapshot's.
async fn check_whole(url: &str, committed: i64, interrupted: i64) -> bool {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
    let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert!(violations.is_empty(), "foreign keys broken: {violations:?}");
    connection.close().await.unwrap();

    let store = Store::open(url).await.unwrap();
    let digests = |round| -> Vec<_> {
        snapshot(round)
            .manifests
            .into_iter()
            .map(|m| m.digest)
            .collect()
    };
    let committed_known = store.known_manifests(&digests(committed)).await.unwrap();
    assert_eq!(committed_known.len(), IMAGES, "a committed sync is whole");
    let interrupted_known = store
        .known_manifests(&digests(interrupted))
        .await
        .unwrap()
        .len();
    assert!(
        interrupted_known == 0 || interrupted_known == IMAGES,
        "sync {interrupted} is partly there: {interrupted_known} of {IMAGES} manifests"
    );
    let landed = interrupted_known == IMAGES;
    let expected_round = if landed { interrupted } else { committed };
    let tags = store.tag_digests(&app()).await.unwrap();
    let expected: Vec<_> = {
        let mut tags = snapshot(expected_round).tags;
        tags.sort();
        tags
    };
    assert_eq!(
        tags, expected,
        "the tags are exactly those of sync {expected_round}"
    );
    let status = store.repository_status(&app()).await.unwrap().unwrap();
    assert_eq!(status.sync.last_sync_ok_at, Some(at(expected_round)));
    store.close().await;
    landed
}
