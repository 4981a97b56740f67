//! What differs between two images, from what is known of each: the base by lineage, the OS
//! identity, the platforms of an index, the layers added, removed and replaced (by diff_id,
//! with sizes) and the config. Pure: `berth diff` fills the two sides from the registry (and
//! adds the files it reads from the layers), the dashboard from the store alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::Digest;

/// One side of the comparison, as the report names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub reference: String,
    /// The digest the reference resolved to (an index's, for a multi-platform image).
    pub digest: Digest,
    /// The platform image compared.
    pub image: Digest,
    pub platform: String,
    pub created: Option<String>,
    /// The base by layer lineage, when the store knows this image.
    pub base: Option<Digest>,
    /// `debian-12-amd64`; `None` when unknown or without os-release.
    pub os: Option<String>,
}

/// One layer of an image, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRef {
    pub digest: Digest,
    pub diff_id: Option<Digest>,
    pub size: u64,
}

impl LayerRef {
    /// The layer's identity for comparison: its diff_id (the uncompressed content), else its
    /// digest.
    pub fn identity(&self) -> &Digest {
        self.diff_id.as_ref().unwrap_or(&self.digest)
    }
}

/// The config fields an image runs with. The store keeps only the labels, so these are
/// optional as a whole: fields not known on both sides are not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `NAME=value` lines, as in the image config.
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
}

/// What is known of one image: enough to compare it with another.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub side: Side,
    /// The runnable platforms of the index `side.digest` names; `None` for a single-platform
    /// image.
    pub platforms: Option<Vec<String>>,
    pub layers: Vec<LayerRef>,
    pub labels: BTreeMap<String, String>,
    /// `None` where only the store was read (it does not keep env, entrypoint and the rest).
    pub run: Option<RunConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    pub before: LayerRef,
    pub after: LayerRef,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerChanges {
    /// Layers both images start with (their common lineage).
    pub shared: usize,
    pub replaced: Vec<Replaced>,
    pub added: Vec<LayerRef>,
    pub removed: Vec<LayerRef>,
}

/// The platforms an index gained and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlatformChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// On both sides, in the order of the side after: the ones to compare image by image.
    pub both: Vec<String>,
}

/// One config field (or one key of env or labels) that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    /// `env`, `entrypoint`, `cmd`, `user`, `working_dir`, `exposed_ports`, `labels`.
    pub field: &'static str,
    /// The variable, label or port, for the keyed fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub before: Value,
    pub after: Value,
}

/// Everything but the files; also that part of `berth diff --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub before: Side,
    pub after: Side,
    /// The same platform image: nothing else differs.
    pub same: bool,
    pub base_changed: bool,
    pub os_changed: bool,
    /// When either side is an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<PlatformChanges>,
    pub layers: LayerChanges,
    pub config: Vec<ConfigChange>,
}

/// Compares two images.
pub fn compare(before: &Known, after: &Known) -> Report {
    let platforms = match (&before.platforms, &after.platforms) {
        (None, None) => None,
        (old, new) => {
            let own = |platforms: &Option<Vec<String>>, side: &Side| {
                platforms
                    .clone()
                    .unwrap_or_else(|| vec![side.platform.clone()])
            };
            Some(platform_changes(
                &own(old, &before.side),
                &own(new, &after.side),
            ))
        }
    };
    let mut config = Vec::new();
    if let (Some(old), Some(new)) = (&before.run, &after.run) {
        run_changes(old, new, &mut config);
    }
    keyed("labels", &before.labels, &after.labels, &mut config);
    Report {
        before: before.side.clone(),
        after: after.side.clone(),
        same: before.side.image == after.side.image,
        base_changed: before.side.base != after.side.base,
        os_changed: before.side.os != after.side.os,
        platforms,
        layers: layer_changes(&before.layers, &after.layers),
        config,
    }
}

