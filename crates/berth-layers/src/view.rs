//! The merged view of layer summaries, top layer first, and path lookup through it with
//! symlinks resolved inside the image.
//!
//! # Layer rules (as overlayfs and the OCI image spec apply them)
//! Looking up a path, layers are consulted top down. In each layer:
//! 1. an entry at the path decides: a whiteout means absent (unless the same layer puts
//!    entries beneath it: whiteouts hide lower layers only), anything else is the answer (an
//!    upper directory replaces a lower symlink or file);
//! 2. the path is a directory in this layer if something recorded lies beneath it;
//! 3. otherwise, if this layer deletes or replaces an ancestor (a whiteout, a symlink or a file
//!    there) or marks one opaque, the path is absent: lower layers are hidden;
//! 4. otherwise the layer says nothing and the next one down is asked.
//!
//! A layer still being read (stopped before its end) answers rule 1 and 2 but not "nothing
//! here": the rest of the layer could add the path, so the lookup is *pending*. Layers not
//! read yet make a lookup that falls through every read layer pending as well.
//!
//! # Symlinks
//! Resolved one component at a time against the merged view, as the kernel would inside a
//! chroot at the image root: a relative target is taken from the link's directory, an absolute
//! one from the image root, and `..` stops at the root, so no target ever leaves the image.
//! At most `max_symlink_hops` links are followed per lookup (then: a loop).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::summary::{FileContent, LayerSummary, Node};

/// Layer summaries, top first, and how complete the picture is.
pub(crate) struct View<'a> {
    pub(crate) layers: Vec<&'a LayerSummary>,
    /// The lowest layer in `layers` is still being read.
    pub(crate) lowest_partial: bool,
    /// Layers below the lowest in `layers` have not been read.
    pub(crate) more_below: bool,
}

/// What is at one physical path of the merged view.
enum At<'a> {
    Dir,
    Node {
        node: &'a Node,
        layer: usize,
    },
    Absent,
    /// Not decidable from what has been read; the path is where.
    Pending(String),
}

/// The result of looking a file up.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    /// A regular file: where it physically is, and in which layer (index into `View::layers`).
    Found {
        resolved: String,
        layer: usize,
        content: &'a FileContent,
    },
    Absent,
    /// More of the image must be read to know; the path the lookup is waiting on.
    Pending(String),
    /// More than `max_symlink_hops` symlinks.
    Loop,
}

/// Whether anything recorded in `layer` lies strictly beneath `path`.
fn has_beneath(layer: &LayerSummary, path: &str) -> bool {
    let prefix = format!("{path}/");
    let starts = |key: &String| key.starts_with(&prefix);
    first_from(&layer.nodes, &prefix).is_some_and(starts)
        || layer
            .opaque_dirs
            .range::<String, _>((Bound::Included(&prefix), Bound::Unbounded))
            .next()
            .is_some_and(starts)
        || layer.opaque_dirs.contains(path)
}

fn first_from<'m>(nodes: &'m BTreeMap<String, Node>, from: &str) -> Option<&'m String> {
    nodes
        .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        .next()
        .map(|(key, _)| key)
}

/// The proper ancestors of `path`, root (`""`) first: `a/b/c` → `""`, `a`, `a/b`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(path.match_indices('/').map(|(at, _)| &path[..at]))
}

