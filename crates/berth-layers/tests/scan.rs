//! Scanning images built in memory: os-release through symlinks and layers, whiteouts, opaque
//! directories, compression, libc families, early stopping and the cache.

mod support;

use berth_core::osrelease::Architecture;
use berth_layers::{LayerDescriptor, NoCache, ReadHow, ScanConfig, summarize_layer};
use support::*;

#[test]
fn debian_is_identified_through_its_os_release_symlink() {
    let blob = gzip(&debian_like(1 << 20).bytes());
    assert_lines(
        &scan(&[blob]),
        "identity: debian-12-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped",
    );
}

#[test]
fn reading_stops_once_the_answer_is_known() {
    let blob = gzip(&debian_like(1 << 20).bytes());
    let clock = still;
    let config = ScanConfig::new(&clock);
    let scanned = scan_with(
        std::slice::from_ref(&blob),
        &Architecture::Amd64,
        &mut NoCache,
        &config,
    );
    let scan = scanned.result.expect("scan");
    let ReadHow::Read {
        complete: false,
        compressed_bytes,
        ..
    } = scan.layers[0].how
    else {
        panic!("expected a partial read: {:?}", scan.layers[0]);
    };
    // The 1 MiB of incompressible filler after the loader is not read.
    assert!(
        compressed_bytes < blob.len() as u64 / 4,
        "read {compressed_bytes} of {} bytes",
        blob.len()
    );

    let whole = ScanConfig {
        stop_early: false,
        ..ScanConfig::new(&clock)
    };
    let scanned = scan_with(
        std::slice::from_ref(&blob),
        &Architecture::Amd64,
        &mut NoCache,
        &whole,
    );
    let scan = scanned.result.expect("scan");
    assert_eq!(
        scan.layers[0].how,
        ReadHow::Read {
            complete: true,
            entries: 19,
            compressed_bytes: blob.len() as u64,
            decompressed_bytes: debian_like(1 << 20).bytes().len() as u64,
        }
    );
    assert_eq!(
        scan.identity.map(|id| id.id),
        Some("debian-12-amd64".to_string())
    );
}

