//! One layer read into a [`LayerSummary`]: the few paths that matter for os-release and the libc
//! loader, its whiteouts and symlinks. A summary depends on the layer alone, so it is cached by
//! the layer's digest.
//!
//! # What is recorded
//! - whiteouts (`.wh.name`) and opaque directories (`.wh..wh..opq`); other `.wh..wh.` names
//!   (aufs bookkeeping) are ignored;
//! - every symlink (a directory symlink such as Debian's `lib -> usr/lib` can sit on any path);
//! - regular files whose name contains `release` (`os-release`, Fedora's
//!   `os.release.d/os-release-container`), with their text when it is at most the os-release
//!   limit, else their size only;
//! - regular files named like a loader or libc (`ld-*.so*`, `ld64*.so*`, `libc.*so*`), as
//!   present only;
//! - hard links to any of those (a hard link names an earlier entry of the same layer), or
//!   named like them;
//! - directories up to three components deep (`usr/lib/x86_64-linux-gnu`), so an upper
//!   directory replacing a lower symlink is seen; deeper directories are implied by what is
//!   recorded inside them.
//!
//! Everything else (nearly all of a layer) is read past, never kept.
//!
//! # Entry paths
//! Leading `/` and `./` are stripped, `.` components and empty ones dropped. An entry with a `..`
//! component is **skipped**: it is counted in `unsafe_entries` (the first ones kept as examples)
//! and never recorded, so `../../etc/os-release` can never stand in for `etc/os-release`
//! (containerd would clamp it there; Docker rejects the layer). Paths that are not UTF-8 cannot
//! be any path berth looks up and are read past as well.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use berth_core::Digest;
use tar::EntryType;

use crate::decode::{self, Compression, Context, Meter};
use crate::{LayerDescriptor, LayerError, Limits, ScanConfig};

/// How many unsafe entry paths a summary keeps as examples.
const UNSAFE_EXAMPLES: usize = 5;
/// Directories deeper than this are not recorded (they are implied by their contents).
const RECORDED_DIRECTORY_DEPTH: usize = 3;
/// What one recorded node costs beyond its strings, for the summary-size limit.
const NODE_OVERHEAD: u64 = 64;
/// Buffer between the decoder and the tar reader (which reads 512-byte blocks).
pub(crate) const TAR_BUFFER: usize = 64 << 10;

/// What one layer says about the paths berth looks up. Serializable so a store can keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerSummary {
    pub digest: Digest,
    pub compression: Compression,
    /// The whole tar was read and its blob consumed to the end. A summary that stopped early
    /// (the answer was known) is not complete: absence in it proves nothing, and it is never
    /// cached.
    pub complete: bool,
    /// Tar entries read.
    pub entries: u64,
    /// Blob bytes read (compressed), including what decoders buffered ahead.
    pub compressed_bytes: u64,
    /// Tar bytes read (decompressed).
    pub decompressed_bytes: u64,
    /// Recorded paths (normalized, no leading `/`) and what the layer puts there.
    pub nodes: BTreeMap<String, Node>,
    /// Directories this layer marks opaque: lower layers' contents there are hidden. `""` is
    /// the root.
    pub opaque_dirs: BTreeSet<String>,
    /// Entries skipped because their path or hard-link target had a `..` component.
    pub unsafe_entries: u64,
    /// The first few of those paths, for the report.
    pub unsafe_examples: Vec<String>,
}

/// What a layer puts at a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Node {
    Dir,
    Symlink {
        target: String,
    },
    File {
        content: FileContent,
    },
    /// `.wh.name`: the path is deleted from the layers below.
    Whiteout,
    /// Exists and is not a directory, but is not followed: a symlink whose target is not
    /// UTF-8, or a device or FIFO at a recorded name.
    Other,
}

/// What is known of a recorded regular file's content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FileContent {
    /// The file exists; its content was not needed (loaders) or not available (a hard link
    /// to a file that was not kept).
    NotRead,
    /// Kept whole (files named like os-release, within the os-release limit). Not UTF-8 bytes
    /// are replaced.
    Text { text: String },
    /// Larger than the os-release limit: only an error if it turns out to be the os-release.
    TooLarge { size: u64 },
}