impl<'a> View<'a> {
    fn at(&self, path: &str) -> At<'a> {
        let lowest = self.layers.len().saturating_sub(1);
        for (index, layer) in self.layers.iter().enumerate() {
            if let Some(node) = layer.nodes.get(path) {
                return match node {
                    // Deleted from the layers below, then made again in this one: a directory
                    // with only this layer's contents (its children find the whiteout as an
                    // ancestor and look no lower).
                    Node::Whiteout if has_beneath(layer, path) => At::Dir,
                    Node::Whiteout => At::Absent,
                    node => At::Node { node, layer: index },
                };
            }
            if has_beneath(layer, path) {
                return At::Dir;
            }
            let hidden = ancestors(path).any(|ancestor| {
                layer.opaque_dirs.contains(ancestor)
                    || matches!(
                        layer.nodes.get(ancestor),
                        Some(
                            Node::Whiteout | Node::Symlink { .. } | Node::File { .. } | Node::Other
                        )
                    )
            });
            if hidden {
                return At::Absent;
            }
            if index == lowest && self.lowest_partial {
                return At::Pending(path.to_string());
            }
        }
        if self.more_below {
            At::Pending(path.to_string())
        } else {
            At::Absent
        }
    }

    /// Looks up the regular file at `path` (relative to the image root), following symlinks.
    pub(crate) fn lookup(&self, path: &str, max_hops: u32) -> Lookup<'a> {
        let mut resolved: Vec<String> = Vec::new();
        // Components still to walk, next last.
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(component);
            let here = resolved.join("/");
            match self.at(&here) {
                At::Dir
                | At::Node {
                    node: Node::Dir, ..
                } => {}
                At::Node {
                    node: Node::Symlink { target },
                    ..
                } => {
                    hops += 1;
                    if hops > max_hops {
                        return Lookup::Loop;
                    }
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                At::Node {
                    node: Node::File { content },
                    layer,
                } => {
                    let rest_is_empty = pending.iter().all(|c| c.is_empty() || c == ".");
                    return if rest_is_empty {
                        Lookup::Found {
                            resolved: here,
                            layer,
                            content,
                        }
                    } else {
                        // A file where a directory is needed.
                        Lookup::Absent
                    };
                }
                At::Node {
                    node: Node::Other | Node::Whiteout,
                    ..
                }
                | At::Absent => return Lookup::Absent,
                At::Pending(path) => return Lookup::Pending(path),
            }
        }
        // The path names a directory (or the root), not a file.
        Lookup::Absent
    }
}

