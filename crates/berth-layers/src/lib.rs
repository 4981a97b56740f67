//! Reads image layers as streams, never extracting to disk.
