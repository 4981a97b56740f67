//! `berth diff BEFORE AFTER` (or `--channel NAME:CHANNEL --steps N`, a channel's last moves):
//! why a digest changed. The base (by layer lineage, from the store), the OS identity, the
//! layers added, removed and replaced (by diff_id, with sizes), the config (env, entrypoint,
//! cmd, user, working directory, exposed ports, labels), and the files that differ between the
//! layers that differ (read as streams, bounded, never written anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::diff::{self, size_text as size};
use berth_core::{Digest, ImageRef};
use berth_layers::listing::{FileEntry, FileKind, Listing};
use berth_oci::{Client, Platform};
use serde::Serialize;

use crate::cmd::catalog::{SourceFormat, catalog_path};
use crate::cmd::inspect::{Inspection, Wanted, describe};
use crate::environment::Environment;
use crate::exit::usage;
use crate::registry_args::RegistryArgs;

/// At most this many files of each kind (added, removed, changed) are reported.
const FILES_SHOWN: usize = 500;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image before: a reference (`registry/repo:tag`, `repo@sha256:...`).
    #[arg(required_unless_present = "channel")]
    pub before: Option<String>,
    /// The image after.
    #[arg(required_unless_present = "channel")]
    pub after: Option<String>,
    /// Compare a channel's moves instead: NAME[/variant]:CHANNEL of the catalog, from the
    /// store's channel history (needs --store).
    #[arg(long, value_name = "NAME:CHANNEL", conflicts_with_all = ["before", "after"])]
    pub channel: Option<String>,
    /// With --channel: how many moves back the image before is (1: the last move).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub steps: usize,
    /// The catalog, for --channel (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// The catalog's format.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// The store, for bases by lineage, OS identity and --channel (default: $BERTH_STORE).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Platform of an index to compare, as os/arch[/variant] (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Do not read layers (no file changes; OS identity only from the store).
    #[arg(long)]
    pub no_layers: bool,
    /// Entries kept per layer read for the file changes; the rest are counted as omitted.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub max_files: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A file's state on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileState {
    pub kind: FileKind,
    pub size: u64,
    pub mode: String,
    /// A regular file's content digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FileChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<FileState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<FileState>,
}

/// The files that differ between the layers only one side has.
#[derive(Debug, Default, Serialize)]
pub struct FileChanges {
    pub added: Vec<FileChange>,
    pub removed: Vec<FileChange>,
    pub changed: Vec<FileChange>,
    /// Entries not compared (past --max-files in a layer) or not shown (past 500 per list).
    pub omitted: u64,
}