/// The tar stream, able to "seek" forward by reading past bytes in its buffer. `tar` skips file
/// contents with a seek when it can; without one it zeroes a 32 KiB buffer per entry, which is
/// most of the cost of a layer of a million empty files.
pub(crate) struct Skipping<R> {
    pub(crate) inner: BufReader<R>,
    /// Bytes consumed so far: what `tar` expects a seek to return.
    pub(crate) position: u64,
}

impl<R: Read> Read for Skipping<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl<R: Read> io::Seek for Skipping<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let io::SeekFrom::Current(mut remaining) = to else {
            return Err(io::Error::other("a layer stream only skips forward"));
        };
        if remaining < 0 {
            return Err(io::Error::other("a layer stream only skips forward"));
        }
        while remaining > 0 {
            let available = self.inner.fill_buf()?.len();
            if available == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "layer ended inside an entry",
                ));
            }
            let step = available.min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.inner.consume(step);
            self.position += step as u64;
            remaining -= step as i64;
        }
        Ok(self.position)
    }
}

/// A normalized entry path, or why the entry is read past.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntryPath {
    Path(String),
    Root,
    Unsafe,
    NotUtf8,
}

/// Normalizes a tar entry path: see the module documentation.
pub(crate) fn normalize_entry_path(raw: &[u8]) -> EntryPath {
    let Ok(text) = std::str::from_utf8(raw) else {
        return EntryPath::NotUtf8;
    };
    let mut components = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => return EntryPath::Unsafe,
            other => components.push(other),
        }
    }
    if components.is_empty() {
        EntryPath::Root
    } else {
        EntryPath::Path(components.join("/"))
    }
}

pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether an entry may be unsafe or recorded; `false` for the plain files that make up nearly
/// every layer. Cheap: no allocation.
fn worth_a_look(raw_path: &[u8], kind: EntryType) -> bool {
    let mut depth = 0;
    let mut name: &[u8] = b"";
    for component in raw_path.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return true,
            other => {
                depth += 1;
                name = other;
            }
        }
    }
    if name.starts_with(b".wh.") {
        return true;
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    match kind {
        EntryType::Symlink | EntryType::Link => true,
        EntryType::Directory => depth <= RECORDED_DIRECTORY_DEPTH,
        _ => keeps_text(name) || records_presence(name),
    }
}

/// Files whose text is kept: os-release and the files it may link to.
fn keeps_text(name: &str) -> bool {
    name.contains("release")
}

/// Files recorded as present: dynamic loaders and libc, which symlinked loaders resolve to.
fn records_presence(name: &str) -> bool {
    let loader_like = ["ld-", "ld64", "ld.so", "libc.", "libc-"]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    loader_like && name.contains(".so")
}

/// A summary being built, with the byte budget it is held to.
struct Recorder<'c> {
    summary: LayerSummary,
    bytes: u64,
    limits: &'c Limits,
}

impl Recorder<'_> {
    fn charge(&mut self, bytes: u64) -> Result<(), LayerError> {
        self.bytes += bytes + NODE_OVERHEAD;
        if self.bytes > self.limits.max_summary_bytes {
            return Err(LayerError::SummaryTooLarge {
                layer: self.summary.digest.clone(),
                limit: self.limits.max_summary_bytes,
            });
        }
        Ok(())
    }

    fn record(&mut self, path: String, node: Node) -> Result<(), LayerError> {
        let size = match &node {
            Node::Symlink { target } => target.len(),
            Node::File {
                content: FileContent::Text { text },
            } => text.len(),
            _ => 0,
        };
        // A whiteout hides lower layers only: it never replaces this layer's own entry.
        if node == Node::Whiteout
            && self
                .summary
                .nodes
                .get(&path)
                .is_some_and(|existing| *existing != Node::Whiteout)
        {
            return Ok(());
        }
        self.charge((path.len() + size) as u64)?;
        self.summary.nodes.insert(path, node);
        Ok(())
    }

    fn unsafe_entry(&mut self, path: &[u8]) {
        self.summary.unsafe_entries += 1;
        if self.summary.unsafe_examples.len() < UNSAFE_EXAMPLES {
            self.summary
                .unsafe_examples
                .push(String::from_utf8_lossy(path).into_owned());
        }
    }
}

