//! catalog (in progress).
