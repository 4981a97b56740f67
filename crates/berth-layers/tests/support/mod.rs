//! Test helpers shared by the integration tests: layers built in memory, compressed as
//! registries serve them, scanned, and the result rendered as text to compare.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use berth_core::Digest;
use berth_core::osrelease::Architecture;
use berth_layers::{
    ImageScan, LayerCache, LayerDescriptor, LayerError, LayerSummary, NoCache, ReadHow, ScanConfig,
    ScanWarning, scan_image,
};

pub const DEBIAN_12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
NAME=\"Debian GNU/Linux\"
VERSION_ID=\"12\"
VERSION=\"12 (bookworm)\"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL=\"https://www.debian.org/\"
SUPPORT_URL=\"https://www.debian.org/support\"
BUG_REPORT_URL=\"https://bugs.debian.org/\"
";
pub const DEBIAN_13: &str = "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n";
pub const ALPINE_3_20: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n";

/// A tar layer under construction.
pub struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_700_000_000);
        header
    }

    pub fn file(mut self, path: &str, content: &[u8]) -> Tar {
        let mut header = Tar::header(tar::EntryType::Regular, content.len() as u64);
        self.builder
            .append_data(&mut header, path, content)
            .expect("append file");
        self
    }

    pub fn dir(mut self, path: &str) -> Tar {
        let mut header = Tar::header(tar::EntryType::Directory, 0);
        self.builder
            .append_data(&mut header, path, io::empty())
            .expect("append dir");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Tar {
        let mut header = Tar::header(tar::EntryType::Symlink, 0);
        self.builder
            .append_link(&mut header, path, target)
            .expect("append symlink");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Tar {
        let mut header = Tar::header(tar::EntryType::Link, 0);
        self.builder
            .append_link(&mut header, path, target)
            .expect("append hard link");
        self
    }

    /// `.wh.name` beside `path`'s name: deletes `path` from lower layers.
    pub fn whiteout(self, path: &str) -> Tar {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let whiteout = if parent.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{parent}/.wh.{name}")
        };
        self.file(&whiteout, b"")
    }

    /// `.wh..wh..opq` in `dir`: hides lower layers' contents of `dir`.
    pub fn opaque(self, dir: &str) -> Tar {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    /// A regular file whose header name is written as given, bypassing the `tar` crate's
    /// checks (it refuses `..`): what a hostile layer can contain.
    pub fn raw_file(mut self, name: &[u8], content: &[u8]) -> Tar {
        self.raw(name, tar::EntryType::Regular, None, content);
        self
    }

    /// A symlink written as given (absolute or escaping targets).
    pub fn raw_symlink(mut self, name: &[u8], target: &[u8]) -> Tar {
        self.raw(name, tar::EntryType::Symlink, Some(target), b"");
        self
    }

    pub fn raw_hardlink(mut self, name: &[u8], target: &[u8]) -> Tar {
        self.raw(name, tar::EntryType::Link, Some(target), b"");
        self
    }

    fn raw(&mut self, name: &[u8], kind: tar::EntryType, link: Option<&[u8]>, content: &[u8]) {
        let mut header = Tar::header(kind, content.len() as u64);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        self.builder.append(&header, content).expect("append raw");
    }

    pub fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().expect("finish tar")
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

/// zstd with a window of 2^`window_log` declared in the frame header (content size unknown,
/// so the encoder cannot shrink it).
pub fn zstd_window(bytes: &[u8], window_log: u32) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    encoder.window_log(window_log).expect("window log");
    encoder.write_all(bytes).expect("zstd");
    encoder.finish().expect("zstd")
}

/// The digest of layer `index` in tests: distinct, valid, readable in failures.
pub fn layer_digest(index: usize) -> Digest {
    Digest::parse(&format!("sha256:{index:064x}")).expect("valid digest")
}

/// Layer descriptors for blobs given bottom first.
pub fn descriptors(count: usize) -> Vec<LayerDescriptor> {
    (0..count)
        .map(|index| LayerDescriptor {
            digest: layer_digest(index),
            media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip".to_string()),
            size: None,
        })
        .collect()
}

/// A clock that never moves.
pub fn still() -> Duration {
    Duration::ZERO
}

/// A clock that moves `step` each time it is read.
pub fn ticking(step: Duration) -> impl Fn() -> Duration {
    let now = Cell::new(Duration::ZERO);
    move || {
        now.set(now.get() + step);
        now.get()
    }
}

/// A scan of blobs given bottom first, and which layers were opened.
pub struct Scanned {
    pub result: Result<ImageScan, LayerError>,
    pub opened: Vec<usize>,
}

pub fn scan_with(
    blobs: &[Vec<u8>],
    architecture: &Architecture,
    cache: &mut dyn LayerCache,
    config: &ScanConfig<'_>,
) -> Scanned {
    let layers = descriptors(blobs.len());
    let mut opened = Vec::new();
    let result = scan_image(
        &layers,
        architecture,
        |descriptor| {
            let index = layers
                .iter()
                .position(|layer| layer.digest == descriptor.digest)
                .expect("a layer of this image");
            opened.push(index);
            Ok(io::Cursor::new(blobs[index].clone()))
        },
        cache,
        config,
    );
    Scanned { result, opened }
}

/// Scans amd64 layers (bottom first) with default limits and renders the result.
pub fn scan(blobs: &[Vec<u8>]) -> String {
    let clock = still;
    let config = ScanConfig::new(&clock);
    render(&scan_with(blobs, &Architecture::Amd64, &mut NoCache, &config).result)
}

/// Like [`scan`], for another architecture.
pub fn scan_for(blobs: &[Vec<u8>], architecture: Architecture) -> String {
    let clock = still;
    let config = ScanConfig::new(&clock);
    render(&scan_with(blobs, &architecture, &mut NoCache, &config).result)
}

fn layer_index(digest: &Digest) -> String {
    let hex = digest.hex().trim_start_matches('0');
    if hex.is_empty() {
        "0".to_string()
    } else {
        hex.to_string()
    }
}

/// The scan as lines: identity, os-release, libc, layers, warnings; or `error: ...`.
pub fn render(result: &Result<ImageScan, LayerError>) -> String {
    let scan = match result {
        Ok(scan) => scan,
        Err(error) => return format!("error: {error}"),
    };
    let mut lines = Vec::new();
    lines.push(format!(
        "identity: {}",
        scan.identity
            .as_ref()
            .map_or("-".to_string(), |id| id.to_string())
    ));
    lines.push(match &scan.os_release {
        Some(found) => format!(
            "os-release: {} -> {} in layer {}",
            found.file.path,
            found.file.resolved,
            layer_index(&found.file.layer)
        ),
        None => "os-release: -".to_string(),
    });
    let loaders: Vec<String> = scan
        .loaders
        .iter()
        .map(|loader| format!("{} -> {}", loader.path, loader.resolved))
        .collect();
    lines.push(format!("libc: {:?} [{}]", scan.libc, loaders.join(", ")).to_lowercase());
    let layers: Vec<String> = scan
        .layers
        .iter()
        .map(|layer| match &layer.how {
            ReadHow::Cached => "cached".to_string(),
            ReadHow::Read { complete: true, .. } => "read".to_string(),
            ReadHow::Read {
                complete: false, ..
            } => "stopped".to_string(),
            ReadHow::Skipped => "skipped".to_string(),
        })
        .collect();
    lines.push(format!("layers: {}", layers.join(" ")));
    for warning in &scan.warnings {
        lines.push(match warning {
            ScanWarning::UnsafeEntries {
                layer,
                count,
                examples,
            } => format!(
                "warning: {count} unsafe entries in layer {}: {}",
                layer_index(layer),
                examples.join(" ")
            ),
            ScanWarning::SymlinkLoop { path } => format!("warning: symlink loop at {path}"),
            ScanWarning::OsReleaseUnreadable { file } => {
                format!("warning: os-release {} not kept", file.resolved)
            }
        });
    }
    lines.join("\n")
}

/// Compares rendered text, line by line, ignoring the indentation of `expect`.
pub fn assert_lines(got: &str, expect: &str) {
    let expect: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let got_lines: Vec<&str> = got.lines().collect();
    assert_eq!(got_lines, expect, "\n--- got ---\n{got}\n");
}

/// A cache that counts what it is given.
#[derive(Default)]
pub struct CountingCache {
    pub map: HashMap<Digest, LayerSummary>,
    pub puts: usize,
}

impl LayerCache for CountingCache {
    fn get(&self, layer: &Digest) -> Option<LayerSummary> {
        self.map.get(layer).cloned()
    }

    fn put(&mut self, summary: LayerSummary) {
        self.puts += 1;
        self.map.insert(summary.digest.clone(), summary);
    }
}

/// A Debian bookworm base layer as debootstrap makes it (merged /usr, os-release and the
/// loader reached through symlinks), in `tar --sort=name` order, with `filler` bytes of
/// `usr/share` after the loader.
pub fn debian_like(filler: usize) -> Tar {
    Tar::new()
        .symlink("bin", "usr/bin")
        .dir("etc")
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")
        .symlink("lib", "usr/lib")
        .symlink("lib64", "usr/lib64")
        .dir("usr")
        .dir("usr/bin")
        .symlink("usr/bin/ld.so", "/lib64/ld-linux-x86-64.so.2")
        .dir("usr/lib")
        .file("usr/lib/os-release", DEBIAN_12.as_bytes())
        .dir("usr/lib/x86_64-linux-gnu")
        .file(
            "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            &[0x7f; 2048],
        )
        .file("usr/lib/x86_64-linux-gnu/libc.so.6", &[0x7f; 4096])
        .dir("usr/lib64")
        .symlink(
            "usr/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        )
        .dir("usr/share")
        .file("usr/share/filler", &pseudo_random(filler))
        .dir("var")
}

/// Bytes that do not compress, so a test can tell how much of a blob was read.
pub fn pseudo_random(length: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