/// Whether one path is the other, or lies beneath it: a newly recorded path can only change a
/// pending lookup waiting on a related path.
pub(crate) fn related(a: &str, b: &str) -> bool {
    let beneath = |inner: &str, outer: &str| {
        outer.is_empty()
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    a == b || beneath(a, b) || beneath(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Compression;
    use berth_core::Digest;

    /// A summary from `path kind` lines: `d` dir, `f` file with text, `w` whiteout,
    /// `o` opaque dir, `l target` symlink. The path `-` is the root.
    fn layer(spec: &str) -> LayerSummary {
        let mut summary = LayerSummary {
            digest: Digest::parse(&format!("sha256:{}", "0".repeat(64))).expect("valid"),
            compression: Compression::None,
            complete: true,
            entries: 0,
            compressed_bytes: 0,
            decompressed_bytes: 0,
            nodes: BTreeMap::new(),
            opaque_dirs: Default::default(),
            unsafe_entries: 0,
            unsafe_examples: Vec::new(),
        };
        for line in spec.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let mut words = line.split_whitespace();
            let (Some(path), Some(kind)) = (words.next(), words.next()) else {
                panic!("bad spec line {line:?}");
            };
            let path = if path == "-" { "" } else { path };
            let node = match kind {
                "d" => Node::Dir,
                "f" => Node::File {
                    content: FileContent::Text {
                        text: path.to_string(),
                    },
                },
                "w" => Node::Whiteout,
                "l" => Node::Symlink {
                    target: words.next().expect("symlink target").to_string(),
                },
                "o" => {
                    summary.opaque_dirs.insert(path.to_string());
                    continue;
                }
                other => panic!("unknown kind {other}"),
            };
            summary.nodes.insert(path.to_string(), node);
        }
        summary
    }

    /// Looks `path` up in layers given top first; renders the result as text.
    fn check(layers: &[&str], partial: bool, path: &str, expect: &str) {
        let summaries: Vec<LayerSummary> = layers.iter().map(|spec| layer(spec)).collect();
        let view = View {
            layers: summaries.iter().collect(),
            lowest_partial: partial,
            more_below: false,
        };
        let got = match view.lookup(path, 40) {
            Lookup::Found {
                resolved, layer, ..
            } => format!("{resolved} in {layer}"),
            Lookup::Absent => "absent".to_string(),
            Lookup::Pending(path) => format!("pending {path}"),
            Lookup::Loop => "loop".to_string(),
        };
        assert_eq!(got, expect, "{path} in {layers:?}");
    }

    const DEBIAN: &str = "
        etc/os-release l ../usr/lib/os-release
        lib l usr/lib
        lib64 l usr/lib64
        usr/lib/os-release f
        usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 f
        usr/lib64/ld-linux-x86-64.so.2 l /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
    ";

    #[test]
    fn lookups_through_layers_and_symlinks() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&[DEBIAN], "etc/os-release", "usr/lib/os-release in 0"),
            (
                &[DEBIAN],
                "lib64/ld-linux-x86-64.so.2",
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 in 0",
            ),
            (&[DEBIAN], "lib/ld-musl-x86_64.so.1", "absent"),
            // The symlink in an upper layer, its target in a lower one.
            (
                &[
                    "etc/os-release l ../usr/lib/os-release",
                    "usr/lib/os-release f",
                ],
                "etc/os-release",
                "usr/lib/os-release in 1",
            ),
            // An upper layer replaces the target.
            (
                &["usr/lib/os-release f", DEBIAN],
                "etc/os-release",
                "usr/lib/os-release in 0",
            ),
            // An upper file replaces the symlink.
            (
                &["etc/os-release f", DEBIAN],
                "etc/os-release",
                "etc/os-release in 0",
            ),
            // Whiteouts: of the file, of an ancestor directory.
            (
                &["usr/lib/os-release w", DEBIAN],
                "etc/os-release",
                "absent",
            ),
            (&["usr/lib w", DEBIAN], "etc/os-release", "absent"),
            (
                &["usr/lib/os-release w", DEBIAN],
                "usr/lib/os-release",
                "absent",
            ),
            // A whiteout hides lower layers only, not its own layer's entries.
            (
                &["etc w\netc/os-release f", DEBIAN],
                "etc/os-release",
                "etc/os-release in 0",
            ),
            (
                &["etc w\netc/hostname f", "etc/os-release f"],
                "etc/os-release",
                "absent",
            ),
            (
                &["etc/os-release f\nusr/lib/os-release w", DEBIAN],
                "etc/os-release",
                "etc/os-release in 0",
            ),
            // Opaque: lower contents hidden, the layer's own kept.
            (&["usr/lib o", DEBIAN], "etc/os-release", "absent"),
            (
                &["usr/lib o\nusr/lib/os-release f", DEBIAN],
                "etc/os-release",
                "usr/lib/os-release in 0",
            ),
            (&["- o", DEBIAN], "etc/os-release", "absent"),
            // An upper directory replaces a lower symlink.
            (&["lib64 d", DEBIAN], "lib64/ld-linux-x86-64.so.2", "absent"),
            (
                &["lib64/x f", DEBIAN],
                "lib64/ld-linux-x86-64.so.2",
                "absent",
            ),
            // Escapes clamp at the root.
            (
                &["etc/os-release l ../../../../host/os-release\nhost/os-release f"],
                "etc/os-release",
                "host/os-release in 0",
            ),
            (
                &["etc/os-release l ../../../../usr/lib/os-release", DEBIAN],
                "etc/os-release",
                "usr/lib/os-release in 1",
            ),
            (
                &["etc/os-release l ../../../../host/os-release"],
                "etc/os-release",
                "absent",
            ),
            (&["etc l /"], "etc/usr/lib/os-release", "absent"),
            (
                &["etc l /", DEBIAN],
                "etc/usr/lib/os-release",
                "usr/lib/os-release in 1",
            ),
            // Loops end.
            (&["etc/os-release l os-release"], "etc/os-release", "loop"),
            (&["a l b\nb l a"], "a/x", "loop"),
            // A file where a directory is needed; a directory where a file is.
            (&["usr f", DEBIAN], "etc/os-release", "absent"),
            (
                &["etc/os-release l /usr/lib", DEBIAN],
                "etc/os-release",
                "absent",
            ),
        ];
        for (layers, path, expect) in cases {
            check(layers, false, path, expect);
        }
    }

    #[test]
    fn a_layer_still_being_read_makes_absence_pending() {
        check(
            &["etc/os-release l ../usr/lib/os-release"],
            true,
            "etc/os-release",
            "pending usr",
        );
        check(
            &["etc/os-release l ../usr/lib/os-release\nusr/lib/other f"],
            true,
            "etc/os-release",
            "pending usr/lib/os-release",
        );
        check(&[DEBIAN], true, "etc/os-release", "usr/lib/os-release in 0");
        check(
            &["usr/lib/os-release w", DEBIAN],
            true,
            "etc/os-release",
            "absent",
        );
        check(
            &[DEBIAN],
            true,
            "lib/ld-musl-x86_64.so.1",
            "pending usr/lib/ld-musl-x86_64.so.1",
        );
    }

    #[test]
    fn related_paths() {
        assert!(related("usr/lib", "usr/lib/os-release"));
        assert!(related("usr/lib/os-release", "usr/lib"));
        assert!(related("usr", "usr"));
        assert!(related("", "usr"));
        assert!(!related("usr/lib", "usr/lib64"));
        assert!(!related("etc", "usr"));
    }
}
