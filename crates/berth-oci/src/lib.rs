//! berth's OCI distribution client: reads and writes any registry that speaks the OCI
//! distribution API (CNCF distribution, Harbor, GHCR, ECR, Quay, Docker Hub).
//!
//! - [`client`]: `Client`, requests with auth, retries, limits and verification.
//! - [`copy`]: an image's blobs and child manifests into another repository or registry.
//! - [`manifest`]: manifest, index and config types; platform selection.
//! - [`auth`]: docker `config.json` credentials, challenges, token realm rules, `Secret`.
//! - [`helper`]: docker credential helpers (`docker-credential-NAME get`), bounded.
//! - [`digest`]: streaming digest computation.
//! - [`error`]: `OciError`, the one error type, with the target of the failing request.

pub mod auth;
pub mod client;
pub mod copy;
pub mod digest;
pub mod error;
pub mod helper;
pub mod manifest;

pub use auth::{AuthFile, Credentials, Resolver, Secret};
pub use client::{
    BlobReader, Client, ClientConfig, Limits, Listing, Manifest, Mount, RateLimit, RegistryConfig,
    RequestStats, Resolved, RetryPolicy,
};
pub use copy::{CopyReport, copy_referenced};
pub use error::{OciError, Target};
pub use helper::{CredentialHelper, HelperLimits};
pub use manifest::{Descriptor, ImageConfig, ImageIndex, ImageManifest, ManifestKind, Platform};
