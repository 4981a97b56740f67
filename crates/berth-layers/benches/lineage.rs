//! Benchmark: the lineage index (`berth_core::lineage`) over 100,000 synthetic images: time to
//! build, nanoseconds per question, and memory. Figures go to docs/benchmarks.md.
//!
//! Shape: 100 bases (chains of 1-3 layers), then images each built on a random earlier image
//! with a chain under 12 layers, adding 1-3 layers of their own; 1% are twins (same layers,
//! another digest). Deterministic (fixed seed).
//! Run: `cargo bench -p berth-layers --bench lineage`.

use std::hint::black_box;
use std::time::Instant;

use berth_core::Digest;
use berth_core::lineage::LineageIndex;

mod common;
use common::{BASES, digest, status_kb, synthetic_images};

fn main() {
    let rss_start = status_kb("VmRSS");
    let images = synthetic_images();
    let digests: Vec<Digest> = images.iter().map(|(image, _)| image.clone()).collect();
    let layer_refs: usize = images.iter().map(|(_, chain)| chain.len()).sum();
    let rss_input = status_kb("VmRSS");

    let started = Instant::now();
    let index = LineageIndex::build(images);
    let build = started.elapsed();
    let rss_index = status_kb("VmRSS");

    let per = |count: usize, took: std::time::Duration| took.as_nanos() as f64 / count as f64;
    let started = Instant::now();
    let mut known = 0;
    for image in &digests {
        known += usize::from(black_box(index.contains(image)));
    }
    let contains = per(digests.len(), started.elapsed());
    assert_eq!(known, digests.len());
    let started = Instant::now();
    let mut with_base = 0;
    for image in &digests {
        with_base += usize::from(black_box(index.base_of(image)).is_some());
    }
    let base_of = per(digests.len(), started.elapsed());

    let started = Instant::now();
    let mut children = 0;
    for image in &digests {
        children += black_box(index.built_on(image)).len();
    }
    let built_on = per(digests.len(), started.elapsed());

    let bases: Vec<Digest> = (0..BASES).map(|base| digest(0xba, base)).collect();
    let started = Instant::now();
    let mut descendants = 0;
    for base in &bases {
        descendants += black_box(index.descendants(base)).len();
    }
    let descendants_ns = per(bases.len(), started.elapsed());

    let started = Instant::now();
    for (number, image) in digests.iter().enumerate() {
        black_box(index.check_declared(image, &bases[number % BASES..=number % BASES]));
    }
    let check = per(digests.len(), started.elapsed());

    println!(
        "{} images, {layer_refs} layer references; {with_base} have a base; {children} child edges; {descendants} descendants of the {BASES} bases",
        index.len()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| build the index | {:.0} ms |", build.as_secs_f64() * 1e3);
    println!("| `contains` (find the image) | {contains:.0} ns |");
    println!("| `base_of` | {base_of:.0} ns |");
    println!("| `built_on` (direct children) | {built_on:.0} ns |");
    println!(
        "| `descendants` of a base (~{} each) | {:.0} µs |",
        descendants / BASES,
        descendants_ns / 1e3
    );
    println!("| `check_declared` | {check:.0} ns |");
    println!(
        "| RSS: input (digests as strings) | {:.0} MB |",
        (rss_input - rss_start) as f64 / 1024.0
    );
    println!(
        "| RSS: after build (input consumed) | {:.0} MB |",
        (rss_index - rss_start) as f64 / 1024.0
    );
    println!(
        "| peak RSS (VmHWM), whole process | {:.0} MB |",
        status_kb("VmHWM") as f64 / 1024.0
    );
}