#[test]
fn symlink_in_an_upper_layer_reaches_its_target_in_a_lower_one() {
    let base = Tar::new()
        .file("usr/lib/os-release", DEBIAN_12.as_bytes())
        .file("lib64/ld-linux-x86-64.so.2", b"ELF");
    let upper = Tar::new().symlink("etc/os-release", "../usr/lib/os-release");
    assert_lines(
        &scan(&[gzip(&base.bytes()), gzip(&upper.bytes())]),
        "identity: debian-12-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> lib64/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
}

#[test]
fn an_upper_layer_that_replaces_os_release_wins() {
    let base = gzip(&debian_like(0).bytes());
    // The symlink's target replaced.
    let target = Tar::new().file("usr/lib/os-release", DEBIAN_13.as_bytes());
    assert_lines(
        &scan(&[base.clone(), gzip(&target.bytes())]),
        "identity: debian-13-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 1
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
    // The symlink itself replaced by a file.
    let file = Tar::new().file("etc/os-release", ALPINE_3_20.as_bytes());
    assert_lines(
        &scan(&[base, gzip(&file.bytes())]),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> etc/os-release in layer 1
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: read read",
    );
}

#[test]
fn upper_layers_that_settle_everything_spare_the_lower_ones() {
    let base = gzip(&debian_like(0).bytes());
    let alpine = Tar::new()
        .file("etc/os-release", ALPINE_3_20.as_bytes())
        .file("lib/ld-musl-x86_64.so.1", b"ELF");
    let clock = still;
    let config = ScanConfig::new(&clock);
    let scanned = scan_with(
        &[base, gzip(&alpine.bytes())],
        &Architecture::Amd64,
        &mut NoCache,
        &config,
    );
    assert_eq!(scanned.opened, [1], "only the top layer is opened");
    assert_lines(
        &render(&scanned.result),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> etc/os-release in layer 1
         libc: musl [lib/ld-musl-x86_64.so.1 -> lib/ld-musl-x86_64.so.1]
         layers: skipped stopped",
    );
}

#[test]
fn whiteouts_delete_os_release_from_lower_layers() {
    let base = gzip(&debian_like(0).bytes());
    let symlink_deleted = Tar::new().whiteout("etc/os-release");
    assert_lines(
        &scan(&[base.clone(), gzip(&symlink_deleted.bytes())]),
        "identity: debian-12-amd64
         os-release: usr/lib/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
    let target_deleted = Tar::new().whiteout("usr/lib/os-release");
    assert_lines(
        &scan(&[base.clone(), gzip(&target_deleted.bytes())]),
        "identity: -
         os-release: -
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
    // Deleted, then written again by a layer above.
    let rewritten = Tar::new().file("usr/lib/os-release", DEBIAN_13.as_bytes());
    assert_lines(
        &scan(&[
            base,
            gzip(&target_deleted_again()),
            gzip(&rewritten.bytes()),
        ]),
        "identity: debian-13-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 2
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped read read",
    );
}

fn target_deleted_again() -> Vec<u8> {
    Tar::new().whiteout("usr/lib/os-release").bytes()
}

#[test]
fn opaque_directories_hide_lower_contents() {
    let base = Tar::new()
        .file("etc/os-release", ALPINE_3_20.as_bytes())
        .file("usr/lib/os-release", DEBIAN_12.as_bytes())
        .file("lib64/ld-linux-x86-64.so.2", b"ELF");
    let base = gzip(&base.bytes());
    let opaque_etc = Tar::new().opaque("etc").file("etc/hostname", b"box\n");
    assert_lines(
        &scan(&[base.clone(), gzip(&opaque_etc.bytes())]),
        "identity: debian-12-amd64
         os-release: usr/lib/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> lib64/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
    let opaque_with_own = Tar::new()
        .opaque("etc")
        .file("etc/os-release", DEBIAN_13.as_bytes());
    assert_lines(
        &scan(&[base.clone(), gzip(&opaque_with_own.bytes())]),
        "identity: debian-13-amd64
         os-release: etc/os-release -> etc/os-release in layer 1
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> lib64/ld-linux-x86-64.so.2]
         layers: stopped read",
    );
    let opaque_lib64 = Tar::new().opaque("lib64");
    assert_lines(
        &scan(&[base, gzip(&opaque_lib64.bytes())]),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: unknown []
         layers: read read",
    );
}

#[test]
fn gzip_zstd_and_plain_tar_read_alike_whatever_the_media_type_says() {
    let tar = debian_like(4096).bytes();
    let expect = "identity: debian-12-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: stopped";
    // The descriptors all say `+gzip`: the bytes decide.
    for blob in [gzip(&tar), zstd(&tar), tar.clone()] {
        assert_lines(&scan(&[blob]), expect);
    }
    // Concatenated gzip members are one stream.
    let half = tar.len() / 2;
    let mut members = gzip(&tar[..half]);
    members.extend(gzip(&tar[half..]));
    assert_lines(&scan(&[members]), expect);

    let clock = still;
    let config = ScanConfig::new(&clock);
    for (blob, compression) in [
        (gzip(&tar), "gzip"),
        (zstd(&tar), "zstd"),
        (tar.clone(), "none"),
    ] {
        let descriptor = LayerDescriptor {
            digest: layer_digest(7),
            media_type: None,
            size: None,
        };
        let summary = summarize_layer(&descriptor, blob.as_slice(), &config).expect("summary");
        assert!(summary.complete);
        assert_eq!(
            serde_json::to_value(summary.compression).expect("json"),
            compression
        );
        assert_eq!(summary.decompressed_bytes, tar.len() as u64);
    }
}

#[test]
fn libc_family_by_loader_and_distribution() {
    let alpine_arm64 = Tar::new()
        .file("etc/os-release", ALPINE_3_20.as_bytes())
        .file("lib/ld-musl-aarch64.so.1", b"ELF")
        .symlink("lib/libc.musl-aarch64.so.1", "ld-musl-aarch64.so.1");
    assert_lines(
        &scan_for(&[gzip(&alpine_arm64.bytes())], Architecture::Arm64),
        "identity: alpine-3.20-arm64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: musl [lib/ld-musl-aarch64.so.1 -> lib/ld-musl-aarch64.so.1]
         layers: stopped",
    );
    // Debian with the musl package: both loaders, Debian's libc wins. (dpkg wrote the
    // package's `/lib/ld-musl-x86_64.so.1` through the merged-/usr `lib` symlink.)
    let debian_with_musl = Tar::new()
        .symlink(
            "usr/lib/ld-musl-x86_64.so.1",
            "/usr/lib/x86_64-linux-musl/libc.so",
        )
        .file("usr/lib/x86_64-linux-musl/libc.so", b"ELF");
    assert_lines(
        &scan(&[gzip(&debian_like(0).bytes()), gzip(&debian_with_musl.bytes())]),
        "identity: debian-12-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, lib/ld-musl-x86_64.so.1 -> usr/lib/x86_64-linux-musl/libc.so]
         layers: stopped read",
    );
    // Alpine with libc6-compat: a glibc loader name too; Alpine's musl wins. Read whole, so
    // both are seen (stopping early, musl on Alpine settles it at once).
    let alpine_compat = Tar::new()
        .file("etc/os-release", ALPINE_3_20.as_bytes())
        .file("lib/ld-musl-x86_64.so.1", b"ELF")
        .symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
        .symlink("lib64/ld-linux-x86-64.so.2", "/lib/libc.musl-x86_64.so.1");
    let clock = still;
    let whole = ScanConfig {
        stop_early: false,
        ..ScanConfig::new(&clock)
    };
    let blobs = [gzip(&alpine_compat.bytes())];
    assert_lines(
        &render(&scan_with(&blobs, &Architecture::Amd64, &mut NoCache, &whole).result),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: musl [lib64/ld-linux-x86-64.so.2 -> lib/ld-musl-x86_64.so.1, lib/ld-musl-x86_64.so.1 -> lib/ld-musl-x86_64.so.1]
         layers: read",
    );
    assert_lines(
        &scan(&blobs),
        "identity: alpine-3.20-amd64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: musl [lib/ld-musl-x86_64.so.1 -> lib/ld-musl-x86_64.so.1]
         layers: stopped",
    );
    // A static binary on scratch.
    let scratch = Tar::new().file("app", b"ELF");
    assert_lines(
        &scan(&[gzip(&scratch.bytes())]),
        "identity: -
         os-release: -
         libc: unknown []
         layers: read",
    );
    // No loader paths known for the architecture.
    assert_lines(
        &scan_for(
            &[gzip(&debian_like(0).bytes())],
            Architecture::from_platform("mips64le", None),
        ),
        "identity: debian-12-mips64le
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: unknown []
         layers: stopped",
    );
}

#[test]
fn os_release_reached_by_hard_link_or_through_a_release_directory() {
    let hardlinked = Tar::new()
        .file("usr/lib/os-release", DEBIAN_12.as_bytes())
        .hardlink("etc/os-release", "usr/lib/os-release");
    assert_lines(
        &scan(&[gzip(&hardlinked.bytes())]),
        "identity: debian-12-amd64
         os-release: etc/os-release -> etc/os-release in layer 0
         libc: unknown []
         layers: read",
    );
    let fedora = Tar::new()
        .symlink("etc/os-release", "../usr/lib/os-release")
        .symlink("usr/lib/os-release", "os.release.d/os-release-container")
        .file(
            "usr/lib/os.release.d/os-release-container",
            b"NAME=\"Fedora Linux\"\nVERSION_ID=40\nID=fedora\nVARIANT_ID=container\n",
        )
        .symlink("lib64", "usr/lib64")
        .file("usr/lib64/ld-linux-x86-64.so.2", b"ELF");
    assert_lines(
        &scan(&[gzip(&fedora.bytes())]),
        "identity: fedora-40-amd64
         os-release: etc/os-release -> usr/lib/os.release.d/os-release-container in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib64/ld-linux-x86-64.so.2]
         layers: stopped",
    );
    // A hard link to a file whose text was not kept.
    let unreadable = Tar::new()
        .file("usr/share/base/info", DEBIAN_12.as_bytes())
        .hardlink("etc/os-release", "usr/share/base/info");
    assert_lines(
        &scan(&[gzip(&unreadable.bytes())]),
        "identity: -
         os-release: -
         libc: unknown []
         layers: read
         warning: os-release etc/os-release not kept",
    );
}

#[test]
fn a_symlink_loop_falls_back_and_is_reported() {
    let looped = Tar::new()
        .symlink("etc/os-release", "../etc/os-release")
        .file("usr/lib/os-release", DEBIAN_12.as_bytes());
    assert_lines(
        &scan(&[gzip(&looped.bytes())]),
        "identity: debian-12-amd64
         os-release: usr/lib/os-release -> usr/lib/os-release in layer 0
         libc: unknown []
         layers: read
         warning: symlink loop at etc/os-release",
    );
}

#[test]
fn complete_summaries_are_cached_and_reused() {
    let base = gzip(&debian_like(4096).bytes());
    let app = gzip(&Tar::new().file("app/main", b"ELF").bytes());
    let clock = still;
    let whole = ScanConfig {
        stop_early: false,
        ..ScanConfig::new(&clock)
    };
    let mut cache = CountingCache::default();
    let first = scan_with(
        &[base.clone(), app.clone()],
        &Architecture::Amd64,
        &mut cache,
        &whole,
    );
    assert_eq!((first.opened, cache.puts), (vec![1, 0], 2));
    let again = scan_with(
        &[base.clone(), app],
        &Architecture::Amd64,
        &mut cache,
        &whole,
    );
    assert_eq!(
        again.opened,
        Vec::<usize>::new(),
        "both layers came from the cache"
    );
    assert_lines(
        &render(&again.result),
        "identity: debian-12-amd64
         os-release: etc/os-release -> usr/lib/os-release in layer 0
         libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
         layers: cached cached",
    );
    assert_eq!(
        render(&first.result).replace("read", "cached"),
        render(&again.result)
    );

    // A summary survives the store's round trip.
    let stored = serde_json::to_string(&cache.map[&layer_digest(0)]).expect("json");
    let restored: berth_layers::LayerSummary = serde_json::from_str(&stored).expect("json");
    assert_eq!(restored, cache.map[&layer_digest(0)]);

    // Stopping early leaves nothing to cache.
    let mut cache = CountingCache::default();
    let config = ScanConfig::new(&clock);
    let scanned = scan_with(&[base], &Architecture::Amd64, &mut cache, &config);
    assert!(scanned.result.is_ok());
    assert_eq!(cache.puts, 0);
}

#[test]
fn a_whiteout_hides_lower_layers_only() {
    let base = gzip(&debian_like(0).bytes());
    // `.wh.os-release` and a new `os-release` in one layer, in either order: the new one.
    for upper in [
        Tar::new()
            .whiteout("etc/os-release")
            .file("etc/os-release", DEBIAN_13.as_bytes()),
        Tar::new()
            .file("etc/os-release", DEBIAN_13.as_bytes())
            .whiteout("etc/os-release"),
    ] {
        assert_lines(
            &scan(&[base.clone(), gzip(&upper.bytes())]),
            "identity: debian-13-amd64
             os-release: etc/os-release -> etc/os-release in layer 1
             libc: glibc [lib64/ld-linux-x86-64.so.2 -> usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]
             layers: stopped read",
        );
    }
    // `/usr/lib` deleted and made again with other contents: the lower os-release is gone,
    // and the loader `lib64` leads to through `lib -> usr/lib` with it.
    let remade = Tar::new().whiteout("usr/lib").file("usr/lib/other", b"");
    assert_lines(
        &scan(&[base, gzip(&remade.bytes())]),
        "identity: -
         os-release: -
         libc: unknown []
         layers: stopped read",
    );
}
