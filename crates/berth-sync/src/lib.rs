//! Registry knowledge: walks registries into the store, reading facts, OS identity and lineage.

pub mod blob_read;