/// The platforms only one side has, and those both have.
pub fn platform_changes(before: &[String], after: &[String]) -> PlatformChanges {
    let old: BTreeSet<&String> = before.iter().collect();
    let new: BTreeSet<&String> = after.iter().collect();
    PlatformChanges {
        added: after.iter().filter(|p| !old.contains(p)).cloned().collect(),
        removed: before
            .iter()
            .filter(|p| !new.contains(p))
            .cloned()
            .collect(),
        both: after.iter().filter(|p| old.contains(p)).cloned().collect(),
    }
}

/// The common prefix is shared; past it, a layer at the same position on both sides that the
/// other side does not have anywhere is replaced; the rest are added or removed.
pub fn layer_changes(before: &[LayerRef], after: &[LayerRef]) -> LayerChanges {
    let shared = before
        .iter()
        .zip(after)
        .take_while(|(a, b)| a.identity() == b.identity())
        .count();
    let in_before: BTreeSet<&Digest> = before.iter().map(LayerRef::identity).collect();
    let in_after: BTreeSet<&Digest> = after.iter().map(LayerRef::identity).collect();
    let gone: Vec<&LayerRef> = before[shared..]
        .iter()
        .filter(|layer| !in_after.contains(layer.identity()))
        .collect();
    let new: Vec<&LayerRef> = after[shared..]
        .iter()
        .filter(|layer| !in_before.contains(layer.identity()))
        .collect();
    let paired = gone.len().min(new.len());
    LayerChanges {
        shared,
        replaced: gone
            .iter()
            .zip(&new)
            .map(|(a, b)| Replaced {
                before: (*a).clone(),
                after: (*b).clone(),
            })
            .collect(),
        added: new[paired..].iter().map(|layer| (*layer).clone()).collect(),
        removed: gone[paired..]
            .iter()
            .map(|layer| (*layer).clone())
            .collect(),
    }
}

/// `NAME=value` lines as a map (a later line for the same name wins, as at run time).
fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|line| match line.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (line.clone(), String::new()),
        })
        .collect()
}

fn keyed(
    field: &'static str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    changes: &mut Vec<ConfigChange>,
) {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (a, b) = (before.get(key), after.get(key));
        if a != b {
            changes.push(ConfigChange {
                field,
                key: Some(key.clone()),
                before: json!(a),
                after: json!(b),
            });
        }
    }
}

/// The run fields that differ, labels aside.
fn run_changes(before: &RunConfig, after: &RunConfig, changes: &mut Vec<ConfigChange>) {
    let mut whole = |field: &'static str, a: Value, b: Value| {
        if a != b {
            changes.push(ConfigChange {
                field,
                key: None,
                before: a,
                after: b,
            });
        }
    };
    whole(
        "entrypoint",
        json!(before.entrypoint),
        json!(after.entrypoint),
    );
    whole("cmd", json!(before.cmd), json!(after.cmd));
    whole("user", json!(before.user), json!(after.user));
    whole(
        "working_dir",
        json!(before.working_dir),
        json!(after.working_dir),
    );
    let ports = |ports: &[String]| -> BTreeMap<String, String> {
        ports
            .iter()
            .map(|port| (port.clone(), "exposed".to_string()))
            .collect()
    };
    keyed("env", &env_map(&before.env), &env_map(&after.env), changes);
    keyed(
        "exposed_ports",
        &ports(&before.exposed_ports),
        &ports(&after.exposed_ports),
        changes,
    );
}

