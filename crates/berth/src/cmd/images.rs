//! `berth images`: what the store knows about images (after `berth sync`), narrowed by
//! repository, OS identity, or the base they are built on. `--json` prints what
//! `GET /api/v1/images` answers.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::{Digest, ImageRef};
use berth_files::catalog_source::CatalogSource;
use berth_store::ImageView;
use berth_store::{ImageFilter, RepositoryName, Store};
use chrono::Utc;

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{open_store_read_only, print_json, print_text, runtime, store_url};
use crate::environment::Environment;
use crate::exit::usage;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only images tagged in this repository (`registry/path`).
    #[arg(long = "repo", value_name = "REPOSITORY")]
    pub repository: Option<String>,
    /// Only images of this OS: `debian`, `debian-12`, `debian-12-amd64`.
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// Only images built on this one, directly or through other bases: a digest, an image
    /// reference (`registry/repo:tag`, resolved from the store), or a catalog name.
    #[arg(long, value_name = "NAME|DIGEST|REF")]
    pub built_on: Option<String>,
    /// The catalog, for --built-on NAME (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let url = store_url(args.store.clone(), env);
    runtime()?.block_on(async {
        let store = open_store_read_only(&url).await?;
        let mut filter = ImageFilter {
            os: args.os.clone(),
            ..ImageFilter::default()
        };
        if let Some(text) = &args.repository {
            filter.repository = Some(
                RepositoryName::parse(text)
                    .map_err(|error| usage(format!("--repo {text:?}: {error}")))?,
            );
        }
        if let Some(text) = &args.built_on {
            filter.built_on = Some(built_on_digest(&store, text, &args, env).await?);
        }
        let images = store.images(&filter).await?;
        store.close().await;
        let views: Vec<ImageView> = images.iter().map(ImageView::from).collect();
        if args.json {
            print_json(&views)?;
        } else {
            print_text(&table(&views));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `--built-on`: a digest as is; a reference by its digest or, for a tag, the digest the store
/// last saw; a catalog name by its image's channel tag.
async fn built_on_digest(
    store: &Store,
    text: &str,
    args: &Args,
    env: &Environment,
) -> anyhow::Result<Digest> {
    if let Ok(digest) = Digest::parse(text) {
        return Ok(digest);
    }
    let reference = if text.contains('/') || text.contains(':') || text.contains('@') {
        ImageRef::parse(text).map_err(|error| usage(format!("--built-on {text:?}: {error}")))?
    } else {
        let source = CatalogSource {
            path: catalog_path(args.catalog.clone(), env),
            format: args.catalog_format.into(),
        };
        let catalog = read_valid(&source, Utc::now())?;
        let entry = catalog.get(text).ok_or_else(|| {
            let hint = catalog.suggestions(text);
            usage(if hint.is_empty() {
                format!("--built-on {text:?}: no catalog entry and not an image reference")
            } else {
                format!(
                    "--built-on {text:?}: no catalog entry; did you mean {}?",
                    hint.join(", ")
                )
            })
        })?;
        let (_, image) = entry
            .images()
            .next()
            .ok_or_else(|| usage(format!("--built-on {text:?}: the entry names no image")))?;
        let tag = entry
            .channels
            .iter()
            .find(|tag| tag.as_str() == "latest")
            .or(entry.channels.first())
            .cloned()
            .ok_or_else(|| usage(format!("--built-on {text:?}: the entry has no channel")))?;
        image.at(&tag)
    };
    if let Some(digest) = reference.digest() {
        return Ok(digest.clone());
    }
    let tag = reference
        .tag()
        .expect("a reference without a digest has a tag");
    let repository = RepositoryName::of(&reference);
    store
        .tag_digests(&repository)
        .await?
        .into_iter()
        .find(|(known, _)| known == tag)
        .map(|(_, digest)| digest)
        .ok_or_else(|| {
            usage(format!(
                "--built-on {text}: the store knows no tag {} in {repository} (run `berth sync` first)",
                tag.as_str()
            ))
        })
}

fn short(digest: &str) -> String {
    digest
        .split_once(':')
        .map_or(digest, |(_, hex)| hex)
        .chars()
        .take(12)
        .collect()
}

/// Tags grouped by repository, a few each: `reg/repo:1,2 (+9)`.
fn tags_text(tags: &[String]) -> String {
    const SHOWN: usize = 3;
    if tags.is_empty() {
        return "(untagged)".to_string();
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for tag in tags {
        let (repository, name) = tag.rsplit_once(':').unwrap_or((tag, ""));
        match groups.iter_mut().find(|(known, _)| *known == repository) {
            Some((_, names)) => names.push(name),
            None => groups.push((repository, vec![name])),
        }
    }
    groups
        .iter()
        .map(|(repository, names)| {
            let shown = names[..names.len().min(SHOWN)].join(",");
            if names.len() > SHOWN {
                format!("{repository}:{shown} (+{})", names.len() - SHOWN)
            } else {
                format!("{repository}:{shown}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(images: &[ImageView]) -> String {
    if images.is_empty() {
        return "no images (run `berth sync` first, or widen the filter)\n".to_string();
    }
    let rows: Vec<[String; 7]> = images
        .iter()
        .map(|image| {
            [
                short(&image.digest),
                image.platform.clone(),
                image.os.clone().unwrap_or_else(|| "-".into()),
                image
                    .libc
                    .and_then(|libc| serde_json::to_value(libc).ok())
                    .and_then(|value| value.as_str().map(str::to_string))
                    .unwrap_or_else(|| "-".into()),
                image.base.as_deref().map_or_else(|| "-".into(), short),
                image
                    .created
                    .map_or_else(|| "-".into(), |c| c.format("%Y-%m-%d").to_string()),
                tags_text(&image.tags),
            ]
        })
        .collect();
    let header = [
        "DIGEST", "PLATFORM", "OS", "LIBC", "BASE", "CREATED", "TAGS",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_string), &mut out);
    for row in &rows {
        line(row, &mut out);
    }
    out
}
