//! Catalog benchmark (not a test): a generated catalog of 10,000 entries × 3 variants ×
//! 5 aliases; load + validate time, resolve and reverse-resolve per call, and memory.
//! Run: `cargo bench -p berth-core --bench catalog`. Figures go to docs/benchmarks.md.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_core::ImageRef;
use berth_core::catalog::{Format, Source, load};
use chrono::{DateTime, Utc};

const ENTRIES: usize = 10_000;
const VARIANTS: [&str; 3] = ["jobs", "webservice", "cron"];
const ALIASES: usize = 5;
/// The first entries are bases the others declare.
const BASES: usize = 100;
const LOAD_RUNS: usize = 7;
const LOOKUPS: usize = 1_000_000;

fn generate() -> String {
    let mut text = String::from("images:\n");
    for i in 0..ENTRIES {
        let _ = writeln!(text, "  image{i}:");
        let _ = writeln!(text, "    description: generated image number {i}");
        let _ = writeln!(text, "    owners: [team{}]", i % 37);
        let aliases: Vec<String> = (0..ALIASES).map(|a| format!("img{i}-alias{a}")).collect();
        let _ = writeln!(text, "    aliases: [{}]", aliases.join(", "));
        if i >= BASES {
            let _ = writeln!(text, "    base: image{}", i % BASES);
        }
        if i % 10 == 1 && i + 1 < ENTRIES {
            let _ = writeln!(text, "    deprecated_on: 2026-07-01");
            let _ = writeln!(text, "    eol_on: 2027-01-01");
            let _ = writeln!(text, "    replacement: image{}", i + 1);
        }
        let _ = writeln!(text, "    variants:");
        for variant in VARIANTS {
            let _ = writeln!(text, "      {variant}:");
            let _ = writeln!(
                text,
                "        image: registry.example.org/platform/image{i}-{variant}"
            );
            if variant == "webservice" {
                let _ = writeln!(text, "        extra: {{wstype: uwsgi, port: 8000}}");
            }
        }
    }
    text
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM), 0 where there is no /proc.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn per_call(elapsed: Duration, calls: usize) -> f64 {
    elapsed.as_nanos() as f64 / calls as f64
}

