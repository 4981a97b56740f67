//! lineage (in progress).
