//! Hard limits on reading a layer: numbers a hostile layer cannot push berth past.

use std::time::Duration;

/// Limits applied to every layer read. Each violation is its own [`crate::LayerError`] variant
/// naming the layer and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes read from one layer (headers, contents, padding): stops decompression
    /// bombs. Default 2 GiB, above any base image berth has met (Debian is ~120 MB).
    pub max_decompressed_bytes: u64,
    /// Tar entries in one layer: stops a layer of millions of empty files from costing minutes.
    /// Default 1,000,000 (a large node_modules layer has a few hundred thousand).
    pub max_entries: u64,
    /// Size of the os-release file used. The format is a few hundred bytes; default 64 KiB.
    pub max_os_release_bytes: u64,
    /// zstd window as a power of two: the decoder's memory. Default 27 (128 MiB), zstd's own
    /// default maximum for decoding; clamped to zstd's range 10..=31.
    pub zstd_window_log_max: u32,
    /// Time to read one layer, by the caller's clock. Default 60 s.
    pub max_layer_time: Duration,
    /// Memory a layer's summary may keep (paths, link targets, captured file text): summaries
    /// are cached, so this is also the cache's cost per layer. Default 16 MiB.
    pub max_summary_bytes: u64,
    /// Symlinks followed in one path lookup. Default 40, as Linux's `MAXSYMLINKS`.
    pub max_symlink_hops: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_decompressed_bytes: 2 << 30,
            max_entries: 1_000_000,
            max_os_release_bytes: 64 << 10,
            zstd_window_log_max: 27,
            max_layer_time: Duration::from_secs(60),
            max_summary_bytes: 16 << 20,
            max_symlink_hops: 40,
        }
    }
}
