//! Registry knowledge: walks registries into the store, reading facts, OS identity and lineage.
//!
//! # Code map
//! - [`targets`]: which repositories a sync walks (catalog, configured repositories, whole
//!   registries with include/exclude path patterns).
//! - [`sync`]: [`Syncer`], one sync: tags by HEAD, unknown digests fetched once, one store
//!   transaction per repository, then the lineage pass ([`update_lineage`]).
//! - [`declared`]: the catalog's declared bases checked against the lineage found.
//! - `layers`: an image's layers streamed from the registry into berth-layers' scanner on a
//!   blocking thread, summaries shared by digest.
//! - [`blob_read`]: the bridge from an async blob stream to `std::io::Read`.
//! - [`resolve`]: one tag resolved at its registry on demand (the webhook's and `berth check
//!   --resolve`'s tags the store does not know), cached and single-flight within a deadline.
//! - [`signatures`]: a digest's cosign signatures and attestations (the `.sig` / `.att` tag
//!   scheme), fetched within bounds and checked with berth-trust against trusted keys.
//! - [`expiring`]: the bounded expiring cache the resolver and the server's namespace-label
//!   reader share.
//!
//! # Invariants
//! - A known digest is never fetched again: manifests, configs and layers are content-addressed.
//! - An unchanged tag costs one HEAD request.
//! - A repository is recorded whole or not at all; a failing registry or repository only
//!   gets its error and attempt time recorded, so nothing berth knew is lost and no tag is
//!   marked gone on partial knowledge.

pub mod blob_read;
pub mod declared;
pub mod expiring;
mod layers;
pub mod resolve;
pub mod signatures;
pub mod sync;
pub mod targets;

pub use declared::{DeclaredBase, check_declared_bases};
pub use layers::{identify, list_layers};
pub use sync::{
    Progress, REFERRERS_RECHECK, REFERRERS_RECHECK_MAX, RegistryRateLimit, RepositoryCounts,
    RepositoryOutcome, RepositoryReport, SyncError, SyncOptions, SyncReport, Syncer,
    update_lineage,
};
pub use targets::{PathPattern, RegistryScan, Targets};
