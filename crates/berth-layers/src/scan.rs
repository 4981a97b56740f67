//! Scanning an image: layers read top down until os-release and the libc family are known,
//! through the caller's cache of layer summaries.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use berth_core::Digest;
use berth_core::osrelease::{
    Architecture, LibcFamily, OsIdentity, OsRelease, Presence, libc_family,
};

use crate::summary::{FileContent, LayerSummary, summarize_until};
use crate::view::{Lookup, View, related};
use crate::{LayerError, Limits};

/// Where os-release is looked for, in order (os-release(5)).
const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// A layer as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDescriptor {
    pub digest: Digest,
    /// The manifest's media type. Compression is sniffed from the bytes whatever it says; an
    /// encrypted media type is refused.
    pub media_type: Option<String>,
    /// Declared size in bytes, for reports.
    pub size: Option<u64>,
}

/// How a scan reads.
pub struct ScanConfig<'a> {
    pub limits: Limits,
    /// Stop reading a layer as soon as the answer is known. The partial summary is then not
    /// offered to the cache: absence in it proves nothing, and its blob was not read to the
    /// end, where a verifying reader checks the digest. A registry sync that will meet the same
    /// base layer again may prefer `false`: read each layer whole once and cache it.
    pub stop_early: bool,
    /// Monotonic time since any fixed point, for the per-layer time limit: in production
    /// `move || start.elapsed()` over an `Instant` the caller took, in tests a fake.
    pub clock: &'a dyn Fn() -> Duration,
}

impl<'a> ScanConfig<'a> {
    /// Default limits, stopping early.
    pub fn new(clock: &'a dyn Fn() -> Duration) -> ScanConfig<'a> {
        ScanConfig {
            limits: Limits::default(),
            stop_early: true,
            clock,
        }
    }
}

/// Layer summaries kept between scans, by layer digest. The caller owns it (a map, the store).
/// Only complete summaries are put.
pub trait LayerCache {
    fn get(&self, layer: &Digest) -> Option<LayerSummary>;
    fn put(&mut self, summary: LayerSummary);
}

impl LayerCache for HashMap<Digest, LayerSummary> {
    fn get(&self, layer: &Digest) -> Option<LayerSummary> {
        HashMap::get(self, layer).cloned()
    }

    fn put(&mut self, summary: LayerSummary) {
        self.insert(summary.digest.clone(), summary);
    }
}

/// A cache that keeps nothing.
pub struct NoCache;

impl LayerCache for NoCache {
    fn get(&self, _: &Digest) -> Option<LayerSummary> {
        None
    }

    fn put(&mut self, _: LayerSummary) {}
}

/// What a scan found out about an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageScan {
    /// `None`: the image has no os-release (scratch, busybox), or only one berth could not read.
    pub os_release: Option<FoundOsRelease>,
    /// From the os-release and the architecture scanned for.
    pub identity: Option<OsIdentity>,
    pub libc: LibcFamily,
    /// The loaders found (for the architecture scanned for), in the order
    /// [`Architecture::loaders`] lists them. When the scan stopped early, only those it needed.
    pub loaders: Vec<FoundFile>,
    /// What was done with each layer, in manifest order (bottom first).
    pub layers: Vec<LayerRead>,
    pub warnings: Vec<ScanWarning>,
}

/// The os-release used, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FoundOsRelease {
    pub file: FoundFile,
    pub os_release: OsRelease,
}

/// A file found through the merged layers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FoundFile {
    /// The path looked up (`etc/os-release`).
    pub path: String,
    /// Where it is once symlinks are followed (`usr/lib/os-release`).
    pub resolved: String,
    /// The layer that holds it.
    pub layer: Digest,
}

/// What a scan did with one layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRead {
    pub digest: Digest,
    pub how: ReadHow,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum ReadHow {
    /// Its summary came from the cache: the blob was not opened.
    Cached,
    /// Read now. `complete` is false when reading stopped once the answer was known.
    Read {
        complete: bool,
        entries: u64,
        compressed_bytes: u64,
        decompressed_bytes: u64,
    },
    /// Not needed: upper layers settled everything.
    Skipped,
}

/// Something odd the scan met and worked around.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "warning")]
pub enum ScanWarning {
    /// Entries with `..` in their path were skipped.
    UnsafeEntries {
        layer: Digest,
        count: u64,
        examples: Vec<String>,
    },
    /// Following symlinks from `path` did not end.
    SymlinkLoop { path: String },
    /// os-release exists but its text was not kept (a hard link to a file not named like it).
    OsReleaseUnreadable { file: FoundFile },
}

