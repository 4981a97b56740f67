//! One layer's file list, for `berth diff`: each entry's path, kind, size and mode (whiteouts as
//! removals), read as a stream within the same limits as a scan (entries, bytes, time), with at
//! most `max_files` entries kept; the rest is counted, never stored. Nothing is written anywhere.

use std::io::{self, BufReader, Read};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::decode::{self, Context, Meter};
use crate::summary::{EntryPath, Skipping, TAR_BUFFER, join, normalize_entry_path, split_parent};
use crate::{LayerDescriptor, LayerError, ScanConfig};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    HardLink,
    /// A whiteout: the layer removes this path from the layers below.
    Removed,
    /// An opaque directory marker: the layer hides everything below this directory.
    Opaque,
    Other,
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits as the tar header has them (`0o755`).
    pub mode: u32,
    /// A link's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A regular file's content, `sha256:<hex>`: two files of one size differ by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A layer's entries, up to the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<FileEntry>,
    /// Entries past `max_files`: counted, not kept.
    pub omitted: u64,
    /// Entries with a `..` component: skipped, as a scan skips them.
    pub unsafe_entries: u64,
}

/// Reads the whole layer (so a verifying reader checks its digest at the end) and lists it.
pub fn list_layer<R: Read>(
    descriptor: &LayerDescriptor,
    blob: R,
    config: &ScanConfig<'_>,
    max_files: usize,
) -> Result<Listing, LayerError> {
    let layer = &descriptor.digest;
    let limits = &config.limits;
    let context = Context {
        layer,
        limits,
        clock: config.clock,
        started: (config.clock)(),
        meter: Rc::new(Meter::default()),
    };
    let classify = |error: io::Error| context.classify(error);
    let (_, stream) = decode::tar_stream(blob, descriptor.media_type.as_deref(), &context)?;
    let mut archive = tar::Archive::new(Skipping {
        inner: BufReader::with_capacity(TAR_BUFFER, stream),
        position: 0,
    });
    let mut listing = Listing::default();
    let mut entries = 0u64;
    for entry in archive.entries_with_seek().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(LayerError::TooManyEntries {
                layer: layer.clone(),
                limit: limits.max_entries,
            });
        }
        if context.out_of_time() {
            return Err(context.too_slow());
        }
        let path = match normalize_entry_path(&entry.path_bytes()) {
            EntryPath::Path(path) => path,
            EntryPath::Unsafe => {
                listing.unsafe_entries += 1;
                continue;
            }
            EntryPath::Root | EntryPath::NotUtf8 => continue,
        };
        if listing.entries.len() >= max_files {
            listing.omitted += 1;
            continue;
        }
        let header = entry.header().clone();
        let (parent, name) = split_parent(&path);
        let (path, kind) = if name == ".wh..wh..opq" {
            (parent.to_string(), FileKind::Opaque)
        } else if name.starts_with(".wh..wh.") {
            continue;
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            (join(parent, hidden), FileKind::Removed)
        } else {
            let kind = match header.entry_type() {
                EntryType::Regular | EntryType::Continuous => FileKind::File,
                EntryType::Directory => FileKind::Dir,
                EntryType::Symlink => FileKind::Symlink,
                EntryType::Link => FileKind::HardLink,
                _ => FileKind::Other,
            };
            (path, kind)
        };
        let link = entry
            .link_name_bytes()
            .map(|target| String::from_utf8_lossy(&target).into_owned());
        let content = if kind == FileKind::File {
            let mut hasher = Sha256::new();
            io::copy(&mut entry, &mut hasher).map_err(classify)?;
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            Some(format!("sha256:{hex}"))
        } else {
            None
        };
        listing.entries.push(FileEntry {
            path,
            kind,
            size: if kind == FileKind::File {
                header.size().unwrap_or(0)
            } else {
                0
            },
            mode: header.mode().unwrap_or(0) & 0o7777,
            link,
            content,
        });
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(classify)?;
    Ok(listing)
}