/// A size for a person: `512 B`, `3.4 kB`, `28.1 MB`.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{n:064x}")).unwrap()
    }

    fn layer(n: u8) -> LayerRef {
        LayerRef {
            digest: digest(100 + n),
            diff_id: Some(digest(n)),
            size: u64::from(n) * 10,
        }
    }

    fn known(image: u8, base: Option<u8>, layers: &[u8]) -> Known {
        Known {
            side: Side {
                reference: format!("example.com/app@{}", digest(image)),
                digest: digest(image),
                image: digest(image),
                platform: "linux/amd64".into(),
                created: None,
                base: base.map(digest),
                os: Some("debian-12-amd64".into()),
            },
            platforms: None,
            layers: layers.iter().copied().map(layer).collect(),
            labels: BTreeMap::new(),
            run: None,
        }
    }

    #[test]
    fn layers_past_the_shared_prefix_are_replaced_added_or_removed() {
        let changes = layer_changes(&[layer(1), layer(2), layer(3)], &[layer(1), layer(4)]);
        assert_eq!(changes.shared, 1);
        assert_eq!(changes.replaced.len(), 1);
        assert_eq!(changes.replaced[0].before.diff_id, Some(digest(2)));
        assert_eq!(changes.replaced[0].after.diff_id, Some(digest(4)));
        assert_eq!(changes.removed.len(), 1);
        assert_eq!(changes.removed[0].diff_id, Some(digest(3)));
        assert!(changes.added.is_empty());
        // A child on its base: one layer added, nothing replaced.
        let child = layer_changes(&[layer(1)], &[layer(1), layer(5)]);
        assert_eq!(
            (child.shared, child.replaced.len(), child.added.len()),
            (1, 0, 1)
        );
    }

    #[test]
    fn a_layer_without_diff_id_is_compared_by_its_digest() {
        let bare = |n: u8| LayerRef {
            diff_id: None,
            ..layer(n)
        };
        let changes = layer_changes(&[bare(1), bare(2)], &[bare(1), bare(2)]);
        assert_eq!(
            changes,
            LayerChanges {
                shared: 2,
                ..LayerChanges::default()
            }
        );
    }

    #[test]
    fn the_base_os_and_labels_are_compared_and_run_fields_only_when_both_sides_know_them() {
        let mut before = known(1, Some(9), &[1]);
        let mut after = known(2, Some(8), &[1, 2]);
        before.labels.insert("version".into(), "1".into());
        after.labels.insert("version".into(), "2".into());
        after.side.os = Some("debian-13-amd64".into());
        after.run = Some(RunConfig {
            user: Some("app".into()),
            ..RunConfig::default()
        });
        let report = compare(&before, &after);
        assert!(!report.same && report.base_changed && report.os_changed);
        assert_eq!(report.platforms, None);
        assert_eq!(report.layers.added, [layer(2)]);
        // The store keeps no run fields: only the label is a change.
        assert_eq!(
            report.config,
            [ConfigChange {
                field: "labels",
                key: Some("version".into()),
                before: json!("1"),
                after: json!("2"),
            }]
        );
        before.run = Some(RunConfig {
            env: vec!["PATH=/bin".into(), "MODE=a".into()],
            ..RunConfig::default()
        });
        after.run = Some(RunConfig {
            user: Some("app".into()),
            env: vec!["PATH=/bin".into(), "MODE=b".into()],
            ..RunConfig::default()
        });
        let fields: Vec<(&str, Option<String>)> = compare(&before, &after)
            .config
            .into_iter()
            .map(|change| (change.field, change.key))
            .collect();
        assert_eq!(
            fields,
            [
                ("user", None),
                ("env", Some("MODE".into())),
                ("labels", Some("version".into()))
            ]
        );
        assert!(compare(&before, &before).same);
    }

    #[test]
    fn an_index_on_either_side_reports_the_platforms_gained_and_lost() {
        let before = Known {
            platforms: Some(vec!["linux/amd64".into(), "linux/arm/v7".into()]),
            ..known(1, None, &[1])
        };
        let after = Known {
            platforms: Some(vec!["linux/arm64".into(), "linux/amd64".into()]),
            ..known(2, None, &[1])
        };
        let platforms = compare(&before, &after).platforms.unwrap();
        assert_eq!(platforms.added, ["linux/arm64"]);
        assert_eq!(platforms.removed, ["linux/arm/v7"]);
        assert_eq!(platforms.both, ["linux/amd64"]);
        // A single-platform image stands for its own platform.
        let single = compare(&before, &known(3, None, &[1])).platforms.unwrap();
        assert_eq!(single.removed, ["linux/arm/v7"]);
        assert!(single.added.is_empty());
    }

    #[test]
    fn sizes_read_in_bytes_kilobytes_and_megabytes() {
        assert_eq!(size_text(999), "999 B");
        assert_eq!(size_text(3_400), "3.4 kB");
        assert_eq!(size_text(28_100_000), "28.1 MB");
    }
}