/// Scans an image for its os-release and libc family.
///
/// `layers` in manifest order (bottom first). They are read top down; `open` is called for a
/// layer only when its summary is not in `cache` and the layers above did not settle the
/// answer. See the crate documentation for the algorithm.
pub fn scan_image<R: Read>(
    layers: &[LayerDescriptor],
    architecture: &Architecture,
    mut open: impl FnMut(&LayerDescriptor) -> std::io::Result<R>,
    cache: &mut dyn LayerCache,
    config: &ScanConfig<'_>,
) -> Result<ImageScan, LayerError> {
    let mut summaries: Vec<LayerSummary> = Vec::new();
    let mut how: Vec<ReadHow> = Vec::new();
    for (position, descriptor) in layers.iter().enumerate().rev() {
        let more_below = position > 0;
        let summary = match cache.get(&descriptor.digest) {
            Some(summary) if summary.complete => {
                how.push(ReadHow::Cached);
                summary
            }
            _ => {
                let blob = open(descriptor).map_err(|source| LayerError::Read {
                    layer: descriptor.digest.clone(),
                    source,
                })?;
                let summary = read_layer(descriptor, blob, &summaries, architecture, config)?;
                how.push(ReadHow::Read {
                    complete: summary.complete,
                    entries: summary.entries,
                    compressed_bytes: summary.compressed_bytes,
                    decompressed_bytes: summary.decompressed_bytes,
                });
                if summary.complete {
                    cache.put(summary.clone());
                }
                summary
            }
        };
        summaries.push(summary);
        let view = View {
            layers: summaries.iter().collect(),
            lowest_partial: summaries.last().is_some_and(|summary| !summary.complete),
            more_below,
        };
        if evaluate(&view, architecture, config.limits.max_symlink_hops).settled() {
            break;
        }
    }
    let view = View {
        layers: summaries.iter().collect(),
        lowest_partial: summaries.last().is_some_and(|summary| !summary.complete),
        more_below: false,
    };
    let evaluation = evaluate(&view, architecture, config.limits.max_symlink_hops);
    let layer_digest = |index: usize| summaries[index].digest.clone();
    let mut warnings: Vec<ScanWarning> = summaries
        .iter()
        .filter(|summary| summary.unsafe_entries > 0)
        .map(|summary| ScanWarning::UnsafeEntries {
            layer: summary.digest.clone(),
            count: summary.unsafe_entries,
            examples: summary.unsafe_examples.clone(),
        })
        .collect();
    warnings.extend(
        evaluation
            .loops
            .iter()
            .map(|path| ScanWarning::SymlinkLoop { path: path.clone() }),
    );

    let os_release = match evaluation.os_release {
        Settled::Known(Some(hit)) => {
            let file = FoundFile {
                path: hit.path.to_string(),
                resolved: hit.resolved.clone(),
                layer: layer_digest(hit.layer),
            };
            match hit.content {
                FileContent::Text { text } => Some(FoundOsRelease {
                    file,
                    os_release: OsRelease::parse(text),
                }),
                FileContent::TooLarge { size } => {
                    return Err(LayerError::OsReleaseTooLarge {
                        layer: file.layer,
                        path: file.resolved,
                        size: *size,
                        limit: config.limits.max_os_release_bytes,
                    });
                }
                FileContent::NotRead => {
                    warnings.push(ScanWarning::OsReleaseUnreadable { file });
                    None
                }
            }
        }
        Settled::Known(None) | Settled::Pending => None,
    };
    let loaders = evaluation
        .loaders
        .iter()
        .map(|hit| FoundFile {
            path: hit.path.to_string(),
            resolved: hit.resolved.clone(),
            layer: layer_digest(hit.layer),
        })
        .collect();
    // Everything is read or settled here, so a pending family cannot remain; `Unknown` if it did.
    let libc = evaluation.libc.unwrap_or(LibcFamily::Unknown);

    let mut reads: Vec<LayerRead> = layers
        .iter()
        .rev()
        .zip(how.into_iter().chain(std::iter::repeat(ReadHow::Skipped)))
        .map(|(descriptor, how)| LayerRead {
            digest: descriptor.digest.clone(),
            how,
        })
        .collect();
    reads.reverse();
    Ok(ImageScan {
        identity: os_release
            .as_ref()
            .map(|found| OsIdentity::derive(&found.os_release, architecture)),
        os_release,
        libc,
        loaders,
        layers: reads,
        warnings,
    })
}

