//! Benchmark: scanning a real Debian base layer for os-release and libc, next to
//! `gzip -dc | tar -x` of the same layer in the same run. Figures go to docs/benchmarks.md.
//!
//! The layer comes from `scripts/debian-layer` (debootstrap, cached), or `BERTH_DEBIAN_LAYER`.
//! Run: `cargo bench -p berth-layers --bench osrelease`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_core::osrelease::Architecture;
use berth_layers::{LayerDescriptor, NoCache, ReadHow, ScanConfig, scan_image, summarize_layer};

const RUNS: usize = 5;

fn main() {
    let layer = layer_path();
    let blob = std::fs::read(&layer).unwrap_or_else(|error| fail(&format!("{layer:?}: {error}")));
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let rate = |bytes: u64, took: Duration| mb(bytes) / took.as_secs_f64();
    println!(
        "layer: {} ({:.1} MB gzip)",
        layer.display(),
        mb(blob.len() as u64)
    );
    let descriptor = LayerDescriptor {
        digest: Digest::parse(&format!("sha256:{}", "d".repeat(64))).expect("valid"),
        media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip".to_string()),
        size: Some(blob.len() as u64),
    };
    let start = Instant::now();
    let clock = move || start.elapsed();

    // 1. The scan as a sync would run it: stop once os-release and libc are known.
    let config = ScanConfig::new(&clock);
    let mut early = Vec::new();
    let mut scan = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = scan_image(
            std::slice::from_ref(&descriptor),
            &Architecture::Amd64,
            |_| Ok::<_, io::Error>(blob.as_slice()),
            &mut NoCache,
            &config,
        )
        .unwrap_or_else(|error| fail(&format!("scan: {error}")));
        early.push(started.elapsed());
        scan = Some(result);
    }
    let scan = scan.expect("ran");
    let identity = scan.identity.as_ref().map(|id| id.to_string());
    if identity.as_deref() != Some("debian-12-amd64") {
        fail(&format!("expected debian-12-amd64, got {identity:?}"));
    }
    let ReadHow::Read {
        complete,
        entries,
        compressed_bytes,
        decompressed_bytes,
    } = scan.layers[0].how
    else {
        fail("the layer was not read");
    };
    let early_best = best(&early);

    // 2. The whole layer summarized (what a cached summary costs once).
    let mut whole = Vec::new();
    let mut summary = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = summarize_layer(&descriptor, blob.as_slice(), &config)
            .unwrap_or_else(|error| fail(&format!("summary: {error}")));
        whole.push(started.elapsed());
        summary = Some(result);
    }
    let summary = summary.expect("ran");
    let whole_best = best(&whole);

    // 3. Baselines in the same run: gzip alone, and gzip piped into tar extracting to disk.
    let scratch = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
    let gunzip = best(
        &(0..RUNS)
            .map(|_| shell(&format!("gzip -dc {} >/dev/null", layer.display())))
            .collect::<Vec<_>>(),
    );
    let mut extract = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap_or_else(|error| fail(&format!("{error}")));
        extract.push(shell(&format!(
            "gzip -dc {} | tar -x -C {}",
            layer.display(),
            scratch.display()
        )));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let extract_best = best(&extract);

    let total = blob.len() as u64;
    println!(
        "identity: {} (libc {:?})",
        identity.unwrap_or_default(),
        scan.libc
    );
    println!(
        "stopped early: complete={complete}, {entries} of {} entries, {:.1} of {:.1} MB gzip read, {:.1} of {:.1} MB tar",
        summary.entries,
        mb(compressed_bytes),
        mb(total),
        mb(decompressed_bytes),
        mb(summary.decompressed_bytes),
    );
    println!("| what | best of {RUNS} | gzip MB/s | tar MB/s |");
    println!("|---|---|---|---|");
    let row = |what: &str, took: Duration, gzip: u64, tar: u64| {
        println!(
            "| {what} | {:.0} ms | {:.0} | {:.0} |",
            took.as_secs_f64() * 1e3,
            rate(gzip, took),
            rate(tar, took)
        );
    };
    row(
        "berth scan (stops when known)",
        early_best,
        compressed_bytes,
        decompressed_bytes,
    );
    row(
        "berth summary of the whole layer",
        whole_best,
        total,
        summary.decompressed_bytes,
    );
    row(
        "`gzip -dc >/dev/null`",
        gunzip,
        total,
        summary.decompressed_bytes,
    );
    row(
        "`gzip -dc | tar -x` (baseline)",
        extract_best,
        total,
        summary.decompressed_bytes,
    );
    println!(
        "scan vs baseline: {:.1}x faster; whole summary vs baseline: {:.1}x",
        extract_best.as_secs_f64() / early_best.as_secs_f64(),
        extract_best.as_secs_f64() / whole_best.as_secs_f64()
    );
    let kept: HashMap<&str, usize> =
        summary
            .nodes
            .values()
            .fold(HashMap::new(), |mut kinds, node| {
                let kind = match node {
                    berth_layers::Node::Dir => "dirs",
                    berth_layers::Node::Symlink { .. } => "symlinks",
                    berth_layers::Node::File { .. } => "files",
                    berth_layers::Node::Whiteout => "whiteouts",
                    berth_layers::Node::Other => "other",
                };
                *kinds.entry(kind).or_default() += 1;
                kinds
            });
    let json = serde_json::to_vec(&summary)
        .map(|json| json.len())
        .unwrap_or_default();
    println!("summary keeps {kept:?}; {json} bytes as JSON");
}

fn best(runs: &[Duration]) -> Duration {
    runs.iter().copied().min().unwrap_or_default()
}

fn shell(command: &str) -> Duration {
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .unwrap_or_else(|error| fail(&format!("{command}: {error}")));
    if !status.success() {
        fail(&format!("{command}: {status}"));
    }
    started.elapsed()
}

/// `BERTH_DEBIAN_LAYER`, else what `scripts/debian-layer` prints (it builds the layer once).
fn layer_path() -> PathBuf {
    if let Some(path) = std::env::var_os("BERTH_DEBIAN_LAYER") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/debian-layer");
    let output = Command::new(&script)
        .output()
        .unwrap_or_else(|error| fail(&format!("{}: {error}", script.display())));
    if !output.status.success() {
        fail(&format!(
            "scripts/debian-layer failed (the Debian mirror may be unreachable):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn fail(message: &str) -> ! {
    eprintln!("osrelease bench: {message}");
    std::process::exit(1)
}
