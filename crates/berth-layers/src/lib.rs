//! Reads image layers as streams, never extracting to disk: which OS an image is (its
//! os-release) and which libc it runs on (its dynamic loader), within hard limits.
//!
//! # Code map
//! - [`scan`]: [`scan_image`], the algorithm below; [`LayerCache`]; the result, [`ImageScan`].
//! - [`summary`]: one layer read into a cacheable [`LayerSummary`]: what is recorded, entry
//!   path rules (`..` entries are skipped and reported).
//! - `view`: the merged view of summaries, whiteouts, and symlink resolution that never
//!   leaves the image.
//! - [`listing`]: one layer's entries (path, kind, size, mode), for `berth diff`.
//! - [`decode`]: gzip / zstd / plain tar sniffed from magic bytes; the byte and time meters.
//! - [`limits`] and [`error`]: every limit, and one error variant per way a layer fails.
//!
//! # Algorithm: top down, stop when settled
//! A tar stream cannot be read backwards, but every layer blob can be opened on its own, and
//! upper layers win. So layers are read **from the top (last in the manifest) down**:
//! 1. Each layer is summarized whole (or comes from the cache, by digest): its whiteouts,
//!    opaque directories, symlinks, os-release-like files with their text, and loader files.
//!    A summary depends on its layer alone, so it can be cached and shared between images.
//! 2. After each layer, `etc/os-release` (then `usr/lib/os-release`) and the architecture's
//!    loader paths are looked up in the merged view of the layers read so far. A lookup is
//!    *settled* when an upper layer decides it (a file, a whiteout, an opaque directory) and
//!    *pending* when it falls through to layers not read yet.
//! 3. Once os-release and the libc family are settled, lower layers are not opened at all.
//!
//! Within a layer, the same check runs as entries are recorded (only when an entry touches a
//! path a pending lookup waits on), so reading stops as soon as the answer is known; on a
//! Debian base layer that is after `usr/lib64/`, before `usr/share/` and `var/`. This assumes a
//! path appears once per layer (a later duplicate would have replaced it); a layer that
//! stopped early is marked incomplete and never cached.
//!
//! The libc family needs no full listing: glibc's loader present on a distribution that is
//! not musl-based settles it (see [`berth_core::osrelease::libc_family`]).
//!
//! # Semantics chosen
//! - Layers combine as overlayfs shows them when each layer is extracted on its own (Docker's
//!   overlay2 driver): an upper directory replaces a lower symlink at the same path. Build tools
//!   write layers with physical paths, so this only matters for an odd tar that writes
//!   `lib/x` over a lower `lib -> usr/lib`: here (and in Docker) the upper `lib` directory
//!   hides the symlink; containerd would write through it to `usr/lib/x`.
//! - Symlinks resolve inside the image: absolute targets from the image root, `..` stops at the
//!   root, at most 40 hops.
//! - Entries whose path has `..` are skipped and reported ([`ScanWarning::UnsafeEntries`]).
//! - Only files named like os-release (`*release*`) keep their text, so an os-release symlink
//!   to a file named otherwise reads as absent.
//!
//! # Invariants
//! Nothing is written to disk. Every byte is counted against [`Limits`]: decompressed bytes,
//! entries, summary size, os-release size, zstd window (checked from the frame header before
//! decoding), time per layer by the caller's clock.

pub mod decode;
pub mod error;
pub mod limits;
pub mod listing;
pub mod scan;
pub mod summary;
mod view;

pub use decode::Compression;
pub use error::LayerError;
pub use limits::Limits;
pub use scan::{
    FoundFile, FoundOsRelease, ImageScan, LayerCache, LayerDescriptor, LayerRead, NoCache, ReadHow,
    ScanConfig, ScanWarning, scan_image,
};
pub use summary::{FileContent, LayerSummary, Node, summarize_layer};
