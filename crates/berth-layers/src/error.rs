//! The one error type of berth-layers: the variants a caller acts on, each naming its layer.

use std::io;
use std::time::Duration;

use berth_core::Digest;

/// Why a layer could not be summarized. Limit variants carry the limit that was hit.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: more than {limit} bytes once decompressed")]
    DecompressedTooLarge { layer: Digest, limit: u64 },
    #[error("layer {layer}: more than {limit} tar entries")]
    TooManyEntries { layer: Digest, limit: u64 },
    #[error("layer {layer}: os-release {path} is {size} bytes, over the limit of {limit}")]
    OsReleaseTooLarge {
        layer: Digest,
        path: String,
        size: u64,
        limit: u64,
    },
    /// `window_size` is known when the frame header was checked before decoding; a later frame
    /// refused by the decoder itself leaves it `None`.
    #[error("layer {layer}: zstd window over the limit of 2^{window_log_max} bytes")]
    ZstdWindowTooLarge {
        layer: Digest,
        window_size: Option<u64>,
        window_log_max: u32,
    },
    #[error("layer {layer}: not read within {limit:?}")]
    TooSlow { layer: Digest, limit: Duration },
    #[error("layer {layer}: its summary would keep more than {limit} bytes")]
    SummaryTooLarge { layer: Digest, limit: u64 },
    #[error("layer {layer}: unsupported {what}")]
    Unsupported { layer: Digest, what: String },
    /// The bytes are not a valid compressed tar: retrying will not help.
    #[error("layer {layer}: malformed")]
    Malformed {
        layer: Digest,
        #[source]
        source: io::Error,
    },
    /// Opening or reading the blob failed (network, verification): retrying may help.
    #[error("layer {layer}: reading the blob failed")]
    Read {
        layer: Digest,
        #[source]
        source: io::Error,
    },
}

impl LayerError {
    /// The layer the error is about.
    pub fn layer(&self) -> &Digest {
        match self {
            LayerError::DecompressedTooLarge { layer, .. }
            | LayerError::TooManyEntries { layer, .. }
            | LayerError::OsReleaseTooLarge { layer, .. }
            | LayerError::ZstdWindowTooLarge { layer, .. }
            | LayerError::TooSlow { layer, .. }
            | LayerError::SummaryTooLarge { layer, .. }
            | LayerError::Unsupported { layer, .. }
            | LayerError::Malformed { layer, .. }
            | LayerError::Read { layer, .. } => layer,
        }
    }
}
