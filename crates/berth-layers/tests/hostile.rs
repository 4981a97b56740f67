//! Hostile layers: each is rejected within its limit, or read without leaving the image.

mod support;

use std::io::{self, Read};
use std::time::{Duration, Instant};

use berth_core::osrelease::Architecture;
use berth_layers::{LayerDescriptor, LayerError, Limits, NoCache, ScanConfig, summarize_layer};
use support::*;

/// Scans with `limits` and renders the result (or the error).
fn scan_limited(blobs: &[Vec<u8>], limits: Limits) -> String {
    let clock = still;
    let config = ScanConfig {
        limits,
        ..ScanConfig::new(&clock)
    };
    render(&scan_with(blobs, &Architecture::Amd64, &mut NoCache, &config).result)
}

fn layer0() -> String {
    layer_digest(0).to_string()
}

#[test]
fn path_traversal_entries_are_never_os_release() {
    let hostile = Tar::new()
        .raw_file(b"../../etc/os-release", ALPINE_3_20.as_bytes())
        .raw_file(b"./../etc/os-release", ALPINE_3_20.as_bytes())
        .raw_file(b"/etc/../../etc/os-release", ALPINE_3_20.as_bytes())
        .raw_hardlink(b"etc/os-release", b"../../../host/os-release")
        .file("usr/lib/os-release", DEBIAN_12.as_bytes());
    assert_lines(
        &scan(&[gzip(&hostile.bytes())]),
        "identity: debian-12-amd64
         os-release: usr/lib/os-release -> usr/lib/os-release in layer 0
         libc: unknown []
         layers: read
         warning: 4 unsafe entries in layer 0: ../../etc/os-release ./../etc/os-release /etc/../../etc/os-release etc/os-release",
    );
}

#[test]
fn symlinks_that_point_out_of_the_image_stay_inside_it() {
    // Clamped at the root: `host/os-release` inside the image, which has none.
    let escape = Tar::new()
        .raw_symlink(b"etc/os-release", b"../../../../host/os-release")
        .file("usr/lib/os-release", DEBIAN_12.as_bytes());
    assert_lines(
        &scan(&[gzip(&escape.bytes())]),
        "identity: debian-12-amd64
         os-release: usr/lib/os-release -> usr/lib/os-release in layer 0
         libc: unknown []
         layers: read",
    );
    // The same escape lands on the image's own file when it has one there.
    let planted = Tar::new()
        .raw_symlink(b"/etc/os-release", b"/../../../host/os-release")
        .file("host/os-release", ALPINE_3_20.as_bytes());
    assert_lines(
        &scan(&[gzip(&planted.bytes())]),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> host/os-release in layer 0
         libc: unknown []
         layers: read",
    );
    // A loader symlink escaping through a directory symlink to `/`.
    let through_root = Tar::new()
        .symlink("lib64", "../../../../")
        .file("ld-linux-x86-64.so.2", b"ELF")
        .file("etc/os-release", DEBIAN_12.as_bytes());
    assert_lines(
        &scan(&[gzip(&through_root.bytes())]),
        "identity: debian-12-amd64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> ld-linux-x86-64.so.2]
         layers: stopped",
    );
}

#[test]
fn a_decompression_bomb_is_stopped_at_the_byte_limit() {
    let zeros = vec![0u8; 10 << 20];
    let bomb = gzip(&Tar::new().file("zeros", &zeros).bytes());
    assert!(bomb.len() < 64 << 10, "a bomb: {} bytes", bomb.len());
    let limits = Limits {
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        scan_limited(&[bomb], limits.clone()),
        format!(
            "error: layer {}: more than 1048576 bytes once decompressed",
            layer0()
        )
    );
    // Zeros after the end of the archive count too: a layer read whole is read to its end.
    let mut trailing = debian_like(0).bytes();
    trailing.extend(&zeros);
    let clock = still;
    let whole = ScanConfig {
        limits,
        stop_early: false,
        clock: &clock,
    };
    assert_eq!(
        render(
            &scan_with(
                &[gzip(&trailing)],
                &Architecture::Amd64,
                &mut NoCache,
                &whole
            )
            .result
        ),
        format!(
            "error: layer {}: more than 1048576 bytes once decompressed",
            layer0()
        )
    );
}

