//! berth's pure core: domain types and the decisions made on them.
//!
//! Nothing in this crate performs I/O, spawns tasks or reads a clock: a function that depends on
//! the time takes `now` as an argument. Adapters (`berth-oci`, `berth-server`, the binary) feed
//! it data and carry out what it decides.
//!
//! - [`reference`]: image references (`ImageRef`), digests and tags, parsed and normalized the
//!   way the container ecosystem does.
//! - [`quote`]: text quoted from outside (registry messages, excerpts of files), escaped.
//! - [`usage`]: the image references of a source tree's files (Dockerfiles, manifests, compose
//!   files, CI pipelines), from each file's path and text.

pub mod reference;

pub use reference::{Digest, DigestAlgorithm, ImageRef, RefError, Tag};
pub mod catalog;
pub mod channels;
pub mod diff;
pub mod duration;
pub mod freshness;
pub mod lineage;
pub mod notify;
pub mod osrelease;
pub mod policy;
pub mod provenance;
pub mod quote;
pub mod rebuild;
pub mod retention;
pub mod usage;
pub mod workload;
