//! The registry knowledge the policy engine reads (`berth_core::policy::Knowledge`), loaded
//! whole from the store: what the webhook's snapshot holds and what `berth check --store` reads.

use std::collections::BTreeSet;

use berth_core::lineage::LineageIndex;
use berth_core::policy::Knowledge;
use berth_core::{Digest, ImageRef};

use crate::{ManifestKind, RepositoryName, Store, StoreError};

impl Store {
    /// What the store knows that the policy asks: the live tags of every repository it has synced,
    /// the platform images of the indexes they point to, and the lineage of every image with
    /// layers. An image in a repository never synced is simply unknown.
    pub async fn policy_knowledge(&self) -> Result<Knowledge, StoreError> {
        let store = self;
        let repositories: BTreeSet<RepositoryName> = store
            .repository_statuses()
            .await?
            .into_iter()
            .map(|status| status.repository)
            .collect();
        let chains = store.all_layer_chains().await?;
        let lineage = LineageIndex::build(
            chains
                .into_iter()
                .map(|chain| (chain.image, chain.diff_ids)),
        );
        let mut knowledge = Knowledge::new(lineage);
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        for repository in &repositories {
            let name = format!("{}/{}", repository.registry(), repository.repository());
            for (tag, digest) in store.tag_digests(repository).await? {
                if let Ok(reference) = ImageRef::parse(&format!("{name}:{tag}")) {
                    knowledge.add_tag(&reference, digest.clone());
                }
                if !seen.insert(digest.clone()) {
                    continue;
                }
                if let Some(record) = store.manifest(&digest).await?
                    && let ManifestKind::Index(entries) = record.kind
                {
                    let images = entries
                        .into_iter()
                        .filter(|entry| !entry.is_attestation)
                        .map(|entry| entry.child)
                        .collect();
                    knowledge.add_index(digest, images);
                }
            }
        }
        Ok(knowledge)
    }
}
