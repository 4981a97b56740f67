//! From blob bytes to tar bytes: compression sniffed from magic bytes, and the meters that
//! enforce the byte and time limits on the way.
//!
//! The magic bytes decide, not the media type: a registry or a pusher that mislabels a layer
//! still gets it read, and a layer that is not what its bytes say fails in the decoder.
//! Gzip members are read until the end of the blob (`MultiGzDecoder`), and zstd frames too, so
//! a fully read layer has consumed its blob to the end, where a verifying reader checks the
//! digest.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::Duration;

use berth_core::Digest;
use flate2::read::MultiGzDecoder;

use crate::{LayerError, Limits};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const BZIP2_MAGIC: &[u8] = b"BZh";
/// Enough for a zstd frame header: magic (4), descriptor (1), window (1), dictionary id (4),
/// content size (8).
const SNIFF_LEN: usize = 18;
/// zstd's accepted range for the decoder's window log limit on 64-bit targets.
const ZSTD_WINDOW_LOG_RANGE: std::ops::RangeInclusive<u32> = 10..=31;

/// How a layer blob was compressed, as its first bytes said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Why a meter stopped the stream; read back after the tar reader reports an I/O error, since
/// `tar` wraps errors in its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tripped {
    Decompressed,
    Time,
}

/// Byte counts and the reason a stream was stopped, shared by the readers of one layer.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    compressed: Cell<u64>,
    decompressed: Cell<u64>,
    tripped: Cell<Option<Tripped>>,
    /// The blob reader itself failed (as opposed to the bytes it gave being bad).
    source_failed: Cell<bool>,
}

impl Meter {
    pub(crate) fn compressed(&self) -> u64 {
        self.compressed.get()
    }

    pub(crate) fn decompressed(&self) -> u64 {
        self.decompressed.get()
    }
}

/// What a layer is read with: the layer's digest for errors, its limits, and the clock.
pub(crate) struct Context<'a> {
    pub(crate) layer: &'a Digest,
    pub(crate) limits: &'a Limits,
    pub(crate) clock: &'a dyn Fn() -> Duration,
    /// `clock()` when the layer was opened.
    pub(crate) started: Duration,
    pub(crate) meter: Rc<Meter>,
}

impl Context<'_> {
    /// Turns an I/O error met while reading the tar into the error a caller acts on.
    pub(crate) fn classify(&self, error: io::Error) -> LayerError {
        let layer = self.layer.clone();
        match self.meter.tripped.get() {
            Some(Tripped::Decompressed) => {
                return LayerError::DecompressedTooLarge {
                    layer,
                    limit: self.limits.max_decompressed_bytes,
                };
            }
            Some(Tripped::Time) => return self.too_slow(),
            None => {}
        }
        if self.meter.source_failed.get() {
            return LayerError::Read {
                layer,
                source: error,
            };
        }
        // zstd refuses a later frame's window with this message (the first frame's header is
        // checked before decoding, with the window size in the error).
        if error.to_string().contains("requires too much memory") {
            return LayerError::ZstdWindowTooLarge {
                layer,
                window_size: None,
                window_log_max: self.zstd_window_log_max(),
            };
        }
        LayerError::Malformed {
            layer,
            source: error,
        }
    }

    pub(crate) fn too_slow(&self) -> LayerError {
        LayerError::TooSlow {
            layer: self.layer.clone(),
            limit: self.limits.max_layer_time,
        }
    }

    /// Whether the layer's time is up.
    pub(crate) fn out_of_time(&self) -> bool {
        (self.clock)().saturating_sub(self.started) > self.limits.max_layer_time
    }

    fn zstd_window_log_max(&self) -> u32 {
        self.limits
            .zstd_window_log_max
            .clamp(*ZSTD_WINDOW_LOG_RANGE.start(), *ZSTD_WINDOW_LOG_RANGE.end())
    }
}

/// Counts the blob bytes read and notes when the blob reader itself fails.
struct CountBlob<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for CountBlob<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf).inspect_err(|_| {
            self.meter.source_failed.set(true);
        })?;
        self.meter
            .compressed
            .set(self.meter.compressed.get() + read as u64);
        Ok(read)
    }
}

/// Enforces the decompressed-bytes and time limits on the tar stream.
pub(crate) struct Guard<'a, R> {
    inner: R,
    meter: Rc<Meter>,
    limit: u64,
    max_time: Duration,
    started: Duration,
    clock: &'a dyn Fn() -> Duration,
}

