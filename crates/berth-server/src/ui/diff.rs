//! `/ui/diff?before=DIGEST&after=DIGEST`: what changed between two images, from the store alone
//! (no registry request while rendering), compared by `berth_core::diff` — the comparison
//! `berth diff` makes. The store keeps the base by lineage, the OS, an index's platforms, the
//! layers and the labels; the run config and the files come from `berth diff`, whose exact
//! command the page prints.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use berth_core::Digest;
use berth_core::diff::{self, Known, LayerRef, Report, size_text};
use berth_store::{ImageFilter, ImageSummary, ManifestKind, Store};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Access, Page, allow, digest_link, failed, page, platform_text, refusal_page};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    before: Option<String>,
    after: Option<String>,
}

/// The dashboard's link to the diff of one channel move.
pub fn href(before: &Digest, after: &Digest) -> String {
    format!("/ui/diff?before={before}&after={after}")
}

/// One side as the store knows it: the digest asked for and its platform images.
struct Stored {
    digest: Digest,
    index: bool,
    /// `registry/repository` of a live tag that reaches the digest, for `berth diff`.
    repository: Option<String>,
    /// The runnable platforms, each with what the store knows of its image (`None`: an index
    /// entry whose image was never fetched).
    images: Vec<(String, Option<Known>)>,
}

impl Stored {
    fn platforms(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|(platform, _)| platform.clone())
            .collect()
    }
}

async fn known(
    store: &Store,
    top: &Digest,
    image: &ImageSummary,
    platforms: Option<Vec<String>>,
) -> Result<Known, berth_store::StoreError> {
    let layers = store.image_layers(&image.digest).await?;
    Ok(Known {
        side: diff::Side {
            reference: top.to_string(),
            digest: top.clone(),
            image: image.digest.clone(),
            platform: platform_text(&image.platform),
            created: image
                .created
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            base: image.base.as_ref().map(|found| found.base.clone()),
            os: image.os_id.as_ref().map(ToString::to_string),
        },
        platforms,
        layers: layers
            .into_iter()
            .map(|layer| LayerRef {
                digest: layer.digest,
                diff_id: Some(layer.diff_id),
                size: layer.size,
            })
            .collect(),
        labels: image.labels.clone(),
        run: None,
    })
}

async fn summary(
    store: &Store,
    digest: &Digest,
) -> Result<Option<ImageSummary>, berth_store::StoreError> {
    Ok(store
        .images(&ImageFilter {
            digest: Some(digest.clone()),
            ..ImageFilter::default()
        })
        .await?
        .into_iter()
        .next())
}

/// What the store knows of `digest`; `None` when it knows no such manifest.
async fn stored(store: &Store, digest: &Digest) -> Result<Option<Stored>, berth_store::StoreError> {
    let Some(manifest) = store.manifest(digest).await? else {
        return Ok(None);
    };
    let mut repository = None;
    let mut images = Vec::new();
    let index = matches!(manifest.kind, ManifestKind::Index(_));
    match manifest.kind {
        ManifestKind::Image => {
            if let Some(image) = summary(store, digest).await? {
                repository = image
                    .references
                    .iter()
                    .find(|at| at.index.is_none())
                    .map(|at| at.repository.to_string());
                let known = known(store, digest, &image, None).await?;
                images.push((known.side.platform.clone(), Some(known)));
            }
        }
        ManifestKind::Index(entries) => {
            let platforms: Vec<(String, Digest)> = entries
                .iter()
                .filter(|entry| !entry.is_attestation)
                .filter_map(|entry| {
                    let platform = entry.platform.as_ref()?;
                    Some((platform_text(platform), entry.child.clone()))
                })
                .collect();
            let names: Vec<String> = platforms.iter().map(|(name, _)| name.clone()).collect();
            for (platform, child) in platforms {
                let known = match summary(store, &child).await? {
                    Some(image) => {
                        if repository.is_none() {
                            repository = image
                                .references
                                .iter()
                                .find(|at| at.index.as_ref() == Some(digest))
                                .map(|at| at.repository.to_string());
                        }
                        Some(known(store, digest, &image, Some(names.clone())).await?)
                    }
                    None => None,
                };
                images.push((platform, known));
            }
        }
    }
    Ok(Some(Stored {
        digest: digest.clone(),
        index,
        repository,
        images,
    }))
}