/// Reads a whole layer into its summary. The reader should verify the blob's digest at its end
/// (berth-oci's blob stream does): a complete summary has read the blob to its end.
pub fn summarize_layer<R: Read>(
    descriptor: &LayerDescriptor,
    blob: R,
    config: &ScanConfig<'_>,
) -> Result<LayerSummary, LayerError> {
    summarize_until(descriptor, blob, config, |_, _| false)
}

/// Reads a layer, asking `enough(summary so far, path just recorded)` after each recorded path
/// whether to stop. A summary that stopped is not complete.
pub(crate) fn summarize_until<R: Read>(
    descriptor: &LayerDescriptor,
    blob: R,
    config: &ScanConfig<'_>,
    mut enough: impl FnMut(&LayerSummary, &str) -> bool,
) -> Result<LayerSummary, LayerError> {
    let layer = &descriptor.digest;
    let limits = &config.limits;
    let context = Context {
        layer,
        limits,
        clock: config.clock,
        started: (config.clock)(),
        meter: Rc::new(Meter::default()),
    };
    let (compression, stream) =
        decode::tar_stream(blob, descriptor.media_type.as_deref(), &context)?;
    let mut recorder = Recorder {
        summary: LayerSummary {
            digest: layer.clone(),
            compression,
            complete: false,
            entries: 0,
            compressed_bytes: 0,
            decompressed_bytes: 0,
            nodes: BTreeMap::new(),
            opaque_dirs: BTreeSet::new(),
            unsafe_entries: 0,
            unsafe_examples: Vec::new(),
        },
        bytes: 0,
        limits,
    };
    let classify = |error: io::Error| context.classify(error);

    let mut archive = tar::Archive::new(Skipping {
        inner: BufReader::with_capacity(TAR_BUFFER, stream),
        position: 0,
    });
    let mut stopped = false;
    for entry in archive.entries_with_seek().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        recorder.summary.entries += 1;
        if recorder.summary.entries > limits.max_entries {
            return Err(LayerError::TooManyEntries {
                layer: layer.clone(),
                limit: limits.max_entries,
            });
        }
        if context.out_of_time() {
            return Err(context.too_slow());
        }
        // Most entries are neither unsafe nor recorded: decide that without allocating.
        if !worth_a_look(&entry.path_bytes(), entry.header().entry_type()) {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let path = match normalize_entry_path(&raw_path) {
            EntryPath::Path(path) => path,
            EntryPath::Unsafe => {
                recorder.unsafe_entry(&raw_path);
                continue;
            }
            EntryPath::Root | EntryPath::NotUtf8 => continue,
        };
        let Some(recorded) = record_entry(&mut recorder, &mut entry, path, &raw_path, &context)?
        else {
            continue;
        };
        if enough(&recorder.summary, &recorded) {
            stopped = true;
            break;
        }
    }
    if !stopped {
        // Past the end-of-archive blocks to the end of the blob, so a verifying reader sees
        // its end (and the limits still apply to whatever follows).
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(classify)?;
    }
    let mut summary = recorder.summary;
    summary.complete = !stopped;
    summary.compressed_bytes = context.meter.compressed();
    summary.decompressed_bytes = context.meter.decompressed();
    Ok(summary)
}