impl<R: Read> Read for Guard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.clock)().saturating_sub(self.started) > self.max_time {
            self.meter.tripped.set(Some(Tripped::Time));
            return Err(io::Error::other("layer time limit reached"));
        }
        let so_far = self.meter.decompressed.get();
        // One byte past the limit is enough to know it was exceeded.
        let allowed = (self.limit - so_far.min(self.limit)).saturating_add(1);
        let wanted = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..wanted])?;
        let total = so_far + read as u64;
        self.meter.decompressed.set(total);
        if total > self.limit {
            self.meter.tripped.set(Some(Tripped::Decompressed));
            return Err(io::Error::other("decompressed byte limit reached"));
        }
        Ok(read)
    }
}

/// Opens the tar stream of a layer blob: sniffs the compression, checks a zstd window before
/// decoding, and puts the limits in the way.
pub(crate) fn tar_stream<'a, R: Read + 'a>(
    blob: R,
    media_type: Option<&str>,
    context: &Context<'a>,
) -> Result<(Compression, Guard<'a, Box<dyn Read + 'a>>), LayerError> {
    let layer = context.layer;
    if let Some(media_type) = media_type
        && media_type.contains("encrypted")
    {
        return Err(LayerError::Unsupported {
            layer: layer.clone(),
            what: format!("media type {media_type}"),
        });
    }
    let mut blob = CountBlob {
        inner: blob,
        meter: context.meter.clone(),
    };
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    (&mut blob)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|error| context.classify(error))?;
    let window_log_max = context.zstd_window_log_max();
    let whole = io::Cursor::new(prefix.clone()).chain(blob);
    let (compression, stream): (Compression, Box<dyn Read + 'a>) = if prefix.starts_with(GZIP_MAGIC)
    {
        (Compression::Gzip, Box::new(MultiGzDecoder::new(whole)))
    } else if prefix.starts_with(ZSTD_MAGIC) {
        if let Some(window_size) = zstd_window_size(&prefix)
            && window_size > 1u64 << window_log_max
        {
            return Err(LayerError::ZstdWindowTooLarge {
                layer: layer.clone(),
                window_size: Some(window_size),
                window_log_max,
            });
        }
        let mut decoder =
            zstd::stream::read::Decoder::new(whole).map_err(|error| context.classify(error))?;
        decoder
            .window_log_max(window_log_max)
            .map_err(|error| context.classify(error))?;
        (Compression::Zstd, Box::new(decoder))
    } else if prefix.starts_with(XZ_MAGIC) || prefix.starts_with(BZIP2_MAGIC) {
        return Err(LayerError::Unsupported {
            layer: layer.clone(),
            what: "compression (xz or bzip2; OCI layers are gzip, zstd or plain tar)".to_string(),
        });
    } else {
        (Compression::None, Box::new(whole))
    };
    let guard = Guard {
        inner: stream,
        meter: context.meter.clone(),
        limit: context.limits.max_decompressed_bytes,
        max_time: context.limits.max_layer_time,
        started: context.started,
        clock: context.clock,
    };
    Ok((compression, guard))
}

/// The window size a zstd frame header declares (RFC 8878, 3.1.1.1), or `None` when `frame`
/// is too short to tell. Computed as the decoder computes it: a single-segment frame's window
/// is its content size.
fn zstd_window_size(frame: &[u8]) -> Option<u64> {
    let descriptor = *frame.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *frame.get(5)?;
        let base = 1u64 << (10 + u32::from(window >> 3));
        return Some(base + base / 8 * u64::from(window & 7));
    }
    let dictionary_bytes = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content_size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let start = 5 + dictionary_bytes;
    let field = frame.get(start..start + content_size_bytes)?;
    let value = field
        .iter()
        .rev()
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
    Some(if content_size_bytes == 2 {
        value + 256
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_window_sizes_follow_the_frame_header() {
        let cases: &[(&[u8], Option<u64>)] = &[
            // Window descriptor: exponent 17 (2^27), mantissa 0.
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3], Some(1 << 27)),
            // Exponent 18, mantissa 4: 2^28 + 4 * 2^25.
            (
                &[0x28, 0xb5, 0x2f, 0xfd, 0x00, (18 << 3) | 4],
                Some((1 << 28) + (1 << 27)),
            ),
            // Single segment, 1-byte content size 200.
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 200], Some(200)),
            // Single segment, 2-byte content size: value + 256.
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x01], Some(256 + 256)),
            // Single segment, 1-byte dictionary id, 4-byte content size.
            (
                &[0x28, 0xb5, 0x2f, 0xfd, 0xa1, 0x07, 0x00, 0x00, 0x00, 0x40],
                Some(1 << 30),
            ),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x00], None),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0xe0, 1, 2], None),
        ];
        for (frame, expect) in cases {
            assert_eq!(zstd_window_size(frame), *expect, "{frame:x?}");
        }
    }
}
