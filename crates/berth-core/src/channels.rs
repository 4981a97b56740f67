//! channels (in progress).