fn main() {
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .map(|moment| moment.to_utc())
        .unwrap_or_default();
    let text = generate();
    let rss_before = status_kib("VmRSS");
    println!(
        "catalog: {ENTRIES} entries × {} variants × {ALIASES} aliases, {:.1} MiB of YAML",
        VARIANTS.len(),
        text.len() as f64 / (1024.0 * 1024.0)
    );

    let source = [Source {
        name: "generated.yaml",
        text: &text,
    }];

    // Memory first, while the heap is fresh. The first load leaves a catalog and the free memory
    // of its transient YAML tree; a second load reuses that memory for its own tree, so the
    // growth it causes is what one catalog keeps.
    let first = load(&source, Format::Berth, now).catalog;
    let peak_first = status_kib("VmHWM");
    let rss_one = status_kib("VmRSS");
    let second = load(&source, Format::Berth, now).catalog;
    let rss_two = status_kib("VmRSS");
    let mib = |kib: u64| kib as f64 / 1024.0;
    let memory = format!(
        "memory: a loaded catalog holds about {:.1} MiB (RSS growth of a second load); peak RSS \
         {:.1} MiB during the first load, from {:.1} MiB with the YAML text in memory",
        mib(rss_two.saturating_sub(rss_one)),
        mib(peak_first),
        mib(rss_before),
    );
    drop((first, second));

    let mut timings = Vec::with_capacity(LOAD_RUNS);
    let mut catalog = None;
    for _ in 0..LOAD_RUNS {
        let started = Instant::now();
        let loaded = load(black_box(&source), Format::Berth, now);
        timings.push(started.elapsed());
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        assert!(
            errors.is_empty(),
            "generated catalog is invalid: {errors:?}"
        );
        catalog = loaded.catalog;
    }
    let Some(catalog) = catalog else {
        panic!("no catalog");
    };
    timings.sort();
    println!(
        "load + validate: median {:.1} ms, min {:.1} ms ({LOAD_RUNS} runs)",
        timings[LOAD_RUNS / 2].as_secs_f64() * 1e3,
        timings[0].as_secs_f64() * 1e3
    );

    // Names to resolve: canonical names and aliases, spread over the catalog.
    let names: Vec<String> = (0..4096)
        .map(|k| {
            let i = (k * 7919) % ENTRIES;
            if k % 2 == 0 {
                format!("image{i}")
            } else {
                format!("img{i}-alias{}", k % ALIASES)
            }
        })
        .collect();
    let references: Vec<ImageRef> = (0..4096)
        .map(|k| {
            let i = (k * 7919) % ENTRIES;
            let variant = VARIANTS[k % VARIANTS.len()];
            let text = format!("registry.example.org/platform/image{i}-{variant}:{k}");
            ImageRef::parse(&text).unwrap_or_else(|error| panic!("{error}"))
        })
        .collect();
    let reference_texts: Vec<String> = references.iter().map(ImageRef::canonical).collect();

    // Calibration: a bare hash map of the same names, looked up the same way. This VM is
    // shared; the ratio to this line says more than the absolute figures.
    let bare: foldhash::HashMap<String, usize> = catalog
        .entries()
        .iter()
        .enumerate()
        .flat_map(|(index, entry)| {
            std::iter::once((entry.name.clone(), index)).chain(
                entry
                    .aliases
                    .iter()
                    .map(move |alias| (alias.clone(), index)),
            )
        })
        .collect();
    let started = Instant::now();
    for k in 0..LOOKUPS {
        let name = &names[k % names.len()];
        black_box(bare.contains_key(black_box(name.as_str())));
    }
    let bare_lookup = per_call(started.elapsed(), LOOKUPS);

    let started = Instant::now();
    for k in 0..LOOKUPS {
        let name = &names[k % names.len()];
        let found = catalog.lookup(black_box(name), Some(VARIANTS[k % 3]));
        black_box(found.is_ok());
    }
    let lookup = per_call(started.elapsed(), LOOKUPS);

    let started = Instant::now();
    for k in 0..LOOKUPS {
        let name = &names[k % names.len()];
        black_box(
            catalog
                .resolve(black_box(name), Some(VARIANTS[k % 3]), None, now)
                .is_ok(),
        );
    }
    let resolve = per_call(started.elapsed(), LOOKUPS);

    let started = Instant::now();
    for k in 0..LOOKUPS {
        let reference = &references[k % references.len()];
        black_box(catalog.owner_of(black_box(reference)).is_some());
    }
    let owner_of = per_call(started.elapsed(), LOOKUPS);

    let started = Instant::now();
    for k in 0..LOOKUPS {
        let text = &reference_texts[k % reference_texts.len()];
        let reference = ImageRef::parse(black_box(text)).unwrap_or_else(|error| panic!("{error}"));
        black_box(catalog.which(&reference, now).is_ok());
    }
    let which = per_call(started.elapsed(), LOOKUPS);

    let started = Instant::now();
    let misses = 200;
    for k in 0..misses {
        black_box(catalog.find(&format!("imgae{k}")).is_err());
    }
    let miss = per_call(started.elapsed(), misses);

    println!("calibration, bare hash map of the 60,000 names:   {bare_lookup:>8.0} ns/call");
    println!("resolve, index lookup (Catalog::lookup):           {lookup:>8.0} ns/call");
    println!("resolve, full answer (Catalog::resolve):           {resolve:>8.0} ns/call");
    println!("reverse, index lookup (Catalog::owner_of):         {owner_of:>8.0} ns/call");
    println!("reverse, parse + full answer (parse + which):      {which:>8.0} ns/call");
    println!("{memory}");
    println!(
        "unknown name with suggestions (Catalog::find):     {:>8.2} ms/call",
        miss / 1e6
    );
    black_box(&catalog);
}