/// What `berth diff` reports; also the `--json` shape: berth-core's comparison of the two
/// sides, and the files.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub compared: diff::Report,
    /// `None` with --no-layers.
    pub files: Option<FileChanges>,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let wanted = match &args.platform {
        Some(text) => Wanted::Asked(
            Platform::parse(text)
                .ok_or_else(|| usage(format!("--platform {text:?}: expected os/arch[/variant]")))?,
        ),
        None => Wanted::Host(Platform::host()),
    };
    let store_url = args.store.clone().or_else(|| env.get("BERTH_STORE"));
    if args.channel.is_some() && store_url.is_none() {
        return Err(usage(
            "--channel reads the channel history: give --store (or $BERTH_STORE)",
        ));
    }
    if args.steps == 0 {
        return Err(usage("--steps: at least 1"));
    }
    let client = Client::new(args.registry.client_config(env)?);
    let report = crate::cmd::runtime()?.block_on(async {
        let store = match &store_url {
            Some(url) => Some(crate::cmd::open_store_read_only(url).await?),
            None => None,
        };
        let (before, after) = match &args.channel {
            Some(text) => {
                let store = store.as_ref().expect("checked above");
                channel_moves(&args, env, store, text).await?
            }
            None => {
                let parse = |text: &Option<String>| {
                    let text = text.as_deref().unwrap_or_default();
                    ImageRef::parse(text).map_err(|error| usage(format!("{text:?}: {error}")))
                };
                (parse(&args.before)?, parse(&args.after)?)
            }
        };
        let mut sides = Vec::new();
        for image in [&before, &after] {
            match describe(&client, image, &wanted, store.as_ref(), !args.no_layers).await? {
                Ok(inspection) => sides.push(inspection),
                Err(missing) => return Err(usage(missing.to_string())),
            }
        }
        let after_side = sides.pop().expect("two sides");
        let before_side = sides.pop().expect("two sides");
        let mut report = compare(&before_side, &after_side);
        if !args.no_layers && !report.compared.same {
            report.files = Some(
                file_changes(
                    &client,
                    (&before, &before_side),
                    (&after, &after_side),
                    args.max_files,
                )
                .await?,
            );
        }
        if let Some(store) = store {
            store.close().await;
        }
        anyhow::Ok(report)
    })?;
    if args.json {
        crate::cmd::print_json(&report)?;
    } else {
        crate::cmd::print_text(&text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The two images of a channel's history: `steps` moves back, and now.
async fn channel_moves(
    args: &Args,
    env: &Environment,
    store: &berth_store::Store,
    text: &str,
) -> anyhow::Result<(ImageRef, ImageRef)> {
    let (name, channel) = text.rsplit_once(':').ok_or_else(|| {
        usage(format!(
            "--channel {text:?}: expected NAME[/variant]:CHANNEL"
        ))
    })?;
    let channel = berth_core::channels::channel_tag(channel)
        .map_err(|error| usage(format!("--channel {text:?}: {error}")))?;
    let source = berth_files::catalog_source::CatalogSource {
        path: catalog_path(args.catalog.clone(), env),
        format: args.catalog_format.into(),
    };
    let loaded = crate::cmd::catalog::read(&source, chrono::Utc::now())?;
    let catalog = loaded.catalog.ok_or_else(|| {
        usage(format!(
            "{}: the catalog has errors; `berth catalog check` lists them",
            source.path.display()
        ))
    })?;
    let (subject, _) = berth_channels::Subject::find(&catalog, name).map_err(usage)?;
    let state = berth_channels::history::load(store, &subject, &channel).await?;
    let mut moves: Vec<Digest> = Vec::new();
    for entry in &state.history {
        if moves.last() != Some(&entry.digest) {
            moves.push(entry.digest.clone());
        }
    }
    if moves.len() <= args.steps {
        return Err(usage(format!(
            "{}:{channel} has {} digest(s) in its history: nothing {} move(s) back",
            subject.label(),
            moves.len(),
            args.steps
        )));
    }
    let at = |digest: &Digest| subject.image.at_digest(digest);
    Ok((
        at(&moves[moves.len() - 1 - args.steps]),
        at(&moves[moves.len() - 1]),
    ))
}

/// What the inspection (the registry, and the store when given) knows of one side.
fn known(inspection: &Inspection) -> diff::Known {
    let config = &inspection.image.config;
    let platforms: Vec<String> = inspection
        .platforms
        .iter()
        .filter(|entry| !entry.attestation)
        .map(|entry| entry.platform.clone())
        .collect();
    diff::Known {
        side: diff::Side {
            reference: inspection.reference.clone(),
            digest: inspection.digest.clone(),
            image: inspection.image.digest.clone(),
            platform: inspection.image.platform.clone(),
            created: config.created.clone(),
            base: inspection
                .lineage
                .as_ref()
                .and_then(|lineage| lineage.base.clone()),
            os: inspection
                .identity
                .as_ref()
                .and_then(|identity| identity.os.clone()),
        },
        platforms: (!inspection.platforms.is_empty()).then_some(platforms),
        layers: inspection
            .image
            .layers
            .iter()
            .map(|layer| diff::LayerRef {
                digest: layer.digest.clone(),
                diff_id: layer.diff_id.clone(),
                size: layer.size,
            })
            .collect(),
        labels: config.labels.clone(),
        run: Some(diff::RunConfig {
            entrypoint: config.entrypoint.clone(),
            cmd: config.cmd.clone(),
            user: config.user.clone(),
            working_dir: config.working_dir.clone(),
            env: config.env.clone(),
            exposed_ports: config.exposed_ports.clone(),
        }),
    }
}

/// Everything but the files: berth-core's comparison of the two inspections.
pub fn compare(before: &Inspection, after: &Inspection) -> Report {
    Report {
        compared: diff::compare(&known(before), &known(after)),
        files: None,
    }
}

fn state(entry: &FileEntry) -> FileState {
    FileState {
        kind: entry.kind,
        size: entry.size,
        mode: format!("{:o}", entry.mode),
        link: entry.link.clone(),
        content: entry.content.clone(),
    }
}

/// The layers one side has and the other does not, merged in order (an upper entry wins).
fn merged(listings: &[(Digest, Listing)]) -> (BTreeMap<String, FileEntry>, u64) {
    let mut files = BTreeMap::new();
    let mut omitted = 0;
    for (_, listing) in listings {
        omitted += listing.omitted;
        for entry in &listing.entries {
            if entry.kind == FileKind::Opaque {
                let prefix = format!("{}/", entry.path);
                files.retain(|path: &String, _| !path.starts_with(&prefix));
                continue;
            }
            files.insert(entry.path.clone(), entry.clone());
        }
    }
    (files, omitted)
}

/// Compares the merged listings of the layers only one side has. A path only the new layers
/// hold is added (or removed, for a whiteout); a path only the old layers held is removed; a
/// path in both with another kind, size, mode, link target or content is changed. Directories
/// are left out (their entries say what changed).
pub fn compare_files(before: &[(Digest, Listing)], after: &[(Digest, Listing)]) -> FileChanges {
    let (old, old_omitted) = merged(before);
    let (new, new_omitted) = merged(after);
    let mut changes = FileChanges {
        omitted: old_omitted + new_omitted,
        ..FileChanges::default()
    };
    let push = |list: &mut Vec<FileChange>, change: FileChange, omitted: &mut u64| {
        if list.len() < FILES_SHOWN {
            list.push(change);
        } else {
            *omitted += 1;
        }
    };
    let mut omitted = 0;
    for (path, entry) in &new {
        if entry.kind == FileKind::Dir {
            continue;
        }
        match old.get(path) {
            None if entry.kind == FileKind::Removed => push(
                &mut changes.removed,
                FileChange {
                    path: path.clone(),
                    before: None,
                    after: None,
                },
                &mut omitted,
            ),
            None => push(
                &mut changes.added,
                FileChange {
                    path: path.clone(),
                    before: None,
                    after: Some(state(entry)),
                },
                &mut omitted,
            ),
            Some(previous) if previous != entry => push(
                &mut changes.changed,
                FileChange {
                    path: path.clone(),
                    before: Some(state(previous)),
                    after: Some(state(entry)),
                },
                &mut omitted,
            ),
            Some(_) => {}
        }
    }
    for (path, entry) in &old {
        if entry.kind == FileKind::Dir || entry.kind == FileKind::Removed || new.contains_key(path)
        {
            continue;
        }
        push(
            &mut changes.removed,
            FileChange {
                path: path.clone(),
                before: Some(state(entry)),
                after: None,
            },
            &mut omitted,
        );
    }
    changes.omitted += omitted;
    changes
}

async fn file_changes(
    client: &Client,
    (before_ref, before): (&ImageRef, &Inspection),
    (after_ref, after): (&ImageRef, &Inspection),
    max_files: usize,
) -> anyhow::Result<FileChanges> {
    let only = |this: &Inspection, other: &Inspection| {
        let theirs: BTreeSet<&Digest> = other
            .image
            .layers
            .iter()
            .map(|layer| layer.diff_id.as_ref().unwrap_or(&layer.digest))
            .collect();
        this.image
            .descriptors()
            .into_iter()
            .zip(&this.image.layers)
            .filter(|(_, layer)| !theirs.contains(layer.diff_id.as_ref().unwrap_or(&layer.digest)))
            .map(|(descriptor, _)| descriptor)
            .collect::<Vec<_>>()
    };
    let old = berth_sync::list_layers(client, before_ref, &only(before, after), max_files)
        .await
        .with_context(|| format!("{before_ref}: reading its layers"))?;
    let new = berth_sync::list_layers(client, after_ref, &only(after, before), max_files)
        .await
        .with_context(|| format!("{after_ref}: reading its layers"))?;
    Ok(compare_files(&old, &new))
}

/// The report for a person. What comes from the images (labels, env, paths) is escaped.
fn text(full: &Report) -> String {
    use berth_core::quote::escape;
    let report = &full.compared;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    for (name, side) in [("before", &report.before), ("after", &report.after)] {
        line(format!(
            "{name:<7} {}  {} ({}, created {})",
            side.reference,
            side.image,
            escape(&side.platform),
            escape(side.created.as_deref().unwrap_or("-"))
        ));
    }
    if report.same {
        line("the same image: nothing differs".to_string());
        return out;
    }
    let known = |digest: &Option<Digest>| {
        digest
            .as_ref()
            .map_or_else(|| "none known".to_string(), Digest::to_string)
    };
    if report.base_changed {
        line(format!(
            "base    {} -> {}",
            known(&report.before.base),
            known(&report.after.base)
        ));
    } else {
        line(format!("base    unchanged ({})", known(&report.after.base)));
    }
    let os = |os: &Option<String>| escape(os.as_deref().unwrap_or("unknown")).into_owned();
    if report.os_changed {
        line(format!(
            "os      {} -> {}",
            os(&report.before.os),
            os(&report.after.os)
        ));
    } else {
        line(format!("os      unchanged ({})", os(&report.after.os)));
    }
    if let Some(platforms) = &report.platforms
        && !(platforms.added.is_empty() && platforms.removed.is_empty())
    {
        let list = |platforms: &[String]| match platforms {
            [] => "-".to_string(),
            _ => escape(&platforms.join(" ")).into_owned(),
        };
        line(format!(
            "platforms  added: {}; removed: {}",
            list(&platforms.added),
            list(&platforms.removed)
        ));
    }
    let layers = &report.layers;
    line(format!(
        "layers  {} shared; {} replaced, {} added, {} removed",
        layers.shared,
        layers.replaced.len(),
        layers.added.len(),
        layers.removed.len()
    ));
    for replaced in &layers.replaced {
        line(format!(
            "  ~ {} ({}) -> {} ({})",
            replaced.before.identity(),
            size(replaced.before.size),
            replaced.after.identity(),
            size(replaced.after.size)
        ));
    }
    for layer in &layers.added {
        line(format!("  + {} ({})", layer.identity(), size(layer.size)));
    }
    for layer in &layers.removed {
        line(format!("  - {} ({})", layer.identity(), size(layer.size)));
    }
    if report.config.is_empty() {
        line("config  unchanged".to_string());
    } else {
        line("config".to_string());
        for change in &report.config {
            let key = change
                .key
                .as_ref()
                .map_or(String::new(), |key| format!(" {}", escape(key)));
            line(format!(
                "  {}{key}: {} -> {}",
                change.field,
                escape(&change.before.to_string()),
                escape(&change.after.to_string())
            ));
        }
    }
    if let Some(files) = &full.files {
        line(format!(
            "files (in the layers that differ): {} added, {} removed, {} changed{}",
            files.added.len(),
            files.removed.len(),
            files.changed.len(),
            if files.omitted > 0 {
                format!(", {} not compared or not shown", files.omitted)
            } else {
                String::new()
            }
        ));
        for change in &files.added {
            let after = change.after.as_ref().map_or(0, |state| state.size);
            line(format!("  + {} ({})", escape(&change.path), size(after)));
        }
        for change in &files.removed {
            line(format!("  - {}", escape(&change.path)));
        }
        for change in &files.changed {
            let describe = |state: &Option<FileState>| {
                state.as_ref().map_or_else(String::new, |state| {
                    format!("{:?} {} mode {}", state.kind, size(state.size), state.mode)
                })
            };
            line(format!(
                "  ~ {} ({} -> {})",
                escape(&change.path),
                describe(&change.before),
                describe(&change.after)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{n:064x}")).unwrap()
    }

    fn file(path: &str, kind: FileKind, size: u64) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            kind,
            size,
            mode: 0o644,
            link: None,
            content: None,
        }
    }

    fn listing(entries: Vec<FileEntry>) -> (Digest, Listing) {
        (
            digest(0),
            Listing {
                entries,
                ..Listing::default()
            },
        )
    }

    #[test]
    fn files_are_added_removed_and_changed_between_the_differing_layers() {
        let before = [listing(vec![
            file("app", FileKind::Dir, 0),
            file("app/main.py", FileKind::File, 10),
            file("app/old.py", FileKind::File, 5),
            file("etc/motd", FileKind::File, 3),
        ])];
        let after = [
            listing(vec![
                file("app/main.py", FileKind::File, 12),
                file("app/new.py", FileKind::File, 7),
                file("etc/motd", FileKind::File, 3),
            ]),
            listing(vec![file("usr/share/doc", FileKind::Removed, 0)]),
        ];
        let changes = compare_files(&before, &after);
        let paths = |list: &[FileChange]| list.iter().map(|c| c.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&changes.added), ["app/new.py"]);
        assert_eq!(paths(&changes.changed), ["app/main.py"]);
        assert_eq!(paths(&changes.removed), ["usr/share/doc", "app/old.py"]);
        assert_eq!(changes.omitted, 0);
    }

    #[test]
    fn an_opaque_directory_hides_what_lower_differing_layers_put_under_it() {
        let after = [
            listing(vec![file("cache/a", FileKind::File, 1)]),
            listing(vec![file("cache", FileKind::Opaque, 0)]),
        ];
        let changes = compare_files(&[], &after);
        assert!(
            changes.added.iter().all(|change| change.path != "cache/a"),
            "{changes:?}"
        );
    }
}