/// Reads one layer below `upper` (complete summaries, top first), stopping early when allowed
/// and the answer is known.
fn read_layer<R: Read>(
    descriptor: &LayerDescriptor,
    blob: R,
    upper: &[LayerSummary],
    architecture: &Architecture,
    config: &ScanConfig<'_>,
) -> Result<LayerSummary, LayerError> {
    let hops = config.limits.max_symlink_hops;
    // The paths the last evaluation waited on: only a record related to one can settle more.
    let mut waiting: Option<Vec<String>> = None;
    summarize_until(descriptor, blob, config, |partial, recorded| {
        if !config.stop_early {
            return false;
        }
        if let Some(waiting) = &waiting
            && !waiting.iter().any(|path| related(path, recorded))
        {
            return false;
        }
        let view = View {
            layers: upper.iter().chain(std::iter::once(partial)).collect(),
            lowest_partial: true,
            more_below: true,
        };
        let evaluation = evaluate(&view, architecture, hops);
        let settled = evaluation.settled();
        waiting = Some(evaluation.waiting);
        settled
    })
}

/// A lookup's answer, if it has one yet.
enum Settled<T> {
    Known(T),
    Pending,
}

/// A file found, with its layer as an index into the view.
struct Hit<'a> {
    path: &'static str,
    resolved: String,
    layer: usize,
    content: &'a FileContent,
}

/// What the view settles so far.
struct Evaluation<'a> {
    os_release: Settled<Option<Hit<'a>>>,
    libc: Option<LibcFamily>,
    loaders: Vec<Hit<'a>>,
    /// Paths pending lookups wait on.
    waiting: Vec<String>,
    /// Lookups that ran into a symlink loop.
    loops: Vec<String>,
}

impl Evaluation<'_> {
    fn settled(&self) -> bool {
        matches!(self.os_release, Settled::Known(_)) && self.libc.is_some()
    }
}

fn evaluate<'a>(view: &View<'a>, architecture: &Architecture, hops: u32) -> Evaluation<'a> {
    let mut waiting = Vec::new();
    let mut loops = Vec::new();
    let mut os_release = Settled::Known(None);
    for path in OS_RELEASE_PATHS {
        match view.lookup(path, hops) {
            Lookup::Found {
                resolved,
                layer,
                content,
            } => {
                os_release = Settled::Known(Some(Hit {
                    path,
                    resolved,
                    layer,
                    content,
                }));
                break;
            }
            Lookup::Absent => {}
            Lookup::Loop => loops.push(path.to_string()),
            Lookup::Pending(at) => {
                waiting.push(at);
                os_release = Settled::Pending;
                break;
            }
        }
    }

    let mut glibc = Presence::Absent;
    let mut musl = Presence::Absent;
    let mut loaders = Vec::new();
    for loader in architecture.loaders() {
        let presence = match view.lookup(loader.path, hops) {
            Lookup::Found {
                resolved,
                layer,
                content,
            } => {
                loaders.push(Hit {
                    path: loader.path,
                    resolved,
                    layer,
                    content,
                });
                Presence::Present
            }
            Lookup::Absent => Presence::Absent,
            Lookup::Loop => {
                loops.push(loader.path.to_string());
                Presence::Absent
            }
            Lookup::Pending(at) => {
                waiting.push(at);
                Presence::Pending
            }
        };
        let family = match loader.libc {
            LibcFamily::Glibc => &mut glibc,
            LibcFamily::Musl | LibcFamily::Unknown => &mut musl,
        };
        *family = combine(*family, presence);
    }
    let musl_distribution = match &os_release {
        Settled::Known(Some(hit)) => Some(match hit.content {
            FileContent::Text { text } => OsRelease::parse(text).is_musl_distribution(),
            FileContent::NotRead | FileContent::TooLarge { .. } => false,
        }),
        Settled::Known(None) => Some(false),
        Settled::Pending => None,
    };
    Evaluation {
        os_release,
        libc: libc_family(glibc, musl, musl_distribution),
        loaders,
        waiting,
        loops,
    }
}

/// Presence of a family from two of its loaders: present if either is.
fn combine(a: Presence, b: Presence) -> Presence {
    match (a, b) {
        (Presence::Present, _) | (_, Presence::Present) => Presence::Present,
        (Presence::Pending, _) | (_, Presence::Pending) => Presence::Pending,
        (Presence::Absent, Presence::Absent) => Presence::Absent,
    }
}
