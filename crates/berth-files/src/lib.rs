//! Reading the platform's files from disk: a catalog is one file or a directory of them
//! ([`catalog_source`]), with size limits, symlinks kept inside the directory, and the
//! fingerprint `berth serve` polls. The CLI and the server both read catalogs through this
//! crate, so commands such as `berth catalog` and `berth sync` need nothing of the HTTP server.
//! [`source_tree`] walks a repository checkout for `berth usage scan`, within the same kind of
//! limits. [`policy_keys`] reads the policy's trusted keys (`signatures.keys`).

pub mod catalog_source;
pub mod policy_keys;
pub mod source_tree;
