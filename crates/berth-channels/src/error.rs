//! The one error type of channel operations: the variants callers act on.

use berth_core::channels::RollbackRefused;
use berth_core::{Digest, Tag};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("registry")]
    Registry(#[from] berth_oci::OciError),
    #[error("store")]
    Store(#[from] berth_store::StoreError),
    /// After the PUT, the tag resolved to something else (a concurrent writer, a registry that
    /// rewrote the manifest).
    #[error("{image}:{tag} resolves to {found} after berth put {expected} there")]
    NotConfirmed {
        image: String,
        tag: Tag,
        expected: Digest,
        found: Digest,
    },
    /// A rule names a variant the catalog entry does not have.
    #[error("{problem}")]
    UnknownVariant { problem: String },
    #[error("{subject}: cannot roll back {channel}: {refused}")]
    Rollback {
        subject: String,
        channel: Tag,
        refused: RollbackRefused,
    },
}