#[test]
fn many_tiny_entries_are_stopped_at_the_entry_limit() {
    let many = |count: usize| {
        let mut tar = Tar::new();
        for index in 0..count {
            tar = tar.file(&format!("f/{index}"), b"");
        }
        gzip(&tar.bytes())
    };
    let limits = Limits {
        max_entries: 1000,
        ..Limits::default()
    };
    assert_eq!(
        scan_limited(&[many(1001)], limits.clone()),
        format!("error: layer {}: more than 1000 tar entries", layer0())
    );
    assert!(scan_limited(&[many(1000)], limits).starts_with("identity: -"));
}

/// A tar of `count` empty files `f/0000000`, `f/0000001`, ..., generated as it is read:
/// 512 bytes per entry, never held in memory whole. Headers are patched from a template so the
/// generator costs little next to what it tests.
struct ManyEntries {
    count: u64,
    next: u64,
    template: [u8; 512],
    /// The template's checksum with the name digits all `0`.
    base_checksum: u32,
    block: [u8; 512],
    at: usize,
    ended: bool,
}

const DIGITS: std::ops::Range<usize> = 2..9;

impl ManyEntries {
    fn new(count: u64) -> ManyEntries {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_path("f/0000000").expect("a valid path");
        header.set_cksum();
        let template: [u8; 512] = *header.as_bytes();
        let base_checksum = header.cksum().expect("a checksum");
        ManyEntries {
            count,
            next: 0,
            template,
            base_checksum,
            block: [0; 512],
            at: 512,
            ended: false,
        }
    }

    fn fill_block(&mut self) -> bool {
        if self.next == self.count {
            if self.ended {
                return false;
            }
            // End of archive: a zero block is enough for the reader.
            self.ended = true;
            self.block = [0; 512];
            self.at = 0;
            return true;
        }
        self.at = 0;
        self.block = self.template;
        let mut number = self.next;
        let mut checksum = self.base_checksum;
        for at in DIGITS.rev() {
            let digit = (number % 10) as u8;
            number /= 10;
            self.block[at] = b'0' + digit;
            checksum += u32::from(digit);
        }
        // Checksum field: six octal digits, NUL, space.
        let octal = format!("{checksum:06o}");
        self.block[148..154].copy_from_slice(octal.as_bytes());
        self.block[154] = 0;
        self.block[155] = b' ';
        self.next += 1;
        true
    }
}

impl Read for ManyEntries {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            if self.at == 512 && !self.fill_block() {
                break;
            }
            let n = (buf.len() - written).min(512 - self.at);
            buf[written..written + n].copy_from_slice(&self.block[self.at..self.at + n]);
            self.at += n;
            written += n;
        }
        Ok(written)
    }
}

#[test]
fn a_million_tiny_entries_are_stopped_by_the_default_limit() {
    let limits = Limits::default();
    let clock = still;
    let config = ScanConfig::new(&clock);
    let descriptor = LayerDescriptor {
        digest: layer_digest(0),
        media_type: None,
        size: None,
    };
    let started = Instant::now();
    let result = summarize_layer(
        &descriptor,
        ManyEntries::new(limits.max_entries + 1),
        &config,
    );
    let took = started.elapsed();
    match result {
        Err(LayerError::TooManyEntries { limit, .. }) => assert_eq!(limit, 1_000_000),
        other => panic!("expected TooManyEntries, got {other:?}"),
    }
    eprintln!("1,000,001 entries rejected in {took:?}");
}

#[test]
fn a_zstd_window_over_the_limit_is_refused_before_decoding() {
    let tar = debian_like(0).bytes();
    assert_eq!(
        scan(&[zstd_window(&tar, 28)]),
        format!(
            "error: layer {}: zstd window over the limit of 2^27 bytes",
            layer0()
        )
    );
    let clock = still;
    let config = ScanConfig::new(&clock);
    let descriptor = LayerDescriptor {
        digest: layer_digest(0),
        media_type: None,
        size: None,
    };
    match summarize_layer(&descriptor, zstd_window(&tar, 28).as_slice(), &config) {
        Err(LayerError::ZstdWindowTooLarge {
            window_size,
            window_log_max,
            ..
        }) => assert_eq!((window_size, window_log_max), (Some(1 << 28), 27)),
        other => panic!("expected ZstdWindowTooLarge, got {other:?}"),
    }
    // At the limit: read.
    assert!(scan(&[zstd_window(&tar, 27)]).starts_with("identity: debian-12-amd64"));
    // A later frame with a larger window is refused by the decoder.
    let mut frames = zstd_window(&tar, 20);
    frames.extend(zstd_window(&[0; 4096], 29));
    let whole = ScanConfig {
        stop_early: false,
        ..ScanConfig::new(&clock)
    };
    match summarize_layer(&descriptor, frames.as_slice(), &whole) {
        Err(LayerError::ZstdWindowTooLarge { window_size, .. }) => assert_eq!(window_size, None),
        other => panic!("expected ZstdWindowTooLarge, got {other:?}"),
    }
}