/// Records what one entry says, if it matters; returns the path recorded.
fn record_entry<R: Read>(
    recorder: &mut Recorder<'_>,
    entry: &mut tar::Entry<'_, R>,
    path: String,
    raw_path: &[u8],
    context: &Context<'_>,
) -> Result<Option<String>, LayerError> {
    let (parent, name) = split_parent(&path);
    if name == ".wh..wh..opq" {
        let parent = parent.to_string();
        recorder.charge(parent.len() as u64)?;
        recorder.summary.opaque_dirs.insert(parent.clone());
        return Ok(Some(parent));
    }
    if name.starts_with(".wh..wh.") {
        return Ok(None);
    }
    if let Some(hidden) = name.strip_prefix(".wh.") {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            recorder.unsafe_entry(raw_path);
            return Ok(None);
        }
        let hidden = join(parent, hidden);
        recorder.record(hidden.clone(), Node::Whiteout)?;
        return Ok(Some(hidden));
    }
    let node = match entry.header().entry_type() {
        EntryType::Directory => {
            if path.split('/').count() > RECORDED_DIRECTORY_DEPTH {
                return Ok(None);
            }
            Node::Dir
        }
        EntryType::Symlink => match entry.link_name_bytes() {
            Some(target) => match std::str::from_utf8(&target) {
                Ok(target) => Node::Symlink {
                    target: target.to_string(),
                },
                Err(_) => Node::Other,
            },
            None => Node::Other,
        },
        EntryType::Link => {
            let target = entry.link_name_bytes().map(|target| target.into_owned());
            let target = match target.as_deref().map(normalize_entry_path) {
                Some(EntryPath::Path(target)) => target,
                Some(EntryPath::Unsafe) => {
                    recorder.unsafe_entry(raw_path);
                    return Ok(None);
                }
                _ => return Ok(None),
            };
            match recorder.summary.nodes.get(&target) {
                Some(node @ (Node::File { .. } | Node::Symlink { .. })) => node.clone(),
                _ if keeps_text(name) || records_presence(name) => Node::File {
                    content: FileContent::NotRead,
                },
                _ => return Ok(None),
            }
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            if keeps_text(name) {
                let size = entry.size();
                let content = if size > recorder.limits.max_os_release_bytes {
                    FileContent::TooLarge { size }
                } else {
                    let mut bytes = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut bytes)
                        .map_err(|error| context.classify(error))?;
                    FileContent::Text {
                        text: String::from_utf8_lossy(&bytes).into_owned(),
                    }
                };
                Node::File { content }
            } else if records_presence(name) {
                Node::File {
                    content: FileContent::NotRead,
                }
            } else {
                return Ok(None);
            }
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo
            if keeps_text(name) || records_presence(name) =>
        {
            Node::Other
        }
        _ => return Ok(None),
    };
    recorder.record(path.clone(), node)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_normalized_or_refused() {
        let cases: &[(&[u8], EntryPath)] = &[
            (b"etc/os-release", EntryPath::Path("etc/os-release".into())),
            (
                b"./etc/os-release",
                EntryPath::Path("etc/os-release".into()),
            ),
            (
                b"/etc//./os-release",
                EntryPath::Path("etc/os-release".into()),
            ),
            (b"usr/lib/", EntryPath::Path("usr/lib".into())),
            (b"./", EntryPath::Root),
            (b"/", EntryPath::Root),
            (b"../../etc/os-release", EntryPath::Unsafe),
            (b"etc/../../os-release", EntryPath::Unsafe),
            (b"etc/..", EntryPath::Unsafe),
            (b"etc/\xff", EntryPath::NotUtf8),
        ];
        for (raw, expect) in cases {
            assert_eq!(
                normalize_entry_path(raw),
                *expect,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn names_that_are_kept() {
        for name in ["os-release", "os-release-container", "lsb-release"] {
            assert!(keeps_text(name), "{name}");
        }
        for name in [
            "ld-linux-x86-64.so.2",
            "ld-musl-x86_64.so.1",
            "ld64.so.2",
            "libc.so.6",
            "libc.musl-x86_64.so.1",
            "libc.so",
        ] {
            assert!(records_presence(name), "{name}");
        }
        for name in ["passwd", "ld-config", "libcrypt.so.1", "libcap.so.2"] {
            assert!(!keeps_text(name) && !records_presence(name), "{name}");
        }
    }
}
