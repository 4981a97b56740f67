//! The catalog's declared bases against the lineage found from layers: for each entry with a
//! `base`, each of its images (per variant, per platform) at its channel tag is checked.

use std::collections::HashMap;

use berth_core::catalog::{Catalog, CatalogEntry};
use berth_core::lineage::{BaseCheck, LineageIndex};
use berth_core::{Digest, Tag};
use berth_store::{ManifestKind, RepositoryName, Store, StoreError};

/// One image of a catalog entry compared with its declared base.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeclaredBase {
    pub entry: String,
    pub variant: Option<String>,
    /// The tag checked (`registry/repo:latest`).
    pub image: String,
    /// The platform manifest checked.
    pub digest: Digest,
    /// The declared base entry.
    pub declared: String,
    /// The catalog entry whose image the lineage found as the base, when one is.
    pub actual_entry: Option<String>,
    #[serde(flatten)]
    pub check: BaseCheck,
}

/// Checks every entry that declares a base. Images the store does not know (not synced yet)
/// are skipped: there is nothing to compare.
pub async fn check_declared_bases(
    store: &Store,
    catalog: &Catalog,
) -> Result<Vec<DeclaredBase>, StoreError> {
    let chains = store.all_layer_chains().await?;
    let lineage = LineageIndex::build(chains.into_iter().map(|c| (c.image, c.diff_ids)));
    // Every entry's platform manifests at its channel, to name what lineage finds.
    let mut names: HashMap<Digest, String> = HashMap::new();
    for entry in catalog.entries() {
        for (_, image) in entry.images() {
            let repository = RepositoryName::new(image.registry(), image.repository())
                .expect("catalog images are valid repositories");
            for digest in platform_digests(store, &repository, channel(entry)).await? {
                names.entry(digest).or_insert_with(|| entry.name.clone());
            }
        }
    }
    let mut results = Vec::new();
    for entry in catalog.entries() {
        let Some(base_name) = &entry.base else {
            continue;
        };
        let Some(base_entry) = catalog.get(base_name) else {
            continue;
        };
        let mut declared = Vec::new();
        for (_, image) in base_entry.images() {
            let repository = RepositoryName::new(image.registry(), image.repository())
                .expect("catalog images are valid repositories");
            declared.extend(platform_digests(store, &repository, channel(base_entry)).await?);
        }
        for (variant, image) in entry.images() {
            let repository = RepositoryName::new(image.registry(), image.repository())
                .expect("catalog images are valid repositories");
            let tag = channel(entry);
            for digest in platform_digests(store, &repository, tag).await? {
                let check = lineage.check_declared(&digest, &declared);
                let actual_entry = lineage
                    .base_of(&digest)
                    .and_then(|found| names.get(&found.base).cloned());
                results.push(DeclaredBase {
                    entry: entry.name.clone(),
                    variant: variant.map(str::to_string),
                    image: format!("{repository}:{}", tag.map_or("latest", Tag::as_str)),
                    check,
                    digest,
                    declared: base_name.clone(),
                    actual_entry,
                });
            }
        }
    }
    Ok(results)
}

/// The tag an entry's images are checked at: `latest` when it is a channel, else the first.
fn channel(entry: &CatalogEntry) -> Option<&Tag> {
    entry
        .channels
        .iter()
        .find(|tag| tag.as_str() == "latest")
        .or(entry.channels.first())
}

/// The platform manifests the tag points at: the manifest itself, or an index's runnable
/// entries.
async fn platform_digests(
    store: &Store,
    repository: &RepositoryName,
    tag: Option<&Tag>,
) -> Result<Vec<Digest>, StoreError> {
    let Some(tag) = tag else {
        return Ok(Vec::new());
    };
    let Some((_, digest)) = store
        .tag_digests(repository)
        .await?
        .into_iter()
        .find(|(known, _)| known == tag)
    else {
        return Ok(Vec::new());
    };
    Ok(match store.manifest(&digest).await? {
        Some(record) => match record.kind {
            ManifestKind::Index(entries) => entries
                .into_iter()
                .filter(|entry| !entry.is_attestation)
                .map(|entry| entry.child)
                .collect(),
            ManifestKind::Image => vec![digest],
        },
        None => Vec::new(),
    })
}