#[test]
fn an_os_release_over_its_limit_is_refused_only_when_used() {
    let mut big = DEBIAN_12.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b'#', 100 << 10));
    let oversized = Tar::new()
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("usr/lib/os-release", &big);
    assert_eq!(
        scan(&[gzip(&oversized.bytes())]),
        format!(
            "error: layer {}: os-release usr/lib/os-release is {} bytes, over the limit of 65536",
            layer0(),
            big.len()
        )
    );
    // A large file named like it elsewhere does not matter.
    let elsewhere = Tar::new()
        .file("usr/share/doc/release-notes", &big)
        .file("etc/os-release", DEBIAN_12.as_bytes());
    assert!(scan(&[gzip(&elsewhere.bytes())]).starts_with("identity: debian-12-amd64"));
}

#[test]
fn a_slow_layer_is_stopped_at_the_time_limit() {
    let blob = gzip(&debian_like(4 << 20).bytes());
    let clock = ticking(Duration::from_secs(1));
    let config = ScanConfig {
        limits: Limits {
            max_layer_time: Duration::from_secs(3),
            ..Limits::default()
        },
        stop_early: false,
        clock: &clock,
    };
    assert_eq!(
        render(&scan_with(&[blob], &Architecture::Amd64, &mut NoCache, &config).result),
        format!("error: layer {}: not read within 3s", layer0())
    );
}

#[test]
fn a_summary_that_would_grow_too_large_is_refused() {
    let mut tar = Tar::new();
    for index in 0..2000 {
        tar = tar.symlink(&format!("links/{index}"), "/usr/lib/os-release");
    }
    let limits = Limits {
        max_summary_bytes: 64 << 10,
        ..Limits::default()
    };
    assert_eq!(
        scan_limited(&[gzip(&tar.bytes())], limits),
        format!(
            "error: layer {}: its summary would keep more than 65536 bytes",
            layer0()
        )
    );
}

#[test]
fn malformed_unsupported_and_failing_blobs_are_told_apart() {
    let clock = still;
    let config = ScanConfig::new(&clock);
    let descriptor = |media_type: Option<&str>| LayerDescriptor {
        digest: layer_digest(0),
        media_type: media_type.map(str::to_string),
        size: None,
    };
    let tar = debian_like(0).bytes();
    let kind = |result: Result<berth_layers::LayerSummary, LayerError>| match result {
        Ok(_) => "ok".to_string(),
        Err(LayerError::Malformed { .. }) => "malformed".to_string(),
        Err(LayerError::Unsupported { what, .. }) => format!("unsupported {what}"),
        Err(LayerError::Read { .. }) => "read".to_string(),
        Err(other) => format!("{other}"),
    };

    let mut corrupt = gzip(&tar);
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16].fill(0xff);
    let truncated = gzip(&tar)[..200].to_vec();
    let mut bad_checksum = tar.clone();
    bad_checksum[0] ^= 1;
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (corrupt, None, "malformed"),
        (truncated, None, "malformed"),
        (bad_checksum, None, "malformed"),
        (
            b"\xfd7zXZ\x00rest".to_vec(),
            None,
            "unsupported compression (xz or bzip2; OCI layers are gzip, zstd or plain tar)",
        ),
        (
            gzip(&tar),
            Some("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
            "unsupported media type application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        ),
        (Vec::new(), None, "ok"),
    ];
    for (blob, media_type, expect) in cases {
        assert_eq!(
            kind(summarize_layer(
                &descriptor(media_type),
                blob.as_slice(),
                &config
            )),
            expect
        );
    }

    /// A blob whose reader fails part way, as a dropped connection does.
    struct Failing(Vec<u8>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let n = buf.len().min(self.0.len()).min(100);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }
    let half = gzip(&tar)[..300].to_vec();
    assert_eq!(
        kind(summarize_layer(&descriptor(None), Failing(half), &config)),
        "read"
    );
}