/// `/ui/diff`: the comparison of two digests the store knows.
pub async fn page_of(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DiffQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let store = super::store(&state)?;
    let bad = |message: String| {
        refusal_page(
            StatusCode::BAD_REQUEST,
            "Not a diff",
            "images",
            user.as_deref(),
            html! { p { (message) } },
        )
    };
    let parse = |name: &str, text: &Option<String>| match text {
        None => Err(bad(format!(
            "{name}: missing; give ?before=DIGEST&after=DIGEST"
        ))),
        Some(text) => Digest::parse(text).map_err(|error| {
            bad(format!(
                "{name}: \"{}\" is not a digest (sha256: and 64 hex digits): {error}",
                berth_core::quote::excerpt(text)
            ))
        }),
    };
    let before = parse("before", &query.before)?;
    let after = parse("after", &query.after)?;
    let mut sides = Vec::new();
    for digest in [&before, &after] {
        match stored(store, digest).await.map_err(failed)? {
            Some(side) => sides.push(side),
            None => {
                return Err(refusal_page(
                    StatusCode::NOT_FOUND,
                    "Unknown image",
                    "images",
                    user.as_deref(),
                    html! { p { "berth knows no image or index " code { (digest.to_string()) } ": a sync records it once a tag points at it." } },
                ));
            }
        }
    }
    let after_side = sides.pop().expect("two sides");
    let before_side = sides.pop().expect("two sides");
    let platforms = (before_side.index || after_side.index)
        .then(|| diff::platform_changes(&before_side.platforms(), &after_side.platforms()));
    // The images to compare: by platform when either side is an index.
    let mut pairs: Vec<(String, Option<Report>)> = Vec::new();
    match &platforms {
        None => {
            if let (Some((_, Some(old))), Some((_, Some(new)))) =
                (before_side.images.first(), after_side.images.first())
            {
                pairs.push((new.side.platform.clone(), Some(diff::compare(old, new))));
            }
        }
        Some(changes) => {
            for platform in &changes.both {
                let find = |side: &Stored| {
                    side.images
                        .iter()
                        .find(|(name, _)| name == platform)
                        .and_then(|(_, known)| known.clone())
                };
                let report = match (find(&before_side), find(&after_side)) {
                    (Some(old), Some(new)) => Some(diff::compare(&old, &new)),
                    _ => None,
                };
                pairs.push((platform.clone(), report));
            }
        }
    }
    // A channel moves within one repository: a side no live tag reaches takes the other's.
    let repository = after_side
        .repository
        .clone()
        .or_else(|| before_side.repository.clone());
    let reference = |side: &Stored| match side.repository.as_ref().or(repository.as_ref()) {
        Some(repository) => format!("{repository}@{}", side.digest),
        None => format!("REPOSITORY@{}", side.digest),
    };
    let command = format!(
        "berth diff {} {}",
        reference(&before_side),
        reference(&after_side)
    );
    Ok(page(
        "Diff",
        "images",
        &user,
        html! {
            dl {
                dt { "before" } dd { code data-side="before" { (before.to_string()) } }
                dt { "after" } dd { code data-side="after" { (after.to_string()) } }
            }
            p { "From what the store knows: base by lineage, OS, platforms, layers and labels. The run config (env, entrypoint, cmd, user, working directory, ports) and the file changes come from "
                code data-command="diff" { (command) } "." }
            @if let Some(changes) = &platforms {
                h2 { "Platforms" }
                p data-platforms="" {
                    (changes.both.len()) " on both"
                    @if !changes.added.is_empty() { "; added: " (changes.added.join(" ")) }
                    @if !changes.removed.is_empty() { "; removed: " (changes.removed.join(" ")) }
                }
            }
            @if pairs.is_empty() { p { "No platform image to compare: the store knows none on both sides." } }
            @for (platform, report) in &pairs {
                section {
                    h2 { "Image " (platform) }
                    @match report {
                        None => p { "The store does not know this platform's image on both sides." },
                        Some(report) => (report_html(report)),
                    }
                }
            }
        },
    ))
}

fn optional_digest(digest: &Option<Digest>) -> Markup {
    match digest {
        Some(digest) => digest_link(digest.as_str()),
        None => html! { "none known" },
    }
}

fn layer_cell(layer: &LayerRef) -> Markup {
    html! { code title=(layer.identity().to_string()) { (layer.identity().to_string()) } " (" (size_text(layer.size)) ")" }
}

fn report_html(report: &Report) -> Markup {
    let layers = &report.layers;
    let same_or = |changed: bool| if changed { "changed" } else { "unchanged" };
    html! {
        @if report.same { p data-same="" { "The same image: nothing differs." } } @else {
            dl {
                dt { "images" } dd { (digest_link(report.before.image.as_str())) " → " (digest_link(report.after.image.as_str())) }
                dt { "base (by lineage)" } dd data-base=(same_or(report.base_changed)) {
                    @if report.base_changed { (optional_digest(&report.before.base)) " → " (optional_digest(&report.after.base)) }
                    @else { "unchanged: " (optional_digest(&report.after.base)) }
                }
                dt { "OS" } dd data-os=(same_or(report.os_changed)) {
                    @let os = |os: &Option<String>| os.clone().unwrap_or_else(|| "unknown".into());
                    @if report.os_changed { (os(&report.before.os)) " → " (os(&report.after.os)) }
                    @else { "unchanged: " (os(&report.after.os)) }
                }
                dt { "created" } dd { (report.before.created.clone().unwrap_or_else(|| "unknown".into())) " → " (report.after.created.clone().unwrap_or_else(|| "unknown".into())) }
            }
            h3 { "Layers" }
            p { (layers.shared) " shared; " (layers.replaced.len()) " replaced, " (layers.added.len()) " added, " (layers.removed.len()) " removed" }
            @if !(layers.replaced.is_empty() && layers.added.is_empty() && layers.removed.is_empty()) {
                table { thead { tr { th scope="col" { "change" } th scope="col" { "before (diff_id)" } th scope="col" { "after (diff_id)" } } }
                    tbody {
                        @for replaced in &layers.replaced { tr data-layer="replaced" { td { "replaced" } td { (layer_cell(&replaced.before)) } td { (layer_cell(&replaced.after)) } } }
                        @for layer in &layers.added { tr data-layer="added" { td { "added" } td {} td { (layer_cell(layer)) } } }
                        @for layer in &layers.removed { tr data-layer="removed" { td { "removed" } td { (layer_cell(layer)) } td {} } }
                    }
                }
            }
            h3 { "Labels" }
            @if report.config.is_empty() { p { "unchanged" } } @else {
                table { thead { tr { th scope="col" { "label" } th scope="col" { "before" } th scope="col" { "after" } } }
                    tbody { @for change in &report.config { tr data-label=(change.key.clone().unwrap_or_default()) {
                        td { code { (change.key.clone().unwrap_or_else(|| change.field.to_string())) } }
                        td { code { (change.before.to_string()) } } td { code { (change.after.to_string()) } } } } }
                }
            }
        }
    }
}
