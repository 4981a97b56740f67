//! The synthetic lineage graph the lineage and freshness benches share: 100 bases (chains of
//! 1-3 layers), then images each built on a random earlier image with a chain under 12 layers,
//! adding 1-3 layers of their own; 1% are twins (same layers, another digest). Deterministic.

#![allow(dead_code)] // each bench uses its part

use berth_core::Digest;

pub const IMAGES: usize = 100_000;
pub const BASES: usize = 100;
pub const MAX_CHAIN: usize = 12;

/// xorshift64*: reproducible and dependency-free.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

pub fn digest(kind: u8, number: usize) -> Digest {
    Digest::parse(&format!("sha256:{kind:02x}{number:062x}")).expect("valid digest")
}

pub fn synthetic_images() -> Vec<(Digest, Vec<Digest>)> {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut layers = 0;
    let mut new_layer = || {
        layers += 1;
        digest(0x1a, layers)
    };
    let mut images: Vec<(Digest, Vec<Digest>)> = Vec::with_capacity(IMAGES);
    for base in 0..BASES {
        let length = 1 + base % 3;
        images.push((
            digest(0xba, base),
            (0..length).map(|_| new_layer()).collect(),
        ));
    }
    while images.len() < IMAGES {
        let parent = random.below(images.len());
        let chain = &images[parent].1;
        if chain.len() >= MAX_CHAIN {
            continue;
        }
        let mut chain = chain.clone();
        if random.below(100) > 0 {
            let added = 1 + random.below(3).min(MAX_CHAIN - chain.len() - 1);
            chain.extend((0..added).map(|_| new_layer()));
        }
        images.push((digest(0xc1, images.len()), chain));
    }
    images
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}
